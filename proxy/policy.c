/*
 * Access policy. The helpers first (CIDR parsing and matching, special-address checks so the
 * proxy is not an open door to loopback or link-local services, host-name validation and
 * globbing; pure, unit-tested), then the decisions the proxy takes with them: which clients
 * may connect (and the connection caps), which targets may be reached, which hosts are
 * intercepted, pinned or not verified. See docs/security.md "Proxy" for the values.
 */
#include "proxy_int.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The 16 bytes to compare and the family, IPv4-mapped IPv6 folded to IPv4. */
static int addr_bytes(const struct sockaddr *sa, uint8_t out[16])
{
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return AF_INET;
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) {
            memcpy(out, a + 12, 4);
            return AF_INET;
        }
        memcpy(out, a, 16);
        return AF_INET6;
    }
    return 0;
}

int et__cidr_parse(const char *s, struct et__cidr *out)
{
    char ip[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    unsigned bits = 0;
    if (n == 0 || n >= sizeof(ip))
        return ET_EINVAL;
    memcpy(ip, s, n);
    ip[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, ip, out->addr) == 1) {
        out->family = AF_INET;
        bits = 32;
    } else if (inet_pton(AF_INET6, ip, out->addr) == 1) {
        out->family = AF_INET6;
        bits = 128;
    } else {
        return ET_EINVAL;
    }
    if (slash != NULL) {
        const char *q = slash + 1;
        unsigned v = 0;
        if (*q == '\0')
            return ET_EINVAL;
        for (; *q; q++) {
            if (*q < '0' || *q > '9' || v > 128)
                return ET_EINVAL;
            v = v * 10 + (unsigned)(*q - '0');
        }
        if (v > bits)
            return ET_EINVAL;
        bits = v;
    }
    out->bits = bits;
    return 0;
}

int et__cidr_match(const struct et__cidr *c, const struct sockaddr *sa)
{
    uint8_t a[16];
    int fam = addr_bytes(sa, a);
    if (fam != c->family)
        return 0;
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->addr, full) != 0)
        return 0;
    if (rest) {
        uint8_t mask = (uint8_t)(0xff << (8 - rest));
        if ((a[full] & mask) != (c->addr[full] & mask))
            return 0;
    }
    return 1;
}

int et__addr_is_special(const struct sockaddr *sa)
{
    uint8_t a[16];
    int fam = addr_bytes(sa, a);
    if (fam == AF_INET) {
        return a[0] == 127 || a[0] == 0 || (a[0] == 169 && a[1] == 254) || a[0] >= 224;
    }
    if (fam == AF_INET6) {
        static const uint8_t zero[16];
        static const uint8_t one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        if (memcmp(a, zero, 16) == 0 || memcmp(a, one, 16) == 0)
            return 1;
        if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) /* fe80::/10 */
            return 1;
        if (a[0] == 0xff) /* multicast */
            return 1;
        return 0;
    }
    return 1;
}

int et__addr_is_private(const struct sockaddr *sa)
{
    uint8_t a[16];
    int fam = addr_bytes(sa, a);
    if (fam == AF_INET)
        return a[0] == 10 ||                                 /* RFC 1918 */
               (a[0] == 172 && (a[1] & 0xf0) == 16) ||       /* RFC 1918 */
               (a[0] == 192 && a[1] == 168) ||               /* RFC 1918 */
               (a[0] == 100 && (a[1] & 0xc0) == 64) ||       /* RFC 6598 shared CGNAT */
               (a[0] == 192 && a[1] == 0 && a[2] == 0);      /* RFC 6890 IETF protocol */
    if (fam == AF_INET6) {
        if ((a[0] & 0xfe) == 0xfc) /* fc00::/7 unique local, RFC 4193 */
            return 1;
        if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) /* fec0::/10 site-local (deprecated) */
            return 1;
        /* 64:ff9b::/96 (NAT64) and ::/96 (IPv4-compatible) embed an IPv4 address: judge it. */
        static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
        static const uint8_t compat[12];
        if (memcmp(a, nat64, 12) == 0 || memcmp(a, compat, 12) == 0) {
            struct sockaddr_in v4 = {.sin_family = AF_INET};
            memcpy(&v4.sin_addr, a + 12, 4);
            return et__addr_is_special((const struct sockaddr *)&v4) ||
                   et__addr_is_private((const struct sockaddr *)&v4);
        }
        return 0;
    }
    return 1;
}

int et__port_allowed(int port)
{
    return port == 80 || port == 443;
}

int et__authority_valid(const char *s, size_t n)
{
    char host[256];
    size_t hl;
    const char *port = NULL;
    if (n == 0)
        return 0;
    if (s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (rb == NULL)
            return 0;
        hl = (size_t)(rb - s - 1);
        if (hl == 0 || hl >= sizeof(host))
            return 0;
        memcpy(host, s + 1, hl);
        host[hl] = '\0';
        unsigned char b[16];
        if (inet_pton(AF_INET6, host, b) != 1)
            return 0;
        if (rb + 1 < s + n) {
            if (rb[1] != ':')
                return 0;
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        hl = colon ? (size_t)(colon - s) : n;
        if (hl == 0 || hl >= sizeof(host))
            return 0;
        memcpy(host, s, hl);
        host[hl] = '\0';
        if (strchr(host, ':') != NULL || !et__host_valid(host))
            return 0;
        if (colon != NULL)
            port = colon + 1;
    }
    if (port != NULL) {
        unsigned v = 0;
        if (port == s + n)
            return 0;
        for (const char *q = port; q < s + n; q++) {
            if (*q < '0' || *q > '9' || v > 65535)
                return 0;
            v = v * 10 + (unsigned)(*q - '0');
        }
        if (v == 0 || v > 65535)
            return 0;
    }
    return 1;
}

int et__addr_same_ip(const struct sockaddr *x, const struct sockaddr *y)
{
    uint8_t a[16], b[16];
    int fa = addr_bytes(x, a), fb = addr_bytes(y, b);
    if (fa == 0 || fa != fb)
        return 0;
    return memcmp(a, b, fa == AF_INET ? 4 : 16) == 0;
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

int et__glob_match(const char *pat, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pat == '*') {
            star = pat++;
            resume = s;
        } else if (*pat == '?' || (*pat && lower((unsigned char)*pat) == lower((unsigned char)*s))) {
            pat++;
            s++;
        } else if (star) {
            pat = star + 1;
            s = ++resume;
        } else {
            return 0;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

int et__host_valid(const char *s)
{
    size_t n = strlen(s);
    unsigned char buf[16];
    if (n == 0 || n > 253)
        return 0;
    if (inet_pton(AF_INET6, s, buf) == 1)
        return 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- the proxy's decisions */

#define MAX_PINNED 4096
#define NOTE_MS 60000          /* a refused client is logged at most once a minute */
#define DEFAULT_PER_CLIENT 64  /* connections per non-loopback client address */

int et__cidr_add(struct et__cidr **v, size_t *n, const struct et__cidr *c)
{
    struct et__cidr *nv = et_realloc(*v, (*n + 1) * sizeof(*nv));
    if (nv == NULL)
        return ET_ENOMEM;
    nv[(*n)++] = *c;
    *v = nv;
    return 0;
}

int et__policy_init(struct et_proxy *p, const struct et_proxy_opts *o, struct et_error *e)
{
    int rc;
    for (size_t i = 0; i < o->n_allow; i++) {
        struct et__cidr c;
        if (et__cidr_parse(o->allow[i], &c) != 0) {
            et_error_set(e, ET_EINVAL, "bad --allow CIDR '%s'", o->allow[i]);
            return ET_EINVAL;
        }
        if ((rc = et__cidr_add(&p->allow_clients, &p->n_allow_clients, &c)) != 0)
            return rc;
    }
    for (size_t i = 0; i < o->n_allow_target; i++) {
        struct et__cidr c;
        if (et__cidr_parse(o->allow_target[i], &c) == 0) {
            if ((rc = et__cidr_add(&p->allow_targets, &p->n_allow_targets, &c)) != 0)
                return rc;
        } else if (!et__host_valid(o->allow_target[i])) {
            et_error_set(e, ET_EINVAL, "bad --allow-target '%s'", o->allow_target[i]);
            return ET_EINVAL;
        }
    }
    return 0;
}

/* Our own addresses (targets refused unless named). Clients are admitted only by --allow:
 * the listening interface's subnet is not admitted by itself (a LAN is no trust boundary). */
void et__policy_load_interfaces(struct et_proxy *p)
{
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0)
        return;
    for (struct ifaddrs *i = ifa; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL ||
            (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
            continue;
        struct sockaddr_storage *no = et_realloc(p->own, (p->n_own + 1) * sizeof(*no));
        if (no == NULL)
            break;
        p->own = no;
        memset(&no[p->n_own], 0, sizeof(*no));
        memcpy(&no[p->n_own], i->ifa_addr,
               i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                 : sizeof(struct sockaddr_in6));
        p->n_own++;
    }
    freeifaddrs(ifa);
}

void et__policy_free(struct et_proxy *p)
{
    for (size_t i = 0; i < p->n_pins; i++)
        et_free(p->pins[i].host);
    et_free(p->pins);
    et_free(p->allow_clients);
    et_free(p->allow_targets);
    et_free(p->own);
    p->pins = NULL;
    p->allow_clients = p->allow_targets = NULL;
    p->own = NULL;
    p->n_pins = p->n_allow_clients = p->n_allow_targets = p->n_own = 0;
}

void et__plog(struct et_proxy *p, const char *fmt, ...)
{
    char line[600];
    va_list ap;
    if (p->o.on_log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    p->o.on_log(line, p->o.log_ud);
}

void et__ip_format(const struct sockaddr *sa, char *out, size_t outlen)
{
    char a[64];
    et_sockaddr_format(sa, a, sizeof(a));
    char *colon = strrchr(a, ':');
    if (colon != NULL)
        *colon = '\0';
    size_t n = strlen(a);
    if (a[0] == '[' && n > 1 && a[n - 1] == ']') {
        a[n - 1] = '\0';
        snprintf(out, outlen, "%s", a + 1);
    } else {
        snprintf(out, outlen, "%s", a);
    }
}

/* ---------------------------------------------------------------- client admission, caps */

static int is_loopback(const struct sockaddr *sa)
{
    struct et__cidr lo4 = {.family = AF_INET, .bits = 8, .addr = {127}};
    struct et__cidr lo6 = {.family = AF_INET6, .bits = 128, .addr = {[15] = 1}};
    return et__cidr_match(&lo4, sa) || et__cidr_match(&lo6, sa);
}

int et__client_allowed(struct et_proxy *p, const struct sockaddr *sa)
{
    if (is_loopback(sa))
        return 1;
    for (size_t i = 0; i < p->n_allow_clients; i++)
        if (et__cidr_match(&p->allow_clients[i], sa))
            return 1;
    return 0;
}

static int known_client(const struct et_proxy *p, const struct sockaddr *sa)
{
    for (size_t i = 0; i < p->n_known; i++)
        if (et__addr_same_ip((const struct sockaddr *)&p->known[i], sa))
            return 1;
    return 0;
}

void et__remember_client(struct et_proxy *p, const struct sockaddr *sa)
{
    if (known_client(p, sa))
        return;
    memcpy(&p->known[p->known_next], sa, sizeof(p->known[0]));
    p->known_next = (p->known_next + 1) % ET__MAX_KNOWN;
    if (p->n_known < ET__MAX_KNOWN)
        p->n_known++;
}

/* Idle: nothing in progress and nothing unread (a keep-alive wait, a silent new
 * connection, a CONNECT whose TLS handshake has not begun). Such a connection can be shed. */
static int conn_idle(const struct et__conn *c)
{
    if (c->cl.closing)
        return 0;
    if (et__mode_http(c->mode) && c->rq == ET__RQ_HEAD &&
        c->rs == ET__RS_NONE && c->x == NULL && (c->cl.in == NULL || c->cl.in->len == 0))
        return 1;
    return (c->mode == ET__M_TLS_HS || c->mode == ET__M_REV_TLS || c->mode == ET__M_PROXYHDR) &&
           c->quiet;
}

/* The oldest idle connection other than self: of the client `ip` when given; with
 * unknown_only, only of clients that never completed an exchange. */
static struct et__conn *oldest_idle(struct et_proxy *p, const struct et__conn *self,
                                    const struct sockaddr *ip, int unknown_only)
{
    struct et__conn *best = NULL;
    for (struct et__conn *c = p->conns; c != NULL; c = c->next) /* newest first */
        if (c != self && conn_idle(c) &&
            (ip == NULL || et__addr_same_ip((const struct sockaddr *)&c->peer, ip)) &&
            (!unknown_only || !known_client(p, (const struct sockaddr *)&c->peer)))
            best = c;
    return best;
}

int et__caps_admit(struct et_proxy *p, struct et__conn *c)
{
    const struct sockaddr *ip = (const struct sockaddr *)&c->peer;
    size_t per = p->o.max_conns_per_client;
    if (per == 0 && !is_loopback(ip))
        per = DEFAULT_PER_CLIENT;
    if (c->mode == ET__M_PROXYHDR)
        per = 0; /* the peer is a load balancer: counted per client once its header names it */
    if (per > 0) {
        size_t n = 0;
        for (struct et__conn *o = p->conns; o != NULL; o = o->next)
            if (o != c && !o->cl.closing && et__addr_same_ip((const struct sockaddr *)&o->peer, ip))
                n++;
        if (n >= per) {
            struct et__conn *v = oldest_idle(p, c, ip, 0);
            if (v == NULL)
                return 0;
            p->st.shed++;
            et__conn_close(v);
        }
    }
    if (p->st.active > p->max_conns) {
        /* An unknown client's idle connection first; a known phone may also shed another
         * known client's, a stranger may not. */
        struct et__conn *v = oldest_idle(p, c, NULL, 1);
        if (v == NULL && known_client(p, ip))
            v = oldest_idle(p, c, NULL, 0);
        if (v == NULL)
            return 0;
        p->st.shed++;
        et__conn_close(v);
    }
    return 1;
}

void et__note_refused(struct et_proxy *p, const struct sockaddr *sa, const char *fmt, ...)
{
    uint64_t now = uv_now(&p->loop);
    for (size_t i = 0; i < ET__MAX_NOTED; i++)
        if (p->noted[i].at != 0 &&
            et__addr_same_ip((const struct sockaddr *)&p->noted[i].a, sa) &&
            now - p->noted[i].at < NOTE_MS)
            return;
    struct et__note *n = &p->noted[p->noted_next++ % ET__MAX_NOTED];
    memcpy(&n->a, sa, sizeof(n->a));
    n->at = now ? now : 1;
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    et__plog(p, "%s (counted; logged once a minute per client)", line);
}

/* ---------------------------------------------------------------- targets */

int et__target_named(struct et_proxy *p, const char *host)
{
    for (size_t i = 0; i < p->o.n_allow_target; i++)
        if (et_strcaseeq(p->o.allow_target[i], host))
            return 1;
    for (size_t i = 0; i < p->o.n_intercept; i++)
        if (et__glob_match(p->o.intercept[i], host))
            return 1;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(host, 0, (struct sockaddr_in *)(void *)&ss) == 0 ||
        uv_ip6_addr(host, 0, (struct sockaddr_in6 *)(void *)&ss) == 0)
        for (size_t i = 0; i < p->n_allow_targets; i++)
            if (et__cidr_match(&p->allow_targets[i], (const struct sockaddr *)&ss))
                return 1;
    return 0;
}

const char *et__target_refusal(struct et_proxy *p, const struct sockaddr *sa)
{
    for (size_t i = 0; i < p->n_allow_targets; i++)
        if (et__cidr_match(&p->allow_targets[i], sa))
            return NULL;
    if (et__addr_is_special(sa))
        return "a loopback, link-local, unspecified or multicast address";
    if (et__addr_is_private(sa))
        return "a private-range address";
    for (size_t i = 0; i < p->n_own; i++)
        if (et__addr_same_ip((const struct sockaddr *)&p->own[i], sa))
            return "this machine's own address";
    return NULL;
}

void et__deny_target(struct et__conn *c, const char *method, const char *host, int port,
                     const char *addr, const char *why)
{
    c->p->st.denied++;
    et__plog(c->p, "refused %s %s:%d%s%s%s from %s: %s (--allow-target or --intercept names a "
             "target to allow)", method, host, port, addr ? " (" : "", addr ? addr : "",
             addr ? ")" : "", c->client_addr, why);
    et__conn_fail(c, ET_EDENIED, ET_STAGE_REQUEST, 403, "target %s:%d%s%s%s refused: %s", host,
                  port, addr ? " (" : "", addr ? addr : "", addr ? ")" : "", why);
}

/* ---------------------------------------------------------------- interception, pins */

static void pin_drop(struct et_proxy *p, size_t i)
{
    et_free(p->pins[i].host);
    p->pins[i] = p->pins[--p->n_pins];
}

/* 1 when host is pinned for c's client; expired pins go (with a notice). */
static int is_pinned(struct et_proxy *p, const struct et__conn *c, const char *host)
{
    uint64_t now = uv_now(&p->loop);
    int hit = 0;
    for (size_t i = 0; i < p->n_pins;) {
        struct et__pin *pn = &p->pins[i];
        if (pn->until <= now) {
            char ip[64];
            et__ip_format((const struct sockaddr *)&pn->client, ip, sizeof(ip));
            et__plog(p, "pin of %s for client %s expired: intercepting %s again", pn->host, ip,
                     pn->host);
            pin_drop(p, i);
            continue;
        }
        if (et_strcaseeq(pn->host, host) &&
            et__addr_same_ip((const struct sockaddr *)&pn->client,
                             (const struct sockaddr *)&c->peer))
            hit = 1;
        i++;
    }
    return hit;
}

int et__should_intercept(struct et_proxy *p, const struct et__conn *c, const char *host)
{
    if (p->o.certs == NULL || p->sctx == NULL)
        return 0;
    if (is_pinned(p, c, host))
        return 0;
    if (p->o.n_intercept == 0)
        return 1;
    for (size_t i = 0; i < p->o.n_intercept; i++)
        if (et__glob_match(p->o.intercept[i], host))
            return 1;
    return 0;
}

int et__host_insecure(struct et_proxy *p, const char *host)
{
    for (size_t i = 0; i < p->o.n_insecure_upstream; i++)
        if (et_strcaseeq(p->o.insecure_upstream[i], host) ||
            et__glob_match(p->o.insecure_upstream[i], host))
            return 1;
    return 0;
}

void et__policy_pin(struct et_proxy *p, const struct et__conn *c, const char *host)
{
    uint64_t ms = p->o.pin_ms;
    if (ms <= 1)
        return; /* --pin-time 0: never pinned */
    if (p->o.timeout_hook != NULL)
        ms = p->o.timeout_hook(ET_PROXY_T_PIN, ms, p->o.timeout_ud);
    uint64_t until = uv_now(&p->loop) + (ms ? ms : 1);
    for (size_t i = 0; i < p->n_pins; i++)
        if (et_strcaseeq(p->pins[i].host, host) &&
            et__addr_same_ip((const struct sockaddr *)&p->pins[i].client,
                             (const struct sockaddr *)&c->peer)) {
            p->pins[i].until = until;
            return;
        }
    if (p->n_pins >= MAX_PINNED)
        return;
    struct et__pin *n = et_realloc(p->pins, (p->n_pins + 1) * sizeof(*n));
    if (n == NULL)
        return;
    p->pins = n;
    if ((n[p->n_pins].host = et_strdup(host)) == NULL)
        return;
    memcpy(&n[p->n_pins].client, &c->peer, sizeof(c->peer));
    n[p->n_pins].until = until;
    p->n_pins++;
}

size_t et__policy_unpin_client(struct et_proxy *p, const struct et__conn *c)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_pins;) {
        if (et__addr_same_ip((const struct sockaddr *)&p->pins[i].client,
                             (const struct sockaddr *)&c->peer)) {
            pin_drop(p, i);
            n++;
        } else {
            i++;
        }
    }
    return n;
}

void et__pin_time_text(const struct et_proxy *p, char *out, size_t outlen)
{
    uint64_t ms = p->o.pin_ms;
    if (ms <= 1)
        snprintf(out, outlen, "0 s (--pin-time 0: not pinned)");
    else if (ms >= 60000 && ms % 60000 == 0)
        snprintf(out, outlen, "%llu min", (unsigned long long)(ms / 60000));
    else
        snprintf(out, outlen, "%llu s", (unsigned long long)((ms + 999) / 1000));
}
