/*
 * The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that a load
 * balancer puts in front of a relayed TCP connection to name the client. Pure: bytes in,
 * addresses out; the reverse proxy (reverse.c) reads it only from --trusted-proxy peers and
 * only with --accept-proxy-protocol. Strict: anything that is not exactly the format is an
 * error, and the connection is closed (the spec: "any sequence which does not exactly match
 * the protocol must be discarded and cause the receiver to abort the connection").
 *
 *   v1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" (at most 107 bytes), "PROXY UNKNOWN...\r\n"
 *   v2: 12-byte signature, ver_cmd (0x20 LOCAL, 0x21 PROXY), fam (0x11 TCP4, 0x21 TCP6; the
 *       other valid pairs fall back to the connection's own addresses), u16 length, addresses
 *       and TLVs (skipped); at most ET__PP_MAX bytes in all.
 */
#include "proxy_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v2sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                  0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

#define V1_MAX 107 /* the longest v1 line, CRLF included */

/* A decimal 0..max without leading zeros, exactly the n bytes at s. -1 when not. */
static long dec_strict(const char *s, size_t n, long max)
{
    long v = 0;
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

/* A canonical dotted-quad: four 0..255 without leading zeros. */
static int ipv4_strict(const char *s, size_t n, struct in_addr *out)
{
    char buf[16];
    size_t k = 0, parts = 0;
    if (n == 0 || n >= sizeof(buf))
        return -1;
    while (k <= n) {
        size_t st = k;
        while (k < n && s[k] != '.')
            k++;
        if (dec_strict(s + st, k - st, 255) < 0)
            return -1;
        parts++;
        k++;
    }
    if (parts != 4)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return inet_pton(AF_INET, buf, out) == 1 ? 0 : -1;
}

static int ipv6_parse(const char *s, size_t n, struct in6_addr *out)
{
    char buf[48];
    if (n == 0 || n >= sizeof(buf))
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
              c == ':'))
            return -1; /* no embedded IPv4, no zone: the canonical hex form only */
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
}

static void set4(struct sockaddr_storage *ss, const void *a, uint16_t port_be)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)ss;
    memset(ss, 0, sizeof(*ss));
    s4->sin_family = AF_INET;
    memcpy(&s4->sin_addr, a, 4);
    s4->sin_port = port_be;
}

static void set6(struct sockaddr_storage *ss, const void *a, uint16_t port_be)
{
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)ss;
    memset(ss, 0, sizeof(*ss));
    s6->sin6_family = AF_INET6;
    memcpy(&s6->sin6_addr, a, 16);
    s6->sin6_port = port_be;
}

static int fail(struct et_error *e, size_t off, const char *why)
{
    et_error_set_at(e, ET_EPARSE, off, "PROXY header: %s", why);
    return ET_EPARSE;
}

/* Version 1: p[0..n) starts with "PROXY ". */
static int parse_v1(const uint8_t *p, size_t n, struct et__pp *out, struct et_error *e)
{
    const char *s = (const char *)p;
    size_t lim = n < V1_MAX ? n : V1_MAX, end = 0;
    int found = 0;
    for (size_t i = 0; i < lim; i++) {
        if (s[i] == '\n')
            return fail(e, i, "a bare LF in the v1 line");
        if (s[i] == '\r') {
            if (i + 1 >= n)
                return ET_EAGAIN;
            if (s[i + 1] != '\n')
                return fail(e, i, "a bare CR in the v1 line");
            end = i;
            found = 1;
            break;
        }
        if (s[i] < 0x20 || s[i] > 0x7e)
            return fail(e, i, "a control or non-ASCII byte in the v1 line");
    }
    if (!found)
        return n < V1_MAX ? ET_EAGAIN : fail(e, V1_MAX, "v1 line longer than 107 bytes");
    out->version = 1;
    out->len = end + 2;
    /* The words of "PROXY PROTO SRC DST SPORT DPORT", exactly one space apart. */
    const char *w[7];
    size_t wl[7], nw = 0, k = 0;
    while (k <= end && nw < 7) {
        size_t st = k;
        while (k < end && s[k] != ' ')
            k++;
        w[nw] = s + st;
        wl[nw] = k - st;
        nw++;
        k++;
    }
    if (nw >= 2 && wl[1] == 7 && memcmp(w[1], "UNKNOWN", 7) == 0) {
        out->local = 1; /* the rest of the line is ignored (spec) */
        return 0;
    }
    if (nw < 2 || k <= end)
        return fail(e, 0, nw < 2 ? "v1 line without a protocol" : "v1 line with extra fields");
    int v6 = wl[1] == 4 && memcmp(w[1], "TCP6", 4) == 0;
    if (!v6 && !(wl[1] == 4 && memcmp(w[1], "TCP4", 4) == 0))
        return fail(e, 6, "v1 protocol is not TCP4, TCP6 or UNKNOWN");
    if (nw != 6)
        return fail(e, 0, "v1 line needs source, destination and both ports");
    for (size_t i = 1; i < nw; i++)
        if (wl[i] == 0)
            return fail(e, (size_t)(w[i] - s), "v1 fields must be one space apart");
    long sp = dec_strict(w[4], wl[4], 65535), dp = dec_strict(w[5], wl[5], 65535);
    if (sp < 0 || dp < 0)
        return fail(e, (size_t)(w[sp < 0 ? 4 : 5] - s),
                    "v1 port is not a decimal 0..65535 without leading zeros");
    if (!v6) {
        struct in_addr a, b;
        if (ipv4_strict(w[2], wl[2], &a) != 0 || ipv4_strict(w[3], wl[3], &b) != 0)
            return fail(e, 11, "v1 TCP4 address is not a canonical dotted quad");
        set4(&out->src, &a, htons((uint16_t)sp));
        set4(&out->dst, &b, htons((uint16_t)dp));
    } else {
        struct in6_addr a, b;
        if (ipv6_parse(w[2], wl[2], &a) != 0 || ipv6_parse(w[3], wl[3], &b) != 0)
            return fail(e, 11, "v1 TCP6 address is not an IPv6 address");
        set6(&out->src, &a, htons((uint16_t)sp));
        set6(&out->dst, &b, htons((uint16_t)dp));
    }
    return 0;
}

/* Version 2: p[0..n) starts with the 12-byte signature (n >= 16). */
static int parse_v2(const uint8_t *p, size_t n, struct et__pp *out, struct et_error *e)
{
    uint8_t ver = p[12] >> 4, cmd = p[12] & 0x0f, fam = p[13] >> 4, proto = p[13] & 0x0f;
    size_t alen = ((size_t)p[14] << 8) | p[15];
    if (ver != 2)
        return fail(e, 12, "v2 version is not 2");
    if (cmd > 1)
        return fail(e, 12, "v2 command is neither LOCAL nor PROXY");
    if (fam > 3 || proto > 2)
        return fail(e, 13, "v2 address family or transport is not defined");
    if (16 + alen > ET__PP_MAX)
        return fail(e, 14, "v2 header longer than 4096 bytes");
    if (n < 16 + alen)
        return ET_EAGAIN;
    out->version = 2;
    out->len = 16 + alen;
    if (cmd == 0) {
        out->local = 1; /* a health check: the connection's own endpoints (addresses ignored) */
        return 0;
    }
    const uint8_t *a = p + 16;
    if ((fam == 1 || fam == 2) && proto == 1) {
        /* TCP: source and destination addresses (4 or 16 bytes each), then both ports. */
        size_t al = fam == 1 ? 4 : 16;
        uint16_t sp, dp;
        if (alen < 2 * al + 4)
            return fail(e, 14, fam == 1 ? "v2 TCP4 address block shorter than 12 bytes"
                                        : "v2 TCP6 address block shorter than 36 bytes");
        memcpy(&sp, a + 2 * al, 2);
        memcpy(&dp, a + 2 * al + 2, 2);
        (fam == 1 ? set4 : set6)(&out->src, a, sp);
        (fam == 1 ? set4 : set6)(&out->dst, a + al, dp);
        return 0;
    }
    /* UNSPEC, UDP, UNIX: valid but not a TCP client address; the spec lets a receiver fall
     * back to the connection's own endpoints. */
    out->local = 1;
    return 0;
}

int et__pp_parse(const uint8_t *p, size_t n, struct et__pp *out, struct et_error *e)
{
    memset(out, 0, sizeof(*out));
    /* Decide as soon as the first bytes cannot be either signature. */
    size_t k1 = n < 6 ? n : 6, k2 = n < 12 ? n : 12;
    int maybe1 = memcmp(p, "PROXY ", k1) == 0, maybe2 = memcmp(p, v2sig, k2) == 0;
    if (!maybe1 && !maybe2)
        return fail(e, 0, "the connection does not begin with a PROXY protocol header");
    if (maybe1 && n >= 6)
        return parse_v1(p, n, out, e);
    if (maybe2 && n >= 16)
        return parse_v2(p, n, out, e);
    return ET_EAGAIN;
}
