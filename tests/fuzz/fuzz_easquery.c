/*
 * libFuzzer target for the EAS query decoder. The first input byte picks the variant:
 *   even: the rest is a raw query appended to "/Microsoft-Server-ActiveSync?" (plain form,
 *         percent escapes, and base64 text as clients send it);
 *   odd:  the rest is the decoded base64 byte sequence ([MS-ASHTTP] 2.2.1.1.1.1), which the
 *         target base64-encodes first so the fuzzer explores the binary layout directly.
 * Each parsed request is also rendered as a line and redacted, which must not fail.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eastrace/eas.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char prefix[] = "/Microsoft-Server-ActiveSync?";
    struct et_buf target, tmp;
    struct et_arena *a;
    struct et_eas_request r;
    struct et_error e;

    if (size == 0 || size > 8192)
        return 0;
    et_buf_init(&target, 0);
    et_buf_init(&tmp, 0);
    if (et_buf_puts(&target, prefix) != 0)
        goto out;
    if (data[0] & 1) {
        if (et_base64_encode(&target, data + 1, size - 1) != 0)
            goto out;
    } else {
        /* A C string: stop at the first NUL, as a request target would. */
        const uint8_t *nul = memchr(data + 1, 0, size - 1);
        size_t n = nul != NULL ? (size_t)(nul - (data + 1)) : size - 1;
        if (et_buf_append(&target, data + 1, n) != 0)
            goto out;
    }
    a = et_arena_new(0);
    if (a == NULL)
        goto out;
    et_error_clear(&e);
    int rc = et_eas_query_parse((const char *)target.data, a, &r, &e);
    if (rc != 0 && e.code == 0)
        abort(); /* every failure must explain itself */
    if (rc != 0 && e.has_offset && e.offset > target.len)
        abort(); /* offsets point into the target */
    if (et_eas_request_line(&r, &tmp) != 0)
        abort();
    et_buf_reset(&tmp);
    if (et_eas_query_redact((const char *)target.data, ET_EAS_REDACT_IDENTITY, &tmp) != 0)
        abort();
    et_arena_free(a);
out:
    et_buf_free(&tmp);
    et_buf_free(&target);
    return 0;
}
