/*
 * IIS log reports (see iisreport.h). The hot path:
 *
 *   read 8 MiB ---> memchr '\n' ---> split only the columns a report needs ---> stem check
 *        ^                                                                        |
 *        +---- carry the partial last line to the buffer's front <---- count -----+
 *
 * No allocation per line: device rows and keys are allocated once per distinct key from a
 * per-worker arena. Plain files are cut into byte ranges at line boundaries, one worker thread
 * each. A worker that does not start at byte 0 cannot know the #Fields in effect at its start:
 * it assumes the file's first #Fields and counts its lines up to its own first #Fields line
 * into a separate "prefix" table; if the previous range ended under another layout, the
 * prefix is recounted with the right one before merging (rare: IIS rewrites #Fields only on
 * restart or configuration change).
 */
#include "eastrace/iisreport.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "eastrace/arena.h"
#include "eastrace/loglines.h"
#include "eastrace/map.h"
#include "eastrace/table.h"
#include "report_int.h"

const char *const et_iis_known_errors[] = {
    "TooManyJobsQueued", "OverBudget", "InvalidContent", "ServerError", "ServerErrorRetryLater",
    "MailboxQuotaExceeded", "DeviceIsBlockedForThisUser", "AccessDenied", "SyncStateNotFound",
    "DeviceNotFullyProvisionable", "DeviceNotProvisioned", "ItemNotFound", "UserDisabledForSync",
};
const size_t et_iis_known_errors_n = ET_ARRAY_SIZE(et_iis_known_errors);
#define NERR ET_ARRAY_SIZE(et_iis_known_errors)

enum { H_4XX, H_5XX, H_409, H_451, H_500, H_503, H_507, H_COUNT };
static const char *const http_names[H_COUNT] = {"4xx", "5xx", "409", "451", "500", "503", "507"};

static const char *const kind_names[ET_IIS_REPORT_COUNT] = {
    "hits", "errors", "synckey0", "syncs-by-synckey", "device-timeline", "sendmail",
    "eas-errors", "rpc", "top", "calendar",
};

int et_iis_report_kind_from(const char *name)
{
    for (int i = 0; i < ET_IIS_REPORT_COUNT; i++)
        if (et_strcaseeq(name, kind_names[i]))
            return i;
    return -1;
}

const char *et_iis_report_kind_name(enum et_iis_report_kind k)
{
    return (unsigned)k < ET_IIS_REPORT_COUNT ? kind_names[k] : "?";
}

/* ---- keyed rows ---------------------------------------------------------------------- */

/* One row of a keyed table: a device (hits report), a user, an error name, an hour... */
struct row {
    const char *key;
    size_t klen;
    int64_t bucket;
    const char *user, *devtype, *ua, *username;
    uint64_t hits;
    uint32_t cmd[ET_EAS_CMD_COUNT];
    uint32_t http[H_COUNT];
    uint32_t err[NERR];
    uint32_t err_other;
    uint64_t scb, csb, tt;   /* sums */
    uint32_t scb_n, csb_n, tt_n;
    uint64_t tt_max;
};

/* Rows keyed by (key, bucket), the key compared ASCII case-insensitively (DeviceIds as the
 * script counts them). */
struct table {
    struct et_map m;
};

#define TABLE_MAX_ROWS (16u * 1024u * 1024u)

struct row_key {
    const char *k;
    size_t kl;
    int64_t b;
};

static int row_eq(const void *val, const void *key)
{
    const struct row *r = val;
    const struct row_key *w = key;
    if (r->bucket != w->b || r->klen != w->kl)
        return 0;
    return memcmp(r->key, w->k, w->kl) == 0 || et_strncaseeq(r->key, w->k, w->kl);
}

/* Finds or adds the row for (k, b). NULL on ENOMEM or when the table is full. */
static struct row *table_get(struct table *t, struct et_arena *a, const char *k, size_t kl,
                             int64_t b)
{
    struct row_key w = {k, kl, b};
    int found;
    uint64_t h = et_hash_ci(k, kl, (uint64_t)b);
    if (t->m.n >= TABLE_MAX_ROWS) {
        struct row *r = et_map_get(&t->m, h, row_eq, &w);
        return r;
    }
    struct et_map_slot *sl = et_map_upsert(&t->m, h, row_eq, &w, &found);
    if (sl == NULL)
        return NULL;
    if (found)
        return sl->val;
    struct row *r = et_arena_alloc(a, sizeof(*r));
    if (r == NULL || (r->key = et_arena_strndup(a, k, kl)) == NULL) {
        et_map_upsert_cancel(&t->m, sl);
        return NULL;
    }
    r->klen = kl;
    r->bucket = b;
    sl->val = r;
    return r;
}

/* Calls the rows of t in turn: for (size_t i = 0; i < t->m.cap; i++) with ROW_AT. */
#define ROW_AT(t, i) ((struct row *)(t)->m.slot[i].val)

static void table_free(struct table *t)
{
    et_map_free(&t->m);
}

/* ---- histograms for p50/p95 (log-linear, < 1.6% relative error) ----------------------- */

#define HBINS (1024 + 54 * 64)

struct hist {
    uint64_t bin[HBINS];
    uint64_t n, sum, max;
};

static size_t hist_idx(uint64_t v)
{
    if (v < 1024)
        return (size_t)v;
    int e = 63 - __builtin_clzll(v);
    size_t i = 1024 + (size_t)(e - 10) * 64 + (size_t)((v >> (e - 6)) & 63);
    return i < HBINS ? i : HBINS - 1;
}

static uint64_t hist_val(size_t i)
{
    if (i < 1024)
        return i;
    size_t e = (i - 1024) / 64 + 10, sub = (i - 1024) % 64;
    return ((uint64_t)1 << e) + ((uint64_t)sub << (e - 6));
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->bin[hist_idx(v)]++;
    h->n++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

static uint64_t hist_pct(const struct hist *h, double p)
{
    uint64_t want = (uint64_t)(p * (double)h->n + 0.5), acc = 0;
    if (want == 0)
        want = 1;
    for (size_t i = 0; i < HBINS; i++) {
        acc += h->bin[i];
        if (acc >= want)
            return ET_MIN(hist_val(i), h->max);
    }
    return h->max;
}

/* ---- per-line records for the row reports ------------------------------------------- */

struct rec {
    int64_t t;
    const char *user, *device, *devtype, *cmd, *error, *as, *ty, *st, *ua;
    int http, sub, win32;
    long status, sk, hb, rpcc, rpcl, tt;
};

struct recs {
    struct rec *v;
    size_t n, cap;
    int truncated;
};

/* ---- aggregates ---------------------------------------------------------------------- */

/* Everything one worker counts for one site. */
struct agg {
    struct table devs;    /* key DeviceId, bucket = interval start */
    struct table errs;    /* key Error name */
    struct table hours;   /* key "", bucket = hour */
    struct table keyed;   /* synckey0 / syncs-by-synckey / top users: composite keys */
    struct hist scb, csb, tt;
    uint32_t http[H_COUNT];
    uint64_t eas;
    struct recs recs;
};

static void agg_free(struct agg *g)
{
    table_free(&g->devs);
    table_free(&g->errs);
    table_free(&g->hours);
    table_free(&g->keyed);
    et_free(g->recs.v);
    memset(g, 0, sizeof(*g));
}

struct extra_table {
    const char *name;
    const char **cols;
    int ncols;
    const char **cells;
    size_t nrows;
};

struct et_iis_report {
    struct et_iis_report_opts o;
    struct extra_table extra[4]; /* the caller's tables (findings), strings in arena */
    int nextra;
    char date[11];          /* normalized YYYY-MM-DD, "" for all */
    char *device;
    struct agg side[2];     /* 0 front end (or everything), 1 back end */
    struct et_arena *arena; /* keys and rows of side[] (merged) */
    uint64_t lines, bad, bytes, frontend, backend;
    int bad_alloc;          /* a table hit its cap or memory ran out */
    struct et__fa *fa;      /* the analyzer's findings (o.findings), NULL without */
    int fa_done;            /* the findings table is built (summary findings taken) */
    const char *const *fa_cells;
    size_t fa_rows;
    const struct et_iis_report_result *given; /* et_iis_report_write_result's tables */
};

/* A worker: counts a byte range (or a stream) into its own aggregates. */
struct worker {
    struct et_iis_report *r;
    struct agg side[2], pre[2];
    struct agg (*cur)[2];   /* pre until the first #Fields line of a non-initial range */
    struct et_arena *arena;
    struct et_arena *scratch; /* decoded base64 queries, reset per such line; lazily made */
    struct et__fw *fw;        /* records for the analyzer (o.findings), NULL without */
    struct et_iis_layout layout;
    int need_max;           /* highest column index a report needs */
    uint64_t lines, bad, frontend, backend;
    int oom;
    /* Range work */
    int fd;
    uint64_t start, end;    /* [start, end) */
    int initial;            /* starts at byte 0 */
    uint64_t first_fields;  /* offset of its first #Fields line (end when none) */
    int saw_fields;
    _Atomic uint64_t *progress;
    /* The last line's date and time, and the hour row it hit (logs are in time order). */
    char last_dt[20];
    int64_t last_t;
    struct row *last_hour[2];
    int64_t last_hour_b[2];
};

static void layout_changed(struct worker *w)
{
    int m = 0;
    for (int k = 0; k < ET_IIS_FIELD_COUNT; k++)
        if (w->layout.idx[k] > m)
            m = w->layout.idx[k];
    w->need_max = m;
}

static int worker_init(struct worker *w, struct et_iis_report *r)
{
    memset(w, 0, sizeof(*w));
    w->r = r;
    w->arena = et_arena_new(256 * 1024);
    if (w->arena == NULL)
        return ET_ENOMEM;
    w->cur = &w->side;
    w->initial = 1;
    if (r->o.findings && (w->fw = et__fw_new(r->o.threads, r->o.site)) == NULL) {
        et_arena_free(w->arena);
        w->arena = NULL;
        return ET_ENOMEM;
    }
    et_iis_layout_default(&w->layout);
    layout_changed(w);
    return 0;
}

static void worker_free(struct worker *w)
{
    for (int i = 0; i < 2; i++) {
        agg_free(&w->side[i]);
        agg_free(&w->pre[i]);
    }
    et_arena_free(w->arena);
    w->arena = NULL;
    et_arena_free(w->scratch);
    w->scratch = NULL;
    et__fw_free(w->fw);
    w->fw = NULL;
}

static int is_dash(struct et_slice s)
{
    return s.len == 0 || (s.len == 1 && s.ptr[0] == '-');
}

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

static struct et_slice colv(const struct worker *w, const struct et_slice *f, int n,
                            enum et_iis_field k)
{
    struct et_slice none = {(const uint8_t *)"", 0};
    int i = w->layout.idx[k];
    if (i < 0 || i >= n || is_dash(f[i]))
        return none;
    return f[i];
}

static const char *adup(struct worker *w, struct et_slice s)
{
    const char *d = et_arena_strndup(w->arena, s.len ? (const char *)s.ptr : "", s.len);
    if (d == NULL)
        w->oom = 1;
    return d ? d : "";
}

static const char *adup_ua(struct worker *w, struct et_slice s)
{
    char *d = et_arena_strndup(w->arena, s.len ? (const char *)s.ptr : "", s.len);
    if (d == NULL) {
        w->oom = 1;
        return "";
    }
    for (char *p = d; *p; p++)
        if (*p == '+')
            *p = ' ';
    return d;
}

static int known_err(struct et_slice e)
{
    for (size_t i = 0; i < NERR; i++) {
        size_t l = strlen(et_iis_known_errors[i]);
        if (l == e.len && memcmp(e.ptr, et_iis_known_errors[i], l) == 0)
            return (int)i;
    }
    return -1;
}

/* Finds "Error:" in a Log= value without parsing every item (hits report hot path). */
static struct et_slice quick_error(struct et_slice log)
{
    struct et_slice none = {(const uint8_t *)"", 0};
    if (log.len == 0)
        return none; /* ptr may be NULL */
    const uint8_t *p = log.ptr, *end = log.ptr + log.len;
    while (p < end) {
        const uint8_t *q = memchr(p, 'E', (size_t)(end - p));
        if (q == NULL || end - q < 6)
            return none;
        if ((q == log.ptr || q[-1] == '_') && memcmp(q, "Error:", 6) == 0) {
            const uint8_t *v = q + 6, *ve = memchr(v, '_', (size_t)(end - v));
            struct et_slice r = {v, (size_t)((ve ? ve : end) - v)};
            return r;
        }
        p = q + 1;
    }
    return none;
}

static int http_bucket_count(uint32_t *h, long st)
{
    if (st >= 400 && st < 500)
        h[H_4XX]++;
    if (st >= 500 && st < 600)
        h[H_5XX]++;
    switch (st) {
    case 409: h[H_409]++; break;
    case 451: h[H_451]++; break;
    case 500: h[H_500]++; break;
    case 503: h[H_503]++; break;
    case 507: h[H_507]++; break;
    default: break;
    }
    return 0;
}

static int recs_add(struct worker *w, struct agg *g, const struct rec *rc)
{
    struct recs *rs = &g->recs;
    size_t max = w->r->o.max_rows;
    if (rs->n >= max) {
        rs->truncated = 1;
        return 0;
    }
    if (rs->n == rs->cap) {
        size_t nc = rs->cap ? rs->cap * 2 : 256;
        struct rec *nv = et_realloc(rs->v, nc * sizeof(*nv));
        if (nv == NULL) {
            w->oom = 1;
            return ET_ENOMEM;
        }
        rs->v = nv;
        rs->cap = nc;
    }
    rs->v[rs->n++] = *rc;
    return 0;
}

static int is_calendar(const struct et_eas_log *lg, enum et_eas_cmd c)
{
    if (c == ET_EAS_CMD_MEETINGRESPONSE)
        return 1;
    if (lg->folder_type.len == 2 && memcmp(lg->folder_type.ptr, "Ca", 2) == 0)
        return 1;
    /* Newer builds log the collection as Fid:<id>:Ty:Ca; look for the pair anywhere. */
    for (size_t i = 0; i < lg->nitems; i++) {
        const struct et_eas_log_item *it = &lg->items[i];
        const uint8_t *v = it->value.ptr;
        for (size_t k = 0; k + 5 <= it->value.len; k++)
            if (memcmp(v + k, "Ty:Ca", 5) == 0)
                return 1;
    }
    return 0;
}

/* Counts one data line. */
static void count_line(struct worker *w, const char *line, size_t len)
{
    const struct et_iis_report_opts *o = &w->r->o;
    struct et_slice f[ET_IIS_MAX_FIELDS];
    /* The analyzer's records need every column (the reader checks the count against
     * #Fields); the counts alone need only the columns the report reads. */
    int max = w->need_max + 2;
    if (w->fw != NULL && max < w->layout.n + 1)
        max = w->layout.n + 1;
    int n = et_iis_line_split(line, len, f, max < ET_IIS_MAX_FIELDS ? max : ET_IIS_MAX_FIELDS);
    int si = w->layout.idx[ET_IIS_STEM];

    w->lines++;
    if (si < 0 || n <= w->need_max) {
        w->bad++;
        /* The reader still notes the site of a short line before refusing it. */
        if (w->fw != NULL && si >= 0 && n > si &&
            et_iis_stem_classify((const char *)f[si].ptr, f[si].len) == ET_IIS_STEM_FRONTEND)
            et__fw_frontend(w->fw);
        return;
    }
    enum et_iis_stem stem = et_iis_stem_classify((const char *)f[si].ptr, f[si].len);
    if (stem == ET_IIS_STEM_OTHER)
        return;
    if (w->fw != NULL && stem == ET_IIS_STEM_FRONTEND)
        et__fw_frontend(w->fw);
    int sidx;
    switch (o->site) {
    case ET_IIS_SITE_FRONTEND:
        if (stem != ET_IIS_STEM_FRONTEND)
            return;
        sidx = 0;
        break;
    case ET_IIS_SITE_BACKEND:
        if (stem != ET_IIS_STEM_BACKEND)
            return;
        sidx = 0;
        break;
    case ET_IIS_SITE_BOTH:
        sidx = 0;
        break;
    default:
        sidx = stem == ET_IIS_STEM_BACKEND;
        break;
    }
    if (stem == ET_IIS_STEM_BACKEND)
        w->backend++;
    else
        w->frontend++;
    if (w->fw != NULL)
        (void)et__fw_candidate(w->fw, &w->layout, f, n, stem);

    struct et_slice date = colv(w, f, n, ET_IIS_DATE);
    if (w->r->date[0] && (date.len != 10 || memcmp(date.ptr, w->r->date, 10) != 0))
        return;
    struct et_slice tsl = colv(w, f, n, ET_IIS_TIME);
    int64_t t = 0;
    if (date.len == 10 && tsl.len == 8 && memcmp(w->last_dt, date.ptr, 10) == 0 &&
        memcmp(w->last_dt + 10, tsl.ptr, 8) == 0) {
        t = w->last_t;
    } else if (date.len && tsl.len &&
               et_iis_time_parse((const char *)date.ptr, date.len, (const char *)tsl.ptr,
                                 tsl.len, &t) == 0 &&
               date.len == 10 && tsl.len == 8) {
        memcpy(w->last_dt, date.ptr, 10);
        memcpy(w->last_dt + 10, tsl.ptr, 8);
        w->last_t = t;
    }
    struct et_iis_query q;
    struct et_slice qs = colv(w, f, n, ET_IIS_QUERY);
    et_iis_query_scan((const char *)qs.ptr, qs.len, &q);
    if (w->fw != NULL)
        et__fw_line(w->fw, &w->layout, f, n, stem, &q, t, &w->oom);
    if (q.base64) {
        /* Outlook / Windows Mail: decode only these lines; plain ones stay on the fast path.
         * The decoded strings live until the next base64 line (rows copy their keys). */
        if (w->scratch == NULL)
            w->scratch = et_arena_new(4096);
        else
            et_arena_reset(w->scratch);
        if (w->scratch == NULL)
            w->oom = 1;
        else
            (void)et_iis_query_decode_base64(&q, w->scratch);
    }
    if (w->r->device != NULL &&
        !(q.device_id.len == strlen(w->r->device) &&
          et_strncaseeq((const char *)q.device_id.ptr, w->r->device, q.device_id.len)))
        return;

    struct agg *g = &(*w->cur)[sidx];
    struct et_slice method = colv(w, f, n, ET_IIS_METHOD);
    enum et_eas_cmd cmd = et_eas_cmd_from((const char *)q.cmd.ptr, q.cmd.len);
    if (cmd == ET_EAS_CMD_NONE && method.len == 7 && memcmp(method.ptr, "OPTIONS", 7) == 0)
        cmd = ET_EAS_CMD_OPTIONS;
    long st = num(colv(w, f, n, ET_IIS_STATUS));
    g->eas++;
    http_bucket_count(g->http, st);
    {
        int64_t hb = t / 3600000000LL;
        struct row *h = w->last_hour[sidx];
        if (h == NULL || w->last_hour_b[sidx] != hb || w->cur != &w->side) {
            h = table_get(&g->hours, w->arena, "", 0, hb);
            w->last_hour[sidx] = w->cur == &w->side ? h : NULL;
            w->last_hour_b[sidx] = hb;
        }
        if (h == NULL)
            w->oom = 1;
        else
            h->hits++;
    }

    if (o->kind == ET_IIS_REPORT_HITS || o->kind == ET_IIS_REPORT_TOP) {
        int64_t b = o->interval > 0 ? (t / 1000000 / o->interval) * o->interval : 0;
        struct et_slice dev = q.device_id;
        struct row *d = table_get(&g->devs, w->arena, (const char *)dev.ptr, dev.len, b);
        if (d == NULL) {
            w->oom = 1;
            return;
        }
        if (d->hits == 0) {
            d->user = adup(w, q.user);
            d->devtype = adup(w, q.device_type);
            d->ua = adup_ua(w, colv(w, f, n, ET_IIS_UA));
            d->username = adup(w, colv(w, f, n, ET_IIS_USERNAME));
        }
        d->hits++;
        d->cmd[cmd]++;
        http_bucket_count(d->http, st);
        struct et_slice err = quick_error(q.log);
        if (err.len) {
            int k = known_err(err);
            if (k >= 0)
                d->err[k]++;
            else
                d->err_other++;
            struct row *er = table_get(&g->errs, w->arena, (const char *)err.ptr, err.len, 0);
            if (er)
                er->hits++;
        }
        long v;
        if ((v = num(colv(w, f, n, ET_IIS_SC_BYTES))) >= 0) {
            d->scb += (uint64_t)v;
            d->scb_n++;
            hist_add(&g->scb, (uint64_t)v);
        }
        if ((v = num(colv(w, f, n, ET_IIS_CS_BYTES))) >= 0) {
            d->csb += (uint64_t)v;
            d->csb_n++;
            hist_add(&g->csb, (uint64_t)v);
        }
        if ((v = num(colv(w, f, n, ET_IIS_TIME_TAKEN))) >= 0) {
            d->tt += (uint64_t)v;
            d->tt_n++;
            if ((uint64_t)v > d->tt_max)
                d->tt_max = (uint64_t)v;
            hist_add(&g->tt, (uint64_t)v);
        }
        if (o->kind == ET_IIS_REPORT_TOP) {
            struct row *u = table_get(&g->keyed, w->arena, (const char *)q.user.ptr, q.user.len, 0);
            if (u == NULL)
                w->oom = 1;
            else
                u->hits++;
        }
        return;
    }

    struct et_eas_log lg;
    et_eas_log_parse((const char *)q.log.ptr, q.log.len, &lg);
    if (lg.error.len) {
        struct row *er = table_get(&g->errs, w->arena, (const char *)lg.error.ptr, lg.error.len, 0);
        if (er)
            er->hits++;
        else
            w->oom = 1;
    }
    if (o->kind == ET_IIS_REPORT_ERRORS)
        return;
    if (o->kind == ET_IIS_REPORT_SYNCKEY0 || o->kind == ET_IIS_REPORT_SYNCS_BY_SYNCKEY) {
        char key[512];
        if (cmd != ET_EAS_CMD_SYNC)
            return;
        if (o->kind == ET_IIS_REPORT_SYNCKEY0 && lg.sync_key != 0)
            return;
        int kl = snprintf(key, sizeof(key), "%.*s\x1f%.*s\x1f%.*s", (int)ET_MIN(q.user.len, 200),
                          (const char *)q.user.ptr, (int)ET_MIN(q.device_id.len, 200),
                          (const char *)q.device_id.ptr, (int)ET_MIN(q.device_type.len, 80),
                          (const char *)q.device_type.ptr);
        if (kl < 0)
            return;
        struct row *k = table_get(&g->keyed, w->arena, key, ET_MIN((size_t)kl, sizeof(key) - 1),
                                  o->kind == ET_IIS_REPORT_SYNCKEY0 ? 0 : lg.sync_key);
        if (k == NULL)
            w->oom = 1;
        else
            k->hits++;
        return;
    }
    int keep = 0;
    switch (o->kind) {
    case ET_IIS_REPORT_DEVICE_TIMELINE: keep = 1; break;
    case ET_IIS_REPORT_SENDMAIL: keep = cmd == ET_EAS_CMD_SENDMAIL; break;
    case ET_IIS_REPORT_EAS_ERRORS:
        keep = lg.error.len > 0 || st >= 400 ||
               (lg.status > 1 && !(cmd == ET_EAS_CMD_PING && lg.status == 2));
        break;
    case ET_IIS_REPORT_RPC:
        keep = (lg.rpc_count >= 0 && lg.rpc_count >= o->rpc_count_min) ||
               (lg.rpc_latency >= 0 && lg.rpc_latency >= o->rpc_latency_min);
        break;
    case ET_IIS_REPORT_CALENDAR: keep = is_calendar(&lg, cmd); break;
    default: break;
    }
    if (!keep)
        return;
    struct rec rc = {0};
    rc.t = t;
    rc.user = adup(w, q.user);
    rc.device = adup(w, q.device_id);
    rc.devtype = adup(w, q.device_type);
    rc.cmd = cmd == ET_EAS_CMD_OTHER ? adup(w, q.cmd) : et_eas_cmd_name(cmd);
    rc.error = adup(w, lg.error);
    rc.as = adup(w, lg.access_state);
    rc.ty = adup(w, lg.folder_type);
    rc.st = adup(w, lg.sync_type);
    rc.ua = adup_ua(w, colv(w, f, n, ET_IIS_UA));
    rc.http = (int)st;
    rc.sub = (int)num(colv(w, f, n, ET_IIS_SUBSTATUS));
    rc.win32 = (int)num(colv(w, f, n, ET_IIS_WIN32));
    rc.status = lg.status;
    rc.sk = lg.sync_key;
    rc.hb = lg.heartbeat;
    rc.rpcc = lg.rpc_count;
    rc.rpcl = lg.rpc_latency;
    rc.tt = num(colv(w, f, n, ET_IIS_TIME_TAKEN));
    recs_add(w, g, &rc);
}

/* Handles one line (no '\n'); off is its input offset. */
static void worker_line(struct worker *w, const char *line, size_t len, uint64_t off)
{
    if (len == 0)
        return;
    if (line[0] == '#') {
        if (len > 8 && memcmp(line, "#Fields:", 8) == 0) {
            if (!w->saw_fields) {
                w->saw_fields = 1;
                w->first_fields = off;
                w->cur = &w->side;
                if (w->fw != NULL && !w->initial)
                    et__fw_mark_prefix(w->fw);
            }
            if (et_iis_layout_parse(&w->layout, line + 8, len - 8) < 0)
                et_iis_layout_default(&w->layout);
            layout_changed(w);
        }
        return;
    }
    count_line(w, line, len);
}

/* Feeds a buffer of whole lines; returns bytes consumed (up to the last '\n', or all when
 * final). */
static size_t worker_feed(struct worker *w, const char *p, size_t n, uint64_t off, int final)
{
    const char *s = p, *end = p + n;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        if (nl == NULL) {
            if (!final)
                break;
            nl = end;
        }
        worker_line(w, s, (size_t)(nl - s), off + (uint64_t)(s - p));
        s = nl < end ? nl + 1 : end;
    }
    return (size_t)(s - p);
}

#define RBUF (8u * 1024u * 1024u)

/* Reads [start, end) of fd with pread into one buffer. */
static int worker_range(struct worker *w, char *buf)
{
    uint64_t pos = w->start;
    size_t have = 0;
    while (pos < w->end || have > 0) {
        size_t want = RBUF - have;
        if (want > w->end - pos)
            want = (size_t)(w->end - pos);
        ssize_t got = 0;
        if (want > 0) {
            got = pread(w->fd, buf + have, want, (off_t)pos);
            if (got < 0) {
                if (errno == EINTR)
                    continue;
                return ET_EIO;
            }
        }
        int final = pos + (uint64_t)got >= w->end;
        size_t total = have + (size_t)got;
        size_t used = worker_feed(w, buf, total, pos - have, final);
        if (used == 0 && total == RBUF) {
            /* A line longer than the buffer: count it as bad and skip to its end. */
            w->bad++;
            const char *nl = NULL;
            used = total;
            (void)nl;
        }
        memmove(buf, buf + used, total - used);
        have = total - used;
        pos += (uint64_t)got;
        if (w->progress)
            atomic_fetch_add(w->progress, (uint64_t)got);
        if (final) {
            if (have > 0)
                worker_feed(w, buf, have, pos - have, 1);
            break;
        }
    }
    return 0;
}

struct thread_arg {
    struct worker *w;
    int rc;
};

static void *thread_main(void *p)
{
    struct thread_arg *ta = p;
    char *buf = et_malloc(RBUF);
    if (buf == NULL) {
        ta->rc = ET_ENOMEM;
        return NULL;
    }
    ta->rc = worker_range(ta->w, buf);
    et_free(buf);
    return NULL;
}

/* ---- merging ------------------------------------------------------------------------- */

static int merge_table(struct table *dst, struct et_arena *a, const struct table *src,
                       int full)
{
    for (size_t i = 0; i < src->m.cap; i++) {
        const struct row *s = ROW_AT(src, i);
        if (s == NULL)
            continue;
        struct row *d = table_get(dst, a, s->key, s->klen, s->bucket);
        if (d == NULL)
            return ET_ENOMEM;
        if (d->hits == 0 && full) {
            d->user = et_arena_strdup(a, s->user ? s->user : "");
            d->devtype = et_arena_strdup(a, s->devtype ? s->devtype : "");
            d->ua = et_arena_strdup(a, s->ua ? s->ua : "");
            d->username = et_arena_strdup(a, s->username ? s->username : "");
            if (!d->user || !d->devtype || !d->ua || !d->username)
                return ET_ENOMEM;
        }
        d->hits += s->hits;
        if (!full)
            continue;
        for (int k = 0; k < ET_EAS_CMD_COUNT; k++)
            d->cmd[k] += s->cmd[k];
        for (int k = 0; k < H_COUNT; k++)
            d->http[k] += s->http[k];
        for (size_t k = 0; k < NERR; k++)
            d->err[k] += s->err[k];
        d->err_other += s->err_other;
        d->scb += s->scb;
        d->csb += s->csb;
        d->tt += s->tt;
        d->scb_n += s->scb_n;
        d->csb_n += s->csb_n;
        d->tt_n += s->tt_n;
        if (s->tt_max > d->tt_max)
            d->tt_max = s->tt_max;
    }
    return 0;
}

static void merge_hist(struct hist *d, const struct hist *s)
{
    if (s->n == 0)
        return;
    for (size_t i = 0; i < HBINS; i++)
        d->bin[i] += s->bin[i];
    d->n += s->n;
    d->sum += s->sum;
    if (s->max > d->max)
        d->max = s->max;
}

static const char *sdup(struct et_arena *a, const char *s, int *oom)
{
    const char *d = et_arena_strdup(a, s ? s : "");
    if (d == NULL)
        *oom = 1;
    return d ? d : "";
}

static int merge_agg(struct et_iis_report *r, struct agg *d, const struct agg *s)
{
    struct et_arena *a = r->arena;
    int rc = 0, oom = 0;
    if ((rc = merge_table(&d->devs, a, &s->devs, 1)) < 0 ||
        (rc = merge_table(&d->errs, a, &s->errs, 0)) < 0 ||
        (rc = merge_table(&d->hours, a, &s->hours, 0)) < 0 ||
        (rc = merge_table(&d->keyed, a, &s->keyed, 0)) < 0)
        return rc;
    merge_hist(&d->scb, &s->scb);
    merge_hist(&d->csb, &s->csb);
    merge_hist(&d->tt, &s->tt);
    for (int k = 0; k < H_COUNT; k++)
        d->http[k] += s->http[k];
    d->eas += s->eas;
    for (size_t i = 0; i < s->recs.n; i++) {
        if (d->recs.n >= r->o.max_rows) {
            d->recs.truncated = 1;
            break;
        }
        if (d->recs.n == d->recs.cap) {
            size_t nc = d->recs.cap ? d->recs.cap * 2 : 256;
            struct rec *nv = et_realloc(d->recs.v, nc * sizeof(*nv));
            if (nv == NULL)
                return ET_ENOMEM;
            d->recs.v = nv;
            d->recs.cap = nc;
        }
        struct rec x = s->recs.v[i];
        x.user = sdup(a, x.user, &oom);
        x.device = sdup(a, x.device, &oom);
        x.devtype = sdup(a, x.devtype, &oom);
        x.cmd = sdup(a, x.cmd, &oom);
        x.error = sdup(a, x.error, &oom);
        x.as = sdup(a, x.as, &oom);
        x.ty = sdup(a, x.ty, &oom);
        x.st = sdup(a, x.st, &oom);
        x.ua = sdup(a, x.ua, &oom);
        d->recs.v[d->recs.n++] = x;
    }
    d->recs.truncated |= s->recs.truncated;
    return oom ? ET_ENOMEM : 0;
}

static int merge_worker(struct et_iis_report *r, struct worker *w)
{
    int rc;
    for (int i = 0; i < 2; i++) {
        if ((rc = merge_agg(r, &r->side[i], &w->pre[i])) < 0)
            return rc;
        if ((rc = merge_agg(r, &r->side[i], &w->side[i])) < 0)
            return rc;
    }
    r->lines += w->lines;
    r->bad += w->bad;
    r->frontend += w->frontend;
    r->backend += w->backend;
    if (w->oom)
        r->bad_alloc = 1;
    return 0;
}

/* ---- public -------------------------------------------------------------------------- */

struct et_iis_report *et_iis_report_new(const struct et_iis_report_opts *o)
{
    struct et_iis_report *r = et_calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    if (o != NULL)
        r->o = *o;
    r->o.date = NULL;
    r->o.device = NULL;
    if (r->o.threads <= 0)
        r->o.threads = 2;
    if (r->o.threads > 16)
        r->o.threads = 16;
    if (r->o.max_rows == 0)
        r->o.max_rows = 1000000;
    if (r->o.rpc_count_min <= 0)
        r->o.rpc_count_min = 500;
    if (r->o.rpc_latency_min <= 0)
        r->o.rpc_latency_min = 1000;
    if (r->o.kind == ET_IIS_REPORT_TOP && r->o.top <= 0)
        r->o.top = 20;
    if (o != NULL && o->date != NULL && o->date[0] &&
        et_iis_date_normalize(o->date, r->date) != 0)
        goto fail;
    if (o != NULL && o->device != NULL && o->device[0] &&
        (r->device = et_strdup(o->device)) == NULL)
        goto fail;
    r->arena = et_arena_new(256 * 1024);
    if (r->arena == NULL)
        goto fail;
    if (r->o.findings && (r->fa = et__fa_new(r->o.threads)) == NULL)
        goto fail;
    return r;
fail:
    et_arena_free(r->arena);
    et_free(r->device);
    et_free(r);
    return NULL;
}

void et_iis_report_free(struct et_iis_report *r)
{
    if (r == NULL)
        return;
    agg_free(&r->side[0]);
    agg_free(&r->side[1]);
    et_arena_free(r->arena);
    et__fa_free(r->fa);
    et_free(r->device);
    et_free(r);
}

/* Feeds one input's records to the analyzer, in file order. */
static int analyze(struct et_iis_report *r, const struct et__fa_seg *segs, int nsegs)
{
    if (r->fa == NULL || nsegs == 0)
        return 0;
    int rc = et__fa_run(r->fa, segs, nsegs, r->o.site);
    if (rc != 0)
        r->bad_alloc = 1;
    return rc;
}

int et_iis_report_add_mem(struct et_iis_report *r, const void *data, size_t len,
                          struct et_error *e)
{
    struct worker *w = et_malloc(sizeof(*w));
    if (w == NULL || worker_init(w, r) < 0) {
        et_free(w);
        et_error_set(e, ET_ENOMEM, "report worker");
        return ET_ENOMEM;
    }
    worker_feed(w, data, len, 0, 1);
    r->bytes += len;
    struct et__fa_seg seg = {w->fw, 0};
    int rc = analyze(r, &seg, w->fw != NULL);
    if (rc == 0)
        rc = merge_worker(r, w);
    worker_free(w);
    et_free(w);
    if (rc < 0)
        et_error_set(e, rc, "report merge");
    return rc;
}

static int add_stream(struct et_iis_report *r, const char *path, struct et_error *e)
{
    struct et_loglines lr;
    struct worker *wp = et_malloc(sizeof(*wp));
    int rc = wp ? et_loglines_open_file(&lr, path, e) : ET_ENOMEM;
    if (rc < 0) {
        et_free(wp);
        if (rc == ET_ENOMEM)
            et_error_set(e, rc, "report worker");
        return rc;
    }
#define w (*wp)
    if (worker_init(&w, r) < 0) {
        et_free(wp);
        et_loglines_close(&lr);
        et_error_set(e, ET_ENOMEM, "report worker");
        return ET_ENOMEM;
    }
    for (;;) {
        const char *line;
        size_t len;
        rc = et_loglines_next(&lr, &line, &len, e);
        if (rc == ET_ETOOBIG) {
            w.bad++;
            e->code = 0;
            continue;
        }
        if (rc <= 0)
            break;
        worker_line(&w, line, len, lr.line_off);
    }
    r->bytes += lr.off;
    et_loglines_close(&lr);
    struct et__fa_seg seg = {w.fw, 0};
    if (rc == 0)
        rc = analyze(r, &seg, w.fw != NULL);
    if (rc == 0)
        rc = merge_worker(r, &w);
    else {
        char m[600];
        snprintf(m, sizeof(m), "%s: %s", path, e->msg);
        uint64_t off = e->offset;
        int code = e->code;
        e->code = 0;
        et_error_set_at(e, code, off, "%s", m);
        (void)merge_worker(r, &w);
    }
    worker_free(&w);
#undef w
    et_free(wp);
    return rc;
}

static void progress_draw(uint64_t done, uint64_t total, const char *path)
{
    int width = 40, fill = total ? (int)((double)done / (double)total * width) : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%-24.24s [%s] %3d%% %8.1f MB", path, bar,
            total ? (int)(done * 100 / total) : 100, (double)done / 1e6);
    fflush(stderr);
}

/* Reads the first 64 KiB to find the #Fields layout in effect after the header block. */
static void head_layout(int fd, struct et_iis_layout *l)
{
    char buf[65536];
    ssize_t n = pread(fd, buf, sizeof(buf), 0);
    et_iis_layout_default(l);
    if (n <= 0)
        return;
    const char *p = buf, *end = buf + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break;
        if (nl - p > 8 && memcmp(p, "#Fields:", 8) == 0)
            (void)et_iis_layout_parse(l, p + 8, (size_t)(nl - p - 8));
        p = nl + 1;
    }
}

/* Offset of the first byte after the '\n' at or after off (or size). */
static uint64_t next_line(int fd, uint64_t off, uint64_t size)
{
    char buf[65536];
    while (off < size) {
        ssize_t n = pread(fd, buf, sizeof(buf), (off_t)off);
        if (n <= 0)
            return size;
        const char *nl = memchr(buf, '\n', (size_t)n);
        if (nl != NULL)
            return off + (uint64_t)(nl - buf) + 1;
        off += (uint64_t)n;
    }
    return size;
}

static int add_file_threaded(struct et_iis_report *r, const char *path, int fd, uint64_t size,
                             struct et_error *e)
{
    int nt = r->o.threads;
    struct worker *w;
    struct thread_arg ta[16];
    pthread_t th[16];
    int started = 0, rc = 0;
    _Atomic uint64_t progress = 0;
    struct et_iis_layout assumed;

    if (size < (uint64_t)nt * 4 * 1024 * 1024)
        nt = 1;
    head_layout(fd, &assumed);
    w = et_calloc((size_t)nt, sizeof(*w));
    if (w == NULL) {
        et_error_set(e, ET_ENOMEM, "report worker");
        return ET_ENOMEM;
    }
    for (int i = 0; i < nt; i++) {
        if (worker_init(&w[i], r) < 0) {
            for (int k = 0; k < i; k++)
                worker_free(&w[k]);
            et_free(w);
            et_error_set(e, ET_ENOMEM, "report worker");
            return ET_ENOMEM;
        }
        w[i].fd = fd;
        w[i].progress = &progress;
        w[i].start = i == 0 ? 0 : next_line(fd, size * (uint64_t)i / (uint64_t)nt, size);
    }
    for (int i = 0; i < nt; i++) {
        w[i].end = i + 1 < nt ? w[i + 1].start : size;
        if (w[i].end < w[i].start)
            w[i].end = w[i].start;
        w[i].first_fields = w[i].end;
        if (i > 0) {
            w[i].initial = 0;
            w[i].layout = assumed;
            layout_changed(&w[i]);
            w[i].cur = &w[i].pre;
        }
    }
    for (int i = 0; i < nt; i++) {
        ta[i].w = &w[i];
        ta[i].rc = 0;
        if (pthread_create(&th[i], NULL, thread_main, &ta[i]) != 0) {
            ta[i].rc = ET_ENOMEM;
            break;
        }
        started++;
    }
    if (r->o.progress) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        for (;;) {
            uint64_t d = atomic_load(&progress);
            progress_draw(d, size, path);
            if (d >= size)
                break;
            int alive = 0;
            for (int i = 0; i < started; i++)
                alive |= pthread_tryjoin_np(th[i], NULL) == EBUSY;
            if (!alive)
                break;
            nanosleep(&ts, NULL);
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (r->o.progress) {
        progress_draw(size, size, path);
        fputc('\n', stderr);
    }
    for (int i = 0; i < nt; i++)
        if (ta[i].rc < 0 && rc == 0)
            rc = ta[i].rc;
    if (started < nt && rc == 0)
        rc = ET_ENOMEM;
    /* Recount a prefix counted under the wrong #Fields (see the comment at the top). The
     * recounts are kept until the analyzer has read their records. */
    struct worker *fixes[16] = {0};
    for (int i = 1; rc == 0 && i < nt; i++) {
        /* w[i-1].layout is the layout at its end (fixed below when it never saw one). */
        const struct et_iis_layout *prev = &w[i - 1].layout;
        if (et_iis_layout_equal(prev, &assumed))
            continue;
        agg_free(&w[i].pre[0]);
        agg_free(&w[i].pre[1]);
        struct worker *fix = et_malloc(sizeof(*fix));
        if (fix == NULL || worker_init(fix, r) < 0) {
            et_free(fix);
            rc = ET_ENOMEM;
            break;
        }
        fix->layout = *prev;
        layout_changed(fix);
        fix->fd = fd;
        fix->start = w[i].start;
        fix->end = w[i].first_fields;
        char *buf = et_malloc(RBUF);
        if (buf == NULL)
            rc = ET_ENOMEM;
        else
            rc = worker_range(fix, buf);
        et_free(buf);
        /* The prefix was counted under the assumed layout; its recount replaces it. The
         * recount's rows live in fix's arena, so merge them now, before fix goes. */
        if (rc == 0) {
            for (int k = 0; k < 2 && rc == 0; k++)
                rc = merge_agg(r, &r->side[k], &fix->side[k]);
        }
        if (!w[i].saw_fields)
            w[i].layout = fix->layout;
        fixes[i] = fix;
    }
    if (rc == 0 && r->fa != NULL) {
        struct et__fa_seg segs[32];
        int ns = 0;
        for (int i = 0; i < nt; i++) {
            if (fixes[i] != NULL)
                segs[ns++] = (struct et__fa_seg){fixes[i]->fw, 0};
            segs[ns++] = (struct et__fa_seg){w[i].fw, fixes[i] != NULL};
        }
        rc = analyze(r, segs, ns);
    }
    for (int i = 0; i < nt; i++) {
        if (fixes[i] != NULL) {
            worker_free(fixes[i]);
            et_free(fixes[i]);
        }
        if (rc == 0)
            rc = merge_worker(r, &w[i]);
        worker_free(&w[i]);
    }
    et_free(w);
    r->bytes += size;
    if (rc < 0)
        et_error_set(e, rc, "%s: %s", path, rc == ET_EIO ? strerror(errno) : et_strerror(rc));
    return rc;
}

static int add_file(struct et_iis_report *r, const char *path, struct et_error *e)
{
    size_t n = strlen(path);
    if (n > 3 && et_strcaseeq(path + n - 3, ".gz"))
        return add_stream(r, path, e);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        et_error_set(e, ET_EIO, "%s: %s", path, strerror(errno));
        return ET_EIO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return add_stream(r, path, e); /* a pipe or device: stream it */
    }
    unsigned char magic[2] = {0, 0};
    if (pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
        close(fd);
        return add_stream(r, path, e);
    }
    int rc = add_file_threaded(r, path, fd, (uint64_t)st.st_size, e);
    close(fd);
    return rc;
}

int et_iis_report_add_path(struct et_iis_report *r, const char *path, struct et_error *e)
{
    char **files;
    size_t n;
    int rc = et_logfiles_list(path, &files, &n, e);
    if (rc < 0)
        return rc;
    if (r->fa != NULL)
        et__fa_path(r->fa); /* the reader's site choice starts over per path */
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add_file(r, files[i], e);
    et_logfiles_free(files, n);
    return rc;
}

static int chosen_side(const struct et_iis_report *r)
{
    if (r->o.site == ET_IIS_SITE_AUTO && r->side[0].eas == 0 && r->side[1].eas > 0)
        return 1;
    return 0;
}

void et_iis_report_totals(const struct et_iis_report *r, struct et_iis_report_totals *t)
{
    int s = chosen_side(r);
    memset(t, 0, sizeof(*t));
    t->lines = r->lines;
    t->eas = r->side[s].eas;
    t->frontend = r->frontend;
    t->backend = r->backend;
    t->bad = r->bad;
    t->bytes = r->bytes;
    t->devices = r->side[s].devs.m.n;
    t->site_used = r->o.site != ET_IIS_SITE_AUTO ? (int)r->o.site
                                                 : (s ? ET_IIS_SITE_BACKEND : ET_IIS_SITE_FRONTEND);
}


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
    const char *s = et_arena_printf(o->a, "%llu", (unsigned long long)v);
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
        grid_col(d, http_names[i]);
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
        c[0] = et_arena_printf(o->a, "HTTP %s", http_names[j]);
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
        c[4] = fmt_u(o, hist_pct(hs[j].h, 0.50));
        c[5] = fmt_u(o, hist_pct(hs[j].h, 0.95));
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
        c[0] = http_names[j];
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

static void render_html(FILE *f, struct et_iis_report *r, const struct out *o,
                        const struct agg *g)
{
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
    for (int k = 0; k < o->ng; k++) {
        struct et_table tb = as_table(&o->g[k]);
        et_table_write(&tb, ET_TABLE_HTML, ET_TABLE_TITLE, f);
    }
    fputs("</body></html>\n", f);
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
    struct agg *g = &r->side[chosen_side(r)];
    int rc = 0;

    memset(&o, 0, sizeof(o));
    o.a = et_arena_new(64 * 1024);
    if (o.a == NULL) {
        et_error_set(e, ET_ENOMEM, "report output");
        return ET_ENOMEM;
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
    if (r->fa != NULL && !r->fa_done) {
        if (et__fa_table(r->fa, r->device, &r->fa_cells, &r->fa_rows) != 0)
            o.oom = 1;
        r->fa_done = 1;
    }
    if (r->fa != NULL && r->fa_cells != NULL && o.ng < (int)ET_ARRAY_SIZE(o.g)) {
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
            rc = et_table_write(&tb, ET_TABLE_JSON, 0, f);
        }
        fputs("]}\n", f);
        break;
    }
    case ET_REPORT_HTML: render_html(f, r, &o, g); break;
    }
    if (rc != 0) {
        et_error_set(e, rc, "writing the report: %s", et_strerror(rc));
    } else if (ferror(f)) {
        et_error_set(e, ET_EIO, "writing the report: %s", strerror(errno));
        rc = ET_EIO;
    }
out:
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
        struct row *h = table_get(&r->side[0].hours, r->arena, "", 0, res->hour[i]);
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
