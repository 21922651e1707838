/*
 * The web store: one compact row per exchange in memory, the detail JSON and the search text
 * of each in an unlinked temporary file (the spill file), findings grouped by rule, devices.
 *
 *   et_web_store_add(x, v, f) --> render detail JSON + search text --> append to spill file
 *                             --> row {n, time, device, ..., detail_off, text_off} in rows[]
 *                             --> findings by rule, device counts; version++ and notify
 *
 * One mutex guards everything; the server's thread takes it per API request. Rendering
 * happens before the lock is taken, so a slow render does not block the page.
 */
#include "web_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eastrace/eas.h"

#define DEFAULT_MAX_ROWS ((size_t)1000000)
#define RULE_MAX_NS 5000
#define RULE_MAX_DEVS 256

/* ---- string pool ----------------------------------------------------------------------- */

uint32_t et__pool_intern(struct et__strpool *p, const char *s)
{
    uint32_t id;
    if (s == NULL)
        return 0;
    if (!p->ready) {
        if (et_strpool_init(&p->pool, 0) != 0)
            return 0;
        p->ready = 1;
    }
    if (et_strpool_intern(&p->pool, s, strlen(s), &id) == NULL || id == UINT32_MAX)
        return 0;
    return id + 1;
}

const char *et__pool_str(const struct et__strpool *p, uint32_t id)
{
    return id != 0 && p->ready ? et_strpool_str(&p->pool, id - 1) : NULL;
}

static void pool_free(struct et__strpool *p)
{
    if (p->ready)
        et_strpool_free(&p->pool);
    memset(p, 0, sizeof(*p));
}

/* ---- JSON strings safe inside HTML ----------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    size_t len = p[0] < 0x80 ? 1 : (p[0] & 0xE0) == 0xC0 ? 2 : (p[0] & 0xF0) == 0xE0 ? 3
                 : (p[0] & 0xF8) == 0xF0                 ? 4
                                                         : 0;
    if (len == 0 || len > n)
        return 0;
    return et_utf8_valid(p, len) ? len : 0;
}

int et__web_json_str(struct et_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, run = 0;
    int rc;

    if (s == NULL)
        return et_buf_puts(b, "null");
    if ((rc = et_buf_reserve(b, n + 2)) != 0 || (rc = et_buf_putc(b, '"')) != 0)
        return rc;
    while (i < n) {
        uint8_t c = p[i];
        char esc[8];
        const char *rep = NULL;
        size_t adv = 1;
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') { /* the common case */
            i++;
            continue;
        }
        if (c == '"')
            rep = "\\\"";
        else if (c == '\\')
            rep = "\\\\";
        else if (c == '\n')
            rep = "\\n";
        else if (c == '\t')
            rep = "\\t";
        else if (c < 0x80) {
            snprintf(esc, sizeof(esc), "\\u00%c%c", hex[c >> 4], hex[c & 15]);
            rep = esc;
        } else {
            adv = utf8_seq(p + i, n - i);
            if (adv == 0) {
                rep = "\\ufffd";
                adv = 1;
            } else if (adv == 3 && c == 0xE2 && p[i + 1] == 0x80 &&
                       (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
                rep = p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
            }
        }
        if (rep != NULL) {
            if ((rc = et_buf_append(b, s + run, i - run)) != 0 || (rc = et_buf_puts(b, rep)) != 0)
                return rc;
            run = i + adv;
        }
        i += adv;
    }
    if ((rc = et_buf_append(b, s + run, n - run)) != 0)
        return rc;
    return et_buf_putc(b, '"');
}

int et__web_json_cstr(struct et_buf *b, const char *s)
{
    return et__web_json_str(b, s, s ? strlen(s) : 0);
}

int et__web_json_harden(struct et_buf *b)
{
    struct et_buf o;
    size_t i = 0, run = 0;
    int rc = 0;

    et_buf_init(&o, 0);
    while (i < b->len && rc == 0) {
        uint8_t c = b->data[i];
        const char *rep = NULL;
        size_t adv = 1;
        if (c == '<')
            rep = "\\u003c";
        else if (c == '>')
            rep = "\\u003e";
        else if (c == '&')
            rep = "\\u0026";
        else if (c >= 0x80 && (adv = utf8_seq(b->data + i, b->len - i)) == 0) {
            rep = "\\ufffd";
            adv = 1;
        }
        if (rep != NULL) {
            rc = et_buf_append(&o, b->data + run, i - run);
            if (rc == 0)
                rc = et_buf_puts(&o, rep);
            run = i + adv;
        }
        i += adv;
    }
    if (run == 0 && rc == 0) {
        et_buf_free(&o);
        return 0; /* nothing to change */
    }
    if (rc == 0)
        rc = et_buf_append(&o, b->data + run, b->len - run);
    if (rc != 0) {
        et_buf_free(&o);
        return rc;
    }
    et_buf_free(b);
    *b = o;
    return 0;
}

/* ---- store ----------------------------------------------------------------------------- */

struct et_web_store *et_web_store_new(const struct et_web_store_opts *o, struct et_error *e)
{
    struct et_web_store *s = et_calloc(1, sizeof(*s));
    FILE *tf;
    if (s == NULL) {
        et_error_set(e, ET_ENOMEM, "out of memory");
        return NULL;
    }
    if (o != NULL)
        s->o = *o;
    if (s->o.max_rows == 0)
        s->o.max_rows = DEFAULT_MAX_ROWS;
    if (s->o.max_body_xml == 0)
        s->o.max_body_xml = (size_t)4 << 20;
    if (s->o.max_body_hex == 0)
        s->o.max_body_hex = (size_t)64 << 10;
    /* tmpfile() gives an unlinked file in TMPDIR or /tmp: nothing is left behind. */
    tf = tmpfile();
    if (tf == NULL || (s->fd = dup(fileno(tf))) < 0) {
        et_error_set(e, ET_EIO, "temporary file for the web store: %s", strerror(errno));
        if (tf != NULL)
            fclose(tf);
        et_free(s);
        return NULL;
    }
    fclose(tf);
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void et_web_store_free(struct et_web_store *s)
{
    if (s == NULL)
        return;
    close(s->fd);
    for (size_t i = 0; i < s->nrules; i++) {
        et_free(s->rules[i].rule);
        et_free(s->rules[i].ns);
        et_free(s->rules[i].message);
        et_free(s->rules[i].next_step);
        et_free(s->rules[i].devs);
    }
    et_free(s->rules);
    et_free(s->devs);
    for (size_t i = 0; i < s->npend; i++) {
        et_free(s->pend[i].device);
        et_free(s->pend[i].cmd);
        et_free(s->pend[i].host);
    }
    et_free(s->pend);
    et_free(s->rows);
    et_free(s->summary_json);
    et_free(s->q_key);
    et_free(s->q_idx);
    pool_free(&s->pool);
    pthread_mutex_destroy(&s->mu);
    et_free(s);
}

static void changed(struct et_web_store *s)
{
    s->version++;
    if (s->notify != NULL)
        s->notify(s->notify_arg);
}

void et_web_store_set_live(struct et_web_store *s, int live)
{
    pthread_mutex_lock(&s->mu);
    s->live = live;
    changed(s);
    pthread_mutex_unlock(&s->mu);
}

size_t et_web_store_count(const struct et_web_store *s)
{
    struct et_web_store *m = (struct et_web_store *)(uintptr_t)s;
    size_t n;
    pthread_mutex_lock(&m->mu);
    n = m->nrows;
    pthread_mutex_unlock(&m->mu);
    return n;
}

static int spill_write(struct et_web_store *s, const void *p, size_t n, uint64_t *off)
{
    const uint8_t *q = p;
    *off = s->spill_len;
    while (n > 0) {
        ssize_t w = pwrite(s->fd, q, n, (off_t)s->spill_len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return ET_EIO;
        q += w;
        n -= (size_t)w;
        s->spill_len += (uint64_t)w;
    }
    return 0;
}

int et__web_spill_read(struct et_web_store *s, uint64_t off, uint32_t len, struct et_buf *out)
{
    size_t got = 0;
    int rc = et_buf_reserve(out, (size_t)len + 1);
    if (rc != 0)
        return rc;
    while (got < len) {
        ssize_t r = pread(s->fd, out->data + out->len + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return ET_EIO;
        got += (size_t)r;
    }
    out->len += len;
    out->data[out->len] = '\0';
    return 0;
}

/* The EAS Status replay's timeline shows (et_view_status), with its name. */
static long shown_status(const struct et_view *v, const char **name)
{
    const char *root = NULL, *parent = NULL;
    long show = et_view_status(v, &root, &parent);
    const struct et_eas_status *st;

    *name = NULL;
    if (show < 0)
        return -1;
    st = et_eas_status_lookup(root, parent, (int)show);
    *name = st != NULL ? st->name : "?";
    return show;
}

static unsigned cmd_slot(const char *cmd, const char *method)
{
    if (cmd == NULL)
        return method != NULL && et_strcaseeq(method, "OPTIONS") ? 6 : 7;
    if (strcmp(cmd, "SmartReply") == 0 || strcmp(cmd, "SmartForward") == 0)
        return 3;
    for (unsigned i = 0; i < 6; i++)
        if (strcmp(cmd, et_analyzer_cmd_slot_name(i)) == 0)
            return i;
    return 7;
}

static struct et__web_dev *dev_of(struct et_web_store *s, uint32_t device)
{
    struct et__web_dev *d;
    for (size_t i = 0; i < s->ndevs; i++)
        if (s->devs[i].device == device)
            return &s->devs[i];
    d = et_realloc(s->devs, (s->ndevs + 1) * sizeof(*d));
    if (d == NULL)
        return NULL;
    s->devs = d;
    d = &s->devs[s->ndevs++];
    memset(d, 0, sizeof(*d));
    d->device = device;
    return d;
}

static struct et__web_rule *rule_of(struct et_web_store *s, const struct et_finding *f)
{
    struct et__web_rule *r;
    for (size_t i = 0; i < s->nrules; i++)
        if (strcmp(s->rules[i].rule, f->rule) == 0)
            return &s->rules[i];
    r = et_realloc(s->rules, (s->nrules + 1) * sizeof(*r));
    if (r == NULL)
        return NULL;
    s->rules = r;
    r = &s->rules[s->nrules];
    memset(r, 0, sizeof(*r));
    r->rule = et_strdup(f->rule);
    r->message = et_strdup(f->message ? f->message : "");
    r->next_step = et_strdup(f->next_step ? f->next_step : "");
    r->sev = (int)f->severity;
    if (r->rule == NULL || r->message == NULL || r->next_step == NULL) {
        et_free(r->rule);
        et_free(r->message);
        et_free(r->next_step);
        return NULL;
    }
    s->nrules++;
    return r;
}

static void rule_count(struct et_web_store *s, const struct et_finding *f, uint64_t n)
{
    struct et__web_rule *r = rule_of(s, f);
    uint32_t dev;
    if (r == NULL)
        return;
    r->count++;
    if ((int)f->severity > r->sev)
        r->sev = (int)f->severity;
    if (n != 0 && r->nns < RULE_MAX_NS && (r->nns == 0 || r->ns[r->nns - 1] != n)) {
        uint64_t *ns = et_realloc(r->ns, (r->nns + 1) * sizeof(*ns));
        if (ns != NULL) {
            r->ns = ns;
            r->ns[r->nns++] = n;
        }
    }
    dev = et__pool_intern(&s->pool, f->device);
    if (dev != 0 && r->ndevs < RULE_MAX_DEVS) {
        size_t i;
        for (i = 0; i < r->ndevs && r->devs[i] != dev; i++)
            ;
        if (i == r->ndevs) {
            uint32_t *d = et_realloc(r->devs, (r->ndevs + 1) * sizeof(*d));
            if (d != NULL) {
                r->devs = d;
                r->devs[r->ndevs++] = dev;
            }
        }
    }
}

/* Live: the oldest tenth goes when the store is full. */
static void drop_oldest(struct et_web_store *s)
{
    size_t k = s->nrows / 10 + 1;
    if (k > s->nrows)
        k = s->nrows;
    memmove(s->rows, s->rows + k, (s->nrows - k) * sizeof(*s->rows));
    s->nrows -= k;
    s->dropped += k;
}

int et_web_store_add(struct et_web_store *s, uint64_t n, const struct et_exchange *x,
                     const struct et_view *v, const struct et_finding *f, unsigned seen)
{
    struct et_buf detail, text, rules;
    struct et__web_row r;
    const char *sname = NULL, *cmd;
    char cmdbuf[300];
    int rc;

    memset(&r, 0, sizeof(r));
    et_buf_init(&detail, 0);
    et_buf_init(&text, 0);
    et_buf_init(&rules, 0);
    rc = et__web_render_detail(&s->o, n, x, v, f, seen, &detail);
    if (rc == 0)
        rc = et_pipe_find_text(x, v, s->o.redact_search && !s->o.include_secrets, &text);
    for (const struct et_finding *g = f; g != NULL && rc == 0; g = g->next)
        if (strstr((const char *)(rules.data ? rules.data : (const uint8_t *)""), g->rule) == NULL)
            rc = et_buf_printf(&rules, "%s%s", rules.len ? " " : "", g->rule);
    if (rc != 0)
        goto out;

    /* The command cell, as the timeline shows it. */
    if (v->is_eas && v->cmd != NULL)
        cmd = v->cmd;
    else if (v->is_eas && x->req.method != NULL)
        cmd = x->req.method;
    else if (x->req.method != NULL) {
        snprintf(cmdbuf, sizeof(cmdbuf), "%s %s", x->req.method, x->host ? x->host : "");
        cmd = cmdbuf;
    } else
        cmd = NULL;

    pthread_mutex_lock(&s->mu);
    if (s->nrows >= s->o.max_rows)
        drop_oldest(s);
    if (s->nrows == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        struct et__web_row *rows = et_realloc(s->rows, cap * sizeof(*rows));
        if (rows == NULL) {
            rc = ET_ENOMEM;
            goto unlock;
        }
        s->rows = rows;
        s->cap = cap;
    }
    if ((rc = spill_write(s, detail.data, detail.len, &r.detail_off)) != 0 ||
        (rc = spill_write(s, text.data, text.len, &r.text_off)) != 0)
        goto unlock;
    r.detail_len = (uint32_t)detail.len;
    r.text_len = (uint32_t)text.len;
    r.n = n;
    struct et_pipe_filter_facts k;
    struct et_pipe_item it = {n, x, v, f, seen, 0};
    et_pipe_filter_facts_of(&it, &k); /* what the grid's filters read, as replay's do */
    r.t = k.t; /* the time replay prints */
    r.dur = et_exchange_duration_us(x);
    r.req_bytes = x->req.body.absent ? -1 : (int64_t)x->req.body.wire_len;
    r.resp_bytes = x->resp.body.absent || !x->has_response ? -1 : (int64_t)x->resp.body.wire_len;
    r.device = et__pool_intern(&s->pool, k.device);
    r.device_id = et__pool_intern(&s->pool, k.device_id);
    r.user = et__pool_intern(&s->pool, k.user);
    r.auth_user = et__pool_intern(&s->pool, k.auth_user);
    r.cmd = et__pool_intern(&s->pool, cmd);
    r.fcmd = et__pool_intern(&s->pool, k.cmd);
    r.method = et__pool_intern(&s->pool, x->req.method);
    r.host = et__pool_intern(&s->pool, k.host);
    r.folder = et__pool_intern(&s->pool, v->ncolls > 0 ? v->colls[0].collection_id : NULL);
    r.eas = (int32_t)shown_status(v, &sname);
    r.status_name = et__pool_intern(&s->pool, sname);
    r.http = x->has_response && x->resp.status > 0 ? x->resp.status : 0;
    r.err = x->err.code != 0;
    r.sev = (int8_t)k.severity;
    r.seen = (uint8_t)seen;
    r.rules = rules.len ? et__pool_intern(&s->pool, (const char *)rules.data) : 0;
    for (const struct et_finding *g = f; g != NULL; g = g->next) {
        r.nfind++;
        if (g->severity == ET_SEV_ERROR)
            s->nerr++;
        else if (g->severity == ET_SEV_WARNING)
            s->nwarn++;
        else
            s->ninfo++;
        rule_count(s, g, n);
    }
    if (s->nrows > 0 && s->rows[s->nrows - 1].n >= r.n)
        s->unordered = 1;
    s->rows[s->nrows++] = r;
    if (!s->devs_from_analyzer) {
        struct et__web_dev *d = dev_of(s, r.device);
        if (d != NULL) {
            d->requests++;
            d->cmds[cmd_slot(v->cmd, x->req.method)]++;
            if (v->http_status != 200)
                d->http_errors++;
            if (d->user == 0)
                d->user = r.user;
            if (d->type == 0)
                d->type = et__pool_intern(&s->pool, v->req.device_type);
            if (r.t && (d->first == 0 || r.t < d->first))
                d->first = r.t;
            if (r.t > d->last)
                d->last = r.t;
            for (const struct et_finding *g = f; g != NULL; g = g->next)
                if (g->severity == ET_SEV_ERROR)
                    d->errors++;
                else if (g->severity == ET_SEV_WARNING)
                    d->warnings++;
        }
    }
    changed(s);
unlock:
    pthread_mutex_unlock(&s->mu);
out:
    et_buf_free(&detail);
    et_buf_free(&text);
    et_buf_free(&rules);
    return rc;
}

int et_web_store_finish(struct et_web_store *s, const struct et_finding *summary,
                        const struct et_analyzer *an)
{
    struct et_buf b;
    const struct et_device_stats *ds = NULL;
    size_t nd = an != NULL ? et_analyzer_devices(an, &ds) : 0;
    int rc = 0;

    et_buf_init(&b, 0);
    et_findings_json(summary, &b);
    if (et__web_json_harden(&b) != 0 || b.data == NULL) {
        et_buf_free(&b);
        return ET_ENOMEM;
    }
    pthread_mutex_lock(&s->mu);
    et_free(s->summary_json);
    s->summary_json = (char *)et_buf_detach(&b, NULL);
    for (const struct et_finding *g = summary; g != NULL; g = g->next) {
        if (g->severity == ET_SEV_ERROR)
            s->nerr++;
        else if (g->severity == ET_SEV_WARNING)
            s->nwarn++;
        else
            s->ninfo++;
        rule_count(s, g, g->exchange_id);
    }
    if (an != NULL) {
        /* The analyzer's own statistics: the numbers replay's device table prints. */
        struct et__web_dev *d = et_calloc(nd ? nd : 1, sizeof(*d));
        if (d == NULL) {
            rc = ET_ENOMEM;
        } else {
            for (size_t i = 0; i < nd; i++) {
                d[i].device = et__pool_intern(&s->pool, ds[i].device);
                d[i].user = et__pool_intern(&s->pool, ds[i].user);
                d[i].type = et__pool_intern(&s->pool, ds[i].device_type);
                d[i].requests = ds[i].requests;
                d[i].errors = ds[i].errors;
                d[i].warnings = ds[i].warnings;
                d[i].http_errors = ds[i].http_errors;
                d[i].first = ds[i].first;
                d[i].last = ds[i].last;
                d[i].max_per_minute = ds[i].max_per_minute;
                memcpy(d[i].cmds, ds[i].cmd_counts, sizeof(d[i].cmds));
            }
            et_free(s->devs);
            s->devs = d;
            s->ndevs = nd;
            s->devs_from_analyzer = 1;
        }
    }
    s->finished = 1;
    changed(s);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int sink_exchange(void *arg, const struct et_pipe_item *it)
{
    return et_web_store_add(arg, it->n, it->x, it->v, it->findings, it->seen_by);
}

static int sink_finish(void *arg, const struct et_finding *summary, const struct et_analyzer *an)
{
    return et_web_store_finish(arg, summary, an);
}

struct et_pipe_sink et_web_store_sink(struct et_web_store *s)
{
    struct et_pipe_sink k = {sink_exchange, sink_finish, s};
    return k;
}

int et_web_store_begin_pending(struct et_web_store *s, uint64_t key, int64_t start_us,
                               const char *device, const char *cmd, const char *host,
                               long heartbeat_s)
{
    struct et__web_pending *p;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    p = et_realloc(s->pend, (s->npend + 1) * sizeof(*p));
    if (p == NULL) {
        rc = ET_ENOMEM;
        goto out;
    }
    s->pend = p;
    p = &s->pend[s->npend];
    p->key = key;
    p->start = start_us;
    p->heartbeat = heartbeat_s;
    p->device = device ? et_strdup(device) : NULL;
    p->cmd = cmd ? et_strdup(cmd) : NULL;
    p->host = host ? et_strdup(host) : NULL;
    s->npend++;
    changed(s);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void et_web_store_end_pending(struct et_web_store *s, uint64_t key)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->npend; i++) {
        if (s->pend[i].key == key) {
            et_free(s->pend[i].device);
            et_free(s->pend[i].cmd);
            et_free(s->pend[i].host);
            s->pend[i] = s->pend[--s->npend];
            changed(s);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- documents ------------------------------------------------------------------------- */

static void jpool(struct et_buf *b, const struct et_web_store *s, uint32_t id)
{
    et__web_json_cstr(b, et__pool_str(&s->pool, id));
}

static void jtime(struct et_buf *b, int64_t us)
{
    if (us > 0)
        et_buf_printf(b, "%lld", (long long)(us / 1000));
    else
        et_buf_puts(b, "null");
}

static void jint_or_null(struct et_buf *b, int64_t v, int64_t none)
{
    if (v == none)
        et_buf_puts(b, "null");
    else
        et_buf_printf(b, "%lld", (long long)v);
}

void et__web_row_json(const struct et_web_store *s, const struct et__web_row *r,
                      struct et_buf *out)
{
    et_buf_printf(out, "{\"n\":%llu,\"t\":", (unsigned long long)r->n);
    jtime(out, r->t);
    et_buf_puts(out, ",\"dur\":");
    if (r->dur >= 0)
        et_buf_printf(out, "%.3f", (double)r->dur / 1000.0);
    else
        et_buf_puts(out, "null");
    et_buf_puts(out, ",\"dev\":");
    jpool(out, s, r->device);
    et_buf_puts(out, ",\"devid\":");
    jpool(out, s, r->device_id);
    et_buf_puts(out, ",\"user\":");
    jpool(out, s, r->user);
    et_buf_puts(out, ",\"auser\":");
    jpool(out, s, r->auth_user);
    et_buf_puts(out, ",\"cmd\":");
    jpool(out, s, r->cmd);
    et_buf_puts(out, ",\"fcmd\":");
    jpool(out, s, r->fcmd);
    et_buf_puts(out, ",\"host\":");
    jpool(out, s, r->host);
    et_buf_puts(out, ",\"folder\":");
    jpool(out, s, r->folder);
    et_buf_puts(out, ",\"http\":");
    jint_or_null(out, r->http, 0);
    et_buf_puts(out, ",\"eas\":");
    jint_or_null(out, r->eas, -1);
    et_buf_puts(out, ",\"easName\":");
    jpool(out, s, r->status_name);
    et_buf_puts(out, ",\"req\":");
    jint_or_null(out, r->req_bytes, -1);
    et_buf_puts(out, ",\"resp\":");
    jint_or_null(out, r->resp_bytes, -1);
    et_buf_printf(out, ",\"seen\":%u,\"sev\":%d,\"nf\":%u,\"err\":%s,\"rules\":", r->seen,
                  r->sev, r->nfind, r->err ? "true" : "false");
    jpool(out, s, r->rules);
    et_buf_putc(out, '}');
}

void et__web_devices_json(struct et_web_store *s, struct et_buf *out)
{
    et_buf_printf(out, "{\"from_analyzer\":%s,\"devices\":[",
                  s->devs_from_analyzer ? "true" : "false");
    for (size_t i = 0; i < s->ndevs; i++) {
        const struct et__web_dev *d = &s->devs[i];
        const char *dev = et__pool_str(&s->pool, d->device);
        if (i)
            et_buf_putc(out, ',');
        et_buf_puts(out, "{\"device\":");
        jpool(out, s, d->device);
        et_buf_puts(out, ",\"user\":");
        jpool(out, s, d->user);
        et_buf_puts(out, ",\"type\":");
        jpool(out, s, d->type);
        et_buf_printf(out,
                      ",\"requests\":%llu,\"errors\":%llu,\"warnings\":%llu,"
                      "\"http_errors\":%llu,\"max_per_minute\":%u,\"first\":",
                      (unsigned long long)d->requests, (unsigned long long)d->errors,
                      (unsigned long long)d->warnings, (unsigned long long)d->http_errors,
                      d->max_per_minute);
        jtime(out, d->first);
        et_buf_puts(out, ",\"last\":");
        jtime(out, d->last);
        et_buf_puts(out, ",\"commands\":{");
        for (unsigned k = 0, m = 0; k < 8; k++)
            if (d->cmds[k])
                et_buf_printf(out, "%s\"%s\":%llu", m++ ? "," : "",
                              et_analyzer_cmd_slot_name(k), (unsigned long long)d->cmds[k]);
        /* The rules that fired for this device (pattern and per-exchange), by name. */
        et_buf_puts(out, "},\"rules\":[");
        for (size_t k = 0, m = 0; k < s->nrules; k++) {
            const struct et__web_rule *r = &s->rules[k];
            for (size_t j = 0; j < r->ndevs; j++) {
                const char *rd = et__pool_str(&s->pool, r->devs[j]);
                if (dev != NULL && rd != NULL && strcmp(rd, dev) == 0) {
                    et_buf_puts(out, m++ ? "," : "");
                    et__web_json_cstr(out, r->rule);
                    break;
                }
            }
        }
        et_buf_puts(out, "]}");
    }
    et_buf_puts(out, "]}");
}

void et__web_findings_json(struct et_web_store *s, struct et_buf *out)
{
    static const char *const sevs[] = {"info", "warning", "error"};
    et_buf_puts(out, "{\"rules\":[");
    for (size_t i = 0; i < s->nrules; i++) {
        const struct et__web_rule *r = &s->rules[i];
        if (i)
            et_buf_putc(out, ',');
        et_buf_puts(out, "{\"rule\":");
        et__web_json_cstr(out, r->rule);
        et_buf_printf(out, ",\"severity\":\"%s\",\"count\":%llu,\"message\":",
                      sevs[r->sev >= 0 && r->sev <= 2 ? r->sev : 0],
                      (unsigned long long)r->count);
        et__web_json_cstr(out, r->message);
        et_buf_puts(out, ",\"next_step\":");
        et__web_json_cstr(out, r->next_step);
        et_buf_puts(out, ",\"exchanges\":[");
        for (size_t j = 0; j < r->nns; j++)
            et_buf_printf(out, "%s%llu", j ? "," : "", (unsigned long long)r->ns[j]);
        et_buf_printf(out, "],\"exchanges_cut\":%s,\"devices\":[",
                      r->nns == RULE_MAX_NS ? "true" : "false");
        for (size_t j = 0; j < r->ndevs; j++) {
            if (j)
                et_buf_putc(out, ',');
            jpool(out, s, r->devs[j]);
        }
        et_buf_puts(out, "]}");
    }
    et_buf_puts(out, "],\"summary\":");
    et_buf_puts(out, s->summary_json ? s->summary_json : "[]");
    et_buf_putc(out, '}');
}

void et__web_summary_json(struct et_web_store *s, struct et_buf *out)
{
    int64_t now = et_now_us();
    et_buf_printf(out,
                  "{\"version\":%llu,\"exchanges\":%zu,\"dropped\":%llu,\"live\":%s,"
                  "\"finished\":%s,\"errors\":%llu,\"warnings\":%llu,\"infos\":%llu,"
                  "\"devices\":%zu,\"now\":%lld,\"pending\":[",
                  (unsigned long long)s->version, s->nrows, (unsigned long long)s->dropped,
                  s->live ? "true" : "false", s->finished ? "true" : "false",
                  (unsigned long long)s->nerr, (unsigned long long)s->nwarn,
                  (unsigned long long)s->ninfo, s->ndevs, (long long)(now / 1000));
    for (size_t i = 0, m = 0; i < s->npend; i++) {
        const struct et__web_pending *p = &s->pend[i];
        /* A request whose exchange never came (the client went away and the proxy dropped
         * it) is not shown for ever. */
        int64_t limit = (int64_t)(p->heartbeat > 0 ? p->heartbeat + 300 : 3700) * 1000000;
        if (p->start > 0 && now - p->start > limit)
            continue;
        if (m++)
            et_buf_putc(out, ',');
        et_buf_printf(out, "{\"key\":%llu,\"t\":", (unsigned long long)p->key);
        jtime(out, p->start);
        et_buf_puts(out, ",\"dev\":");
        et__web_json_cstr(out, p->device);
        et_buf_puts(out, ",\"cmd\":");
        et__web_json_cstr(out, p->cmd);
        et_buf_puts(out, ",\"host\":");
        et__web_json_cstr(out, p->host);
        et_buf_puts(out, ",\"heartbeat\":");
        jint_or_null(out, p->heartbeat, -1);
        et_buf_putc(out, '}');
    }
    et_buf_puts(out, "]}");
}

/* Binary search while rows are in ascending n, else a scan. */
static const struct et__web_row *row_by_n(const struct et_web_store *s, uint64_t n)
{
    size_t lo = 0, hi = s->nrows;
    if (s->unordered) {
        for (size_t i = 0; i < s->nrows; i++)
            if (s->rows[i].n == n)
                return &s->rows[i];
        return NULL;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->rows[mid].n < n)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nrows && s->rows[lo].n == n ? &s->rows[lo] : NULL;
}

int et_web_store_api(struct et_web_store *s, const char *target, struct et_buf *out,
                     int *status)
{
    const char *q = strchr(target, '?');
    size_t plen = q ? (size_t)(q - target) : strlen(target);
    int rc = 0;

    q = q ? q + 1 : "";
    *status = 200;
    pthread_mutex_lock(&s->mu);
    if (plen == 9 && memcmp(target, "/api/rows", 9) == 0) {
        rc = et__web_rows_query(s, q, out, status);
    } else if (plen == 12 && memcmp(target, "/api/summary", 12) == 0) {
        et__web_summary_json(s, out);
    } else if (plen == 12 && memcmp(target, "/api/devices", 12) == 0) {
        et__web_devices_json(s, out);
    } else if (plen == 13 && memcmp(target, "/api/findings", 13) == 0) {
        et__web_findings_json(s, out);
    } else if (plen > 14 && memcmp(target, "/api/exchange/", 14) == 0) {
        char num[24];
        char *end;
        unsigned long long n;
        const struct et__web_row *r;
        snprintf(num, sizeof(num), "%.*s", (int)(plen - 14), target + 14);
        n = strtoull(num, &end, 10);
        if (*end != '\0' || plen - 14 >= sizeof(num) || (r = row_by_n(s, n)) == NULL) {
            *status = 404;
            et_buf_puts(out, "{\"error\":\"no such exchange\"}");
        } else if ((rc = et__web_spill_read(s, r->detail_off, r->detail_len, out)) != 0) {
            *status = 500;
        }
    } else {
        *status = 404;
        et_buf_puts(out, "{\"error\":\"no such API\"}");
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}
