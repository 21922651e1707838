/*
 * Fiddler session archives (.saz): a zip holding raw/NN_c.txt (request bytes), raw/NN_s.txt
 * (response bytes) and raw/NN_m.xml (session timers and flags) per session, plus
 * [Content_Types].xml and _index.htm.
 *
 * The reader never extracts anything to disk. It checks the archive before use (entry count,
 * entry names, compression ratios) and reads one session at a time, so memory follows the
 * largest session (each entry is capped at ET_SAZ_MAX_ENTRY bytes actually inflated).
 * See docs/saz-har.md for the field mapping and limits.
 */
#ifndef ET_CAPTURE_SAZ_H
#define ET_CAPTURE_SAZ_H

#include <stddef.h>

#include "eastrace/common.h"
#include "eastrace/exchange.h"
#include "eastrace/source.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most bytes read from one archive entry (after inflating): a body within the body budget
 * (ET_BODY_BUDGET, 64 MiB) plus 1 MiB of start line and headers. Two such entries and their
 * decoding stay under 256 MiB for any archive (docs/security.md). */
#define ET_SAZ_MAX_ENTRY ((uint64_t)ET_BODY_BUDGET + ((uint64_t)1 << 20))
/* Most entries an archive may list (3 per session: 30000 sessions). */
#define ET_SAZ_MAX_ENTRIES 90000
/* Inflated/compressed ratio above which an entry of more than 1 MiB is taken for a zip bomb. */
#define ET_SAZ_MAX_RATIO 1000

/*
 * Opens a .saz for reading as a source of exchanges (format "saz"). path is borrowed.
 * Archive-level problems (not a zip, truncated central directory, too many entries, unsafe
 * entry names such as "../x", "/etc/x" or "raw\x", declared sizes of a zip bomb, no session)
 * fail here with a negative ET_E* and e set. A bad session later gives ET_EPARSE
 * "session 7 (raw/07_s.txt): ..." from next() and the reader goes on with the next one.
 */
int et_saz_open(const char *path, struct et_source **out, struct et_error *e);

/* Same over a zip in memory (fuzzing, tests). p is borrowed until the source is closed. */
int et_saz_open_mem(const void *p, size_t n, const char *name, struct et_source **out,
                    struct et_error *e);

struct et_saz_write_opts {
    /* 0 (default): credentials redacted as for HAR (see har.h); 1: written as recorded. */
    int include_secrets;
};

struct et_saz_writer;

/*
 * Creates (replaces) the archive at path. The archive is assembled by libzip and written
 * when closed: sessions are staged in a temporary file beside path, not in memory.
 * opts may be NULL (defaults).
 */
int et_saz_writer_open(const char *path, const struct et_saz_write_opts *opts,
                       struct et_saz_writer **out, struct et_error *e);
/* Adds x (borrowed) as the next session: raw/NN_c.txt, raw/NN_s.txt, raw/NN_m.xml. */
int et_saz_writer_add(struct et_saz_writer *w, const struct et_exchange *x, struct et_error *e);
/* Adds _index.htm and [Content_Types].xml, writes the archive and frees w (also after an
 * error; then nothing is left at path). NULL does nothing. */
int et_saz_writer_close(struct et_saz_writer *w, struct et_error *e);

#ifdef __cplusplus
}
#endif
#endif
