/* libFuzzer target: the mailbox log reader (the tables are the CLI's, over the pipeline's view). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "eastrace/mailboxlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct et_source *s;
    struct et_error e;
    struct et_exchange *xs[64];
    size_t n = 0;

    et_error_clear(&e);
    if (et_mailboxlog_open_mem(data, size, "fuzz", &s, &e) != 0)
        return 0;
    for (int i = 0; i < 10000; i++) {
        struct et_exchange *x = NULL;
        int rc = et_source_next(s, &x, &e);
        if (rc == 1 && n < 64)
            xs[n++] = x;
        else
            et_exchange_free(x);
        if (rc <= 0)
            break;
    }
    et_source_close(s);
    for (size_t i = 0; i < n; i++)
        et_exchange_free(xs[i]);
    return 0;
}
