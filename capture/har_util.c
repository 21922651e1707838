/* URL splitting, HTTP versions and the redaction rules shared by the .saz and HAR code. */
#include "har_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "eastrace/eas.h"

static int default_port(const char *scheme)
{
    if (scheme == NULL)
        return 0;
    if (et_strcaseeq(scheme, "https") || et_strcaseeq(scheme, "wss"))
        return 443;
    if (et_strcaseeq(scheme, "http") || et_strcaseeq(scheme, "ws"))
        return 80;
    return 0;
}

/* Parses a decimal port of 1..65535 from s[0..n); -1 when it is not one. */
static int parse_port(const char *s, size_t n)
{
    int v = 0;
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v >= 1 && v <= 65535 ? v : -1;
}

/* Splits an authority "[user@]host[:port]" of n bytes. */
static int split_authority(struct et_arena *a, const char *s, size_t n, const char **host,
                           int *port)
{
    const char *at = memchr(s, '@', n), *h, *colon = NULL;
    size_t hl;
    if (at != NULL) {
        n -= (size_t)(at + 1 - s);
        s = at + 1;
    }
    if (n > 0 && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (rb == NULL)
            return ET_EPARSE;
        h = s + 1;
        hl = (size_t)(rb - h);
        if ((size_t)(rb + 1 - s) < n) {
            if (rb[1] != ':')
                return ET_EPARSE;
            colon = rb + 1;
        }
    } else {
        h = s;
        colon = memchr(s, ':', n);
        hl = colon != NULL ? (size_t)(colon - s) : n;
    }
    if (colon != NULL) {
        int p = parse_port(colon + 1, n - (size_t)(colon + 1 - s));
        if (p < 0)
            return ET_EPARSE;
        *port = p;
    }
    if (hl == 0)
        return ET_EPARSE;
    if ((*host = et_arena_strndup(a, h, hl)) == NULL)
        return ET_ENOMEM;
    return 0;
}

int et__url_split(struct et_arena *a, const char *url, size_t len, const char **scheme,
                  const char **host, int *port, const char **target)
{
    const char *sep = NULL, *auth, *path, *end = url + len;
    int rc;

    *scheme = NULL;
    *host = NULL;
    *port = 0;
    *target = NULL;
    for (size_t i = 0; i + 2 < len; i++) {
        char c = url[i];
        if (c == ':' && url[i + 1] == '/' && url[i + 2] == '/') {
            sep = url + i;
            break;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '-' || c == '.'))
            break;
    }
    if (sep == NULL || sep == url) {
        /* A bare authority, as in "CONNECT host:443". */
        if (len == 0 || memchr(url, '/', len) != NULL)
            return ET_EPARSE;
        if ((rc = split_authority(a, url, len, host, port)) != 0)
            return rc;
        *target = et_arena_strndup(a, url, len);
        return *target == NULL ? ET_ENOMEM : 0;
    }
    if ((*scheme = et_arena_strndup(a, url, (size_t)(sep - url))) == NULL)
        return ET_ENOMEM;
    auth = sep + 3;
    path = auth;
    while (path < end && *path != '/' && *path != '?' && *path != '#')
        path++;
    if ((rc = split_authority(a, auth, (size_t)(path - auth), host, port)) != 0)
        return rc;
    if (*port == 0)
        *port = default_port(*scheme);
    /* The fragment never goes on the wire. */
    const char *frag = memchr(path, '#', (size_t)(end - path));
    if (frag != NULL)
        end = frag;
    if (path == end || *path != '/')
        *target = et_arena_printf(a, "/%.*s", (int)(end - path), path);
    else
        *target = et_arena_strndup(a, path, (size_t)(end - path));
    return *target == NULL ? ET_ENOMEM : 0;
}

int et__http_version(const char *s, uint8_t *major, uint8_t *minor)
{
    *major = 1;
    *minor = 1;
    if (s == NULL)
        return -1;
    if (et_strcaseeq(s, "h2") || et_strcaseeq(s, "http/2") || et_strcaseeq(s, "http/2.0")) {
        *major = 2;
        *minor = 0;
        return 0;
    }
    if (et_strcaseeq(s, "h3") || et_strcaseeq(s, "http/3") || et_strcaseeq(s, "http/3.0")) {
        *major = 3;
        *minor = 0;
        return 0;
    }
    if (et_strncaseeq(s, "http/", 5) && s[5] >= '0' && s[5] <= '9' && s[6] == '.' &&
        s[7] >= '0' && s[7] <= '9' && s[8] == '\0') {
        *major = (uint8_t)(s[5] - '0');
        *minor = (uint8_t)(s[7] - '0');
        return 0;
    }
    return -1;
}

const char *et__redact_header(struct et_arena *a, const char *name, const char *value)
{
    if (et_strcaseeq(name, "Cookie") || et_strcaseeq(name, "Set-Cookie"))
        return ET__REDACTED;
    if (!et_strcaseeq(name, "Authorization") && !et_strcaseeq(name, "Proxy-Authorization"))
        return value;

    /* Keep the scheme ("Basic", "Bearer", "NTLM", ...) so a reader sees how the client
     * authenticated; for Basic also the user name, which troubleshooting needs. */
    size_t sl = strcspn(value, " \t");
    if (sl == 0 || value[sl] == '\0')
        return ET__REDACTED;
    if (sl == 5 && et_strncaseeq(value, "Basic", 5)) {
        struct et_buf dec;
        const char *p = value + sl, *out = NULL;
        struct et_error e;
        while (*p == ' ' || *p == '\t')
            p++;
        et_buf_init(&dec, 4096);
        et_error_clear(&e);
        if (et_base64_decode(&dec, p, strlen(p), &e) == 0 && dec.len > 0) {
            const uint8_t *colon = memchr(dec.data, ':', dec.len);
            size_t ul = colon != NULL ? (size_t)(colon - dec.data) : 0;
            if (ul > 0 && et_utf8_valid(dec.data, ul)) {
                /* The user name goes out quoted as JSON would, control bytes dropped. */
                struct et_buf u;
                et_buf_init(&u, 1024);
                for (size_t i = 0; i < ul; i++)
                    if (dec.data[i] >= 0x20 && dec.data[i] != 0x7f)
                        et_buf_putc(&u, dec.data[i]);
                out = et_arena_printf(a, "%.*s " ET__REDACTED " user=%s", (int)sl, value,
                                      u.data != NULL ? (const char *)u.data : "");
                et_buf_free(&u);
                et_buf_free(&dec);
                return out;
            }
        }
        et_buf_free(&dec);
    }
    return et_arena_printf(a, "%.*s " ET__REDACTED, (int)sl, value);
}

const char *et__redact_url(struct et_arena *a, const char *url)
{
    const char *sep = strstr(url, "://"), *auth, *end, *at;
    if (sep == NULL)
        return url;
    auth = sep + 3;
    end = auth + strcspn(auth, "/?#");
    at = NULL;
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    if (at == NULL)
        return url;
    return et_arena_printf(a, "%.*s" ET__REDACTED "%s", (int)(auth - url), url, at);
}

int et__json_put_text(struct et_buf *b, const char *s, size_t n)
{
    struct et_buf tmp;
    size_t i = 0;
    int rc;

    if (et_utf8_valid((const uint8_t *)s, n))
        return et_buf_put_json_string(b, s, n);
    et_buf_init(&tmp, b->max);
    while (i < n) {
        size_t j = i + 1;
        /* Find the longest valid sequence starting at i (1 to 4 bytes). */
        while (j <= n && j - i <= 4 && !et_utf8_valid((const uint8_t *)s + i, j - i))
            j++;
        if (j <= n && j - i <= 4) {
            rc = et_buf_append(&tmp, s + i, j - i);
            i = j;
        } else {
            rc = et_buf_append(&tmp, "\xEF\xBF\xBD", 3);
            i++;
        }
        if (rc != 0)
            goto out;
    }
    rc = et_buf_put_json_string(b, tmp.data != NULL ? (const char *)tmp.data : "", tmp.len);
out:
    et_buf_free(&tmp);
    return rc;
}

const char *et__time_format(int64_t us, int digits, char *out, size_t outlen)
{
    struct tm tm;
    time_t secs;
    if (us <= 0) {
        snprintf(out, outlen, "%s",
                 digits == 7 ? "0001-01-01T00:00:00" : "1970-01-01T00:00:00.000000Z");
        return out;
    }
    secs = (time_t)(us / 1000000);
    gmtime_r(&secs, &tm);
    if (digits == 7)
        snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%06d0+00:00", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(us % 1000000));
    else
        snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(us % 1000000));
    return out;
}

const char *et__export_target(struct et_arena *a, const char *target, int include_secrets)
{
    struct et_buf b;
    const char *out;
    if (target == NULL)
        return NULL;
    if (include_secrets || strchr(target, '?') == NULL)
        return target;
    et_buf_init(&b, 1 << 20);
    /* The EAS engineer's helper knows plain and base64 EAS queries. */
    if (et_eas_query_redact(target, ET_EAS_REDACT_SECRETS, &b) != 0) {
        et_buf_free(&b);
        return et_arena_printf(a, "%.*s?" ET__REDACTED, (int)strcspn(target, "?"), target);
    }
    out = et_arena_strndup(a, (const char *)b.data, b.len);
    et_buf_free(&b);
    return out;
}

static int has_word(const char *low, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strstr(low, *words) != NULL)
            return 1;
    return 0;
}

enum et_stage et__har_error_stage(const char *s, size_t n, int has_response, int *code)
{
    /* Words of Chrome's net::ERR_* names, Python's socket and ssl errors (mitmproxy) and
     * Fiddler's session messages, lower case. */
    static const char *const dns[] = {"name_not_resolved", "getaddrinfo", "name or service",
                                      "nodename nor servname", "nxdomain", "dns",
                                      "no address associated", "name resolution", NULL};
    static const char *const tls[] = {"cert", "ssl", "tls", "handshake", NULL};
    static const char *const refused[] = {"refused", NULL};
    /* The connection existed and was then lost: the request went out, the answer was cut. */
    static const char *const lost[] = {"reset", "closed", "killed", "aborted", "eof",
                                       "empty_response", NULL};
    static const char *const timeout[] = {"timed_out", "timed out", "timeout", NULL};
    static const char *const connect[] = {"connect", "unreachable", "disconnected",
                                          "no route", "network is down", NULL};
    char low[512];
    size_t k = n < sizeof(low) - 1 ? n : sizeof(low) - 1;

    for (size_t i = 0; i < k; i++)
        low[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    low[k] = '\0';
    if (has_word(low, dns)) {
        *code = ET_EDNS;
        return ET_STAGE_DNS;
    }
    if (has_word(low, tls)) {
        *code = has_word(low, (const char *const[]){"cert", NULL}) ? ET_ECERT : ET_ETLS;
        return ET_STAGE_UPSTREAM_TLS;
    }
    if (has_response || (has_word(low, lost) && !has_word(low, refused))) {
        *code = has_word(low, timeout) ? ET_ETIMEDOUT : ET_ECONNRESET;
        return ET_STAGE_RESPONSE;
    }
    if (has_word(low, refused))
        *code = ET_ECONNREFUSED;
    else if (has_word(low, timeout))
        *code = ET_ETIMEDOUT;
    else if (has_word(low, connect))
        *code = ET_ECONNREFUSED;
    else
        *code = ET_ECONNRESET;
    return ET_STAGE_UPSTREAM_CONNECT;
}
