/*
 * One table renderer for every report the tool prints: the IIS report's tables and its
 * findings, and (through the same call) any other command's row tables. A table is borrowed
 * text cells, row by row; the renderer owns the escaping for each output so that nothing
 * read from a log or from traffic reaches a terminal, a spreadsheet or a browser raw:
 *
 *   text  aligned columns (cells cut at 40 columns), numbers right-aligned, control
 *         characters scrubbed (et_str_printable)
 *   CSV   RFC 4180 (CRLF, quotes doubled), and a cell starting with = + - @ TAB or CR gets a
 *         leading ' so a spreadsheet does not run it as a formula (OWASP CSV injection)
 *   HTML  one <table>, every cell escaped (& < > " ' and controls)
 *   JSON  {"name":..., "columns":[...], "rows":[[...]]}; short numeric cells as numbers,
 *         every string through et_buf_put_json_string (valid UTF-8 out, whatever came in)
 */
#ifndef ET_COMMON_TABLE_H
#define ET_COMMON_TABLE_H

#include <stddef.h>
#include <stdio.h>

#include "eastrace/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum et_table_format {
    ET_TABLE_TEXT = 0, /* aligned text for a terminal */
    ET_TABLE_CSV = 1,  /* RFC 4180, header row first */
    ET_TABLE_HTML = 2, /* one <table> element (the page around it is the caller's) */
    ET_TABLE_JSON = 3  /* one JSON object */
};

enum et_table_flags {
    ET_TABLE_HIDE_ZERO = 1 << 0, /* text: hide the columns after the first two whose
                                    cells are all empty or "0" (CSV, HTML, JSON keep them) */
    ET_TABLE_TITLE = 1 << 1      /* text: a "== name (N rows)" line first, a blank line after;
                                    HTML: an <h2> with the name before the table */
};

struct et_table {
    const char *name;
    const char *const *cols; /* ncols column names */
    int ncols;
    const char *const *cells; /* nrows * ncols, row by row; a NULL cell is empty */
    size_t nrows;
};

/* Appends t rendered as fmt to out. Borrows t. Returns 0 or ET_ENOMEM / ET_ETOOBIG (out's
 * cap). */
int et_table_render(const struct et_table *t, enum et_table_format fmt, unsigned flags,
                    struct et_buf *out);
/* Same, written to f. Returns 0, ET_ENOMEM or ET_EIO. */
int et_table_write(const struct et_table *t, enum et_table_format fmt, unsigned flags, FILE *f);

/* Text with fixed column widths, one row at a time, for output that streams (a command that
 * prints each row as its exchange arrives cannot size columns to cells it has not seen). */
struct et_table_text {
    const int *width;   /* ncols widths: text cells cut to it (not inside a UTF-8 sequence),
                           numbers and column names never cut; negative: right-aligned, the header too */
    const char *indent; /* before every line, or NULL */
    const char *sep;    /* between columns, nothing after the last (NULL: two spaces) */
};
/* The header line of t (its column names; t's cells are not read), then one row of t->ncols
 * cells (NULL cells empty), each ending in '\n', scrubbed like et_table_render's text.
 * Return 0, ET_ENOMEM or ET_EINVAL (no width, too many columns). */
int et_table_text_header(const struct et_table *t, const struct et_table_text *l,
                         struct et_buf *out);
int et_table_text_row(const struct et_table *t, const struct et_table_text *l,
                      const char *const *cells, struct et_buf *out);

/* One CSV cell: quoted when it holds , " CR or LF; prefixed with ' when it starts with
 * = + - @ TAB or CR. Every CSV the tool writes goes through here. Returns 0 or ET_ENOMEM. */
int et_csv_cell(struct et_buf *out, const char *s);
/* Does the cell look like a number (digits, with at most one '.' between digits)? Numbers are
 * right-aligned in text, td class="n" in HTML, bare in JSON. */
int et_table_is_number(const char *s);

#ifdef __cplusplus
}
#endif
#endif
