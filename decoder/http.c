/*
 * One HTTP/1.x message from raw bytes, through llhttp, into the exchange model.
 *
 * The whole message is in memory, so every span llhttp reports points into the caller's
 * buffer; spans are remembered as pointers and copied into the exchange's arena when they
 * end. The parser is stopped (HPE_PAUSED) at the end of the first final message so bytes
 * after it can be judged (a request body sent without Content-Length, pipelined leftovers).
 *
 *   execute(p, n) --> HPE_PAUSED (our pause: message complete) --> trailing bytes?
 *                 --> HPE_PAUSED_UPGRADE (CONNECT / 101: complete, rest is tunnel data)
 *                 --> HPE_OK (ran out) --> needs EOF? finish : ETRUNC
 *                 --> error --> chunked body that is not chunked? raw fallback : EPARSE
 */
#include "eastrace/http.h"
#include "http_int.h"

#include <llhttp.h>
#include <stdio.h>
#include <string.h>

struct pstate {
    const uint8_t *base;
    size_t n;
    struct et_exchange *x;
    int is_request;
    int rc; /* ET_ENOMEM from a callback, reported after execute */

    const char *method, *url, *status, *field, *value;
    size_t method_len, url_len, status_len, field_len, value_len;
    const char *last_end;   /* end of the latest span: the blank line is searched from here */

    struct et_headers *headers;
    int headers_done;       /* the header block of the final message ended */
    size_t body_off;        /* offset of the first body byte (valid when headers_done) */
    int skip_body;          /* HEAD response */
    int connect_response;   /* the response to a CONNECT request */
    uint8_t *body;          /* arena, room for n - body_off bytes */
    size_t body_len, body_room;
    unsigned chunks;        /* chunk headers seen */
    unsigned trailers;      /* trailer fields appended to the headers */
    unsigned interim;       /* 1xx responses skipped */
    int complete;
};

static struct pstate *st(llhttp_t *hp)
{
    return hp->data;
}

/* Extends span (*s, *len) with (at, n); the input is one buffer, so pieces are adjacent. */
static void span_add(struct pstate *s, const char **sp, size_t *len, const char *at, size_t n)
{
    if (*sp == NULL)
        *sp = at;
    *len = (size_t)(at + n - *sp);
    s->last_end = at + n;
}

static int on_method(llhttp_t *hp, const char *at, size_t n)
{
    struct pstate *s = st(hp);
    span_add(s, &s->method, &s->method_len, at, n);
    return 0;
}

static int on_url(llhttp_t *hp, const char *at, size_t n)
{
    struct pstate *s = st(hp);
    span_add(s, &s->url, &s->url_len, at, n);
    return 0;
}

static int on_status(llhttp_t *hp, const char *at, size_t n)
{
    struct pstate *s = st(hp);
    span_add(s, &s->status, &s->status_len, at, n);
    return 0;
}

static int on_header_field(llhttp_t *hp, const char *at, size_t n)
{
    struct pstate *s = st(hp);
    span_add(s, &s->field, &s->field_len, at, n);
    return 0;
}

static int on_header_value(llhttp_t *hp, const char *at, size_t n)
{
    struct pstate *s = st(hp);
    span_add(s, &s->value, &s->value_len, at, n);
    return 0;
}

static int on_header_value_complete(llhttp_t *hp)
{
    struct pstate *s = st(hp);
    int rc;

    if (s->field == NULL)
        return 0;
    rc = et_headers_add(s->headers, s->x->arena, s->field, s->field_len,
                        s->value ? s->value : "", s->value ? s->value_len : 0);
    if (rc != 0) {
        s->rc = rc;
        llhttp_set_error_reason(hp, "out of memory");
        return -1;
    }
    if (s->headers_done)
        s->trailers++;
    s->field = s->value = NULL;
    s->field_len = s->value_len = 0;
    return 0;
}

/* Offset just past the blank line that ends the header block, searching from `from`. */
static size_t find_body_start(const struct pstate *s, const char *from)
{
    size_t i = from ? (size_t)((const uint8_t *)from - s->base) : 0;

    for (; i < s->n; i++) {
        if (s->base[i] != '\n')
            continue;
        if (i + 1 < s->n && s->base[i + 1] == '\n')
            return i + 2;
        if (i + 2 < s->n && s->base[i + 1] == '\r' && s->base[i + 2] == '\n')
            return i + 3;
    }
    return s->n;
}

static char *arena_span(struct et_arena *a, const char *p, size_t n)
{
    return et_arena_strndup(a, p ? p : "", p ? n : 0);
}

/* The start line is complete: copy method and target, or status and reason. */
static int start_line_done(llhttp_t *hp, int is_request)
{
    struct pstate *s = st(hp);
    struct et_exchange *x = s->x;

    if (is_request != s->is_request)
        return 0;
    if (is_request) {
        x->req.method = arena_span(x->arena, s->method, s->method_len);
        x->req.target = arena_span(x->arena, s->url, s->url_len);
        x->req.http_major = hp->http_major;
        x->req.http_minor = hp->http_minor;
        if (x->req.method == NULL || x->req.target == NULL)
            goto nomem;
        x->has_request = 1;
    } else {
        x->resp.status = hp->status_code;
        x->resp.reason = arena_span(x->arena, s->status, s->status_len);
        x->resp.http_major = hp->http_major;
        x->resp.http_minor = hp->http_minor;
        if (x->resp.reason == NULL)
            goto nomem;
        x->has_response = 1;
    }
    return 0;
nomem:
    s->rc = ET_ENOMEM;
    llhttp_set_error_reason(hp, "out of memory");
    return -1;
}

static int on_version_complete(llhttp_t *hp)
{
    /* In a request the version ends the start line; in a response the status follows. */
    return start_line_done(hp, 1);
}

static int on_status_complete(llhttp_t *hp)
{
    return start_line_done(hp, 0);
}

static int on_headers_complete(llhttp_t *hp)
{
    struct pstate *s = st(hp);

    if (!s->is_request && hp->status_code >= 100 && hp->status_code < 200 &&
        hp->status_code != 101) {
        /* An interim response: no body; its headers are dropped in on_message_complete. */
        return 1;
    }
    if (s->is_request && !s->x->has_request) {
        /* An HTTP/0.9-style request line without a version (llhttp's loose mode takes it)
         * never reaches on_version_complete. */
        if (start_line_done(hp, 1) != 0)
            return -1;
    }
    s->headers_done = 1;
    s->body_off = find_body_start(s, s->last_end);
    /* The body cannot start before the end of the last span, whatever line ends llhttp
     * accepted; that bounds the room it needs. */
    s->body_room = s->n - (s->last_end ? (size_t)((const uint8_t *)s->last_end - s->base) : 0);
    /* llhttp 8 reads a body on 204 and 304 when Content-Length says so (node decides in its
     * JavaScript); RFC 9110 says they have none, and neither has a response to HEAD. */
    if (!s->is_request && (s->skip_body || hp->status_code == 204 || hp->status_code == 304))
        return 1;
    return 0;
}

static int on_body(llhttp_t *hp, const char *at, size_t n)
{
    struct pstate *s = st(hp);

    if (s->body == NULL) {
        s->body = et_arena_alloc(s->x->arena, s->body_room + 1);
        if (s->body == NULL) {
            s->rc = ET_ENOMEM;
            llhttp_set_error_reason(hp, "out of memory");
            return HPE_USER;
        }
    }
    /* Body bytes come from after the header block, so they always fit; checked anyway. */
    if (n > s->body_room - s->body_len) {
        llhttp_set_error_reason(hp, "body larger than the input");
        return HPE_USER;
    }
    memcpy(s->body + s->body_len, at, n);
    s->body_len += n;
    s->last_end = at + n;
    return 0;
}

static int on_chunk_header(llhttp_t *hp)
{
    st(hp)->chunks++;
    return 0;
}

static int on_message_complete(llhttp_t *hp)
{
    struct pstate *s = st(hp);

    if (!s->headers_done) {
        /* An interim 1xx response ended: forget its headers and parse the next one. */
        s->interim++;
        s->headers->n = 0;
        s->status = s->field = s->value = NULL;
        s->status_len = s->field_len = s->value_len = 0;
        return 0;
    }
    s->complete = 1;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_method = on_method,
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_version_complete = on_version_complete,
    .on_status_complete = on_status_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};

/* Adds a note to x->meta; a note lost to ENOMEM is reported as ENOMEM. */
static int note(struct pstate *s, const char *fmt, ...) ET_PRINTF(2, 3);
static int note(struct pstate *s, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    int len;
    const char *name = s->is_request ? ET_HTTP_NOTE_REQUEST : ET_HTTP_NOTE_RESPONSE;

    va_start(ap, fmt);
    len = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (len < 0)
        return 0;
    if ((size_t)len >= sizeof(msg))
        len = (int)sizeof(msg) - 1;
    return et_headers_add(&s->x->meta, s->x->arena, name, strlen(name), msg, (size_t)len);
}

static int all_blank(const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] != '\r' && p[i] != '\n' && p[i] != ' ' && p[i] != '\t')
            return 0;
    return 1;
}

static void set_body(struct pstate *s, struct et_body *b)
{
    b->data = s->body_len ? s->body : NULL;
    b->len = s->body_len;
    b->wire_len = s->body_len;
    b->truncated = 0;
    b->absent = 0;
}

/* Takes the bytes from offset `from` (at or after the headers) to the end as the body. */
static int take_raw_body(struct pstate *s, struct et_body *b, size_t from)
{
    size_t len = s->n - from;
    if (len == 0) {
        s->body_len = 0;
        set_body(s, b);
        return 0;
    }
    /* A fresh copy sized for these bytes: `from` may lie before where llhttp put the body. */
    s->body = et_arena_memdup(s->x->arena, s->base + from, len);
    if (s->body == NULL)
        return ET_ENOMEM;
    s->body_len = len;
    set_body(s, b);
    return 0;
}

/* Records the failure in e and in x->err, which keeps the first one. */
static int fail(struct pstate *s, struct et_error *e, int code, size_t off, const char *fmt, ...)
    ET_PRINTF(5, 6);
static int fail(struct pstate *s, struct et_error *e, int code, size_t off, const char *fmt, ...)
{
    char msg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (e != NULL)
        et_error_set_at(e, code, off, "%s", msg);
    et_exchange_fail(s->x, code, s->is_request ? ET_STAGE_REQUEST : ET_STAGE_RESPONSE,
                     "%s (at byte %zu)", msg, off);
    return code;
}

/* After the message: bytes left over, leniency for request bodies without Content-Length. */
static int finish_trailing(struct pstate *s, llhttp_t *hp, size_t used, int upgrade)
{
    struct et_body *b = s->is_request ? &s->x->req.body : &s->x->resp.body;
    size_t rest = s->n - used;

    if (rest == 0 || all_blank(s->base + used, rest))
        return 0;
    if ((s->is_request ? hp->method == HTTP_CONNECT : s->connect_response) &&
        s->body_len == 0) {
        /* Fiddler writes its description of the TLS handshake (version, SNI, ciphers,
         * certificate) after a CONNECT and its response: worth showing, so it becomes the body. */
        int rc = take_raw_body(s, b, used);
        if (rc != 0)
            return rc;
        return note(s, "%zu bytes after the CONNECT %s (the capture tool's notes on the "
                       "tunnel) kept as the body", rest, s->is_request ? "request" : "response");
    }
    if (upgrade)
        return note(s, "%zu bytes after the end of the %s belong to the tunnel or upgraded "
                       "protocol; not parsed", rest, s->is_request ? "request" : "response");
    if (s->is_request && s->body_len == 0 && !(hp->flags & (F_CONTENT_LENGTH | F_CHUNKED)) &&
        used == s->body_off) {
        /* Fiddler (and some clients) keep a body on a request that has no Content-Length. A
         * strict reader would drop it; for troubleshooting it is the most useful byte range. */
        int rc = take_raw_body(s, b, s->body_off);
        if (rc != 0)
            return rc;
        return note(s, "request body of %zu bytes without Content-Length or Transfer-Encoding "
                       "kept as the body", rest);
    }
    return note(s, "%zu bytes after the end of the %s (at byte %zu) ignored", rest,
                s->is_request ? "request" : "response", used);
}

/* Offset of the byte llhttp stopped at (llhttp_get_error_pos), or dflt when it has none. */
static size_t err_off(const llhttp_t *hp, const uint8_t *p, size_t dflt)
{
    const char *at = llhttp_get_error_pos(hp);
    return at ? (size_t)((const uint8_t *)at - p) : dflt;
}

static void lenient(llhttp_t *hp)
{
    /* Captures are shown, not forwarded, so smuggling defences matter less than showing what
     * odd servers and clients sent: header values with stray bytes, Transfer-Encoding together
     * with Content-Length, messages after Connection: close. */
    llhttp_set_lenient_headers(hp, 1);
    llhttp_set_lenient_chunked_length(hp, 1);
    llhttp_set_lenient_keep_alive(hp, 1);
}

static int parse_message(const uint8_t *p, size_t n, struct et_exchange *x, struct et_error *e,
                         int is_request)
{
    struct pstate s;
    llhttp_t hp;
    llhttp_errno_t err;
    struct et_body *b;
    size_t used;
    int rc;

    if (x == NULL || (p == NULL && n > 0))
        return ET_EINVAL;
    memset(&s, 0, sizeof(s));
    s.base = p;
    s.n = n;
    s.x = x;
    s.is_request = is_request;
    if (is_request) {
        memset(&x->req, 0, sizeof(x->req));
        x->has_request = 0;
        s.headers = &x->req.headers;
        b = &x->req.body;
    } else {
        memset(&x->resp, 0, sizeof(x->resp));
        x->has_response = 0;
        s.headers = &x->resp.headers;
        b = &x->resp.body;
        s.skip_body = x->has_request && x->req.method && et_strcaseeq(x->req.method, "HEAD");
        s.connect_response = x->has_request && x->req.method &&
                             et_strcaseeq(x->req.method, "CONNECT");
    }
    if (n == 0)
        return fail(&s, e, ET_ETRUNC, 0, "empty input: no HTTP %s",
                    is_request ? "request" : "response");
    llhttp_init(&hp, is_request ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
    hp.data = &s;
    lenient(&hp);

    err = llhttp_execute(&hp, (const char *)p, n);
    if (s.rc != 0)
        return s.rc == ET_ENOMEM ? ET_ENOMEM : s.rc;
    if (!is_request && s.interim) {
        rc = note(&s, "skipped %u interim 1xx response%s before the final one", s.interim,
                  s.interim > 1 ? "s" : "");
        if (rc != 0)
            return rc;
    }

    if (err == HPE_OK && !s.complete && s.headers_done && llhttp_message_needs_eof(&hp)) {
        /* No Content-Length and not chunked: the body runs to the end of the bytes. */
        err = llhttp_finish(&hp);
        if (s.rc != 0)
            return s.rc;
    }

    if (s.complete && (err == HPE_OK || err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)) {
        set_body(&s, b);
        if (s.trailers) {
            rc = note(&s, "%u chunked trailer field%s appended to the headers", s.trailers,
                      s.trailers > 1 ? "s" : "");
            if (rc != 0)
                return rc;
        }
        used = err_off(&hp, p, n);
        if (err == HPE_OK)
            used = n;
        return finish_trailing(&s, &hp, used, err == HPE_PAUSED_UPGRADE);
    }
    if (err == HPE_PAUSED_UPGRADE) {
        /* CONNECT or an Upgrade: complete, even if on_message_complete was not reached. */
        set_body(&s, b);
        used = err_off(&hp, p, n);
        return finish_trailing(&s, &hp, used, 1);
    }

    /* Transfer-Encoding: chunked over a body that is not chunked: Fiddler saves bodies it has
     * already de-chunked with the header left in place. Nothing parsed as a chunk yet means
     * the framing was never there: take the bytes as they are. */
    if (err != HPE_OK && s.headers_done && (hp.flags & F_CHUNKED) && s.chunks == 0 &&
        s.body_len == 0) {
        rc = take_raw_body(&s, b, s.body_off);
        if (rc != 0)
            return rc;
        return note(&s, "Transfer-Encoding: chunked but the body is not chunked (already "
                        "de-chunked by the capture tool); %zu bytes kept as they are",
                    s.body_len);
    }

    if (err == HPE_OK) {
        /* Ran out of bytes before the message ended. */
        if (!s.headers_done)
            return fail(&s, e, ET_ETRUNC, n, "HTTP %s ends inside the %s",
                        is_request ? "request" : "response",
                        (is_request ? x->has_request : x->has_response) ? "headers"
                                                                         : "start line");
        set_body(&s, b);
        b->truncated = 1;
        if (hp.flags & F_CHUNKED) {
            return fail(&s, e, ET_ETRUNC, n,
                        "chunked body ends early after %zu bytes in %u chunk%s; partial body kept",
                        s.body_len, s.chunks, s.chunks == 1 ? "" : "s");
        }
        b->wire_len = (uint64_t)s.body_len + hp.content_length;
        return fail(&s, e, ET_ETRUNC, n,
                    "body ends early: %zu of %llu bytes (Content-Length); partial body kept",
                    s.body_len, (unsigned long long)b->wire_len);
    }

    /* A real parse error. */
    used = err_off(&hp, p, 0);
    if (s.headers_done) {
        set_body(&s, b);
        if (s.body_len)
            b->truncated = 1;
    }
    return fail(&s, e, ET_EPARSE, used, "malformed HTTP %s: %s (%s)",
                is_request ? "request" : "response",
                llhttp_get_error_reason(&hp) ? llhttp_get_error_reason(&hp) : "parse error",
                llhttp_errno_name(err));
}

/* Host and port from "host", "host:port", "[v6]" or "[v6]:port". */
static void set_authority(struct et_exchange *x, const char *s, size_t n, int default_port)
{
    const char *host = s;
    size_t hlen = n, i;
    int port = 0;
    const char *colon = NULL;

    /* Userinfo ("user@host") never names the host. */
    for (i = n; i > 0; i--) {
        if (s[i - 1] == '@') {
            host = s + i;
            hlen = n - i;
            break;
        }
    }
    if (hlen && host[0] == '[') {
        const char *end = memchr(host, ']', hlen);
        if (end == NULL)
            return;
        if ((size_t)(end + 1 - host) < hlen && end[1] == ':')
            colon = end + 1;
        else if ((size_t)(end + 1 - host) != hlen)
            return;
        if (x->host == NULL)
            x->host = et_arena_strndup(x->arena, host + 1, (size_t)(end - host - 1));
    } else {
        colon = memchr(host, ':', hlen);
        if (x->host == NULL && hlen)
            x->host = et_arena_strndup(x->arena, host, colon ? (size_t)(colon - host) : hlen);
    }
    if (colon != NULL) {
        const char *q = colon + 1, *end = host + hlen;
        if (q == end)
            port = default_port;
        for (; q < end; q++) {
            if (*q < '0' || *q > '9' || port > 65535)
                return;
            port = port * 10 + (*q - '0');
        }
        if (port > 65535)
            return;
    } else {
        port = default_port;
    }
    if (x->port == 0)
        x->port = port;
}

/* Fills x->scheme / host / port from the request target or the Host header. */
static int fill_target(struct et_exchange *x)
{
    const char *t = x->req.target;
    const char *sep;
    const char *hosth;

    if (t == NULL)
        return 0;
    sep = strstr(t, "://");
    if (t[0] != '/' && sep != NULL) {
        size_t slen = (size_t)(sep - t);
        const char *auth = sep + 3;
        size_t alen = strcspn(auth, "/?#");
        int defport = 0;
        if (slen == 5 && et_strncaseeq(t, "https", 5))
            defport = 443;
        else if (slen == 4 && et_strncaseeq(t, "http", 4))
            defport = 80;
        if (x->scheme == NULL) {
            char *sch = et_arena_strndup(x->arena, t, slen);
            size_t i;
            if (sch == NULL)
                return ET_ENOMEM;
            for (i = 0; i < slen; i++)
                if (sch[i] >= 'A' && sch[i] <= 'Z')
                    sch[i] = (char)(sch[i] - 'A' + 'a');
            x->scheme = sch;
        }
        set_authority(x, auth, alen, defport);
    } else if (x->req.method && et_strcaseeq(x->req.method, "CONNECT")) {
        set_authority(x, t, strlen(t), 0);
    }
    hosth = et_headers_get(&x->req.headers, "Host");
    if (hosth != NULL && (x->host == NULL || x->port == 0)) {
        int defport = 0;
        if (x->scheme && et_strcaseeq(x->scheme, "https"))
            defport = 443;
        else if (x->scheme && et_strcaseeq(x->scheme, "http"))
            defport = 80;
        set_authority(x, hosth, strlen(hosth), defport);
    }
    return 0;
}

int et_http_parse_request(const uint8_t *p, size_t n, struct et_exchange *x, struct et_error *e)
{
    int rc = parse_message(p, n, x, e, 1);
    int rc2;

    if (rc == ET_ENOMEM || rc == ET_EINVAL || !x->has_request)
        return rc;
    rc2 = fill_target(x);
    return rc2 != 0 ? rc2 : rc;
}

int et_http_parse_response(const uint8_t *p, size_t n, struct et_exchange *x, struct et_error *e)
{
    return parse_message(p, n, x, e, 0);
}

static int is_tchar(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '!' || c == '#' || c == '$' || c == '%' ||
           c == '&' || c == '\'' || c == '*' || c == '+' || c == '^' || c == '`' || c == '|' ||
           c == '~';
}

static int is_version(const uint8_t *p, size_t n)
{
    return n >= 8 && memcmp(p, "HTTP/", 5) == 0 && p[5] >= '0' && p[5] <= '9' && p[6] == '.' &&
           p[7] >= '0' && p[7] <= '9';
}

int et_http_detect(const uint8_t *p, size_t n)
{
    size_t i = 0, line_end, j;

    if (p == NULL)
        return ET_HTTP_NONE;
    while (i < n && (p[i] == '\r' || p[i] == '\n'))
        i++;
    p += i;
    n -= i;
    if (is_version(p, n))
        return (n > 8 && p[8] == ' ') ? ET_HTTP_RESPONSE : ET_HTTP_NONE;
    /* Request line: token SP target SP HTTP/x.y, all on the first line (at most 64 KiB). */
    for (line_end = 0; line_end < n && line_end < 65536 && p[line_end] != '\n'; line_end++)
        ;
    if (line_end && p[line_end - 1] == '\r')
        line_end--;
    for (j = 0; j < line_end && is_tchar(p[j]); j++)
        ;
    if (j == 0 || j >= line_end || p[j] != ' ')
        return ET_HTTP_NONE;
    if (line_end < 9 || p[line_end - 9] != ' ' || !is_version(p + line_end - 8, 8))
        return ET_HTTP_NONE;
    return line_end - 9 > j ? ET_HTTP_REQUEST : ET_HTTP_NONE;
}
