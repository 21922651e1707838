/* eastrace iis: ActiveSyncReport.ps1-style and Log Parser Studio-style reports over Exchange
 * IIS logs (files, directories, .gz), or the EAS lines as exchanges (--exchanges, JSON). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eastrace/iis.h"
#include "eastrace/iisreport.h"

static void iis_usage(FILE *f)
{
    fputs("usage: eastrace iis [OPTIONS] PATH...\n"
          "\n"
          "Reports over Exchange IIS (W3C) logs: files, directories (u_ex*.log), .gz.\n"
          "\n"
          "  --report NAME      hits (default), errors, synckey0, syncs-by-synckey,\n"
          "                     device-timeline, sendmail, eas-errors, rpc, top, calendar\n"
          "  --csv | --html | --json   output format (default: a table)\n"
          "  -o FILE            write to FILE instead of stdout\n"
          "  --minimum-hits N   leave out devices with fewer hits\n"
          "  --top N            only the N devices with most hits\n"
          "  --hourly           per-hour rows;  --interval SECONDS  per-interval rows\n"
          "  --date DATE        only lines of DATE (YYYY-MM-DD or MM-DD-YYYY)\n"
          "  --device ID        only this DeviceId\n"
          "  --site S           frontend (default when both appear), backend, both\n"
          "  --rpc-count N, --rpc-latency MS   thresholds of --report rpc\n"
          "  --threads N        worker threads for plain files (default 2)\n"
          "  --no-progress      no progress bar on a terminal\n"
          "  --mail-to ADDR --smtp HOST   (not implemented yet)\n",
          f);
}

static int parse_long(const char *s, long *v)
{
    char *end;
    long x = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || x < 0)
        return -1;
    *v = x;
    return 0;
}

int et_cmd_iis(int argc, char **argv)
{
    struct et_iis_report_opts o;
    enum et_report_format fmt = ET_REPORT_TABLE;
    const char *outpath = NULL;
    int progress = 1, npaths = 0;
    char **paths = calloc((size_t)argc, sizeof(*paths));
    int rc = ET_EXIT_INPUT;

    if (paths == NULL)
        return ET_EXIT_INPUT;
    memset(&o, 0, sizeof(o));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
#define NEEDV                                                                                  \
    do {                                                                                       \
        if (v == NULL) {                                                                       \
            et_cli_err("iis: %s needs a value", a);                                            \
            goto out;                                                                          \
        }                                                                                      \
        i++;                                                                                   \
    } while (0)
#define NEEDN(dst)                                                                             \
    do {                                                                                       \
        NEEDV;                                                                                 \
        if (parse_long(v, &n) < 0) {                                                           \
            et_cli_err("iis: %s needs a number, not '%s'", a, v);                              \
            goto out;                                                                          \
        }                                                                                      \
        dst = n;                                                                               \
    } while (0)
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            iis_usage(stdout);
            rc = ET_EXIT_OK;
            goto out;
        } else if (strcmp(a, "--csv") == 0) {
            fmt = ET_REPORT_CSV;
        } else if (strcmp(a, "--html") == 0) {
            fmt = ET_REPORT_HTML;
        } else if (strcmp(a, "--json") == 0) {
            fmt = ET_REPORT_JSON;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            NEEDV;
            outpath = v;
        } else if (strcmp(a, "--report") == 0) {
            NEEDV;
            int k = et_iis_report_kind_from(v);
            if (k < 0) {
                et_cli_err("iis: unknown report '%s' (see eastrace iis --help)", v);
                goto out;
            }
            o.kind = (enum et_iis_report_kind)k;
        } else if (strcmp(a, "--minimum-hits") == 0) {
            NEEDN(o.minimum_hits);
        } else if (strcmp(a, "--top") == 0) {
            NEEDN(o.top);
        } else if (strcmp(a, "--hourly") == 0) {
            o.interval = 3600;
        } else if (strcmp(a, "--interval") == 0) {
            NEEDN(o.interval);
        } else if (strcmp(a, "--date") == 0) {
            NEEDV;
            o.date = v;
        } else if (strcmp(a, "--device") == 0) {
            NEEDV;
            o.device = v;
        } else if (strcmp(a, "--threads") == 0) {
            NEEDN(o.threads);
        } else if (strcmp(a, "--rpc-count") == 0) {
            NEEDN(o.rpc_count_min);
        } else if (strcmp(a, "--rpc-latency") == 0) {
            NEEDN(o.rpc_latency_min);
        } else if (strcmp(a, "--site") == 0) {
            NEEDV;
            if (strcmp(v, "frontend") == 0)
                o.site = ET_IIS_SITE_FRONTEND;
            else if (strcmp(v, "backend") == 0)
                o.site = ET_IIS_SITE_BACKEND;
            else if (strcmp(v, "both") == 0)
                o.site = ET_IIS_SITE_BOTH;
            else if (strcmp(v, "auto") == 0)
                o.site = ET_IIS_SITE_AUTO;
            else {
                et_cli_err("iis: --site takes frontend, backend, both or auto");
                goto out;
            }
        } else if (strcmp(a, "--no-progress") == 0) {
            progress = 0;
        } else if (strcmp(a, "--mail-to") == 0 || strcmp(a, "--smtp") == 0) {
            /* Hook: render HTML with et_iis_report_write into open_memstream() and send it. */
            et_cli_err("iis: %s is not implemented yet", a);
            goto out;
        } else if (a[0] == '-' && a[1] != '\0') {
            et_cli_err("iis: unknown option '%s' (see eastrace iis --help)", a);
            goto out;
        } else {
            paths[npaths++] = argv[i];
        }
#undef NEEDV
#undef NEEDN
    }
    if (npaths == 0) {
        iis_usage(stderr);
        goto out;
    }
    if (o.kind == ET_IIS_REPORT_DEVICE_TIMELINE && o.device == NULL) {
        et_cli_err("iis: --report device-timeline needs --device ID");
        goto out;
    }
    o.progress = progress && isatty(2);
    struct et_iis_report *r = et_iis_report_new(&o);
    if (r == NULL) {
        et_cli_err("iis: bad --date (use YYYY-MM-DD or MM-DD-YYYY) or out of memory");
        goto out;
    }
    for (int i = 0; i < npaths; i++) {
        struct et_error e;
        char m[300];
        et_error_clear(&e);
        if (et_iis_report_add_path(r, paths[i], &e) < 0) {
            et_cli_err("%s", et_error_format(&e, m, sizeof(m)));
            et_iis_report_free(r);
            goto out;
        }
    }
    FILE *f = stdout;
    if (outpath != NULL && (f = fopen(outpath, "w")) == NULL) {
        et_cli_err("iis: cannot write %s", outpath);
        et_iis_report_free(r);
        goto out;
    }
    struct et_error e;
    char m[300];
    et_error_clear(&e);
    int wrc = et_iis_report_write(r, f, fmt, &e);
    struct et_iis_report_totals t;
    et_iis_report_totals(r, &t);
    if (f != stdout)
        fclose(f);
    else
        fflush(stdout);
    et_iis_report_free(r);
    if (wrc < 0) {
        et_cli_err("%s", et_error_format(&e, m, sizeof(m)));
        goto out;
    }
    if (t.frontend > 0 && t.backend > 0 && o.site == ET_IIS_SITE_AUTO)
        et_cli_err("note: both front-end and back-end (Proxy) lines found; counted the front "
                   "end only (--site to choose)");
    if (t.bad > 0)
        et_cli_err("note: %llu lines did not match their #Fields and were skipped",
                   (unsigned long long)t.bad);
    rc = ET_EXIT_OK;
out:
    free(paths);
    return rc;
}
