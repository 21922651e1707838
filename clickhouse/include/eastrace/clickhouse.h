/*
 * ClickHouse as the engine of the IIS reports (docs/scale-out.md): a loader that streams every
 * EAS request line of IIS logs into a typed table through ClickHouse's HTTP interface, and the
 * reports of iisreport.h computed there with SQL and rendered by the same renderer, so that
 * `eastrace iis --engine URL` prints what `eastrace iis LOG...` prints over the same logs.
 *
 *   et_ch_url_parse("clickhouse://HOST:PORT/DB") -> et_ch_load(paths) | et_ch_report(opts)
 *
 * Blocking I/O with a timeout on every step; meant for the command line.
 */
#ifndef ET_CLICKHOUSE_CLICKHOUSE_H
#define ET_CLICKHOUSE_CLICKHOUSE_H

#include <stdint.h>
#include <stdio.h>

#include "eastrace/common.h"
#include "eastrace/iisreport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default table names (in the URL's database): the requests and the files loaded. */
#define ET_CH_TABLE "eas_requests"
#define ET_CH_FILES_SUFFIX "_files"

/* clickhouse://[USER@]HOST[:PORT]/DB[?table=NAME]: a parsed engine URL. */
struct et_ch_url {
    char host[256];
    int port;              /* 8123 when not given */
    char db[64];           /* [A-Za-z0-9_]+ */
    char table[64];        /* [A-Za-z0-9_]+, ET_CH_TABLE by default */
    char user[64];         /* "" for the server's default user */
    const char *password;  /* from CLICKHOUSE_PASSWORD (borrowed from the environment) */
    int timeout_ms;        /* connect and send; 0 means 30000 (answers may take up to
                              EASTRACE_CH_QUERY_TIMEOUT seconds, default 3600) */
};

/* Parses url into u. Returns 0 or ET_EINVAL with e saying what is wrong and the form
 * expected. No password in the URL (command lines are visible to every user). */
int et_ch_url_parse(const char *url, struct et_ch_url *u, struct et_error *e);

/* Writes the CREATE TABLE statements (requests, then files) for db.table; db NULL gives
 * the default names, so the output can be run on every shard of a cluster. */
void et_ch_print_schema(FILE *f, const char *db, const char *table);

struct et_ch_load_stats {
    uint64_t files, lines, bad, rows, bytes, batches;
    uint64_t skipped;      /* files loaded before (same name and size on disk): not again */
    double seconds;
};

struct et_ch_load_opts {
    size_t batch_rows;     /* rows per INSERT (0: 200,000; ClickHouse holds a batch in memory) */
    int progress;          /* a line per batch on stderr */
};

/*
 * Loads the EAS lines of every path (files, .gz, directories) into u's table, creating the
 * database's tables when missing and refusing (ET_EINVAL, naming the column) a table of
 * another schema. A file whose name and size are in the files table already is skipped (so a
 * log directory can be loaded again as it grows); one loaded at another size is loaded again
 * with a note on stderr. Rows are streamed as TabSeparated in chunked INSERTs of batch_rows rows:
 * memory does not grow with the logs. Returns 0, or ET_E* with e naming the step.
 */
int et_ch_load(const struct et_ch_url *u, char *const *paths, int npaths,
               const struct et_ch_load_opts *o, struct et_ch_load_stats *st, struct et_error *e);

/* Filters of the engine reports beyond those of et_iis_report_opts. */
struct et_ch_filter {
    int64_t since, until;  /* microseconds since the epoch; 0: no bound (until exclusive) */
};

/*
 * Computes report o->kind over u's table with SQL and writes it in fmt, as
 * et_iis_report_write would over the logs that were loaded. With findings, every format but
 * CSV ends with a table naming the analyzer's rules and why they need the local pass.
 * Returns 0 or ET_E* (e set: connection, server message, schema).
 */
int et_ch_report(const struct et_ch_url *u, const struct et_iis_report_opts *o,
                 const struct et_ch_filter *flt, int findings, FILE *out,
                 enum et_report_format fmt, struct et_error *e);

#ifdef __cplusplus
}
#endif
#endif
