/*
 * The analyzer's findings over IIS lines, in the report's single pass (see report_int.h).
 *
 * A record holds what the analyzer's rules read of an IIS exchange, exactly as the reader
 * (logs/iis.c) and the view (analyzer/view.c) would give it: the time, the device (DeviceId,
 * else User, else c-ip), the command, sc-status, and Exchange's Log= items S, Error, Hb and
 * Sk. Strings are interned per worker, so a record is a few pointers and numbers. Queries
 * that are plain, short and free of '%', '+' and '#' (nearly all) are read from the scanned
 * slices; any other goes through the decoder's et_eas_query_parse as the view does, so both
 * paths give the view's answer. Findings are grouped as `eastrace iis` shows them: one row
 * per rule, device and message head with a count and the first time.
 */
#include "report_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eastrace/analyzer.h"
#include "eastrace/arena.h"
#include "eastrace/eas.h"

#define QUERY_FAST_MAX 4096 /* longer queries take the decoder's path */

struct frec {
    int64_t t;           /* the analyzer's time: req_begin, else resp_end, else 0 */
    const char *device;  /* never NULL */
    const char *cmd;     /* NULL when the request named none or is not EAS */
    const char *error;   /* Log= Error, URL-decoded; NULL when none */
    const char *sk;      /* Log= Sk of a Sync, URL-decoded; NULL when none */
    const char *host;    /* cs-host else s-ip, only for non-EAS 5xx (the only rule using it) */
    long status, hb;     /* Log= S and Hb; -1 when absent */
    int http;            /* sc-status 1..999, 0 when none */
    uint8_t is_eas;
    uint8_t backend;     /* a back-end (Proxy) line */
    uint8_t fe_before;   /* a front-end line came before it in this worker's input */
};

struct frecs {
    struct frec *v;
    size_t n, cap, pre;
};

struct intern {
    const char **slot;
    uint64_t *hash;
    size_t cap, n;
};

struct et__fw {
    int nshards;
    struct frecs sh[ET__SHARDS_MAX];
    struct intern in;
    struct et_arena *arena;   /* interned strings and sync keys */
    struct et_arena *scratch; /* the decoder's output for slow-path queries, reset per line */
    int fe_seen, fe_any;
    char stem_buf[256];       /* the last stem classified by the decoder's rule, and its answer */
    size_t stem_len;
    int stem_eas;
};

/* ---- interning ------------------------------------------------------------------------ */

static uint64_t hash_mem(const char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x100000001B3ULL;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

static const char *intern(struct et__fw *fw, const char *s, size_t n, int *oom)
{
    struct intern *t = &fw->in;
    uint64_t h = hash_mem(s, n);
    if ((t->n + 1) * 2 > t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 1024;
        const char **ns = et_calloc(nc, sizeof(*ns));
        uint64_t *nh = et_calloc(nc, sizeof(*nh));
        if (ns == NULL || nh == NULL) {
            et_free(ns);
            et_free(nh);
            *oom = 1;
            return NULL;
        }
        for (size_t i = 0; i < t->cap; i++) {
            if (t->slot[i] == NULL)
                continue;
            size_t j = t->hash[i] & (nc - 1);
            while (ns[j] != NULL)
                j = (j + 1) & (nc - 1);
            ns[j] = t->slot[i];
            nh[j] = t->hash[i];
        }
        et_free(t->slot);
        et_free(t->hash);
        t->slot = ns;
        t->hash = nh;
        t->cap = nc;
    }
    size_t j = h & (t->cap - 1);
    for (; t->slot[j] != NULL; j = (j + 1) & (t->cap - 1))
        if (t->hash[j] == h && strncmp(t->slot[j], s, n) == 0 && t->slot[j][n] == '\0')
            return t->slot[j];
    const char *d = et_arena_strndup(fw->arena, s, n);
    if (d == NULL) {
        *oom = 1;
        return NULL;
    }
    t->slot[j] = d;
    t->hash[j] = h;
    t->n++;
    return d;
}

struct et__fw *et__fw_new(int nshards)
{
    struct et__fw *fw = et_calloc(1, sizeof(*fw));
    if (fw == NULL)
        return NULL;
    fw->nshards = nshards < 1 ? 1 : (nshards > ET__SHARDS_MAX ? ET__SHARDS_MAX : nshards);
    fw->arena = et_arena_new(64 * 1024);
    if (fw->arena == NULL) {
        et_free(fw);
        return NULL;
    }
    return fw;
}

void et__fw_free(struct et__fw *fw)
{
    if (fw == NULL)
        return;
    for (int i = 0; i < ET__SHARDS_MAX; i++)
        et_free(fw->sh[i].v);
    et_free(fw->in.slot);
    et_free(fw->in.hash);
    et_arena_free(fw->arena);
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

/* analyzer/view.c's reading of a number: strtol, the default when nothing is read. */
static long view_long(const char *s, long dflt)
{
    char *end;
    long v;
    if (s == NULL || *s == '\0')
        return dflt;
    v = strtol(s, &end, 10);
    return end == s ? dflt : v;
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
    return memchr(q.ptr, '%', n) == NULL && memchr(q.ptr, '+', n) == NULL &&
           memchr(q.ptr, '#', n) == NULL;
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

static int frecs_push(struct frecs *s, const struct frec *r)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 1024;
        struct frec *nv = et_realloc(s->v, nc * sizeof(*nv));
        if (nv == NULL)
            return ET_ENOMEM;
        s->v = nv;
        s->cap = nc;
    }
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

/* The four items the view reads (S, Error, Hb, Sk): their first occurrences among the items
 * et_eas_log_parse would keep, found in one pass without filling a struct et_eas_log. */
struct log4 {
    struct et_slice s, error, hb, sk;
    unsigned have; /* bits: 1 s, 2 error, 4 hb, 8 sk */
};

static int is_alpha(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int upper(uint8_t c)
{
    return c >= 'a' && c <= 'z' ? c - 32 : c;
}

/* Returns 0 when the string may be Exchange 2003's packed form (et_eas_log_parse then). */
static int scan_log4(const uint8_t *p, size_t n, struct log4 *o)
{
    const uint8_t *end = p + n;
    size_t items = 0;
    memset(o, 0, sizeof(*o));
    if (n >= 4 && p[0] == 'V' && memchr(p, '_', n) == NULL)
        return 0;
    while (p < end && items < ET_EAS_LOG_MAX_ITEMS && o->have != 15) {
        const uint8_t *us = memchr(p, '_', (size_t)(end - p));
        const uint8_t *ie = us ? us : end;
        if (ie > p) {
            const uint8_t *colon = memchr(p, ':', (size_t)(ie - p));
            const uint8_t *ne, *vs;
            if (colon != NULL) {
                ne = colon;
                vs = colon + 1;
            } else {
                ne = p;
                while (ne < ie && is_alpha(*ne))
                    ne++;
                vs = ne;
            }
            struct et_slice v = {vs, (size_t)(ie - vs)};
            size_t nl = (size_t)(ne - p);
            items++;
            if (nl == 1 && upper(p[0]) == 'S' && !(o->have & 1)) {
                o->s = v;
                o->have |= 1;
            } else if (nl == 5 && !(o->have & 2) && et_strncaseeq((const char *)p, "Error", 5)) {
                o->error = v;
                o->have |= 2;
            } else if (nl == 2 && upper(p[0]) == 'H' && upper(p[1]) == 'B' && !(o->have & 4)) {
                o->hb = v;
                o->have |= 4;
            } else if (nl == 2 && upper(p[0]) == 'S' && upper(p[1]) == 'K' && !(o->have & 8)) {
                o->sk = v;
                o->have |= 8;
            }
        }
        if (us == NULL)
            break;
        p = us + 1;
    }
    return 1;
}

static const char *decoded(struct et_slice v, char *out, size_t outlen)
{
    et_iis_url_decode((const char *)v.ptr, v.len, out, outlen);
    return out;
}

void et__fw_line(struct et__fw *fw, const struct et_iis_layout *l, const struct et_slice *f,
                 int n, enum et_iis_stem stem, const struct et_iis_query *qs, int64_t t_end,
                 int *oom)
{
    struct frec r;
    struct et_slice v;
    char tmp[4096];
    int fe_before = fw->fe_seen;

    /* The reader trims trailing spaces and skips lines with fewer fields than #Fields. */
    while (n > 0 && (f[n - 1].len == 0 || (f[n - 1].ptr[0] == ' ' &&
                                           strspn((const char *)f[n - 1].ptr, " ") >= f[n - 1].len)))
        n--;
    if (n < l->n || stem == ET_IIS_STEM_OTHER)
        return;
    memset(&r, 0, sizeof(r));
    r.status = r.hb = -1;
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
    int eas = -1;
    if (!qs->base64 && qs->cmd.len > 0 && qs->device_id.len > 0 && fast_query(q, qs))
        eas = stem_is_eas(fw, st, oom);
    if (eas >= 0) {
        r.is_eas = (uint8_t)eas;
        if (eas) {
            /* The usual names are static strings; any other spelling is kept as sent. */
            enum et_eas_cmd c = et_eas_cmd_from((const char *)qs->cmd.ptr, qs->cmd.len);
            const char *cn = et_eas_cmd_name(c);
            if (c != ET_EAS_CMD_OTHER && c != ET_EAS_CMD_NONE && strlen(cn) == qs->cmd.len &&
                memcmp(cn, qs->cmd.ptr, qs->cmd.len) == 0)
                r.cmd = cn;
            else
                r.cmd = intern(fw, (const char *)qs->cmd.ptr, qs->cmd.len, oom);
            device = intern(fw, (const char *)qs->device_id.ptr, qs->device_id.len, oom);
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
            if (rq.cmd != NULL)
                r.cmd = intern(fw, rq.cmd, strlen(rq.cmd), oom);
            user = rq.user;
            if (rq.device_id != NULL && rq.device_id[0] != '\0')
                device = intern(fw, rq.device_id, strlen(rq.device_id), oom);
        }
    }
    if (device == NULL && user != NULL)
        device = intern(fw, user, strlen(user), oom);
    if (device == NULL && (v = col(l, f, n, ET_IIS_C_IP)).len)
        device = intern(fw, (const char *)v.ptr, v.len, oom);
    if (device == NULL)
        device = "-";
    r.device = device;
    if (!r.is_eas && r.http >= 500) {
        v = col(l, f, n, ET_IIS_HOST);
        if (v.len == 0)
            v = col(l, f, n, ET_IIS_S_IP);
        if (v.len)
            r.host = intern(fw, (const char *)v.ptr, v.len, oom);
    }

    /* Exchange's Log= items, as the view reads the reader's "Log-<name>" meta. */
    if (qs->log.len) {
        struct log4 l4;
        const char *ls = NULL, *le = NULL, *lh = NULL, *lk = NULL;
        char t1[64], t2[64], tk[4096];
        if (scan_log4(qs->log.ptr, qs->log.len, &l4)) {
            if (l4.have & 1)
                ls = decoded(l4.s, t1, sizeof(t1));
            if (l4.have & 2)
                le = decoded(l4.error, tmp, sizeof(tmp));
            if (l4.have & 4)
                lh = decoded(l4.hb, t2, sizeof(t2));
            if ((l4.have & 8) && r.cmd != NULL && strcmp(r.cmd, "Sync") == 0)
                lk = decoded(l4.sk, tk, sizeof(tk));
        } else {
            struct et_eas_log lg;
            et_eas_log_parse((const char *)qs->log.ptr, qs->log.len, &lg);
            ls = log_item(&lg, "S", 0, t1, sizeof(t1));
            if ((le = log_item(&lg, "Error", 0, tmp, sizeof(tmp))) == NULL)
                le = log_item(&lg, "Error", 1, tmp, sizeof(tmp));
            lh = log_item(&lg, "Hb", 0, t2, sizeof(t2));
            if (r.cmd != NULL && strcmp(r.cmd, "Sync") == 0)
                lk = log_item(&lg, "Sk", 0, tk, sizeof(tk));
        }
        if (ls != NULL) {
            long x = view_long(ls, -1);
            if (x >= 0)
                r.status = x;
        }
        if (le != NULL && *le != '\0')
            r.error = intern(fw, le, strlen(le), oom);
        if (lh != NULL)
            r.hb = view_long(lh, -1);
        if (lk != NULL && (r.sk = et_arena_strdup(fw->arena, lk)) == NULL)
            *oom = 1;
    }
    if (*oom)
        return;
    uint64_t h = hash_mem(device, strlen(device));
    if (frecs_push(&fw->sh[h % (uint64_t)fw->nshards], &r) != 0)
        *oom = 1;
}

/* ---- grouping ------------------------------------------------------------------------- */

struct fkey {
    char *rule, *device, *message;
    size_t head; /* length of the message's head (up to ':'): part of the key */
    const char *next;
    int sev;
    unsigned long long count;
    int64_t first;
};

struct fagg {
    struct fkey *v;
    size_t n, cap;
    size_t *slots; /* open addressing over v, index + 1; 0 empty */
    size_t nslots;
};

static size_t fhash(const char *a, const char *b, const char *m, size_t n)
{
    size_t h = 1469598103934665603ULL;
    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (; *b; b++)
        h = (h ^ (unsigned char)*b) * 1099511628211ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)m[i]) * 1099511628211ULL;
    return h;
}

/* The head of a message names what happened ("HTTP 449 ...", "Sync Status 12 = ..."); the
 * rest varies per occurrence. Findings with the same rule, device and head are one row. */
static size_t msg_head(const char *m)
{
    const char *c = strchr(m, ':');
    size_t n = c ? (size_t)(c - m) : strlen(m);
    return n > 80 ? 80 : n;
}

static int fagg_add(struct fagg *g, const struct et_finding *f)
{
    const char *dev = f->device ? f->device : "-";
    size_t h, i, head = msg_head(f->message);
    if (g->n * 2 >= g->nslots) {
        size_t ns = g->nslots ? g->nslots * 2 : 256;
        size_t *nsl = et_calloc(ns, sizeof(*nsl));
        if (nsl == NULL)
            return ET_ENOMEM;
        for (size_t k = 0; k < g->n; k++) {
            size_t j = fhash(g->v[k].rule, g->v[k].device, g->v[k].message, g->v[k].head) &
                       (ns - 1);
            while (nsl[j])
                j = (j + 1) & (ns - 1);
            nsl[j] = k + 1;
        }
        et_free(g->slots);
        g->slots = nsl;
        g->nslots = ns;
    }
    h = fhash(f->rule, dev, f->message, head);
    for (i = h & (g->nslots - 1); g->slots[i]; i = (i + 1) & (g->nslots - 1)) {
        struct fkey *k = &g->v[g->slots[i] - 1];
        if (strcmp(k->rule, f->rule) == 0 && strcmp(k->device, dev) == 0 && k->head == head &&
            memcmp(k->message, f->message, head) == 0) {
            k->count++;
            if ((int)f->severity > k->sev)
                k->sev = (int)f->severity;
            return 0;
        }
    }
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 64;
        struct fkey *nv = et_realloc(g->v, nc * sizeof(*nv));
        if (nv == NULL)
            return ET_ENOMEM;
        g->v = nv;
        g->cap = nc;
    }
    struct fkey *k = &g->v[g->n];
    k->rule = et_strdup(f->rule);
    k->device = et_strdup(dev);
    k->message = et_strdup(f->message);
    k->next = f->next_step; /* static text */
    k->sev = (int)f->severity;
    k->count = 1;
    k->first = f->time;
    k->head = head;
    g->n++;
    if (k->rule == NULL || k->device == NULL || k->message == NULL)
        return ET_ENOMEM;
    g->slots[i] = g->n;
    return 0;
}

static void fagg_free(struct fagg *g)
{
    for (size_t k = 0; k < g->n; k++) {
        et_free(g->v[k].rule);
        et_free(g->v[k].device);
        et_free(g->v[k].message);
    }
    et_free(g->v);
    et_free(g->slots);
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
    int fe_path;        /* a front-end line was seen earlier in this path */
    /* one run */
    const struct et__fa_seg *segs;
    const int *fe_seg;  /* per segment: a front-end line came before it in this path */
    int nsegs, idx;
    enum et_iis_site site;
    int rc;
};

struct et__fa {
    int nshards;
    struct shard sh[ET__SHARDS_MAX];
    int fe_path;
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
    for (int i = 0; i < fa->nshards; i++) {
        fa->sh[i].an = et_analyzer_new(NULL);
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
}

/* The view et_view_build gives the reader's exchange of this record. Only the fields the
 * rules read change per record; the rest stay as et_view_build leaves them for IIS lines. */
static void feed_one(struct shard *s, const struct frec *r, struct et_exchange *x,
                     struct et_view *v)
{
    struct et_finding *f = NULL;
    x->t.req_begin = r->t;
    x->t.resp_end = r->t;
    x->has_response = r->http > 0;
    x->resp.status = r->http;
    x->host = r->host;
    v->is_eas = r->is_eas;
    v->cmd = r->is_eas ? r->cmd : NULL;
    v->device = r->device;
    v->http_status = r->http;
    v->top_status = r->status;
    v->nstatus = r->status >= 0;
    v->statuses[0] = r->status;
    v->status_parent[0] = NULL;
    v->server_error = r->error;
    v->throttled = 0;
    v->throttle = NULL;
    if (r->error != NULL && (strstr(r->error, "TooManyJobsQueued") || strstr(r->error, "OverBudget") ||
                             strstr(r->error, "Throttl") || strstr(r->error, "Budget"))) {
        v->throttled = 1;
        v->throttle = r->error;
    }
    v->heartbeat_req = r->hb;
    v->ncolls = 0;
    if (r->sk != NULL) {
        v->colls[0].collection_id = NULL;
        v->colls[0].sync_key = r->sk;
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
    for (int k = 0; k < s->nsegs && s->rc == 0; k++) {
        const struct frecs *rs = &s->segs[k].fw->sh[s->idx];
        size_t i = s->segs[k].skip_prefix ? rs->pre : 0;
        for (; i < rs->n && s->rc == 0; i++) {
            const struct frec *r = &rs->v[i];
            if (r->backend && s->site == ET_IIS_SITE_AUTO && (s->fe_seg[k] || r->fe_before))
                continue;
            feed_one(s, r, &x, &v);
        }
    }
    return NULL;
}

int et__fa_run(struct et__fa *fa, const struct et__fa_seg *segs, int nsegs, enum et_iis_site site)
{
    pthread_t th[ET__SHARDS_MAX];
    int started[ET__SHARDS_MAX] = {0};
    int fe_seg[64];
    int rc = 0;

    if (nsegs > (int)ET_ARRAY_SIZE(fe_seg))
        return ET_ETOOBIG;
    for (int k = 0; k < nsegs; k++) {
        fe_seg[k] = fa->fe_path;
        if (segs[k].fw->fe_any)
            fa->fe_path = 1;
    }
    for (int i = 0; i < fa->nshards; i++) {
        struct shard *s = &fa->sh[i];
        s->segs = segs;
        s->fe_seg = fe_seg;
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
    struct fagg all = {0};
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
            const struct fkey *x = &fa->sh[i].g.v[j];
            if (device != NULL && !et_strcaseeq(device, x->device))
                continue;
            v[k++] = *x;
        }
    qsort(v, k, sizeof(*v), cmp_fkey);
    for (size_t r = 0; r < k; r++) {
        snprintf(fa->nums[r][0], sizeof(fa->nums[r][0]), "%llu", v[r].count);
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
    (void)all;
    *out = fa->cells;
    *nrows = k;
    return 0;
}
