/* libFuzzer target: the .saz reader over a zip in memory (archive checks, _m.xml, HTTP). */
#include <stddef.h>
#include <stdint.h>

#include "eastrace/saz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct et_source *s;
    struct et_error e;
    et_error_clear(&e);
    if (et_saz_open_mem(data, size, "fuzz.saz", &s, &e) != 0)
        return 0;
    for (int i = 0; i < 10000; i++) {
        struct et_exchange *x = NULL;
        int rc = et_source_next(s, &x, &e);
        if (rc == 1) {
            et_exchange_free(x);
            continue;
        }
        if (rc != ET_EPARSE)
            break;
    }
    et_source_close(s);
    return 0;
}
