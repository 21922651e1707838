/* Private to clickhouse/: the HTTP client, the schema and TabSeparated helpers. */
#ifndef ET_CLICKHOUSE_CH_INT_H
#define ET_CLICKHOUSE_CH_INT_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/clickhouse.h"

/* Largest response kept in memory (row reports cap their rows well below this). */
#define ET__CH_RESP_MAX ((size_t)1 << 30)

/* One request on its own connection (Connection: close): a query in the body, or an INSERT
 * whose query is in the URL and whose data is streamed as chunks.
 *
 *   et__ch_begin(query in URL) -> et__ch_write ... -> et__ch_end(response)
 */
struct et__ch_req {
    const struct et_ch_url *u;
    int fd;
    struct et_buf out;     /* pending chunk data */
    uint64_t sent;         /* body bytes sent */
};

/* Connects and sends the request head of a chunked POST whose query (url-encoded here) is
 * insert_sql. Returns 0 or ET_E* (e: "ClickHouse at HOST:PORT: ..."). */
int et__ch_begin(struct et__ch_req *r, const struct et_ch_url *u, const char *insert_sql,
                 struct et_error *e);
/* Appends body bytes; sends a chunk when 256 KiB are pending. */
int et__ch_write(struct et__ch_req *r, const void *p, size_t n, struct et_error *e);
/* Ends the body, reads the answer into resp (body only, de-chunked). Returns 0 for HTTP 200,
 * else ET_EDENIED with the server's exception in e, or a connection error. Closes. */
int et__ch_end(struct et__ch_req *r, struct et_buf *resp, struct et_error *e);
/* Frees what begin acquired (after an error of write). */
void et__ch_abort(struct et__ch_req *r);

/* Runs one query (SQL in the body) and returns the answer body in resp. Returns as above. */
int et__ch_query(const struct et_ch_url *u, const char *sql, struct et_buf *resp,
                 struct et_error *e);
/* GET /ping: 0 when the server answers "Ok.", else a clear error. */
int et__ch_ping(const struct et_ch_url *u, struct et_error *e);

/* Appends s (n bytes) as a TabSeparated field: \\ \t \n \r \0 escaped. */
int et__ch_tsv_put(struct et_buf *b, const void *s, size_t n);
/* Unescapes a TabSeparated field in place; returns its new length. */
size_t et__ch_tsv_unescape(char *s, size_t n);
/* Appends s as a quoted SQL string literal ('...' with \\ \' and control bytes as \xHH). */
int et__ch_sql_str(struct et_buf *b, const char *s);

/* Creates the tables when missing and checks their columns; ET_EINVAL names a difference. */
int et__ch_schema_ensure(const struct et_ch_url *u, int create, struct et_error *e);

#endif
