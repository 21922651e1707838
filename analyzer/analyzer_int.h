/*
 * Private to analyzer/: the state the analyzer keeps per device, the emitter of findings and the
 * next steps the rules share. The analyzer's jobs, one file each:
 *
 *   analyzer.c  options, device state (get_dev, get_coll), the feed loop, finish, add()
 *   rules.c     per-exchange rules: exchange-error, http-status, the Status values,
 *               server-error, throttling, cas-error, slow-response, device-blocked
 *   patterns.c  stateful patterns over a device's requests: request storms, usage per day,
 *               SyncKeys, provisioning, authentication failures, heartbeats, long polls cut,
 *               Retry-After, FolderSync after a hierarchy change
 *   folders.c   the folder hierarchy learnt from FolderSync answers, and the names it gives
 *               collections
 *
 * Per-device state (struct dev) is found through the common hash table (map.h) keyed by
 * device id; devs[] keeps first-seen order:
 *
 *   map[et_hash(device)] -> dev: stats, runs (provisioning, auth failures, 5xx), then the
 *        ring of recent request times (storm) in the same allocation;
 *        cold parts behind pointers: collections[] (SyncKey state), per-day counts, folders
 */
#ifndef ET_ANALYZER_ANALYZER_INT_H
#define ET_ANALYZER_ANALYZER_INT_H

#include "eastrace/analyzer.h"

#include <stdarg.h>
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

static inline const char *skey_get(const struct skey *k)
{
    return !k->set ? NULL : k->heap != NULL ? k->heap : k->in;
}

/* v NULL clears it. A copy that cannot be made leaves it cleared. */
static inline void skey_set(struct skey *k, const char *v)
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

/* Adds a finding to em's list (message printf-style, made printable; next borrowed, static or
 * in em->a) and counts it on the device. Sets em->failed when out of memory. */
void et__an_vadd(struct emit *em, const char *rule, enum et_severity sev, const char *next,
                 const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static inline void add(struct emit *em, const char *rule, enum et_severity sev,
                       const char *next, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static inline void add(struct emit *em, const char *rule, enum et_severity sev,
                       const char *next, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    et__an_vadd(em, rule, sev, next, fmt, ap);
    va_end(ap);
}

static inline int key_is_zero(const char *k)
{
    return k != NULL && strcmp(k, "0") == 0;
}

/* A Ping or a Sync with a heartbeat (Wait or HeartbeatInterval): a long poll. */
static inline int is_long_poll(const struct emit *em)
{
    return em->v->heartbeat_req > 0 && (em->cmd == K_PING || em->cmd == K_SYNC);
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

/* ---- analyzer.c ----------------------------------------------------------------------- */

/* The kind of a command name (NULL: K_NONE). */
enum kcmd et__an_kcmd_of(const char *cmd);
/* The state of collection id (NULL: unnamed) of d, made on first use; NULL when d tracks
 * DEV_MAX_COLLS already or out of memory. */
struct coll_state *et__an_get_coll(struct et_analyzer *an, struct dev *d, const char *id);

/* ---- rules.c: per-exchange rules -------------------------------------------------------- */

/* Each adds its findings on em's exchange to em (none when the rule does not apply). */
void et__an_rule_exchange_error(struct emit *em);
void et__an_rule_http_status(struct emit *em);
void et__an_rule_statuses(struct emit *em);
void et__an_rule_server_error(struct emit *em);
void et__an_rule_cas_error(struct emit *em);
void et__an_rule_slow(struct emit *em, struct et_analyzer *an);
void et__an_rule_device_blocked(struct emit *em, struct et_analyzer *an);

/* ---- patterns.c: patterns over a device's requests (t: the exchange's time) ------------- */

/* Each updates em->d's state with em's exchange and adds a finding when a pattern shows. */
void et__an_pattern_storm(struct emit *em, struct et_analyzer *an, int64_t t);
void et__an_count_day(struct dev *d, int64_t t);
void et__an_pattern_synckeys(struct emit *em, struct et_analyzer *an);
void et__an_pattern_provisioning(struct emit *em, struct et_analyzer *an);
void et__an_pattern_auth(struct emit *em, struct et_analyzer *an);
void et__an_pattern_heartbeat(struct emit *em, struct et_analyzer *an);
void et__an_pattern_longpoll_cut(struct emit *em, struct et_analyzer *an);
void et__an_pattern_retry_after(struct emit *em, int64_t t);
void et__an_pattern_foldersync(struct emit *em, struct et_analyzer *an);

/* ---- folders.c: the folder hierarchy ---------------------------------------------------- */

/* Forgets d's folders (the array stays allocated). */
void et__an_folders_clear(struct dev *d);
void et__an_learn_folders(struct emit *em);
void et__an_name_collections(struct emit *em, struct dev *d, const struct et_view *cv);
/* "Inbox (5)" when the name of collection id is known, else id ("?" for NULL); buf holds
 * the text when it is made. */
const char *et__an_coll_label(struct dev *d, const char *id, char *buf, size_t len);

#endif
