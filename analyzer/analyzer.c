/*
 * The analyzer: per-exchange rules (HTTP status, command Status values, failures) and pattern
 * rules over small per-device state (SyncKey 0 loops, repeated SyncKeys, request storms,
 * provisioning loops, repeated authentication failures, heartbeats out of range, usage per
 * day). Every finding says what happened, why it matters, and the next step from the
 * troubleshooting guides. Rule ids are stable: docs/rules.md.
 *
 * Per-device state (struct dev) is found through the common hash table (map.h) keyed by
 * device id; devs[] keeps first-seen order:
 *
 *   map[et_hash(device)] -> dev: stats, runs (provisioning, auth failures, 5xx), then the
 *        ring of recent request times (storm) in the same allocation;
 *        cold parts behind pointers: collections[] (SyncKey state), per-day counts, folders
 */
#include "eastrace/analyzer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eastrace/map.h"

#define DEV_MAX_COLLS 64
#define DEV_MAX_DAYS 62
#define STORM_WINDOW_US (60LL * 1000000)
#define DAY_US (86400LL * 1000000)

/* A SyncKey kept by the analyzer: short ones (nearly all) inline, so that a Sync with a new
 * key costs no allocation; longer ones on the heap. */
struct skey {
    char *heap;
    char in[32];
    unsigned char set;
};

static const char *skey_get(const struct skey *k)
{
    return !k->set ? NULL : k->heap != NULL ? k->heap : k->in;
}

/* v NULL clears it. A copy that cannot be made leaves it cleared. */
static void skey_set(struct skey *k, const char *v)
{
    et_free(k->heap);
    k->heap = NULL;
    k->set = 0;
    if (v == NULL)
        return;
    size_t n = strlen(v);
    if (n < sizeof(k->in))
        memcpy(k->in, v, n + 1);
    else if ((k->heap = et_strdup(v)) == NULL)
        return;
    k->set = 1;
}

struct coll_state {
    char *id;              /* collection id ("FolderSync" for the hierarchy); NULL: unnamed */
    struct skey last_key;  /* last non-zero SyncKey sent */
    unsigned repeat;       /* times last_key was sent in a row without being advanced */
    unsigned zero_count;   /* SyncKey 0 sends */
    unsigned zero_reported;/* the loop finding was made */
    unsigned repeat_reported;
    unsigned fives_before_zero; /* HTTP 5xx answers to this device since its last SyncKey 0 */
    unsigned fives_total;  /* 5xx answers that came right before a SyncKey 0 */
    unsigned issued;       /* the server issued a key since the last SyncKey 0 (or the device
                              sent a non-zero one, which the server issued before) */
    struct skey pending_new_key; /* the SyncKey the server answered last time */
    long last_status;
};

#define CUT_RING 8
#define DEV_MAX_FOLDERS 2048

struct folder {
    char *id;   /* ServerId (owned: et_malloc) */
    char *name; /* DisplayName (owned), replaced on a rename */
};

struct day_count {
    int64_t day; /* days since the epoch */
    unsigned count;
};

/* The fields every request touches come first and the ring of request times ends the same
 * allocation, so that one request reads few cache lines of its device's state; the
 * per-collection, per-day and folder arrays are allocated apart, when first needed. */
struct dev {
    char name[40];           /* st.device when it fits: the lookup compares it here */
    struct et_device_stats st;
    unsigned ring_len, ring_pos;
    unsigned ring_inv; /* adjacent ring entries (oldest to newest) that go back in time */
    unsigned win;      /* requests within the storm window at the last one, when win_valid */
    unsigned win_valid;
    unsigned storm_active;
    unsigned storm_count;    /* storms found */
    unsigned ncolls, capcolls;
    unsigned provision_run;  /* provisioning answers since the last normal success */
    unsigned provision_reported;
    unsigned auth_run;       /* 401/403 in a row */
    unsigned auth_reported;
    unsigned fives_since_reset; /* 5xx since the last SyncKey 0 of any collection */
    unsigned heartbeat_reported;
    unsigned ndays, capdays;
    long server_hb;          /* HeartbeatInterval the server answered (Ping 5), -1 */
    long hb_refused_req;     /* the heartbeat the server last refused (Status 5), -1 none */
    int64_t retry_until;     /* the server's Retry-After allows a request from here on */
    long retry_secs;         /* that Retry-After, seconds */
    unsigned retry_reported;
    unsigned fs_after;       /* requests since, none of them FolderSync */
    const char *fs_why;      /* "Ping Status 7" / "Sync Status 12" waiting for a FolderSync */
    uint64_t fs_exchange;    /* the exchange that said so */
    const char *blocked_state; /* the blocked/quarantined access state last reported */
    struct day_count *days;  /* at most DEV_MAX_DAYS */
    struct coll_state *colls; /* at most DEV_MAX_COLLS */
    struct folder *folders;  /* the hierarchy FolderSync answered (names in the arena) */
    unsigned nfolders, capfolders;
    unsigned ncuts;          /* cut long polls in a row (the ring holds the last CUT_RING) */
    unsigned cut_reported;
    int64_t cuts[CUT_RING];  /* durations of the last long polls cut by a non-Exchange answer */
    int64_t ring[];          /* times of the last storm_per_minute + 1 requests */
};

/* The commands the rules test, classified once per exchange (struct emit's cmd). */
enum kcmd { K_NONE, K_SYNC, K_PING, K_FOLDERSYNC, K_SENDMAIL, K_SMARTREPLY, K_SMARTFORWARD,
            K_PROVISION, K_ITEMOPERATIONS, K_GETITEMESTIMATE, K_OTHER, K_COUNT };

struct et_analyzer {
    struct et_analyzer_opts o;
    struct et_arena *arena; /* device state strings and summary findings */
    struct et_map bydev;    /* device id -> struct dev */
    struct dev **devs;      /* first-seen order */
    struct dev *last;       /* the device of the previous exchange (sources that group a
                               device's exchanges find it again without hashing) */
    /* et_eas_status_severity of a top-level Status (no parent) of the commands the rules
     * know, by command and code 0..255, +1 (0: not looked up yet) */
    signed char top_sev[K_COUNT][256];
    size_t ndevs, capdevs;
    struct et_device_stats *stats_out;
};

static const char *coll_label(struct dev *d, const char *id, char *buf, size_t len);
static void folders_clear(struct dev *d);

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


static enum kcmd kcmd_of(const char *cmd)
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
        folders_clear(d);
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

static struct coll_state *get_coll(struct et_analyzer *an, struct dev *d, const char *id)
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

struct emit {
    struct et_arena *a;
    struct et_finding **tail;
    const struct et_exchange *x;
    const struct et_view *v;
    struct dev *d;
    struct et_analyzer *an;
    enum kcmd cmd; /* v->cmd classified */
    int failed; /* ENOMEM seen */
};

static void add(struct emit *em, const char *rule, enum et_severity sev, const char *next,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add(struct emit *em, const char *rule, enum et_severity sev, const char *next,
                const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    struct et_finding *f = et_arena_alloc(em->a, sizeof(*f));

    if (f == NULL) {
        em->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
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

/* Next steps, from Microsoft's ActiveSync troubleshooting guide and the ActiveSyncReport post. */
#define NEXT_AUTH                                                                              \
    "Check the credentials on the device (user name as UPN or DOMAIN\\user, current "        \
    "password, account not locked), that Basic authentication is enabled on the ActiveSync "  \
    "virtual directory (Get-ActiveSyncVirtualDirectory | ft server,basic*) and that a "       \
    "default domain is set for devices that send only a user name."
#define NEXT_FORBIDDEN                                                                         \
    "Check that the mailbox is enabled for ActiveSync (Get-CASMailbox user | fl "             \
    "ActiveSyncEnabled), the device access state (Get-MobileDevice: Allowed/Blocked/"         \
    "Quarantined, device access rules, ActiveSyncBlockedDeviceIDs), and that the virtual "    \
    "directory's SSL setting for client certificates is Ignore."
#define NEXT_500                                                                               \
    "Enable Failed Request Tracing on the Microsoft-Server-ActiveSync virtual directory for "  \
    "status 500, reproduce, and read the trace; check that MSExchangeSyncAppPool is started "  \
    "as LocalSystem. Repeated 500s are a known trigger of device resyncs."
#define NEXT_THROTTLE                                                                          \
    "The server is throttling this device (EAS budget). Find what it repeats (eastrace "      \
    "replay --device ID): a request storm or a retry loop; check Get-ThrottlingPolicy (EAS "  \
    "limits) and the device's app version."
#define NEXT_SYNC_STATUS                                                                       \
    "Look up the Status in MS-ASCMD Sync; find the request that caused it (eastrace show "   \
    "FILE N) and the device's requests before it (eastrace replay --device ID)."
#define NEXT_SENDMAIL_BLOCKED                                                                  \
    "Check the organization's default access level (Get-ActiveSyncOrganizationSettings | ft " \
    "DefaultAccessLevel; Allow expected), device access rules that match the device "         \
    "(Get-ActiveSyncDeviceAccessRule), and the mailbox's blocked device IDs "                 \
    "(Get-CASMailbox user | fl ActiveSyncBlockedDeviceIDs)."
#define NEXT_SENDMAIL_DISABLED                                                                 \
    "Check that the mailbox is enabled for ActiveSync: Get-CASMailbox user | fl "             \
    "ActiveSyncEnabled; enable it with Set-CASMailbox user -ActiveSyncEnabled:$True."
#define NEXT_SENDMAIL_OTHER                                                                    \
    "Review the status in the ActiveSync protocol document (MS-ASCMD SendMail) and the "      \
    "IIS log's Error column for the request (eastrace iis --report sendmail)."
#define NEXT_PROVISION                                                                         \
    "The device is asked to provision again and again: check that it applies the mobile "     \
    "device mailbox policy (Get-MobileDeviceStatistics: DevicePolicyApplicationStatus), that " \
    "it sends X-MS-PolicyKey after Provision, and AllowNonProvisionableDevices in the policy."
#define NEXT_STORM                                                                             \
    "Find what the device repeats (eastrace replay --device ID, eastrace iis --device ID "    \
    "--interval 60): a retry loop on an error (507 mailbox full, 500, SyncKey 0) or a faulty " \
    "app; update or re-create the partnership, or block the device with a device access rule " \
    "while it is investigated (KB 2469722)."
#define NEXT_HIGH_USAGE                                                                        \
    "Look at the device's hourly trend (eastrace iis --device ID --hourly) to tell a user "   \
    "action from a programmatic one; above 1500 requests a day investigate the device."
#define NEXT_RESET_LOOP                                                                        \
    "Look at the device's requests before each SyncKey 0 (eastrace replay --device ID): if "  \
    "Syncs were answered HTTP 500, enable Failed Request Tracing for status 500; otherwise "   \
    "look for error Status values (Sync 3, 12; Ping above 2) before the resync, and check "   \
    "file-level anti-virus on the Client Access servers."
#define NEXT_KEY_REPEAT                                                                        \
    "Check the Status of the responses to these Syncs (eastrace show FILE N): if it is not 1 " \
    "review that status in MS-ASCMD; if it is 1 the device does not take the server's new "   \
    "SyncKey: remove the folder from sync, wait five minutes and add it back, or re-create "  \
    "the device partnership."
#define NEXT_HEARTBEAT                                                                         \
    "Heartbeats outside the server's range make Ping fail (Status 5) or waste battery: check " \
    "the server's MinHeartbeatInterval/MaxHeartbeatInterval and any firewall or load "        \
    "balancer idle timeout below the heartbeat (the device lowers its heartbeat when "         \
    "connections are cut)."
#define NEXT_CONNECT                                                                           \
    "Check that the server name resolves and port 443 is reachable from the device's network " \
    "(eastrace probe https://HOST), and firewall or load balancer rules."
#define NEXT_UPSTREAM_CERT                                                                     \
    "The server's certificate failed verification: check its chain, names and dates "          \
    "(eastrace probe https://HOST shows each certificate); a missing intermediate certificate " \
    "is the usual cause. For a lab server, --insecure-upstream HOST."
#define NEXT_CLIENT_TLS                                                                        \
    "The device rejected eastrace's certificate: install and trust the eastrace CA on the "    \
    "device (eastrace ca, or browse to http://eastrace.cert/ through the proxy); apps that "   \
    "pin certificates are tunnelled without interception for that device for the pin time " \
    "(--pin-time, 10 min) or until it fetches the install page."

static void rule_exchange_error(struct emit *em)
{
    const struct et_exchange *x = em->x;
    const char *next;
    enum et_severity sev = ET_SEV_ERROR;

    if (x->err.code == 0)
        return;
    if (x->err.stage == ET_STAGE_DECODE || x->err.stage == ET_STAGE_NONE ||
        x->source == ET_SRC_MAILBOX || x->source == ET_SRC_IIS ||
        ((x->source == ET_SRC_SAZ || x->source == ET_SRC_HAR) &&
         (x->err.code == ET_ETRUNC || x->err.code == ET_EPARSE || x->err.code == ET_ETOOBIG))) {
        /* What is wrong is the record, not the traffic: a message another tool stored cut or
         * malformed. A failure a HAR or .saz names as the traffic's (a HAR "_error": DNS,
         * connect, TLS, a reset; our own writers' recorded failures) is judged below like
         * the proxy's own. */
        add(em, "exchange-error", em->v->is_eas ? ET_SEV_WARNING : ET_SEV_INFO,
            "The recording tool kept this message incomplete (a body limit, a cut file, or "
            "a session that was still running); the parts that were kept are shown.",
            "recorded exchange is incomplete: %s",
            x->err.message ? x->err.message : et_strerror(x->err.code));
        return;
    }
    switch (x->err.stage) {
    case ET_STAGE_DNS:
    case ET_STAGE_UPSTREAM_CONNECT:
        next = NEXT_CONNECT;
        break;
    case ET_STAGE_UPSTREAM_TLS:
        next = NEXT_UPSTREAM_CERT;
        break;
    case ET_STAGE_CLIENT_TLS:
        next = NEXT_CLIENT_TLS;
        sev = ET_SEV_WARNING;
        break;
    case ET_STAGE_REQUEST:
        next = "The device sent a request eastrace refused as malformed or not allowed; see "
               "the message, and the device's app version.";
        break;
    case ET_STAGE_RESPONSE:
        next = "The server's response was cut or malformed: check the CAS and any load "
               "balancer or reverse proxy between the device and Exchange.";
        break;
    default:
        next = "See the message; eastrace show FILE N gives everything recorded.";
        break;
    }
    add(em, "exchange-error", sev, next, "no complete exchange: %s failed: %s",
        et_stage_name(x->err.stage), x->err.message ? x->err.message : et_strerror(x->err.code));
}

static void rule_http_status(struct emit *em)
{
    const struct et_view *v = em->v;
    const struct et_exchange *x = em->x;
    int st = v->http_status;

    if (st == 0 || st == 200 || st == 100)
        return;
    const char *meaning = et_eas_http_status_meaning(st);
    const char *loc = et_headers_get(&x->resp.headers, "X-MS-Location");
    const int has_auth = et_headers_get(&x->req.headers, "Authorization") != NULL;
    /* When the exchange failed (the proxy answered 502/504 itself), exchange-error says why. */
    if (x->err.code != 0 && x->source != ET_SRC_SAZ && x->source != ET_SRC_HAR)
        return;
    if (!v->is_eas) {
        /* Other traffic through the proxy: only say something about server errors. */
        if (st >= 500)
            add(em, "http-status", ET_SEV_INFO, "Not ActiveSync traffic; shown for context.",
                "HTTP %d from %s (not an ActiveSync request)", st, x->host ? x->host : "?");
        return;
    }
    switch (st) {
    case 401:
        if (!has_auth && x->source != ET_SRC_IIS) {
            add(em, "http-status", ET_SEV_INFO,
                "Nothing to do unless the device's next request with credentials also fails.",
                "HTTP 401 to a request without credentials: the server's authentication "
                "challenge");
            return;
        }
        add(em, "http-status", ET_SEV_ERROR, NEXT_AUTH,
            "HTTP 401 Unauthorized for %s: the server rejected the credentials",
            v->cmd ? v->cmd : "the request");
        return;
    case 403:
        add(em, "http-status", ET_SEV_ERROR, NEXT_FORBIDDEN,
            "HTTP 403 Forbidden for %s: the user or device is not allowed to sync",
            v->cmd ? v->cmd : "the request");
        return;
    case 449:
        add(em, "http-status", ET_SEV_INFO,
            "Normal once: the device must send Provision and then retry. If it repeats, see "
            "provisioning-loop.",
            "HTTP 449 Retry after sending a Provision request: the policy key is missing or "
            "stale");
        return;
    case 451:
        add(em, "http-status", ET_SEV_WARNING,
            "The device should use the URL in X-MS-Location. If it keeps coming back here, "
            "check the ActiveSync virtual directory's ExternalUrl on the target site and "
            "Autodiscover.",
            "HTTP 451 Redirect: the mailbox is served elsewhere%s%s", loc ? ": " : "",
            loc ? loc : "");
        return;
    case 456:
        add(em, "http-status", ET_SEV_ERROR,
            "Check the user's account in Active Directory (disabled, locked out, logon hours) "
            "and that the mailbox is enabled for ActiveSync (Get-CASMailbox user | fl "
            "ActiveSyncEnabled); then the device access state (Get-MobileDevice).",
            "HTTP 456 Blocked for %s: the user's account is blocked (MS-ASHTTP)",
            v->cmd ? v->cmd : "the request");
        return;
    case 457:
        add(em, "http-status", ET_SEV_ERROR,
            "The user must change the password (Outlook on the web, or at a domain-joined "
            "computer), then enter the new one on the device.",
            "HTTP 457 Expired Password for %s: the user's password has expired (MS-ASHTTP)",
            v->cmd ? v->cmd : "the request");
        return;
    case 500:
        add(em, "http-status", ET_SEV_ERROR, NEXT_500,
            "HTTP 500 Internal Server Error for %s", v->cmd ? v->cmd : "the request");
        return;
    case 503:
        if (v->throttled) {
            add(em, "http-status", ET_SEV_WARNING, NEXT_THROTTLE,
                "HTTP 503 Service Unavailable: throttled (%s)", v->throttle);
            return;
        }
        add(em, "http-status", ET_SEV_ERROR,
            "Check the Exchange ActiveSync application pool and the server's health; a load "
            "balancer may answer 503 when no server is available.",
            "HTTP 503 Service Unavailable for %s", v->cmd ? v->cmd : "the request");
        return;
    case 507:
        add(em, "http-status", ET_SEV_ERROR,
            "The mailbox is full: free space or raise the quota (Get-MailboxStatistics, "
            "ProhibitSendReceiveQuota). Some devices retry in a loop on 507: look for a request "
            "storm from this device.",
            "HTTP 507 Insufficient Storage: the mailbox is over its quota");
        return;
    default:
        break;
    }
    add(em, "http-status", st >= 400 ? ET_SEV_ERROR : ET_SEV_WARNING,
        "Review the response (eastrace show FILE N) and the IIS log's sc-status, "
        "sc-substatus and Error for this request.",
        "HTTP %d for %s%s%s", st, v->cmd ? v->cmd : "the request", meaning ? ": " : "",
        meaning ? meaning : "");
}

static const char *status_rule(const char *root, long code)
{
    if (strcmp(root, "Sync") == 0)
        return "sync-status";
    if (strcmp(root, "Ping") == 0)
        return "ping-status";
    if (strcmp(root, "SendMail") == 0 || strcmp(root, "SmartReply") == 0 ||
        strcmp(root, "SmartForward") == 0)
        return "sendmail-status";
    if (strcmp(root, "Provision") == 0)
        return "provision-status";
    if (strncmp(root, "Folder", 6) == 0)
        return "folder-status";
    if (code >= 101 && code <= 184)
        return "common-status";
    return "command-status";
}

static enum et_severity sev_of(int table_sev)
{
    switch (table_sev) {
    case ET_EAS_SEV_ERROR: return ET_SEV_ERROR;
    case ET_EAS_SEV_TRANSIENT:
    case ET_EAS_SEV_RECOVER: return ET_SEV_WARNING;
    default: return ET_SEV_WARNING;
    }
}

static void status_finding(struct emit *em, const char *root, enum kcmd rk, const char *parent,
                           long code)
{
    const struct et_view *v = em->v;
    int tsev;
    if (parent == NULL && rk != K_NONE && rk != K_OTHER && code >= 0 && code < 256) {
        signed char *c = &em->an->top_sev[rk][code];
        if (*c == 0)
            *c = (signed char)(et_eas_status_severity(root, NULL, (int)code) + 1);
        tsev = *c - 1;
    } else {
        tsev = et_eas_status_severity(root, parent, (int)code);
    }
    if (tsev == ET_EAS_SEV_SUCCESS)
        return;
    const struct et_eas_status *s = et_eas_status_lookup(root, parent, (int)code);
    const char *rule = status_rule(root, code);
    const char *name = s ? s->name : "unknown status";
    const char *meaning = s && s->meaning ? s->meaning : "not in the MS-ASCMD tables";
    const char *next = NEXT_SYNC_STATUS;
    enum et_severity sev = sev_of(tsev);
    char where[160] = "";

    if (strcmp(root, "Sync") != 0) {
        /* The protocol document of this command, not Sync's. */
        next = et_arena_printf(em->a,
                               "Look up the Status in MS-ASCMD %s (the %s command response); "
                               "find the request that caused it (eastrace show FILE N) and the "
                               "device's requests before it (eastrace replay --device ID).",
                               root, root);
        if (next == NULL) {
            em->failed = 1;
            return;
        }
    }
    if (strcmp(rule, "sendmail-status") == 0) {
        if (code == 120 || code == 129)
            next = NEXT_SENDMAIL_BLOCKED;
        else if (code == 126)
            next = NEXT_SENDMAIL_DISABLED;
        else
            next = NEXT_SENDMAIL_OTHER;
        sev = ET_SEV_ERROR;
    } else if (strcmp(rule, "ping-status") == 0) {
        if (code == 5) {
            if (v->heartbeat_req >= 0 && v->heartbeat_resp > 0)
                snprintf(where, sizeof(where), " (device asked %ld s; server allows %ld s)",
                         v->heartbeat_req, v->heartbeat_resp);
            else if (v->heartbeat_req >= 0)
                snprintf(where, sizeof(where), " (device asked %ld s)", v->heartbeat_req);
            next = "Normal once: the server gave its limit and the device should send its next "
                   "Ping within it (heartbeat-range warns when it does not). If it repeats, "
                   "set the device's heartbeat within the server's range and check firewall "
                   "and load balancer idle timeouts.";
        } else if (code == 6) {
            if (v->ping_folders >= 0 && v->max_folders >= 0)
                snprintf(where, sizeof(where), " (device asked %ld folders; server allows %ld)",
                         v->ping_folders, v->max_folders);
            next = "The device monitors more folders than the server allows (MaxFolders): "
                   "reduce the folders pushed on the device or raise the limit.";
        } else if (code == 7) {
            next = "The device must send FolderSync; if Ping 7 repeats, the folder hierarchy "
                   "keeps changing or FolderSync fails: look at its FolderSync responses.";
        } else if (code == 3 || code == 4) {
            next = "The Ping request was incomplete or malformed (a device-side problem): the "
                   "device should send another full Ping; update the device's mail app if it "
                   "repeats.";
        } else {
            next = "A server-side error: retry; if it repeats, check the server's event logs "
                   "and the mailbox's health.";
        }
        if (sev < ET_SEV_WARNING)
            sev = ET_SEV_WARNING;
        /* Status 5 is the server telling the device its limit: a device that obeys it is
         * healthy, so the exchange itself is information. */
        if (code == 5)
            sev = ET_SEV_INFO;
    } else if (strcmp(rule, "provision-status") == 0 || (code >= 142 && code <= 144)) {
        next = NEXT_PROVISION;
    } else if (strcmp(rule, "sync-status") == 0) {
        if (code == 3)
            next = "The server does not know the SyncKey the device sent: the device must "
                   "resync the folder from SyncKey 0 (all items download again). If it "
                   "repeats, see synckey-reset-loop.";
        else if (code == 12)
            next = "The folder hierarchy changed: the device must send FolderSync. If this "
                   "repeats, look at the FolderSync responses.";
        else if (code == 4 || code == 6)
            next = "The request was malformed or could not be converted (a device-side "
                   "problem): look at the request (eastrace show FILE N) and update the "
                   "device's mail app.";
    }
    if (parent != NULL && strcmp(parent, root) != 0 && strcmp(parent, "Collection") != 0)
        snprintf(where + strlen(where), sizeof(where) - strlen(where), " in %s", parent);
    add(em, rule, sev, next, "%s Status %ld = %s: %s%s", root, code, name, meaning, where);
}

static void rule_statuses(struct emit *em)
{
    const struct et_view *v = em->v;
    const char *root = v->resp_root ? v->resp_root : v->cmd;
    enum kcmd rk;

    if (root == NULL)
        return;
    rk = root == v->cmd ? em->cmd : kcmd_of(root);
    /* Sync collections: one finding each, naming the collection and the SyncKey sent. */
    for (size_t i = 0; i < v->nstatus; i++) {
        const char *parent = v->status_parent[i];
        if (rk == K_SYNC && parent != NULL && strcmp(parent, "Collection") == 0)
            continue; /* reported per collection below */
        status_finding(em, root, rk, parent, v->statuses[i]);
    }
    if (rk == K_SYNC) {
        for (size_t i = 0; i < v->ncolls; i++) {
            const struct et_view_collection *c = &v->colls[i];
            const struct et_eas_status *s;
            int tsev;
            if (c->status < 0 || (em->x->source == ET_SRC_IIS && c->collection_id == NULL))
                continue;
            tsev = et_eas_status_severity("Sync", "Collection", (int)c->status);
            if (tsev == ET_EAS_SEV_SUCCESS)
                continue;
            s = et_eas_status_lookup("Sync", "Collection", (int)c->status);
            char lbl[320];
            add(em, "sync-status", sev_of(tsev),
                c->status == 3 ? "The server does not know the SyncKey: the device must resync "
                                 "the folder from SyncKey 0. If it repeats, see "
                                 "synckey-reset-loop."
                : c->status == 12 ? "The folder hierarchy changed: the device must send "
                                    "FolderSync first."
                                  : NEXT_SYNC_STATUS,
                "Sync Status %ld = %s for collection %s (SyncKey sent %s): %s", c->status,
                s ? s->name : "unknown", coll_label(em->d, c->collection_id, lbl, sizeof(lbl)),
                c->sync_key ? c->sync_key : "?", s && s->meaning ? s->meaning : "");
        }
    }
}

static void rule_server_error(struct emit *em)
{
    const struct et_view *v = em->v;
    if (v->server_error == NULL)
        return;
    if (v->throttled) {
        add(em, "throttling", ET_SEV_WARNING, NEXT_THROTTLE,
            "the server throttled %s: %s", v->cmd ? v->cmd : "the request", v->server_error);
        return;
    }
    add(em, "server-error", ET_SEV_WARNING,
        "Look the error up with the request's Status and sc-status (eastrace iis --report "
        "eas-errors); many are self-explanatory (MailboxQuotaExceeded, "
        "DeviceIsBlockedForThisUser, UserDisabledForSync).",
        "Exchange logged an error for %s: %s", v->cmd ? v->cmd : "the request", v->server_error);
}

/* ---- pattern rules -------------------------------------------------------------------- */

static void pattern_storm(struct emit *em, struct et_analyzer *an, int64_t t)
{
    struct dev *d = em->d;
    unsigned window_count, len = d->ring_len;
    int64_t oldest;

    if (t <= 0)
        return;
    {
        /* Keep count of the places where the ring goes back in time, so that a ring in time
         * order (a log, nearly always) is counted from its newest end only. */
        unsigned p = d->ring_pos, nx = p + 1 == len ? 0 : p + 1, pv = p == 0 ? len - 1 : p - 1;
        if (len > 1 && d->ring[nx] < d->ring[p])
            d->ring_inv--; /* the oldest entry leaves: its link to the next one goes */
        d->ring[p] = t;
        if (len > 1 && t < d->ring[pv])
            d->ring_inv++;
        d->ring_pos = nx;
    }
    /* The oldest of the last ring_len requests sits at ring_pos now. */
    oldest = d->ring[d->ring_pos];
    if (an->o.no_rates && !d->storm_active) {
        /* Only an active storm reads the count (to end); nobody reads the rate. */
        window_count = 0;
        d->win_valid = 0;
    } else if (d->ring_inv == 0) {
        /* In time order the entries within the window are the newest ones, and as time only
         * goes forward they only leave it: the count is the last one plus this request, less
         * the oldest ones that fell out (amortized constant time). */
        unsigned w = d->win_valid ? d->win + 1 : len, newest = d->ring_pos == 0 ? len - 1
                                                                              : d->ring_pos - 1;
        if (w > len)
            w = len;
        while (w > 0) {
            unsigned i = newest >= w - 1 ? newest - (w - 1) : newest + len - (w - 1);
            int64_t rt = d->ring[i];
            if (rt > 0 && t - rt < STORM_WINDOW_US)
                break;
            w--;
        }
        d->win = w;
        d->win_valid = 1;
        window_count = w;
    } else {
        /* A ring out of time order is counted whole: the entries in (lo, t], lo at least 0
         * (empty entries are 0), branch-free in four independent sums. */
        const int64_t lo = t > STORM_WINDOW_US ? t - STORM_WINDOW_US : 0, *r = d->ring;
        unsigned c0 = 0, c1 = 0, c2 = 0, c3 = 0, i = 0;
        for (; i + 4 <= len; i += 4) {
            c0 += (unsigned)((r[i] > lo) & (r[i] <= t));
            c1 += (unsigned)((r[i + 1] > lo) & (r[i + 1] <= t));
            c2 += (unsigned)((r[i + 2] > lo) & (r[i + 2] <= t));
            c3 += (unsigned)((r[i + 3] > lo) & (r[i + 3] <= t));
        }
        for (; i < len; i++)
            c0 += (unsigned)((r[i] > lo) & (r[i] <= t));
        window_count = c0 + c1 + c2 + c3;
        d->win_valid = 0;
    }
    if (window_count > d->st.max_per_minute && !an->o.no_rates)
        d->st.max_per_minute = window_count;
    if (oldest > 0 && t - oldest < STORM_WINDOW_US) {
        if (!d->storm_active) {
            d->storm_active = 1;
            d->storm_count++;
            add(em, "request-storm", ET_SEV_WARNING, NEXT_STORM,
                "device %s sent more than %u requests within 60 s: a request storm drains the "
                "battery and can exhaust server resources for everyone",
                d->st.device, an->o.storm_per_minute);
        }
    } else if (window_count <= an->o.storm_per_minute / 2) {
        d->storm_active = 0;
    }
}

static void count_day(struct dev *d, int64_t t)
{
    int64_t day;
    if (t <= 0)
        return;
    day = t / DAY_US;
    for (unsigned i = 0; i < d->ndays; i++) {
        if (d->days[i].day == day) {
            d->days[i].count++;
            return;
        }
    }
    if (d->ndays < DEV_MAX_DAYS) {
        if (d->ndays == d->capdays) {
            unsigned nc = d->capdays ? d->capdays * 2 : 2;
            struct day_count *nd = et_realloc(d->days, ET_MIN(nc, DEV_MAX_DAYS) * sizeof(*nd));
            if (nd == NULL)
                return; /* the day goes uncounted */
            d->days = nd;
            d->capdays = ET_MIN(nc, DEV_MAX_DAYS);
        }
        d->days[d->ndays].day = day;
        d->days[d->ndays].count = 1;
        d->ndays++;
    }
}

static int key_is_zero(const char *k)
{
    return k != NULL && strcmp(k, "0") == 0;
}

/* The answer gave the device a key for this collection: HTTP 200 with a non-zero SyncKey
 * and a success Status, or (IIS lines carry no keys) Status 1 logged for it. */
static int key_issued(const struct et_view *v, const struct et_view_collection *vc)
{
    if (v->http_status != 200)
        return 0;
    if (vc->new_sync_key != NULL)
        return !key_is_zero(vc->new_sync_key) && vc->status <= 1;
    return !v->has_resp_body && vc->status == 1;
}

static void pattern_synckeys(struct emit *em, struct et_analyzer *an)
{
    const struct et_view *v = em->v;
    struct dev *d = em->d;
    char lbl[320];

    for (size_t i = 0; i < v->ncolls; i++) {
        const struct et_view_collection *vc = &v->colls[i];
        struct coll_state *c;
        if (vc->sync_key == NULL)
            continue;
        c = get_coll(an, d, vc->collection_id);
        if (c == NULL)
            continue; /* more collections than tracked per device: those go unwatched */
        if (key_is_zero(vc->sync_key)) {
            /* A SyncKey 0 is a reset only when the server had issued a key: the device's
             * retries of a first sync answered 449, 401, 404 or 5xx never got one. */
            if (c->issued) {
                c->zero_count++;
                c->fives_total += d->fives_since_reset;
            }
            c->issued = 0;
            if (c->zero_count >= an->o.synckey0_repeat && !c->zero_reported) {
                c->zero_reported = 1;
                add(em, "synckey-reset-loop", ET_SEV_ERROR, NEXT_RESET_LOOP,
                    "device %s sent SyncKey 0 for %s %u times: it keeps resyncing the folder "
                    "from scratch (every item downloads again)%s",
                    d->st.device,
                    c->id ? (strcmp(c->id, "FolderSync") == 0
                                 ? "the folder hierarchy"
                                 : coll_label(d, c->id, lbl, sizeof(lbl)))
                          : "a collection",
                    c->zero_count,
                    c->fives_total ? "; HTTP 5xx answers came before the resyncs, a known "
                                     "trigger"
                                   : "");
            }
            skey_set(&c->last_key, NULL);
            c->repeat = 0;
        } else if (skey_get(&c->last_key) != NULL &&
                   strcmp(skey_get(&c->last_key), vc->sync_key) == 0) {
            /* The same key again counts only when the server had moved on (answered a new
             * key) or failed: an empty "no changes" answer keeps the key legitimately. */
            const char *pend = skey_get(&c->pending_new_key);
            int advanced = pend != NULL && strcmp(pend, vc->sync_key) != 0;
            int failed = c->last_status > 1;
            if (advanced || failed) {
                c->repeat++;
                if (c->repeat + 1 >= an->o.synckey_repeat && !c->repeat_reported) {
                    c->repeat_reported = 1;
                    add(em, "synckey-repeat", ET_SEV_WARNING, NEXT_KEY_REPEAT,
                        "device %s sent SyncKey %s for collection %s %u times although the "
                        "server %s: the folder is not progressing",
                        d->st.device, vc->sync_key, coll_label(d, c->id, lbl, sizeof(lbl)),
                        c->repeat + 1,
                        failed ? "answered an error Status" : "answered a new SyncKey");
                }
            }
        } else {
            skey_set(&c->last_key, vc->sync_key);
            c->repeat = 0;
            c->repeat_reported = 0;
        }
        if (!key_is_zero(vc->sync_key))
            c->issued = 1;
        if (key_issued(v, vc))
            c->issued = 1;
        skey_set(&c->pending_new_key, vc->new_sync_key);
        c->last_status = vc->status;
    }
    if (v->ncolls > 0) {
        for (size_t i = 0; i < v->ncolls; i++)
            if (key_is_zero(v->colls[i].sync_key)) {
                d->fives_since_reset = 0;
                break;
            }
    }
}

static int is_provisioning_answer(const struct et_view *v)
{
    if (v->http_status == 449)
        return 1;
    for (size_t i = 0; i < v->nstatus; i++)
        if (v->statuses[i] >= 142 && v->statuses[i] <= 144)
            return 1;
    return 0;
}

static void pattern_provisioning(struct emit *em, struct et_analyzer *an)
{
    const struct et_view *v = em->v;
    struct dev *d = em->d;

    if (is_provisioning_answer(v)) {
        d->provision_run++;
        if (d->provision_run >= an->o.provision_repeat && !d->provision_reported) {
            d->provision_reported = 1;
            add(em, "provisioning-loop", ET_SEV_ERROR, NEXT_PROVISION,
                "device %s was asked to provision %u times without syncing in between (HTTP "
                "449 or Status 142-144): it does not keep the policy",
                d->st.device, d->provision_run);
        }
    } else if (v->http_status == 200 && em->cmd != K_NONE && em->cmd != K_PROVISION) {
        d->provision_run = 0;
        d->provision_reported = 0;
    }
}

static void pattern_auth(struct emit *em, struct et_analyzer *an)
{
    const struct et_view *v = em->v;
    struct dev *d = em->d;
    int has_auth = et_headers_get(&em->x->req.headers, "Authorization") != NULL ||
                   em->x->source == ET_SRC_IIS;

    if ((v->http_status == 401 && has_auth) || v->http_status == 403) {
        d->auth_run++;
        if (d->auth_run >= an->o.auth_repeat && !d->auth_reported) {
            d->auth_reported = 1;
            add(em, "auth-failures", ET_SEV_ERROR,
                v->http_status == 401 ? NEXT_AUTH : NEXT_FORBIDDEN,
                "device %s was refused %u times in a row (HTTP %d): besides failing to sync it "
                "can lock the account out",
                d->st.device, d->auth_run, v->http_status);
        }
    } else if (v->http_status == 200) {
        d->auth_run = 0;
        d->auth_reported = 0;
    }
}

/* The server's verdict on the heartbeat a Ping (or Sync Wait) asked for: 1 accepted (Ping
 * Status 1 or 2, a Sync answered without Status 14), -1 refused (Ping Status 5, Sync Status
 * 14), 0 unknown (no answer, or no Status to read). */
static int heartbeat_verdict(const struct emit *em)
{
    const struct et_view *v = em->v;
    int ping = em->cmd == K_PING;

    if (v->http_status != 200)
        return 0;
    if (ping) {
        if (v->top_status == 5)
            return -1;
        return v->top_status == 1 || v->top_status == 2 ? 1 : 0;
    }
    /* A Sync with Wait: answered 200 with changes or, empty, with none. */
    return v->top_status == 14 ? -1 : 1;
}

static void pattern_heartbeat(struct emit *em, struct et_analyzer *an)
{
    const struct et_view *v = em->v;
    struct dev *d = em->d;
    long lo = an->o.heartbeat_min, hi = an->o.heartbeat_max;
    int verdict;

    if (v->heartbeat_req < 0)
        return;
    verdict = heartbeat_verdict(em);
    if (d->hb_refused_req >= 0) {
        /* The previous heartbeat was refused with the server's limit: this one should keep
         * to it. Asking the same or further out again means the device ignores the server. */
        long limit = d->server_hb, prev = d->hb_refused_req;
        int ignored = verdict < 0 ||
                      (limit > 0 && prev > limit && v->heartbeat_req > limit) ||
                      (limit > 0 && prev < limit && v->heartbeat_req < limit);
        d->hb_refused_req = -1;
        if (ignored && !d->heartbeat_reported) {
            d->heartbeat_reported = 1;
            if (limit > 0)
                add(em, "heartbeat-range", ET_SEV_WARNING, NEXT_HEARTBEAT,
                    "device %s asked for a heartbeat of %ld s after the server refused %ld s "
                    "and gave its limit of %ld s (Status 5): it does not keep to the server's "
                    "range",
                    d->st.device, v->heartbeat_req, prev, limit);
            else
                add(em, "heartbeat-range", ET_SEV_WARNING, NEXT_HEARTBEAT,
                    "device %s asked for a heartbeat of %ld s after the server refused %ld s: "
                    "it does not keep to the server's range",
                    d->st.device, v->heartbeat_req, prev);
            return;
        }
    }
    if (verdict < 0) {
        if (v->heartbeat_resp > 0)
            d->server_hb = v->heartbeat_resp;
        d->hb_refused_req = v->heartbeat_req;
        return;
    }
    /* The server accepted it: its own range is what counts, not the usual 60-3540 s. */
    if (verdict > 0 || d->heartbeat_reported)
        return;
    if (v->heartbeat_req < lo || v->heartbeat_req > hi) {
        d->heartbeat_reported = 1;
        add(em, "heartbeat-range", ET_SEV_WARNING, NEXT_HEARTBEAT,
            "device %s asked for a heartbeat of %ld s, outside the usual server range %ld-%ld s "
            "(the server's answer does not say whether it accepted it)",
            d->st.device, v->heartbeat_req, lo, hi);
    }
}

/* ---- folder names --------------------------------------------------------------------- */

static struct folder *find_folder(struct dev *d, const char *id)
{
    for (unsigned i = 0; i < d->nfolders; i++)
        if (strcmp(d->folders[i].id, id) == 0)
            return &d->folders[i];
    return NULL;
}

/* The text of n, at most 255 bytes, NUL-terminated in buf; NULL when n is absent or empty. */
static const char *node_text(const struct et_wbxml_node *n, char *buf, size_t len)
{
    size_t tl;
    const char *t;
    if (n == NULL || (t = et_wbxml_node_text(n, &tl)) == NULL || tl == 0)
        return NULL;
    tl = ET_MIN(tl, len - 1);
    memcpy(buf, t, tl);
    buf[tl] = '\0';
    return buf;
}

static void folders_clear(struct dev *d)
{
    for (unsigned i = 0; i < d->nfolders; i++) {
        et_free(d->folders[i].id);
        et_free(d->folders[i].name);
    }
    d->nfolders = 0;
}

/* Learns the hierarchy from a successful FolderSync answer: Add and Update name a ServerId,
 * Delete forgets it; an answer to SyncKey 0 is the whole hierarchy again. */
static void learn_folders(struct emit *em)
{
    const struct et_view *v = em->v;
    struct dev *d = em->d;
    const struct et_wbxml_node *root = v->resp_doc ? v->resp_doc->root : NULL;
    static const char *const kinds[] = {"Changes/Add", "Changes/Update", "Changes/Delete"};

    if (root == NULL || root->name == NULL || strcmp(root->name, "FolderSync") != 0 ||
        v->top_status != 1)
        return;
    for (size_t i = 0; i < v->ncolls; i++)
        if (v->colls[i].collection_id != NULL &&
            strcmp(v->colls[i].collection_id, "FolderSync") == 0 &&
            key_is_zero(v->colls[i].sync_key))
            folders_clear(d);
    for (int k = 0; k < 3; k++) {
        struct et_wbxml_iter it;
        const struct et_wbxml_node *n;
        et_wbxml_iter_init(&it, root, kinds[k]);
        while ((n = et_wbxml_iter_next(&it)) != NULL) {
            char idb[256], nameb[256];
            const char *id = node_text(et_wbxml_find(n, "ServerId"), idb, sizeof(idb));
            const char *name = k < 2 ? node_text(et_wbxml_find(n, "DisplayName"), nameb,
                                                 sizeof(nameb))
                                     : NULL;
            struct folder *f;
            char *nm;
            if (id == NULL)
                continue;
            f = find_folder(d, id);
            if (k == 2) {
                if (f != NULL) {
                    et_free(f->id);
                    et_free(f->name);
                    *f = d->folders[--d->nfolders];
                }
                continue;
            }
            /* Names are copied only when new or changed: a device that repeats FolderSync
             * costs nothing, and memory follows the hierarchy, not the input. */
            if (name == NULL || (f != NULL && strcmp(f->name, name) == 0))
                continue;
            if ((nm = et_strdup(name)) == NULL) {
                em->failed = 1;
                return;
            }
            if (f != NULL) {
                et_free(f->name);
                f->name = nm;
                continue;
            }
            if (d->nfolders == d->capfolders) {
                unsigned nc = d->capfolders ? d->capfolders * 2 : 32;
                struct folder *nf;
                if (nc > DEV_MAX_FOLDERS) {
                    et_free(nm);
                    continue; /* a hierarchy this large goes partly unnamed */
                }
                nf = et_realloc(d->folders, nc * sizeof(*nf));
                if (nf == NULL) {
                    et_free(nm);
                    em->failed = 1;
                    return;
                }
                d->folders = nf;
                d->capfolders = nc;
            }
            if ((d->folders[d->nfolders].id = et_strdup(id)) == NULL) {
                et_free(nm);
                em->failed = 1;
                return;
            }
            d->folders[d->nfolders].name = nm;
            d->nfolders++;
        }
    }
}

/* Names the view's collections (the one field of the view the analyzer writes, as
 * et_analyzer_feed() documents). */
static void name_collections(struct emit *em, struct dev *d, const struct et_view *cv)
{
    struct et_view *v = (struct et_view *)(uintptr_t)cv;
    for (size_t i = 0; i < v->ncolls; i++) {
        const struct folder *f;
        v->colls[i].folder_name = NULL;
        if (v->colls[i].collection_id == NULL ||
            (f = find_folder(d, v->colls[i].collection_id)) == NULL)
            continue;
        /* Copied into the exchange's arena: a later rename does not touch this view. */
        if ((v->colls[i].folder_name = et_arena_strdup(em->a, f->name)) == NULL)
            em->failed = 1;
    }
}

/* "Inbox (5)" when the name is known, else "5". */
static const char *coll_label(struct dev *d, const char *id, char *buf, size_t len)
{
    const struct folder *f;
    if (id == NULL)
        return "?";
    if (d == NULL || (f = find_folder(d, id)) == NULL)
        return id;
    snprintf(buf, len, "%s (%s)", f->name, id);
    return buf;
}

/* ---- Exchange's own diagnostics --------------------------------------------------------- */

#define NEXT_CAS_MAILBOX                                                                       \
    "The front end could not find the mailbox: it was moved to Exchange Online (the user "     \
    "must use the cloud endpoint: check Autodiscover and the on-premises object, "             \
    "Get-Recipient user | fl RecipientTypeDetails shows RemoteUserMailbox), is not licensed, " \
    "or was disabled or deleted (Get-Mailbox user). Look up the request-id in the front end's " \
    "HttpProxy log (Logging\\HttpProxy\\Eas)."
#define NEXT_CAS_BACKEND                                                                       \
    "The front end could not reach the mailbox's server: check that the mailbox database is "  \
    "mounted and healthy (Get-MailboxDatabaseCopyStatus), the back end named in "              \
    "X-CalculatedBETarget (Test-ServiceHealth, its MSExchangeSyncAppPool), and name resolution " \
    "and port 444 from the front end; the request-id is in the front end's HttpProxy log "     \
    "(Logging\\HttpProxy\\Eas)."
#define NEXT_CAS_OTHER                                                                         \
    "Look up the request-id in the front end's HttpProxy log (Logging\\HttpProxy\\Eas) and the " \
    "named server's IIS log for this time: the ErrorCode and the back end it chose say why the " \
    "request was not served."

static int has_word(const char *s, const char *w)
{
    size_t n = strlen(w);
    for (; s != NULL && *s != '\0'; s++)
        if (et_strncaseeq(s, w, n))
            return 1;
    return 0;
}

/* X-CasErrorCode: which hop failed (front end or back end) and why. */
static void rule_cas_error(struct emit *em)
{
    const struct et_view *v = em->v;
    const struct et_view_exdiag *d = &v->exdiag;
    const char *fe = d->fe_server ? d->fe_server : d->diag_info;
    const char *code = d->cas_error, *next;
    char hop[512], ctx[600], rid[128];

    if (code == NULL || *code == '\0')
        return;
    ctx[0] = rid[0] = '\0';
    if (d->be_server != NULL)
        snprintf(hop, sizeof(hop), "the back end %s failed the request the front end %s passed "
                 "on", d->be_server, fe ? fe : "(unnamed)");
    else
        snprintf(hop, sizeof(hop), "the front end %s could not hand the request to a mailbox "
                 "server%s%s", fe ? fe : "(unnamed)", d->be_target ? "; it chose " : "",
                 d->be_target ? d->be_target : "");
    if (has_word(code, "MailboxGuid") || has_word(code, "UserNotFound") ||
        has_word(code, "MailboxNotFound") || has_word(code, "MailboxNotExist") ||
        has_word(code, "OrganizationNotFound") || has_word(code, "NotLicensed"))
        next = NEXT_CAS_MAILBOX;
    else if (has_word(code, "Server") || has_word(code, "Database") ||
             has_word(code, "Locator") || has_word(code, "BE"))
        next = NEXT_CAS_BACKEND;
    else
        next = NEXT_CAS_OTHER;
    if (d->failure_context != NULL)
        snprintf(ctx, sizeof(ctx), "; X-FailureContext: %.500s", d->failure_context);
    if (d->request_id != NULL)
        snprintf(rid, sizeof(rid), "; request-id %.80s", d->request_id);
    add(em, "cas-error", ET_SEV_ERROR, next,
        "Exchange refused %s with X-CasErrorCode %s (HTTP %d): %s%s%s",
        v->cmd ? v->cmd : "the request", code, v->http_status, hop, ctx, rid);
}

/* ---- long polls, back-off, slow answers, hierarchy changes, device access --------------- */

static int is_long_poll(const struct emit *em)
{
    return em->v->heartbeat_req > 0 && (em->cmd == K_PING || em->cmd == K_SYNC);
}

/* The answer did not come from Exchange: none at all (a reset, a timeout), a 502/504 of a
 * proxy, or an empty 200 without any of the headers Exchange sends with an EAS answer. */
static const char *non_exchange_answer(const struct et_exchange *x, const struct et_view *v)
{
    const struct et_headers *h = &x->resp.headers;
    if (!x->has_response || v->http_status == 0)
        return x->err.code != 0 ? "the connection was cut (no answer)" : NULL;
    if (x->err.code != 0)
        return "the connection to the server was cut (eastrace answered for it)";
    if (v->http_status == 504 || v->http_status == 502)
        return v->http_status == 504 ? "HTTP 504 from a proxy" : "HTTP 502 from a proxy";
    if (v->http_status == 200 && x->resp.body.len == 0 && !x->resp.body.absent) {
        for (size_t i = 0; i < h->n; i++)
            if (et_strncaseeq(h->v[i].name, "X-MS-", 5) ||
                et_strcaseeq(h->v[i].name, "MS-Server-ActiveSync") ||
                et_strcaseeq(h->v[i].name, "X-FEServer") ||
                et_strcaseeq(h->v[i].name, "X-BEServer") ||
                et_strcaseeq(h->v[i].name, "request-id"))
                return NULL;
        return "an empty HTTP 200 without Exchange's headers";
    }
    return NULL;
}

#define NEXT_LONGPOLL_CUT                                                                      \
    "A firewall, load balancer or reverse proxy between the device and Exchange drops idle "   \
    "connections at about this time and cuts Direct Push: raise its idle timeout above the "   \
    "longest heartbeat the server allows (MaxHeartbeatInterval, 59 minutes by default), or "  \
    "lower the server's MaxHeartbeatInterval below it; the Ping then ends with Status 1 "       \
    "instead of being cut."

static void pattern_longpoll_cut(struct emit *em, struct et_analyzer *an)
{
    const struct et_exchange *x = em->x;
    const struct et_view *v = em->v;
    struct dev *d = em->d;
    int64_t dur, hb_us, tol, sum = 0;
    const char *why;
    unsigned n, close = 0;

    if (!is_long_poll(em) || x->source == ET_SRC_IIS || x->source == ET_SRC_MAILBOX)
        return;
    dur = et_exchange_duration_us(x);
    hb_us = (int64_t)v->heartbeat_req * 1000000;
    why = non_exchange_answer(x, v);
    if (dur <= 0 || why == NULL || dur >= hb_us - hb_us / 10) {
        if (why == NULL && x->has_response)
            d->ncuts = 0; /* Exchange answered: the run of cuts is over */
        return;
    }
    d->cuts[d->ncuts % CUT_RING] = dur;
    d->ncuts++;
    n = ET_MIN(d->ncuts, CUT_RING);
    /* "About the same": within 10 % (at least 5 s) of this cut. */
    tol = ET_MAX(dur / 10, 5 * 1000000LL);
    for (unsigned i = 0; i < n; i++)
        if (d->cuts[i] >= dur - tol && d->cuts[i] <= dur + tol) {
            close++;
            sum += d->cuts[i];
        }
    if (close < an->o.longpoll_cut_repeat || d->cut_reported)
        return;
    d->cut_reported = 1;
    add(em, "longpoll-cut", ET_SEV_WARNING, NEXT_LONGPOLL_CUT,
        "device %s's %ss keep ending after about %.0f s (%u times) although the heartbeat is "
        "%ld s, with %s: something between the device and Exchange cuts idle connections at "
        "about %.0f s",
        d->st.device, v->cmd, (double)sum / close / 1e6, close, v->heartbeat_req, why,
        (double)sum / close / 1e6);
}

#define NEXT_RETRY_AFTER                                                                       \
    "The device does not wait as long as the server asks (Retry-After, MS-ASHTTP 503) and so " \
    "stays throttled: update its mail app; find what it repeats (eastrace replay --device "     \
    "ID) and check the EAS limits of its throttling policy (Get-ThrottlingPolicy)."

/* Retry-After as seconds (the HTTP-date form is not used by Exchange); -1 when absent. */
static long retry_after_secs(const struct et_exchange *x)
{
    const char *ra = et_headers_get(&x->resp.headers, "Retry-After");
    char *end;
    long s;
    if (ra == NULL)
        return -1;
    s = strtol(ra, &end, 10);
    return end != ra && s > 0 && s < 86400 ? s : -1;
}

static void pattern_retry_after(struct emit *em, int64_t t)
{
    const struct et_exchange *x = em->x;
    struct dev *d = em->d;
    long secs;

    if (d->retry_until > 0 && t > 0) {
        if (t < d->retry_until && !d->retry_reported) {
            d->retry_reported = 1;
            add(em, "retry-after-ignored", ET_SEV_WARNING, NEXT_RETRY_AFTER,
                "device %s sent %s %.1f s before the server's Retry-After of %ld s allowed it",
                d->st.device, em->v->cmd ? em->v->cmd : "a request",
                (double)(d->retry_until - t) / 1e6, d->retry_secs);
        }
        if (t >= d->retry_until)
            d->retry_until = 0;
    }
    if ((secs = retry_after_secs(x)) > 0) {
        int64_t base = et_exchange_end_time(x); /* t is et_exchange_time(x): its last fallback */
        if (base > 0) {
            d->retry_until = base + (int64_t)secs * 1000000;
            d->retry_secs = secs;
            d->retry_reported = 0;
        }
    }
}

#define NEXT_SLOW                                                                              \
    "Look at the server side of this request: the IIS log's time-taken with RpcC/RpcL for the " \
    "device (eastrace iis --report rpc; the guides' \"High RPC counts or latency\" query), the " \
    "mailbox server's health, and file-level anti-virus scanning on the Client Access servers " \
    "(it delays device and CAS performance)."

static void rule_slow(struct emit *em, struct et_analyzer *an)
{
    const struct et_view *v = em->v;
    int64_t dur;

    if (em->cmd == K_NONE || em->cmd == K_PING || is_long_poll(em))
        return;
    dur = et_exchange_duration_us(em->x);
    if (dur < 0 || dur <= (int64_t)an->o.slow_ms * 1000)
        return;
    add(em, "slow-response", ET_SEV_WARNING, NEXT_SLOW,
        "%s took %.1f s (more than %.1f s; not a long poll)", v->cmd, (double)dur / 1e6,
        (double)an->o.slow_ms / 1000.0);
}

#define NEXT_FOLDERSYNC                                                                        \
    "The server said the folder hierarchy changed (MS-ASCMD: Ping Status 7, Sync Status 12) "  \
    "and the device must send FolderSync before it syncs or pings again; it did not. Remove "   \
    "and re-add the account on the device, or update its mail app; look at its FolderSync "    \
    "answers if it sent one earlier."

static int hierarchy_changed(const struct emit *em)
{
    const struct et_view *v = em->v;
    if (em->cmd == K_PING && v->top_status == 7)
        return 7;
    if (em->cmd == K_SYNC) {
        if (v->top_status == 12)
            return 12;
        for (size_t i = 0; i < v->ncolls; i++)
            if (v->colls[i].status == 12)
                return 12;
    }
    return 0;
}

static void pattern_foldersync(struct emit *em, struct et_analyzer *an)
{
    const struct et_view *v = em->v;
    struct dev *d = em->d;
    int hc;

    if (em->cmd == K_NONE)
        return;
    if (em->cmd == K_FOLDERSYNC) {
        d->fs_why = NULL;
        d->fs_after = 0;
    } else if (d->fs_why != NULL &&
               (em->cmd == K_SYNC || em->cmd == K_PING || em->cmd == K_GETITEMESTIMATE)) {
        if (++d->fs_after >= an->o.foldersync_grace) {
            add(em, "foldersync-ignored", ET_SEV_WARNING, NEXT_FOLDERSYNC,
                "device %s sent %u requests (this %s the last) after %s (exchange %llu) "
                "without a FolderSync",
                d->st.device, d->fs_after, v->cmd, d->fs_why,
                (unsigned long long)d->fs_exchange);
            d->fs_why = NULL;
            d->fs_after = 0;
        }
    }
    if ((hc = hierarchy_changed(em)) != 0 && d->fs_why == NULL) {
        d->fs_why = hc == 7 ? "Ping Status 7" : "Sync Status 12";
        d->fs_exchange = em->x->id;
        d->fs_after = 0;
    }
}

#define NEXT_BLOCKED                                                                           \
    "The device is blocked or quarantined by Exchange's device access: check the device "      \
    "access rules that match it (Get-ActiveSyncDeviceAccessRule), the organization's default " \
    "access level (Get-ActiveSyncOrganizationSettings | fl DefaultAccessLevel), the mailbox's " \
    "ActiveSyncBlockedDeviceIDs / ActiveSyncAllowedDeviceIDs (Get-CASMailbox), and the mobile " \
    "device mailbox policy's AllowNonProvisionableDevices for a device that cannot provision; " \
    "a quarantined device is released by allowing it (Set-CASMailbox -ActiveSyncAllowedDeviceIDs)."

static void rule_device_blocked(struct emit *em, struct et_analyzer *an)
{
    const struct et_exchange *x = em->x;
    const struct et_view *v = em->v;
    struct dev *d = em->d;
    /* The typed fact first (an IIS As: or a mailbox-log AccessState, also carried over to the
     * other members of a correlated group), else the source's own field. */
    const char *state = x->facts.access_state != NULL ? x->facts.access_state
                                                     : et_headers_get(&x->meta, "Log-As");
    const char *reason = NULL, *rule = NULL, *err = v->server_error;
    int blocked = 0;
    char what[400];

    if (state == NULL && x->meta.n == 0 && err == NULL) {
        /* Nothing names an access state or an error: only a Status 129 can say blocked. */
        size_t i = 0;
        while (i < v->nstatus && v->statuses[i] != 129)
            i++;
        if (i == v->nstatus)
            return;
    }
    if (state == NULL)
        state = et_headers_get(&x->meta, "AccessState");
    if (x->source == ET_SRC_MAILBOX) {
        reason = et_headers_get(&x->meta, "AccessStateReason");
        rule = et_headers_get(&x->meta, "DeviceAccessControlRule");
    }
    if (state == NULL)
        state = x->facts.access_state; /* typed: also carried over from a correlated log */
    if (state != NULL && *state == '\0')
        state = NULL;
    if (state != NULL && (et_strncaseeq(state, "Blocked", 7) ||
                          et_strncaseeq(state, "Quarantined", 11)))
        blocked = 1;
    if (err != NULL && has_word(err, "DeviceIsBlockedForThisUser"))
        blocked = 1;
    if (err != NULL && has_word(err, "DeviceNotProvisioned") && state != NULL &&
        !et_strncaseeq(state, "Allowed", 7))
        blocked = 1;
    for (size_t i = 0; !blocked && i < v->nstatus; i++)
        if (v->statuses[i] == 129)
            blocked = 1; /* DeviceIsBlockedForThisUser */
    if (!blocked)
        return;
    snprintf(what, sizeof(what), "%s%s%s%s%s%s%s", state ? "access state " : "",
             state ? state : "", reason ? " (" : "", reason ? reason : "", reason ? ")" : "",
             rule ? ", rule " : "", rule ? rule : "");
    if (what[0] == '\0')
        snprintf(what, sizeof(what), "%s", err ? err : "Status 129 DeviceIsBlockedForThisUser");
    if (d->blocked_state != NULL && strcmp(d->blocked_state, what) == 0)
        return; /* once per device and state */
    d->blocked_state = et_arena_strdup(an->arena, what);
    add(em, "device-blocked", ET_SEV_ERROR, NEXT_BLOCKED,
        "device %s is blocked or quarantined by Exchange: %s%s%s", d->st.device, what,
        err && state ? "; error " : "", err && state ? err : "");
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
    em.cmd = kcmd_of(v->cmd);
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

    name_collections(&em, d, v);
    rule_exchange_error(&em);
    rule_http_status(&em);
    rule_cas_error(&em);
    if (v->is_eas) {
        pattern_retry_after(&em, t);
        rule_statuses(&em);
        rule_server_error(&em);
        rule_device_blocked(&em, an);
        rule_slow(&em, an);
        pattern_longpoll_cut(&em, an);
        pattern_foldersync(&em, an);
        learn_folders(&em);
        if (v->throttled && v->http_status != 503 && v->server_error == NULL)
            add(&em, "throttling", ET_SEV_WARNING, NEXT_THROTTLE,
                "the server is throttling the device: %s", v->throttle);
        pattern_storm(&em, an, t);
        count_day(d, t);
        pattern_synckeys(&em, an);
        pattern_provisioning(&em, an);
        pattern_auth(&em, an);
        pattern_heartbeat(&em, an);
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
