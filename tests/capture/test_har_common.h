/* Shared by test_har.c and test_saz.c: sample exchanges and comparisons for round trips. */
#ifndef ET_TESTS_CAPTURE_HAR_COMMON_H
#define ET_TESTS_CAPTURE_HAR_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "eastrace/exchange.h"
#include "eastrace/source.h"

static inline void hc_hdr(struct et_headers *h, struct et_arena *a, const char *n, const char *v)
{
    assert_int_equal(et_headers_add(h, a, n, strlen(n), v, strlen(v)), 0);
}

/* WBXML-like binary bytes (not UTF-8) for a body. */
static const uint8_t hc_wbxml[] = {0x03, 0x01, 0x6a, 0x00, 0x00, 0x07, 0x56, 0x52, 0x03, 0x30,
                                   0x00, 0x01, 0x01, 0xff, 0xfe, 0x80};

static inline const char *hc_sample_target(void)
{
    return "/Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&DeviceId=DEV1&DeviceType=iPhone&"
           "Password=hunter2";
}

/* Exchange 1: an EAS Sync with Basic auth, a cookie, binary bodies, all timings, addresses
 * and meta. Exchange 2: a request that got no response (an error). Exchange 3: a CONNECT. */
static inline struct et_exchange *hc_sample(int which)
{
    struct et_exchange *x = et_exchange_new();
    struct et_arena *a;
    assert_non_null(x);
    a = x->arena;
    x->id = (uint64_t)which;
    x->has_request = 1;
    x->req.http_major = 1;
    x->req.http_minor = 1;
    x->scheme = "https";
    x->host = "mail.example.com";
    x->port = 443;
    x->client_addr = "192.0.2.7:51234";
    x->server_addr = "203.0.113.5";
    x->t.connect = 1714557600000000 + which * 1000000LL;
    x->t.req_begin = x->t.connect + 1500;
    x->t.req_end = x->t.req_begin + 250;
    if (which == 1) {
        x->req.method = "POST";
        x->req.target = hc_sample_target();
        hc_hdr(&x->req.headers, a, "Host", "mail.example.com");
        hc_hdr(&x->req.headers, a, "Authorization", "Basic amRvZTpodW50ZXIy"); /* jdoe:hunter2 */
        hc_hdr(&x->req.headers, a, "Cookie", "session=abc123");
        hc_hdr(&x->req.headers, a, "Content-Type", "application/vnd.ms-sync.wbxml");
        hc_hdr(&x->req.headers, a, "MS-ASProtocolVersion", "14.1");
        assert_int_equal(et_body_set(&x->req.body, a, hc_wbxml, sizeof(hc_wbxml)), 0);
        x->has_response = 1;
        x->resp.status = 200;
        x->resp.reason = "OK";
        x->resp.http_major = 1;
        x->resp.http_minor = 1;
        hc_hdr(&x->resp.headers, a, "Content-Type", "application/vnd.ms-sync.wbxml");
        hc_hdr(&x->resp.headers, a, "Set-Cookie", "session=def456; Secure");
        assert_int_equal(et_body_set(&x->resp.body, a, hc_wbxml + 2, sizeof(hc_wbxml) - 2), 0);
        x->t.resp_begin = x->t.req_end + 40000;
        x->t.resp_end = x->t.resp_begin + 1234;
        hc_hdr(&x->meta, a, "x-processinfo", "outlook:1234");
    } else if (which == 2) {
        x->req.method = "GET";
        x->req.target = "/owa/?ae=Item";
        hc_hdr(&x->req.headers, a, "Host", "mail.example.com");
        hc_hdr(&x->req.headers, a, "Proxy-Authorization", "NTLM TlRMTVNTUAABAAAA");
        et_exchange_fail(x, ET_ECONNRESET, ET_STAGE_RESPONSE, "upstream closed the connection");
    } else {
        x->req.method = "CONNECT";
        x->req.target = "mail.example.com:443";
        hc_hdr(&x->req.headers, a, "Host", "mail.example.com:443");
        x->has_response = 1;
        x->resp.status = 200;
        x->resp.reason = "Connection Established";
        x->resp.http_major = 1;
        x->resp.http_minor = 1;
        x->t.resp_begin = x->t.req_end + 10;
        x->t.resp_end = x->t.resp_begin + 10;
    }
    return x;
}

/* Reads every exchange of a source into out[] (up to max); returns the count; asserts no
 * error. */
static inline size_t hc_read_all(struct et_source *s, struct et_exchange **out, size_t max)
{
    size_t n = 0;
    struct et_error e;
    for (;;) {
        struct et_exchange *x;
        int rc;
        et_error_clear(&e);
        rc = et_source_next(s, &x, &e);
        if (rc == 0)
            break;
        if (rc < 0)
            fail_msg("unexpected error %d: %s", rc, e.msg);
        assert_true(n < max);
        out[n++] = x;
    }
    return n;
}

static inline void hc_body_eq(const struct et_body *b, const void *p, size_t n)
{
    assert_int_equal(b->len, n);
    if (n > 0)
        assert_memory_equal(b->data, p, n);
}

#endif
