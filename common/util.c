/* Base64, UTF-8 validation, ASCII case folding and time formatting. */
#include "eastrace/common.h"
#include "plainrun.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t et_base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

int et_base64_encode(struct et_buf *out, const uint8_t *p, size_t n)
{
    size_t i;
    int rc = et_buf_reserve(out, et_base64_encoded_len(n));
    uint8_t *o;

    if (rc != 0)
        return rc;
    o = out->data + out->len;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = (uint8_t)b64[v >> 18];
        *o++ = (uint8_t)b64[(v >> 12) & 63];
        *o++ = (uint8_t)b64[(v >> 6) & 63];
        *o++ = (uint8_t)b64[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = (uint8_t)b64[v >> 18];
        *o++ = (uint8_t)b64[(v >> 12) & 63];
        *o++ = (uint8_t)(i + 1 < n ? b64[(v >> 6) & 63] : '=');
        *o++ = '=';
    }
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
    return 0;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int et_base64_decode(struct et_buf *out, const char *s, size_t n, struct et_error *e)
{
    uint32_t acc = 0;
    int bits = 0, rc;
    size_t i, pad = 0;

    if ((rc = et_buf_reserve(out, n / 4 * 3 + 3)) != 0)
        return rc;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int v;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        v = b64_value(c);
        if (v < 0 || pad) {
            et_error_set_at(e, ET_EPARSE, i, "invalid base64 character 0x%02X", c);
            return ET_EPARSE;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out->data[out->len++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits >= 6) {
        et_error_set_at(e, ET_EPARSE, n, "base64 text ends in the middle of a byte");
        return ET_EPARSE;
    }
    out->data[out->len] = '\0';
    return 0;
}

int et_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t need;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= need)
            return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += need + 1;
    }
    return 1;
}

/*
 * Length of the valid UTF-8 sequence at p[0..n) (2..4), 0 when invalid, or -k when p holds a
 * valid but incomplete prefix of k bytes that runs to the end.
 */
static long utf8_seq(const uint8_t *p, size_t n, uint32_t *cpout)
{
    uint8_t c = p[0];
    size_t need;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t k = 1; k <= need; k++) {
        if (k >= n)
            return -(long)k;
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[k] & 0x3F);
        /* Overlongs and surrogates are known after the second byte: fail early. */
        if (k == 1 && ((need == 2 && c == 0xE0 && p[1] < 0xA0) ||
                       (need == 2 && c == 0xED && p[1] >= 0xA0) ||
                       (need == 3 && c == 0xF0 && p[1] < 0x90) ||
                       (need == 3 && c == 0xF4 && p[1] >= 0x90)))
            return 0;
    }
    *cpout = cp;
    return (long)need + 1;
}

/* Length of a colour sequence ESC [ [0-9;]{0,32} m at p, 0 when not one, -k when cut short. */
static long sgr_seq(const uint8_t *p, size_t n)
{
    size_t i;
    if (n < 2)
        return -(long)n;
    if (p[1] != '[')
        return 0;
    for (i = 2; i < n && i < 36; i++) {
        if (p[i] == 'm')
            return (long)i + 1;
        if (!((p[i] >= '0' && p[i] <= '9') || p[i] == ';'))
            return 0;
    }
    return i < 36 ? -(long)i : 0;
}

size_t et_scrub(uint8_t *p, size_t n, unsigned flags, size_t *keep)
{
    size_t i = 0, bad = 0, next = 0;
    if (keep != NULL)
        *keep = 0;
    while (i < n) {
        if (i >= next) { /* skip printable ASCII blocks; after one that is not, 16 bytes one by one */
            i += et__plain_run((const char *)p + i, n - i, "", 0, 0);
            if (i >= n)
                break;
            next = i + 16;
        }
        uint8_t c = p[i];
        long l;
        uint32_t cp = 0;
        if (c >= 0x20 && c < 0x7F) {
            i++;
            continue;
        }
        if (c < 0x80) {
            if ((flags & ET_SCRUB_LINES) && (c == '\n' || c == '\t')) {
                i++;
                continue;
            }
            if ((flags & ET_SCRUB_LINES) && c == '\r') {
                if (i + 1 < n && p[i + 1] == '\n') {
                    i += 2;
                    continue;
                }
                if (i + 1 == n && keep != NULL) {
                    *keep = 1;
                    return bad;
                }
            }
            if ((flags & ET_SCRUB_SGR) && c == 0x1B) {
                l = sgr_seq(p + i, n - i);
                if (l > 0) {
                    i += (size_t)l;
                    continue;
                }
                if (l < 0 && keep != NULL) {
                    *keep = (size_t)-l;
                    return bad;
                }
            }
            p[i++] = '?';
            bad++;
            continue;
        }
        l = utf8_seq(p + i, n - i, &cp);
        if (l < 0 && keep != NULL) {
            *keep = (size_t)-l;
            return bad;
        }
        if (l > 0 && cp > 0x9F) {
            i += (size_t)l;
            continue;
        }
        /* Invalid, cut short, or a C1 control: every byte of it becomes '?'. */
        if (l <= 0)
            l = 1;
        for (long k = 0; k < l; k++)
            p[i++] = '?';
        bad += (size_t)l;
    }
    return bad;
}

char *et_str_printable(char *s)
{
    et_scrub((uint8_t *)s, strlen(s), 0, NULL);
    return s;
}

int et_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

int et_strcaseeq(const char *a, const char *b)
{
    while (*a && *b) {
        if (lower((unsigned char)*a) != lower((unsigned char)*b))
            return 0;
        a++;
        b++;
    }
    return *a == *b;
}

int et_strncaseeq(const char *a, const char *b, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
        if (a[i] == '\0')
            return 1;
    }
    return 1;
}

int64_t et_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *et_time_iso8601(int64_t us, char *out, size_t outlen)
{
    struct tm tm;
    time_t secs;
    if (us <= 0) {
        snprintf(out, outlen, "-");
        return out;
    }
    secs = (time_t)(us / 1000000);
    gmtime_r(&secs, &tm);
    if (outlen >= 25 && tm.tm_year + 1900 >= 0 && tm.tm_year + 1900 <= 9999) {
        /* The usual case without printf (reports format one per row). */
        char *o = out;
        unsigned ms = (unsigned)((us % 1000000) / 1000), y = (unsigned)(tm.tm_year + 1900);
        const unsigned f[6] = {(unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday, (unsigned)tm.tm_hour,
                               (unsigned)tm.tm_min, (unsigned)tm.tm_sec, 0};
        static const char sep[6] = "-T::.";
        *o++ = (char)('0' + y / 1000);
        *o++ = (char)('0' + y / 100 % 10);
        *o++ = (char)('0' + y / 10 % 10);
        *o++ = (char)('0' + y % 10);
        *o++ = '-';
        for (int k = 0; k < 5; k++) {
            *o++ = (char)('0' + f[k] / 10 % 10);
            *o++ = (char)('0' + f[k] % 10);
            *o++ = sep[k];
        }
        *o++ = (char)('0' + ms / 100);
        *o++ = (char)('0' + ms / 10 % 10);
        *o++ = (char)('0' + ms % 10);
        *o++ = 'Z';
        *o = '\0';
        return out;
    }
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)((us % 1000000) / 1000));
    return out;
}

/* Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int et_time_parse_iso8601(const char *s, int64_t *us)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_us = 0, off = 0;
    const char *p = s;

    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d))
        return ET_EPARSE;
    if (mo < 1 || mo > 12 || d < 1 || d > 31)
        return ET_EPARSE;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
            return ET_EPARSE;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec))
                return ET_EPARSE;
            if (*p == '.' || *p == ',') {
                int scale = 100000;
                p++;
                if (*p < '0' || *p > '9')
                    return ET_EPARSE;
                while (*p >= '0' && *p <= '9') {
                    frac_us += (*p - '0') * scale;
                    scale /= 10;
                    p++;
                }
            }
        }
        if (h > 23 || mi > 59 || sec > 60)
            return ET_EPARSE;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om = 0;
        p++;
        if (digits(&p, 2, &oh))
            return ET_EPARSE;
        if (*p == ':')
            p++;
        if (*p >= '0' && *p <= '9' && digits(&p, 2, &om))
            return ET_EPARSE;
        off = sign * (oh * 60 + om);
    }
    if (*p != '\0')
        return ET_EPARSE;
    *us = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec -
            (int64_t)off * 60) *
           1000000) +
          frac_us;
    return 0;
}

void et_sockaddr_format(const struct sockaddr *sa, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN] = "?";
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

size_t et_fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

size_t et_fmt_i64(char *out, int64_t v)
{
    if (v >= 0)
        return et_fmt_u64(out, (uint64_t)v);
    out[0] = '-';
    return 1 + et_fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
}
