/*
 * The pieces of an IIS (W3C extended) log line, shared by the exchange reader (eastrace/iis.h)
 * and the report engine (report/, eastrace/iisreport.h): the `#Fields:` layout, the line
 * splitter, the EAS query fields and Exchange's `Log=` items. All borrow the line's bytes.
 *
 *   u_ex*.log / .gz --(lines)--> et_iis_line_split --> et_iis_query_scan --> et_eas_log_parse
 *                                        |
 *                                        +--> et_iis_open (logs/: one exchange per line)
 *                                        +--> et_iis_report_* (report/: tables, no exchange)
 */
#ifndef ET_LOGS_IISLINE_H
#define ET_LOGS_IISLINE_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/arena.h"
#include "eastrace/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Fields layout ------------------------------------------------------------------- */

/* The fields eastrace knows by name; others are kept as custom fields. */
enum et_iis_field {
    ET_IIS_DATE = 0,    /* date */
    ET_IIS_TIME,        /* time */
    ET_IIS_S_IP,        /* s-ip */
    ET_IIS_METHOD,      /* cs-method */
    ET_IIS_STEM,        /* cs-uri-stem */
    ET_IIS_QUERY,       /* cs-uri-query */
    ET_IIS_S_PORT,      /* s-port */
    ET_IIS_USERNAME,    /* cs-username */
    ET_IIS_C_IP,        /* c-ip */
    ET_IIS_UA,          /* cs(User-Agent) */
    ET_IIS_REFERER,     /* cs(Referer) */
    ET_IIS_STATUS,      /* sc-status */
    ET_IIS_SUBSTATUS,   /* sc-substatus */
    ET_IIS_WIN32,       /* sc-win32-status */
    ET_IIS_SC_BYTES,    /* sc-bytes */
    ET_IIS_CS_BYTES,    /* cs-bytes */
    ET_IIS_TIME_TAKEN,  /* time-taken (milliseconds) */
    ET_IIS_HOST,        /* cs-host */
    ET_IIS_FIELD_COUNT
};

#define ET_IIS_MAX_FIELDS 64

/* A #Fields layout: idx[field] is the column of each known field or -1. Column i's name is
 * text + name_at[i], NUL-terminated (offsets, not pointers, so layouts copy by assignment). */
struct et_iis_layout {
    int idx[ET_IIS_FIELD_COUNT];
    int n;
    uint16_t name_at[ET_IIS_MAX_FIELDS];
    char text[2048];
};

static inline const char *et_iis_layout_name(const struct et_iis_layout *l, int i)
{
    return l->text + l->name_at[i];
}

/* The layout Exchange 2003 (IIS 6) logs without a #Fields header in our corpus and the IIS 7+
 * default; used until a #Fields line is seen. */
void et_iis_layout_default(struct et_iis_layout *l);
/* Parses the part after "#Fields:" (n bytes). Returns 0 or ET_EPARSE (no fields, or more
 * than ET_IIS_MAX_FIELDS, or longer than text). */
int et_iis_layout_parse(struct et_iis_layout *l, const char *s, size_t n);
/* Same layout (same columns in the same order)? */
int et_iis_layout_equal(const struct et_iis_layout *a, const struct et_iis_layout *b);

/* Splits one line (no newline; a trailing CR is dropped) at spaces into f[]. Returns the
 * number of fields; more than max fields are folded into the last. Borrows line. */
int et_iis_line_split(const char *line, size_t n, struct et_slice *f, int max);

/* Classification of a cs-uri-stem. */
enum et_iis_stem {
    ET_IIS_STEM_OTHER = 0,    /* not ActiveSync */
    ET_IIS_STEM_FRONTEND = 1, /* /Microsoft-Server-ActiveSync[/default.eas] */
    ET_IIS_STEM_BACKEND = 2   /* /Microsoft-Server-ActiveSync/Proxy[/default.eas] */
};
enum et_iis_stem et_iis_stem_classify(const char *s, size_t n);

/* ---- EAS query ----------------------------------------------------------------------- */

/* The EAS parameters of a plain cs-uri-query, as borrowed slices (URL-encoded as logged).
 * A base64-encoded query (MS-ASHTTP 2.2.1.1.1.1) is not decoded here: base64 is set, raw is
 * the base64 item (without a following "&Log=...", which still fills log), and
 * et_iis_query_decode_base64() fills cmd/user/device_id/device_type from it. */
struct et_iis_query {
    struct et_slice cmd, user, device_id, device_type, log, raw;
    int base64;
};
void et_iis_query_scan(const char *q, size_t n, struct et_iis_query *out);
/*
 * Decodes the base64 form of a scanned query (q->base64) with the decoder's
 * et_eas_query_parse and points q's cmd, user, device_id and device_type at the decoded
 * text, which lives in arena a (binary device ids as uppercase hex). Returns 0, ET_EINVAL
 * when q is not base64, or the parser's ET_EPARSE / ET_ETRUNC / ET_ENOMEM (q then keeps what
 * was decoded before the error).
 */
int et_iis_query_decode_base64(struct et_iis_query *q, struct et_arena *a);

/* Command index for counting (ET_EAS_CMD_*) from a Cmd value; ET_EAS_CMD_OTHER when unknown,
 * ET_EAS_CMD_NONE when empty (OPTIONS has no Cmd). */
enum et_eas_cmd {
    ET_EAS_CMD_NONE = 0,
    ET_EAS_CMD_PING, ET_EAS_CMD_SYNC, ET_EAS_CMD_FOLDERSYNC, ET_EAS_CMD_SENDMAIL,
    ET_EAS_CMD_SMARTREPLY, ET_EAS_CMD_SMARTFORWARD, ET_EAS_CMD_MEETINGRESPONSE,
    ET_EAS_CMD_GETATTACHMENT, ET_EAS_CMD_ITEMOPERATIONS, ET_EAS_CMD_PROVISION,
    ET_EAS_CMD_SETTINGS, ET_EAS_CMD_SEARCH, ET_EAS_CMD_MOVEITEMS, ET_EAS_CMD_GETITEMESTIMATE,
    ET_EAS_CMD_FOLDERCREATE, ET_EAS_CMD_FOLDERDELETE, ET_EAS_CMD_FOLDERUPDATE,
    ET_EAS_CMD_RESOLVERECIPIENTS, ET_EAS_CMD_VALIDATECERT, ET_EAS_CMD_FIND,
    ET_EAS_CMD_GETHIERARCHY, ET_EAS_CMD_CREATECOLLECTION, ET_EAS_CMD_DELETECOLLECTION,
    ET_EAS_CMD_MOVECOLLECTION, ET_EAS_CMD_NOTIFY, ET_EAS_CMD_OPTIONS, ET_EAS_CMD_OTHER,
    ET_EAS_CMD_COUNT
};
enum et_eas_cmd et_eas_cmd_from(const char *s, size_t n);
/* "Ping", ...; "OPTIONS" for the OPTIONS request; "" for NONE, "Other" for OTHER. */
const char *et_eas_cmd_name(enum et_eas_cmd c);

/* ---- Exchange's Log= items ----------------------------------------------------------- */

/* One item: "Hb1680" is {name "Hb", value "1680"}; "Error:InvalidContent" is {name "Error",
 * value "InvalidContent", colon 1}; "Ver1:161" is {"Ver1", "161", colon 1}. Values stay
 * URL-encoded (slices borrow the log text). */
struct et_eas_log_item {
    struct et_slice name;
    struct et_slice value;
    int colon;
};

#define ET_EAS_LOG_MAX_ITEMS 48

/*
 * The parsed Log= string. Integers are -1 when absent. Slices are empty (len 0) when absent.
 * Exchange 2003 logs one packed string (V2TCoSSC:0A0C0D0FS:1A0C0D0SP:1C2I105992S109982R):
 * then exch2003 = 1 and the items are V, T, St, C:, S:, P:.
 */
struct et_eas_log {
    int exch2003;
    long version;           /* V / Ver: 121 = 12.1, 141 = 14.1, 2 = 2.0 (2003) */
    long status;            /* S: the command's Status */
    struct et_slice error;  /* Error: (InvalidContent, ServerError, ...) */
    struct et_slice access_state; /* As: (AllowedG, BlockedP, Quarantined...) */
    long heartbeat;         /* Hb: seconds */
    long sync_key;          /* Sk: client SyncKey (0 = initial sync) */
    struct et_slice sync_type; /* St: F first, S subsequent, R recovery, I invalid */
    struct et_slice folder_type; /* Ty: Em, Co, Ca, Ta */
    long folder_count;      /* Fc */
    long filter;            /* Filt */
    long rpc_count, rpc_latency;   /* RpcC, RpcL (ms) */
    long ldap_count, ldap_latency; /* LdapC, LdapL (ms) */
    long cpo;               /* Cpo: CPU time (ms) */
    long fet;               /* Fet: front-end time (ms) */
    long throttle;          /* Throttle */
    struct et_slice budget; /* Budget: */
    struct et_slice mailbox; /* Mbx: */
    struct et_slice dc;     /* Dc: */
    size_t nitems;          /* items stored (<= ET_EAS_LOG_MAX_ITEMS) */
    size_t dropped;         /* items past the cap */
    struct et_eas_log_item items[ET_EAS_LOG_MAX_ITEMS];
};

/* Parses the value of Log= (n bytes, borrowed). Never fails: unknown items are kept as raw
 * items; an empty string gives no items. */
void et_eas_log_parse(const char *s, size_t n, struct et_eas_log *out);
/* The same parse keeping only the items whose first byte is in `first` (NUL-terminated;
 * NULL keeps all): their fields and items are what et_eas_log_parse gives, the others are
 * stepped over (absent, and not in items[]; they still count towards the cap, so `dropped`
 * is the full parse's). The packed 2003 string is always parsed whole. For a caller that
 * reads a few items of every line (the IIS report's findings: S, Hb, Sk, Error, As). */
void et_eas_log_parse_only(const char *s, size_t n, const char *first, struct et_eas_log *out);

/* URL-decodes (%XX; '+' stays '+') n bytes into out (NUL-terminated, at most outlen-1
 * bytes). Returns the length written. */
size_t et_iis_url_decode(const char *s, size_t n, char *out, size_t outlen);

/* A --date value ("2011-05-06", or "05-06-2011" as ActiveSyncReport.ps1 takes it) as
 * "YYYY-MM-DD" in out (11 bytes). Returns 0 or ET_EPARSE. */
int et_iis_date_normalize(const char *in, char out[11]);

/* "2011-05-06" + "11:29:50" -> microseconds since the epoch (UTC). Returns 0 or ET_EPARSE. */
int et_iis_time_parse(const char *date, size_t dn, const char *time, size_t tn, int64_t *us);

#ifdef __cplusplus
}
#endif
#endif
