/* eastrace iis --load / --engine / --print-schema: the ClickHouse engine (docs/scale-out.md).
 * cmd_iis.c parses the options and hands over here. */
#include "cli.h"

#include <string.h>

#include "eastrace/clickhouse.h"

int et_cli_iis_engine(const struct et_cli_iis_engine *g, const struct et_iis_report_opts *o,
                      char **paths, int npaths, int fmt, const char *outpath, int findings)
{
    struct et_ch_url u;
    struct et_error e;
    char m[300];
    const char *url = g->load ? g->load : g->engine;

    et_error_clear(&e);
    if (url != NULL && et_ch_url_parse(url, &u, &e) < 0) {
        et_cli_err("iis: %s", et_error_format(&e, m, sizeof(m)));
        return ET_EXIT_INPUT;
    }
    if (g->print_schema) {
        et_ch_print_schema(stdout, url ? u.db : NULL, url ? u.table : NULL);
        return ET_EXIT_OK;
    }
    if (g->load != NULL) {
        struct et_ch_load_opts lo = {g->batch_rows, g->progress};
        struct et_ch_load_stats st;
        if (npaths == 0) {
            et_cli_err("iis: --load needs log files or directories");
            return ET_EXIT_INPUT;
        }
        if (et_ch_load(&u, paths, npaths, &lo, &st, &e) < 0) {
            et_cli_err("iis: load failed after %llu rows: %s", (unsigned long long)st.rows,
                       et_error_format(&e, m, sizeof(m)));
            return ET_EXIT_INPUT;
        }
        if (st.skipped > 0)
            et_cli_err("skipped %llu file(s) loaded before (same name and size)",
                       (unsigned long long)st.skipped);
        et_cli_err("loaded %llu EAS requests from %llu file(s) (%llu lines, %llu bad, %.1f MB) "
                   "into %s.%s in %.2f s (%.1f MB/s, %.0f rows/s, %llu batches)",
                   (unsigned long long)st.rows, (unsigned long long)st.files,
                   (unsigned long long)st.lines, (unsigned long long)st.bad,
                   (double)st.bytes / 1e6, u.db, u.table, st.seconds,
                   st.seconds > 0 ? (double)st.bytes / 1e6 / st.seconds : 0.0,
                   st.seconds > 0 ? (double)st.rows / st.seconds : 0.0,
                   (unsigned long long)st.batches);
        return ET_EXIT_OK;
    }
    if (npaths > 0) {
        et_cli_err("iis: --engine reads from ClickHouse, not from files (load them with "
                   "--load URL first)");
        return ET_EXIT_INPUT;
    }
    FILE *f = stdout;
    if (outpath != NULL && (f = fopen(outpath, "w")) == NULL) {
        et_cli_err("iis: cannot write %s", outpath);
        return ET_EXIT_INPUT;
    }
    struct et_ch_filter flt = {g->since, g->until};
    int rc = et_ch_report(&u, o, &flt, findings, f, (enum et_report_format)fmt, &e);
    if (f != stdout)
        fclose(f);
    else
        fflush(stdout);
    if (rc < 0) {
        et_cli_err("iis: %s", et_error_format(&e, m, sizeof(m)));
        return ET_EXIT_INPUT;
    }
    if (findings && fmt != ET_REPORT_CSV)
        et_cli_err("note: the analyzer's findings need the local pass (eastrace iis LOG...): "
                   "see the findings table");
    return ET_EXIT_OK;
}
