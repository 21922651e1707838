/*
 * IIS log reports: what ActiveSyncReport.ps1 and the Log Parser Studio ActiveSync queries do,
 * computed on a fast path that never builds an exchange: lines are split in place in a large
 * read buffer, plain files are cut into byte ranges at line boundaries and read by one thread
 * each, and the per-thread tables are merged. Memory grows with the number of devices (and
 * with rows kept by the row reports, capped), never with the size of the logs.
 *
 *   et_iis_report_new -> et_iis_report_add_path / _add_mem ... -> et_iis_report_write -> _free
 */
#ifndef ET_REPORT_IISREPORT_H
#define ET_REPORT_IISREPORT_H

#include <stdint.h>
#include <stdio.h>

#include "eastrace/common.h"
#include "eastrace/iis.h"
#include "eastrace/iisline.h"

#ifdef __cplusplus
extern "C" {
#endif

enum et_iis_report_kind {
    ET_IIS_REPORT_HITS = 0,        /* ActiveSyncReport.ps1: hits per device (default) */
    ET_IIS_REPORT_ERRORS,          /* count of every Error: value and HTTP error status */
    ET_IIS_REPORT_SYNCKEY0,        /* Syncs with SyncKey 0 per user and device */
    ET_IIS_REPORT_SYNCS_BY_SYNCKEY,/* Syncs per user, device and SyncKey */
    ET_IIS_REPORT_DEVICE_TIMELINE, /* one device's requests in time order (--device) */
    ET_IIS_REPORT_SENDMAIL,        /* SendMail requests: Status, Error, As, sc-status */
    ET_IIS_REPORT_EAS_ERRORS,      /* requests with an Error:, a Status > 1 or HTTP >= 400 */
    ET_IIS_REPORT_RPC,             /* requests with high RpcC or RpcL */
    ET_IIS_REPORT_TOP,             /* top users and devices by hits */
    ET_IIS_REPORT_CALENDAR,        /* calendar requests (Ty Ca, MeetingResponse) */
    ET_IIS_REPORT_COUNT
};

/* "hits", "errors", "synckey0", ... -> kind; -1 when unknown. */
int et_iis_report_kind_from(const char *name);
const char *et_iis_report_kind_name(enum et_iis_report_kind k);

struct et_iis_report_opts {
    enum et_iis_report_kind kind;
    enum et_iis_site site;
    long minimum_hits;    /* rows with fewer hits are left out (hits report) */
    long top;             /* keep the N rows with most hits; 0 = all (top report: 20) */
    long interval;        /* seconds per bucket (3600 = --hourly); 0 = whole period */
    const char *date;     /* only lines of this date ("2011-05-06" or "05-06-2011") */
    const char *device;   /* only this DeviceId (case-insensitive) */
    int threads;          /* worker threads for plain files; 0 = 2 */
    int progress;         /* draw a progress bar on stderr */
    long rpc_count_min;   /* rpc report: RpcC at or above (default 500) */
    long rpc_latency_min; /* rpc report: RpcL ms at or above (default 1000) */
    size_t max_rows;      /* row reports keep at most this many rows (default 1000000) */
    int findings;         /* also run the analyzer (replay's rules) over the EAS lines in the
                             same pass, and add its "findings" table (not to CSV) */
};

struct et_iis_report;

/*
 * Adds a table of the caller's own (the CLI puts the analyzer's findings here) that every
 * output format except CSV renders after the report's tables. cols and cells (nrows * ncols,
 * row by row) are copied. At most 4 extra tables. Returns 0, ET_ENOMEM or ET_ETOOBIG.
 */
struct et_iis_report;
int et_iis_report_add_table(struct et_iis_report *r, const char *name, const char *const *cols,
                            int ncols, const char *const *cells, size_t nrows);

/* o is copied (date and device strings too). NULL on ENOMEM or bad date. */
struct et_iis_report *et_iis_report_new(const struct et_iis_report_opts *o);
void et_iis_report_free(struct et_iis_report *r);

/* Adds a file (plain: threaded; .gz: streamed) or a directory of logs. Returns 0 or an
 * ET_E* with e naming the file. Bad lines are counted, not fatal. */
int et_iis_report_add_path(struct et_iis_report *r, const char *path, struct et_error *e);
/* Adds log bytes (borrowed for the call only). */
int et_iis_report_add_mem(struct et_iis_report *r, const void *data, size_t len,
                          struct et_error *e);

enum et_report_format {
    ET_REPORT_TABLE = 0, /* aligned text table */
    ET_REPORT_CSV = 1,   /* RFC 4180 CSV, header row first */
    ET_REPORT_HTML = 2,  /* one self-contained page: inline CSS, SVG chart, tables */
    ET_REPORT_JSON = 3   /* one JSON object */
};

/* Writes the report. Returns 0 or ET_EIO / ET_ENOMEM. */
int et_iis_report_write(struct et_iis_report *r, FILE *out, enum et_report_format fmt,
                        struct et_error *e);

/* Counters after adding input. */
struct et_iis_report_totals {
    uint64_t lines;        /* data lines read */
    uint64_t eas;          /* EAS lines counted (after site choice and filters) */
    uint64_t frontend, backend; /* EAS lines seen per site, before the choice */
    uint64_t bad;          /* lines that could not be split into the #Fields columns */
    uint64_t bytes;        /* input bytes */
    uint64_t devices;      /* rows of the hits table */
    int site_used;         /* enum et_iis_site actually counted (AUTO resolves) */
};
void et_iis_report_totals(const struct et_iis_report *r, struct et_iis_report_totals *t);

/*
 * A report computed elsewhere (the ClickHouse engine, clickhouse.h): its tables as text cells,
 * its totals and its hits per hour, rendered exactly as et_iis_report_write renders a report
 * of its own (same tables, same formats). Everything is borrowed for the call.
 */
struct et_iis_report_table {
    const char *name;
    const char *const *cols;
    int ncols;
    const char *const *cells; /* nrows * ncols, row by row */
    size_t nrows;
};
struct et_iis_report_result {
    enum et_iis_report_kind kind;
    struct et_iis_report_totals totals; /* site_used: the site counted (not AUTO) */
    const int64_t *hour;                /* hours since the epoch (UTC), ascending */
    const uint64_t *hour_hits;
    size_t nhours;
    int truncated;                      /* a row cap was reached */
    const struct et_iis_report_table *tables;
    int ntables;                        /* at most 8 */
};
/* Returns 0, ET_EINVAL (too many tables or columns), ET_ENOMEM or ET_EIO. */
int et_iis_report_write_result(const struct et_iis_report_result *res, FILE *out,
                               enum et_report_format fmt, struct et_error *e);

/* Known EAS Error names, in the script's order; the report counts every other one too. */
extern const char *const et_iis_known_errors[];
extern const size_t et_iis_known_errors_n;

/* Hook for `--mail-to/--smtp` (not yet implemented): the HTML report is rendered to a
 * memory buffer with et_iis_report_write over open_memstream() and handed to a mailer. */

#ifdef __cplusplus
}
#endif
#endif
