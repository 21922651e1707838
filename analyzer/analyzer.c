/*
 * The analyzer: options, the per-device state, the feed loop that runs every rule on each
 * exchange (rules.c, patterns.c, folders.c), the findings made at the end (high-usage) and the
 * emitter of findings. Every finding says what happened, why it matters, and the next step
 * from the troubleshooting guides. Rule ids are stable: docs/rules.md. The state and how the
 * files share it: analyzer_int.h.
 */
#include "eastrace/analyzer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer_int.h"

const char *et_severity_name(enum et_severity s)
{
    switch (s) {
    case ET_SEV_INFO: return "info";
    case ET_SEV_WARNING: return "warning";
    case ET_SEV_ERROR: return "error";
    }
    return "info";
}

int et_severity_parse(const char *s, enum et_severity *out)
{
    if (et_strcaseeq(s, "info"))
        *out = ET_SEV_INFO;
    else if (et_strcaseeq(s, "warning") || et_strcaseeq(s, "warn"))
        *out = ET_SEV_WARNING;
    else if (et_strcaseeq(s, "error"))
        *out = ET_SEV_ERROR;
    else
        return ET_EINVAL;
    return 0;
}

void et_analyzer_opts_default(struct et_analyzer_opts *o)
{
    /* Thresholds from the guides: "more than 60 times in a minute" is a storm; "over 1000
     * requests per day we consider high usage; above 1500 there could be an issue". */
    o->storm_per_minute = 60;
    o->high_usage_per_day = 1000;
    o->very_high_per_day = 1500;
    o->synckey0_repeat = 3;
    o->synckey_repeat = 4;
    o->provision_repeat = 3;
    o->auth_repeat = 3;
    o->heartbeat_min = 60;
    o->heartbeat_max = 3540;
    o->longpoll_cut_repeat = 3;
    o->slow_ms = 10000;
    o->foldersync_grace = 2;
}

int et_analyzer_opt_parse(struct et_analyzer_opts *o, const char *name, const char *value)
{
    char *end;
    unsigned long v;

    if (strcmp(name, "--slow-ms") != 0 && strcmp(name, "--longpoll-cut") != 0 &&
        strcmp(name, "--foldersync-grace") != 0)
        return 0;
    if (value == NULL || *value == '\0')
        return ET_EINVAL;
    v = strtoul(value, &end, 10);
    if (*end != '\0' || v == 0 || v > 100000000)
        return ET_EINVAL;
    if (strcmp(name, "--slow-ms") == 0)
        o->slow_ms = (long)v;
    else if (strcmp(name, "--longpoll-cut") == 0)
        o->longpoll_cut_repeat = v > CUT_RING ? CUT_RING : (unsigned)v;
    else
        o->foldersync_grace = (unsigned)v;
    return 1;
}

const char *et_analyzer_opts_help(void)
{
    return "  --slow-ms N          a command (not a long poll) slower than N ms is slow (10000)\n"
           "  --longpoll-cut N     long polls cut at about the same duration that make\n"
           "                       longpoll-cut (3, at most 8)\n"
           "  --foldersync-grace N requests after Ping 7 / Sync 12 without a FolderSync that\n"
           "                       make foldersync-ignored (2)\n";
}


enum kcmd et__an_kcmd_of(const char *cmd)
{
    if (cmd == NULL)
        return K_NONE;
    switch (cmd[0]) {
    case 'S':
        return strcmp(cmd, "Sync") == 0           ? K_SYNC
               : strcmp(cmd, "SendMail") == 0     ? K_SENDMAIL
               : strcmp(cmd, "SmartReply") == 0   ? K_SMARTREPLY
               : strcmp(cmd, "SmartForward") == 0 ? K_SMARTFORWARD
                                                  : K_OTHER;
    case 'P':
        return strcmp(cmd, "Ping") == 0        ? K_PING
               : strcmp(cmd, "Provision") == 0 ? K_PROVISION
                                               : K_OTHER;
    case 'F': return strcmp(cmd, "FolderSync") == 0 ? K_FOLDERSYNC : K_OTHER;
    case 'I': return strcmp(cmd, "ItemOperations") == 0 ? K_ITEMOPERATIONS : K_OTHER;
    case 'G': return strcmp(cmd, "GetItemEstimate") == 0 ? K_GETITEMESTIMATE : K_OTHER;
    default: return K_OTHER;
    }
}

static const char *const cmd_slots[8] = {"Sync", "Ping", "FolderSync", "SendMail",
                                         "Provision", "ItemOperations", "Options", "other"};

const char *et_analyzer_cmd_slot_name(unsigned slot)
{
    return slot < 8 ? cmd_slots[slot] : "other";
}

static unsigned cmd_slot(enum kcmd k, const char *method)
{
    switch (k) {
    case K_NONE: return method != NULL && et_strcaseeq(method, "OPTIONS") ? 6 : 7;
    case K_SYNC: return 0;
    case K_PING: return 1;
    case K_FOLDERSYNC: return 2;
    case K_SENDMAIL:
    case K_SMARTREPLY:
    case K_SMARTFORWARD: return 3;
    case K_PROVISION: return 4;
    case K_ITEMOPERATIONS: return 5;
    default: return 7;
    }
}

struct et_analyzer *et_analyzer_new(const struct et_analyzer_opts *opts)
{
    struct et_analyzer *an = et_calloc(1, sizeof(*an));
    if (an == NULL)
        return NULL;
    if (opts != NULL)
        an->o = *opts;
    else
        et_analyzer_opts_default(&an->o);
    if (an->o.storm_per_minute == 0)
        an->o.storm_per_minute = 60;
    /* Options made before these thresholds existed (zeroed) get the defaults. */
    if (an->o.longpoll_cut_repeat == 0 || an->o.longpoll_cut_repeat > CUT_RING)
        an->o.longpoll_cut_repeat = 3;
    if (an->o.slow_ms <= 0)
        an->o.slow_ms = 10000;
    if (an->o.foldersync_grace == 0)
        an->o.foldersync_grace = 2;
    an->arena = et_arena_new(0);
    et_map_init(&an->bydev);
    if (an->arena == NULL) {
        et_analyzer_free(an);
        return NULL;
    }
    return an;
}

void et_analyzer_free(struct et_analyzer *an)
{
    if (an == NULL)
        return;
    for (size_t i = 0; i < an->ndevs; i++) {
        struct dev *d = an->devs[i];
        for (unsigned k = 0; k < d->ncolls; k++) {
            skey_set(&d->colls[k].last_key, NULL);
            skey_set(&d->colls[k].pending_new_key, NULL);
        }
        et_free(d->colls);
        et_free(d->days);
        et__an_folders_clear(d);
        et_free(d->folders);
        et_free(d);
    }
    et_free(an->devs);
    et_map_free(&an->bydev);
    et_free(an->stats_out);
    et_arena_free(an->arena);
    et_free(an);
}

static int dev_eq(const void *val, const void *key)
{
    return strcmp(((const struct dev *)val)->st.device, key) == 0;
}

static struct dev *get_dev(struct et_analyzer *an, const char *device)
{
    size_t len;
    int found;
    struct et_map_slot *s;

    if (an->last != NULL && strcmp(an->last->st.device, device) == 0)
        return an->last;
    len = strlen(device);
    s = et_map_upsert(&an->bydev, et_hash(device, len, 0), dev_eq, device,
                                          &found);
    struct dev *d;

    if (s == NULL)
        return NULL;
    if (found)
        return an->last = s->val;
    if (an->ndevs == an->capdevs) {
        size_t n = an->capdevs ? an->capdevs * 2 : 16;
        struct dev **nd = et_realloc(an->devs, n * sizeof(*nd));
        if (nd == NULL)
            goto fail;
        an->devs = nd;
        an->capdevs = n;
    }
    unsigned ring_len = an->o.storm_per_minute + 1;
    d = et_calloc(1, sizeof(*d) + ring_len * sizeof(d->ring[0]));
    if (d == NULL)
        goto fail;
    if (len < sizeof(d->name)) {
        memcpy(d->name, device, len + 1);
        d->st.device = d->name;
    } else {
        d->st.device = et_arena_strndup(an->arena, device, len);
    }
    d->ring_len = ring_len;
    d->server_hb = -1;
    d->hb_refused_req = -1;
    if (d->st.device == NULL) {
        et_free(d);
        goto fail;
    }
    s->val = d;
    an->devs[an->ndevs++] = d;
    return an->last = d;
fail:
    et_map_upsert_cancel(&an->bydev, s);
    return NULL;
}

struct coll_state *et__an_get_coll(struct et_analyzer *an, struct dev *d, const char *id)
{
    for (unsigned i = 0; i < d->ncolls; i++) {
        const char *cid = d->colls[i].id;
        if ((cid == NULL && id == NULL) || (cid && id && strcmp(cid, id) == 0))
            return &d->colls[i];
    }
    if (d->ncolls == DEV_MAX_COLLS)
        return NULL;
    if (d->ncolls == d->capcolls) {
        unsigned nc = d->capcolls ? d->capcolls * 2 : 4;
        struct coll_state *ncs = et_realloc(d->colls, nc * sizeof(*ncs));
        if (ncs == NULL)
            return NULL;
        d->colls = ncs;
        d->capcolls = nc;
    }
    struct coll_state *c = &d->colls[d->ncolls++];
    memset(c, 0, sizeof(*c));
    c->last_status = -1;
    if (id != NULL && (c->id = et_arena_strdup(an->arena, id)) == NULL)
        return NULL;
    return c;
}

/* ---- findings ------------------------------------------------------------------------- */

void et__an_vadd(struct emit *em, const char *rule, enum et_severity sev, const char *next,
                 const char *fmt, va_list ap)
{
    char msg[1024];
    struct et_finding *f = et_arena_alloc(em->a, sizeof(*f));

    if (f == NULL) {
        em->failed = 1;
        return;
    }
    vsnprintf(msg, sizeof(msg), fmt, ap);
    /* Messages quote recorded values (device ids, server errors): keep them printable. */
    et_str_printable(msg);
    f->rule = rule;
    f->severity = sev;
    f->message = et_arena_strdup(em->a, msg);
    f->next_step = next;
    f->exchange_id = em->x ? em->x->id : 0;
    f->device = em->v ? et_arena_strdup(em->a, em->v->device) : NULL;
    f->time = em->x ? et_exchange_time(em->x) : 0;
    if (f->message == NULL) {
        em->failed = 1;
        return;
    }
    if (em->d != NULL) {
        if (sev == ET_SEV_ERROR)
            em->d->st.errors++;
        else if (sev == ET_SEV_WARNING)
            em->d->st.warnings++;
    }
    *em->tail = f;
    em->tail = &f->next;
}

int et_analyzer_feed(struct et_analyzer *an, const struct et_exchange *x,
                     const struct et_view *v, struct et_arena *a, struct et_finding **out)
{
    struct emit em = {0};
    struct dev *d;
    int64_t t = et_exchange_time(x);
    struct et_finding *head = NULL;

    *out = NULL;
    em.a = a;
    em.tail = &head;
    em.x = x;
    em.v = v;
    em.cmd = et__an_kcmd_of(v->cmd);
    em.an = an;
    d = get_dev(an, v->device);
    if (d == NULL)
        return ET_ENOMEM;
    em.d = d;

    d->st.requests++;
    d->st.cmd_counts[cmd_slot(em.cmd, x->req.method)]++;
    if (d->st.first == 0 || (t > 0 && t < d->st.first))
        d->st.first = t;
    if (t > d->st.last)
        d->st.last = t;
    if (d->st.user == NULL && v->user != NULL)
        d->st.user = et_arena_strdup(an->arena, v->user);
    if (d->st.device_type == NULL && v->req.device_type != NULL)
        d->st.device_type = et_arena_strdup(an->arena, v->req.device_type);
    if (d->st.user_agent == NULL && v->req.user_agent != NULL)
        d->st.user_agent = et_arena_strdup(an->arena, v->req.user_agent);
    if (v->http_status != 200)
        d->st.http_errors++;

    et__an_name_collections(&em, d, v);
    et__an_rule_exchange_error(&em);
    et__an_rule_http_status(&em);
    et__an_rule_cas_error(&em);
    if (v->is_eas) {
        et__an_pattern_retry_after(&em, t);
        et__an_rule_statuses(&em);
        et__an_rule_server_error(&em);
        et__an_rule_device_blocked(&em, an);
        et__an_rule_slow(&em, an);
        et__an_pattern_longpoll_cut(&em, an);
        et__an_pattern_foldersync(&em, an);
        et__an_learn_folders(&em);
        if (v->throttled && v->http_status != 503 && v->server_error == NULL)
            add(&em, "throttling", ET_SEV_WARNING, NEXT_THROTTLE,
                "the server is throttling the device: %s", v->throttle);
        et__an_pattern_storm(&em, an, t);
        et__an_count_day(d, t);
        et__an_pattern_synckeys(&em, an);
        et__an_pattern_provisioning(&em, an);
        et__an_pattern_auth(&em, an);
        et__an_pattern_heartbeat(&em, an);
        if (v->http_status >= 500 && em.cmd == K_SYNC)
            d->fives_since_reset++;
    }
    *out = head;
    return em.failed ? ET_ENOMEM : 0;
}

int et_analyzer_finish(struct et_analyzer *an, struct et_finding **out)
{
    struct et_finding *head = NULL;
    struct emit em = {0};

    em.a = an->arena;
    em.tail = &head;
    for (size_t i = 0; i < an->ndevs; i++) {
        struct dev *d = an->devs[i];
        struct et_view fake;
        memset(&fake, 0, sizeof(fake));
        fake.device = d->st.device;
        em.v = &fake;
        em.d = d;
        for (unsigned k = 0; k < d->ndays; k++) {
            char day[32];
            unsigned c = d->days[k].count;
            if (c <= an->o.high_usage_per_day)
                continue;
            et_time_iso8601(d->days[k].day * DAY_US + 1, day, sizeof(day));
            day[10] = '\0';
            add(&em, "high-usage", c > an->o.very_high_per_day ? ET_SEV_WARNING : ET_SEV_INFO,
                NEXT_HIGH_USAGE,
                "device %s sent %u requests on %s (over %u a day is high usage, over %u "
                "suggests a problem on the device or in the environment)",
                d->st.device, c, day, an->o.high_usage_per_day, an->o.very_high_per_day);
        }
    }
    *out = head;
    return em.failed ? ET_ENOMEM : 0;
}

size_t et_analyzer_devices(const struct et_analyzer *an, const struct et_device_stats **out)
{
    struct et_analyzer *m = (struct et_analyzer *)(uintptr_t)an;
    et_free(m->stats_out);
    m->stats_out = et_calloc(an->ndevs ? an->ndevs : 1, sizeof(*m->stats_out));
    if (m->stats_out == NULL) {
        *out = NULL;
        return 0;
    }
    for (size_t i = 0; i < an->ndevs; i++)
        m->stats_out[i] = an->devs[i]->st;
    *out = m->stats_out;
    return an->ndevs;
}

int et_findings_max_severity(const struct et_finding *f)
{
    int m = -1;
    for (; f != NULL; f = f->next)
        if ((int)f->severity > m)
            m = (int)f->severity;
    return m;
}
