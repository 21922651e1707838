/*
 * The analyzer's findings over IIS lines, in the report's single pass (see report_int.h).
 *
 * A record holds what the analyzer's rules read of an IIS exchange, exactly as the reader
 * (logs/iis.c) and the view (analyzer/view.c) would give it: the time, the device (DeviceId,
 * else User, else c-ip), the command, sc-status, and Exchange's Log= items S, Error, Hb, Sk
 * (the reader's typed facts) and As (the meta item the device-blocked rule reads). Strings
 * are interned per worker, so a record is a few pointers and numbers. Queries that are
 * plain, short and free of '%', '+' and '#' (nearly all) are read from the scanned slices;
 * any other goes through the decoder's et_eas_query_parse as the view does, so both
 * paths give the view's answer. Findings are grouped as `eastrace iis` shows them: one row
 * per rule, device and message head with a count and the first time.
 */
#include "report_int.h"

#include <pthread.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eastrace/analyzer.h"
#include "eastrace/arena.h"
#include "eastrace/eas.h"
#include "eastrace/map.h"

#define QUERY_FAST_MAX 4096 /* longer queries take the decoder's path */

/* One record (72 bytes). Strings are ids in the worker's pool (device ids apart, in
 * struct frecs, for the sort by device to read them alone). */
struct frec {
    int64_t t;           /* the analyzer's time: req_begin, else resp_end, else 0 */
    uint64_t fe_c;       /* front-end exchanges of this worker's input up to this one */
    uint64_t be_c;       /* back-end exchanges up to this one (with --site auto: those before
                            the worker's first front-end line) */
    int64_t sk;          /* Log= Sk of a Sync; -1 when none */
    uint32_t cmd;        /* 0 none (or not EAS); below FCMD_POOL the et_eas_cmd whose name
                            was sent as it is; else FCMD_POOL + the pool id of the name */
    uint32_t error;      /* Log= Error, URL-decoded: pool id + 1, 0 when none */
    uint32_t host;       /* cs-host else s-ip, only for non-EAS 5xx (the only rule using it) */
    uint32_t as;         /* Log= As (access state), URL-decoded */
    int64_t status, hb;  /* Log= S and Hb; -1 when absent */
    int16_t http;        /* sc-status 1..999, 0 when none */
    uint8_t is_eas;
    uint8_t backend;     /* a back-end (Proxy) line */
    uint8_t fe_before;   /* a front-end line came before it in this worker's input */
};

#define FCMD_POOL 64u
_Static_assert(ET_EAS_CMD_COUNT < FCMD_POOL, "command codes below the pool ids");

struct frecs {
    struct frec *v;
    uint32_t *dev; /* per record: the pool id of its device */
    size_t n, cap, pre;
};

struct et__fw {
    int nshards;
    struct frecs sh[ET__SHARDS_MAX];
    struct et_strpool in;     /* interned strings (devices, commands, errors, hosts, As) */
    uint8_t *shard_of;        /* by interned id: the shard of that string as a device */
    size_t cap_shard;
    struct et_arena *scratch; /* the decoder's output for slow-path queries, reset per line */
    int fe_seen, fe_any;
    int site;                 /* enum et_iis_site */
    uint64_t fe_c, be_c;      /* the reader's exchanges so far (see struct frec) */
    int cand;                 /* the current line is one of them */
    char stem_buf[256];       /* the last stem classified by the decoder's rule, and its answer */
    size_t stem_len;
    int stem_eas;
};

/* ---- interning ------------------------------------------------------------------------ */

/* The pool id of s + 1 (0 only on ENOMEM, with *oom set). */
static uint32_t intern(struct et__fw *fw, const char *s, size_t n, int *oom)
{
    uint32_t id;
    if (et_strpool_intern(&fw->in, s, n, &id) == NULL || id >= UINT32_MAX - FCMD_POOL) {
        *oom = 1;
        return 0;
    }
    return id + 1;
}

/* struct frec's cmd of a command name as sent, c its et_eas_cmd_from. */
static uint32_t cmd_code(struct et__fw *fw, const char *s, size_t n, enum et_eas_cmd c, int *oom)
{
    const char *cn = et_eas_cmd_name(c);
    if (c != ET_EAS_CMD_OTHER && c != ET_EAS_CMD_NONE && strlen(cn) == n && memcmp(cn, s, n) == 0)
        return (uint32_t)c;
    uint32_t id = intern(fw, s, n, oom);
    return id ? FCMD_POOL + id - 1 : 0;
}

static const char *cmd_str(const struct et_strpool *pool, uint32_t cmd)
{
    if (cmd == 0)
        return NULL;
    return cmd < FCMD_POOL ? et_eas_cmd_name((enum et_eas_cmd)cmd)
                           : et_strpool_str(pool, cmd - FCMD_POOL);
}

static const char *pool_str(const struct et_strpool *pool, uint32_t id)
{
    return id ? et_strpool_str(pool, id - 1) : NULL;
}

/* Interns a device id and gives its shard: the same in every worker (a hash of the bytes),
 * computed once per distinct id. */
static const char *intern_device(struct et__fw *fw, const char *s, size_t n, unsigned *shard,
                                 uint32_t *idp, int *oom)
{
    uint32_t id;
    const char *d = et_strpool_intern(&fw->in, s, n, &id);
    if (d == NULL) {
        *oom = 1;
        return NULL;
    }
    if (id >= fw->cap_shard) {
        size_t nc = fw->cap_shard ? fw->cap_shard * 2 : 1024;
        while (nc <= id)
            nc *= 2;
        uint8_t *ns = et_realloc(fw->shard_of, nc);
        if (ns == NULL) {
            *oom = 1;
            return NULL;
        }
        memset(ns + fw->cap_shard, 0xff, nc - fw->cap_shard);
        fw->shard_of = ns;
        fw->cap_shard = nc;
    }
    if (fw->shard_of[id] == 0xff)
        fw->shard_of[id] = (uint8_t)(et_hash(s, n, 0) % (uint64_t)fw->nshards);
    *shard = fw->shard_of[id];
    *idp = id;
    return d;
}

struct et__fw *et__fw_new(int nshards, enum et_iis_site site)
{
    struct et__fw *fw = et_calloc(1, sizeof(*fw));
    if (fw == NULL)
        return NULL;
    fw->site = (int)site;
    fw->nshards = nshards < 1 ? 1 : (nshards > ET__SHARDS_MAX ? ET__SHARDS_MAX : nshards);
    if (et_strpool_init(&fw->in, 64 * 1024) != 0) {
        et_free(fw);
        return NULL;
    }
    return fw;
}

void et__fw_free(struct et__fw *fw)
{
    if (fw == NULL)
        return;
    for (int i = 0; i < ET__SHARDS_MAX; i++) {
        et_free(fw->sh[i].v);
        et_free(fw->sh[i].dev);
    }
    et_strpool_free(&fw->in);
    et_free(fw->shard_of);
    et_arena_free(fw->scratch);
    et_free(fw);
}

void et__fw_frontend(struct et__fw *fw)
{
    fw->fe_seen = 1;
    fw->fe_any = 1;
}

void et__fw_mark_prefix(struct et__fw *fw)
{
    for (int i = 0; i < fw->nshards; i++)
        fw->sh[i].pre = fw->sh[i].n;
}

/* ---- one line ------------------------------------------------------------------------- */

static int is_dash(struct et_slice s)
{
    return s.len == 0 || (s.len == 1 && s.ptr[0] == '-');
}

static struct et_slice col(const struct et_iis_layout *l, const struct et_slice *f, int n,
                           enum et_iis_field k)
{
    struct et_slice none = {(const uint8_t *)"", 0};
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

/* Does p[0..n) hold a '%', '+' or '#'? Sixteen bytes at a time, the last block read again
 * from its end rather than copied (n >= 16). */
static int has_pct_plus_hash(const uint8_t *p, size_t n)
{
#ifdef __SSE2__
    if (n >= 16) {
        const __m128i pc = _mm_set1_epi8('%'), pl = _mm_set1_epi8('+'), ha = _mm_set1_epi8('#');
        for (size_t i = 0;; i += 16) {
            if (i + 16 > n)
                i = n - 16;
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
            __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, pc), _mm_cmpeq_epi8(x, pl)),
                                     _mm_cmpeq_epi8(x, ha));
            if (_mm_movemask_epi8(m) != 0)
                return 1;
            if (i + 16 == n)
                return 0;
        }
    }
#endif
    for (size_t i = 0; i < n; i++)
        if (p[i] == '%' || p[i] == '+' || p[i] == '#')
            return 1;
    return 0;
}

/* A query the scanned slices answer as the decoder would: short, and nothing to decode
 * before Log= (always last; the view reads nothing of the decoder's Log value). */
static int fast_query(struct et_slice q, const struct et_iis_query *qs)
{
    size_t n = q.len;
    if (n == 0 || n > QUERY_FAST_MAX)
        return 0;
    if (qs->log.len > 0) {
        if (memchr(qs->log.ptr, '&', qs->log.len) != NULL)
            return 0;
        n = (size_t)(qs->log.ptr - q.ptr);
    }
    return !has_pct_plus_hash(q.ptr, n);
}

/* The decoder's answer to "is this path ActiveSync?" for a stem, cached (stems repeat). */
static int stem_is_eas(struct et__fw *fw, struct et_slice st, int *oom)
{
    char path[300];
    struct et_eas_request rq;
    struct et_error e;
    if (st.len < sizeof(fw->stem_buf) && st.len == fw->stem_len &&
        memcmp(fw->stem_buf, st.ptr, st.len) == 0)
        return fw->stem_eas;
    if (st.len >= sizeof(path) - 1)
        return -1; /* take the slow path */
    if (fw->scratch == NULL && (fw->scratch = et_arena_new(4096)) == NULL) {
        *oom = 1;
        return 0;
    }
    et_arena_reset(fw->scratch);
    memcpy(path, st.ptr, st.len);
    path[st.len] = '\0';
    et_error_clear(&e);
    if (et_eas_query_parse(path, fw->scratch, &rq, &e) == ET_ENOMEM)
        *oom = 1;
    memcpy(fw->stem_buf, st.ptr, st.len);
    fw->stem_len = st.len;
    fw->stem_eas = rq.is_eas;
    return rq.is_eas;
}

static int frecs_push(struct frecs *s, const struct frec *r, uint32_t dev)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 1024;
        struct frec *nv = et_realloc(s->v, nc * sizeof(*nv));
        if (nv == NULL)
            return ET_ENOMEM;
        s->v = nv;
        uint32_t *nd = et_realloc(s->dev, nc * sizeof(*nd));
        if (nd == NULL)
            return ET_ENOMEM;
        s->dev = nd;
        s->cap = nc;
    }
    s->dev[s->n] = dev;
    s->v[s->n++] = *r;
    return 0;
}

/* The first Log= item named `name` (case-insensitive, as et_headers_get finds "Log-<name>"),
 * URL-decoded into out. 2003's packed items with a colon are named "<name>:". */
static const char *log_item(const struct et_eas_log *lg, const char *name, int colon, char *out,
                            size_t outlen)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < lg->nitems; i++) {
        const struct et_eas_log_item *it = &lg->items[i];
        size_t il = ET_MIN(it->name.len, 60);
        int has_colon = it->colon && lg->exch2003;
        if (il != nl || has_colon != colon || !et_strncaseeq((const char *)it->name.ptr, name, nl))
            continue;
        et_iis_url_decode((const char *)it->value.ptr, it->value.len, out, outlen);
        return out;
    }
    return NULL;
}

int et__fw_candidate(struct et__fw *fw, const struct et_iis_layout *l, const struct et_slice *f,
                     int n, enum et_iis_stem stem)
{
    /* The reader trims trailing spaces and skips lines with fewer fields than #Fields. */
    while (n > 0 &&
           (f[n - 1].len == 0 ||
            (f[n - 1].ptr[0] == ' ' && strspn((const char *)f[n - 1].ptr, " ") >= f[n - 1].len)))
        n--;
    fw->cand = n >= l->n && stem != ET_IIS_STEM_OTHER;
    if (!fw->cand)
        return 0;
    if (stem == ET_IIS_STEM_BACKEND) {
        if (fw->site != ET_IIS_SITE_AUTO || !fw->fe_seen)
            fw->be_c++;
    } else {
        fw->fe_c++;
    }
    return 1;
}

void et__fw_line(struct et__fw *fw, const struct et_iis_layout *l, const struct et_slice *f,
                 int n, enum et_iis_stem stem, const struct et_iis_query *qs,
                 enum et_eas_cmd qcmd, int64_t t_end, uint32_t *dev_hint, int *oom)
{
    struct frec r;
    struct et_slice v;
    char tmp[4096];
    int fe_before = fw->fe_seen;

    if (!fw->cand)
        return;
    fw->cand = 0;
    memset(&r, 0, sizeof(r));
    r.fe_c = fw->fe_c;
    r.be_c = fw->be_c;
    r.status = r.hb = r.sk = -1;
    r.backend = stem == ET_IIS_STEM_BACKEND;
    r.fe_before = (uint8_t)fe_before;
    if (t_end != 0) {
        long tt = slice_num(col(l, f, n, ET_IIS_TIME_TAKEN));
        r.t = tt >= 0 ? t_end - (int64_t)tt * 1000 : t_end;
        if (r.t == 0)
            r.t = t_end;
    }
    v = col(l, f, n, ET_IIS_STATUS);
    {
        long stc = slice_num(v);
        if (stc > 0 && stc < 1000)
            r.http = (int)stc;
    }

    /* Command, device and EAS-ness, as et_view_build reads them from the request target. */
    struct et_slice st = col(l, f, n, ET_IIS_STEM), q = col(l, f, n, ET_IIS_QUERY);
    const char *device = NULL, *user = NULL;
    unsigned shard = 0;
    uint32_t dev = 0;
    int eas = -1;
    if (!qs->base64 && qs->cmd.len > 0 && qs->device_id.len > 0 && fast_query(q, qs))
        eas = stem_is_eas(fw, st, oom);
    if (eas >= 0) {
        r.is_eas = (uint8_t)eas;
        if (eas) {
            /* The usual names are static strings; any other spelling is kept as sent. */
            r.cmd = cmd_code(fw, (const char *)qs->cmd.ptr, qs->cmd.len, qcmd, oom);
            if (dev_hint != NULL && *dev_hint != 0) {
                dev = *dev_hint - 1;
                shard = fw->shard_of[dev];
                device = et_strpool_str(&fw->in, dev);
            } else {
                device = intern_device(fw, (const char *)qs->device_id.ptr, qs->device_id.len,
                                       &shard, &dev, oom);
                if (device != NULL && dev_hint != NULL)
                    *dev_hint = dev + 1;
            }
        }
    } else {
        struct et_eas_request rq;
        struct et_error e;
        size_t ql = q.len;
        if (fw->scratch == NULL && (fw->scratch = et_arena_new(4096)) == NULL) {
            *oom = 1;
            return;
        }
        et_arena_reset(fw->scratch);
        if (ql && memchr(q.ptr, '&', ql) != NULL && qs->base64)
            ql = qs->raw.len; /* the reader's target holds the base64 item alone */
        char *target = ql ? et_arena_printf(fw->scratch, "%.*s?%.*s", (int)st.len,
                                            (const char *)st.ptr, (int)ql, (const char *)q.ptr)
                          : et_arena_strndup(fw->scratch, (const char *)st.ptr, st.len);
        if (target == NULL) {
            *oom = 1;
            return;
        }
        et_error_clear(&e);
        if (et_eas_query_parse(target, fw->scratch, &rq, &e) == ET_ENOMEM) {
            *oom = 1;
            return;
        }
        r.is_eas = (uint8_t)rq.is_eas;
        if (rq.is_eas) {
            if (rq.cmd != NULL) {
                size_t cl = strlen(rq.cmd);
                r.cmd = cmd_code(fw, rq.cmd, cl, et_eas_cmd_from(rq.cmd, cl), oom);
            }
            user = rq.user;
            if (rq.device_id != NULL && rq.device_id[0] != '\0')
                device = intern_device(fw, rq.device_id, strlen(rq.device_id), &shard, &dev,
                                       oom);
        }
    }
    if (device == NULL && user != NULL)
        device = intern_device(fw, user, strlen(user), &shard, &dev, oom);
    if (device == NULL && (v = col(l, f, n, ET_IIS_C_IP)).len)
        device = intern_device(fw, (const char *)v.ptr, v.len, &shard, &dev, oom);
    if (device == NULL)
        device = intern_device(fw, "-", 1, &shard, &dev, oom);
    if (device == NULL)
        return;
    if (!r.is_eas && r.http >= 500) {
        v = col(l, f, n, ET_IIS_HOST);
        if (v.len == 0)
            v = col(l, f, n, ET_IIS_S_IP);
        if (v.len)
            r.host = intern(fw, (const char *)v.ptr, v.len, oom);
    }

    /* Exchange's Log= items as the reader makes them typed facts (logs/iis.c set_facts: none
     * for the packed 2003 string) and the view reads them, and the access state the
     * analyzer reads from the reader's "Log-As" meta item. */
    if (qs->log.len) {
        struct et_eas_log lg;
        /* Only the items read here: S, Sk (status, SyncKey), Hb, Error, As (any case). */
        et_eas_log_parse_only((const char *)qs->log.ptr, qs->log.len, "SHEAa", &lg);
        if (!lg.exch2003) {
            r.status = lg.status >= 0 ? lg.status : -1;
            r.hb = lg.heartbeat >= 0 ? lg.heartbeat : -1;
            if (lg.error.len > 0) {
                size_t k = et_iis_url_decode((const char *)lg.error.ptr, lg.error.len, tmp, 1024);
                if (k > 0)
                    r.error = intern(fw, tmp, k, oom);
            }
            if (lg.sync_key >= 0 && r.cmd == ET_EAS_CMD_SYNC)
                r.sk = lg.sync_key;
        }
        const char *as = log_item(&lg, "As", 0, tmp, sizeof(tmp));
        if (as != NULL)
            r.as = intern(fw, as, strlen(as), oom);
    }
    if (*oom)
        return;
    if (frecs_push(&fw->sh[shard], &r, dev) != 0)
        *oom = 1;
}

/* ---- grouping ------------------------------------------------------------------------- */

struct fkey {
    char *rule, *device, *message; /* in the group's arena */
    size_t head; /* length of the message's head (up to ':'): part of the key */
    const char *next;
    int sev;
    unsigned long long count;
    int64_t first;
};

struct fagg {
    struct fkey **v;  /* first-seen order */
    size_t n, cap;
    struct et_map map; /* (rule, device, message head) -> fkey */
    struct et_arena *a; /* the fkeys and their strings */
};

/* The head of a message names what happened ("HTTP 449 ...", "Sync Status 12 = ..."); the
 * rest varies per occurrence. Findings with the same rule, device and head are one row. */
static size_t msg_head(const char *m)
{
    const char *c = strchr(m, ':');
    size_t n = c ? (size_t)(c - m) : strlen(m);
    return n > 80 ? 80 : n;
}

struct fkey_want {
    const char *rule, *device, *message;
    size_t head;
};

static int fkey_eq(const void *val, const void *key)
{
    const struct fkey *k = val;
    const struct fkey_want *w = key;
    return k->head == w->head && strcmp(k->rule, w->rule) == 0 &&
           strcmp(k->device, w->device) == 0 && memcmp(k->message, w->message, w->head) == 0;
}

static int fagg_add(struct fagg *g, const struct et_finding *f)
{
    struct fkey_want w = {f->rule, f->device ? f->device : "-", f->message, 0};
    int found;
    w.head = msg_head(f->message);
    uint64_t h = et_hash(w.rule, strlen(w.rule), 0);
    h = et_hash(w.device, strlen(w.device), h);
    h = et_hash(w.message, w.head, h);
    if (g->a == NULL && (g->a = et_arena_new(64 * 1024)) == NULL)
        return ET_ENOMEM;
    struct et_map_slot *sl = et_map_upsert(&g->map, h, fkey_eq, &w, &found);
    if (sl == NULL)
        return ET_ENOMEM;
    if (found) {
        struct fkey *k = sl->val;
        k->count++;
        if ((int)f->severity > k->sev)
            k->sev = (int)f->severity;
        return 0;
    }
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 64;
        struct fkey **nv = et_realloc(g->v, nc * sizeof(*nv));
        if (nv == NULL) {
            et_map_upsert_cancel(&g->map, sl);
            return ET_ENOMEM;
        }
        g->v = nv;
        g->cap = nc;
    }
    struct fkey *k = et_arena_alloc(g->a, sizeof(*k));
    if (k == NULL || (k->rule = et_arena_strdup(g->a, f->rule)) == NULL ||
        (k->device = et_arena_strdup(g->a, w.device)) == NULL ||
        (k->message = et_arena_strdup(g->a, f->message)) == NULL) {
        et_map_upsert_cancel(&g->map, sl);
        return ET_ENOMEM;
    }
    k->next = f->next_step; /* static text */
    k->sev = (int)f->severity;
    k->count = 1;
    k->first = f->time;
    k->head = w.head;
    sl->val = k;
    g->v[g->n++] = k;
    return 0;
}

static void fagg_free(struct fagg *g)
{
    et_free(g->v);
    et_map_free(&g->map);
    et_arena_free(g->a);
    memset(g, 0, sizeof(*g));
}

static int cmp_fkey(const void *a, const void *b)
{
    const struct fkey *x = a, *y = b;
    int c;
    if (x->sev != y->sev)
        return y->sev - x->sev;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    if ((c = strcmp(x->rule, y->rule)) != 0)
        return c;
    if ((c = strcmp(x->device, y->device)) != 0)
        return c;
    return strcmp(x->message, y->message);
}

/* ---- the shards ----------------------------------------------------------------------- */

struct shard {
    struct et_analyzer *an;
    struct fagg g;
    struct et_arena *a; /* findings of one record, reset after grouping */
    char sk[24];        /* the record's SyncKey as text */
    int fe_path;        /* a front-end line was seen earlier in this path */
    /* one run */
    const struct et__fa_seg *segs;
    const int *fe_seg;  /* per segment: a front-end line came before it in this path */
    const uint64_t *id_seg; /* per segment: the reader's exchanges of the path before it */
    int nsegs, idx;
    enum et_iis_site site;
    int rc;
};

struct et__fa {
    int nshards;
    struct shard sh[ET__SHARDS_MAX];
    int fe_path;
    uint64_t id_path; /* the reader's exchanges of this path so far (it numbers them from 1) */
    const char **cells;
    char (*nums)[2][32];
};

const char *const et__fa_cols[7] = {"Severity", "Rule", "Device", "Count",
                                    "First", "Message", "Next step"};

struct et__fa *et__fa_new(int nshards)
{
    struct et__fa *fa = et_calloc(1, sizeof(*fa));
    if (fa == NULL)
        return NULL;
    fa->nshards = nshards < 1 ? 1 : (nshards > ET__SHARDS_MAX ? ET__SHARDS_MAX : nshards);
    struct et_analyzer_opts ao;
    et_analyzer_opts_default(&ao);
    ao.no_rates = 1; /* the report shows its own device table, not the analyzer's rates */
    for (int i = 0; i < fa->nshards; i++) {
        fa->sh[i].an = et_analyzer_new(&ao);
        fa->sh[i].a = et_arena_new(16 * 1024);
        if (fa->sh[i].an == NULL || fa->sh[i].a == NULL) {
            et__fa_free(fa);
            return NULL;
        }
    }
    return fa;
}

void et__fa_free(struct et__fa *fa)
{
    if (fa == NULL)
        return;
    for (int i = 0; i < fa->nshards; i++) {
        et_analyzer_free(fa->sh[i].an);
        et_arena_free(fa->sh[i].a);
        fagg_free(&fa->sh[i].g);
    }
    et_free(fa->cells);
    et_free(fa->nums);
    et_free(fa);
}

void et__fa_path(struct et__fa *fa)
{
    fa->fe_path = 0;
    fa->id_path = 0;
}

/* The view et_view_build gives the reader's exchange of this record. Only the fields the
 * rules read change per record; the rest stay as et_view_build leaves them for IIS lines. */
static void feed_one(struct shard *s, const struct et_strpool *pool, const struct frec *r,
                     const char *device, uint64_t id, struct et_exchange *x, struct et_view *v)
{
    struct et_finding *f = NULL;
    const char *as = pool_str(pool, r->as), *error = pool_str(pool, r->error);
    x->id = id;
    x->t.req_begin = r->t;
    x->t.resp_end = r->t;
    x->has_response = r->http > 0;
    x->resp.status = r->http;
    x->host = pool_str(pool, r->host);
    x->meta.n = as != NULL;
    x->meta.v[0].value = as != NULL ? as : "";
    v->is_eas = r->is_eas;
    v->cmd = r->is_eas ? cmd_str(pool, r->cmd) : NULL;
    v->device = device;
    v->http_status = r->http;
    v->top_status = r->status;
    v->nstatus = r->status >= 0;
    v->statuses[0] = r->status;
    v->status_parent[0] = NULL;
    v->server_error = error;
    v->throttled = 0;
    v->throttle = NULL;
    if (error != NULL && (strstr(error, "TooManyJobsQueued") || strstr(error, "OverBudget") ||
                          strstr(error, "Throttl") || strstr(error, "Budget"))) {
        v->throttled = 1;
        v->throttle = error;
    }
    v->heartbeat_req = r->hb;
    v->ncolls = 0;
    if (r->sk >= 0) {
        et_fmt_i64(s->sk, r->sk);
        v->colls[0].collection_id = NULL;
        v->colls[0].sync_key = s->sk;
        v->colls[0].new_sync_key = NULL;
        v->colls[0].status = v->top_status;
        v->ncolls = 1;
    }
    if (et_analyzer_feed(s->an, x, v, s->a, &f) != 0) {
        s->rc = ET_ENOMEM;
        return;
    }
    if (f == NULL)
        return;
    for (; f != NULL && s->rc == 0; f = f->next)
        s->rc = fagg_add(&s->g, f);
    et_arena_reset(s->a);
}

static void *shard_main(void *p)
{
    struct shard *s = p;
    struct et_exchange x;
    struct et_view v;
    memset(&x, 0, sizeof(x));
    memset(&v, 0, sizeof(v));
    x.source = ET_SRC_IIS;
    x.has_request = 1;
    x.req.body.absent = 1;
    x.resp.body.absent = 1;
    v.heartbeat_resp = v.max_folders = v.ping_folders = -1;
    /* The one meta item a rule reads of an IIS exchange: the access state (rule device-blocked). */
    struct et_header as_meta = {"Log-As", ""};
    x.meta.v = &as_meta;
    x.meta.cap = 1;
    for (int k = 0; k < s->nsegs && s->rc == 0; k++) {
        const struct et__fw *fw = s->segs[k].fw;
        const struct frecs *rs = &fw->sh[s->idx];
        size_t i0 = s->segs[k].skip_prefix ? rs->pre : 0, cnt = rs->n - i0;
        /* The analyzer's state is per device: each device's records in file order, one
         * device after the other (a stable counting sort by device), give the same findings
         * as the file's order while the device's state stays in the cache. */
        uint32_t nids = (uint32_t)fw->in.n;
        uint32_t *first = et_calloc((size_t)nids + 1, sizeof(*first));
        uint32_t *order = et_malloc((cnt ? cnt : 1) * sizeof(*order));
        if (first == NULL || order == NULL) {
            et_free(first);
            et_free(order);
            s->rc = ET_ENOMEM;
            break;
        }
        for (size_t i = i0; i < rs->n; i++)
            first[rs->dev[i] + 1]++;
        for (uint32_t d = 0; d < nids; d++)
            first[d + 1] += first[d];
        for (size_t i = i0; i < rs->n; i++)
            order[first[rs->dev[i]]++] = (uint32_t)(i - i0);
        et_free(first);
        for (size_t j = 0; j < cnt && s->rc == 0; j++) {
            if (j + 16 < cnt)
                __builtin_prefetch(&rs->v[i0 + order[j + 16]]);
            const struct frec *r = &rs->v[i0 + order[j]];
            const char *device = et_strpool_str(&fw->in, rs->dev[i0 + order[j]]);
            int auto_site = s->site == ET_IIS_SITE_AUTO;
            if (r->backend && auto_site && (s->fe_seg[k] || r->fe_before))
                continue;
            /* The number the reader gives this exchange (messages quote it). */
            feed_one(s, &fw->in, r, device,
                     s->id_seg[k] + r->fe_c + (auto_site && s->fe_seg[k] ? 0 : r->be_c), &x, &v);
        }
        et_free(order);
    }
    return NULL;
}

int et__fa_run(struct et__fa *fa, const struct et__fa_seg *segs, int nsegs, enum et_iis_site site)
{
    pthread_t th[ET__SHARDS_MAX];
    int started[ET__SHARDS_MAX] = {0};
    int fe_seg[64];
    uint64_t id_seg[64];
    int rc = 0;

    if (nsegs > (int)ET_ARRAY_SIZE(fe_seg))
        return ET_ETOOBIG;
    for (int k = 0; k < nsegs; k++) {
        const struct et__fw *fw = segs[k].fw;
        fe_seg[k] = fa->fe_path;
        id_seg[k] = fa->id_path;
        fa->id_path += fw->fe_c + (site == ET_IIS_SITE_AUTO && fe_seg[k] ? 0 : fw->be_c);
        if (fw->fe_any)
            fa->fe_path = 1;
    }
    for (int i = 0; i < fa->nshards; i++) {
        struct shard *s = &fa->sh[i];
        s->segs = segs;
        s->fe_seg = fe_seg;
        s->id_seg = id_seg;
        s->nsegs = nsegs;
        s->idx = i;
        s->site = site;
        if (i > 0 && pthread_create(&th[i], NULL, shard_main, s) == 0)
            started[i] = 1;
    }
    for (int i = 0; i < fa->nshards; i++)
        if (!started[i] && fa->sh[i].rc == 0)
            shard_main(&fa->sh[i]); /* shard 0, or a thread that did not start */
    for (int i = 0; i < fa->nshards; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        if (fa->sh[i].rc != 0 && rc == 0)
            rc = fa->sh[i].rc;
    }
    return rc;
}

int et__fa_table(struct et__fa *fa, const char *device, const char *const **out, size_t *nrows)
{
    int rc = 0;

    for (int i = 0; i < fa->nshards && rc == 0; i++) {
        struct et_finding *sf = NULL;
        struct shard *s = &fa->sh[i];
        rc = et_analyzer_finish(s->an, &sf);
        for (; rc == 0 && sf != NULL; sf = sf->next)
            rc = fagg_add(&s->g, sf);
    }
    /* Shards hold disjoint devices: their rows are concatenated. */
    size_t n = 0;
    for (int i = 0; i < fa->nshards; i++)
        n += fa->sh[i].g.n;
    struct fkey *v = et_calloc(n ? n : 1, sizeof(*v));
    et_free(fa->cells);
    et_free(fa->nums);
    fa->cells = et_calloc(n ? n * 7 : 1, sizeof(*fa->cells));
    fa->nums = et_calloc(n ? n : 1, sizeof(*fa->nums));
    if (rc != 0 || v == NULL || fa->cells == NULL || fa->nums == NULL) {
        et_free(v);
        return ET_ENOMEM;
    }
    size_t k = 0;
    for (int i = 0; i < fa->nshards; i++)
        for (size_t j = 0; j < fa->sh[i].g.n; j++) {
            const struct fkey *x = fa->sh[i].g.v[j];
            if (device != NULL && !et_strcaseeq(device, x->device))
                continue;
            v[k++] = *x;
        }
    qsort(v, k, sizeof(*v), cmp_fkey);
    for (size_t r = 0; r < k; r++) {
        et_fmt_u64(fa->nums[r][0], v[r].count);
        et_time_iso8601(v[r].first, fa->nums[r][1], sizeof(fa->nums[r][1]));
        fa->cells[r * 7 + 0] = et_severity_name((enum et_severity)v[r].sev);
        fa->cells[r * 7 + 1] = v[r].rule;
        fa->cells[r * 7 + 2] = v[r].device;
        fa->cells[r * 7 + 3] = fa->nums[r][0];
        fa->cells[r * 7 + 4] = fa->nums[r][1];
        fa->cells[r * 7 + 5] = v[r].message;
        fa->cells[r * 7 + 6] = v[r].next ? v[r].next : "";
    }
    et_free(v);
    *out = fa->cells;
    *nrows = k;
    return 0;
}
