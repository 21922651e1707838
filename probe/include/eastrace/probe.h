/*
 * eastrace probe: a connectivity test of an Exchange ActiveSync server, in the order of the
 * Remote Connectivity Analyzer, run from where the user is.
 *
 *   [1] Autodiscover (optional) --> EAS URL
 *   [2] DNS + TCP connect       --> the address that answered
 *   [3] TLS                     --> version, cipher, chain, name, expiry, weak keys
 *   [4] OPTIONS                 --> versions, commands, the version both sides speak
 *   [5] Provision (2 phases)    --> policy, final policy key
 *   [6] FolderSync (SyncKey 0)  --> folder count, Inbox
 *   [7] Sync of the Inbox       (--sync)
 *   [8] Ping of the Inbox       (--ping)
 *
 * Each step ends passed, warned, failed or skipped, with the reason and the next
 * troubleshooting step. A failed step stops the steps that depend on it (they are skipped).
 * Every exchange the probe makes becomes a struct et_exchange (source ET_SRC_PROBE), numbered
 * from 1 and reported through a callback, as the proxy reports its exchanges: the caller
 * records it and judges it (the CLI sends it through the pipeline: capture file, view,
 * analyzer) and may keep findings with the step that made it (et_probe_step_add_finding).
 *
 * The public types hold no OpenSSL type (see STYLE.md); the certificate checks have a PEM
 * entry point for tests and tools.
 */
#ifndef ET_PROBE_PROBE_H
#define ET_PROBE_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/arena.h"
#include "eastrace/common.h"
#include "eastrace/exchange.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a step ended. Ordered by badness: a report's worst is the largest. */
enum et_probe_result {
    ET_PROBE_SKIPPED = 0, /* not asked for, or an earlier step failed */
    ET_PROBE_PASSED = 1,  /* works */
    ET_PROBE_WARNED = 2,  /* works, but something will bite (expiry soon, weak key, ...) */
    ET_PROBE_FAILED = 3   /* does not work; reason and next_step say why and what to do */
};
/* "skipped", "passed", "warned", "failed". */
const char *et_probe_result_name(enum et_probe_result r);

enum et_probe_step_id {
    ET_PROBE_STEP_AUTODISCOVER = 0,
    ET_PROBE_STEP_CONNECT = 1,
    ET_PROBE_STEP_TLS = 2,
    ET_PROBE_STEP_OPTIONS = 3,
    ET_PROBE_STEP_PROVISION = 4,
    ET_PROBE_STEP_FOLDERSYNC = 5,
    ET_PROBE_STEP_SYNC = 6,
    ET_PROBE_STEP_PING = 7,
    ET_PROBE_NSTEPS = 8
};
/* "Autodiscover", "DNS and TCP", "TLS", ... */
const char *et_probe_step_name(enum et_probe_step_id id);

/* A line of a step's report, in order. */
struct et_probe_line {
    const char *text;
    struct et_probe_line *next;
};

/* A finding of the analyzer, copied out of the exchange it was about. */
struct et_probe_finding {
    const char *rule;
    int severity;          /* enum et_severity of analyzer.h: 0 info, 1 warning, 2 error */
    const char *message;
    const char *next_step;
    uint64_t exchange;     /* the probe's exchange number, from 1 */
    struct et_probe_finding *next;
};

struct et_probe_step {
    enum et_probe_step_id id;
    enum et_probe_result result;
    const char *reason;    /* why it failed / warned / was skipped; NULL when it passed */
    const char *next_step; /* what to do about it; NULL when nothing */
    struct et_probe_line *details, *details_tail;  /* facts seen ("TLSv1.3 ...") */
    const char *xml;       /* a decoded body worth showing (the policy), or NULL */
    struct et_probe_finding *findings, *findings_tail;
    int64_t elapsed_us;
};

/*
 * A probe's report. Everything in it lives in its arena and is valid until
 * et_probe_report_free().
 */
struct et_probe_report {
    struct et_probe_step steps[ET_PROBE_NSTEPS];
    const char *url;          /* the EAS URL probed (from the command line or Autodiscover) */
    const char *user;
    const char *protocol;     /* the version used for the commands, NULL before OPTIONS */
    const char *policy_key;   /* the final policy key, NULL when none */
    uint64_t exchanges;       /* HTTP exchanges made */
    uint64_t captured;        /* of which the caller wrote to a capture file */
    const char *capture_error; /* the first capture write error (set by the caller), or NULL */
    struct et_arena *arena;
};

/* Called after each step ends (for live output); r is the report being filled. */
typedef void (*et_probe_step_cb)(const struct et_probe_report *r, const struct et_probe_step *s,
                                 void *arg);
/*
 * Called with each exchange the probe made (x->id its number, from 1), during the step s of
 * the report r being filled. x is borrowed: valid during the call, the probe goes on reading
 * it and frees it; allocate from x->arena only what may go with it. The callee may count it
 * as captured (r->captured, r->capture_error from r->arena) and add findings to s.
 */
typedef void (*et_probe_exchange_cb)(struct et_exchange *x, struct et_probe_report *r,
                                     struct et_probe_step *s, void *arg);

struct et_probe_opts {
    const char *url;          /* https://host[:port][/path]; path defaults to
                                 /Microsoft-Server-ActiveSync. NULL with autodiscover set:
                                 use the URL Autodiscover gives. */
    const char *user;         /* "DOMAIN\user", "user@domain" or "user" (Basic auth) */
    const char *password;
    const char *autodiscover; /* e-mail address: run step 1; NULL skips it */
    const char *autodiscover_url; /* try only this Autodiscover URL (tests, odd set-ups) */
    const char *ca_file;      /* PEM trust anchors instead of the system store */
    int insecure;             /* go on after a certificate failure (the step stays failed) */
    const char *protocol;     /* force an EAS version ("14.1"); NULL: negotiate */
    const char *device_id;    /* default "EASTRACEPROBE0001" */
    const char *device_type;  /* default "eastrace" */
    const char *user_agent;   /* default "eastrace-probe/VERSION" */
    const char *proxy;        /* "host:port" of an HTTP proxy (CONNECT); NULL: direct */
    int do_sync;              /* step 7 */
    int do_ping;              /* step 8 */
    int ping_seconds;         /* HeartbeatInterval of the Ping (default 60) */
    int timeout_ms;           /* connect and I/O timeout (default 15000) */
    int include_secrets;      /* keep Authorization in captures and output */
    et_probe_step_cb on_step;
    void *cb_arg;
    et_probe_exchange_cb on_exchange; /* every exchange made; NULL: none reported */
    void *exchange_arg;
};

void et_probe_opts_init(struct et_probe_opts *o);

/* Adds a finding about exchange number `exchange` to step s of r (strings are copied into
 * r's arena). severity: enum et_severity of analyzer.h. Returns 0 or ET_ENOMEM. */
int et_probe_step_add_finding(struct et_probe_report *r, struct et_probe_step *s,
                              const char *rule, int severity, const char *message,
                              const char *next_step, uint64_t exchange);

/*
 * Runs the probe. Borrows o for the duration of the call. *out receives the report (free
 * with et_probe_report_free) whenever one could be allocated, also on failure.
 * Returns 0 when the steps ran (whatever their results), ET_EINVAL for bad options (a URL
 * that cannot be parsed; e says why), or
 * ET_ENOMEM.
 */
int et_probe_run(const struct et_probe_opts *o, struct et_probe_report **out,
                 struct et_error *e);
void et_probe_report_free(struct et_probe_report *r);

/* Worst result over all steps. */
enum et_probe_result et_probe_report_worst(const struct et_probe_report *r);

/* Renderings. flags: ET_PROBE_TEXT_COLOR for ANSI colours. Append to out; return 0 or an
 * et_buf error. */
#define ET_PROBE_TEXT_COLOR 1u
int et_probe_step_text(const struct et_probe_step *s, unsigned flags, struct et_buf *out);
int et_probe_report_text(const struct et_probe_report *r, unsigned flags, struct et_buf *out);
/* The closing lines of the text rendering: "result: ...; EAS 14.1; 9 exchanges (9 captured)". */
int et_probe_report_summary(const struct et_probe_report *r, struct et_buf *out);
/* One JSON object: {"url":...,"user":...,"result":"passed","steps":[{"step":1,"name":...,
 * "result":...,"reason":...,"next_step":...,"details":[...],"xml":...,"findings":[...]}]}. */
int et_probe_report_json(const struct et_probe_report *r, struct et_buf *out);

/* The EAS versions eastrace speaks, highest last: "2.5", "12.0", ..., "16.1". */
extern const char *const et_probe_our_versions[];
extern const size_t et_probe_our_versions_count;

#ifdef __cplusplus
}
#endif
#endif
