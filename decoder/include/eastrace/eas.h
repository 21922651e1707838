/*
 * EAS (Exchange ActiveSync) facts the decoder names:
 *   - the Status values of every command ([MS-ASCMD] 2.2.2 and 2.2.3.177, [MS-ASPROV]) and the
 *     EAS meaning of HTTP status codes ([MS-ASHTTP] 2.2.2.1.1);
 *   - the EAS request: the query of /Microsoft-Server-ActiveSync in its plain form
 *     ([MS-ASHTTP] 2.2.1.1.1.2) and its base64 form (2.2.1.1.1.1), and the EAS headers of
 *     requests and responses.
 * See docs/eas-request.md and docs/status-codes.md.
 */
#ifndef ET_DECODER_EAS_H
#define ET_DECODER_EAS_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/arena.h"
#include "eastrace/common.h"
#include "eastrace/exchange.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Status values ------------------------------------------------------------------- */

/* One Status value: its number, a short name ("InvalidSyncKey") and a one-sentence meaning
 * for an administrator. Entries are static: valid for the life of the program. */
struct et_eas_status {
    int code;
    const char *name;
    const char *meaning;
};

/*
 * Looks up the meaning of a Status element's value.
 *   root_cmd: local name of the WBXML document's root element ("Sync", "FolderSync",
 *             "Provision", "Settings", "ResolveRecipients", ...), case-sensitive as in the
 *             schema; NULL means unknown.
 *   parent:   local name of the element holding the Status ("Collection", "Policy",
 *             "RemoteWipe", "Oof", "Certificates", "Store", ...); NULL means the root.
 *             It selects between a command's tables: Provision root / Policy / RemoteWipe /
 *             AccountOnlyRemoteWipe; Settings root / Oof, DevicePassword, DeviceInformation,
 *             UserInformation, RightsManagementInformation; ResolveRecipients root+Response /
 *             Certificates / Availability / Picture; Search root / Store.
 *   code:     the Status value.
 * The command's table wins; values it does not list fall back to the Common status codes
 * 101-184 ([MS-ASCMD] 2.2.2), which apply to every command (SendMail, SmartReply and
 * SmartForward have only those). Returns a static entry, or NULL when unknown.
 */
const struct et_eas_status *et_eas_status_lookup(const char *root_cmd, const char *parent,
                                                 int code);

/* How bad a Status value is, for the analyzer. */
enum et_eas_severity {
    ET_EAS_SEV_UNKNOWN = 0,   /* value not in any table */
    ET_EAS_SEV_SUCCESS = 1,   /* the command did its job (Ping 1 and 2, MoveItems 3 too) */
    ET_EAS_SEV_TRANSIENT = 2, /* server-side or temporary: a retry may succeed */
    ET_EAS_SEV_RECOVER = 3,   /* the device must act first: resync from SyncKey 0,
                               * FolderSync, or Provision again (Sync 3/12, 142-144...) */
    ET_EAS_SEV_ERROR = 4      /* the request failed; retrying unchanged fails again */
};

/* Severity (enum et_eas_severity) of a Status value; same arguments as the lookup. */
int et_eas_status_severity(const char *root_cmd, const char *parent, int code);
/* "success", "transient", "recover", "error" or "unknown". */
const char *et_eas_severity_name(int sev);

/* Walks every table (for docs/status-codes.md and tests): root and parent are NULL for the
 * Common table; parent is NULL for a command's catch-all table. */
typedef void (*et_eas_status_table_cb)(const char *root, const char *parent,
                                       const struct et_eas_status *s, int severity, void *arg);
void et_eas_status_tables(et_eas_status_table_cb cb, void *arg);

/* EAS meaning of an HTTP status code of a /Microsoft-Server-ActiveSync response (200, 400,
 * 401, 403, 404, 413, 449, 451, 456, 457, 500, 501, 502, 503, 507), or NULL. Static. */
const char *et_eas_http_status_meaning(int http_status);

/* ---- The EAS request ----------------------------------------------------------------- */

/* A command parameter ("CollectionId", "ItemId", "Options", ...). */
struct et_eas_param {
    const char *name;
    const char *value; /* text; binary values are shown as hex */
};

/*
 * A decoded EAS request. Every string lives in the arena given to the parser (or is static);
 * a NULL string means "not present". Base64-form fields not in the plain form (locale) stay
 * NULL for plain queries.
 */
struct et_eas_request {
    unsigned is_eas : 1;           /* the path is an ActiveSync endpoint */
    unsigned base64_form : 1;      /* the query was base64-encoded ([MS-ASHTTP] 2.2.1.1.1.1) */
    unsigned save_in_sent : 1;     /* Options 0x01, or SaveInSent=T */
    unsigned accept_multipart : 1; /* Options 0x02, or MS-ASAcceptMultiPart: T */
    unsigned has_options : 1;      /* an Options parameter was present (options is valid) */
    unsigned cmd_known : 1;        /* cmd is a known command name */
    const char *path;         /* path as sent ("/Microsoft-Server-ActiveSync") */
    const char *cmd;          /* "Sync"; base64 codes not in the table: "Unknown(0xNN)" */
    int cmd_code;             /* base64 command code; -1 in the plain form */
    const char *user;         /* User parameter */
    const char *device_id;    /* text, or uppercase hex when not printable ASCII */
    const char *device_guid;  /* base64 form, 16-byte IDs: "{xxxxxxxx-xxxx-...}" else NULL */
    const char *device_type;
    const char *protocol;     /* "14.1": base64 version byte, else MS-ASProtocolVersion */
    const char *policy_key;   /* decimal: base64 policy key, else X-MS-PolicyKey */
    const char *locale;       /* base64 only: "en-US" when known, else "0x0409" */
    int locale_id;            /* base64 only: the LCID; -1 when absent */
    uint8_t options;          /* raw Options byte (has_options) */
    const char *user_agent;   /* User-Agent header */
    const char *auth_scheme;  /* "Basic", "Bearer", "Negotiate", ... (never the secret) */
    const char *auth_user;    /* Basic only: the user name; the password is never kept */
    struct et_eas_param *params; /* command parameters other than Cmd/User/DeviceId/Type */
    size_t nparams;
};

/*
 * Parses a request target: origin-form "/Microsoft-Server-ActiveSync?Cmd=Sync&User=..."
 * or absolute-form "https://host/Microsoft-Server-ActiveSync?<base64>". Accepted paths
 * (case-insensitive): /Microsoft-Server-ActiveSync, .../default.eas, .../Proxy,
 * .../Proxy/default.eas. Plain queries are percent-decoded; a base64 query may itself be
 * percent-encoded (%2B %2F %3D).
 * Borrows target; strings go to arena a. Fills *out (zeroed first).
 * Returns 0; ET_EUNSUPPORTED when the path is not ActiveSync (out->is_eas == 0);
 * ET_EPARSE (bad escape, bad base64, bad length) or ET_ETRUNC (a field runs past the end)
 * with e->offset = byte offset in target; ET_ENOMEM. On an error *out keeps what was decoded
 * before it. An unknown command code or parameter tag is not an error.
 */
int et_eas_query_parse(const char *target, struct et_arena *a, struct et_eas_request *out,
                       struct et_error *e);

/*
 * Parses x's request target as above, then its headers: MS-ASProtocolVersion,
 * X-MS-PolicyKey, MS-ASAcceptMultiPart, User-Agent and Authorization (scheme, and for Basic
 * the user name; the password is decoded only in a scratch buffer that is wiped). Header
 * values fill only what the query lacks. Borrows x; strings go to arena a (x->arena is fine).
 * Returns as et_eas_query_parse; ET_EINVAL when x has no request. A request that is not
 * ActiveSync (ET_EUNSUPPORTED: Autodiscover, OWA) gets only its Authorization read (who sent
 * it: --user and the proxy's --only-user match the Basic user).
 */
int et_eas_request_parse(const struct et_exchange *x, struct et_arena *a,
                         struct et_eas_request *out, struct et_error *e);

/* EAS facts of a response's headers. Pointers borrow x's header values (NULL if absent). */
struct et_eas_response_info {
    int http_status;
    const char *http_meaning;           /* et_eas_http_status_meaning(), may be NULL */
    const char *server_version;         /* MS-Server-ActiveSync: "15.1" */
    const char *protocol_versions;      /* MS-ASProtocolVersions: "2.5,12.0,...,16.1" */
    const char *protocol_commands;      /* MS-ASProtocolCommands */
    const char *throttle;               /* X-MS-ASThrottle: the throttling reason */
    const char *location;               /* X-MS-Location: redirect target (451) */
    const char *retry_after;            /* Retry-After (503) */
    const char *rp;                     /* X-MS-RP: protocol versions after a reset */
    const char *credentials_expire;     /* X-MS-Credentials-Expire: days left */
    const char *credential_service_url; /* X-MS-Credential-Service-Url (457) */
    const char *content_type;           /* Content-Type */
};

/* Fills *out from x's response (zeroed first; all NULL when there is no response). */
void et_eas_response_info(const struct et_exchange *x, struct et_eas_response_info *out);

/*
 * Appends one human-readable line (no newline) to out:
 *   "Sync user=jdoe device=ABC123 type=iPhone v14.1 policy=123 locale=en-US [base64]
 *    CollectionId=5 SaveInSent"
 * Fields absent are left out; values are shown as decoded (control characters escaped).
 * Returns 0 or ET_ETOOBIG / ET_ENOMEM from the buffer.
 */
int et_eas_request_line(const struct et_eas_request *r, struct et_buf *out);

/* Redaction flags for et_eas_query_redact(). */
enum et_eas_redact_flags {
    ET_EAS_REDACT_SECRETS = 0,    /* always: values of parameters that carry credentials */
    ET_EAS_REDACT_IDENTITY = 1    /* also replace User and DeviceId values */
};

/*
 * Rewrites a request target for export: plain queries keep their parameters but the values
 * of credential-like ones (Password, Pwd, Token, access_token, jwt, auth, Authorization,
 * Key, Secret: case-insensitive) become "REDACTED"; with ET_EAS_REDACT_IDENTITY the User and
 * DeviceId values too. Base64 queries carry no credentials by design; with
 * ET_EAS_REDACT_IDENTITY they are re-encoded with the device ID and User replaced by
 * "REDACTED". A target that cannot be parsed is replaced by its path plus "?REDACTED", so
 * nothing unparsed leaks. Appends to out. Returns 0, ET_ENOMEM or ET_ETOOBIG.
 */
int et_eas_query_redact(const char *target, unsigned flags, struct et_buf *out);

/* Writes an Authorization header value safe to export: "Basic REDACTED (user=jdoe)",
 * "Bearer REDACTED", ... Appends to out. Returns 0 or an et_buf error. */
int et_eas_auth_redact(const char *value, struct et_buf *out);

/*
 * 1 when the user name `have` (a User parameter or Basic user name) names the account `want`
 * (an operator's --only-user): equal ignoring ASCII case, or the same account name when one of
 * them is bare ("jdoe" matches "CONTOSO\jdoe" and "jdoe@contoso.com") or they are qualified
 * differently ("CONTOSO\jdoe" matches "jdoe@contoso.com"); two names qualified the same way
 * must be equal ("CONTOSO\jdoe" does not match "FABRIKAM\jdoe"). NULL or "" never matches.
 */
int et_eas_user_match(const char *want, const char *have);

/* Name of a base64 command code ("Sync", "Find") or NULL; and the reverse (-1 if unknown). */
const char *et_eas_command_name(int code);
int et_eas_command_code(const char *name);

#ifdef __cplusplus
}
#endif
#endif
