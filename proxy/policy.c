/*
 * Access policy helpers: CIDR parsing and matching, special-address checks (so the proxy is
 * not an open door to loopback or link-local services), host-name validation and globbing.
 */
#include "proxy_int.h"

#include <arpa/inet.h>
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
