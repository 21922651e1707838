/*
 * libFuzzer target for the PROXY protocol header parser (proxy/proxyproto.c): the input whole
 * and every prefix of it. The parser must never read past its input, must not claim more
 * bytes than it was given, must give the verdict of the whole input for every prefix that
 * already holds the header (the same length and addresses), and a prefix may only say
 * "need more" (never fail) when the whole input succeeds.
 */
#include "proxy_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    struct et__pp whole, part;
    struct et_error e;
    if (n > ET__PP_MAX + 64)
        n = ET__PP_MAX + 64;
    /* A copy of exactly n bytes, so ASan sees any read past the end. */
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, d, n);
    et_error_clear(&e);
    int rw = et__pp_parse(buf, n, &whole, &e);
    if (rw == 0 && (whole.len == 0 || whole.len > n || whole.len > ET__PP_MAX))
        abort();
    if (rw != 0 && rw != ET_EAGAIN && rw != ET_EPARSE)
        abort();
    for (size_t k = 0; k < n && k < 256; k++) {
        uint8_t *pre = malloc(k ? k : 1);
        if (pre == NULL)
            break;
        memcpy(pre, buf, k);
        et_error_clear(&e);
        int rp = et__pp_parse(pre, k, &part, &e);
        free(pre);
        if (rw == 0 && k >= whole.len &&
            (rp != 0 || part.len != whole.len || part.local != whole.local ||
             memcmp(&part.src, &whole.src, sizeof(part.src)) != 0))
            abort();
        if (rw == 0 && k < whole.len && rp != ET_EAGAIN)
            abort();
    }
    free(buf);
    return 0;
}
