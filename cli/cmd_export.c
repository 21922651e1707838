/*
 * eastrace export: writes the exchanges of any input (after the same filters as replay) as a
 * Fiddler .saz archive or a HAR 1.2 file, so captures can be opened in other tools or sent to
 * someone else. Credentials (Authorization, Cookie, secrets in base64 queries) are redacted
 * unless --include-secrets.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eastrace/analyzer.h"
#include "eastrace/exchange.h"
#include "eastrace/har.h"
#include "eastrace/pipeline.h"
#include "eastrace/saz.h"
#include "eastrace/web.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eastrace export FILE... (--saz OUT | --har OUT | --html OUT) [OPTIONS]\n"
            "\n"
            "Writes the exchanges of FILE... (captures, .saz, HAR, mailbox logs; merged by\n"
            "time) to a Fiddler .saz archive or a HAR 1.2 file. Authorization, Cookie and\n"
            "credentials in EAS queries are redacted unless --include-secrets.\n"
            "\n"
            "The exchanges are those `eastrace replay FILE...` prints, in its order: one\n"
            "request seen by several kinds of source is written once (the richest record).\n"
            "A .saz export of several inputs names its sessions 1..N, the numbers replay\n"
            "gives them.\n"
            "\n"
            "OUT is replaced only when the whole export succeeds (written to a temporary\n"
            "file next to it first): when an input ends with an error or writing fails, an\n"
            "existing OUT is left as it was (exit 2).\n"
            "\n"
            "Options:\n"
            "  --saz OUT           write a .saz archive\n"
            "  --har OUT           write a HAR 1.2 file\n"
            "  --html OUT          write the session browser (eastrace web) as one\n"
            "                      self-contained HTML file: no server, no network access\n"
            "  --include-secrets   keep credentials as recorded\n"
            "  --format FMT        read the files as FMT (capture, saz, har, iis, mailboxlog)\n"
            "  --no-correlate      write every source's exchanges apart (replay --no-correlate)\n"
            "%s"
            "  -h, --help          show this help\n",
            et_cli_filter_help);
}

struct export_ctx {
    struct et_saz_writer *sw;
    struct et_har_writer *hw;
    size_t written;
    int failed;
};

/* The export sink: each delivered (filtered) exchange goes to the writer, numbered as in
 * replay (the writer keeps x->id: .saz session numbers, HAR entry order). */
static int on_export(void *arg, const struct et_pipe_item *it)
{
    struct export_ctx *c = arg;
    struct et_error e;
    char msg[400];
    int rc;

    et_error_clear(&e);
    rc = c->sw ? et_saz_writer_add(c->sw, it->x, &e) : et_har_writer_add(c->hw, it->x, &e);
    if (rc != 0) {
        et_cli_err("export: exchange %llu: %s", (unsigned long long)it->n,
                   et_error_format(&e, msg, sizeof(msg)));
        c->failed = 1;
        return rc == ET_EPARSE ? 0 : rc;
    }
    c->written++;
    return 0;
}

int et_cmd_export(int argc, char **argv)
{
    struct et_pipe_opts po;
    struct export_ctx c;
    const char *saz = NULL, *har = NULL, *html = NULL;
    struct et_web_store *ws = NULL;
    int include_secrets = 0, status = ET_EXIT_OK;
    char **files;
    size_t nfiles = 0;
    struct et_pipe *p;
    struct et_pipe_sink sink;
    struct et_error e;
    struct et_outfile of;
    const char *out;
    char msg[400];
    int rc;

    memset(&c, 0, sizeof(c));
    et_pipe_opts_default(&po);
    files = et_calloc((size_t)argc, sizeof(*files));
    if (files == NULL)
        return ET_EXIT_INPUT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            et_free(files);
            return ET_EXIT_OK;
        } else if (strcmp(a, "--saz") == 0 && i + 1 < argc) {
            saz = argv[++i];
        } else if (strcmp(a, "--har") == 0 && i + 1 < argc) {
            har = argv[++i];
        } else if (strcmp(a, "--html") == 0 && i + 1 < argc) {
            html = argv[++i];
        } else if (strcmp(a, "--include-secrets") == 0) {
            include_secrets = 1;
        } else if (strcmp(a, "--format") == 0 && i + 1 < argc) {
            po.format = argv[++i];
        } else if (strcmp(a, "--no-correlate") == 0) {
            po.correlate = 0;
        } else if ((r = et_cli_filter_arg(&po.filter, argc, argv, &i)) != 0) {
            if (r < 0) {
                et_free(files);
                return ET_EXIT_INPUT;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            et_cli_err("export: unknown option '%s' (see eastrace export --help)", a);
            et_free(files);
            return ET_EXIT_INPUT;
        } else {
            files[nfiles++] = argv[i];
        }
    }
    if (nfiles == 0 || (saz != NULL) + (har != NULL) + (html != NULL) != 1) {
        et_cli_err("export: give input files and exactly one of --saz, --har or --html OUT");
        et_free(files);
        return ET_EXIT_INPUT;
    }
    /* The inputs first: when none can be opened, the output file is not created (nor an
     * existing one emptied). */
    p = et_pipe_new(&po, NULL);
    if (p == NULL) {
        et_cli_err("out of memory");
        exit(ET_EXIT_INPUT);
    }
    for (size_t i = 0; i < nfiles; i++)
        et_pipe_open(p, files[i]);
    if (et_pipe_stats(p)->inputs == 0) {
        et_pipe_free(p);
        et_free(files);
        return ET_EXIT_INPUT;
    }
    /* Written to a temporary file next to the target, renamed over it only when the whole
     * export succeeded: a failure midway leaves an existing target as it was. */
    out = saz ? saz : har ? har : html;
    et_error_clear(&e);
    if (et_outfile_begin(&of, out, &e) != 0) {
        et_cli_err("export: %s", et_error_format(&e, msg, sizeof(msg)));
        et_pipe_free(p);
        et_free(files);
        return ET_EXIT_INPUT;
    }
    if (saz != NULL) {
        struct et_saz_write_opts so = {0};
        so.include_secrets = include_secrets;
        rc = et_saz_writer_open(of.tmp, &so, &c.sw, &e);
    } else if (html != NULL) {
        struct et_web_store_opts wo = {0};
        wo.include_secrets = include_secrets;
        wo.redact_search = 1; /* the file leaves the machine: its search text is redacted */
        rc = (ws = et_web_store_new(&wo, &e)) == NULL ? ET_ENOMEM : 0;
    } else {
        struct et_har_write_opts ho = {0};
        ho.include_secrets = include_secrets;
        rc = et_har_writer_open(of.tmp, &ho, &c.hw, &e);
    }
    if (rc != 0) {
        et_cli_err("export: %s", et_error_format(&e, msg, sizeof(msg)));
        et_outfile_abort(&of);
        et_pipe_free(p);
        et_free(files);
        return ET_EXIT_INPUT;
    }
    sink.on_exchange = on_export;
    sink.on_finish = NULL;
    sink.arg = &c;
    if (ws != NULL)
        sink = et_web_store_sink(ws);
    et_pipe_set_sink(p, &sink);
    if (et_pipe_run(p) != 0 || c.failed)
        status = ET_EXIT_INPUT;
    et_error_clear(&e);
    if (ws != NULL) {
        const char *base = strrchr(html, '/');
        c.written = et_web_store_count(ws);
        rc = et_web_export_html(ws, of.tmp, base ? base + 1 : html, &e);
        et_web_store_free(ws);
    } else {
        rc = c.sw ? et_saz_writer_close(c.sw, &e) : et_har_writer_close(c.hw, &e);
    }
    if (rc == 0 && status == ET_EXIT_OK && et_pipe_stats(p)->inputs_failed == 0)
        rc = et_outfile_commit(&of, &e);
    else
        status = ET_EXIT_INPUT;
    if (status == ET_EXIT_OK && rc == 0) {
        fprintf(stderr, "eastrace: exported %zu exchange(s) to %s%s\n", c.written, out,
                include_secrets ? " (credentials included)" : " (credentials redacted)");
    } else {
        const char *kept = access(out, F_OK) == 0 ? " (the existing file is unchanged)" : "";
        et_outfile_abort(&of);
        status = ET_EXIT_INPUT;
        /* One line: the writer's error, or (an input's message said why) that the exchanges
         * read were not saved. */
        if (rc != 0)
            et_cli_err("export: %s: %s not written%s", et_error_format(&e, msg, sizeof(msg)), out,
                       kept);
        else if (c.written > 0)
            et_cli_err("export: %s not written%s", out, kept);
    }
    et_pipe_free(p);
    et_free(files);
    return status;
}
