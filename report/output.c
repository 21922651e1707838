/*
 * IIS log reports: the output. Every report becomes one or more grids (text cells), rendered
 * as a table, CSV, HTML (with the hits-per-hour chart) or JSON; a report computed elsewhere
 * (et_iis_report_write_result) takes the same path. The counting is report.c's.
 */
#include "eastrace/iisreport.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eastrace/arena.h"
#include "eastrace/map.h"
#include "eastrace/table.h"
#include "report_int.h"

/* ---- output: every report becomes one or more grids, rendered in one of four formats ---- */

#define GRID_MAX_COLS 64

struct grid {
    const char *name;
    const char *cols[GRID_MAX_COLS];
    int ncols;
    const char **cells; /* nrows * ncols */
    size_t nrows, cap;
};

struct out {
    struct grid g[8];
    int ng;
    struct et_arena *a;
    int oom;
};

static struct grid *grid_new(struct out *o, const char *name)
{
    struct grid *g = &o->g[o->ng++];
    memset(g, 0, sizeof(*g));
    g->name = name;
    return g;
}

static void grid_col(struct grid *g, const char *c)
{
    if (g->ncols < GRID_MAX_COLS)
        g->cols[g->ncols++] = c;
}

/* Starts a row; returns its cell array (ncols entries, "" filled). */
static const char **grid_row(struct out *o, struct grid *g)
{
    if (g->nrows == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 64;
        const char **nv = et_realloc(g->cells, nc * (size_t)g->ncols * sizeof(*nv));
        if (nv == NULL) {
            o->oom = 1;
            return NULL;
        }
        g->cells = nv;
        g->cap = nc;
    }
    const char **row = g->cells + g->nrows * (size_t)g->ncols;
    for (int i = 0; i < g->ncols; i++)
        row[i] = "";
    g->nrows++;
    return row;
}

static const char *fmt_u(struct out *o, uint64_t v)
{
    /* Most cells of a device table are small counts (0 above all): those need no copy. */
    static const char small[10][2] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    if (v < 10)
        return small[v];
    char b[24];
    size_t n = et_fmt_u64(b, v);
    char *s = et_arena_strndup(o->a, b, n);
    if (s == NULL)
        o->oom = 1;
    return s ? s : "";
}

static const char *fmt_l(struct out *o, long v)
{
    if (v < 0)
        return "";
    return fmt_u(o, (uint64_t)v);
}

static const char *fmt_time(struct out *o, int64_t us)
{
    char b[40];
    if (us <= 0)
        return "";
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(b, sizeof(b), "%Y-%m-%d %H:%M:%S", &tm);
    const char *s = et_arena_strdup(o->a, b);
    if (s == NULL)
        o->oom = 1;
    return s ? s : "";
}

static int cmp_hits(const void *a, const void *b)
{
    const struct row *x = *(const struct row *const *)a, *y = *(const struct row *const *)b;
    if (x->hits != y->hits)
        return x->hits < y->hits ? 1 : -1;
    if (x->bucket != y->bucket)
        return x->bucket < y->bucket ? -1 : 1;
    int c = strcmp(x->key, y->key);
    return c;
}

static int cmp_bucket(const void *a, const void *b)
{
    const struct row *x = *(const struct row *const *)a, *y = *(const struct row *const *)b;
    if (x->bucket != y->bucket)
        return x->bucket < y->bucket ? -1 : 1;
    return strcmp(x->key, y->key);
}

static int cmp_rec_time(const void *a, const void *b)
{
    const struct rec *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t;
}

/* Rows of a table as a sorted array (et_malloc'd). */
static struct row **sorted(const struct table *t, int (*cmp)(const void *, const void *))
{
    struct row **v = et_malloc((t->m.n ? t->m.n : 1) * sizeof(*v));
    size_t k = 0;
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < t->m.cap; i++)
        if (ROW_AT(t, i) != NULL)
            v[k++] = ROW_AT(t, i);
    qsort(v, k, sizeof(*v), cmp);
    return v;
}

/* The command columns after Ping, Sync, FolderSync, in the script's order. */
static const enum et_eas_cmd more_cmds[] = {
    ET_EAS_CMD_SENDMAIL, ET_EAS_CMD_SMARTREPLY, ET_EAS_CMD_SMARTFORWARD,
    ET_EAS_CMD_MEETINGRESPONSE, ET_EAS_CMD_GETATTACHMENT, ET_EAS_CMD_ITEMOPERATIONS,
    ET_EAS_CMD_PROVISION, ET_EAS_CMD_SETTINGS, ET_EAS_CMD_SEARCH, ET_EAS_CMD_MOVEITEMS,
    ET_EAS_CMD_GETITEMESTIMATE, ET_EAS_CMD_FOLDERCREATE, ET_EAS_CMD_FOLDERDELETE,
    ET_EAS_CMD_FOLDERUPDATE, ET_EAS_CMD_RESOLVERECIPIENTS, ET_EAS_CMD_VALIDATECERT,
    ET_EAS_CMD_FIND, ET_EAS_CMD_GETHIERARCHY, ET_EAS_CMD_CREATECOLLECTION,
    ET_EAS_CMD_DELETECOLLECTION, ET_EAS_CMD_MOVECOLLECTION, ET_EAS_CMD_NOTIFY,
    ET_EAS_CMD_OPTIONS, ET_EAS_CMD_OTHER,
};

static void build_hits(struct et_iis_report *r, struct out *o, const struct agg *g)
{
    const struct et_iis_report_opts *op = &r->o;
    struct grid *d = grid_new(o, "devices");
    grid_col(d, "DeviceID");
    grid_col(d, "Hits");
    grid_col(d, "Ping");
    grid_col(d, "Sync");
    grid_col(d, "FolderSync");
    grid_col(d, "DeviceType");
    grid_col(d, "User-Agent");
    grid_col(d, "User");
    grid_col(d, "cs-username");
    if (op->interval > 0)
        grid_col(d, "Interval");
    for (size_t i = 0; i < ET_ARRAY_SIZE(more_cmds); i++)
        grid_col(d, et_eas_cmd_name(more_cmds[i]));
    for (int i = 0; i < H_COUNT; i++)
        grid_col(d, et__http_names[i]);
    for (size_t i = 0; i < NERR; i++)
        grid_col(d, et_iis_known_errors[i]);
    grid_col(d, "OtherErrors");
    grid_col(d, "sc-bytes");
    grid_col(d, "cs-bytes");
    grid_col(d, "time-taken-avg");
    grid_col(d, "time-taken-max");

    struct row **v = sorted(&g->devs, op->interval > 0 ? cmp_bucket : cmp_hits);
    if (v == NULL) {
        o->oom = 1;
        return;
    }
    size_t shown = 0;
    for (size_t i = 0; i < g->devs.m.n; i++) {
        const struct row *x = v[i];
        if (op->minimum_hits > 0 && x->hits < (uint64_t)op->minimum_hits)
            continue;
        if (op->top > 0 && op->interval <= 0 && shown >= (size_t)op->top)
            break;
        const char **c = grid_row(o, d);
        if (c == NULL)
            break;
        int k = 0;
        shown++;
        c[k++] = x->key;
        c[k++] = fmt_u(o, x->hits);
        c[k++] = fmt_u(o, x->cmd[ET_EAS_CMD_PING]);
        c[k++] = fmt_u(o, x->cmd[ET_EAS_CMD_SYNC]);
        c[k++] = fmt_u(o, x->cmd[ET_EAS_CMD_FOLDERSYNC]);
        c[k++] = x->devtype;
        c[k++] = x->ua;
        c[k++] = x->user;
        c[k++] = x->username;
        if (op->interval > 0)
            c[k++] = fmt_time(o, x->bucket * 1000000);
        for (size_t j = 0; j < ET_ARRAY_SIZE(more_cmds); j++)
            c[k++] = fmt_u(o, x->cmd[more_cmds[j]]);
        for (int j = 0; j < H_COUNT; j++)
            c[k++] = fmt_u(o, x->http[j]);
        for (size_t j = 0; j < NERR; j++)
            c[k++] = fmt_u(o, x->err[j]);
        c[k++] = fmt_u(o, x->err_other);
        c[k++] = x->scb_n ? fmt_u(o, x->scb) : "";
        c[k++] = x->csb_n ? fmt_u(o, x->csb) : "";
        c[k++] = x->tt_n ? fmt_u(o, x->tt / x->tt_n) : "";
        c[k++] = x->tt_n ? fmt_u(o, x->tt_max) : "";
    }
    et_free(v);

    /* Totals: HTTP classes and byte/time summaries. */
    struct grid *s = grid_new(o, "summary");
    grid_col(s, "Metric");
    grid_col(s, "Count");
    grid_col(s, "Sum");
    grid_col(s, "Mean");
    grid_col(s, "p50");
    grid_col(s, "p95");
    grid_col(s, "Max");
    const char **c = grid_row(o, s);
    if (c) {
        c[0] = "EAS requests";
        c[1] = fmt_u(o, g->eas);
    }
    for (int j = 0; j < H_COUNT; j++) {
        c = grid_row(o, s);
        if (c == NULL)
            break;
        c[0] = et_arena_printf(o->a, "HTTP %s", et__http_names[j]);
        if (c[0] == NULL)
            c[0] = "";
        c[1] = fmt_u(o, g->http[j]);
    }
    const struct {
        const char *n;
        const struct hist *h;
    } hs[] = {{"sc-bytes", &g->scb}, {"cs-bytes", &g->csb}, {"time-taken (ms)", &g->tt}};
    for (size_t j = 0; j < ET_ARRAY_SIZE(hs); j++) {
        if (hs[j].h->n == 0)
            continue;
        c = grid_row(o, s);
        if (c == NULL)
            break;
        c[0] = hs[j].n;
        c[1] = fmt_u(o, hs[j].h->n);
        c[2] = fmt_u(o, hs[j].h->sum);
        c[3] = fmt_u(o, hs[j].h->sum / hs[j].h->n);
        c[4] = fmt_u(o, et__hist_pct(hs[j].h, 0.50));
        c[5] = fmt_u(o, et__hist_pct(hs[j].h, 0.95));
        c[6] = fmt_u(o, hs[j].h->max);
    }
}

static void build_errors(struct out *o, const struct agg *g, int with_known)
{
    struct grid *e = grid_new(o, "errors");
    grid_col(e, "Error");
    grid_col(e, "Count");
    if (with_known) {
        for (size_t i = 0; i < NERR; i++) {
            uint64_t n = 0;
            for (size_t k = 0; k < g->errs.m.cap; k++) {
                const struct row *x = ROW_AT(&g->errs, k);
                if (x && strcmp(x->key, et_iis_known_errors[i]) == 0)
                    n = x->hits;
            }
            const char **c = grid_row(o, e);
            if (c == NULL)
                return;
            c[0] = et_iis_known_errors[i];
            c[1] = fmt_u(o, n);
        }
    }
    struct row **v = sorted(&g->errs, cmp_hits);
    if (v == NULL) {
        o->oom = 1;
        return;
    }
    for (size_t i = 0; i < g->errs.m.n; i++) {
        int known = 0;
        for (size_t k = 0; with_known && k < NERR; k++)
            known |= strcmp(v[i]->key, et_iis_known_errors[k]) == 0;
        if (known)
            continue;
        const char **c = grid_row(o, e);
        if (c == NULL)
            break;
        c[0] = v[i]->key;
        c[1] = fmt_u(o, v[i]->hits);
    }
    et_free(v);
    struct grid *h = grid_new(o, "http");
    grid_col(h, "HTTP");
    grid_col(h, "Count");
    for (int j = 0; j < H_COUNT; j++) {
        const char **c = grid_row(o, h);
        if (c == NULL)
            return;
        c[0] = et__http_names[j];
        c[1] = fmt_u(o, g->http[j]);
    }
}

static void build_keyed(struct et_iis_report *r, struct out *o, const struct agg *g)
{
    int sk = r->o.kind == ET_IIS_REPORT_SYNCS_BY_SYNCKEY;
    struct grid *k = grid_new(o, sk ? "syncs-by-synckey" : "synckey0");
    grid_col(k, "User");
    grid_col(k, "DeviceID");
    grid_col(k, "DeviceType");
    if (sk)
        grid_col(k, "SyncKey");
    grid_col(k, sk ? "Syncs" : "SyncKey0-Syncs");
    struct row **v = sorted(&g->keyed, cmp_hits);
    if (v == NULL) {
        o->oom = 1;
        return;
    }
    for (size_t i = 0; i < g->keyed.m.n; i++) {
        const char **c = grid_row(o, k);
        if (c == NULL)
            break;
        /* key is User \x1f DeviceId \x1f DeviceType */
        char *dup = et_arena_strdup(o->a, v[i]->key);
        if (dup == NULL) {
            o->oom = 1;
            break;
        }
        char *p1 = strchr(dup, '\x1f'), *p2 = p1 ? strchr(p1 + 1, '\x1f') : NULL;
        if (p1)
            *p1++ = '\0';
        if (p2)
            *p2++ = '\0';
        int n = 0;
        c[n++] = dup;
        c[n++] = p1 ? p1 : "";
        c[n++] = p2 ? p2 : "";
        if (sk)
            c[n++] = v[i]->bucket >= 0 ? fmt_u(o, (uint64_t)v[i]->bucket) : "";
        c[n++] = fmt_u(o, v[i]->hits);
    }
    et_free(v);
}

static void build_top(struct et_iis_report *r, struct out *o, const struct agg *g)
{
    struct grid *u = grid_new(o, "top-users");
    grid_col(u, "User");
    grid_col(u, "Hits");
    struct row **v = sorted(&g->keyed, cmp_hits);
    if (v == NULL) {
        o->oom = 1;
        return;
    }
    for (size_t i = 0; i < g->keyed.m.n && i < (size_t)r->o.top; i++) {
        const char **c = grid_row(o, u);
        if (c == NULL)
            break;
        c[0] = v[i]->key;
        c[1] = fmt_u(o, v[i]->hits);
    }
    et_free(v);
    struct grid *d = grid_new(o, "top-devices");
    grid_col(d, "DeviceID");
    grid_col(d, "Hits");
    grid_col(d, "User");
    grid_col(d, "DeviceType");
    grid_col(d, "User-Agent");
    v = sorted(&g->devs, cmp_hits);
    if (v == NULL) {
        o->oom = 1;
        return;
    }
    for (size_t i = 0; i < g->devs.m.n && i < (size_t)r->o.top; i++) {
        const char **c = grid_row(o, d);
        if (c == NULL)
            break;
        c[0] = v[i]->key;
        c[1] = fmt_u(o, v[i]->hits);
        c[2] = v[i]->user;
        c[3] = v[i]->devtype;
        c[4] = v[i]->ua;
    }
    et_free(v);
}

static void build_recs(struct et_iis_report *r, struct out *o, struct agg *g)
{
    struct grid *d = grid_new(o, et_iis_report_kind_name(r->o.kind));
    static const char *const cols[] = {
        "Time", "User", "DeviceID", "DeviceType", "Cmd", "sc-status", "sc-substatus",
        "sc-win32-status", "Status", "Error", "As", "SyncKey", "SyncType", "FolderType",
        "Heartbeat", "RpcC", "RpcL", "time-taken", "User-Agent",
    };
    for (size_t i = 0; i < ET_ARRAY_SIZE(cols); i++)
        grid_col(d, cols[i]);
    /* Workers hand rows over in range order, so a stable sort keeps equal seconds in file
     * order; qsort is not stable, hence the index tie-break below is not needed only when
     * times differ. Logs are written in time order, so most input is already sorted. */
    int sorted_in = 1;
    for (size_t i = 1; i < g->recs.n; i++)
        if (g->recs.v[i].t < g->recs.v[i - 1].t)
            sorted_in = 0;
    if (!sorted_in)
        qsort(g->recs.v, g->recs.n, sizeof(*g->recs.v), cmp_rec_time);
    for (size_t i = 0; i < g->recs.n; i++) {
        const struct rec *x = &g->recs.v[i];
        const char **c = grid_row(o, d);
        if (c == NULL)
            break;
        int k = 0;
        c[k++] = fmt_time(o, x->t);
        c[k++] = x->user;
        c[k++] = x->device;
        c[k++] = x->devtype;
        c[k++] = x->cmd;
        c[k++] = fmt_l(o, x->http);
        c[k++] = fmt_l(o, x->sub);
        c[k++] = fmt_l(o, x->win32);
        c[k++] = fmt_l(o, x->status);
        c[k++] = x->error;
        c[k++] = x->as;
        c[k++] = fmt_l(o, x->sk);
        c[k++] = x->st;
        c[k++] = x->ty;
        c[k++] = fmt_l(o, x->hb);
        c[k++] = fmt_l(o, x->rpcc);
        c[k++] = fmt_l(o, x->rpcl);
        c[k++] = fmt_l(o, x->tt);
        c[k++] = x->ua;
    }
}

/* -- renderers: every grid goes through the common table renderer (eastrace/table.h) -- */

static struct et_table as_table(const struct grid *g)
{
    struct et_table t = {g->name, g->cols, g->ncols, g->cells, g->nrows};
    return t;
}

static void render_svg_hours(FILE *f, const struct agg *g)
{
    struct row **v = sorted(&g->hours, cmp_bucket);
    uint64_t max = 1;
    size_t n = g->hours.m.n;
    if (v == NULL)
        return;
    if (n > 24 * 31)
        n = 24 * 31; /* a month of hours is as much as a page can show */
    for (size_t i = 0; i < n; i++)
        if (v[i]->hits > max)
            max = v[i]->hits;
    int bw = n > 0 ? (int)(960 / n) : 10;
    if (bw < 2)
        bw = 2;
    if (bw > 40)
        bw = 40;
    int width = (int)n * bw + 60, height = 240;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "role=\"img\" aria-label=\"EAS hits per hour\">\n", width, height + 40);
    fprintf(f, "<text x=\"0\" y=\"14\" class=\"ax\">max %llu hits/hour</text>\n",
            (unsigned long long)max);
    for (size_t i = 0; i < n; i++) {
        int h = (int)((double)v[i]->hits / (double)max * (height - 30));
        char tb[40];
        time_t t = (time_t)(v[i]->bucket * 3600);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(tb, sizeof(tb), "%Y-%m-%d %H:00", &tm);
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"><title>%s UTC: %llu"
                   "</title></rect>\n",
                40 + (int)i * bw, height - h, bw > 3 ? bw - 1 : bw, h, tb,
                (unsigned long long)v[i]->hits);
        if (n <= 48 || i % (n / 24 + 1) == 0)
            fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"ax\">%02d</text>\n", 40 + (int)i * bw,
                    height + 14, tm.tm_hour);
    }
    fputs("</svg>\n", f);
    et_free(v);
}

/* The findings table made on a second thread while the report's own tables are built and
 * written: the analyzer's summary, the grouped rows sorted, and (text and JSON) the table
 * rendered into a buffer that is written in its place. */
struct fa_job {
    struct et_iis_report *r;
    int render;                /* 1: render as tf into out */
    enum et_table_format tf;
    unsigned flags;
    struct et_buf out;
    int rc;
    pthread_t th;
    int started;
};

static void *fa_job_main(void *p)
{
    struct fa_job *j = p;
    struct et_iis_report *r = j->r;
    j->rc = et__fa_table(r->fa, r->device, &r->fa_cells, &r->fa_rows);
    r->fa_done = 1;
    if (j->rc == 0 && j->render) {
        struct et_table t = {"findings", et__fa_cols, 7, r->fa_cells, r->fa_rows};
        j->rc = et_table_render(&t, j->tf, j->flags, &j->out);
    }
    return NULL;
}

/* Waits for the job (or runs it here when its thread did not start). */
static int fa_job_wait(struct fa_job *j)
{
    if (j->started) {
        pthread_join(j->th, NULL);
        j->started = 0;
    } else if (!j->r->fa_done) {
        fa_job_main(j);
    }
    return j->rc;
}

/* Waits for the job and writes its rendering. */
static int write_job(struct fa_job *j, FILE *f)
{
    int rc = fa_job_wait(j);
    if (rc == 0 && j->out.len > 0 && fwrite(j->out.data, 1, j->out.len, f) != j->out.len)
        rc = ET_EIO;
    return rc;
}

static int render_html(FILE *f, struct et_iis_report *r, const struct out *o,
                       const struct agg *g, struct fa_job *job, int fa_k)
{
    int rc = 0;
    struct et_iis_report_totals t;
    et_iis_report_totals(r, &t);
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<title>eastrace ActiveSync report</title>\n<style>\n"
          "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\n"
          "table{border-collapse:collapse;margin:1em 0}\n"
          "th,td{border:1px solid #ccc;padding:2px 6px;text-align:left}\n"
          "th{background:#eef}\ntd.n{text-align:right}\n"
          "rect{fill:#4a7bd0}\n.ax{font-size:10px;fill:#555}\n"
          "</style></head><body>\n", f);
    fprintf(f, "<h1>ActiveSync report: %s</h1>\n", et_iis_report_kind_name(r->o.kind));
    fprintf(f, "<p>%llu log lines, %llu EAS requests counted (%s site; %llu front end, %llu "
               "back end lines seen), %llu unparsable lines.</p>\n",
            (unsigned long long)t.lines, (unsigned long long)t.eas,
            t.site_used == ET_IIS_SITE_BACKEND ? "back end" :
            t.site_used == ET_IIS_SITE_BOTH ? "both" : "front end",
            (unsigned long long)t.frontend, (unsigned long long)t.backend,
            (unsigned long long)t.bad);
    fputs("<h2>Hits per hour (UTC)</h2>\n", f);
    render_svg_hours(f, g);
    for (int k = 0; k < o->ng && rc == 0; k++) {
        struct et_table tb = as_table(&o->g[k]);
        rc = k == fa_k ? write_job(job, f) : et_table_write(&tb, ET_TABLE_HTML, ET_TABLE_TITLE, f);
    }
    fputs("</body></html>\n", f);
    return rc;
}

int et_iis_report_add_table(struct et_iis_report *r, const char *name, const char *const *cols,
                            int ncols, const char *const *cells, size_t nrows)
{
    struct extra_table *t;
    if (r->nextra == (int)ET_ARRAY_SIZE(r->extra) || ncols <= 0 || ncols > GRID_MAX_COLS)
        return ET_ETOOBIG;
    t = &r->extra[r->nextra];
    t->name = et_arena_strdup(r->arena, name);
    t->cols = et_arena_alloc(r->arena, (size_t)ncols * sizeof(*t->cols));
    t->cells = et_arena_alloc(r->arena, (nrows ? nrows : 1) * (size_t)ncols * sizeof(*t->cells));
    if (t->name == NULL || t->cols == NULL || t->cells == NULL)
        return ET_ENOMEM;
    for (int i = 0; i < ncols; i++)
        if ((t->cols[i] = et_arena_strdup(r->arena, cols[i] ? cols[i] : "")) == NULL)
            return ET_ENOMEM;
    for (size_t i = 0; i < nrows * (size_t)ncols; i++)
        if ((t->cells[i] = et_arena_strdup(r->arena, cells[i] ? cells[i] : "")) == NULL)
            return ET_ENOMEM;
    t->ncols = ncols;
    t->nrows = nrows;
    r->nextra++;
    return 0;
}

int et_iis_report_write(struct et_iis_report *r, FILE *f, enum et_report_format fmt,
                        struct et_error *e)
{
    struct out o;
    struct agg *g = &r->side[et__chosen_side(r)];
    int rc = 0, fa_k = -1;
    struct fa_job job;

    memset(&o, 0, sizeof(o));
    memset(&job, 0, sizeof(job));
    job.r = r;
    et_buf_init(&job.out, 0);
    o.a = et_arena_new(64 * 1024);
    if (o.a == NULL) {
        et_error_set(e, ET_ENOMEM, "report output");
        return ET_ENOMEM;
    }
    if (r->fa != NULL && !r->fa_done && fmt != ET_REPORT_CSV) {
        job.render = 1;
        job.tf = fmt == ET_REPORT_TABLE  ? ET_TABLE_TEXT
                 : fmt == ET_REPORT_HTML ? ET_TABLE_HTML
                                         : ET_TABLE_JSON;
        job.flags = fmt == ET_REPORT_TABLE  ? ET_TABLE_TITLE | ET_TABLE_HIDE_ZERO
                    : fmt == ET_REPORT_HTML ? ET_TABLE_TITLE
                                            : 0;
        job.started = pthread_create(&job.th, NULL, fa_job_main, &job) == 0;
    }
    switch (r->given != NULL ? ET_IIS_REPORT_COUNT : r->o.kind) {
    case ET_IIS_REPORT_COUNT: /* computed elsewhere: the given tables, cells borrowed */
        for (int k = 0; k < r->given->ntables; k++) {
            const struct et_iis_report_table *t = &r->given->tables[k];
            struct grid *gr = grid_new(&o, t->name);
            for (int c = 0; c < t->ncols; c++)
                grid_col(gr, t->cols[c]);
            for (size_t i = 0; i < t->nrows; i++) {
                const char **row = grid_row(&o, gr);
                if (row == NULL)
                    break;
                for (int c = 0; c < t->ncols; c++)
                    row[c] = t->cells[i * (size_t)t->ncols + (size_t)c];
            }
        }
        break;
    case ET_IIS_REPORT_HITS:
        build_hits(r, &o, g);
        build_errors(&o, g, 1);
        break;
    case ET_IIS_REPORT_ERRORS: build_errors(&o, g, 1); break;
    case ET_IIS_REPORT_SYNCKEY0:
    case ET_IIS_REPORT_SYNCS_BY_SYNCKEY: build_keyed(r, &o, g); break;
    case ET_IIS_REPORT_TOP: build_top(r, &o, g); break;
    default: build_recs(r, &o, g); break;
    }
    /* The analyzer's findings follow the report's own tables, then the caller's; the grids
     * borrow their cells. */
    if (r->fa != NULL && job.started && job.render && o.ng < (int)ET_ARRAY_SIZE(o.g)) {
        /* Its place: the job's rendering is written there, once the tables before it are. */
        fa_k = o.ng;
        (void)grid_new(&o, "findings");
    } else if (r->fa != NULL && fa_job_wait(&job) == ET_ENOMEM) {
        o.oom = 1;
    }
    if (fa_k < 0 && r->fa != NULL && r->fa_cells != NULL && o.ng < (int)ET_ARRAY_SIZE(o.g)) {
        struct grid *gr = grid_new(&o, "findings");
        for (int c = 0; c < 7; c++)
            grid_col(gr, et__fa_cols[c]);
        for (size_t i = 0; i < r->fa_rows; i++) {
            const char **row = grid_row(&o, gr);
            if (row == NULL)
                break;
            for (int c = 0; c < 7; c++)
                row[c] = r->fa_cells[i * 7 + (size_t)c];
        }
    }
    for (int k = 0; k < r->nextra && o.ng < (int)ET_ARRAY_SIZE(o.g); k++) {
        const struct extra_table *t = &r->extra[k];
        struct grid *gr = grid_new(&o, t->name);
        for (int c = 0; c < t->ncols; c++)
            grid_col(gr, t->cols[c]);
        for (size_t i = 0; i < t->nrows; i++) {
            const char **row = grid_row(&o, gr);
            if (row == NULL)
                break;
            for (int c = 0; c < t->ncols; c++)
                row[c] = t->cells[i * (size_t)t->ncols + (size_t)c];
        }
    }
    if (o.oom) {
        et_error_set(e, ET_ENOMEM, "report output");
        rc = ET_ENOMEM;
        goto out;
    }
    switch (fmt) {
    case ET_REPORT_CSV:
        /* CSV is one table: the report's main one (the script's per-device CSV). */
        if (o.ng > 0) {
            struct et_table t = as_table(&o.g[0]);
            rc = et_table_write(&t, ET_TABLE_CSV, 0, f);
        }
        break;
    case ET_REPORT_TABLE:
        for (int k = 0; k < o.ng && rc == 0; k++) {
            struct et_table t = as_table(&o.g[k]);
            if (k == fa_k)
                rc = write_job(&job, f);
            else
                rc = et_table_write(&t, ET_TABLE_TEXT, ET_TABLE_TITLE | ET_TABLE_HIDE_ZERO, f);
        }
        if (g->recs.truncated || r->bad_alloc)
            fprintf(f, "(truncated: row cap or memory limit reached)\n");
        break;
    case ET_REPORT_JSON: {
        struct et_iis_report_totals t;
        et_iis_report_totals(r, &t);
        fprintf(f, "{\"report\":\"%s\",\"lines\":%llu,\"eas\":%llu,\"frontend\":%llu,"
                   "\"backend\":%llu,\"bad\":%llu,\"truncated\":%s,\"tables\":[",
                et_iis_report_kind_name(r->o.kind), (unsigned long long)t.lines,
                (unsigned long long)t.eas, (unsigned long long)t.frontend,
                (unsigned long long)t.backend, (unsigned long long)t.bad,
                g->recs.truncated || r->bad_alloc ? "true" : "false");
        for (int k = 0; k < o.ng && rc == 0; k++) {
            struct et_table tb = as_table(&o.g[k]);
            if (k)
                fputc(',', f);
            if (k == fa_k)
                rc = write_job(&job, f);
            else
                rc = et_table_write(&tb, ET_TABLE_JSON, 0, f);
        }
        fputs("]}\n", f);
        break;
    }
    case ET_REPORT_HTML: rc = render_html(f, r, &o, g, &job, fa_k); break;
    }
    if (rc != 0) {
        et_error_set(e, rc, "writing the report: %s", et_strerror(rc));
    } else if (ferror(f)) {
        et_error_set(e, ET_EIO, "writing the report: %s", strerror(errno));
        rc = ET_EIO;
    }
out:
    if (job.started)
        (void)fa_job_wait(&job);
    et_buf_free(&job.out);
    for (int k = 0; k < o.ng; k++)
        et_free(o.g[k].cells);
    et_arena_free(o.a);
    return rc;
}

int et_iis_report_write_result(const struct et_iis_report_result *res, FILE *f,
                               enum et_report_format fmt, struct et_error *e)
{
    struct et_iis_report_opts o;
    struct et_iis_report *r;
    int rc;

    if (res->ntables < 0 || res->ntables > 8) {
        et_error_set(e, ET_EINVAL, "report: %d tables", res->ntables);
        return ET_EINVAL;
    }
    for (int k = 0; k < res->ntables; k++)
        if (res->tables[k].ncols <= 0 || res->tables[k].ncols > GRID_MAX_COLS) {
            et_error_set(e, ET_EINVAL, "report: %d columns", res->tables[k].ncols);
            return ET_EINVAL;
        }
    memset(&o, 0, sizeof(o));
    o.kind = res->kind;
    o.site = (enum et_iis_site)res->totals.site_used;
    if ((r = et_iis_report_new(&o)) == NULL) {
        et_error_set(e, ET_ENOMEM, "report output");
        return ET_ENOMEM;
    }
    r->o.site = o.site; /* the site counted, so the totals name it */
    r->lines = res->totals.lines;
    r->bad = res->totals.bad;
    r->bytes = res->totals.bytes;
    r->frontend = res->totals.frontend;
    r->backend = res->totals.backend;
    r->side[0].eas = res->totals.eas;
    r->bad_alloc = res->truncated;
    for (size_t i = 0; i < res->nhours; i++) {
        struct row *h = et__table_get(&r->side[0].hours, r->arena, "", 0, res->hour[i]);
        if (h == NULL) {
            et_iis_report_free(r);
            et_error_set(e, ET_ENOMEM, "report output");
            return ET_ENOMEM;
        }
        h->hits += res->hour_hits[i];
    }
    r->given = res;
    rc = et_iis_report_write(r, f, fmt, e);
    et_iis_report_free(r);
    return rc;
}
