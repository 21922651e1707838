/*
 * The upstream side: where a request goes and how we get there. Resolution (IP literals, a
 * 30 s cache of 64 names, uv_getaddrinfo off the loop, RFC 6761 .invalid answered at once),
 * the policy check of every resolved address (DNS rebinding), TCP connect with fallback to
 * the next address, the upstream TLS handshake with verification, and the facts about that
 * TLS session that every exchange on the connection records.
 *
 *   et__resolve_target -> et__target_resolved -> et__conn_on_target (conn.c decides)
 *   et__up_start -> uv_tcp_connect (next address on failure) -> on_up_connect
 *     -> plain: et__conn_up_ready
 *     -> TLS:   ClientHello; et__up_pump on each advance -> verified -> et__conn_up_ready
 */
#include "proxy_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DNS_TTL_MS 30000

/* ---------------------------------------------------------------- DNS */

static struct et__dns_entry *dns_lookup(struct et_proxy *p, const char *host)
{
    uint64_t now = uv_now(&p->loop);
    for (unsigned i = 0; i < ET__DNS_CACHE_SIZE; i++) {
        struct et__dns_entry *d = &p->dns[i];
        if (d->naddr > 0 && d->expires > now && et_strcaseeq(d->host, host))
            return d;
    }
    return NULL;
}

static void dns_store(struct et_proxy *p, const char *host, const struct sockaddr_storage *a,
                      int n)
{
    size_t hl = strlen(host);
    if (hl >= sizeof(p->dns[0].host) || n <= 0)
        return;
    struct et__dns_entry *d = &p->dns[p->dns_next++ % ET__DNS_CACHE_SIZE];
    memcpy(d->host, host, hl + 1);
    memcpy(d->a, a, sizeof(*a) * (size_t)n);
    d->naddr = n;
    d->expires = uv_now(&p->loop) + DNS_TTL_MS;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons((uint16_t)port);
}

/* Called once the target's addresses are known (c->addrs): checks the policy on every
 * resolved address (DNS rebinding), then continues by mode. */
void et__target_resolved(struct et__conn *c)
{
    for (int i = 0; i < c->naddr; i++) {
        set_port(&c->addrs[i], c->target_port);
        if (!et__target_allowed(c->p, c->target_host, (const struct sockaddr *)&c->addrs[i])) {
            char a[64];
            et__addr_format((const struct sockaddr *)&c->addrs[i], a, sizeof(a));
            c->p->st.denied++;
            et__conn_fail(c, ET_EDENIED, ET_STAGE_REQUEST, 403,
                          "target %s resolves to %s, which is not allowed (--allow-target)",
                          c->target_host, a);
            return;
        }
    }
    c->resolved = 1;
    c->addr_i = 0;
    et__conn_on_target(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct et__resolve *r = et__container_of(req, struct et__resolve, req);
    struct et__conn *c = r->conn;
    if (c == NULL) {
        uv_freeaddrinfo(res);
        et_free(r);
        return;
    }
    c->res = NULL;
    et_free(r);
    if (status < 0 || res == NULL) {
        uv_freeaddrinfo(res);
        et__conn_fail(c, ET_EDNS, ET_STAGE_DNS, 502, "cannot resolve %s: %s", c->target_host,
                      uv_strerror(status));
        et__conn_advance(c);
        return;
    }
    /* IPv4 first: the tests and most Exchange front ends are reached over IPv4. */
    c->naddr = 0;
    for (int pass = 0; pass < 2; pass++)
        for (struct addrinfo *ai = res; ai != NULL && c->naddr < ET__MAX_ADDRS; ai = ai->ai_next)
            if ((pass == 0) == (ai->ai_family == AF_INET) &&
                (ai->ai_family == AF_INET || ai->ai_family == AF_INET6))
                memcpy(&c->addrs[c->naddr++], ai->ai_addr, ai->ai_addrlen);
    uv_freeaddrinfo(res);
    if (c->naddr == 0) {
        et__conn_fail(c, ET_EDNS, ET_STAGE_DNS, 502, "no address for %s", c->target_host);
        et__conn_advance(c);
        return;
    }
    dns_store(c->p, c->target_host, c->addrs, c->naddr);
    et__target_resolved(c);
    et__conn_advance(c);
}

/* Resolves c->target_host (literal, cache or uv_getaddrinfo). */
void et__resolve_target(struct et__conn *c)
{
    struct et_proxy *p = c->p;
    const char *h = c->target_host;
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    c->resolved = 0;
    if (uv_ip4_addr(h, c->target_port, &a4) == 0) {
        memcpy(&c->addrs[0], &a4, sizeof(a4));
        c->naddr = 1;
        et__target_resolved(c);
        return;
    }
    if (uv_ip6_addr(h, c->target_port, &a6) == 0) {
        memcpy(&c->addrs[0], &a6, sizeof(a6));
        c->naddr = 1;
        et__target_resolved(c);
        return;
    }
    {
        /* RFC 6761: names under .invalid never resolve; answer without asking DNS. */
        size_t hl = strlen(h);
        if ((hl >= 8 && et_strcaseeq(h + hl - 8, ".invalid")) || et_strcaseeq(h, "invalid")) {
            et__conn_fail(c, ET_EDNS, ET_STAGE_DNS, 502,
                          "cannot resolve %s: the .invalid domain never resolves (RFC 6761)", h);
            return;
        }
    }
    struct et__dns_entry *d = dns_lookup(p, h);
    if (d != NULL) {
        memcpy(c->addrs, d->a, sizeof(d->a[0]) * (size_t)d->naddr);
        c->naddr = d->naddr;
        et__target_resolved(c);
        return;
    }
    struct et__resolve *r = et_calloc(1, sizeof(*r));
    if (r == NULL) {
        et__conn_fail(c, ET_ENOMEM, ET_STAGE_DNS, 502, "out of memory");
        return;
    }
    r->conn = c;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = uv_getaddrinfo(&p->loop, &r->req, on_resolved, h, NULL, &hints);
    if (rc != 0) {
        et_free(r);
        et__conn_fail(c, ET_EDNS, ET_STAGE_DNS, 502, "cannot resolve %s: %s", h, uv_strerror(rc));
        return;
    }
    c->res = r;
}

void et__resolve_cancel(struct et__conn *c)
{
    if (c->res != NULL) {
        c->res->conn = NULL;
        uv_cancel((uv_req_t *)&c->res->req);
        c->res = NULL;
    }
}

/* ---------------------------------------------------------------- connect */

void et__up_close(struct et__conn *c)
{
    struct et__leg *u = c->up;
    if (u == NULL)
        return;
    c->up = NULL;
    c->up_ready = 0;
    u->conn = NULL;
    if (!u->handle_open) {
        et__leg_free_bufs(u->p, u);
        et_free(u);
        return;
    }
    et__leg_read_stop(u);
    if (!u->closing) {
        u->closing = 1;
        uv_close((uv_handle_t *)&u->tcp, et__leg_on_closed);
    }
}

static char *asn1_time_iso(const ASN1_TIME *t)
{
    struct tm tm;
    char buf[40];
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return NULL;
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return et_strdup(buf);
}

static void up_collect_info(struct et__leg *u)
{
    struct et__upinfo *i = et_calloc(1, sizeof(*i));
    if (i == NULL)
        return;
    u->info = i;
    i->version = et_strdup(SSL_get_version(u->ssl));
    const SSL_CIPHER *ci = SSL_get_current_cipher(u->ssl);
    if (ci != NULL)
        i->cipher = et_strdup(SSL_CIPHER_get_name(ci));
    const unsigned char *alpn = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(u->ssl, &alpn, &alen);
    if (alen > 0)
        i->alpn = et_strndup((const char *)alpn, alen);
    X509 *cert = SSL_get0_peer_certificate(u->ssl);
    if (cert == NULL)
        return;
    char buf[512];
    X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof(buf));
    i->subject = et_strdup(buf);
    X509_NAME_oneline(X509_get_issuer_name(cert), buf, sizeof(buf));
    i->issuer = et_strdup(buf);
    i->not_before = asn1_time_iso(X509_get0_notBefore(cert));
    i->not_after = asn1_time_iso(X509_get0_notAfter(cert));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) == 1) {
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        for (unsigned k = 0; k < mdlen; k++)
            snprintf(hex + 2 * k, 3, "%02x", md[k]);
        i->sha256 = et_strdup(hex);
    }
}

static void on_up_connect(uv_connect_t *req, int status);

/* Opens a TCP connection to c->addrs[c->addr_i] on leg u. */
static int up_connect_addr(struct et__conn *c, struct et__leg *u)
{
    int rc = uv_tcp_init(&c->p->loop, &u->tcp);
    if (rc != 0)
        return rc;
    u->handle_open = 1;
    u->tcp.data = u;
    memcpy(&u->peer, &c->addrs[c->addr_i], sizeof(u->peer));
    return uv_tcp_connect(&u->creq, &u->tcp, (const struct sockaddr *)&u->peer, on_up_connect);
}

/* Starts (or reuses) the upstream leg for the current target. */
void et__up_start(struct et__conn *c)
{
    struct et_proxy *p = c->p;
    struct et__leg *u = et_calloc(1, sizeof(*u));
    if (u == NULL) {
        et__conn_fail(c, ET_ENOMEM, ET_STAGE_UPSTREAM_CONNECT, 502, "out of memory");
        return;
    }
    u->p = p;
    u->conn = c;
    u->is_up = 1;
    u->port = c->target_port;
    u->host = et_strdup(c->target_host);
    if (c->mode != ET__M_TUNNEL_WAIT && c->target_tls) {
        const char *sni = c->sni ? c->sni : c->target_host;
        u->sni = et_strdup(sni);
    }
    if (u->host == NULL) {
        et_free(u);
        et__conn_fail(c, ET_ENOMEM, ET_STAGE_UPSTREAM_CONNECT, 502, "out of memory");
        return;
    }
    /* A previous upstream's staged bytes move over (the request head). */
    if (c->up != NULL) {
        struct et__leg *old = c->up;
        u->out_head = old->out_head;
        u->out_tail = old->out_tail;
        u->queued = 0;
        for (struct et__chunk *k = u->out_head; k; k = k->next)
            u->queued += k->len;
        old->out_head = old->out_tail = NULL;
        old->queued -= u->queued;
        et__up_close(c);
    }
    c->up = u;
    c->up_ready = 0;
    et__conn_deadline(c, ET_PROXY_T_CONNECT);
    int rc = up_connect_addr(c, u);
    if (rc != 0)
        et__conn_fail(c, ET_ECONNREFUSED, ET_STAGE_UPSTREAM_CONNECT, 502, "connect to %s:%d: %s",
                      c->target_host, c->target_port, uv_strerror(rc));
}

static void on_up_connect(uv_connect_t *req, int status)
{
    struct et__leg *u = et__container_of(req, struct et__leg, creq);
    struct et__conn *c = u->conn;
    if (c == NULL)
        return; /* detached; et__leg_on_closed frees it */
    if (status < 0) {
        if (status != UV_ECANCELED && c->addr_i + 1 < c->naddr) {
            /* Try the next address on a fresh socket. */
            c->addr_i++;
            struct et__leg *nu = et_calloc(1, sizeof(*nu));
            if (nu != NULL) {
                *nu = *u;
                memset(&nu->tcp, 0, sizeof(nu->tcp));
                memset(&nu->creq, 0, sizeof(nu->creq));
                nu->handle_open = 0;
                u->out_head = u->out_tail = NULL;
                u->host = u->sni = NULL;
                u->queued = 0;
                u->conn = NULL;
                u->closing = 1;
                uv_close((uv_handle_t *)&u->tcp, et__leg_on_closed);
                c->up = nu;
                if (up_connect_addr(c, nu) == 0)
                    return;
                u = nu;
            }
        }
        et__conn_fail(c, status == UV_ETIMEDOUT ? ET_ETIMEDOUT : ET_ECONNREFUSED,
                      ET_STAGE_UPSTREAM_CONNECT, 502, "connect to %s:%d: %s", c->target_host,
                      c->target_port, uv_strerror(status));
        et__conn_advance(c);
        return;
    }
    u->connected = 1;
    uv_tcp_nodelay(&u->tcp, 1);
    if (c->mode != ET__M_TUNNEL_WAIT && c->target_tls) {
        int insecure = et__host_insecure(c->p, u->host);
        if (et__leg_tls_new(u, insecure ? c->p->cctx_insecure : c->p->cctx) != 0) {
            et__conn_fail(c, ET_ETLS, ET_STAGE_UPSTREAM_TLS, 502, "SSL_new failed");
            et__conn_advance(c);
            return;
        }
        SSL_set_connect_state(u->ssl);
        unsigned char tmp[16];
        int is_ip = inet_pton(AF_INET, u->sni, tmp) == 1 || inet_pton(AF_INET6, u->sni, tmp) == 1;
        if (!is_ip)
            SSL_set_tlsext_host_name(u->ssl, u->sni);
        if (!insecure) {
            X509_VERIFY_PARAM *vp = SSL_get0_param(u->ssl);
            if (is_ip)
                X509_VERIFY_PARAM_set1_ip_asc(vp, u->sni);
            else
                SSL_set1_host(u->ssl, u->sni);
        }
        /* The first flight: ClientHello into the write queue. */
        unsigned long err;
        et__leg_tls_pump(u, &err);
        et__leg_flush(u);
    } else {
        et__conn_up_ready(c);
    }
    et__leg_read_start(u);
    et__conn_advance(c);
}

/* ---------------------------------------------------------------- upstream TLS */

void et__up_pump(struct et__conn *c)
{
    struct et__leg *u = c->up;
    unsigned long sslerr = 0;
    if (u == NULL || u->ssl == NULL || !u->connected || c->mode == ET__M_CLOSING)
        return;
    int r = et__leg_tls_pump(u, &sslerr);
    if (r < 0) {
        long vr = SSL_get_verify_result(u->ssl);
        if (vr != X509_V_OK)
            et__conn_fail(c, ET_ECERT, ET_STAGE_UPSTREAM_TLS, 502,
                          "certificate of %s rejected: %s", u->sni,
                          X509_verify_cert_error_string(vr));
        else {
            char buf[256] = "connection closed during the handshake";
            if (sslerr != (unsigned long)-1)
                ERR_error_string_n(sslerr, buf, sizeof(buf));
            et__conn_fail(c, ET_ETLS, ET_STAGE_UPSTREAM_TLS, 502, "TLS with %s failed: %s",
                          u->sni, buf);
        }
    } else if (r == 1) {
        up_collect_info(u);
        et__conn_up_ready(c);
    } else if (!u->hs_done && u->eof) {
        et__conn_fail(c, ET_ECONNRESET, ET_STAGE_UPSTREAM_TLS, 502,
                      "%s closed the connection during the TLS handshake", u->sni);
    }
    /* A failure above detached u (closing): the flush then does nothing. */
    if (u->hs_done)
        et__leg_flush(u);
}
