/*
 * HAR 1.2 (HTTP Archive) reader and writer.
 *
 * The reader streams: a small scanner walks the JSON text once, finds log.entries and hands the
 * bytes of one entry at a time (at most ET_HAR_MAX_ENTRY bytes) to a JSON parser, so memory
 * follows the largest entry, never the file. Damage outside an entry is final (entries before
 * it were already handed out); a damaged entry is skipped with ET_EPARSE.
 *
 * The writer streams too: one entry per et_har_writer_add(), credentials redacted by default.
 * See docs/saz-har.md for the field mapping.
 */
#ifndef ET_CAPTURE_HAR_H
#define ET_CAPTURE_HAR_H

#include <stddef.h>

#include "eastrace/common.h"
#include "eastrace/exchange.h"
#include "eastrace/source.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest JSON text of one entry the reader accepts (bodies included). */
#define ET_HAR_MAX_ENTRY ((size_t)256 << 20)
/* Deepest JSON nesting the reader accepts. */
#define ET_HAR_MAX_DEPTH 64

/*
 * Opens a HAR file for reading as a source of exchanges (format "har"). A UTF-8 byte-order
 * mark is skipped. path is borrowed. On success *out is a new source (close with
 * et_source_close); on failure returns a negative ET_E* and sets e.
 * Exchanges carry ET_SRC_HAR; response bodies are the decoded content HAR stores
 * (body.content_decoded says so when the response had a Content-Encoding).
 */
int et_har_open(const char *path, struct et_source **out, struct et_error *e);

/*
 * Same over bytes in memory (fuzzing, tests). p is borrowed and must stay valid until the
 * source is closed; name names it in messages (copied).
 */
int et_har_open_mem(const void *p, size_t n, const char *name, struct et_source **out,
                    struct et_error *e);

/* Writer options. Zero-initialise, then set what you need. */
struct et_har_write_opts {
    /* 0 (default): Authorization, Proxy-Authorization, Cookie and Set-Cookie values are
     * replaced by "[redacted]" (keeping the scheme, and the user name for Basic), and
     * user:password in URLs too. 1: everything is written as recorded. */
    int include_secrets;
    /* creator.version; NULL for ET_VERSION. Borrowed. */
    const char *creator_version;
};

struct et_har_writer;

/*
 * Creates (truncates) path and writes the HAR head. opts may be NULL (defaults) and is copied.
 * On success *out is the writer; finish it with et_har_writer_close.
 */
int et_har_writer_open(const char *path, const struct et_har_write_opts *opts,
                       struct et_har_writer **out, struct et_error *e);
/* Appends one entry for x (borrowed; not kept). Bodies that are not valid UTF-8 are written as
 * base64 ("encoding": "base64"). Returns 0 or a negative ET_E* (I/O errors are final). */
int et_har_writer_add(struct et_har_writer *w, const struct et_exchange *x, struct et_error *e);
/* Writes the tail, flushes, closes and frees w (also after an error). Returns 0 or ET_EIO.
 * NULL does nothing. */
int et_har_writer_close(struct et_har_writer *w, struct et_error *e);

#ifdef __cplusplus
}
#endif
#endif
