/*
 * Reverse mode (eastrace proxy --reverse https://CAS): the proxy stands in front of one
 * server with the organisation's own certificate, so clients that cannot be pointed at a
 * forward proxy (Outlook for iOS/Android, whose traffic comes from Microsoft's cloud; apps
 * that ignore user CAs or pin) are recorded without touching them. What differs from the
 * forward proxy, all here:
 *
 *   accept -> admission (et__rev_accept): --accept-proxy-protocol: the peer must be a
 *             --trusted-proxy, and ET__M_PROXYHDR reads its header (et__rev_on_header)
 *             naming the client; --allow (when given) then limits the clients
 *          -> ET__M_REV_TLS (--cert/--key) or straight to ET__M_REVERSE (plain listener)
 *   request -> et__rev_route: origin-form only (CONNECT, absolute-form refused: this is never
 *              a forward proxy), the upstream is always the one server
 *           -> et__rev_write_head: the client's request line and field lines as sent, hop-by-
 *              hop fields dropped, X-Forwarded-For appended (the connection's peer, or the
 *              PROXY header's client: never a value the client sent), X-Forwarded-Proto
 *
 * Everything else (bodies, framing checks, long polls, upstream verification, recording) is
 * the forward proxy's code: conn.c runs the same exchange loop in ET__M_REVERSE.
 */
#include "proxy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- setup */

/* The private key, refused when group or others may read it (as the CA key's 0600 rule). */
static int load_key(SSL_CTX *ctx, const char *path, struct et_error *e)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        et_error_set(e, ET_EIO, "cannot open --key %s: %s", path, strerror(errno));
        return ET_EIO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        et_error_set(e, ET_EINVAL, "--key %s is not a regular file", path);
        return ET_EINVAL;
    }
    if ((st.st_mode & 077) != 0) {
        close(fd);
        et_error_set(e, ET_EPERM,
                     "--key %s has mode %04o: a private key must not be readable by group or "
                     "others (chmod 600 %s)", path, (unsigned)(st.st_mode & 07777), path);
        return ET_EPERM;
    }
    FILE *f = fdopen(fd, "r");
    if (f == NULL) {
        close(fd);
        et_error_set(e, ET_EIO, "cannot read --key %s", path);
        return ET_EIO;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (k == NULL || SSL_CTX_use_PrivateKey(ctx, k) != 1) {
        char buf[200];
        ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
        EVP_PKEY_free(k);
        et_error_set(e, ET_ETLS, "--key %s: not a usable PEM private key (%s)", path, buf);
        return ET_ETLS;
    }
    EVP_PKEY_free(k);
    return 0;
}

static int tls_init(struct et_proxy *p, struct et_error *e)
{
    const struct et_proxy_opts *o = &p->o;
    char buf[200];
    int rc;
    if (o->reverse_cert_file == NULL && o->reverse_key_file == NULL)
        return 0;
    if (o->reverse_cert_file == NULL || o->reverse_key_file == NULL) {
        et_error_set(e, ET_EINVAL, "--cert and --key go together");
        return ET_EINVAL;
    }
    p->rsctx = SSL_CTX_new(TLS_server_method());
    if (p->rsctx == NULL) {
        et_error_set(e, ET_ETLS, "OpenSSL setup failed");
        return ET_ETLS;
    }
    SSL_CTX_set_min_proto_version(p->rsctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(p->rsctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(p->rsctx, o->reverse_cert_file) != 1) {
        ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
        et_error_set(e, ET_ETLS, "--cert %s: not a PEM certificate chain (%s)",
                     o->reverse_cert_file, buf);
        return ET_ETLS;
    }
    if ((rc = load_key(p->rsctx, o->reverse_key_file, e)) != 0)
        return rc;
    if (SSL_CTX_check_private_key(p->rsctx) != 1) {
        et_error_set(e, ET_ETLS, "--key %s does not belong to the certificate in --cert %s",
                     o->reverse_key_file, o->reverse_cert_file);
        return ET_ETLS;
    }
    return 0;
}

int et__rev_init(struct et_proxy *p, struct et_error *e)
{
    const struct et_proxy_opts *o = &p->o;
    if (o->reverse_host == NULL) {
        if (o->accept_proxy_protocol || o->n_trusted_proxy > 0 || o->reverse_cert_file) {
            et_error_set(e, ET_EINVAL, "PROXY protocol and --cert belong to reverse mode");
            return ET_EINVAL;
        }
        return 0;
    }
    if (!et__host_valid(o->reverse_host)) {
        et_error_set(e, ET_EINVAL, "bad reverse host '%s'", o->reverse_host);
        return ET_EINVAL;
    }
    p->rev_port = o->reverse_port > 0 ? o->reverse_port : (o->reverse_tls ? 443 : 80);
    if (o->reverse_port < 0 || o->reverse_port > 65535) {
        et_error_set(e, ET_EINVAL, "bad reverse port %d", o->reverse_port);
        return ET_EINVAL;
    }
    if (o->accept_proxy_protocol != (o->n_trusted_proxy > 0)) {
        et_error_set(e, ET_EINVAL, o->accept_proxy_protocol
                                       ? "--accept-proxy-protocol needs --trusted-proxy CIDR "
                                         "(the load balancers whose headers are believed)"
                                       : "--trusted-proxy needs --accept-proxy-protocol");
        return ET_EINVAL;
    }
    for (size_t i = 0; i < o->n_trusted_proxy; i++) {
        struct et__cidr c;
        if (et__cidr_parse(o->trusted_proxy[i], &c) != 0) {
            et_error_set(e, ET_EINVAL, "bad --trusted-proxy CIDR '%s'", o->trusted_proxy[i]);
            return ET_EINVAL;
        }
        if (et__cidr_add(&p->trusted, &p->n_trusted, &c) != 0)
            return ET_ENOMEM;
    }
    return tls_init(p, e);
}

void et__rev_free(struct et_proxy *p)
{
    SSL_CTX_free(p->rsctx);
    p->rsctx = NULL;
    et_free(p->trusted);
    p->trusted = NULL;
    p->n_trusted = 0;
}

/* ---------------------------------------------------------------- admission */

static int trusted_peer(const struct et_proxy *p, const struct sockaddr *sa)
{
    for (size_t i = 0; i < p->n_trusted; i++)
        if (et__cidr_match(&p->trusted[i], sa))
            return 1;
    return 0;
}

/* The client (the peer, or the PROXY header's source) against --allow, when given: 0, or -1
 * when refused (counted, logged once a minute, closed). through: the balancer, or NULL. */
static int admit_client(struct et__conn *c, const char *through)
{
    struct et_proxy *p = c->p;
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    char ip[64];
    if (p->n_allow_clients == 0 || et__client_allowed(p, sa))
        return 0;
    et__ip_format(sa, ip, sizeof(ip));
    p->st.denied++;
    p->st.refused++;
    et__note_refused(p, sa, "refused client %s%s%s: not admitted (--allow %s to admit it)", ip,
                     through ? " through " : "", through ? through : "", ip);
    et__conn_close(c);
    return -1;
}

/* The client's own mode: TLS with the operator's certificate, or plain HTTP. */
static void enter_client_mode(struct et__conn *c)
{
    if (c->p->rsctx == NULL) {
        et__conn_set_mode(c, ET__M_REVERSE);
        return;
    }
    c->cl.tls = 1; /* reads go to cin from now on; bytes already read are the ClientHello */
    if (c->cl.in != NULL) {
        c->cl.cin = c->cl.in;
        c->cl.in = NULL;
    }
    et__conn_set_mode(c, ET__M_REV_TLS);
    c->quiet = c->cl.cin == NULL;
}

int et__rev_accept(struct et__conn *c)
{
    struct et_proxy *p = c->p;
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    char ip[64];
    et__ip_format(sa, ip, sizeof(ip));
    if (p->o.accept_proxy_protocol) {
        if (!trusted_peer(p, sa)) {
            p->st.refused++;
            p->st.proxy_header_errors++;
            et__note_refused(p, sa, "refused %s: not a --trusted-proxy, and this listener "
                             "takes only connections that begin with a PROXY header", ip);
            et__conn_close(c);
            return -1;
        }
        et__conn_set_mode(c, ET__M_PROXYHDR);
        return 0;
    }
    if (admit_client(c, NULL) != 0)
        return -1;
    enter_client_mode(c);
    return 0;
}

void et__rev_on_header(struct et__conn *c)
{
    struct et_proxy *p = c->p;
    struct et__pp pp;
    struct et_error e;
    char peer[64];
    if (c->cl.in == NULL || c->cl.in->len == 0)
        return;
    et_error_clear(&e);
    int r = et__pp_parse(c->cl.in->data + c->cl.in->off, c->cl.in->len, &pp, &e);
    if (r == ET_EAGAIN)
        return; /* the header deadline applies meanwhile */
    et_sockaddr_format((const struct sockaddr *)&c->peer, peer, sizeof(peer));
    if (r != 0) {
        p->st.proxy_header_errors++;
        et__plog(p, "closed the connection from %s: %s (byte %llu)", peer, e.msg,
                 (unsigned long long)e.offset);
        et__conn_close(c);
        return;
    }
    p->st.proxy_headers++;
    et__leg_in_consume(&c->cl, pp.len);
    if (!pp.local) {
        memcpy(&c->via, &c->peer, sizeof(c->via));
        memcpy(&c->peer, &pp.src, sizeof(c->peer));
        c->proxied = 1;
        et_sockaddr_format((const struct sockaddr *)&c->peer, c->client_addr,
                        sizeof(c->client_addr));
    }
    if (admit_client(c, peer) != 0)
        return;
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    char ip[64];
    et__ip_format(sa, ip, sizeof(ip));
    /* The per-client cap counts real clients, now that this one is known. */
    if (!et__caps_admit(p, c)) {
        p->st.refused++;
        et__note_refused(p, sa, "refused a connection from %s (through %s): at the "
                         "per-client cap, none idle", ip, peer);
        et__conn_close(c);
        return;
    }
    enter_client_mode(c);
}

/* ---------------------------------------------------------------- requests */

int et__rev_route(struct et__conn *c, const struct et__head *h, char **host, int *port)
{
    struct et_proxy *p = c->p;
    int is_connect = h->method_len == 7 && memcmp(h->method, "CONNECT", 7) == 0;
    int origin = h->target_len > 0 && h->target[0] == '/';
    int asterisk = h->target_len == 1 && h->target[0] == '*' && h->method_len == 7 &&
                   memcmp(h->method, "OPTIONS", 7) == 0;
    const char *scheme = c->cl.tls ? "https" : "http";
    /* What the client asked for (its Host), else the server; the server's address is in
     * server_addr, its certificate in the TLS facts. */
    char *rh = NULL;
    int rp = 0;
    const char *hv = NULL;
    size_t hl = 0;
    for (size_t i = 0; i < h->n; i++)
        if (et__field_is(&h->f[i], "host")) {
            hv = h->f[i].value;
            hl = h->f[i].vlen;
        }
    if (hv == NULL || et__split_authority(hv, hl, c->cl.tls ? 443 : 80, &rh, &rp) != 0)
        et__rec_target(c, scheme, p->o.reverse_host, p->rev_port);
    else
        et__rec_target(c, scheme, rh, rp);
    et_free(rh);
    if (is_connect || (!origin && !asterisk)) {
        const char *why = is_connect ? "CONNECT" : "an absolute-form request";
        p->st.denied++;
        et__plog(p, "refused %s from %s: a reverse proxy takes origin-form requests for %s only "
                 "(it is not a forward proxy)", why, c->client_addr, p->o.reverse_host);
        et__conn_fail(c, ET_EDENIED, ET_STAGE_REQUEST, is_connect ? 405 : 400,
                      "%s refused: this is a reverse proxy for %s (origin-form requests only)",
                      why, p->o.reverse_host);
        return -1;
    }
    *host = et_strdup(p->o.reverse_host);
    if (*host == NULL) {
        et__conn_fail(c, ET_ENOMEM, ET_STAGE_REQUEST, 502, "out of memory");
        return -1;
    }
    *port = p->rev_port;
    c->target_tls = p->o.reverse_tls ? 1 : 0;
    c->named = 1; /* the operator named it with --reverse: any port, any address */
    return 0;
}

/* The raw line starting at s (a request line or a field line) up to its CRLF, exclusive. */
static size_t line_len(const char *s, const char *end)
{
    const char *cr = memchr(s, '\r', (size_t)(end - s));
    return cr ? (size_t)(cr - s) : (size_t)(end - s);
}

void et__rev_write_head(struct et__conn *c, struct et__leg *w, const struct et__head *h)
{
    const char *start = h->method, *end = h->method + h->head_len;
    char ip[64];
    size_t last_xff = h->n, n;
    int has_proto = 0;
    et__ip_format((const struct sockaddr *)&c->peer, ip, sizeof(ip));
    for (size_t i = 0; i < h->n; i++) {
        if (et__field_is(&h->f[i], "x-forwarded-for") && !et__field_hop(h, &h->f[i]))
            last_xff = i;
        if (et__field_is(&h->f[i], "x-forwarded-proto"))
            has_proto = 1;
    }
    /* The request line as sent. */
    n = line_len(start, end);
    et__leg_write(w, start, n);
    et__leg_write(w, "\r\n", 2);
    if (!h->has_host) {
        /* HTTP/1.0 without Host: the server's name (HTTP/1.1 requires one; the scanner
         * refuses an HTTP/1.1 request without it). */
        int defp = c->p->o.reverse_tls ? 443 : 80;
        if (c->p->rev_port == defp)
            et__leg_printf(w, "Host: %s\r\n", c->p->o.reverse_host);
        else
            et__leg_printf(w, "Host: %s:%d\r\n", c->p->o.reverse_host, c->p->rev_port);
    }
    for (size_t i = 0; i < h->n; i++) {
        const struct et__field *f = &h->f[i];
        if (et__field_hop(h, f))
            continue;
        n = line_len(f->name, end);
        et__leg_write(w, f->name, n);
        if (i == last_xff)
            et__leg_printf(w, f->vlen ? ", %s" : " %s", ip); /* kept, the peer appended */
        et__leg_write(w, "\r\n", 2);
    }
    if (last_xff == h->n)
        et__leg_printf(w, "X-Forwarded-For: %s\r\n", ip);
    if (!has_proto)
        et__leg_printf(w, "X-Forwarded-Proto: %s\r\n", c->cl.tls ? "https" : "http");
    if (h->chunked)
        et__leg_write(w, "Transfer-Encoding: chunked\r\n", 28);
    et__leg_write(w, "\r\n", 2);
}

/* ---------------------------------------------------------------- recording */

void et__rev_rec_init(struct et__conn *c, struct et_exchange *x)
{
    x->reverse = 1;
    if (c->proxied) {
        char a[64];
        et_sockaddr_format((const struct sockaddr *)&c->via, a, sizeof(a));
        x->via_addr = et_arena_strdup(x->arena, a);
    }
    if (c->cl.ssl != NULL) {
        x->tls.present = 1;
        x->tls.intercepted = 1; /* decrypted here: the certificate is the operator's */
        const char *sni = SSL_get_servername(c->cl.ssl, TLSEXT_NAMETYPE_host_name);
        if (sni != NULL && et__host_valid(sni))
            x->tls.sni = et_arena_strdup(x->arena, sni);
        if (c->cl.hs_done)
            x->tls.client_version = et_arena_strdup(x->arena, SSL_get_version(c->cl.ssl));
    }
}
