/*
 * Private to report/, whose files follow the jobs:
 *   report.c    the scan and the counts: workers over byte ranges or streams, merging
 *   output.c    the grids of each report and their rendering (table, CSV, HTML, JSON)
 *   findings.c  the analyzer's findings computed in the report's own pass:
 *
 *   worker (count_line) --split fields, scanned query--> et__fw_line: one compact record per
 *       line the IIS reader would make an exchange of, kept per device shard (no exchange)
 *   after the file's workers --> et__fa_run: one thread per shard feeds the shard's analyzer
 *       with a view built from each record, device after device, each device's records in
 *       file order (the analyzer's state is per device, so this gives the same findings as
 *       one analyzer over the whole file)
 *   et__fa_table --> the "findings" table: one row per rule, device and message head (run by
 *       output.c on a second thread while the report's own tables are written)
 */
#ifndef ET_REPORT_REPORT_INT_H
#define ET_REPORT_REPORT_INT_H

#include <stdint.h>

#include "eastrace/iis.h"
#include "eastrace/iisreport.h"
#include "eastrace/iisline.h"
#include "eastrace/map.h"

#define ET__SHARDS_MAX 16

/* One worker's records (a byte range, a stream or a prefix recount). */
struct et__fw;

/* NULL on ENOMEM. nshards is at most ET__SHARDS_MAX; site is the report's --site. */
struct et__fw *et__fw_new(int nshards, enum et_iis_site site);
void et__fw_free(struct et__fw *fw);
/* A data line whose cs-uri-stem is the front end's was seen (the reader's site choice
 * depends on it even for lines that are skipped later). */
void et__fw_frontend(struct et__fw *fw);
/* Is this data line (after the site choice, before any other filter) one the reader makes
 * an exchange of? Counts it (the reader numbers its exchanges) and returns 1 if so. Call it
 * for every such line, then et__fw_line for the ones that pass the report's filters. */
int et__fw_candidate(struct et__fw *fw, const struct et_iis_layout *l, const struct et_slice *f,
                     int n, enum et_iis_stem stem);
/*
 * Records one data line as the reader would make it an exchange: l the layout, f/n the
 * split fields (n counts every field up to l->n + 1), stem its class, q its scanned (not
 * base64-decoded) query, qcmd et_eas_cmd_from of q's Cmd (read only for a plain query),
 * t_end its date and time (us since the epoch, 0 when unparsable). dev_hint: NULL, or a place kept for q's DeviceId as spelt (the hits row of that key): 0,
 * or what this function stored there for it before, which saves finding the device again.
 * Lines the reader would skip are ignored. Sets *oom on ENOMEM.
 */
void et__fw_line(struct et__fw *fw, const struct et_iis_layout *l, const struct et_slice *f,
                 int n, enum et_iis_stem stem, const struct et_iis_query *q,
                 enum et_eas_cmd qcmd, int64_t t_end, uint32_t *dev_hint, int *oom);
/* The records so far are the prefix of a range (before its first #Fields line). */
void et__fw_mark_prefix(struct et__fw *fw);

/* The findings of a report: one analyzer per shard and the grouped rows. */
struct et__fa;
struct et__fa *et__fa_new(int nshards);
void et__fa_free(struct et__fa *fa);
/* Starts a new path argument (the reader's site choice starts over per path). */
void et__fa_path(struct et__fa *fa);
/* One run of records in file order: fw's records, without its prefix when skip_prefix. */
struct et__fa_seg {
    struct et__fw *fw;
    int skip_prefix;
};
/* Feeds the segments (in file order) to the shards' analyzers, one thread per shard.
 * site is the report's --site. Returns 0 or ET_ENOMEM. */
int et__fa_run(struct et__fa *fa, const struct et__fa_seg *segs, int nsegs, enum et_iis_site site);
/* Ends the analysis (summary findings) and builds the table, rows sorted by severity, count,
 * rule, device. device: only this device (case-insensitive), or NULL. The cells live in fa.
 * Returns 0 or ET_ENOMEM. */
int et__fa_table(struct et__fa *fa, const char *device, const char *const **cells, size_t *nrows);
extern const char *const et__fa_cols[7];

/* ---- shared by the scan (report.c) and the output (output.c) --------------------------- */

#define NERR 13 /* et_iis_known_errors_n (checked in report.c) */

enum { H_4XX, H_5XX, H_409, H_451, H_500, H_503, H_507, H_COUNT };
extern const char *const et__http_names[H_COUNT];

/* One row of a keyed table: a device (hits report), a user, an error name, an hour... */
struct row {
    const char *key;
    size_t klen;
    int64_t bucket;
    const char *user, *devtype, *ua, *username;
    uint64_t hits;
    uint32_t cmd[ET_EAS_CMD_COUNT];
    uint32_t http[H_COUNT];
    uint32_t err[NERR];
    uint32_t err_other;
    uint64_t scb, csb, tt;   /* sums */
    uint32_t scb_n, csb_n, tt_n;
    uint64_t tt_max;
    uint32_t fdev;       /* et__fw_line's dev_hint for the key (hits rows of a worker) */
};

/* Rows keyed by (key, bucket), the key compared ASCII case-insensitively (DeviceIds as the
 * script counts them). */
struct table {
    struct et_map m;
};

/* Calls the rows of t in turn: for (size_t i = 0; i < t->m.cap; i++) with ROW_AT. */
#define ROW_AT(t, i) ((struct row *)(t)->m.slot[i].val)

#define HBINS (1024 + 54 * 64)

struct hist {
    uint64_t bin[HBINS];
    uint64_t n, sum, max;
};

struct rec {
    int64_t t;
    const char *user, *device, *devtype, *cmd, *error, *as, *ty, *st, *ua;
    int http, sub, win32;
    long status, sk, hb, rpcc, rpcl, tt;
};

struct recs {
    struct rec *v;
    size_t n, cap;
    int truncated;
};

/* Everything one worker counts for one site. */
struct agg {
    struct table devs;    /* key DeviceId, bucket = interval start */
    struct table errs;    /* key Error name */
    struct table hours;   /* key "", bucket = hour */
    struct table keyed;   /* synckey0 / syncs-by-synckey / top users: composite keys */
    struct hist scb, csb, tt;
    uint32_t http[H_COUNT];
    uint64_t eas;
    struct recs recs;
};

struct extra_table {
    const char *name;
    const char **cols;
    int ncols;
    const char **cells;
    size_t nrows;
};

struct et_iis_report {
    struct et_iis_report_opts o;
    struct extra_table extra[4]; /* the caller's tables (findings), strings in arena */
    int nextra;
    char date[11];          /* normalized YYYY-MM-DD, "" for all */
    char *device;
    struct agg side[2];     /* 0 front end (or everything), 1 back end */
    struct et_arena *arena; /* keys and rows of side[] (merged) */
    uint64_t lines, bad, bytes, frontend, backend;
    int bad_alloc;          /* a table hit its cap or memory ran out */
    struct et__fa *fa;      /* the analyzer's findings (o.findings), NULL without */
    int fa_done;            /* the findings table is built (summary findings taken) */
    const char *const *fa_cells;
    size_t fa_rows;
    const struct et_iis_report_result *given; /* et_iis_report_write_result's tables */
};


/* Finds or adds the row for (k, b) in t (new rows and keys in a). NULL on ENOMEM or when
 * the table is full. */
struct row *et__table_get(struct table *t, struct et_arena *a, const char *k, size_t kl,
                          int64_t b);
/* The p-quantile (0..1) of h. */
uint64_t et__hist_pct(const struct hist *h, double p);
/* The side (0 front end, 1 back end) the report shows. */
int et__chosen_side(const struct et_iis_report *r);

#endif
