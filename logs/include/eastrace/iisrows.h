/*
 * IIS log rows: every EAS request line of Exchange IIS logs as one typed record, with the
 * same reading rules as the report (iisreport.h): a file starts under the default layout,
 * each #Fields line replaces it (a broken one falls back to the default), a line with fewer
 * columns than its layout names is counted as bad, and only ActiveSync stems give a row. The
 * loader of an analytics engine (clickhouse/) is built on it, so a report computed there
 * counts exactly what the local report counts.
 *
 *   et_iis_rows_open(path) -> et_iis_rows_next() ... 1 row / 2 a file ended / 0 end -> _free
 */
#ifndef ET_LOGS_IISROWS_H
#define ET_LOGS_IISROWS_H

#include <stdint.h>

#include "eastrace/common.h"
#include "eastrace/iis.h"
#include "eastrace/iisline.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * One EAS request line. Every slice borrows the line (or, for the decoded fields of a base64
 * query, a scratch arena) and is valid until the next et_iis_rows_next(). Absent columns ("-"
 * or not in the layout) are empty slices; absent numbers are -1.
 */
struct et_iis_row {
    const char *file;        /* the file being read (as listed) */
    uint64_t lineno;         /* its line number, from 1 */
    enum et_iis_stem stem;   /* front end or back end (Proxy) */
    int64_t t_us;            /* date + time in microseconds (UTC); 0 when they do not parse */
    struct et_slice s_ip, host, method, uri_stem, query, username, c_ip, ua, referer;
    long s_port, status, substatus, win32, sc_bytes, cs_bytes, time_taken;
    struct et_iis_query q;   /* cmd/user/device as logged; decoded when q.base64 */
    int base64_bad;          /* q.base64 and the decoder refused it (fields partly empty) */
    enum et_eas_cmd cmd;     /* from q.cmd; ET_EAS_CMD_OPTIONS for OPTIONS without Cmd */
    struct et_eas_log log;   /* the parsed Log= value */
};

/* Counters of the file that just ended (return 2) or of everything read (after 0). */
struct et_iis_rows_totals {
    uint64_t lines;  /* data lines (not comments, not empty), as the report counts them */
    uint64_t bad;    /* lines that did not fit their #Fields layout */
    uint64_t eas;    /* rows produced */
    uint64_t bytes;  /* input bytes */
};

struct et_iis_rows;

/* Opens path: a file (plain or .gz) or a directory of logs (as et_iis_report_add_path lists
 * them). Returns 0, ET_ENOMEM, ET_EIO or ET_ENOTFOUND with e naming the path. */
int et_iis_rows_open(const char *path, struct et_iis_rows **out, struct et_error *e);
/* Same over bytes in memory (borrowed: they must outlive the reader). */
int et_iis_rows_open_mem(const void *data, size_t len, const char *name,
                         struct et_iis_rows **out, struct et_error *e);
/*
 * Next row. Returns 1 with *row filled; 2 when a file ended (row->file names it and
 * et_iis_rows_totals(r, 1, ...) gives its counters); 0 at the end; ET_EIO (e names the file
 * and offset) or ET_ENOMEM. After an error the reader is at the end.
 */
int et_iis_rows_next(struct et_iis_rows *r, struct et_iis_row *row, struct et_error *e);
/* Counters: of the file that ended last (file != 0) or of all files so far. */
void et_iis_rows_totals(const struct et_iis_rows *r, int file, struct et_iis_rows_totals *t);
void et_iis_rows_free(struct et_iis_rows *r);

#ifdef __cplusplus
}
#endif
#endif
