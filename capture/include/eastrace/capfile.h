/*
 * The eastrace capture file: an append-only file of self-checking records, one per exchange,
 * written by `eastrace proxy -w FILE` and read back as a struct et_source. The byte layout is
 * in docs/capture-format.md.
 *
 *   proxy --(et_exchange)--> et_capfile_write() --> FILE --> et_capfile_open() --> et_source
 *
 * Crash safety: every record goes out in one writev(), carries two CRC32s and repeats its
 * length after the payload, so a kill -9 leaves either whole records or one torn tail, which
 * the reader reports ("torn record at byte N: skipped") and steps over by resynchronising on
 * the next record's sync marker. Records start with a per-file random nonce, so bytes inside a
 * recorded body cannot pass for a record.
 */
#ifndef ET_CAPTURE_CAPFILE_H
#define ET_CAPTURE_CAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/common.h"
#include "eastrace/exchange.h"
#include "eastrace/source.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default cap on each stored body (request and response separately). */
#define ET_CAPFILE_DEFAULT_BODY_CAP ((size_t)16 << 20)
/* Largest body cap a writer accepts; keeps every record under ET_CAPFILE_MAX_RECORD. */
#define ET_CAPFILE_MAX_BODY_CAP ((size_t)256 << 20)
/* Largest record (header + payload + footer) a writer produces and a reader accepts. */
#define ET_CAPFILE_MAX_RECORD ((size_t)1 << 30)
/* Name of the meta entry that keeps the original source of a captured exchange ("proxy",
 * "probe", ...) and of the one keeping the id the producer gave it. */
#define ET_CAPFILE_META_ORIGIN "eastrace-origin"
#define ET_CAPFILE_META_ORIGIN_ID "eastrace-origin-id"

/* When the writer forces records to stable storage. */
enum et_capfile_fsync {
    ET_CAPFILE_FSYNC_NONE = 0,  /* leave it to the kernel: survives kill -9, not power loss */
    ET_CAPFILE_FSYNC_EVERY = 1  /* fdatasync() after every record: survives power loss too */
};

struct et_capfile_opts {
    size_t body_cap;            /* bytes kept per body; 0 means ET_CAPFILE_DEFAULT_BODY_CAP */
    enum et_capfile_fsync fsync;
};

/* Counters of one writer, for the proxy's summary and exit status. */
struct et_capfile_stats {
    uint64_t records;       /* exchanges written completely */
    uint64_t bytes;         /* bytes appended by this writer (incl. the header if created) */
    uint64_t failures;      /* et_capfile_write() calls that failed */
    uint64_t truncated;     /* bodies cut at body_cap */
    int last_error;         /* ET_E* of the latest failure, 0 when none */
    int created;            /* the file was created by this writer */
    int tail_was_torn;      /* an existing file ended in a torn record when it was reopened */
};

struct et_capfile_writer;

/* Fills o with the defaults (16 MiB body cap, no fsync). */
void et_capfile_opts_init(struct et_capfile_opts *o);

/*
 * Opens path for appending exchanges, creating it with mode 0600 when it does not exist. An
 * existing file must be an eastrace capture (its header is checked; nothing is ever truncated
 * or overwritten); group/other permission bits are removed (ET_EPERM when that fails). A torn
 * record at the end of an existing file is left in place and new records follow it (the
 * reader skips the torn bytes). Only one writer may hold a file: a second gets ET_EEXIST.
 * Borrows path and o (NULL o means defaults). On success sets *out (free with
 * et_capfile_close) and returns 0; else returns ET_EIO, ET_EPARSE (not a capture file),
 * ET_EUNSUPPORTED (newer format), ET_EPERM, ET_EEXIST, ET_EINVAL or ET_ENOMEM with e set.
 */
int et_capfile_open_append(const char *path, const struct et_capfile_opts *o,
                           struct et_capfile_writer **out, struct et_error *e);

/*
 * Appends one exchange as one record with one writev(). Borrows x (the caller still owns and
 * frees it). Bodies longer than body_cap are stored cut, marked truncated, with wire_len kept.
 * Returns 0, or ET_EIO (disk full, file size limit, I/O error: e carries the errno text),
 * ET_ETOOBIG (the record would pass ET_CAPFILE_MAX_RECORD) or ET_ENOMEM. After a failure the
 * partial record is cut off again where possible and the writer stays usable: a later call may
 * succeed. Not thread-safe: one thread writes.
 * A process writing captures should ignore SIGXFSZ so a file size limit gives ET_EIO
 * instead of killing it.
 */
int et_capfile_write(struct et_capfile_writer *w, const struct et_exchange *x,
                     struct et_error *e);

/*
 * Keeps the page cache behind the writer small: starts writeback of what was appended since
 * the last call once 4 MiB have accumulated (without waiting for it) and drops the cached
 * pages of the windows before (clean pages only). Changes nothing in the file; for a
 * long-running writer (the proxy) to call now and then. Thread-safe against
 * et_capfile_write() on another thread (it reads only the file's end as published by the
 * last complete record), but not against itself or et_capfile_close(): one thread calls it.
 */
void et_capfile_writer_drop_behind(struct et_capfile_writer *w);

/* Copies the writer's counters into st. */
void et_capfile_writer_stats(const struct et_capfile_writer *w, struct et_capfile_stats *st);

/*
 * Flushes (fdatasync when the policy asks for it), closes and frees the writer. Returns 0 or
 * ET_EIO when the final sync or close reported an error (the writer is freed either way).
 * NULL does nothing and returns 0. e may be NULL.
 */
int et_capfile_close(struct et_capfile_writer *w, struct et_error *e);

/* Reader options. */
struct et_capfile_read_opts {
    /* Following a file that is being written: an incomplete record at the end is not reported
     * as torn; next() returns 0 ("nothing more for now") and a later call picks it up. */
    int follow;
    /* Largest record accepted (bigger ones are reported and skipped); 0 means
     * ET_CAPFILE_MAX_RECORD. Memory use is bounded by this, never by the file size. */
    size_t max_record;
};

/*
 * Opens a capture file as a source of exchanges (format "capture"). Borrows path.
 * next() yields every complete record as an exchange with source = ET_SRC_CAPTURE,
 * source_name = path, id = its position among the file's exchanges (from 1), the producer's
 * source and id kept in meta (ET_CAPFILE_META_ORIGIN, ET_CAPFILE_META_ORIGIN_ID), and all its
 * memory in the exchange's arena. A damaged or torn record gives ET_EPARSE with the byte
 * offset in e ("torn record at byte N: skipped"); the next call resumes at the next intact
 * record; a torn tail is reported once. A read error is ET_EIO (final).
 * Returns 0 and sets *out, or ET_EIO, ET_EPARSE (not a capture file), ET_EUNSUPPORTED or
 * ET_ENOMEM with e set. The file may be read while it is being written.
 */
int et_capfile_open(const char *path, struct et_source **out, struct et_error *e);
/* The same with options (NULL means defaults). */
int et_capfile_open_ex(const char *path, const struct et_capfile_read_opts *o,
                       struct et_source **out, struct et_error *e);
/*
 * The same over bytes in memory (tests, fuzzing, a capture already mapped). Borrows p, which
 * must stay valid and unchanged until the source is closed; name is copied (NULL gives "-").
 */
int et_capfile_open_mem(const uint8_t *p, size_t n, const char *name,
                        const struct et_capfile_read_opts *o, struct et_source **out,
                        struct et_error *e);

/* Format sniffing: 1 when p (n bytes, the start of a file) begins with the capture file
 * magic, else 0. Needs at least 10 bytes. */
int et_capfile_detect(const uint8_t *p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
