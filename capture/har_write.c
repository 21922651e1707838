/*
 * HAR 1.2 writer. Streams: the head is written at open, one entry per add (formatted in a
 * buffer, then written), the tail at close. Every field HAR 1.2 marks required is present;
 * what HAR has no field for goes into "_eastrace*" custom fields (allowed by the spec's
 * leading-underscore rule) so our reader gets it back.
 */
#include "eastrace/har.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "eastrace/http.h"
#include "har_int.h"
#include "eastrace/redact.h"

/* One entry is formatted in memory before it is written; bodies are at most 256 MiB. */
#define ENTRY_MAX ((size_t)1 << 30)

struct et_har_writer {
    FILE *f;
    char *path;
    struct et_har_write_opts opts;
    uint64_t n;
    int failed;
    struct et_buf b;
};

static int put_kv_str(struct et_buf *b, const char *key, const char *v, int comma)
{
    int rc = 0;
    if (comma)
        rc |= et_buf_putc(b, ',');
    rc |= et_buf_put_json_string(b, key, strlen(key));
    rc |= et_buf_putc(b, ':');
    rc |= et__json_put_text(b, v != NULL ? v : "", v != NULL ? strlen(v) : 0);
    return rc != 0 ? ET_ENOMEM : 0;
}

/* Milliseconds between two instants with microsecond precision, -1 when unknown. */
static void put_ms(struct et_buf *b, const char *key, int64_t from, int64_t to)
{
    if (from > 0 && to >= from)
        et_buf_printf(b, ",\"%s\":%lld.%03d", key, (long long)((to - from) / 1000),
                      (int)((to - from) % 1000));
    else
        et_buf_printf(b, ",\"%s\":%s", key, strcmp(key, "connect") == 0 ? "-1" : "0");
}

static double span_ms(int64_t from, int64_t to)
{
    return from > 0 && to >= from ? (double)(to - from) / 1000.0 : 0;
}

static void put_headers(struct et_buf *b, struct et_arena *a, const struct et_headers *h,
                        int include_secrets)
{
    et_buf_puts(b, ",\"headers\":[");
    for (size_t i = 0; i < h->n; i++) {
        const char *v = h->v[i].value;
        if (!include_secrets)
            v = et__redact_header(a, h->v[i].name, v);
        et_buf_puts(b, i ? ",{" : "{");
        put_kv_str(b, "name", h->v[i].name, 0);
        put_kv_str(b, "value", v != NULL ? v : ET__REDACTED, 1);
        et_buf_putc(b, '}');
    }
    et_buf_putc(b, ']');
}

/* Text when the bytes are UTF-8 without control characters other than TAB, CR, LF; else
 * base64, as HAR 1.2 prescribes for binary content. */
static const char *mime_of(const struct et_headers *h)
{
    const char *ct = et_headers_get(h, "Content-Type");
    return ct != NULL ? ct : "";
}

static void put_bytes_text(struct et_buf *b, const uint8_t *data, size_t len)
{
    int binary = !et_utf8_valid(data, len);
    for (size_t i = 0; !binary && i < len; i++) {
        uint8_t c = data[i];
        if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
            binary = 1;
    }
    et_buf_puts(b, ",\"text\":");
    if (binary) {
        et_buf_putc(b, '"');
        et_base64_encode(b, data, len);
        et_buf_puts(b, "\",\"encoding\":\"base64\"");
    } else {
        et_buf_put_json_string(b, (const char *)data, len);
    }
}

static void put_body_text(struct et_buf *b, const struct et_body *body)
{
    put_bytes_text(b, body->data, body->len);
}

/*
 * response.content: HAR 1.2 holds the decoded body ("size" its length, "compression" the bytes
 * saved), so a body recorded with its Content-Encoding is decoded here. When that fails (a cut
 * or corrupt stream, an unsupported coding) the wire bytes are written with our own
 * "_eastraceEncoded": true, so our reader does not take them for decoded content.
 */
static void put_content(struct et_buf *b, struct et_arena *a, const struct et_exchange *x,
                        int sec)
{
    const struct et_body *body = &x->resp.body;
    const char *ce = et_headers_get(&x->resp.headers, "Content-Encoding");
    struct et_buf dec;
    struct et_body rb = *body;

    if (body->len > 0 && ce != NULL && !et_strcaseeq(ce, "identity") && !body->content_decoded) {
        et_buf_init(&dec, ET_HAR_MAX_ENTRY / 2);
        if (et_http_content_decode(&x->resp.headers, body->data, body->len,
                                   ET_HAR_MAX_ENTRY / 2, &dec, NULL) == 0) {
            et_buf_printf(b, ",\"content\":{\"size\":%zu", dec.len);
            et_buf_printf(b, ",\"compression\":%lld",
                          (long long)dec.len - (long long)body->len);
            put_kv_str(b, "mimeType", mime_of(&x->resp.headers), 1);
            /* Decoded here: the redaction policy looks at the decoded bytes. */
            const uint8_t *d = sec ? dec.data
                                   : et_redact_decoded_body(a, &x->resp.headers, dec.data,
                                                            dec.len);
            put_bytes_text(b, d != NULL ? d : dec.data, dec.len);
            et_buf_free(&dec);
            et_buf_putc(b, '}');
            return;
        }
        et_buf_free(&dec);
        et_buf_printf(b, ",\"content\":{\"size\":%zu", body->len);
        put_kv_str(b, "mimeType", mime_of(&x->resp.headers), 1);
        put_body_text(b, body);
        et_buf_puts(b, ",\"_eastraceEncoded\":true}");
        return;
    }
    et_buf_printf(b, ",\"content\":{\"size\":%zu", body->len);
    put_kv_str(b, "mimeType", mime_of(&x->resp.headers), 1);
    if (!sec && body->len > 0 &&
        (rb.data = et_redact_body(a, &x->resp.headers, body)) == NULL)
        rb.data = body->data; /* no memory to mask: as recorded */
    if (body->len > 0)
        put_body_text(b, &rb);
    et_buf_putc(b, '}');
}

static void put_version(struct et_buf *b, uint8_t major, uint8_t minor, int known)
{
    if (!known)
        et_buf_puts(b, ",\"httpVersion\":\"\"");
    else if (major >= 2)
        et_buf_printf(b, ",\"httpVersion\":\"HTTP/%u\"", (unsigned)major);
    else
        et_buf_printf(b, ",\"httpVersion\":\"HTTP/%u.%u\"", (unsigned)major, (unsigned)minor);
}

/* Builds the absolute URL HAR wants from what the exchange recorded. */
static const char *entry_url(struct et_arena *a, const struct et_exchange *x, const char *target)
{
    const char *scheme = x->scheme, *host = x->host;
    char portbuf[16] = "";
    int v6;

    if (target != NULL && strstr(target, "://") != NULL && target[0] != '/')
        return target; /* absolute-form already */
    if (host == NULL)
        host = et_headers_get(&x->req.headers, "Host");
    if (scheme == NULL)
        scheme = x->port == 443 ? "https" : "http";
    if (host == NULL)
        host = "unknown.invalid";
    v6 = strchr(host, ':') != NULL && host[0] != '[' &&
         et_headers_get(&x->req.headers, "Host") != host;
    if (x->port > 0 && !(x->port == 443 && et_strcaseeq(scheme, "https")) &&
        !(x->port == 80 && et_strcaseeq(scheme, "http")) && strchr(host, ']') == NULL &&
        (v6 || strchr(host, ':') == NULL))
        snprintf(portbuf, sizeof(portbuf), ":%d", x->port);
    if (x->req.method != NULL && strcmp(x->req.method, "CONNECT") == 0) {
        if (x->port > 0)
            snprintf(portbuf, sizeof(portbuf), ":%d", x->port);
        target = "";
    }
    return et_arena_printf(a, "%s://%s%s%s%s%s", scheme, v6 ? "[" : "", host, v6 ? "]" : "",
                           portbuf, target != NULL ? target : "/");
}

static void put_query(struct et_buf *b, const char *target)
{
    const char *q = target != NULL ? strchr(target, '?') : NULL;
    int first = 1;
    et_buf_puts(b, ",\"queryString\":[");
    if (q != NULL) {
        q++;
        while (*q != '\0') {
            size_t n = strcspn(q, "&#");
            const char *eq = memchr(q, '=', n);
            size_t nl = eq != NULL ? (size_t)(eq - q) : n;
            if (n > 0) {
                et_buf_puts(b, first ? "{\"name\":" : ",{\"name\":");
                et__json_put_text(b, q, nl);
                et_buf_puts(b, ",\"value\":");
                et__json_put_text(b, eq != NULL ? eq + 1 : "", eq != NULL ? n - nl - 1 : 0);
                et_buf_putc(b, '}');
                first = 0;
            }
            q += n;
            if (*q != '&')
                break;
            q++;
        }
    }
    et_buf_putc(b, ']');
}

/* The address part of "ip", "ip:port", "[v6]:port" or "v6" into out (always set); returns 1
 * when it is an IPv4 or IPv6 address. */
static int server_ip(const char *addr, char *out, size_t len)
{
    const char *colon = strrchr(addr, ':');
    struct in6_addr a6;
    struct in_addr a4;

    if (addr[0] == '[' && strchr(addr, ']') != NULL)
        snprintf(out, len, "%.*s", (int)(strchr(addr, ']') - addr - 1), addr + 1);
    else if (colon != NULL && strchr(addr, ':') == colon)
        snprintf(out, len, "%.*s", (int)(colon - addr), addr);
    else
        snprintf(out, len, "%s", addr);
    return inet_pton(AF_INET, out, &a4) == 1 || inet_pton(AF_INET6, out, &a6) == 1;
}

static int format_entry(struct et_har_writer *w, const struct et_exchange *x,
                        struct et_arena *a)
{
    struct et_buf *b = &w->b;
    const struct et_timings *t = &x->t;
    int sec = w->opts.include_secrets;
    const char *target = et__export_target(a, x->req.target, sec);
    const char *url = entry_url(a, x, target);
    char ts[40];
    int64_t start = t->connect > 0 ? t->connect : t->req_begin;
    double total;

    if (url == NULL || (x->req.target != NULL && target == NULL))
        return ET_ENOMEM;
    if (!sec && (url = et__redact_url(a, url)) == NULL)
        return ET_ENOMEM;
    total = span_ms(t->connect, t->req_begin) + span_ms(t->req_begin, t->req_end) +
            span_ms(t->req_end, t->resp_begin) + span_ms(t->resp_begin, t->resp_end);

    et_buf_puts(b, w->n > 0 ? ",\n    {" : "\n    {");
    put_kv_str(b, "startedDateTime", et__time_format(start, 6, ts, sizeof(ts)), 0);
    et_buf_printf(b, ",\"time\":%.3f", total);

    /* request */
    et_buf_puts(b, ",\"request\":{");
    put_kv_str(b, "method", x->req.method != NULL ? x->req.method : "GET", 0);
    put_kv_str(b, "url", url, 1);
    put_version(b, x->req.http_major, x->req.http_minor, 1);
    et_buf_puts(b, ",\"cookies\":[]");
    put_headers(b, a, &x->req.headers, sec);
    put_query(b, target);
    if (x->req.body.len > 0) {
        et_buf_puts(b, ",\"postData\":{");
        put_kv_str(b, "mimeType", mime_of(&x->req.headers), 0);
        et_buf_puts(b, ",\"params\":[]");
        struct et_body rb = x->req.body;
        if (!sec && (rb.data = et_redact_body(a, &x->req.headers, &x->req.body)) == NULL)
            rb.data = x->req.body.data; /* no memory to mask: as recorded */
        put_body_text(b, &rb);
        et_buf_putc(b, '}');
    }
    et_buf_printf(b, ",\"headersSize\":-1,\"bodySize\":%llu",
                  (unsigned long long)ET_MAX(x->req.body.wire_len, x->req.body.len));
    if (x->req.body.truncated)
        et_buf_puts(b, ",\"_eastraceTruncated\":true");
    et_buf_putc(b, '}');

    /* response */
    et_buf_puts(b, ",\"response\":{");
    et_buf_printf(b, "\"status\":%d", x->has_response ? x->resp.status : 0);
    put_kv_str(b, "statusText", x->has_response ? x->resp.reason : "", 1);
    put_version(b, x->resp.http_major, x->resp.http_minor, x->has_response);
    et_buf_puts(b, ",\"cookies\":[]");
    put_headers(b, a, &x->resp.headers, sec);
    put_content(b, a, x, sec);
    put_kv_str(b, "redirectURL", et_headers_get(&x->resp.headers, "Location"), 1);
    et_buf_printf(b, ",\"headersSize\":-1,\"bodySize\":%lld",
                  x->has_response
                      ? (long long)ET_MAX(x->resp.body.wire_len, x->resp.body.len)
                      : -1LL);
    if (x->resp.body.truncated)
        et_buf_puts(b, ",\"_eastraceTruncated\":true");
    if (x->err.code != 0 && x->err.message != NULL)
        put_kv_str(b, "_error", x->err.message, 1);
    et_buf_putc(b, '}');

    et_buf_puts(b, ",\"cache\":{},\"timings\":{\"blocked\":-1,\"dns\":-1");
    put_ms(b, "connect", t->connect, t->req_begin);
    put_ms(b, "send", t->req_begin, t->req_end);
    put_ms(b, "wait", t->req_end, t->resp_begin);
    put_ms(b, "receive", t->resp_begin, t->resp_end);
    et_buf_puts(b, ",\"ssl\":-1}");
    if (x->server_addr != NULL) {
        char ip[INET6_ADDRSTRLEN + 8];
        /* HAR 1.2: serverIPAddress is an IPv4 or IPv6 address, nothing else; the proxy
         * records "ip:port", which goes whole into _serverAddress for our reader. */
        if (server_ip(x->server_addr, ip, sizeof(ip)))
            put_kv_str(b, "serverIPAddress", ip, 1);
        if (strcmp(ip, x->server_addr) != 0)
            put_kv_str(b, "_serverAddress", x->server_addr, 1);
    }
    if (x->client_addr != NULL)
        put_kv_str(b, "_clientAddress", x->client_addr, 1);
    /* The reverse proxy's facts (capture tag 0x25): the balancer that relayed the client. */
    if (x->via_addr != NULL)
        put_kv_str(b, "_viaAddress", x->via_addr, 1);
    if (x->reverse)
        et_buf_puts(b, ",\"_eastraceReverse\":true");
    if (x->err.code != 0) {
        et_buf_printf(b, ",\"_eastraceError\":{\"code\":%d,\"stage\":%d", x->err.code,
                      (int)x->err.stage);
        put_kv_str(b, "message", x->err.message, 1);
        et_buf_putc(b, '}');
    }
    if (x->meta.n > 0) {
        et_buf_puts(b, ",\"_eastraceMeta\":[");
        for (size_t i = 0; i < x->meta.n; i++) {
            et_buf_puts(b, i ? ",{" : "{");
            put_kv_str(b, "name", x->meta.v[i].name, 0);
            put_kv_str(b, "value", x->meta.v[i].value, 1);
            et_buf_putc(b, '}');
        }
        et_buf_putc(b, ']');
    }
    return et_buf_putc(b, '}');
}

int et_har_writer_open(const char *path, const struct et_har_write_opts *opts,
                       struct et_har_writer **out, struct et_error *e)
{
    struct et_har_writer *w;
    const char *ver;

    *out = NULL;
    if ((w = et_calloc(1, sizeof(*w))) == NULL || (w->path = et_strdup(path)) == NULL) {
        et_free(w);
        et_error_set(e, ET_ENOMEM, "%s: out of memory", path);
        return ET_ENOMEM;
    }
    if (opts != NULL)
        w->opts = *opts;
    et_buf_init(&w->b, ENTRY_MAX);
    if ((w->f = fopen(path, "wbe")) == NULL) {
        et_error_set(e, ET_EIO, "%s: %s", path, strerror(errno));
        et_free(w->path);
        et_free(w);
        return ET_EIO;
    }
    ver = w->opts.creator_version != NULL ? w->opts.creator_version : ET_VERSION;
    et_buf_puts(&w->b, "{\n  \"log\": {\n    \"version\": \"1.2\",\n    \"creator\": ");
    et_buf_puts(&w->b, "{\"name\": \"eastrace\", \"version\": ");
    et__json_put_text(&w->b, ver, strlen(ver));
    et_buf_puts(&w->b, "},\n    \"pages\": [],\n    \"entries\": [");
    w->opts.creator_version = NULL; /* borrowed: not kept past open */
    *out = w;
    return 0;
}

int et_har_writer_add(struct et_har_writer *w, const struct et_exchange *x, struct et_error *e)
{
    struct et_arena *a;
    int rc;

    if (w->failed) {
        et_error_set(e, ET_EIO, "%s: writer failed earlier", w->path);
        return ET_EIO;
    }
    if ((a = et_arena_new(0)) == NULL) {
        et_error_set(e, ET_ENOMEM, "%s: out of memory", w->path);
        return ET_ENOMEM;
    }
    rc = format_entry(w, x, a);
    et_arena_free(a);
    if (rc != 0) {
        /* A formatting failure is an allocation or cap failure: drop the partial entry. */
        w->failed = 1;
        et_error_set(e, rc, "%s: entry %llu: %s", w->path, (unsigned long long)x->id,
                     et_strerror(rc));
        return rc;
    }
    w->n++;
    if (fwrite(w->b.data, 1, w->b.len, w->f) != w->b.len) {
        w->failed = 1;
        et_error_set(e, ET_EIO, "%s: write: %s", w->path, strerror(errno));
        return ET_EIO;
    }
    et_buf_reset(&w->b);
    if (w->b.cap > (1 << 20)) {
        et_buf_free(&w->b);
        et_buf_init(&w->b, ENTRY_MAX);
    }
    return 0;
}

int et_har_writer_close(struct et_har_writer *w, struct et_error *e)
{
    int rc = 0;
    if (w == NULL)
        return 0;
    if (w->b.len > 0 && fwrite(w->b.data, 1, w->b.len, w->f) != w->b.len)
        rc = ET_EIO;
    if (fputs("\n    ]\n  }\n}\n", w->f) < 0)
        rc = ET_EIO;
    if (fclose(w->f) != 0)
        rc = ET_EIO;
    if (rc != 0 || w->failed) {
        if (rc == 0)
            rc = ET_EIO;
        et_error_set(e, rc, "%s: writing the HAR failed", w->path);
    }
    et_buf_free(&w->b);
    et_free(w->path);
    et_free(w);
    return rc;
}
