/*
 * The exchange pipeline: the one path from "a source yields an exchange" to "a sink shows it".
 * Every command (replay, show, export, mailboxlog, the proxy's live view, probe) goes through
 * it, so the same exchange gets the same number, order, view and findings everywhere.
 *
 *   inputs --et_pipe_open()--> sources (format sniffed; damaged records skipped, a reader
 *      |                        that makes no progress stopped; see docs/architecture.md)
 *      v
 *   merge: one look-ahead exchange per source, smallest start time first
 *      |           (live exchanges come in through et_pipe_push() instead)
 *      v
 *   correlate: the same request seen by a capture, an IIS log and a mailbox log becomes one
 *      |       group (same device, command, HTTP status, start or end within tolerance)
 *      v
 *   reorder: groups held in start-time order; released once the stream's clock is past
 *      |     their end by the window, so a merged timeline is in time order (bounded: a
 *      |     group not done holds back later ones for at most window_max of stream time, and
 *      |     at most ET_PIPE_MAX_HELD groups are held)
 *      v
 *   number -> view (et_view_build, once) -> analyzer (et_analyzer_feed, with the
 *      |      correlation facts: not-in-server-log) -> filter
 *      v
 *   sink->on_exchange(item) ... sink->on_finish(summary findings, analyzer)
 *
 * Numbering (docs/json.md): one input: n is the record's number in its file (capture record,
 * .saz session number, HAR entry, log line or mailbox-log entry), so the proxy's live number,
 * `replay`, `show N` and export agree; several inputs: n is the position in the merged,
 * correlated, unfiltered stream, stable for the same inputs in the same order.
 *
 * Ownership: the pipeline owns every exchange it is given. Items handed to a sink are
 * borrowed and valid only during the callback; a sink that keeps anything copies it.
 */
#ifndef ET_PIPELINE_PIPELINE_H
#define ET_PIPELINE_PIPELINE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "eastrace/analyzer.h"
#include "eastrace/common.h"
#include "eastrace/exchange.h"
#include "eastrace/source.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Which kinds of source saw an exchange. */
enum et_seen {
    ET_SEEN_CAP = 1, /* a client-side recording: capture, .saz, HAR, proxy, probe */
    ET_SEEN_IIS = 2, /* an Exchange IIS log line */
    ET_SEEN_MBX = 4  /* an EAS mailbox log entry */
};
/* The ET_SEEN_* bit of a source kind. */
unsigned et_pipe_seen_of(enum et_source_kind k);

struct et_pipe_item {                  /* borrowed: valid only during the callback */
    uint64_t n;                        /* the one number of this exchange (docs/json.md) */
    const struct et_exchange *x;       /* the richest member of its correlation group */
    const struct et_view *v;           /* built once */
    const struct et_finding *findings; /* this exchange's findings, NULL-terminated list */
    unsigned seen_by;                  /* ET_SEEN_* bits */
    uint64_t record;                   /* its number in its own input (x->id is n) */
};

/* Returned by on_exchange to stop the run without an error (show found its exchange). */
#define ET_PIPE_STOP 1

struct et_pipe_sink {
    /* One delivered exchange. Returns 0 to go on, ET_PIPE_STOP to stop quietly, or a negative
     * ET_E* to stop with that error (et_pipe_run returns it). */
    int (*on_exchange)(void *arg, const struct et_pipe_item *it);
    /* After the last exchange: the analyzer's summary findings (valid until et_pipe_free)
     * and the analyzer for per-device statistics. May be NULL. Not called after a stop. */
    int (*on_finish)(void *arg, const struct et_finding *summary,
                     const struct et_analyzer *an);
    void *arg;
};

/* A problem with an input: skipped is 1 for a damaged record the reader went past, 0 when the
 * input ended with this error. input is the path given. */
typedef void (*et_pipe_error_cb)(void *arg, const char *input, const struct et_error *e,
                                 int skipped);

/* The filters of replay, show and export (cli parses the options). A filtered-out exchange is
 * still numbered and analyzed, so numbers and pattern findings do not depend on filters. */
struct et_pipe_filter {
    const char *device, *user, *cmd, *host, *find; /* borrowed; NULL: any */
    int64_t since, until; /* microseconds since the epoch; 0: no bound */
    int errors_only;      /* only exchanges with a warning or error */
};
/* 1 when the item passes every filter. */
int et_pipe_filter_match(const struct et_pipe_filter *f, const struct et_pipe_item *it);
/*
 * What the filters other than --find read of an exchange, the one definition: the session
 * browser keeps these per row (interned) and judges its grid's filters with
 * et_pipe_filter_match_facts, so that a filter means the same in the page and on the
 * command line. Strings are borrowed from the item (NULL: none).
 */
struct et_pipe_filter_facts {
    const char *device;    /* the view's device (DeviceId, else user, else client) */
    const char *device_id; /* the DeviceId sent */
    const char *user;      /* the User parameter */
    const char *auth_user; /* the Basic user */
    const char *cmd;       /* the EAS command; "OPTIONS" for an OPTIONS request */
    const char *host;      /* the target host */
    int64_t t;             /* et_exchange_time(); 0 unknown */
    int severity;          /* the worst finding (enum et_severity), -1 none */
};
void et_pipe_filter_facts_of(const struct et_pipe_item *it, struct et_pipe_filter_facts *out);
/* 1 when the facts pass every filter but find (which needs the find text). */
int et_pipe_filter_match_facts(const struct et_pipe_filter *f,
                               const struct et_pipe_filter_facts *k);
/*
 * The text --find searches, the one definition (the session browser stores it for its find
 * box): appends to out, each piece ended by a NUL so that no match spans two, the target, the
 * host, the names and values of request and response headers and source fields (meta), the
 * server-log facts ("Status 3", "heartbeat 900", error, SyncKey, exception, access state),
 * the decoded EAS request line, the compact XML of both decoded bodies, and the other bodies
 * that are UTF-8 text. With redact, credentials as the exports write them (redact.h; strings
 * in x's arena). Returns 0, or ET_ENOMEM / ET_ETOOBIG with out holding the pieces so far.
 */
int et_pipe_find_text(const struct et_exchange *x, const struct et_view *v, int redact,
                      struct et_buf *out);
/* 1 when text[0..n) (from et_pipe_find_text) holds needle, ASCII case-insensitive, within a
 * piece. "" matches. */
int et_pipe_find_match(const void *text, size_t n, const char *needle);

/* Groups held for reordering and correlation at most. */
#define ET_PIPE_MAX_HELD 16384

struct et_pipe_opts {
    const char *format;             /* read every input as this format; NULL: sniff each */
    struct et_analyzer_opts analyzer;
    int correlate;                  /* one group per request across kinds of source (1) */
    int64_t tolerance_us;           /* how far two sources' times of one request differ (3 s) */
    int64_t window_us;              /* stream time a group is held past its end (5 s);
                                       0: deliver each exchange as it comes (live view) */
    int64_t window_max_us;          /* stream time a group that is not done holds back the
                                       groups after it, past its start (60 s) */
    struct et_pipe_filter filter;
    uint64_t max_consecutive_skips; /* damaged records in a row that end an input (10000) */
    et_pipe_error_cb on_error;      /* NULL: "eastrace: input: message" on stderr */
    void *error_arg;
};
void et_pipe_opts_default(struct et_pipe_opts *o);

struct et_pipe;

/* A pipeline delivering to sink (copied). o NULL means the defaults. NULL on ENOMEM. */
struct et_pipe *et_pipe_new(const struct et_pipe_opts *o, const struct et_pipe_sink *sink);
/* Frees the pipeline and everything it holds. NULL does nothing. */
void et_pipe_free(struct et_pipe *p);

/*
 * Opens path as an input (o->format, else sniffed; a directory is IIS logs). On failure the
 * error is reported through on_error, counted as a failed input, and returned (ET_EIO,
 * ET_EUNSUPPORTED, ...); the other inputs still run.
 */
int et_pipe_open(struct et_pipe *p, const char *path);
/* Same over bytes in memory (borrowed until et_pipe_free); name is used in messages. */
int et_pipe_open_mem(struct et_pipe *p, const void *data, size_t len, const char *name);
/* Adds an already open source (the pipeline takes ownership). Returns 0 or ET_ENOMEM (the
 * source is closed). */
int et_pipe_add_source(struct et_pipe *p, struct et_source *s);

/* Reads every input to its end, delivers every exchange, then finishes (on_finish).
 * Returns 0, or the sink's negative error. ET_PIPE_STOP from the sink ends it early with 0. */
int et_pipe_run(struct et_pipe *p);

/* Live sources (the proxy, probe): hands x to the pipeline (it takes ownership). With
 * window_us 0 the exchange is delivered before this returns. Returns 0 or the sink's
 * error. */
int et_pipe_push(struct et_pipe *p, struct et_exchange *x);
/* The same for an exchange the caller keeps (the probe uses it after): delivered before this
 * returns, whatever the window; x stays the caller's (its view and findings are allocated in
 * x's arena). Returns 0 or the sink's error. */
int et_pipe_judge(struct et_pipe *p, struct et_exchange *x);
/* Delivers everything held and calls on_finish once. Returns 0 or the sink's error. */
int et_pipe_finish(struct et_pipe *p);

struct et_pipe_stats {
    uint64_t exchanges;      /* delivered to the filter (numbered) */
    uint64_t shown;          /* passed the filter */
    uint64_t damaged;        /* damaged records skipped */
    unsigned inputs;         /* inputs opened */
    unsigned inputs_failed;  /* inputs that could not be opened or ended with an error */
    unsigned kinds;          /* ET_SEEN_* kinds among the inputs */
    int correlating;         /* more than one kind and correlation on */
    uint64_t seen_count[8];  /* delivered groups per seen_by mask */
    int max_severity;        /* highest severity among shown findings and the summary; -1 */
    uint64_t errors, warnings, infos; /* shown findings (and the summary) by severity */
};
const struct et_pipe_stats *et_pipe_stats(const struct et_pipe *p);
/* The analyzer (per-device statistics; summary after et_pipe_finish). */
struct et_analyzer *et_pipe_analyzer(struct et_pipe *p);

/* ---- Formats ---------------------------------------------------------------------------- */

/* The formats the pipeline reads, NULL-terminated: "capture", "saz", "har", "iis",
 * "mailboxlog". */
extern const char *const et_pipe_formats[];
/* The format of a file from its first bytes (and its name, for compressed IIS logs); NULL
 * when it is none eastrace reads. */
const char *et_pipe_sniff(const char *path, const unsigned char *p, size_t n);
/*
 * For commands that read one format (iis, mailboxlog, decode): checks that path looks like
 * `want` ("iis", "mailboxlog", "wbxml", "http"). Returns 0 when it does (or cannot tell),
 * else ET_EUNSUPPORTED with e saying what the file is and which command reads it.
 */
int et_pipe_check_format(const char *path, const char *want, struct et_error *e);

/* ---- Sinks the commands share (sinks.c) ---------------------------------------------- */

/* The replay timeline: one line per exchange (with a seen-by column when correlating),
 * findings grouped after the timeline, summary findings, a device table; or JSON Lines
 * (docs/json.md). Live: findings under each line, flushed at once. */
struct et_pipe_timeline_opts {
    FILE *out;
    int json;
    int no_findings;
    int live;            /* findings under each line, flush per line, no grouped findings */
    unsigned flags;      /* ET_RENDER_* */
    const char *device;  /* --device: summary rows of other devices are left out */
};
struct et_pipe_timeline;
struct et_pipe_timeline *et_pipe_timeline_new(struct et_pipe *p,
                                              const struct et_pipe_timeline_opts *o);
void et_pipe_timeline_free(struct et_pipe_timeline *t);
/* The sink to give et_pipe_new (fill in after; see et_pipe_set_sink). */
struct et_pipe_sink et_pipe_timeline_sink(struct et_pipe_timeline *t);
/* Replaces the sink of p (before the first exchange). */
void et_pipe_set_sink(struct et_pipe *p, const struct et_pipe_sink *sink);

#ifdef __cplusplus
}
#endif
#endif
