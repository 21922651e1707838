/*
 * The per-exchange rules: each judges one exchange alone (a failure, the HTTP status, the
 * command's Status values, Exchange's own error and diagnostics headers, a slow answer, a
 * blocked device). Rule ids and next steps: docs/rules.md.
 */
#include "analyzer_int.h"

#include <stdio.h>
#include <string.h>

void et__an_rule_exchange_error(struct emit *em)
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

void et__an_rule_http_status(struct emit *em)
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

void et__an_rule_statuses(struct emit *em)
{
    const struct et_view *v = em->v;
    const char *root = v->resp_root ? v->resp_root : v->cmd;
    enum kcmd rk;

    if (root == NULL)
        return;
    rk = root == v->cmd ? em->cmd : et__an_kcmd_of(root);
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
                s ? s->name : "unknown",
                et__an_coll_label(em->d, c->collection_id, lbl, sizeof(lbl)),
                c->sync_key ? c->sync_key : "?", s && s->meaning ? s->meaning : "");
        }
    }
}

void et__an_rule_server_error(struct emit *em)
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
void et__an_rule_cas_error(struct emit *em)
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

/* ---- slow answers, device access -------------------------------------------------- */

#define NEXT_SLOW                                                                              \
    "Look at the server side of this request: the IIS log's time-taken with RpcC/RpcL for the " \
    "device (eastrace iis --report rpc; the guides' \"High RPC counts or latency\" query), the " \
    "mailbox server's health, and file-level anti-virus scanning on the Client Access servers " \
    "(it delays device and CAS performance)."

void et__an_rule_slow(struct emit *em, struct et_analyzer *an)
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

#define NEXT_BLOCKED                                                                           \
    "The device is blocked or quarantined by Exchange's device access: check the device "      \
    "access rules that match it (Get-ActiveSyncDeviceAccessRule), the organization's default " \
    "access level (Get-ActiveSyncOrganizationSettings | fl DefaultAccessLevel), the mailbox's " \
    "ActiveSyncBlockedDeviceIDs / ActiveSyncAllowedDeviceIDs (Get-CASMailbox), and the mobile " \
    "device mailbox policy's AllowNonProvisionableDevices for a device that cannot provision; " \
    "a quarantined device is released by allowing it (Set-CASMailbox -ActiveSyncAllowedDeviceIDs)."

/* Appends s (NULL: nothing) to out at len, cut to fit cap with its NUL; the new length. */
static size_t join(char *out, size_t cap, size_t len, const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n > cap - 1 - len)
        n = cap - 1 - len;
    memcpy(out + len, s != NULL ? s : "", n);
    out[len + n] = '\0';
    return len + n;
}

void et__an_rule_device_blocked(struct emit *em, struct et_analyzer *an)
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
    /* Joined without snprintf: a blocked device repeats this on each of its requests. */
    const char *part[7] = {state ? "access state " : NULL, state, reason ? " (" : NULL, reason,
                           reason ? ")" : NULL, rule ? ", rule " : NULL, rule};
    size_t wl = 0;
    for (int k = 0; k < 7; k++)
        wl = join(what, sizeof(what), wl, part[k]);
    if (wl == 0)
        (void)join(what, sizeof(what), 0, err ? err : "Status 129 DeviceIsBlockedForThisUser");
    if (d->blocked_state != NULL && strcmp(d->blocked_state, what) == 0)
        return; /* once per device and state */
    d->blocked_state = et_arena_strdup(an->arena, what);
    add(em, "device-blocked", ET_SEV_ERROR, NEXT_BLOCKED,
        "device %s is blocked or quarantined by Exchange: %s%s%s", d->st.device, what,
        err && state ? "; error " : "", err && state ? err : "");
}
