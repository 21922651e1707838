/*
 * /api/rows: the grid's rows, filtered with the CLI's filters, sorted by any column, one page
 * at a time. The filters mean what `eastrace replay` options mean (pipeline/filter.c):
 *
 *   device=ID   the view's device, or the DeviceId     (--device, case-insensitive)
 *   user=NAME   the view's user, or the Basic user     (--user, et_eas_user_match)
 *   cmd=CMD     the EAS command; OPTIONS for OPTIONS   (--cmd)
 *   host=NAME   the target host                        (--host)
 *   since=TIME, until=TIME  ISO 8601, [since, until)   (--since, --until)
 *   errors=1    a finding of warning or error           (--errors)
 *   find=TEXT   the text --find searches (et_pipe_find_text), case-insensitive
 *
 * plus sort=COLUMN, dir=asc|desc, offset, limit (at most 1000). Without sort the rows come in
 * timeline order, as replay prints them (with one input n is the record number in the file,
 * which a long poll completing late does not follow). The filtered and sorted index
 * is kept for the next request with the same filters (paging through 100,000 rows re-sorts
 * nothing) until the store changes.
 */
#include "web_int.h"

#include <stdlib.h>
#include <string.h>

#define MAX_LIMIT 1000

static int hexval(int c)
{
    return et_hex_digit(c);
}

char *et__web_query_param(const char *query, const char *name)
{
    size_t nl = strlen(name);
    const char *p = query;
    while (p != NULL && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            const char *v = p + nl + 1;
            size_t vl = len - nl - 1, k = 0;
            char *out = et_malloc(vl + 1);
            if (out == NULL)
                return NULL;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] == '%' && i + 2 < vl + 1 && hexval(v[i + 1]) >= 0 &&
                    i + 2 < vl && hexval(v[i + 2]) >= 0) {
                    out[k++] = (char)(hexval(v[i + 1]) * 16 + hexval(v[i + 2]));
                    i += 2;
                } else if (v[i] == '+') {
                    out[k++] = ' ';
                } else {
                    out[k++] = v[i];
                }
            }
            out[k] = '\0';
            if (k == 0 || strlen(out) != k) { /* empty, or a NUL inside: no such filter */
                et_free(out);
                return NULL;
            }
            return out;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* The grid's filters: replay's own (struct et_pipe_filter), whose strings the query owns. */
struct filter {
    struct et_pipe_filter pf;
    char *own[5]; /* device, user, cmd, host, find */
};

/* Sets *field to the value of query parameter name, kept in f->own[slot] to be freed. */
static void filter_param(struct filter *f, const char *query, const char *name, int slot,
                         const char **field)
{
    *field = f->own[slot] = et__web_query_param(query, name);
}

static void filter_free(struct filter *f)
{
    for (size_t i = 0; i < ET_ARRAY_SIZE(f->own); i++)
        et_free(f->own[i]);
}

static int row_match(struct et_web_store *s, const struct et__web_row *r, const struct filter *f,
                     struct et_buf *tmp)
{
    const struct et__strpool *p = &s->pool;
    /* The row keeps what replay's filters read (et_pipe_filter_facts_of): the same test. */
    const struct et_pipe_filter_facts k = {
        et__pool_str(p, r->device), et__pool_str(p, r->device_id), et__pool_str(p, r->user),
        et__pool_str(p, r->auth_user), et__pool_str(p, r->fcmd), et__pool_str(p, r->host),
        r->t, r->sev};
    if (!et_pipe_filter_match_facts(&f->pf, &k))
        return 0;
    if (f->pf.find) {
        et_buf_reset(tmp);
        if (et__web_spill_read(s, r->text_off, r->text_len, tmp) != 0)
            return 0;
        if (!et_pipe_find_match(tmp->data, tmp->len, f->pf.find))
            return 0;
    }
    return 1;
}

/* Sorting: qsort has no context argument, so the store and column ride in statics guarded
 * by the store's mutex (only one query sorts at a time). */
static const struct et_web_store *sort_store;
static int sort_col, sort_dir;

enum col {
    COL_ORDER = -1, /* timeline order: as added */
    COL_N = 0, COL_TIME, COL_DEV, COL_USER, COL_CMD, COL_FOLDER, COL_HTTP, COL_EAS, COL_REQ,
    COL_RESP, COL_DUR, COL_SEEN, COL_SEV, COL_HOST, COL_N_
};
static const char *const col_names[COL_N_] = {"n",    "t",    "dev",  "user", "cmd",
                                              "folder", "http", "eas", "req",  "resp",
                                              "dur",  "seen", "sev",  "host"};

static int cmp_str(uint32_t a, uint32_t b)
{
    const char *x = et__pool_str(&sort_store->pool, a), *y = et__pool_str(&sort_store->pool, b);
    if (x == NULL || y == NULL)
        return (x == NULL) - (y == NULL);
    return strcmp(x, y);
}

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

static int cmp_rows(const void *pa, const void *pb)
{
    const struct et__web_row *a = &sort_store->rows[*(const uint32_t *)pa];
    const struct et__web_row *b = &sort_store->rows[*(const uint32_t *)pb];
    int c = 0;
    if (sort_col == COL_ORDER)
        return sort_dir * (*(const uint32_t *)pa < *(const uint32_t *)pb ? -1 : 1);
    switch (sort_col) {
    case COL_TIME: c = cmp_i64(a->t, b->t); break;
    case COL_DEV: c = cmp_str(a->device, b->device); break;
    case COL_USER: c = cmp_str(a->user, b->user); break;
    case COL_CMD: c = cmp_str(a->cmd, b->cmd); break;
    case COL_FOLDER: c = cmp_str(a->folder, b->folder); break;
    case COL_HOST: c = cmp_str(a->host, b->host); break;
    case COL_HTTP: c = cmp_i64(a->http, b->http); break;
    case COL_EAS: c = cmp_i64(a->eas, b->eas); break;
    case COL_REQ: c = cmp_i64(a->req_bytes, b->req_bytes); break;
    case COL_RESP: c = cmp_i64(a->resp_bytes, b->resp_bytes); break;
    case COL_DUR: c = cmp_i64(a->dur, b->dur); break;
    case COL_SEEN: c = cmp_i64(a->seen, b->seen); break;
    case COL_SEV: c = cmp_i64(a->sev, b->sev); break;
    default: break;
    }
    if (c == 0)
        c = cmp_i64((int64_t)a->n, (int64_t)b->n); /* stable: ties in timeline order */
    return sort_dir * c;
}

static int parse_time(const char *s, int64_t *out)
{
    return s == NULL ? 0 : et_time_parse_iso8601(s, out);
}

int et__web_rows_query(struct et_web_store *s, const char *query, struct et_buf *out,
                       int *status)
{
    struct filter f;
    struct et_buf key, tmp;
    char *v;
    unsigned long long offset = 0, limit = 100;
    int col = COL_ORDER, dir = 1, rc = 0;

    memset(&f, 0, sizeof(f));
    et_buf_init(&key, 0);
    et_buf_init(&tmp, 0);
    filter_param(&f, query, "device", 0, &f.pf.device);
    filter_param(&f, query, "user", 1, &f.pf.user);
    filter_param(&f, query, "cmd", 2, &f.pf.cmd);
    filter_param(&f, query, "host", 3, &f.pf.host);
    filter_param(&f, query, "find", 4, &f.pf.find);
    if ((v = et__web_query_param(query, "errors")) != NULL) {
        f.pf.errors_only = strcmp(v, "0") != 0;
        et_free(v);
    }
    if ((v = et__web_query_param(query, "since")) != NULL) {
        rc = parse_time(v, &f.pf.since);
        et_free(v);
    }
    if (rc == 0 && (v = et__web_query_param(query, "until")) != NULL) {
        rc = parse_time(v, &f.pf.until);
        et_free(v);
    }
    if (rc != 0) {
        *status = 400;
        et_buf_puts(out, "{\"error\":\"bad time: use ISO 8601, e.g. 2024-05-01T10:00:00Z\"}");
        rc = 0;
        goto out;
    }
    if ((v = et__web_query_param(query, "offset")) != NULL) {
        offset = strtoull(v, NULL, 10);
        et_free(v);
    }
    if ((v = et__web_query_param(query, "limit")) != NULL) {
        limit = strtoull(v, NULL, 10);
        et_free(v);
        if (limit > MAX_LIMIT)
            limit = MAX_LIMIT;
    }
    if ((v = et__web_query_param(query, "sort")) != NULL) {
        for (int i = 0; i < COL_N_; i++)
            if (strcmp(v, col_names[i]) == 0)
                col = i;
        et_free(v);
    }
    if ((v = et__web_query_param(query, "dir")) != NULL) {
        dir = strcmp(v, "desc") == 0 ? -1 : 1;
        et_free(v);
    }

    /* The cache key: every filter and the order, not the page. */
    et_buf_printf(&key, "%d %d %d %lld %lld", col, dir, f.pf.errors_only,
                  (long long)f.pf.since, (long long)f.pf.until);
    {
        const char *parts[] = {f.pf.device, f.pf.user, f.pf.cmd, f.pf.host, f.pf.find};
        for (size_t i = 0; i < ET_ARRAY_SIZE(parts); i++) {
            et_buf_putc(&key, '\x01');
            if (parts[i])
                et_buf_puts(&key, parts[i]);
        }
    }
    if (key.data == NULL) {
        rc = ET_ENOMEM;
        goto out;
    }
    if (s->q_key == NULL || s->q_version != s->version ||
        strcmp(s->q_key, (const char *)key.data) != 0) {
        uint32_t *idx = et_malloc((s->nrows ? s->nrows : 1) * sizeof(*idx));
        size_t n = 0;
        if (idx == NULL) {
            rc = ET_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < s->nrows; i++)
            if (row_match(s, &s->rows[i], &f, &tmp))
                idx[n++] = (uint32_t)i;
        if (col != COL_ORDER || dir != 1) {
            sort_store = s;
            sort_col = col;
            sort_dir = dir;
            qsort(idx, n, sizeof(*idx), cmp_rows);
            sort_store = NULL;
        }
        et_free(s->q_idx);
        et_free(s->q_key);
        s->q_idx = idx;
        s->q_n = n;
        s->q_key = (char *)et_buf_detach(&key, NULL);
        s->q_version = s->version;
    }
    et_buf_printf(out, "{\"version\":%llu,\"total\":%zu,\"matched\":%zu,\"offset\":%llu,\"rows\":[",
                  (unsigned long long)s->version, s->nrows, s->q_n, offset);
    for (unsigned long long i = offset; i < s->q_n && i < offset + limit; i++) {
        if (i > offset)
            et_buf_putc(out, ',');
        et__web_row_json(s, &s->rows[s->q_idx[i]], out);
    }
    et_buf_puts(out, "]}");
out:
    filter_free(&f);
    et_buf_free(&key);
    et_buf_free(&tmp);
    return rc;
}
