/*
 * IIS W3C reader: one exchange per EAS request line.
 *
 * Mapping (docs/logs.md has the table): cs-method + cs-uri-stem + '?' + cs-uri-query is the
 * request line; sc-status the response status; c-ip the client; s-ip or cs-host the host;
 * date + time (UTC, written by IIS when the response finished) is t.resp_end, and
 * t.req_begin = resp_end - time-taken. Every column goes to meta under its #Fields name, the
 * EAS query parameters as eas-cmd/eas-user/eas-device-id/eas-device-type and each Log= item
 * as "Log-<name>" (URL-decoded).
 */
#include "eastrace/iis.h"

#include <stdio.h>
#include <string.h>

#include "logs_int.h"

struct iis_src {
    struct et_iis_opts opts;
    char **files;
    size_t nfiles, cur;
    int open;               /* lines is open on files[cur] */
    const void *mem;        /* memory input instead of files */
    size_t memlen;
    char *memname;
    struct et__lines lines;
    struct et_iis_layout layout;
    uint64_t id;
    int seen_frontend;
    int fields_seen; /* this file had a #Fields line (else its layout is inferred) */
};

/*
 * Lines without a #Fields header (pasted from a ticket or a forum, or a file whose header
 * was cut off): pick the standard layout with the line's field count. IIS 6 and IIS 7/7.5
 * both log 14 fields by default; IIS 6 puts the site name (W3SVCn) third.
 */
static void infer_layout(struct et_iis_layout *l, const struct et_slice *f, int n)
{
    static const char iis6[] = "date time s-sitename s-ip cs-method cs-uri-stem cs-uri-query "
                               "s-port cs-username c-ip cs(User-Agent) sc-status sc-substatus "
                               "sc-win32-status";
    static const char iis75[] = "date time s-ip cs-method cs-uri-stem cs-uri-query s-port "
                                "cs-username c-ip cs(User-Agent) sc-status sc-substatus "
                                "sc-win32-status time-taken";
    /* The field set of the Exchange Team's 2005 ActiveSync reporting post (IIS 6 custom). */
    static const char ex2003[] = "date time c-ip cs-method cs-uri-stem cs-uri-query sc-status "
                                 "sc-bytes cs-bytes time-taken cs(User-Agent)";
    if (n == 14 && f[2].len >= 5 && memcmp(f[2].ptr, "W3SVC", 5) == 0)
        (void)et_iis_layout_parse(l, iis6, sizeof(iis6) - 1);
    else if (n == 14)
        (void)et_iis_layout_parse(l, iis75, sizeof(iis75) - 1);
    else if (n == 11)
        (void)et_iis_layout_parse(l, ex2003, sizeof(ex2003) - 1);
}

static int meta_add(struct et_exchange *x, const char *name, const char *v, size_t vl)
{
    return et_headers_add(&x->meta, x->arena, name, strlen(name), v, vl);
}

/* A URL-encoded Log= value, decoded into the arena; NULL when empty. */
static const char *log_str(struct et_exchange *x, struct et_slice v, int *nomem)
{
    char tmp[1024];
    size_t k;
    const char *s;
    if (v.len == 0)
        return NULL;
    k = et_iis_url_decode((const char *)v.ptr, v.len, tmp, sizeof(tmp));
    s = et_arena_strndup(x->arena, tmp, k);
    if (s == NULL)
        *nomem = 1;
    return s;
}

/* The Log= items the view reads, as typed facts (exchange.h): S:, Error:, Hb, Sk, As:. */
static int set_facts(struct et_exchange *x, const struct et_eas_log *lg)
{
    struct et_server_facts *f = &x->facts;
    int nomem = 0;
    char sk[24];

    if (lg->exch2003)
        return 0; /* the packed 2003 string's S: is server counts, not a Status */
    f->status = lg->status;
    f->heartbeat = lg->heartbeat;
    f->error = log_str(x, lg->error, &nomem);
    f->access_state = log_str(x, lg->access_state, &nomem);
    if (lg->sync_key >= 0) {
        int n = snprintf(sk, sizeof(sk), "%ld", lg->sync_key);
        if ((f->sync_key = et_arena_strndup(x->arena, sk, (size_t)n)) == NULL)
            nomem = 1;
    }
    f->present = f->status >= 0 || f->heartbeat >= 0 || f->error || f->access_state ||
                 f->sync_key;
    return nomem ? ET_ENOMEM : 0;
}

static int is_dash(struct et_slice s)
{
    return s.len == 0 || (s.len == 1 && s.ptr[0] == '-');
}

static struct et_slice col(const struct et_iis_layout *l, const struct et_slice *f, int n,
                           enum et_iis_field k)
{
    struct et_slice none = {NULL, 0};
    int i = l->idx[k];
    if (i < 0 || i >= n || is_dash(f[i]))
        return none;
    return f[i];
}

static long slice_num(struct et_slice s)
{
    long v = 0;
    if (s.len == 0 || s.len > 18)
        return -1;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return -1;
        v = v * 10 + (s.ptr[i] - '0');
    }
    return v;
}

/* Builds the exchange of one split data line. Returns 0, ET_ENOMEM. */
static int build(struct iis_src *s, const char *fname, const struct et_slice *f, int n,
                 enum et_iis_stem stem, struct et_exchange **out)
{
    const struct et_iis_layout *l = &s->layout;
    struct et_exchange *x = et_exchange_new();
    struct et_arena *a;
    struct et_slice v;
    char tmp[4096];
    int rc = ET_ENOMEM;

    if (x == NULL)
        return ET_ENOMEM;
    a = x->arena;
    x->id = ++s->id;
    x->source = ET_SRC_IIS;
    x->source_name = et_arena_strdup(a, fname);
    x->has_request = 1;
    x->req.body.absent = 1;
    x->resp.body.absent = 1;

    struct et_slice d = col(l, f, n, ET_IIS_DATE), t = col(l, f, n, ET_IIS_TIME);
    int64_t us;
    if (d.len && t.len &&
        et_iis_time_parse((const char *)d.ptr, d.len, (const char *)t.ptr, t.len, &us) == 0) {
        long tt = slice_num(col(l, f, n, ET_IIS_TIME_TAKEN));
        x->t.resp_end = us;
        x->t.req_begin = tt >= 0 ? us - (int64_t)tt * 1000 : us;
    }
    v = col(l, f, n, ET_IIS_METHOD);
    if (v.len && (x->req.method = et_arena_strndup(a, (const char *)v.ptr, v.len)) == NULL)
        goto fail;
    {
        struct et_slice st = col(l, f, n, ET_IIS_STEM), q = col(l, f, n, ET_IIS_QUERY);
        /* A base64 query is what the device sent; Exchange's "&Log=..." after it is not
         * (it is kept in meta as Log-* items), and the decoder needs the base64 alone. */
        const uint8_t *amp = q.len ? memchr(q.ptr, '&', q.len) : NULL;
        if (amp != NULL) {
            struct et_iis_query bq;
            et_iis_query_scan((const char *)q.ptr, q.len, &bq);
            if (bq.base64)
                q.len = bq.raw.len;
        }
        x->req.target = q.len ? et_arena_printf(a, "%.*s?%.*s", (int)st.len, (const char *)st.ptr,
                                                (int)q.len, (const char *)q.ptr)
                              : et_arena_strndup(a, (const char *)st.ptr, st.len);
        if (x->req.target == NULL)
            goto fail;
    }
    v = col(l, f, n, ET_IIS_STATUS);
    if (v.len) {
        long stc = slice_num(v);
        if (stc > 0 && stc < 1000) {
            x->resp.status = (int)stc;
            x->has_response = 1;
        }
    }
    v = col(l, f, n, ET_IIS_C_IP);
    if (v.len && (x->client_addr = et_arena_strndup(a, (const char *)v.ptr, v.len)) == NULL)
        goto fail;
    v = col(l, f, n, ET_IIS_HOST);
    if (v.len == 0)
        v = col(l, f, n, ET_IIS_S_IP);
    if (v.len && (x->host = et_arena_strndup(a, (const char *)v.ptr, v.len)) == NULL)
        goto fail;
    v = col(l, f, n, ET_IIS_S_PORT);
    if (v.len) {
        long p = slice_num(v);
        if (p > 0 && p < 65536) {
            x->port = (int)p;
            x->scheme = p == 443 ? "https" : (p == 80 ? "http" : NULL);
        }
    }
    v = col(l, f, n, ET_IIS_UA);
    if (v.len) {
        /* IIS writes spaces in the user agent as '+'. */
        size_t k = ET_MIN(v.len, sizeof(tmp) - 1);
        for (size_t i = 0; i < k; i++)
            tmp[i] = v.ptr[i] == '+' ? ' ' : (char)v.ptr[i];
        if (et_headers_add(&x->req.headers, a, "User-Agent", 10, tmp, k) < 0)
            goto fail;
    }
    v = col(l, f, n, ET_IIS_REFERER);
    if (v.len && et_headers_add(&x->req.headers, a, "Referer", 7, (const char *)v.ptr, v.len) < 0)
        goto fail;
    v = col(l, f, n, ET_IIS_HOST);
    if (v.len && et_headers_add(&x->req.headers, a, "Host", 4, (const char *)v.ptr, v.len) < 0)
        goto fail;

    /* Every column, under its #Fields name (custom fields after time-taken included). */
    for (int i = 0; i < n && i < l->n; i++) {
        if (is_dash(f[i]))
            continue;
        if (meta_add(x, et_iis_layout_name(l, i), (const char *)f[i].ptr, f[i].len) < 0)
            goto fail;
    }
    if (stem != ET_IIS_STEM_OTHER &&
        meta_add(x, "eas-site", stem == ET_IIS_STEM_BACKEND ? "backend" : "frontend",
                 stem == ET_IIS_STEM_BACKEND ? 7 : 8) < 0)
        goto fail;

    struct et_slice q = col(l, f, n, ET_IIS_QUERY);
    if (q.len) {
        struct et_iis_query eq;
        et_iis_query_scan((const char *)q.ptr, q.len, &eq);
        if (eq.base64 && et_iis_query_decode_base64(&eq, a) == ET_ENOMEM)
            goto fail;
        const struct {
            const char *name;
            struct et_slice v;
        } kv[] = {{"eas-cmd", eq.cmd},
                  {"eas-user", eq.user},
                  {"eas-device-id", eq.device_id},
                  {"eas-device-type", eq.device_type}};
        for (size_t i = 0; i < ET_ARRAY_SIZE(kv); i++) {
            if (kv[i].v.len == 0)
                continue;
            size_t k = et_iis_url_decode((const char *)kv[i].v.ptr, kv[i].v.len, tmp, sizeof(tmp));
            if (meta_add(x, kv[i].name, tmp, k) < 0)
                goto fail;
        }
        if (eq.base64 && meta_add(x, "eas-query-base64", "1", 1) < 0)
            goto fail;
        if (eq.log.len) {
            struct et_eas_log lg;
            et_eas_log_parse((const char *)eq.log.ptr, eq.log.len, &lg);
            if (lg.exch2003 && meta_add(x, "eas-log-format", "2003", 4) < 0)
                goto fail;
            if (set_facts(x, &lg) < 0)
                goto fail;
            for (size_t i = 0; i < lg.nitems; i++) {
                const struct et_eas_log_item *it = &lg.items[i];
                char name[80];
                snprintf(name, sizeof(name), "Log-%.*s%s", (int)ET_MIN(it->name.len, 60),
                         (const char *)it->name.ptr, it->colon && lg.exch2003 ? ":" : "");
                size_t k = et_iis_url_decode((const char *)it->value.ptr, it->value.len, tmp,
                                             sizeof(tmp));
                if (meta_add(x, name, tmp, k) < 0)
                    goto fail;
            }
        }
    }
    *out = x;
    return 0;
fail:
    et_exchange_free(x);
    return rc;
}

static int want(struct iis_src *s, enum et_iis_stem stem)
{
    if (stem == ET_IIS_STEM_OTHER)
        return s->opts.all_requests;
    switch (s->opts.site) {
    case ET_IIS_SITE_FRONTEND: return stem == ET_IIS_STEM_FRONTEND;
    case ET_IIS_SITE_BACKEND: return stem == ET_IIS_STEM_BACKEND;
    case ET_IIS_SITE_BOTH: return 1;
    case ET_IIS_SITE_AUTO: break;
    }
    /* Streaming cannot look ahead: back-end lines pass until the first front-end line
     * appears, after which only front-end lines do (docs/logs.md, "double counting"). */
    if (stem == ET_IIS_STEM_FRONTEND) {
        s->seen_frontend = 1;
        return 1;
    }
    return !s->seen_frontend;
}

static int iis_next(void *impl, struct et_exchange **out, struct et_error *e)
{
    struct iis_src *s = impl;
    struct et_slice f[ET_IIS_MAX_FIELDS];

    for (;;) {
        const char *line;
        size_t len;
        const char *fname;
        if (!s->open) {
            if (s->mem == NULL && s->cur >= s->nfiles)
                return 0;
            if (s->mem != NULL) {
                if (s->cur > 0)
                    return 0;
                et__lines_open_mem(&s->lines, s->mem, s->memlen);
            } else {
                int rc = et__lines_open_file(&s->lines, s->files[s->cur], e);
                if (rc < 0) {
                    s->cur++;
                    return rc == ET_ENOMEM ? rc : ET_EPARSE; /* skip the unreadable file */
                }
            }
            et_iis_layout_default(&s->layout);
            s->fields_seen = 0;
            s->open = 1;
        }
        fname = s->mem ? s->memname : s->files[s->cur];
        int rc = et__lines_next(&s->lines, &line, &len, e);
        if (rc == 0 || rc == ET_EIO || rc == ET_ETRUNC) {
            et__lines_close(&s->lines);
            s->open = 0;
            s->cur++;
            if (rc < 0) {
                char m[600];
                snprintf(m, sizeof(m), "%s: %s", fname, e->msg);
                e->code = 0;
                et_error_set_at(e, ET_EPARSE, e->offset, "%s", m);
                return ET_EPARSE;
            }
            continue;
        }
        if (rc == ET_ETOOBIG) {
            char m[600];
            snprintf(m, sizeof(m), "%s: %s", fname, e->msg);
            e->code = 0;
            et_error_set_at(e, ET_EPARSE, s->lines.line_off, "%s", m);
            return ET_EPARSE;
        }
        if (rc < 0)
            return rc;
        while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
            len--;
        if (len == 0)
            continue;
        if (line[0] == '#') {
            struct et_iis_layout nl;
            if (len >= 8 && memcmp(line, "#Fields:", 8) == 0 &&
                et_iis_layout_parse(&nl, line + 8, len - 8) == 0) {
                s->layout = nl;
                s->fields_seen = 1;
            } else if (len >= 8 && memcmp(line, "#Fields:", 8) == 0) {
                /* Keep the previous layout: the lines after a broken header most likely
                 * still have the old shape. */
                et_error_set_at(e, ET_EPARSE, s->lines.line_off,
                                "%s line %llu: bad #Fields line", fname,
                                (unsigned long long)s->lines.lineno);
                return ET_EPARSE;
            }
            continue;
        }
        int n = et_iis_line_split(line, len, f, ET_IIS_MAX_FIELDS);
        if (!s->fields_seen && n != s->layout.n)
            infer_layout(&s->layout, f, n);
        int stem_i = s->layout.idx[ET_IIS_STEM];
        if (stem_i < 0 || n <= stem_i) {
            et_error_set_at(e, ET_EPARSE, s->lines.line_off,
                            "%s line %llu: %d fields, #Fields names %d", fname,
                            (unsigned long long)s->lines.lineno, n, s->layout.n);
            return ET_EPARSE;
        }
        enum et_iis_stem stem = et_iis_stem_classify((const char *)f[stem_i].ptr, f[stem_i].len);
        if (!want(s, stem))
            continue;
        if (n < s->layout.n) {
            et_error_set_at(e, ET_EPARSE, s->lines.line_off,
                            "%s line %llu: %d fields where #Fields names %d", fname,
                            (unsigned long long)s->lines.lineno, n, s->layout.n);
            return ET_EPARSE;
        }
        rc = build(s, fname, f, n, stem, out);
        if (rc < 0) {
            et_error_set(e, rc, "%s line %llu: out of memory", fname,
                         (unsigned long long)s->lines.lineno);
            return rc;
        }
        return 1;
    }
}

static void iis_close(void *impl)
{
    struct iis_src *s = impl;
    if (s == NULL)
        return;
    if (s->open)
        et__lines_close(&s->lines);
    et__files_free(s->files, s->nfiles);
    et_free(s->memname);
    et_free(s);
}

static const struct et_source_ops iis_ops = {"iis", iis_next, iis_close};

static int finish_open(struct iis_src *s, const char *name, struct et_source **out,
                       struct et_error *e)
{
    *out = et_source_new(&iis_ops, s, name);
    if (*out == NULL) {
        iis_close(s);
        et_error_set(e, ET_ENOMEM, "iis source");
        return ET_ENOMEM;
    }
    return 0;
}

int et_iis_open(const char *path, const struct et_iis_opts *o, struct et_source **out,
                struct et_error *e)
{
    struct iis_src *s = et_calloc(1, sizeof(*s));
    int rc;
    *out = NULL;
    if (s == NULL) {
        et_error_set(e, ET_ENOMEM, "iis source");
        return ET_ENOMEM;
    }
    if (o != NULL)
        s->opts = *o;
    rc = et__files_list(path, &s->files, &s->nfiles, e);
    if (rc < 0) {
        et_free(s);
        return rc;
    }
    return finish_open(s, path, out, e);
}

int et_iis_open_mem(const void *data, size_t len, const char *name, const struct et_iis_opts *o,
                    struct et_source **out, struct et_error *e)
{
    struct iis_src *s = et_calloc(1, sizeof(*s));
    *out = NULL;
    if (s == NULL) {
        et_error_set(e, ET_ENOMEM, "iis source");
        return ET_ENOMEM;
    }
    if (o != NULL)
        s->opts = *o;
    s->mem = len ? data : (const void *)"";
    s->memlen = len;
    s->memname = et_strdup(name ? name : "memory");
    if (s->memname == NULL) {
        et_free(s);
        et_error_set(e, ET_ENOMEM, "iis source");
        return ET_ENOMEM;
    }
    return finish_open(s, s->memname, out, e);
}
