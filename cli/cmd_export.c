/*
 * eastrace export: writes the exchanges of any input (after the same filters as replay) as a
 * Fiddler .saz archive or a HAR 1.2 file, so captures can be opened in other tools or sent to
 * someone else. Credentials (Authorization, Cookie, secrets in base64 queries) are redacted
 * unless --include-secrets.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "eastrace/analyzer.h"
#include "eastrace/exchange.h"
#include "eastrace/har.h"
#include "eastrace/saz.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eastrace export FILE... (--saz OUT | --har OUT | --html OUT) [OPTIONS]\n"
            "\n"
            "Writes the exchanges of FILE... (captures, .saz, HAR, mailbox logs; merged by\n"
            "time) to a Fiddler .saz archive or a HAR 1.2 file. Authorization, Cookie and\n"
            "credentials in EAS queries are redacted unless --include-secrets.\n"
            "\n"
            "Options:\n"
            "  --saz OUT           write a .saz archive\n"
            "  --har OUT           write a HAR 1.2 file\n"
            "  --html OUT          write the session browser (eastrace web) as one\n"
            "                      self-contained HTML file: no server, no network access\n"
            "  --include-secrets   keep credentials as recorded\n"
            "  --format FMT        read the files as FMT (capture, saz, har, iis, mailboxlog)\n"
            "%s"
            "  -h, --help          show this help\n",
            et_cli_filter_help);
}

int et_cmd_export(int argc, char **argv)
{
    struct et_cli_filter flt = {0};
    const char *saz = NULL, *har = NULL, *html = NULL, *format = NULL;
    struct et_cli_html *hp = NULL;
    unsigned long long n = 0;
    int include_secrets = 0, status = ET_EXIT_OK;
    char **files;
    size_t nfiles = 0, written = 0;
    struct et_cli_merge *m;
    struct et_analyzer *an;
    struct et_saz_writer *sw = NULL;
    struct et_har_writer *hw = NULL;
    struct et_exchange *x;
    struct et_error e;
    char msg[400];

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
            format = argv[++i];
        } else if ((r = et_cli_filter_arg(&flt, argc, argv, &i)) != 0) {
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
    et_error_clear(&e);
    if (saz != NULL) {
        struct et_saz_write_opts so = {0};
        so.include_secrets = include_secrets;
        if (et_saz_writer_open(saz, &so, &sw, &e) != 0) {
            et_cli_err("%s", et_error_format(&e, msg, sizeof(msg)));
            et_free(files);
            return ET_EXIT_INPUT;
        }
    } else if (html != NULL) {
        if ((hp = et_cli_html_open(include_secrets)) == NULL) {
            et_free(files);
            return ET_EXIT_INPUT;
        }
    } else {
        struct et_har_write_opts ho = {0};
        ho.include_secrets = include_secrets;
        if (et_har_writer_open(har, &ho, &hw, &e) != 0) {
            et_cli_err("%s", et_error_format(&e, msg, sizeof(msg)));
            et_free(files);
            return ET_EXIT_INPUT;
        }
    }
    m = et_cli_merge_open(files, nfiles, format);
    an = et_analyzer_new(NULL);
    if (m == NULL || an == NULL) {
        et_cli_err("out of memory");
        exit(ET_EXIT_INPUT);
    }
    while ((x = et_cli_merge_next(m)) != NULL) {
        struct et_view v;
        struct et_finding *f = NULL;
        int rc = 0;
        n++;
        if (et_view_build(x, x->arena, &v) != 0 ||
            et_analyzer_feed(an, x, &v, x->arena, &f) != 0) {
            et_cli_err("out of memory");
            exit(ET_EXIT_INPUT);
        }
        if (et_cli_filter_match(&flt, x, &v, f)) {
            et_error_clear(&e);
            rc = hp   ? et_cli_html_add(hp, n, x, &v, f, &e)
                 : sw ? et_saz_writer_add(sw, x, &e)
                      : et_har_writer_add(hw, x, &e);
            if (rc != 0) {
                et_cli_err("export: exchange %llu: %s", (unsigned long long)x->id,
                           et_error_format(&e, msg, sizeof(msg)));
                status = ET_EXIT_INPUT;
            } else {
                written++;
            }
        }
        et_view_reset(&v);
        et_exchange_free(x);
        if (rc != 0 && rc != ET_EPARSE)
            break;
    }
    et_error_clear(&e);
    if ((hp   ? et_cli_html_close(hp, an, html, &e)
         : sw ? et_saz_writer_close(sw, &e)
              : et_har_writer_close(hw, &e)) != 0) {
        et_cli_err("export: %s", et_error_format(&e, msg, sizeof(msg)));
        status = ET_EXIT_INPUT;
    }
    if (et_cli_merge_failed(m))
        status = ET_EXIT_INPUT;
    fprintf(stderr, "eastrace: exported %zu exchange(s) to %s%s\n", written, saz ? saz : har ? har : html,
            include_secrets ? " (credentials included)" : " (credentials redacted)");
    et_analyzer_free(an);
    et_cli_merge_close(m);
    et_free(files);
    return status;
}
