/*
 * libFuzzer target for the HTTP message reader and body helpers (decoder/http.c, body.c,
 * multipart.c). The first byte chooses what the rest is:
 *   bit 0: 0 = a request, 1 = a response
 *   bit 1: for a response, pretend the request was HEAD
 *   bit 2: also run et_multipart_parse over the whole input (a hostile part table)
 * then the body goes through content decoding (small cap), classification and the body view.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "eastrace/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct et_exchange *x;
    struct et_error e;
    struct et_http_view v;
    struct et_buf out;
    struct et_multipart_part parts[16];
    const struct et_headers *h;
    const struct et_body *b;
    size_t np = 0;
    uint8_t mode;

    if (size < 1)
        return 0;
    mode = data[0];
    data++;
    size--;
    (void)et_http_detect(data, size);
    x = et_exchange_new();
    if (x == NULL)
        return 0;
    et_error_clear(&e);
    if (mode & 1) {
        if (mode & 2) {
            x->has_request = 1;
            x->req.method = "HEAD";
        }
        (void)et_http_parse_response(data, size, x, &e);
        h = &x->resp.headers;
        b = &x->resp.body;
    } else {
        (void)et_http_parse_request(data, size, x, &e);
        h = &x->req.headers;
        b = &x->req.body;
    }
    /* Whatever happened, what was kept must be consistent. */
    if (b->len && b->data == NULL)
        __builtin_trap();
    if (b->len) {
        volatile uint8_t sink = b->data[0] ^ b->data[b->len - 1];
        (void)sink;
    }
    et_buf_init(&out, 0);
    et_error_clear(&e);
    (void)et_http_content_decode(h, b->data, b->len, 1 << 20, &out, &e);
    if (out.len > (1 << 20))
        __builtin_trap();
    (void)et_http_body_kind(h, out.data, out.len);
    et_buf_free(&out);
    et_error_clear(&e);
    if (et_http_body_view(h, b, 1 << 20, &v, x->arena, &e) != ET_ENOMEM) {
        size_t i;
        for (i = 0; i < v.nparts; i++)
            if (v.parts[i].offset > v.len || v.parts[i].len > v.len - v.parts[i].offset)
                __builtin_trap();
    }
    if (mode & 4) {
        size_t i;
        et_error_clear(&e);
        if (et_multipart_parse(data, size, parts, 16, &np, &e) == 0)
            for (i = 0; i < np; i++)
                if (parts[i].offset > size || parts[i].len > size - parts[i].offset)
                    __builtin_trap();
    }
    et_exchange_free(x);
    return 0;
}
