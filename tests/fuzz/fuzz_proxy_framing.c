/*
 * libFuzzer target for the proxy's strict HTTP/1.1 framing (proxy/http1.c): the header
 * section scanner (request and response) and the chunked decoder, fed the input whole and
 * then in random splits; the decoder must never read past its input, never report more
 * data than it was given, and give the same verdict however the input is split.
 * Needs et_proxy (integrator: map ET_FUZZ_LIB_proxy_framing to et_proxy and add
 * proxy/ to its include path for proxy_int.h).
 */
#include "proxy_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int chunked_run(const uint8_t *d, size_t n, size_t step, uint64_t *total)
{
    struct et__chunked c;
    struct et_error e;
    et__chunked_init(&c);
    et_error_clear(&e);
    *total = 0;
    size_t i = 0;
    while (i < n) {
        size_t len = n - i < step ? n - i : step;
        size_t used = 0, dlen = 0;
        const uint8_t *data = NULL;
        int r = et__chunked_feed(&c, d + i, len, &used, &data, &dlen, &e);
        if (used > len)
            abort();
        if (r == 1) {
            if (data < d + i || data + dlen > d + i + len)
                abort();
            *total += dlen;
        }
        i += used;
        if (r == 0)
            return 0;
        if (r != 1 && r != ET_EAGAIN)
            return r;
        if (used == 0 && r == ET_EAGAIN)
            abort(); /* no progress */
    }
    return ET_EAGAIN;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct et__head h;
    struct et_error e;
    for (int req = 0; req < 2; req++) {
        et_error_clear(&e);
        int r = et__head_scan(data, size, req, &h, &e);
        if (r == 0) {
            if (h.head_len > size || h.n > ET__MAX_FIELDS)
                abort();
            for (size_t i = 0; i < h.n; i++)
                if ((const uint8_t *)h.f[i].name < data ||
                    (const uint8_t *)h.f[i].value + h.f[i].vlen > data + size)
                    abort();
        }
    }
    uint64_t t1 = 0, t2 = 0;
    int a = chunked_run(data, size, size ? size : 1, &t1);
    int b = chunked_run(data, size, 1 + (size % 7), &t2);
    if (a != b || (a == 0 && t1 != t2))
        abort();
    return 0;
}
