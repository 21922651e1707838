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
_Static_assert(ET_ARRAY_SIZE(et_iis_known_errors) == NERR, "NERR in report_int.h");
const char *const et__http_names[H_COUNT] = {"4xx", "5xx", "409", "451", "500", "503", "507"};
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
struct row *et__table_get(struct table *t, struct et_arena *a, const char *k, size_t kl,
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

static void table_free(struct table *t)
{
    et_map_free(&t->m);
}

/* ---- histograms for p50/p95 (log-linear, < 1.6% relative error) ----------------------- */

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

uint64_t et__hist_pct(const struct hist *h, double p)
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

/* ---- aggregates ---------------------------------------------------------------------- */

static void agg_free(struct agg *g)
{
    table_free(&g->devs);
    table_free(&g->errs);
    table_free(&g->hours);
    table_free(&g->keyed);
    et_free(g->recs.v);
    memset(g, 0, sizeof(*g));
}

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
    const int64_t hits_b = o->interval > 0 ? (t / 1000000 / o->interval) * o->interval : 0;
    struct row *dev_row = NULL; /* the hits row of this line, found early for the findings */
    /* The command of a plain query (a base64 one is known once decoded, below). */
    enum et_eas_cmd qcmd = q.base64 ? ET_EAS_CMD_NONE
                                    : et_eas_cmd_from((const char *)q.cmd.ptr, q.cmd.len);
    if (w->fw != NULL) {
        uint32_t *hint = NULL;
        if (!q.base64 && w->r->device == NULL &&
            (o->kind == ET_IIS_REPORT_HITS || o->kind == ET_IIS_REPORT_TOP)) {
            /* The row keeps the findings' id of the DeviceId spelt as its key: the line's
             * device is then found once, not in the row table and the string pool. */
            dev_row = et__table_get(&(*w->cur)[sidx].devs, w->arena,
                                    (const char *)q.device_id.ptr, q.device_id.len, hits_b);
            if (dev_row != NULL && dev_row->klen == q.device_id.len &&
                memcmp(dev_row->key, q.device_id.ptr, q.device_id.len) == 0)
                hint = &dev_row->fdev;
        }
        et__fw_line(w->fw, &w->layout, f, n, stem, &q, qcmd, t, hint, &w->oom);
    }
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
    enum et_eas_cmd cmd =
        q.base64 ? et_eas_cmd_from((const char *)q.cmd.ptr, q.cmd.len) : qcmd;
    if (cmd == ET_EAS_CMD_NONE && method.len == 7 && memcmp(method.ptr, "OPTIONS", 7) == 0)
        cmd = ET_EAS_CMD_OPTIONS;
    long st = num(colv(w, f, n, ET_IIS_STATUS));
    g->eas++;
    http_bucket_count(g->http, st);
    {
        int64_t hb = t / 3600000000LL;
        struct row *h = w->last_hour[sidx];
        if (h == NULL || w->last_hour_b[sidx] != hb || w->cur != &w->side) {
            h = et__table_get(&g->hours, w->arena, "", 0, hb);
            w->last_hour[sidx] = w->cur == &w->side ? h : NULL;
            w->last_hour_b[sidx] = hb;
        }
        if (h == NULL)
            w->oom = 1;
        else
            h->hits++;
    }

    if (o->kind == ET_IIS_REPORT_HITS || o->kind == ET_IIS_REPORT_TOP) {
        struct et_slice dev = q.device_id;
        struct row *d = dev_row != NULL ? dev_row
                                        : et__table_get(&g->devs, w->arena, (const char *)dev.ptr,
                                                        dev.len, hits_b);
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
            struct row *er = et__table_get(&g->errs, w->arena, (const char *)err.ptr, err.len, 0);
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
            struct row *u = et__table_get(&g->keyed, w->arena, (const char *)q.user.ptr, q.user.len, 0);
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
        struct row *er = et__table_get(&g->errs, w->arena, (const char *)lg.error.ptr, lg.error.len, 0);
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
        struct row *k = et__table_get(&g->keyed, w->arena, key, ET_MIN((size_t)kl, sizeof(key) - 1),
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
        struct row *d = et__table_get(dst, a, s->key, s->klen, s->bucket);
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

int et__chosen_side(const struct et_iis_report *r)
{
    if (r->o.site == ET_IIS_SITE_AUTO && r->side[0].eas == 0 && r->side[1].eas > 0)
        return 1;
    return 0;
}

void et_iis_report_totals(const struct et_iis_report *r, struct et_iis_report_totals *t)
{
    int s = et__chosen_side(r);
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


