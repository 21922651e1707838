/*
 * Fiddler .saz writer.
 *
 * libzip assembles an archive only when it is closed, from sources that must stay readable
 * until then. To keep memory flat, each session's three files are appended to a staging file
 * beside the output and only (offset, length) is remembered; _index.htm rows go to a second
 * staging file. At close the entries are added as ranges of the staging file with Fiddler's
 * names (raw/NN_c.txt with as many digits as the session count needs), then _index.htm and
 * [Content_Types].xml, and libzip writes the archive (atomically, via its own temp file).
 *
 *   add():   stage  += NN_c.txt | NN_s.txt | NN_m.xml        rows += "<td>N</td>...</tr>"
 *   close(): zip_file_add(raw/, raw/NN_c.txt = stage[off,len), ..., _index.htm, [Content_Types])
 */
#include "eastrace/saz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#include "har_int.h"
#include "eastrace/redact.h"

struct span {
    uint64_t off, len;
};

struct et_saz_writer {
    char *path;
    char *stage_path, *rows_path;
    FILE *stage, *rows;
    uint64_t stage_off;
    struct et_saz_write_opts opts;
    struct span *spans; /* 3 per session: c, s, m */
    size_t n, cap;
    int failed;
};

/* A body under the redaction policy (Password elements masked, same length), or the body as
 * recorded when there is nothing to mask or no memory to do it. */
static const uint8_t *redacted_body(struct et_arena *a, const struct et_headers *h,
                                    const struct et_body *body)
{
    const uint8_t *r = et_redact_body(a, h, body);
    return r != NULL ? r : body->data;
}

static const char content_types[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\r\n"
    "<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\r\n"
    "<Default Extension=\"htm\" ContentType=\"text/html\" />\r\n"
    "<Default Extension=\"xml\" ContentType=\"application/xml\" />\r\n"
    "<Default Extension=\"txt\" ContentType=\"text/plain\" />\r\n"
    "</Types>";

static int stage_write(struct et_saz_writer *w, const struct et_buf *b, struct span *sp)
{
    sp->off = w->stage_off;
    sp->len = b->len;
    if (b->len > 0 && fwrite(b->data, 1, b->len, w->stage) != b->len)
        return ET_EIO;
    w->stage_off += b->len;
    return 0;
}

static void put_headers(struct et_buf *b, struct et_arena *a, const struct et_headers *h,
                        int include_secrets)
{
    for (size_t i = 0; i < h->n; i++) {
        const char *v = h->v[i].value;
        if (!include_secrets)
            v = et__redact_header(a, h->v[i].name, v);
        et_buf_printf(b, "%s: %s\r\n", h->v[i].name, v != NULL ? v : ET__REDACTED);
    }
    et_buf_puts(b, "\r\n");
}

/*
 * The headers of a message whose body is written as held: chunked framing already removed,
 * content coding removed when the recorder did (HAR), possibly cut by a capture cap. So that
 * raw/NN_*.txt stays valid HTTP (Fiddler and any HTTP parser read it), "chunked" leaves
 * Transfer-Encoding, Content-Encoding goes when the body is already decoded, and the
 * Content-Length says how many bytes follow. A message without a body that declared none is
 * written unchanged (a HEAD answer's or a 304's Content-Length describes another body).
 */
static void put_framed_headers(struct et_buf *b, struct et_arena *a, const struct et_headers *h,
                               const struct et_body *body, int bodiless, int include_secrets)
{
    const char *te = et_headers_get(h, "Transfer-Encoding");
    const char *cl = et_headers_get(h, "Content-Length");
    int chunked = 0;
    char num[32];
    int reframe;

    for (const char *p = te; p != NULL && *p != '\0'; p++)
        if (et_strncaseeq(p, "chunked", 7))
            chunked = 1;
    snprintf(num, sizeof(num), "%zu", body->len);
    reframe = body->len > 0 || (chunked && !bodiless) || body->content_decoded ||
              (cl != NULL && !bodiless && strcmp(cl, num) != 0);
    if (!reframe) {
        put_headers(b, a, h, include_secrets);
        return;
    }
    for (size_t i = 0; i < h->n; i++) {
        const char *n = h->v[i].name, *v = h->v[i].value;
        if (et_strcaseeq(n, "Content-Length"))
            continue;
        if (et_strcaseeq(n, "Content-Encoding") && body->content_decoded)
            continue;
        if (et_strcaseeq(n, "Transfer-Encoding")) {
            /* Keep any other transfer coding, drop chunked. */
            char rest[256];
            size_t k = 0;
            for (const char *p = v; *p != '\0';) {
                size_t tl = strcspn(p, ",");
                const char *t = p;
                size_t tn = tl;
                while (tn > 0 && (*t == ' ' || *t == '\t'))
                    t++, tn--;
                while (tn > 0 && (t[tn - 1] == ' ' || t[tn - 1] == '\t'))
                    tn--;
                if (tn > 0 && !(tn == 7 && et_strncaseeq(t, "chunked", 7)) &&
                    k + tn + 2 < sizeof(rest)) {
                    if (k > 0) {
                        rest[k++] = ',';
                        rest[k++] = ' ';
                    }
                    memcpy(rest + k, t, tn);
                    k += tn;
                }
                p += tl;
                if (*p == ',')
                    p++;
            }
            rest[k] = '\0';
            if (k > 0)
                et_buf_printf(b, "%s: %s\r\n", n, rest);
            continue;
        }
        if (!include_secrets)
            v = et__redact_header(a, n, v);
        et_buf_printf(b, "%s: %s\r\n", n, v != NULL ? v : ET__REDACTED);
    }
    et_buf_printf(b, "Content-Length: %s\r\n\r\n", num);
}

static const char *meta_get(const struct et_exchange *x, const char *name)
{
    return et_headers_get(&x->meta, name);
}

/* A timer from meta ("fiddler-timer-<Name>") when the exchange came from a .saz, else
 * derived from the timings we have. */
static void put_timer(struct et_buf *b, const struct et_exchange *x, const char *name,
                      int64_t us, int duration)
{
    char key[64], ts[40];
    const char *v;
    snprintf(key, sizeof(key), "fiddler-timer-%s", name);
    v = meta_get(x, key);
    if (v == NULL)
        v = duration ? "0" : et__time_format(us, 7, ts, sizeof(ts));
    et_buf_printf(b, " %s=\"", name);
    et_buf_put_xml_escaped(b, v, strlen(v));
    et_buf_putc(b, '"');
}

static int skip_flag(const char *n)
{
    return strncmp(n, "fiddler-", 8) == 0 || strcmp(n, "x-clientip") == 0 ||
           strcmp(n, "x-clientport") == 0 || strcmp(n, "x-hostip") == 0 ||
           strncmp(n, "x-eastrace-error", 16) == 0 || strcmp(n, "x-eastrace-via") == 0 ||
           strcmp(n, "x-eastrace-reverse") == 0;
}

static void put_flag(struct et_buf *b, const char *n, const char *v)
{
    et_buf_puts(b, "    <SessionFlag N=\"");
    et_buf_put_xml_escaped(b, n, strlen(n));
    et_buf_puts(b, "\" V=\"");
    et_buf_put_xml_escaped(b, v, strlen(v));
    et_buf_puts(b, "\" />\r\n");
}

static void format_meta(struct et_buf *b, const struct et_exchange *x, uint32_t sid)
{
    const struct et_timings *t = &x->t;
    const char *v;
    char tmp[128];

    et_buf_puts(b, "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n");
    v = meta_get(x, "fiddler-bitflags");
    et_buf_printf(b, "<Session SID=\"%u\" BitFlags=\"", sid);
    et_buf_put_xml_escaped(b, v != NULL ? v : "0", v != NULL ? strlen(v) : 1);
    et_buf_puts(b, "\">\r\n  <SessionTimers");
    put_timer(b, x, "ClientConnected", t->connect, 0);
    et_buf_printf(b, " ClientBeginRequest=\"%s\"", et__time_format(t->req_begin, 7, tmp, 40));
    put_timer(b, x, "GotRequestHeaders", t->req_begin, 0);
    et_buf_printf(b, " ClientDoneRequest=\"%s\"", et__time_format(t->req_end, 7, tmp, 40));
    put_timer(b, x, "GatewayTime", 0, 1);
    put_timer(b, x, "DNSTime", 0, 1);
    put_timer(b, x, "TCPConnectTime", 0, 1);
    put_timer(b, x, "HTTPSHandshakeTime", 0, 1);
    put_timer(b, x, "ServerConnected", t->connect, 0);
    put_timer(b, x, "FiddlerBeginRequest", t->req_end, 0);
    put_timer(b, x, "ServerGotRequest", t->req_end, 0);
    et_buf_printf(b, " ServerBeginResponse=\"%s\"", et__time_format(t->resp_begin, 7, tmp, 40));
    put_timer(b, x, "GotResponseHeaders", t->resp_begin, 0);
    put_timer(b, x, "ServerDoneResponse", t->resp_end, 0);
    put_timer(b, x, "ClientBeginResponse", t->resp_begin, 0);
    et_buf_printf(b, " ClientDoneResponse=\"%s\"", et__time_format(t->resp_end, 7, tmp, 40));
    et_buf_puts(b, " />\r\n  <PipeInfo />\r\n  <SessionFlags>\r\n");
    if (x->client_addr != NULL) {
        /* "ip:port", "[v6]:port" or a bare address. */
        const char *ca = x->client_addr, *colon = strrchr(ca, ':');
        if (ca[0] == '[' && strchr(ca, ']') != NULL) {
            const char *rb = strchr(ca, ']');
            snprintf(tmp, sizeof(tmp), "%.*s", (int)(rb - ca - 1), ca + 1);
            put_flag(b, "x-clientip", tmp);
            put_flag(b, "x-clientport", rb[1] == ':' ? rb + 2 : "0");
        } else if (colon != NULL && strchr(ca, ':') == colon) {
            snprintf(tmp, sizeof(tmp), "%.*s", (int)(colon - ca), ca);
            put_flag(b, "x-clientip", tmp);
            put_flag(b, "x-clientport", colon + 1);
        } else {
            put_flag(b, "x-clientip", ca);
        }
    }
    if (x->server_addr != NULL)
        put_flag(b, "x-hostip", x->server_addr);
    /* The reverse proxy's facts (capture tag 0x25): the balancer that relayed the client. */
    if (x->via_addr != NULL)
        put_flag(b, "x-eastrace-via", x->via_addr);
    if (x->reverse)
        put_flag(b, "x-eastrace-reverse", "1");
    if (x->err.code != 0) {
        put_flag(b, "x-eastrace-error", x->err.message != NULL ? x->err.message : "");
        snprintf(tmp, sizeof(tmp), "%d", x->err.code);
        put_flag(b, "x-eastrace-error-code", tmp);
        snprintf(tmp, sizeof(tmp), "%d", (int)x->err.stage);
        put_flag(b, "x-eastrace-error-stage", tmp);
    }
    for (size_t i = 0; i < x->meta.n; i++)
        if (!skip_flag(x->meta.v[i].name))
            put_flag(b, x->meta.v[i].name, x->meta.v[i].value);
    et_buf_puts(b, "  </SessionFlags>\r\n</Session>");
}

static void put_td(struct et_buf *b, const char *s)
{
    et_buf_puts(b, "<td>");
    if (s != NULL)
        et_buf_put_xml_escaped(b, s, strlen(s));
    et_buf_puts(b, "</td>");
}

static int format_session(struct et_saz_writer *w, const struct et_exchange *x,
                          struct et_arena *a, struct et_buf *b, struct span sp[3])
{
    int sec = w->opts.include_secrets, rc;
    const char *target = et__export_target(a, x->req.target, sec);
    uint32_t sid;
    const char *v;
    char num[32];

    if (x->req.target != NULL && target == NULL)
        return ET_ENOMEM;
    if (target != NULL && !sec && (target = et__redact_url(a, target)) == NULL)
        return ET_ENOMEM;

    /* Fiddler writes absolute-form targets ("GET https://host/path"), which is also the only
     * place a .saz keeps the scheme and port. */
    if (target != NULL && target[0] == '/' && x->host != NULL) {
        int v6 = strchr(x->host, ':') != NULL;
        const char *scheme = x->scheme != NULL ? x->scheme : x->port == 443 ? "https" : "http";
        int dflt = x->port == 0 || (x->port == 443 && et_strcaseeq(scheme, "https")) ||
                   (x->port == 80 && et_strcaseeq(scheme, "http"));
        char port[16] = "";
        if (!dflt)
            snprintf(port, sizeof(port), ":%d", x->port);
        target = et_arena_printf(a, "%s://%s%s%s%s%s", scheme, v6 ? "[" : "", x->host,
                                 v6 ? "]" : "", port, target);
        if (target == NULL)
            return ET_ENOMEM;
    }
    /* raw/NN_c.txt: the request as on the wire. */
    et_buf_reset(b);
    et_buf_printf(b, "%s %s HTTP/%u.%u\r\n", x->req.method != NULL ? x->req.method : "GET",
                  target != NULL ? target : "/", (unsigned)x->req.http_major,
                  (unsigned)x->req.http_minor);
    put_framed_headers(b, a, &x->req.headers, &x->req.body, 0, sec);
    if (x->req.body.len > 0 &&
        (rc = et_buf_append(b, sec ? x->req.body.data : redacted_body(a, &x->req.headers,
                                                                       &x->req.body),
                            x->req.body.len)) != 0)
        return rc;
    if ((rc = stage_write(w, b, &sp[0])) != 0)
        return rc;

    /* raw/NN_s.txt: empty when there was no response. */
    et_buf_reset(b);
    if (x->has_response) {
        et_buf_printf(b, "HTTP/%u.%u %d %s\r\n", (unsigned)x->resp.http_major,
                      (unsigned)x->resp.http_minor, x->resp.status,
                      x->resp.reason != NULL ? x->resp.reason : "");
        /* No body by definition: 1xx, 204, 304 and the answer to HEAD (RFC 9112 6.3). */
        int bodiless = (x->resp.status >= 100 && x->resp.status < 200) ||
                       x->resp.status == 204 || x->resp.status == 304 ||
                       (x->req.method != NULL && strcmp(x->req.method, "HEAD") == 0) ||
                       (x->req.method != NULL && strcmp(x->req.method, "CONNECT") == 0 &&
                        x->resp.status / 100 == 2);
        put_framed_headers(b, a, &x->resp.headers, &x->resp.body, bodiless, sec);
        if (x->resp.body.len > 0 &&
            (rc = et_buf_append(b, sec ? x->resp.body.data
                                       : redacted_body(a, &x->resp.headers, &x->resp.body),
                                x->resp.body.len)) != 0)
            return rc;
    }
    if ((rc = stage_write(w, b, &sp[1])) != 0)
        return rc;

    v = meta_get(x, "fiddler-sid");
    sid = v != NULL ? (uint32_t)strtoul(v, NULL, 10) : (uint32_t)x->id;
    et_buf_reset(b);
    format_meta(b, x, sid);
    if ((rc = stage_write(w, b, &sp[2])) != 0)
        return rc;

    /* The _index.htm row, without its first cell (the links need the final digit width). */
    et_buf_reset(b);
    snprintf(num, sizeof(num), "%u", sid);
    put_td(b, num);
    snprintf(num, sizeof(num), "%d", x->has_response ? x->resp.status : 0);
    put_td(b, x->has_response ? num : "-");
    put_td(b, x->req.method != NULL && strcmp(x->req.method, "CONNECT") == 0
                  ? "HTTP"
                  : (x->scheme != NULL && et_strcaseeq(x->scheme, "https") ? "HTTPS" : "HTTP"));
    put_td(b, x->host);
    put_td(b, target);
    snprintf(num, sizeof(num), "%zu", x->resp.body.len);
    put_td(b, num);
    put_td(b, et_headers_get(&x->resp.headers, "Cache-Control"));
    put_td(b, et_headers_get(&x->resp.headers, "Content-Type"));
    put_td(b, meta_get(x, "x-processinfo"));
    put_td(b, NULL);
    put_td(b, NULL);
    et_buf_puts(b, "</tr>\n");
    if (fwrite(b->data, 1, b->len, w->rows) != b->len)
        return ET_EIO;
    return 0;
}

int et_saz_writer_add(struct et_saz_writer *w, const struct et_exchange *x, struct et_error *e)
{
    struct et_arena *a;
    struct et_buf b;
    int rc;

    if (w->failed) {
        et_error_set(e, ET_EIO, "%s: writer failed earlier", w->path);
        return ET_EIO;
    }
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 64;
        struct span *ns = et_realloc(w->spans, nc * 3 * sizeof(*ns));
        if (ns == NULL) {
            et_error_set(e, ET_ENOMEM, "%s: out of memory", w->path);
            return ET_ENOMEM;
        }
        w->spans = ns;
        w->cap = nc;
    }
    if (w->n >= ET_SAZ_MAX_ENTRIES / 3) {
        et_error_set(e, ET_ETOOBIG, "%s: more than %d sessions", w->path,
                     ET_SAZ_MAX_ENTRIES / 3);
        return ET_ETOOBIG;
    }
    if ((a = et_arena_new(0)) == NULL) {
        et_error_set(e, ET_ENOMEM, "%s: out of memory", w->path);
        return ET_ENOMEM;
    }
    et_buf_init(&b, (size_t)ET_SAZ_MAX_ENTRY);
    rc = format_session(w, x, a, &b, &w->spans[w->n * 3]);
    et_buf_free(&b);
    et_arena_free(a);
    if (rc != 0) {
        w->failed = 1;
        et_error_set(e, rc, "%s: session %llu: %s", w->path, (unsigned long long)x->id,
                     rc == ET_EIO ? strerror(errno) : et_strerror(rc));
        return rc;
    }
    w->n++;
    return 0;
}

static FILE *stage_file(const char *path, const char *what, char **name)
{
    size_t n = strlen(path) + 32;
    char *p = et_malloc(n);
    int fd;
    FILE *f;
    if (p == NULL)
        return NULL;
    snprintf(p, n, "%s.%s.XXXXXX", path, what);
    if ((fd = mkstemp(p)) < 0 || (f = fdopen(fd, "w+b")) == NULL) {
        if (fd >= 0) {
            close(fd);
            unlink(p);
        }
        et_free(p);
        return NULL;
    }
    *name = p;
    return f;
}

static void writer_free(struct et_saz_writer *w)
{
    if (w->stage != NULL)
        fclose(w->stage);
    if (w->rows != NULL)
        fclose(w->rows);
    if (w->stage_path != NULL)
        unlink(w->stage_path);
    if (w->rows_path != NULL)
        unlink(w->rows_path);
    et_free(w->stage_path);
    et_free(w->rows_path);
    et_free(w->spans);
    et_free(w->path);
    et_free(w);
}

int et_saz_writer_open(const char *path, const struct et_saz_write_opts *opts,
                       struct et_saz_writer **out, struct et_error *e)
{
    struct et_saz_writer *w;
    *out = NULL;
    if ((w = et_calloc(1, sizeof(*w))) == NULL || (w->path = et_strdup(path)) == NULL) {
        et_free(w);
        et_error_set(e, ET_ENOMEM, "%s: out of memory", path);
        return ET_ENOMEM;
    }
    if (opts != NULL)
        w->opts = *opts;
    if ((w->stage = stage_file(path, "stage", &w->stage_path)) == NULL ||
        (w->rows = stage_file(path, "rows", &w->rows_path)) == NULL) {
        et_error_set(e, ET_EIO, "%s: cannot create a staging file beside it: %s", path,
                     strerror(errno));
        writer_free(w);
        return ET_EIO;
    }
    *out = w;
    return 0;
}

/* Adds stage[off, off+len) as an entry (an empty buffer when len is 0: libzip reads a file
 * source of length 0 to its end). */
static int add_range(zip_t *za, const char *stage, const char *name, struct span sp)
{
    zip_source_t *src = sp.len == 0 ? zip_source_buffer(za, NULL, 0, 0)
                                     : zip_source_file(za, stage, sp.off, (zip_int64_t)sp.len);
    if (src == NULL)
        return -1;
    if (zip_file_add(za, name, src, ZIP_FL_ENC_UTF_8) < 0) {
        zip_source_free(src);
        return -1;
    }
    return 0;
}

int et_saz_writer_close(struct et_saz_writer *w, struct et_error *e)
{
    zip_t *za = NULL;
    int zerr = 0, rc = 0, width = 1;
    char name[128], line[8192];
    static const char kinds[3][8] = {"c.txt", "s.txt", "m.xml"};
    static const char comment[] = "Fiddler-compatible Session Archive written by eastrace";
    struct span idx;

    if (w == NULL)
        return 0;
    if (w->failed) {
        rc = ET_EIO;
        et_error_set(e, rc, "%s: not written: an earlier session failed", w->path);
        goto out;
    }
    for (size_t n = w->n; n >= 10; n /= 10)
        width++;

    /* _index.htm goes at the end of the staging file, built from the staged rows. */
    idx.off = w->stage_off;
    fputs("\xEF\xBB\xBF<html><head><style>body,thead,td,a,p{font-family:verdana,sans-serif;"
          "font-size: 10px;}</style></head><body><table cols=12><thead><tr><th>&nbsp;</th>"
          "<th>#</th><th>Result</th><th>Protocol</th><th>Host</th><th>URL</th><th>Body</th>"
          "<th>Caching</th><th>Content-Type</th><th>Process</th><th>Comments</th>"
          "<th>Custom</th></tr></thead><tbody>",
          w->stage);
    rewind(w->rows);
    for (size_t i = 0; i < w->n && fgets(line, sizeof(line), w->rows) != NULL; i++) {
        size_t ll = strlen(line);
        fprintf(w->stage,
                "<tr><td><a href='raw\\%0*zu_c.txt'>C</a>&nbsp;<a href='raw\\%0*zu_s.txt'>S</a>"
                "&nbsp;<a href='raw\\%0*zu_m.xml'>M</a></td>",
                width, i + 1, width, i + 1, width, i + 1);
        if (ll > 0 && line[ll - 1] == '\n')
            line[--ll] = '\0';
        fputs(line, w->stage);
        /* A row longer than the line buffer continues on the next fgets. */
        while (ll == sizeof(line) - 1 && line[ll - 1] != '\n' &&
               fgets(line, sizeof(line), w->rows) != NULL) {
            ll = strlen(line);
            if (ll > 0 && line[ll - 1] == '\n')
                line[--ll] = '\0';
            fputs(line, w->stage);
        }
    }
    fputs("</tbody></table></body></html>", w->stage);
    if (fflush(w->stage) != 0 || ferror(w->stage)) {
        rc = ET_EIO;
        et_error_set(e, rc, "%s: staging: %s", w->path, strerror(errno));
        goto out;
    }
    idx.len = (uint64_t)ftello(w->stage) - idx.off;

    if ((za = zip_open(w->path, ZIP_CREATE | ZIP_TRUNCATE, &zerr)) == NULL) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        rc = ET_EIO;
        et_error_set(e, rc, "%s: %s", w->path, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        goto out;
    }
    zip_set_archive_comment(za, comment, (zip_uint16_t)strlen(comment));
    if (zip_dir_add(za, "raw", ZIP_FL_ENC_UTF_8) < 0)
        goto zfail;
    for (size_t i = 0; i < w->n; i++)
        for (int k = 0; k < 3; k++) {
            snprintf(name, sizeof(name), "raw/%0*u_%s", width & 15, (unsigned)(i + 1), kinds[k]);
            if (add_range(za, w->stage_path, name, w->spans[i * 3 + (size_t)k]) != 0)
                goto zfail;
        }
    if (add_range(za, w->stage_path, "_index.htm", idx) != 0)
        goto zfail;
    {
        zip_source_t *src = zip_source_buffer(za, content_types, sizeof(content_types) - 1, 0);
        if (src == NULL || zip_file_add(za, "[Content_Types].xml", src, 0) < 0) {
            zip_source_free(src);
            goto zfail;
        }
    }
    if (zip_close(za) != 0)
        goto zfail;
    za = NULL;
    goto out;
zfail:
    rc = ET_EIO;
    et_error_set(e, rc, "%s: %s", w->path, zip_strerror(za));
    zip_discard(za);
    unlink(w->path);
out:
    writer_free(w);
    return rc;
}
