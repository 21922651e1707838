/*
 * The HTTP/1.1 client of ClickHouse's HTTP interface: one request per connection
 * (Connection: close), the query in the body (reports) or in the URL with a chunked body
 * (INSERT data streamed by the loader), the answer read to the end and de-chunked.
 *
 *   connect --> POST /[?query=INSERT...] --> body (Content-Length | chunks)
 *           --> read to EOF --> status line, headers --> body (chunked | length | to EOF)
 *
 * A non-200 answer carries ClickHouse's exception text ("Code: 60, e.displayText() = ...");
 * it becomes the error message, scrubbed for the terminal.
 */
#include "ch_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "eastrace/net.h"

#define CHUNK_MAX (256u * 1024u)

static int timeout_of(const struct et_ch_url *u)
{
    return u->timeout_ms > 0 ? u->timeout_ms : 30000;
}

static int url_encode(struct et_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.' || c == '~';
        int rc = ok ? et_buf_putc(b, c) : et_buf_printf(b, "%%%c%c", hex[c >> 4], hex[c & 15]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The request head: POST (or GET for /ping) with Host, auth and framing. */
static int head(struct et_buf *h, const struct et_ch_url *u, const char *method,
                const char *target_query, int chunked, size_t len)
{
    int rc = et_buf_printf(h, "%s /", method);
    if (rc == 0 && strcmp(method, "GET") == 0)
        rc = et_buf_puts(h, "ping");
    /* No ?database=: every statement names db.table, and the database may not exist yet. */
    if (rc == 0 && target_query != NULL) {
        rc = et_buf_puts(h, "?query=");
        if (rc == 0)
            rc = url_encode(h, target_query);
    }
    if (rc == 0)
        rc = et_buf_printf(h, " HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: eastrace/" ET_VERSION
                              "\r\nConnection: close\r\n",
                           u->host, u->port);
    if (rc == 0 && u->user[0]) {
        struct et_buf cred, b64;
        et_buf_init(&cred, 0);
        et_buf_init(&b64, 0);
        rc = et_buf_printf(&cred, "%s:%s", u->user, u->password ? u->password : "");
        if (rc == 0)
            rc = et_base64_encode(&b64, cred.data, cred.len);
        if (rc == 0)
            rc = et_buf_printf(h, "Authorization: Basic %s\r\n", (const char *)b64.data);
        memset(cred.data, 0, cred.len);
        et_buf_free(&cred);
        et_buf_free(&b64);
    }
    if (rc == 0 && strcmp(method, "POST") == 0)
        rc = chunked ? et_buf_puts(h, "Transfer-Encoding: chunked\r\n")
                     : et_buf_printf(h, "Content-Length: %zu\r\n", len);
    if (rc == 0)
        rc = et_buf_puts(h, "\r\n");
    return rc;
}

static void prefix_error(struct et_error *e, const struct et_ch_url *u)
{
    char m[600];
    if (strncmp(e->msg, "ClickHouse", 10) == 0)
        return;
    snprintf(m, sizeof(m), "ClickHouse at %.200s:%d: %s", u->host, u->port, e->msg);
    snprintf(e->msg, sizeof(e->msg), "%.255s", m);
}

/* Reads wait longer than connects: an aggregation over months of logs answers only when it
 * is done. EASTRACE_CH_QUERY_TIMEOUT (seconds, default 3600) bounds the wait. */
static int query_timeout_ms(void)
{
    const char *v = getenv("EASTRACE_CH_QUERY_TIMEOUT");
    long s = v ? strtol(v, NULL, 10) : 0;
    return s > 0 && s < 86400 * 7 ? (int)(s * 1000) : 3600 * 1000;
}

static int open_conn(const struct et_ch_url *u, struct et_error *e)
{
    char what[300];
    snprintf(what, sizeof(what), "ClickHouse at %s:%d", u->host, u->port);
    int fd = et_net_connect(u->host, u->port, timeout_of(u), what, NULL, 0, e);
    if (fd >= 0) {
        int ms = query_timeout_ms();
        struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    return fd;
}

static int send_all(int fd, const struct et_ch_url *u, const void *p, size_t n,
                    struct et_error *e)
{
    int rc = et_net_write_all(fd, p, n, "ClickHouse", e);
    if (rc < 0)
        prefix_error(e, u);
    return rc;
}

/* Finds a header's value (case-insensitive name) in the head [p, end); 1 when found. */
static int header(const char *p, const char *end, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && et_strncaseeq(p, name, nl)) {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            snprintf(out, outlen, "%.*s", (int)(ve - v), v);
            return 1;
        }
        p = eol + 1;
    }
    return 0;
}

/* De-chunks body [p, p+n) into out. Returns 0 or ET_EPARSE. */
static int dechunk(const char *p, size_t n, struct et_buf *out)
{
    const char *end = p + n;
    for (;;) {
        char *ep;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            return ET_EPARSE;
        unsigned long long len = strtoull(p, &ep, 16);
        if (ep == p)
            return ET_EPARSE;
        p = eol + 1;
        if (len == 0)
            return 0;
        if (len > (unsigned long long)(end - p))
            return ET_EPARSE;
        if (et_buf_append(out, p, (size_t)len) < 0)
            return ET_ETOOBIG;
        p += len;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
            p += 2;
        else if (end - p >= 1 && p[0] == '\n')
            p += 1;
        else
            return ET_EPARSE;
    }
}

/* The first line of ClickHouse's exception text, without the "e.what()" tail. */
static void server_message(const char *body, size_t n, char *out, size_t outlen)
{
    const char *eol = memchr(body, '\n', n);
    size_t l = eol ? (size_t)(eol - body) : n;
    const char *w = NULL;
    for (size_t i = 0; i + 10 <= l; i++)
        if (memcmp(body + i, ", e.what()", 10) == 0) {
            w = body + i;
            break;
        }
    if (w != NULL)
        l = (size_t)(w - body);
    snprintf(out, outlen, "%.*s", (int)(l > 400 ? 400 : l), body);
    et_str_printable(out);
}

/* Reads the whole answer of fd and puts its body in resp. */
static int read_answer(int fd, const struct et_ch_url *u, struct et_buf *resp,
                       struct et_error *e)
{
    struct et_buf in;
    char buf[65536], v[128];
    int rc = 0, status = 0;

    et_buf_init(&in, ET__CH_RESP_MAX);
    for (;;) {
        long n = et_net_read(fd, buf, sizeof(buf), "ClickHouse", e);
        if (n < 0) {
            prefix_error(e, u);
            rc = (int)n;
            goto out;
        }
        if (n == 0)
            break;
        if (et_buf_append(&in, buf, (size_t)n) < 0) {
            et_error_set(e, ET_ETOOBIG, "ClickHouse at %s:%d: answer larger than %zu MiB",
                         u->host, u->port, ET__CH_RESP_MAX >> 20);
            rc = ET_ETOOBIG;
            goto out;
        }
    }
    const char *p = (const char *)in.data, *end = p + in.len;
    const char *he = in.len ? strstr(p, "\r\n\r\n") : NULL;
    if (in.len == 0) {
        et_error_set(e, ET_ECONNRESET,
                     "ClickHouse at %s:%d: the server closed the connection without an answer "
                     "(is this ClickHouse's HTTP port? the native protocol port is different)",
                     u->host, u->port);
        rc = ET_ECONNRESET;
        goto out;
    }
    if (in.len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || he == NULL ||
        sscanf(p + 9, "%3d", &status) != 1) {
        et_error_set(e, ET_EPARSE,
                     "ClickHouse at %s:%d: the answer is not HTTP (is this ClickHouse's HTTP "
                     "port, 8123 by default?)", u->host, u->port);
        rc = ET_EPARSE;
        goto out;
    }
    he += 4;
    et_buf_reset(resp);
    if (header(p, he, "Transfer-Encoding", v, sizeof(v)) && et_strcaseeq(v, "chunked")) {
        rc = dechunk(he, (size_t)(end - he), resp);
        if (rc < 0) {
            et_error_set(e, rc, "ClickHouse at %s:%d: bad chunked answer", u->host, u->port);
            goto out;
        }
    } else {
        size_t n = (size_t)(end - he);
        if (header(p, he, "Content-Length", v, sizeof(v))) {
            unsigned long long cl = strtoull(v, NULL, 10);
            if (cl < n)
                n = (size_t)cl;
        }
        if (et_buf_append(resp, he, n) < 0) {
            rc = ET_ENOMEM;
            et_error_set(e, rc, "ClickHouse answer");
            goto out;
        }
    }
    if (status != 200) {
        char m[420];
        int is_ch = header(p, he, "X-ClickHouse-Server-Display-Name", v, sizeof(v)) ||
                    (resp->len > 6 && memcmp(resp->data, "Code: ", 6) == 0);
        if (!is_ch) {
            et_error_set(e, ET_EDENIED,
                         "%s:%d answered HTTP %d and is not ClickHouse's HTTP interface (check "
                         "HOST:PORT of the URL)", u->host, u->port, status);
        } else {
            server_message((const char *)resp->data, resp->len, m, sizeof(m));
            et_error_set(e, ET_EDENIED, "ClickHouse at %s:%d refused the query (HTTP %d): %s",
                         u->host, u->port, status, m[0] ? m : "no message");
        }
        rc = ET_EDENIED;
    }
out:
    et_buf_free(&in);
    return rc;
}

int et__ch_begin(struct et__ch_req *r, const struct et_ch_url *u, const char *insert_sql,
                 struct et_error *e)
{
    struct et_buf h;
    int rc;
    memset(r, 0, sizeof(*r));
    r->u = u;
    r->fd = -1;
    et_buf_init(&r->out, 0);
    et_buf_init(&h, 0);
    if (head(&h, u, "POST", insert_sql, 1, 0) < 0) {
        et_buf_free(&h);
        et_error_set(e, ET_ENOMEM, "ClickHouse request");
        return ET_ENOMEM;
    }
    rc = open_conn(u, e);
    if (rc >= 0) {
        r->fd = rc;
        rc = send_all(r->fd, u, h.data, h.len, e);
    }
    et_buf_free(&h);
    if (rc < 0)
        et__ch_abort(r);
    return rc < 0 ? rc : 0;
}

static int flush_chunk(struct et__ch_req *r, struct et_error *e)
{
    char hd[32];
    int n;
    if (r->out.len == 0)
        return 0;
    n = snprintf(hd, sizeof(hd), "%zx\r\n", r->out.len);
    if (et_buf_append(&r->out, "\r\n", 2) < 0) {
        et_error_set(e, ET_ENOMEM, "ClickHouse request");
        return ET_ENOMEM;
    }
    int rc = send_all(r->fd, r->u, hd, (size_t)n, e);
    if (rc == 0)
        rc = send_all(r->fd, r->u, r->out.data, r->out.len, e);
    r->sent += r->out.len - 2;
    et_buf_reset(&r->out);
    return rc;
}

int et__ch_write(struct et__ch_req *r, const void *p, size_t n, struct et_error *e)
{
    if (et_buf_append(&r->out, p, n) < 0) {
        et_error_set(e, ET_ENOMEM, "ClickHouse request");
        return ET_ENOMEM;
    }
    return r->out.len >= CHUNK_MAX ? flush_chunk(r, e) : 0;
}

void et__ch_abort(struct et__ch_req *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    et_buf_free(&r->out);
}

int et__ch_end(struct et__ch_req *r, struct et_buf *resp, struct et_error *e)
{
    int rc = flush_chunk(r, e);
    if (rc == 0)
        rc = send_all(r->fd, r->u, "0\r\n\r\n", 5, e);
    if (rc == 0)
        rc = read_answer(r->fd, r->u, resp, e);
    else {
        /* The server may have refused the data early (bad format): its answer says why. */
        struct et_error e2;
        et_error_clear(&e2);
        if (read_answer(r->fd, r->u, resp, &e2) == ET_EDENIED) {
            e->code = 0;
            et_error_set(e, ET_EDENIED, "%s", e2.msg);
            rc = ET_EDENIED;
        }
    }
    et__ch_abort(r);
    return rc;
}

int et__ch_query(const struct et_ch_url *u, const char *sql, struct et_buf *resp,
                 struct et_error *e)
{
    struct et_buf h;
    size_t n = strlen(sql);
    int fd, rc;
    /* EASTRACE_CH_TRACE=1: every query and its wall time on stderr (tuning, bug reports). */
    const char *trace = getenv("EASTRACE_CH_TRACE");
    int64_t t0 = trace && *trace == '1' ? et_now_us() : 0;
    et_buf_init(&h, 0);
    if (head(&h, u, "POST", NULL, 0, n) < 0) {
        et_buf_free(&h);
        et_error_set(e, ET_ENOMEM, "ClickHouse request");
        return ET_ENOMEM;
    }
    fd = open_conn(u, e);
    if (fd < 0) {
        et_buf_free(&h);
        return fd;
    }
    rc = send_all(fd, u, h.data, h.len, e);
    if (rc == 0)
        rc = send_all(fd, u, sql, n, e);
    if (rc == 0)
        rc = read_answer(fd, u, resp, e);
    close(fd);
    et_buf_free(&h);
    if (t0)
        fprintf(stderr, "clickhouse: %.3f s, %zu bytes: %s\n",
                (double)(et_now_us() - t0) / 1e6, rc == 0 ? resp->len : 0, sql);
    return rc;
}

int et__ch_ping(const struct et_ch_url *u, struct et_error *e)
{
    struct et_buf h, resp;
    int fd, rc;
    et_buf_init(&h, 0);
    et_buf_init(&resp, 1 << 20);
    if (head(&h, u, "GET", NULL, 0, 0) < 0) {
        et_buf_free(&h);
        et_error_set(e, ET_ENOMEM, "ClickHouse request");
        return ET_ENOMEM;
    }
    fd = open_conn(u, e);
    rc = fd < 0 ? fd : send_all(fd, u, h.data, h.len, e);
    if (rc == 0)
        rc = read_answer(fd, u, &resp, e);
    if (rc == 0 && (resp.len < 3 || memcmp(resp.data, "Ok.", 3) != 0)) {
        et_error_set(e, ET_EPARSE,
                     "%s:%d answered /ping without \"Ok.\": not ClickHouse's HTTP interface "
                     "(check HOST:PORT of the URL)", u->host, u->port);
        rc = ET_EPARSE;
    }
    if (fd >= 0)
        close(fd);
    et_buf_free(&h);
    et_buf_free(&resp);
    return rc;
}

/* ---- TabSeparated and SQL literals ---------------------------------------------------- */

int et__ch_tsv_put(struct et_buf *b, const void *p, size_t n)
{
    const uint8_t *s = p, *end = s + n, *run = s;
    if (et_buf_reserve(b, n + 8) < 0)
        return ET_ENOMEM;
    for (; s < end; s++) {
        const char *esc = NULL;
        switch (*s) {
        case '\\': esc = "\\\\"; break;
        case '\t': esc = "\\t"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\0': esc = "\\0"; break;
        default: continue;
        }
        if (et_buf_append(b, run, (size_t)(s - run)) < 0 || et_buf_append(b, esc, 2) < 0)
            return ET_ENOMEM;
        run = s + 1;
    }
    return et_buf_append(b, run, (size_t)(end - run)) < 0 ? ET_ENOMEM : 0;
}

size_t et__ch_tsv_unescape(char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            char d = s[++i];
            switch (d) {
            case 't': c = '\t'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case '0': c = '\0'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            default: c = d; break; /* \\ \' and anything else: the character itself */
            }
        }
        s[o++] = c;
    }
    return o;
}

int et__ch_sql_str(struct et_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    if (et_buf_putc(b, '\'') < 0)
        return ET_ENOMEM;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int rc;
        if (c == '\'' || c == '\\')
            rc = et_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            rc = et_buf_printf(b, "\\x%c%c", hex[c >> 4], hex[c & 15]);
        else
            rc = et_buf_putc(b, c);
        if (rc < 0)
            return ET_ENOMEM;
    }
    return et_buf_putc(b, '\'') < 0 ? ET_ENOMEM : 0;
}
