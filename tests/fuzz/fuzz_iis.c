/* libFuzzer target: the IIS reader (exchanges) and the report fast path over the same bytes,
 * plus the Log= parser on the whole input. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "eastrace/iis.h"
#include "eastrace/iisreport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct et_source *s;
    struct et_error e;
    struct et_eas_log lg;

    et_eas_log_parse((const char *)data, size, &lg);
    {
        /* The partial parse the report's findings use gives the full parse's fields. */
        struct et_eas_log only;
        et_eas_log_parse_only((const char *)data, size, "SHEAa", &only);
        if (only.status != lg.status || only.heartbeat != lg.heartbeat ||
            only.sync_key != lg.sync_key || only.error.len != lg.error.len ||
            only.access_state.len != lg.access_state.len || only.exch2003 != lg.exch2003 ||
            only.dropped != lg.dropped)
            __builtin_trap();
    }
    et_error_clear(&e);
    if (et_iis_open_mem(data, size, "fuzz", NULL, &s, &e) == 0) {
        for (int i = 0; i < 10000; i++) {
            struct et_exchange *x = NULL;
            int rc = et_source_next(s, &x, &e);
            et_exchange_free(x);
            if (rc == 0 || (rc < 0 && rc != ET_EPARSE))
                break;
        }
        et_source_close(s);
    }
    for (int kind = 0; kind < ET_IIS_REPORT_COUNT; kind += 3) {
        struct et_iis_report_opts o = {0};
        o.kind = (enum et_iis_report_kind)kind;
        o.interval = kind == 0 ? 600 : 0;
        o.findings = kind == 0; /* the analyzer over the records, as `eastrace iis` does */
        struct et_iis_report *r = et_iis_report_new(&o);
        if (r == NULL)
            continue;
        et_iis_report_add_mem(r, data, size, &e);
        FILE *f = fopen("/dev/null", "w");
        if (f != NULL) {
            et_iis_report_write(r, f, (enum et_report_format)(kind % 4), &e);
            fclose(f);
        }
        et_iis_report_free(r);
    }
    return 0;
}
