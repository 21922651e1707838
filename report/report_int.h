/*
 * Private to report/: the analyzer's findings computed in the report's own pass (findings.c).
 *
 *   worker (count_line) --split fields, scanned query--> et__fw_line: one compact record per
 *       line the IIS reader would make an exchange of, kept per device shard (no exchange)
 *   after the file's workers --> et__fa_run: one thread per shard feeds the shard's analyzer
 *       with a view built from each record, in file order (per device: the analyzer's state
 *       is per device, so shards give the same findings as one analyzer over the whole file)
 *   et__fa_table --> the "findings" table: one row per rule, device and message head
 */
#ifndef ET_REPORT_REPORT_INT_H
#define ET_REPORT_REPORT_INT_H

#include <stdint.h>

#include "eastrace/iis.h"
#include "eastrace/iisline.h"

#define ET__SHARDS_MAX 16

/* One worker's records (a byte range, a stream or a prefix recount). */
struct et__fw;

/* NULL on ENOMEM. nshards is at most ET__SHARDS_MAX. */
struct et__fw *et__fw_new(int nshards);
void et__fw_free(struct et__fw *fw);
/* A data line whose cs-uri-stem is the front end's was seen (the reader's site choice
 * depends on it even for lines that are skipped later). */
void et__fw_frontend(struct et__fw *fw);
/*
 * Records one data line as the reader would make it an exchange: l the layout, f/n the
 * split fields (n counts every field up to l->n + 1), stem its class, q its scanned (not
 * base64-decoded) query, t_end its date and time (us since the epoch, 0 when unparsable). Lines the reader would skip are ignored. Sets *oom on ENOMEM.
 */
void et__fw_line(struct et__fw *fw, const struct et_iis_layout *l, const struct et_slice *f,
                 int n, enum et_iis_stem stem, const struct et_iis_query *q, int64_t t_end,
                 int *oom);
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

#endif
