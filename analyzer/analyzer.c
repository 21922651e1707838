/*
 * The analyzer: per-exchange rules (HTTP status, command Status values, failures) and pattern
 * rules over small per-device state (SyncKey 0 loops, repeated SyncKeys, request storms,
 * provisioning loops, repeated authentication failures, heartbeats out of range, usage per
 * day). Every finding says what happened, why it matters, and the next step from the
 * troubleshooting guides. Rule ids are stable: docs/rules.md.
 *
 * Per-device state (struct dev) lives in a hash table keyed by device id:
 *
 *   buckets[hash(device)] -> dev -> dev ...        devs[] keeps first-seen order
 *   dev: stats, ring of recent request times (storm), collections[] (SyncKey state),
 *        runs (provisioning, auth failures, 5xx), per-day counts
 */
#include "eastrace/analyzer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEV_MAX_COLLS 64
#define DEV_MAX_DAYS 62
#define STORM_WINDOW_US (60LL * 1000000)
#define DAY_US (86400LL * 1000000)

struct coll_state {
    char *id;              /* collection id ("FolderSync" for the hierarchy); NULL: unnamed */
    char *last_key;        /* last non-zero SyncKey sent */
    unsigned repeat;       /* times last_key was sent in a row without being advanced */
    unsigned zero_count;   /* SyncKey 0 sends */
    unsigned zero_reported;/* the loop finding was made */
    unsigned repeat_reported;
    unsigned fives_before_zero; /* HTTP 5xx answers to this device since its last SyncKey 0 */
    unsigned fives_total;  /* 5xx answers that came right before a SyncKey 0 */
    char *pending_new_key; /* the SyncKey the server answered last time */
    long last_status;
};

struct day_count {
    int64_t day; /* days since the epoch */
    unsigned count;
};

struct dev {
    struct dev *hnext;
    struct et_device_stats st;
    int64_t *ring; /* times of the last storm_per_minute + 1 requests */
    unsigned ring_len, ring_pos;
    unsigned storm_active;
    unsigned storm_count;    /* storms found */
    struct coll_state colls[DEV_MAX_COLLS];
    unsigned ncolls;
    unsigned provision_run;  /* provisioning answers since the last normal success */
    unsigned provision_reported;
    unsigned auth_run;       /* 401/403 in a row */
    unsigned auth_reported;
    unsigned fives_since_reset; /* 5xx since the last SyncKey 0 of any collection */
    unsigned heartbeat_reported;
    long server_hb;          /* HeartbeatInterval the server answered (Ping 5), -1 */
    struct day_count days[DEV_MAX_DAYS];
    unsigned ndays;
};

struct et_analyzer {
    struct et_analyzer_opts o;
    struct et_arena *arena; /* device state strings and summary findings */
    struct dev **buckets;
    size_t nbuckets;
    struct dev **devs;      /* first-seen order */
    size_t ndevs, capdevs;
    struct et_device_stats *stats_out;
};

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
}

static const char *const cmd_slots[8] = {"Sync", "Ping", "FolderSync", "SendMail",
                                         "Provision", "ItemOperations", "Options", "other"};

const char *et_analyzer_cmd_slot_name(unsigned slot)
{
    return slot < 8 ? cmd_slots[slot] : "other";
}

static unsigned cmd_slot(const char *cmd, const char *method)
{
    if (cmd == NULL)
        return method != NULL && et_strcaseeq(method, "OPTIONS") ? 6 : 7;
    if (strcmp(cmd, "Sync") == 0)
        return 0;
    if (strcmp(cmd, "Ping") == 0)
        return 1;
    if (strcmp(cmd, "FolderSync") == 0)
        return 2;
    if (strcmp(cmd, "SendMail") == 0 || strcmp(cmd, "SmartReply") == 0 ||
        strcmp(cmd, "SmartForward") == 0)
        return 3;
    if (strcmp(cmd, "Provision") == 0)
        return 4;
    if (strcmp(cmd, "ItemOperations") == 0)
        return 5;
    return 7;
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
    an->arena = et_arena_new(0);
    an->nbuckets = 256;
    an->buckets = et_calloc(an->nbuckets, sizeof(*an->buckets));
    if (an->arena == NULL || an->buckets == NULL) {
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
            et_free(d->colls[k].last_key);
            et_free(d->colls[k].pending_new_key);
        }
        et_free(d->ring);
        et_free(d);
    }
    et_free(an->devs);
    et_free(an->buckets);
    et_free(an->stats_out);
    et_arena_free(an->arena);
    et_free(an);
}

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ULL;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

static int grow_buckets(struct et_analyzer *an)
{
    size_t n = an->nbuckets * 2;
    struct dev **nb = et_calloc(n, sizeof(*nb));
    if (nb == NULL)
        return ET_ENOMEM;
    for (size_t i = 0; i < an->ndevs; i++) {
        struct dev *d = an->devs[i];
        size_t b = hash_str(d->st.device) & (n - 1);
        d->hnext = nb[b];
        nb[b] = d;
    }
    et_free(an->buckets);
    an->buckets = nb;
    an->nbuckets = n;
    return 0;
}

static struct dev *get_dev(struct et_analyzer *an, const char *device)
{
    size_t b = hash_str(device) & (an->nbuckets - 1);
    struct dev *d;

    for (d = an->buckets[b]; d != NULL; d = d->hnext)
        if (strcmp(d->st.device, device) == 0)
            return d;
    if (an->ndevs == an->capdevs) {
        size_t n = an->capdevs ? an->capdevs * 2 : 16;
        struct dev **nd = et_realloc(an->devs, n * sizeof(*nd));
        if (nd == NULL)
            return NULL;
        an->devs = nd;
        an->capdevs = n;
    }
    d = et_calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->st.device = et_arena_strdup(an->arena, device);
    d->ring_len = an->o.storm_per_minute + 1;
    d->ring = et_calloc(d->ring_len, sizeof(*d->ring));
    d->server_hb = -1;
    if (d->st.device == NULL || d->ring == NULL) {
        et_free(d->ring);
        et_free(d);
        return NULL;
    }
    d->hnext = an->buckets[b];
    an->buckets[b] = d;
    an->devs[an->ndevs++] = d;
    if (an->ndevs > an->nbuckets * 2 && grow_buckets(an) != 0)
        return d; /* a slower table still works */
    return d;
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
    "pin certificates are tunnelled without interception from now on."

static void rule_exchange_error(struct emit *em)
{
    const struct et_exchange *x = em->x;
    const char *next;
    enum et_severity sev = ET_SEV_ERROR;

    if (x->err.code == 0)
        return;
    if (x->source == ET_SRC_SAZ || x->source == ET_SRC_HAR || x->source == ET_SRC_MAILBOX ||
        x->source == ET_SRC_IIS || x->err.stage == ET_STAGE_DECODE) {
        /* A file that another tool wrote: what is wrong is the record, not the traffic. */
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
    const char *meaning = et_eas_http_status_meaning(st);
    const char *loc = et_headers_get(&x->resp.headers, "X-MS-Location");
    const int has_auth = et_headers_get(&x->req.headers, "Authorization") != NULL;

    if (st == 0 || st == 200 || st == 100)
        return;
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

static void status_finding(struct emit *em, const char *root, const char *parent, long code)
{
    const struct et_view *v = em->v;
    const struct et_eas_status *s = et_eas_status_lookup(root, parent, (int)code);
    int tsev = et_eas_status_severity(root, parent, (int)code);
    const char *rule = status_rule(root, code);
    const char *name = s ? s->name : "unknown status";
    const char *meaning = s && s->meaning ? s->meaning : "not in the MS-ASCMD tables";
    const char *next = NEXT_SYNC_STATUS;
    enum et_severity sev = sev_of(tsev);
    char where[160] = "";

    if (tsev == ET_EAS_SEV_SUCCESS)
        return;
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
            snprintf(where, sizeof(where), " (device asked %ld s; server allows %ld s)",
                     v->heartbeat_req, v->heartbeat_resp);
            next = "Set the device's heartbeat within the server's range (the server's answer "
                   "gives the limit); check firewall and load balancer idle timeouts.";
        } else if (code == 6) {
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

    if (root == NULL)
        return;
    /* Sync collections: one finding each, naming the collection and the SyncKey sent. */
    for (size_t i = 0; i < v->nstatus; i++) {
        const char *parent = v->status_parent[i];
        if (strcmp(root, "Sync") == 0 && parent != NULL && strcmp(parent, "Collection") == 0)
            continue; /* reported per collection below */
        status_finding(em, root, parent, v->statuses[i]);
    }
    if (strcmp(root, "Sync") == 0) {
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
            add(em, "sync-status", sev_of(tsev),
                c->status == 3 ? "The server does not know the SyncKey: the device must resync "
                                 "the folder from SyncKey 0. If it repeats, see "
                                 "synckey-reset-loop."
                : c->status == 12 ? "The folder hierarchy changed: the device must send "
                                    "FolderSync first."
                                  : NEXT_SYNC_STATUS,
                "Sync Status %ld = %s for collection %s (SyncKey sent %s): %s", c->status,
                s ? s->name : "unknown", c->collection_id ? c->collection_id : "?",
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
    unsigned window_count;
    int64_t oldest;

    if (t <= 0)
        return;
    d->ring[d->ring_pos] = t;
    d->ring_pos = (d->ring_pos + 1) % d->ring_len;
    /* The oldest of the last ring_len requests sits at ring_pos now. */
    oldest = d->ring[d->ring_pos];
    window_count = 0;
    for (unsigned i = 0; i < d->ring_len; i++)
        if (d->ring[i] > 0 && t - d->ring[i] < STORM_WINDOW_US && d->ring[i] <= t)
            window_count++;
    if (window_count > d->st.max_per_minute)
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
        d->days[d->ndays].day = day;
        d->days[d->ndays].count = 1;
        d->ndays++;
    }
}

static int key_is_zero(const char *k)
{
    return k != NULL && strcmp(k, "0") == 0;
}

static void pattern_synckeys(struct emit *em, struct et_analyzer *an)
{
    const struct et_view *v = em->v;
    struct dev *d = em->d;

    for (size_t i = 0; i < v->ncolls; i++) {
        const struct et_view_collection *vc = &v->colls[i];
        struct coll_state *c;
        if (vc->sync_key == NULL)
            continue;
        c = get_coll(an, d, vc->collection_id);
        if (c == NULL)
            continue; /* more collections than tracked per device: those go unwatched */
        if (key_is_zero(vc->sync_key)) {
            c->zero_count++;
            c->fives_total += d->fives_since_reset;
            if (c->zero_count >= an->o.synckey0_repeat && !c->zero_reported) {
                c->zero_reported = 1;
                add(em, "synckey-reset-loop", ET_SEV_ERROR, NEXT_RESET_LOOP,
                    "device %s sent SyncKey 0 for %s %u times: it keeps resyncing the folder "
                    "from scratch (every item downloads again)%s",
                    d->st.device,
                    c->id ? (strcmp(c->id, "FolderSync") == 0 ? "the folder hierarchy"
                                                              : c->id)
                          : "a collection",
                    c->zero_count,
                    c->fives_total ? "; HTTP 5xx answers came before the resyncs, a known "
                                     "trigger"
                                   : "");
            }
            et_free(c->last_key);
            c->last_key = NULL;
            c->repeat = 0;
        } else if (c->last_key != NULL && strcmp(c->last_key, vc->sync_key) == 0) {
            /* The same key again counts only when the server had moved on (answered a new
             * key) or failed: an empty "no changes" answer keeps the key legitimately. */
            int advanced = c->pending_new_key != NULL &&
                           strcmp(c->pending_new_key, vc->sync_key) != 0;
            int failed = c->last_status > 1;
            if (advanced || failed) {
                c->repeat++;
                if (c->repeat + 1 >= an->o.synckey_repeat && !c->repeat_reported) {
                    c->repeat_reported = 1;
                    add(em, "synckey-repeat", ET_SEV_WARNING, NEXT_KEY_REPEAT,
                        "device %s sent SyncKey %s for collection %s %u times although the "
                        "server %s: the folder is not progressing",
                        d->st.device, vc->sync_key, c->id ? c->id : "?", c->repeat + 1,
                        failed ? "answered an error Status" : "answered a new SyncKey");
                }
            }
        } else {
            et_free(c->last_key);
            c->last_key = et_strdup(vc->sync_key);
            c->repeat = 0;
            c->repeat_reported = 0;
        }
        et_free(c->pending_new_key);
        c->pending_new_key = vc->new_sync_key ? et_strdup(vc->new_sync_key) : NULL;
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
    } else if (v->http_status == 200 && v->cmd != NULL && strcmp(v->cmd, "Provision") != 0) {
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

static void pattern_heartbeat(struct emit *em, struct et_analyzer *an)
{
    const struct et_view *v = em->v;
    struct dev *d = em->d;
    long lo = an->o.heartbeat_min, hi = an->o.heartbeat_max;

    if (v->cmd != NULL && strcmp(v->cmd, "Ping") == 0 && v->top_status == 5 &&
        v->heartbeat_resp > 0)
        d->server_hb = v->heartbeat_resp;
    if (v->heartbeat_req < 0 || d->heartbeat_reported)
        return;
    if (v->heartbeat_req < lo || v->heartbeat_req > hi) {
        d->heartbeat_reported = 1;
        add(em, "heartbeat-range", ET_SEV_WARNING, NEXT_HEARTBEAT,
            "device %s asked for a heartbeat of %ld s, outside the server's range %ld-%ld s",
            d->st.device, v->heartbeat_req, lo, hi);
    }
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
    d = get_dev(an, v->device);
    if (d == NULL)
        return ET_ENOMEM;
    em.d = d;

    d->st.requests++;
    d->st.cmd_counts[cmd_slot(v->cmd, x->req.method)]++;
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

    rule_exchange_error(&em);
    rule_http_status(&em);
    if (v->is_eas) {
        rule_statuses(&em);
        rule_server_error(&em);
        if (v->throttled && v->http_status != 503 && v->server_error == NULL)
            add(&em, "throttling", ET_SEV_WARNING, NEXT_THROTTLE,
                "the server is throttling the device: %s", v->throttle);
        pattern_storm(&em, an, t);
        count_day(d, t);
        pattern_synckeys(&em, an);
        pattern_provisioning(&em, an);
        pattern_auth(&em, an);
        pattern_heartbeat(&em, an);
        if (v->http_status >= 500 && v->cmd != NULL && strcmp(v->cmd, "Sync") == 0)
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
