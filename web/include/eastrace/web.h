/*
 * eastrace web: the session browser. A store of exchanges the pipeline (or the live proxy)
 * hands over, a small HTTP/1.1 server on libuv that serves the page and a JSON API over the
 * store, and a writer of the same page as one self-contained HTML file.
 *
 *   pipeline sink --et_web_store_add()--> store: compact rows in memory (one per exchange),
 *                                         detail JSON and search text spilled to a temporary
 *                                         file, findings by rule, devices
 *   browser --HTTP--> server (own thread and loop) --> store queries (filter, sort, page)
 *   et_web_export_html() --> one .html file: the page with the store's data embedded
 *
 * Memory stays bounded: a row is about 120 bytes plus interned strings (devices, users,
 * commands repeat); everything large lives in the spill file and is read back on demand.
 * The store is thread-safe: the server's thread reads while the caller adds.
 * docs/web.md describes the API, the page and the security rules.
 */
#ifndef ET_WEB_WEB_H
#define ET_WEB_WEB_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/analyzer.h"
#include "eastrace/common.h"
#include "eastrace/exchange.h"
#include "eastrace/pipeline.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Which kinds of source saw an exchange (the pipeline's ET_SEEN_* values). */
enum et_web_seen {
    ET_WEB_SEEN_CAP = 1, /* a client-side recording: capture, .saz, HAR, the proxy */
    ET_WEB_SEEN_IIS = 2, /* an IIS log line */
    ET_WEB_SEEN_MBX = 4  /* a mailbox log entry */
};

struct et_web_store_opts {
    int include_secrets; /* 1: headers and targets as recorded (default: redacted as exports) */
    size_t max_rows;     /* rows kept (live: the oldest go first); 0 means 1,000,000 */
    size_t max_body_xml; /* XML/text shown per body; 0 means 4 MiB (the rest is cut, noted) */
    size_t max_body_hex; /* binary bytes shown as hex per body; 0 means 64 KiB */
    int redact_search;   /* 1: the --find text is built from redacted headers too (a store
                          * for et_web_export_html, whose text leaves the machine) */
};

struct et_web_store;

/* A new empty store; its spill file is an unlinked temporary file. NULL on failure (e set). */
struct et_web_store *et_web_store_new(const struct et_web_store_opts *o, struct et_error *e);
/* Frees the store and closes the spill file. NULL does nothing. */
void et_web_store_free(struct et_web_store *s);

/*
 * Adds one exchange: n is its number in the timeline (as replay prints it), f its findings
 * (NULL-terminated list, may be NULL), seen ET_WEB_SEEN_* bits (0: unknown). Borrows
 * everything; what the store keeps is copied. Returns 0, ET_ENOMEM or ET_EIO (spill file).
 */
int et_web_store_add(struct et_web_store *s, uint64_t n, const struct et_exchange *x,
                     const struct et_view *v, const struct et_finding *f, unsigned seen);

/* The end of the input: summary findings (may be NULL) and the analyzer's per-device
 * statistics (an may be NULL: the store's own counts are used). Copies what it keeps. */
int et_web_store_finish(struct et_web_store *s, const struct et_finding *summary,
                        const struct et_analyzer *an);

/* The store as a pipeline sink: on_exchange adds the item (n, x, v, findings, seen_by),
 * on_finish calls et_web_store_finish. */
struct et_pipe_sink et_web_store_sink(struct et_web_store *s);

/* A request in flight (live proxy): shown as pending until et_web_store_end_pending() or
 * the exchange itself arrives with the same key. heartbeat_s: the Ping/Sync wait the client
 * asked for (-1 when none). Copies the strings. */
int et_web_store_begin_pending(struct et_web_store *s, uint64_t key, int64_t start_us,
                               const char *device, const char *cmd, const char *host,
                               long heartbeat_s);
void et_web_store_end_pending(struct et_web_store *s, uint64_t key);

/* Mode flags the page shows ("live" makes it wait for new exchanges). */
void et_web_store_set_live(struct et_web_store *s, int live);

/* Exchanges held, and the highest severity of any finding added (-1 none). */
size_t et_web_store_count(const struct et_web_store *s);

/*
 * One API request against the store: path is the request target ("/api/rows?sort=n&...").
 * Appends a JSON document to out and sets *status (200, 400, 404). Used by the server and
 * by tests. Returns 0 or ET_ENOMEM.
 */
int et_web_store_api(struct et_web_store *s, const char *target, struct et_buf *out,
                     int *status);

/* ---- the server ------------------------------------------------------------------------ */

struct et_web_server_opts {
    const char *listen;    /* "127.0.0.1:0" (default) or ADDR:PORT; port 0 picks one */
    const char *token;     /* access token; NULL generates a random one (32 hex digits) */
    unsigned max_conns;    /* 0 means 64 */
};

struct et_web_server;

/*
 * Starts the server on its own thread (its own libuv loop) over store s, which must outlive
 * it. On success *out is set and et_web_server_url() gives the URL to print. Returns 0,
 * ET_EINVAL (bad listen address), ET_EIO (bind failed: e says why) or ET_ENOMEM.
 */
int et_web_server_start(struct et_web_store *s, const struct et_web_server_opts *o,
                        struct et_web_server **out, struct et_error *e);
/* "http://127.0.0.1:PORT/?token=..." (valid until et_web_server_stop). */
const char *et_web_server_url(const struct et_web_server *srv);
/* 1 when bound to a loopback address. */
int et_web_server_loopback(const struct et_web_server *srv);
/* Stops the thread, closes every connection, frees srv. NULL does nothing. */
void et_web_server_stop(struct et_web_server *srv);

/* ---- the self-contained file ----------------------------------------------------------- */

/*
 * Writes the page with every row, detail, device and finding of s embedded (JSON in a
 * non-executable script element, '<' escaped so no "</script>" can end it), script and style
 * inline under a Content-Security-Policy that allows only them (by hash) and no network
 * access. title is shown in the page (escaped). Returns 0 or ET_EIO / ET_ENOMEM with e set.
 */
int et_web_export_html(struct et_web_store *s, const char *path, const char *title,
                       struct et_error *e);

#ifdef __cplusplus
}
#endif
#endif
