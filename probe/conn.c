/*
 * The probe's HTTP/1.1 client: blocking sockets with timeouts, an optional HTTP proxy
 * (CONNECT), TLS through net/'s client (eastrace/tls.h) with verification left to tls.c,
 * keep-alive on one connection. Responses are framed here (Content-Length, chunked, or to
 * the end of the connection) and parsed by the decoder's et_http_parse_response into the
 * exchange that is also recorded, so what the probe reports is exactly what a capture
 * replays.
 *
 *   conn_open: resolve -> connect (poll timeout) -> [CONNECT host:port] -> [TLS handshake]
 *   exchange:  write request -> read until framed -> parse -> (server closed? reopen next time)
 */
#include "probe_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eastrace/http.h"
#include "eastrace/net.h"
#include "eastrace/tls.h"

/* Largest response the probe reads (a Sync with a small window is far below). */
#define RESP_MAX ((size_t)32 << 20)

void et__probe_conn_init(struct et_probe_conn *c, const char *host, int port, int tls,
                         const char *proxy, const char *ca_file, int timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    snprintf(c->host, sizeof(c->host), "%s", host);
    c->port = port;
    c->tls = tls;
    c->proxy = proxy;
    c->ca_file = ca_file;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 15000;
    et_buf_init(&c->in, RESP_MAX + 65536);
}

void et__probe_conn_close(struct et_probe_conn *c)
{
    if (c->tls_conn != NULL)
        (void)et_tls_shutdown(c->tls_conn);
    et_tls_free(c->tls_conn);
    c->tls_conn = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->reused = 0;
    c->closed = 0;
    et_buf_reset(&c->in);
}

/* Connects to host:port through the common client (eastrace/net.h); fd or -1 with err and
 * the stage set. */
static int tcp_connect(const char *host, int port, int timeout_ms, char *peer, size_t peerlen,
                       char *err, size_t errlen, enum et_stage *stage)
{
    struct et_error e;
    int fd;
    et_error_clear(&e);
    fd = et_net_connect(host, port, timeout_ms, NULL, peer, peerlen, &e);
    if (fd >= 0)
        return fd;
    snprintf(err, errlen, "%s", e.msg);
    *stage = fd == ET_EDNS ? ET_STAGE_DNS : ET_STAGE_UPSTREAM_CONNECT;
    return -1;
}

/* Writes all n bytes (TLS once the handshake is done). 0, or an ET_E* with e set. */
static int raw_write(struct et_probe_conn *c, const void *p, size_t n, struct et_error *e)
{
    return c->tls_conn != NULL ? et_tls_write_all(c->tls_conn, p, n, e)
                               : et_net_write_all(c->fd, p, n, c->host, e);
}

/* Reads some bytes into c->in: >0 read, 0 end of stream, -1 error, -2 timeout. */
static int raw_read(struct et_probe_conn *c)
{
    uint8_t tmp[16384];
    struct et_error e;
    long r;

    et_error_clear(&e);
    r = c->tls_conn != NULL ? et_tls_read(c->tls_conn, tmp, sizeof(tmp), &e)
                            : et_net_read(c->fd, tmp, sizeof(tmp), c->host, &e);
    if (r == ET_ETIMEDOUT)
        return -2;
    if (r <= 0)
        return r == 0 ? 0 : -1;
    if (et_buf_append(&c->in, tmp, (size_t)r) != 0)
        return -1;
    return 1;
}

static const uint8_t *find_hdr_end(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
            return p + i + 4;
    return NULL;
}

/* Value of header name in the raw header block [p, end), copied into out; 0 when absent. */
static int raw_header(const uint8_t *p, const uint8_t *end, const char *name, char *out,
                      size_t outlen)
{
    size_t nl = strlen(name);
    const uint8_t *line = p;
    while (line < end) {
        const uint8_t *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - line) > nl + 1 && et_strncaseeq((const char *)line, name, nl) &&
            line[nl] == ':') {
            const uint8_t *v = line + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            snprintf(out, outlen, "%.*s", (int)(ve - v), (const char *)v);
            return 1;
        }
        line = eol + 1;
    }
    return 0;
}

/* The CONNECT request through the proxy: 0, or -1 with err set. */
static int proxy_connect(struct et_probe_conn *c, char *err, size_t errlen)
{
    char req[600];
    int n = snprintf(req, sizeof(req),
                     "CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: eastrace-probe\r\n\r\n",
                     c->host, c->port, c->host, c->port);
    const uint8_t *he = NULL;
    int status = 0;
    struct et_error e;

    et_error_clear(&e);
    if (raw_write(c, req, (size_t)n, &e) != 0) {
        snprintf(err, errlen, "cannot send CONNECT to the proxy %s: %s", c->proxy, e.msg);
        return -1;
    }
    while ((he = find_hdr_end(c->in.data, c->in.len)) == NULL) {
        int r = raw_read(c);
        if (r <= 0) {
            snprintf(err, errlen, "the proxy %s %s before answering CONNECT", c->proxy,
                     r == -2 ? "timed out" : "closed the connection");
            return -1;
        }
    }
    if (c->in.len >= 12 && memcmp(c->in.data, "HTTP/1.", 7) == 0)
        status = (c->in.data[9] - '0') * 100 + (c->in.data[10] - '0') * 10 +
                 (c->in.data[11] - '0');
    if (status != 200) {
        const uint8_t *eol = memchr(c->in.data, '\r', c->in.len);
        snprintf(err, errlen, "the proxy %s refused CONNECT %s:%d: %.*s", c->proxy, c->host,
                 c->port, eol ? (int)(eol - c->in.data) : 0, (const char *)c->in.data);
        return -1;
    }
    et_buf_consume(&c->in, (size_t)(he - c->in.data));
    return 0;
}

int et__probe_conn_open(struct et_probe_conn *c, char *err, size_t errlen,
                        enum et_stage *stage)
{
    char phost[256];
    int pport = 0;

    err[0] = '\0';
    if (c->proxy != NULL) {
        const char *colon = strrchr(c->proxy, ':');
        char *end = NULL;
        long v;
        if (colon == NULL || colon == c->proxy) {
            snprintf(err, errlen, "proxy %s: expected HOST:PORT", c->proxy);
            *stage = ET_STAGE_UPSTREAM_CONNECT;
            return ET_EINVAL;
        }
        snprintf(phost, sizeof(phost), "%.*s", (int)(colon - c->proxy), c->proxy);
        v = strtol(colon + 1, &end, 10);
        if (*end != '\0' || v <= 0 || v > 65535) {
            snprintf(err, errlen, "proxy %s: bad port", c->proxy);
            *stage = ET_STAGE_UPSTREAM_CONNECT;
            return ET_EINVAL;
        }
        pport = (int)v;
        c->fd = tcp_connect(phost, pport, c->timeout_ms, c->peer, sizeof(c->peer), err, errlen,
                            stage);
    } else {
        c->fd = tcp_connect(c->host, c->port, c->timeout_ms, c->peer, sizeof(c->peer), err,
                            errlen, stage);
    }
    if (c->fd < 0)
        return *stage == ET_STAGE_DNS ? ET_EDNS : ET_ECONNREFUSED;
    if (c->proxy != NULL && proxy_connect(c, err, errlen) != 0) {
        *stage = ET_STAGE_UPSTREAM_CONNECT;
        et__probe_conn_close(c);
        return ET_EDENIED;
    }
    if (!c->tls)
        return 0;

    /* Verification is done afterwards on the chain the server sent (tls.c): a failed
     * handshake would hide the very chain the user needs to see. TLS 1.0 is allowed so
     * that step 3 can name an old server's version instead of failing the handshake. */
    {
        char name[300];
        struct et_tls_opts to = {.host = c->host, .name = name, .verify = 0,
                                 .min_version = ET_TLS_1_0, .alpn = "http/1.1"};
        struct et_error e;
        int rc;

        snprintf(name, sizeof(name), "%s:%d", c->host, c->port);
        et_error_clear(&e);
        rc = et_tls_connect(c->fd, &to, &c->tls_conn, &e);
        if (rc != 0) {
            snprintf(err, errlen, "%s", e.msg);
            *stage = ET_STAGE_UPSTREAM_TLS;
            et__probe_conn_close(c);
            return ET_ETLS;
        }
    }
    return 0;
}

/* Reads one framed response into c->in. Returns 0 and *len (bytes of the message), or the
 * failure (ET_ETIMEDOUT, ET_ECONNRESET when nothing came, ET_ETRUNC when cut). */
static int read_response(struct et_probe_conn *c, size_t *len, int *got_any)
{
    size_t skip = 0; /* bytes of interim 1xx responses */
    *got_any = c->in.len > 0;
    for (;;) {
        const uint8_t *he = find_hdr_end(c->in.data + skip, c->in.len - skip);
        if (he != NULL) {
            const uint8_t *p = c->in.data + skip;
            size_t hlen = (size_t)(he - p);
            int status = 0;
            char v[64];
            if (hlen >= 12 && memcmp(p, "HTTP/1.", 7) == 0)
                status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
            if (status >= 100 && status < 200) {
                skip += hlen;
                continue;
            }
            if (status == 204 || status == 304) {
                *len = skip + hlen;
                return 0;
            }
            if (raw_header(p, he, "Transfer-Encoding", v, sizeof(v)) && strstr(v, "chunked")) {
                /* Complete when the decoder's parser says so (it knows chunk framing). */
                struct et_exchange *x = et_exchange_new();
                int rc;
                if (x == NULL)
                    return ET_ENOMEM;
                rc = et_http_parse_response(c->in.data, c->in.len, x, NULL);
                et_exchange_free(x);
                if (rc == 0) {
                    *len = c->in.len;
                    return 0;
                }
            } else if (raw_header(p, he, "Content-Length", v, sizeof(v))) {
                char *end = NULL;
                unsigned long long cl = strtoull(v, &end, 10);
                if (cl > RESP_MAX)
                    return ET_ETOOBIG;
                if (c->in.len - skip >= hlen + cl) {
                    *len = skip + hlen + (size_t)cl;
                    return 0;
                }
            } else {
                c->closed = 1; /* delimited by the end of the connection */
            }
        }
        int r = raw_read(c);
        if (r > 0) {
            *got_any = 1;
            continue;
        }
        if (r == 0 && he != NULL && c->closed) {
            *len = c->in.len;
            return 0;
        }
        if (r == -2)
            return ET_ETIMEDOUT;
        return c->in.len == 0 ? ET_ECONNRESET : ET_ETRUNC;
    }
}

static void fill_tls(struct et_probe_conn *c, struct et_exchange *x)
{
    if (c->tls_conn == NULL)
        return;
    x->tls.present = 1;
    x->tls.sni = et_arena_strdup(x->arena, c->host);
    x->tls.upstream_version = et_arena_strdup(x->arena, et_tls_version(c->tls_conn));
    x->tls.cipher = et_arena_strdup(x->arena, et_tls_cipher(c->tls_conn));
    if (et_tls_alpn(c->tls_conn)[0] != '\0')
        x->tls.alpn = et_arena_strdup(x->arena, et_tls_alpn(c->tls_conn));
}

static int build_request(struct et_buf *b, const struct et_probe_conn *c,
                         const struct et_probe_req *req, const char *headers)
{
    int default_port = c->tls ? 443 : 80;
    int rc = et_buf_printf(b, "%s %s HTTP/1.1\r\nHost: %s", req->method, req->target, c->host);
    if (rc == 0 && c->port != default_port)
        rc = et_buf_printf(b, ":%d", c->port);
    if (rc == 0)
        rc = et_buf_printf(b, "\r\n%s", headers != NULL ? headers : "");
    if (rc == 0 && (req->body_len > 0 || strcmp(req->method, "POST") == 0))
        rc = et_buf_printf(b, "Content-Length: %zu\r\n", req->body_len);
    if (rc == 0)
        rc = et_buf_puts(b, "\r\n");
    if (rc == 0 && req->body_len > 0)
        rc = et_buf_append(b, req->body, req->body_len);
    return rc;
}

int et__probe_conn_exchange(struct et_probe_conn *c, const struct et_probe_req *req,
                            struct et_exchange **out)
{
    struct et_exchange *x = et_exchange_new();
    struct et_buf wire, rec;
    char err[512];
    enum et_stage stage = ET_STAGE_NONE;
    struct et_error we;
    int rc, attempt;
    size_t mlen = 0;

    *out = x;
    if (x == NULL)
        return ET_ENOMEM;
    et_buf_init(&wire, 0);
    et_buf_init(&rec, 0);
    rc = build_request(&wire, c, req, req->headers);
    if (rc == 0)
        rc = build_request(&rec, c, req, req->headers_rec ? req->headers_rec : req->headers);
    if (rc != 0)
        goto out;
    x->source = ET_SRC_PROBE;
    x->source_name = "probe";
    x->scheme = c->tls ? "https" : "http";
    x->host = et_arena_strdup(x->arena, c->host);
    x->port = c->port;
    et_http_parse_request(rec.data, rec.len, x, NULL);

    for (attempt = 0; attempt < 2; attempt++) {
        int got_any = 0, was_reused;
        if (c->fd < 0 || c->closed) {
            et__probe_conn_close(c);
            x->t.connect = et_now_us();
            rc = et__probe_conn_open(c, err, sizeof(err), &stage);
            if (rc != 0) {
                et_exchange_fail(x, rc, stage, "%s", err);
                goto out;
            }
        }
        was_reused = c->reused;
        x->server_addr = et_arena_strdup(x->arena, c->peer);
        fill_tls(c, x);
        et_net_set_timeout(c->fd, req->timeout_ms > 0 ? req->timeout_ms : c->timeout_ms);
        x->t.req_begin = et_now_us();
        et_error_clear(&we);
        if (raw_write(c, wire.data, wire.len, &we) != 0) {
            if (was_reused) { /* the server closed an idle keep-alive connection */
                c->closed = 1;
                continue;
            }
            et_exchange_fail(x, ET_ECONNRESET, ET_STAGE_RESPONSE, "sending the request failed: %s",
                             we.msg);
            rc = ET_ECONNRESET;
            goto out;
        }
        x->t.req_end = et_now_us();
        c->reused = 1;
        rc = read_response(c, &mlen, &got_any);
        x->t.resp_end = et_now_us();
        if (rc == ET_ECONNRESET && was_reused && !got_any) {
            c->closed = 1;
            continue;
        }
        break;
    }
    if (rc != 0) {
        const char *what = rc == ET_ETIMEDOUT ? "no response before the timeout"
                           : rc == ET_ECONNRESET ? "the server closed the connection without a response"
                           : rc == ET_ETOOBIG ? "the response is larger than the probe reads"
                           : "the response was cut short";
        et_exchange_fail(x, rc, ET_STAGE_RESPONSE, "%s", what);
        if (c->in.len > 0)
            et_http_parse_response(c->in.data, c->in.len, x, NULL);
        c->closed = 1;
        goto out;
    }
    x->t.resp_begin = x->t.req_end;
    rc = et_http_parse_response(c->in.data, mlen, x, NULL);
    {
        const char *conn = et_headers_get(&x->resp.headers, "Connection");
        if (conn != NULL && et_strcaseeq(conn, "close"))
            c->closed = 1;
    }
    et_buf_consume(&c->in, mlen);
out:
    et_buf_free(&wire);
    et_buf_free(&rec);
    return rc;
}
