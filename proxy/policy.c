/*
 * Access policy. The helpers first (CIDR parsing and matching, special-address checks so the
 * proxy is not an open door to loopback or link-local services, host-name validation and
 * globbing; pure, unit-tested), then the decisions the proxy takes with them: which clients
 * may connect, which resolved targets may be reached, which hosts are intercepted, pinned or
 * not verified.
 */
#include "proxy_int.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
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

void et__addr_format(const struct sockaddr *sa, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        snprintf(out, outlen, "%s:%u", ip, ntohs(a->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        snprintf(out, outlen, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        snprintf(out, outlen, "?");
    }
}

/* ---------------------------------------------------------------- the proxy's decisions */

#define MAX_PINNED 4096

static int is_pinned(struct et_proxy *p, const char *host);

static int add_cidr(struct et__cidr **v, size_t *n, const struct et__cidr *c)
{
    struct et__cidr *nv = et_realloc(*v, (*n + 1) * sizeof(*nv));
    if (nv == NULL)
        return ET_ENOMEM;
    nv[(*n)++] = *c;
    *v = nv;
    return 0;
}

/* Prefix length of a netmask. */
static unsigned mask_bits(const struct sockaddr *m)
{
    const uint8_t *b;
    size_t n;
    if (m->sa_family == AF_INET) {
        b = (const uint8_t *)&((const struct sockaddr_in *)(const void *)m)->sin_addr;
        n = 4;
    } else {
        b = ((const struct sockaddr_in6 *)(const void *)m)->sin6_addr.s6_addr;
        n = 16;
    }
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++)
        for (int k = 7; k >= 0; k--)
            if (b[i] & (1u << k))
                bits++;
    return bits;
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
        if ((rc = add_cidr(&p->allow_clients, &p->n_allow_clients, &c)) != 0)
            return rc;
    }
    for (size_t i = 0; i < o->n_allow_target; i++) {
        struct et__cidr c;
        if (et__cidr_parse(o->allow_target[i], &c) == 0) {
            if ((rc = add_cidr(&p->allow_targets, &p->n_allow_targets, &c)) != 0)
                return rc;
        } else if (!et__host_valid(o->allow_target[i])) {
            et_error_set(e, ET_EINVAL, "bad --allow-target '%s'", o->allow_target[i]);
            return ET_EINVAL;
        }
    }
    return 0;
}

/* Our own addresses, and the subnets of the listening interface as allowed clients. */
void et__policy_load_interfaces(struct et_proxy *p, const struct sockaddr *listen_sa)
{
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0)
        return;
    int unspec = et__addr_is_special(listen_sa) &&
                 !(listen_sa->sa_family == AF_INET &&
                   ((const uint8_t *)&((const struct sockaddr_in *)(const void *)listen_sa)
                        ->sin_addr)[0] == 127);
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
        if (i->ifa_netmask == NULL)
            continue;
        if (unspec || et__addr_same_ip(i->ifa_addr, listen_sa)) {
            struct et__cidr c;
            memset(&c, 0, sizeof(c));
            c.family = i->ifa_addr->sa_family;
            if (c.family == AF_INET)
                memcpy(c.addr, &((const struct sockaddr_in *)(const void *)i->ifa_addr)->sin_addr, 4);
            else
                memcpy(c.addr,
                       ((const struct sockaddr_in6 *)(const void *)i->ifa_addr)->sin6_addr.s6_addr,
                       16);
            c.bits = mask_bits(i->ifa_netmask);
            add_cidr(&p->allow_clients, &p->n_allow_clients, &c);
        }
    }
    freeifaddrs(ifa);
}

void et__policy_free(struct et_proxy *p)
{
    for (size_t i = 0; i < p->n_pinned; i++)
        et_free(p->pinned[i]);
    et_free(p->pinned);
    et_free(p->allow_clients);
    et_free(p->allow_targets);
    et_free(p->own);
    p->pinned = NULL;
    p->allow_clients = p->allow_targets = NULL;
    p->own = NULL;
    p->n_pinned = p->n_allow_clients = p->n_allow_targets = p->n_own = 0;
}

int et__client_allowed(struct et_proxy *p, const struct sockaddr *sa)
{
    uint8_t lb4[4] = {127, 0, 0, 0};
    struct et__cidr lo4 = {.family = AF_INET, .bits = 8};
    struct et__cidr lo6 = {.family = AF_INET6, .bits = 128};
    memcpy(lo4.addr, lb4, 4);
    lo6.addr[15] = 1;
    if (et__cidr_match(&lo4, sa) || et__cidr_match(&lo6, sa))
        return 1;
    for (size_t i = 0; i < p->n_allow_clients; i++)
        if (et__cidr_match(&p->allow_clients[i], sa))
            return 1;
    return 0;
}

int et__target_allowed(struct et_proxy *p, const char *host, const struct sockaddr *sa)
{
    int special = et__addr_is_special(sa);
    for (size_t i = 0; !special && i < p->n_own; i++)
        if (et__addr_same_ip((const struct sockaddr *)&p->own[i], sa))
            special = 1;
    if (!special)
        return 1;
    for (size_t i = 0; i < p->o.n_allow_target; i++)
        if (et_strcaseeq(p->o.allow_target[i], host))
            return 1;
    for (size_t i = 0; i < p->n_allow_targets; i++)
        if (et__cidr_match(&p->allow_targets[i], sa))
            return 1;
    return 0;
}

int et__should_intercept(struct et_proxy *p, const char *host)
{
    if (p->o.certs == NULL || p->sctx == NULL)
        return 0;
    if (is_pinned(p, host))
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

int et__host_insecure_exact(struct et_proxy *p, const char *host)
{
    for (size_t i = 0; i < p->o.n_insecure_upstream; i++)
        if (et_strcaseeq(p->o.insecure_upstream[i], host))
            return 1;
    return 0;
}

static int is_pinned(struct et_proxy *p, const char *host)
{
    for (size_t i = 0; i < p->n_pinned; i++)
        if (et_strcaseeq(p->pinned[i], host))
            return 1;
    return 0;
}

void et__policy_pin(struct et_proxy *p, const char *host)
{
    if (is_pinned(p, host) || p->n_pinned >= MAX_PINNED)
        return;
    char **n = et_realloc(p->pinned, (p->n_pinned + 1) * sizeof(*n));
    if (n == NULL)
        return;
    p->pinned = n;
    if ((n[p->n_pinned] = et_strdup(host)) != NULL)
        p->n_pinned++;
}
