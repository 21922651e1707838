/*
 * eastrace command-line front end: shared declarations of the subcommands and small helpers.
 * Each subcommand lives in cmd_<name>.c and is listed in the table in main.c.
 */
#ifndef ET_CLI_CLI_H
#define ET_CLI_CLI_H

#include <stdint.h>
#include <stdio.h>

/* Exit statuses every subcommand uses (scripts rely on them). */
enum et_exit {
    ET_EXIT_OK = 0,       /* done; nothing at or above --fail-on found */
    ET_EXIT_FINDINGS = 1, /* done; findings at or above --fail-on, or a decode error */
    ET_EXIT_INPUT = 2,    /* the input could not be read, or bad usage */
};

/* A subcommand: argv[0] is the subcommand's name. Returns an enum et_exit value. */
typedef int (*et_cmd_fn)(int argc, char **argv);

int et_cmd_decode(int argc, char **argv);
int et_cmd_encode(int argc, char **argv);
int et_cmd_proxy(int argc, char **argv);
int et_cmd_ca(int argc, char **argv);
int et_cmd_iis(int argc, char **argv);
int et_cmd_mailboxlog(int argc, char **argv);
int et_cmd_probe(int argc, char **argv);
int et_cmd_replay(int argc, char **argv);
int et_cmd_show(int argc, char **argv);
int et_cmd_export(int argc, char **argv);
int et_cmd_web(int argc, char **argv);

/* eastrace iis with the ClickHouse engine (iis_engine.c): what cmd_iis.c parsed. */
struct et_cli_iis_engine {
    const char *load, *engine; /* clickhouse:// URLs */
    int print_schema;
    int64_t since, until;      /* --since/--until (engine reports), microseconds */
    size_t batch_rows;
    int progress;
};
struct et_iis_report_opts;
/* Loads, reports or prints the schema; fmt is an enum et_report_format. Returns ET_EXIT_*. */
int et_cli_iis_engine(const struct et_cli_iis_engine *g, const struct et_iis_report_opts *o,
                      char **paths, int npaths, int fmt, const char *outpath, int findings);

/* How messages and bodies are rendered (decode, show). */
struct et_cli_render_opts {
    int json;
    int compact;
    int no_status_names;
    int fragment;        /* 1: input is a headerless WBXML fragment */
    int include_secrets; /* show Authorization / Cookie values */
    size_t max_output;
};

struct et_exchange;
struct et_buf;
struct et_error;
/* Appends a request (is_request) or response of x as text: start line, headers, EAS request
 * line or response notes, and the body view. Errors are reported on stderr naming path.
 * Returns 1 when something failed to decode, else 0. */
int et_cli_http_text(const char *path, const struct et_exchange *x, int is_request,
                     const struct et_cli_render_opts *o, struct et_buf *out);
/* The same as JSON members ("type":...,"headers":[...],"eas":{...},"body":{...}). */
int et_cli_http_json(const char *path, const struct et_exchange *x, int is_request,
                     const struct et_cli_render_opts *o, struct et_buf *out);
/* A WBXML body as XML; returns 1 on a decode error (reported on stderr with path and what). */
int et_cli_wbxml_text(const char *path, const char *what, const unsigned char *p, size_t n,
                      const struct et_cli_render_opts *o, struct et_buf *out);
int et_cli_wbxml_json(const unsigned char *p, size_t n, const struct et_cli_render_opts *o,
                      struct et_buf *out, struct et_error *err);
void et_cli_json_error(struct et_buf *out, const struct et_error *e);
void et_cli_json_str(struct et_buf *out, const char *s);

/* ---- inputs: opening, sniffing and merging are the pipeline's (eastrace/pipeline.h) ---- */

/* ---- filters (filter.c): the options; the pipeline applies them ---- */
struct et_pipe_filter;
extern const char *et_cli_filter_help;
/* If argv[*i] is a filter option, consumes it (and its value) and returns 1; 0 when it is
 * not one; -1 on a bad value (reported). */
int et_cli_filter_arg(struct et_pipe_filter *f, int argc, char **argv, int *i);
/* Writes recorded bytes; on a terminal control characters are shown escaped. */
int et_cli_write_safe(FILE *f, const unsigned char *p, size_t n);

/* ---- proxy --web (cmd_web.c): the session browser of a live capture ---- */
struct et_cli_live_web;
struct et_pipe_item;
/* Starts the web server on listen (ADDR:PORT) over a live store; prints its URL as the first
 * line of standard output. NULL on failure (reported). */
struct et_cli_live_web *et_cli_live_web_start(const char *listen);
/* A request read whole (the proxy's on_request): EAS requests show as pending. */
void et_cli_live_web_request(struct et_cli_live_web *w, const struct et_exchange *x);
/* The exchange of proxy number id finished (before the live number replaces it). */
void et_cli_live_web_done(struct et_cli_live_web *w, uint64_t id);
/* One exchange of the live pipeline. */
void et_cli_live_web_add(struct et_cli_live_web *w, const struct et_pipe_item *it);
void et_cli_live_web_stop(struct et_cli_live_web *w);

/* Prints "eastrace: " + message to stderr. */
void et_cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Whether to colour output on this stream: a terminal, and NO_COLOR unset. */
int et_cli_use_color(FILE *f);

/*
 * The terminal guard (docs/security.md): main() replaces stdout and stderr with streams that
 * pass every byte through et_scrub() (newlines kept; our own colour sequences kept only on a
 * terminal with colours on) before it reaches file descriptor 1 or 2, so nothing from
 * traffic or files can drive the operator's terminal whichever command printed it. Fields are
 * still scrubbed where they are formatted (et_str_printable), which keeps columns aligned;
 * this is the backstop that makes "every terminal output" true by construction.
 */
void et_cli_guard_terminal(void);
/* Standard output without the guard, for binary exports (WBXML, DER) to a pipe. Flushes the
 * guarded stdout first. Never NULL (falls back to stdout). */
FILE *et_cli_raw_stdout(void);

#endif
