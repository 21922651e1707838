/*
 * IIS log rows (see iisrows.h): the report's reading rules, one typed record per EAS line.
 *
 *   files --(et_loglines)--> '#Fields' ? layout : split --> stem? --> query scan [+ base64]
 *                                                                --> Log= parse --> row
 */
#include "eastrace/iisrows.h"

#include <stdio.h>
#include <string.h>

#include "eastrace/arena.h"
#include "eastrace/loglines.h"

struct et_iis_rows {
    char **files;
    size_t nfiles, cur;
    const void *mem;           /* memory input instead of files */
    size_t memlen;
    char *memname;
    int open;                  /* lines is open on the current input */
    struct et_loglines lines;
    struct et_iis_layout layout;
    int need_max;              /* highest column index of a known field */
    struct et_arena *scratch;  /* decoded base64 queries; reset per such line */
    struct et_iis_rows_totals file, all;
    int done;
};

static void layout_set_default(struct et_iis_rows *r)
{
    et_iis_layout_default(&r->layout);
}

static void layout_changed(struct et_iis_rows *r)
{
    int m = 0;
    for (int k = 0; k < ET_IIS_FIELD_COUNT; k++)
        if (r->layout.idx[k] > m)
            m = r->layout.idx[k];
    r->need_max = m;
}

static int new_reader(struct et_iis_rows **out, struct et_error *e)
{
    struct et_iis_rows *r = et_calloc(1, sizeof(*r));
    *out = NULL;
    if (r == NULL || (r->scratch = et_arena_new(4096)) == NULL) {
        et_free(r);
        et_error_set(e, ET_ENOMEM, "iis rows");
        return ET_ENOMEM;
    }
    *out = r;
    return 0;
}

int et_iis_rows_open(const char *path, struct et_iis_rows **out, struct et_error *e)
{
    struct et_iis_rows *r;
    int rc = new_reader(&r, e);
    if (rc < 0)
        return rc;
    rc = et_logfiles_list(path, &r->files, &r->nfiles, e);
    if (rc < 0) {
        et_arena_free(r->scratch);
        et_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int et_iis_rows_open_mem(const void *data, size_t len, const char *name,
                         struct et_iis_rows **out, struct et_error *e)
{
    struct et_iis_rows *r;
    int rc = new_reader(&r, e);
    if (rc < 0)
        return rc;
    r->mem = len ? data : (const void *)"";
    r->memlen = len;
    r->memname = et_strdup(name ? name : "memory");
    if (r->memname == NULL) {
        et_iis_rows_free(r);
        *out = NULL;
        et_error_set(e, ET_ENOMEM, "iis rows");
        return ET_ENOMEM;
    }
    *out = r;
    return 0;
}

void et_iis_rows_free(struct et_iis_rows *r)
{
    if (r == NULL)
        return;
    if (r->open)
        et_loglines_close(&r->lines);
    if (r->files != NULL)
        et_logfiles_free(r->files, r->nfiles);
    et_arena_free(r->scratch);
    et_free(r->memname);
    et_free(r);
}

void et_iis_rows_totals(const struct et_iis_rows *r, int file, struct et_iis_rows_totals *t)
{
    *t = file ? r->file : r->all;
}

static int is_dash(struct et_slice s)
{
    return s.len == 0 || (s.len == 1 && s.ptr[0] == '-');
}

/* The report's number: digits only, at most 18 of them, else -1. */
static long num(struct et_slice s)
{
    long v = 0;
    if (s.len == 0 || s.len > 18)
        return -1;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned)(s.ptr[i] - '0');
        if (d > 9)
            return -1;
        v = v * 10 + (long)d;
    }
    return v;
}

static struct et_slice colv(const struct et_iis_rows *r, const struct et_slice *f, int n,
                            enum et_iis_field k)
{
    struct et_slice none = {(const uint8_t *)"", 0};
    int i = r->layout.idx[k];
    if (i < 0 || i >= n || is_dash(f[i]))
        return none;
    return f[i];
}

/* Fills row from one split data line; 1 for an EAS line, 0 otherwise. */
static int fill_row(struct et_iis_rows *r, const char *line, size_t len, struct et_iis_row *row)
{
    struct et_slice f[ET_IIS_MAX_FIELDS];
    int max = r->need_max + 2 < ET_IIS_MAX_FIELDS ? r->need_max + 2 : ET_IIS_MAX_FIELDS;
    int n = et_iis_line_split(line, len, f, max);
    int si = r->layout.idx[ET_IIS_STEM];

    r->file.lines++;
    if (si < 0 || n <= r->need_max) {
        r->file.bad++;
        return 0;
    }
    enum et_iis_stem stem = et_iis_stem_classify((const char *)f[si].ptr, f[si].len);
    if (stem == ET_IIS_STEM_OTHER)
        return 0;
    memset(row, 0, sizeof(*row));
    row->stem = stem;
    struct et_slice date = colv(r, f, n, ET_IIS_DATE), tm = colv(r, f, n, ET_IIS_TIME);
    if (date.len == 0 || tm.len == 0 ||
        et_iis_time_parse((const char *)date.ptr, date.len, (const char *)tm.ptr, tm.len,
                          &row->t_us) != 0)
        row->t_us = 0;
    row->s_ip = colv(r, f, n, ET_IIS_S_IP);
    row->host = colv(r, f, n, ET_IIS_HOST);
    row->method = colv(r, f, n, ET_IIS_METHOD);
    row->uri_stem = f[si];
    row->query = colv(r, f, n, ET_IIS_QUERY);
    row->username = colv(r, f, n, ET_IIS_USERNAME);
    row->c_ip = colv(r, f, n, ET_IIS_C_IP);
    row->ua = colv(r, f, n, ET_IIS_UA);
    row->referer = colv(r, f, n, ET_IIS_REFERER);
    row->s_port = num(colv(r, f, n, ET_IIS_S_PORT));
    row->status = num(colv(r, f, n, ET_IIS_STATUS));
    row->substatus = num(colv(r, f, n, ET_IIS_SUBSTATUS));
    row->win32 = num(colv(r, f, n, ET_IIS_WIN32));
    row->sc_bytes = num(colv(r, f, n, ET_IIS_SC_BYTES));
    row->cs_bytes = num(colv(r, f, n, ET_IIS_CS_BYTES));
    row->time_taken = num(colv(r, f, n, ET_IIS_TIME_TAKEN));
    et_iis_query_scan((const char *)row->query.ptr, row->query.len, &row->q);
    if (row->q.base64) {
        et_arena_reset(r->scratch);
        int rc = et_iis_query_decode_base64(&row->q, r->scratch);
        row->base64_bad = rc < 0;
    }
    row->cmd = et_eas_cmd_from((const char *)row->q.cmd.ptr, row->q.cmd.len);
    if (row->cmd == ET_EAS_CMD_NONE && row->method.len == 7 &&
        memcmp(row->method.ptr, "OPTIONS", 7) == 0)
        row->cmd = ET_EAS_CMD_OPTIONS;
    et_eas_log_parse((const char *)row->q.log.ptr, row->q.log.len, &row->log);
    r->file.eas++;
    return 1;
}

static void file_end(struct et_iis_rows *r, struct et_iis_row *row, const char *name)
{
    r->file.bytes = r->lines.off;
    r->all.lines += r->file.lines;
    r->all.bad += r->file.bad;
    r->all.eas += r->file.eas;
    r->all.bytes += r->file.bytes;
    et_loglines_close(&r->lines);
    r->open = 0;
    r->cur++;
    memset(row, 0, sizeof(*row));
    row->file = name;
}

int et_iis_rows_next(struct et_iis_rows *r, struct et_iis_row *row, struct et_error *e)
{
    for (;;) {
        const char *line, *name;
        size_t len;
        if (r->done)
            return 0;
        if (!r->open) {
            if (r->mem != NULL ? r->cur > 0 : r->cur >= r->nfiles) {
                r->done = 1;
                return 0;
            }
            memset(&r->file, 0, sizeof(r->file));
            if (r->mem != NULL) {
                et_loglines_open_mem(&r->lines, r->mem, r->memlen);
            } else {
                int rc = et_loglines_open_file(&r->lines, r->files[r->cur], e);
                if (rc < 0) {
                    r->done = 1;
                    return rc;
                }
            }
            layout_set_default(r);
            layout_changed(r);
            r->open = 1;
        }
        name = r->mem != NULL ? r->memname : r->files[r->cur];
        int rc = et_loglines_next(&r->lines, &line, &len, e);
        if (rc == ET_ETOOBIG) {
            r->file.bad++;
            e->code = 0;
            continue;
        }
        if (rc == 0) {
            file_end(r, row, name);
            return 2;
        }
        if (rc < 0) {
            char m[600];
            snprintf(m, sizeof(m), "%s: %s", name, e->msg);
            uint64_t off = e->offset;
            e->code = 0;
            et_error_set_at(e, rc, off, "%s", m);
            r->done = 1;
            return rc;
        }
        if (len == 0)
            continue;
        if (line[0] == '#') {
            if (len > 8 && memcmp(line, "#Fields:", 8) == 0) {
                if (et_iis_layout_parse(&r->layout, line + 8, len - 8) < 0)
                    layout_set_default(r);
                layout_changed(r);
            }
            continue;
        }
        if (fill_row(r, line, len, row)) {
            row->file = name;
            row->lineno = r->lines.lineno;
            return 1;
        }
    }
}
