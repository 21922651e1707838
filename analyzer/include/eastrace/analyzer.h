/*
 * eastrace analyzer: judges a stream of exchanges and says what is wrong and what to do next.
 *
 *   exchange --et_view_build()--> view (EAS command, device, statuses, collections, heartbeat)
 *            --et_analyzer_feed()--> findings for this exchange (per-exchange rules, plus the
 *                                    pattern rules that fire at this point of the stream)
 *   end      --et_analyzer_finish()--> summary findings and per-device statistics
 *
 * Rules see one exchange at a time and keep small per-device state, so the same analyzer runs
 * on a live capture and on a replayed file. Rule ids are stable; docs/rules.md lists them.
 */
#ifndef ET_ANALYZER_ANALYZER_H
#define ET_ANALYZER_ANALYZER_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/arena.h"
#include "eastrace/common.h"
#include "eastrace/eas.h"
#include "eastrace/exchange.h"
#include "eastrace/wbxml.h"

#ifdef __cplusplus
extern "C" {
#endif

enum et_severity {
    ET_SEV_INFO = 0,    /* worth knowing, nothing is broken */
    ET_SEV_WARNING = 1, /* something degrades service or will fail if it goes on */
    ET_SEV_ERROR = 2    /* a request failed or a device is stuck */
};
const char *et_severity_name(enum et_severity s);
/* Parses "info", "warning", "error" (case-insensitive). Returns 0 or ET_EINVAL. */
int et_severity_parse(const char *s, enum et_severity *out);

struct et_finding {
    const char *rule;      /* stable id: "http-status", "sync-status", ... */
    enum et_severity severity;
    const char *message;   /* what happened and why it matters */
    const char *next_step; /* the next troubleshooting step, from the guides */
    uint64_t exchange_id;  /* the exchange it is about; 0 for a summary finding */
    const char *device;    /* device id (or client address) it concerns; may be NULL */
    int64_t time;          /* microseconds since the epoch; 0 when unknown */
    struct et_finding *next;
};

/* One Sync collection (or FolderSync's hierarchy, with collection_id "FolderSync"). */
struct et_view_collection {
    const char *collection_id; /* NULL when the request named none */
    const char *sync_key;      /* the SyncKey the device sent; NULL when unknown */
    const char *new_sync_key;  /* the SyncKey the server answered */
    long status;               /* the server's Status for this collection; -1 unknown */
    const char *folder_name;   /* its DisplayName from the device's FolderSync answers, set by
                                  et_analyzer_feed() (in the arena it was given); NULL when
                                  not known */
};

#define ET_VIEW_MAX_STATUS 32
#define ET_VIEW_MAX_COLLECTIONS 64

/*
 * What eastrace knows of one exchange after decoding. Built once per exchange and shared by
 * rules and renderers. Strings and documents live in the arena given to et_view_build()
 * (normally the exchange's own) and are valid as long as it.
 */
struct et_view {
    unsigned is_eas : 1;        /* a request to the ActiveSync endpoint */
    unsigned has_req_body : 1;  /* a request body was decoded (WBXML or mailbox-log XML) */
    unsigned has_resp_body : 1; /* a response body was decoded */
    unsigned throttled : 1;     /* X-MS-ASThrottle, 503 + Retry-After, or an IIS budget error */
    struct et_eas_request req;  /* decoded query and headers (zeroed when not EAS) */
    const char *cmd;            /* "Sync", ... ; NULL when not EAS */
    const char *device;         /* device id, else user, else client address; never NULL */
    const char *user;
    int http_status;            /* 0 when there was no response */
    struct et_wbxml_doc *req_doc;  /* decoded request body, or NULL */
    struct et_wbxml_doc *resp_doc; /* decoded response body (multipart part 0), or NULL */
    const char *resp_root;      /* local name of the response's root element, or NULL */
    long top_status;            /* the root-level Status of the response, -1 when none */
    long statuses[ET_VIEW_MAX_STATUS]; /* every Status value in the response, in order */
    const char *status_parent[ET_VIEW_MAX_STATUS]; /* local name of each Status's parent */
    size_t nstatus;
    struct et_view_collection colls[ET_VIEW_MAX_COLLECTIONS];
    size_t ncolls;
    long heartbeat_req;         /* Ping HeartbeatInterval (or Sync Wait * 60) sent; -1 none */
    long heartbeat_resp;        /* HeartbeatInterval the server answered (Ping 5); -1 none */
    long max_folders;           /* MaxFolders the server answered (Ping 6); -1 none */
    long ping_folders;          /* folders in the Ping request; -1 none */
    const char *server_error;   /* IIS Log Error: item or mailbox-log exception, or NULL */
    const char *throttle;       /* the throttling reason when known */
    int body_error;             /* 0, or the ET_E* of a body that failed to decode */
    char body_error_msg[160];   /* what failed and where */
    /* Exchange's own explanation, from the response headers (NULL when absent; as sent, except
     * failure_context, which is decoded when it is base64 text). */
    struct et_view_exdiag {
        const char *cas_error;       /* X-CasErrorCode: why the front end could not proxy */
        const char *failure_context; /* X-FailureContext */
        const char *diag_info;       /* X-DiagInfo: the server that answered */
        const char *fe_server;       /* X-FEServer: the front end (Client Access) server */
        const char *be_server;       /* X-BEServer: the back end (mailbox) server */
        const char *be_target;       /* X-CalculatedBETarget: where the front end sent it */
        const char *request_id;      /* request-id: the id in Exchange's HttpProxy logs */
        const char *ms_diagnostics;  /* X-MS-Diagnostics */
        unsigned present : 1;        /* at least one of the above */
    } exdiag;
};

/* Builds the view of x. Never fails on bad input (that is recorded in body_error); returns 0
 * or ET_ENOMEM. Allocates from a (pass x->arena). Borrows x, which must outlive the view. */
int et_view_build(const struct et_exchange *x, struct et_arena *a, struct et_view *out);
/* Releases the documents the view holds (not the arena). */
void et_view_reset(struct et_view *v);
/*
 * The one EAS Status an exchange is shown with (timeline, mailboxlog, show): the first Status
 * that is not a success, else the root's. Returns it, or -1 when the response has none; sets
 * *root (the command's element) and *parent (the Status's parent) for et_eas_status_lookup.
 */
long et_view_status(const struct et_view *v, const char **root, const char **parent);

struct et_analyzer_opts {
    unsigned storm_per_minute;   /* requests in any 60 s window that make a storm (60) */
    unsigned high_usage_per_day; /* requests per device per day that are high usage (1000) */
    unsigned very_high_per_day;  /* above this the guides say investigate the device (1500) */
    unsigned synckey0_repeat;    /* SyncKey 0 sends for one collection that make a loop (3) */
    unsigned synckey_repeat;     /* the same non-zero SyncKey sent this many times (4) */
    unsigned provision_repeat;   /* 449 / Status 142-144 answers that make a loop (3) */
    unsigned auth_repeat;        /* 401/403 answers in a row that make a pattern (3) */
    long heartbeat_min;          /* the server's heartbeat range, seconds (60) */
    long heartbeat_max;          /* (3540) */
    unsigned longpoll_cut_repeat; /* long polls cut at about the same duration that make a
                                     pattern (3) */
    long slow_ms;                /* a command (not a long poll) slower than this is slow, ms
                                    (10000) */
    unsigned foldersync_grace;   /* requests after Ping 7 / Sync 12 without a FolderSync that
                                    make foldersync-ignored (2) */
    int no_rates;                /* do not keep et_device_stats.max_per_minute (left 0): for
                                    callers that never show device summaries, such as the IIS
                                    report's findings (0: keep it). Findings do not change. */
};
void et_analyzer_opts_default(struct et_analyzer_opts *o);
/*
 * Parses one threshold option of the command line into o: "--slow-ms N", "--longpoll-cut N",
 * "--foldersync-grace N" (value is the next argument). Returns 1 when name is one of them and
 * value is valid, 0 when name is not one of them, ET_EINVAL for a bad value.
 */
int et_analyzer_opt_parse(struct et_analyzer_opts *o, const char *name, const char *value);
/* Help lines for those options (two-space indent, newline-terminated). */
const char *et_analyzer_opts_help(void);

struct et_device_stats {
    const char *device;
    const char *user;
    const char *device_type;
    const char *user_agent;
    uint64_t requests;
    uint64_t errors;   /* findings of severity error */
    uint64_t warnings;
    uint64_t http_errors; /* responses other than 200 (and no response at all) */
    int64_t first, last;  /* times of the first and last request */
    unsigned max_per_minute; /* highest request count seen in a 60 s window */
    uint64_t cmd_counts[8];  /* Sync, Ping, FolderSync, SendMail*, Provision, ItemOps, Options,
                                other: see et_analyzer_cmd_slot_name() */
};
const char *et_analyzer_cmd_slot_name(unsigned slot);

struct et_analyzer;

/* NULL on ENOMEM. opts NULL means the defaults. */
struct et_analyzer *et_analyzer_new(const struct et_analyzer_opts *opts);
void et_analyzer_free(struct et_analyzer *an);

/*
 * Judges one exchange. The findings (a NULL-terminated list, NULL when none) are allocated
 * from `a` (pass x->arena, so they go when the exchange goes). Exchanges should come in time
 * order per device. It also names the view's collections: v->colls[i].folder_name is set from
 * the folder hierarchy the device's earlier FolderSync answers gave (the only field of the
 * view it writes; the names are copied into `a`). Returns 0 or ET_ENOMEM.
 */
int et_analyzer_feed(struct et_analyzer *an, const struct et_exchange *x,
                     const struct et_view *v, struct et_arena *a, struct et_finding **out);

/*
 * Summary findings over everything fed (high usage per day, loops still going at the end),
 * allocated in the analyzer (valid until et_analyzer_free). Returns 0 or ET_ENOMEM.
 */
int et_analyzer_finish(struct et_analyzer *an, struct et_finding **out);

/* Per-device statistics, in first-seen order; valid until et_analyzer_free. */
size_t et_analyzer_devices(const struct et_analyzer *an, const struct et_device_stats **out);

/*
 * What correlating several kinds of source (a client-side recording, IIS logs, mailbox logs)
 * knows of one exchange, so the rules that need it (not-in-server-log) live here with the
 * others. The pipeline fills it; bits are those of enum et_seen (pipeline.h): 1 a client-side
 * recording, 2 an IIS log, 4 a mailbox log.
 */
struct et_correlation {
    unsigned seen_by;          /* kinds of source that saw this exchange */
    unsigned kinds;            /* kinds of source among the inputs */
    int is_eas;                /* the request is an EAS request */
    const char *cmd;           /* its EAS command, NULL when unknown */
    int64_t start, end;        /* its start and latest end (0 unknown) */
    uint64_t cap_iis_matched;  /* requests so far seen by both a recording and an IIS log */
    int64_t iis_first, iis_last; /* the period the IIS lines so far cover (0 unknown) */
    int64_t tolerance;         /* how far two sources' clocks may differ (us) */
};

/*
 * et_analyzer_feed() plus the rules over correlation facts (c may be NULL: then the same as
 * et_analyzer_feed). Findings are appended to *out, allocated from a.
 */
int et_analyzer_feed_correlated(struct et_analyzer *an, const struct et_exchange *x,
                                const struct et_view *v, const struct et_correlation *c,
                                struct et_arena *a, struct et_finding **out);

/* Highest severity in a list, or -1 for an empty list. */
int et_findings_max_severity(const struct et_finding *f);

/* ---- Rendering shared by replay, the proxy's live view and show ----------------------- */

enum et_render_flags {
    ET_RENDER_COLOR = 1 << 0,     /* ANSI colours */
    ET_RENDER_FINDINGS = 1 << 1,  /* print each finding under its exchange line */
    ET_RENDER_ADDRS = 1 << 2,     /* add the client address and target host (live view) */
};

/* One timeline line: "  12 08:14:03.120 Nine45069E… Sync 200 1=Success 0.4K/2.1K 120ms". */
int et_timeline_line(const struct et_exchange *x, const struct et_view *v,
                     const struct et_finding *f, unsigned flags, struct et_buf *out);
/* Column headings matching et_timeline_line. */
int et_timeline_header(unsigned flags, struct et_buf *out);
/* A finding as indented text lines (severity, rule, message, next step). */
int et_finding_text(const struct et_finding *f, unsigned flags, const char *indent,
                    struct et_buf *out);

/* Exchange's diagnostic headers of the view (X-CasErrorCode, X-FailureContext decoded, the
 * servers, request-id, ...) as "name: value" lines after indent, scrubbed for a terminal;
 * nothing when there are none. */
int et_view_exdiag_text(const struct et_view *v, const char *indent, struct et_buf *out);

/* One JSON object (no newline) for an exchange: see docs/json.md. */
int et_exchange_json(const struct et_exchange *x, const struct et_view *v,
                     const struct et_finding *f, uint64_t n, struct et_buf *out);
/* JSON array of findings. */
int et_findings_json(const struct et_finding *f, struct et_buf *out);

#ifdef __cplusplus
}
#endif
#endif
