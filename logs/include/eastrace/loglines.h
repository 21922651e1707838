/*
 * Log files as lines: the buffered line reader (plain or gzip) shared by the IIS reader, the
 * mailbox log reader and the IIS report engine (report/), and the listing of a log directory.
 */
#ifndef ET_LOGS_LOGLINES_H
#define ET_LOGS_LOGLINES_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/common.h"

/* Longest line kept; a longer one is skipped and reported (ET_ETOOBIG). */
#define ET_LOGLINE_MAX (1u << 20)

/*
 * Buffered line reader over a file (plain or gzip, via zlib's transparent gzread) or bytes in
 * memory. Lines are handed out without their '\n' (a trailing '\r' is kept) and stay valid
 * until the next call.
 */
struct et_loglines {
    void *gz;               /* gzFile, NULL for memory */
    const uint8_t *mem;     /* memory input (borrowed) */
    size_t memlen;
    uint8_t *buf;           /* owned (file input) */
    size_t cap, start, end;
    int eof;
    uint64_t off;           /* input offset of buf[start] (or mem position) */
    uint64_t lineno;        /* number of the line last returned, from 1 */
    uint64_t line_off;      /* input offset of the line last returned */
};

int et_loglines_open_file(struct et_loglines *r, const char *path, struct et_error *e);
void et_loglines_open_mem(struct et_loglines *r, const void *data, size_t len);
/* 1 and a line, 0 at the end, ET_ETOOBIG for an overlong line (skipped; call again),
 * ET_EIO on a read error (final). */
int et_loglines_next(struct et_loglines *r, const char **line, size_t *len, struct et_error *e);
void et_loglines_close(struct et_loglines *r);

/* Lists the log files of path (a file gives itself; a directory gives its *.log and
 * *.log.gz files, recursively, sorted). *files is an et_malloc'd array of et_malloc'd
 * strings; free with et_logfiles_free. Returns 0, ET_ENOMEM, ET_EIO or ET_ENOTFOUND. */
int et_logfiles_list(const char *path, char ***files, size_t *n, struct et_error *e);
void et_logfiles_free(char **files, size_t n);

#endif
