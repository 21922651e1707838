/* libFuzzer target: the HAR reader over bytes in memory (scanner + jansson + mapping). */
#include <stddef.h>
#include <stdint.h>

#include "eastrace/har.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct et_source *s;
    struct et_error e;
    et_error_clear(&e);
    if (et_har_open_mem(data, size, "fuzz.har", &s, &e) != 0)
        return 0;
    for (int i = 0; i < 10000; i++) {
        struct et_exchange *x = NULL;
        int rc = et_source_next(s, &x, &e);
        if (rc == 1) {
            et_exchange_free(x);
            continue;
        }
        if (rc != ET_EPARSE || x != NULL)
            break;
    }
    et_source_close(s);
    return 0;
}
