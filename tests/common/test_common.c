/* Tests of the common layer: buffers, arena, base64, UTF-8, time, exchange model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eastrace/arena.h"
#include "eastrace/common.h"
#include "eastrace/exchange.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* The JSON and XML escapers and the terminal scrubber skip plain text sixteen bytes at a
 * time: random strings of pieces, each with a known result whatever surrounds it (no piece
 * starts with a UTF-8 continuation byte), plain runs of every length among them, give the
 * pieces' results in order. */
static void test_escapers_over_random_pieces(void **state)
{
    static const struct {
        const char *in, *json, *xml, *scrub;
    } pc[] = {
        {"a", "a", "a", "a"},
        {"The device must send FolderSync", "The device must send FolderSync",
         "The device must send FolderSync", "The device must send FolderSync"},
        {"0123456789abcdef-", "0123456789abcdef-", "0123456789abcdef-", "0123456789abcdef-"},
        {"\xc3\xa9", "\xc3\xa9", "\xc3\xa9", "\xc3\xa9"},
        {"\xe2\x82\xac", "\xe2\x82\xac", "\xe2\x82\xac", "\xe2\x82\xac"},
        {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
        {"\xc2\x85", "\\u0085", "\xc2\x85", "??"},
        {"\x1b", "\\u001b", "\\x1B", "?"},
        {"\x7f", "\\u007f", "\x7f", "?"},
        {"\t", "\\t", "\t", "?"},
        {"\"", "\\\"", "&quot;", "\""},
        {"\\", "\\\\", "\\", "\\"},
        {"&", "&", "&amp;", "&"},
        {"<", "<", "&lt;", "<"},
        {"'", "'", "&apos;", "'"},
        {"\xff", "\\ufffd", "\xff", "?"},
        {"\xc3", "\\ufffd", "\xc3", "?"},
    };
    const size_t np = sizeof(pc) / sizeof(pc[0]);
    struct et_buf in, j, x, wj, wx, ws;
    uint64_t r = 99;
    (void)state;
    et_buf_init(&in, 0);
    et_buf_init(&j, 0);
    et_buf_init(&x, 0);
    et_buf_init(&wj, 0);
    et_buf_init(&wx, 0);
    et_buf_init(&ws, 0);
    for (int iter = 0; iter < 5000; iter++) {
        et_buf_reset(&in);
        et_buf_reset(&j);
        et_buf_reset(&x);
        et_buf_reset(&wj);
        et_buf_reset(&wx);
        et_buf_reset(&ws);
        assert_int_equal(et_buf_putc(&wj, '"'), 0);
        int k = (int)(r % 40);
        for (int i = 0; i < k; i++) {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            /* plain pieces most of the time, so that whole plain blocks occur */
            size_t w = r % 4 != 0 ? (r >> 8) % 3 : (r >> 8) % np;
            assert_int_equal(et_buf_puts(&in, pc[w].in), 0);
            assert_int_equal(et_buf_puts(&wj, pc[w].json), 0);
            assert_int_equal(et_buf_puts(&wx, pc[w].xml), 0);
            assert_int_equal(et_buf_puts(&ws, pc[w].scrub), 0);
        }
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        assert_int_equal(et_buf_putc(&wj, '"'), 0);
        assert_int_equal(et_buf_put_json_string(&j, (const char *)in.data, in.len), 0);
        assert_int_equal(et_buf_put_xml_escaped(&x, (const char *)in.data, in.len), 0);
        assert_int_equal(j.len, wj.len);
        assert_memory_equal(j.data, wj.data, j.len);
        assert_int_equal(x.len, wx.len);
        if (x.len)
            assert_memory_equal(x.data, wx.data, x.len);
        if (in.len) {
            et_scrub(in.data, in.len, 0, NULL);
            assert_int_equal(in.len, ws.len);
            assert_memory_equal(in.data, ws.data, in.len);
        }
    }
    et_buf_free(&in);
    et_buf_free(&j);
    et_buf_free(&x);
    et_buf_free(&wj);
    et_buf_free(&wx);
    et_buf_free(&ws);
}

/* The decimal and ISO 8601 formatters give printf's text. */
static void test_fmt_numbers_and_times_as_printf(void **state)
{
    char a[32], b[64];
    (void)state;
    static const uint64_t u[] = {0, 1, 9, 10, 99, 100, 4294967295ULL, 4294967296ULL,
                                 18446744073709551615ULL};
    for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
        snprintf(b, sizeof(b), "%llu", (unsigned long long)u[i]);
        assert_int_equal(et_fmt_u64(a, u[i]), strlen(b));
        assert_string_equal(a, b);
    }
    static const int64_t s[] = {0, -1, 1, -9223372036854775807LL - 1, 9223372036854775807LL, -42};
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        snprintf(b, sizeof(b), "%lld", (long long)s[i]);
        assert_int_equal(et_fmt_i64(a, s[i]), strlen(b));
        assert_string_equal(a, b);
    }
    /* Times: every millisecond digit, the years around 1970, 2000 and 9999, and past 9999
     * (printf's path). */
    uint64_t x = 7;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t us = (int64_t)(x % 400000000000000000ULL) + 1;
        if (i % 4 == 0)
            us = (int64_t)(x % (40LL * 365 * 86400 * 1000000)) + 1;
        struct tm tm;
        time_t secs = (time_t)(us / 1000000);
        gmtime_r(&secs, &tm);
        snprintf(b, sizeof(b), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)((us % 1000000) / 1000));
        char o[64];
        assert_string_equal(et_time_iso8601(us, o, sizeof(o)), b);
    }
    char small[8];
    et_time_iso8601(1714557600123456LL, small, sizeof(small));
    assert_string_equal(small, "2024-05"); /* cut like snprintf */
}

static void test_buf_append_respects_cap(void **state)
{
    struct et_buf b;
    (void)state;
    et_buf_init(&b, 8);
    assert_int_equal(et_buf_append(&b, "abcd", 4), 0);
    assert_int_equal(et_buf_append(&b, "efgh", 4), 0);
    assert_int_equal(et_buf_append(&b, "i", 1), ET_ETOOBIG);
    assert_int_equal(b.len, 8);
    assert_string_equal((char *)b.data, "abcdefgh");
    et_buf_consume(&b, 3);
    assert_string_equal((char *)b.data, "defgh");
    et_buf_free(&b);
}

static void test_buf_printf_long_output(void **state)
{
    struct et_buf b;
    char big[1000];
    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    et_buf_init(&b, 0);
    assert_int_equal(et_buf_printf(&b, "<%s>%d", big, 42), 0);
    assert_int_equal(b.len, 999 + 4);
    assert_memory_equal(b.data + 1000, ">42", 3);
    et_buf_free(&b);
}

static void test_buf_escapes(void **state)
{
    struct et_buf b;
    (void)state;
    et_buf_init(&b, 0);
    assert_int_equal(et_buf_put_xml_escaped(&b, "a<b>&\"c'\x01", 9), 0);
    assert_string_equal((char *)b.data, "a&lt;b&gt;&amp;&quot;c&apos;\\x01");
    et_buf_reset(&b);
    assert_int_equal(et_buf_put_json_string(&b, "q\"\\\n\x02\xc3\xa9", 7), 0);
    assert_string_equal((char *)b.data, "\"q\\\"\\\\\\n\\u0002\xc3\xa9\"");
    et_buf_free(&b);
}

static void test_base64_roundtrip_and_errors(void **state)
{
    struct et_buf b, d;
    struct et_error e;
    const char *vec[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    (void)state;
    for (size_t i = 0; i < ET_ARRAY_SIZE(vec); i++) {
        et_buf_init(&b, 0);
        et_buf_init(&d, 0);
        et_error_clear(&e);
        assert_int_equal(et_base64_encode(&b, (const uint8_t *)vec[i], strlen(vec[i])), 0);
        assert_string_equal(b.len ? (char *)b.data : "", enc[i]);
        assert_int_equal(et_base64_decode(&d, enc[i], strlen(enc[i]), &e), 0);
        assert_int_equal(d.len, strlen(vec[i]));
        assert_memory_equal(d.data, vec[i], d.len);
        et_buf_free(&b);
        et_buf_free(&d);
    }
    et_buf_init(&d, 0);
    et_error_clear(&e);
    assert_int_equal(et_base64_decode(&d, "Zm9v!", 5, &e), ET_EPARSE);
    assert_true(e.has_offset);
    assert_int_equal(e.offset, 4);
    et_buf_free(&d);
}

static void test_utf8_validation(void **state)
{
    (void)state;
    assert_true(et_utf8_valid((const uint8_t *)"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    assert_false(et_utf8_valid((const uint8_t *)"\xc0\xaf", 2));     /* overlong */
    assert_false(et_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3)); /* surrogate */
    assert_false(et_utf8_valid((const uint8_t *)"\xe2\x82", 2));     /* truncated */
    assert_false(et_utf8_valid((const uint8_t *)"\xff", 1));
}

static void test_time_format_and_parse(void **state)
{
    char out[32];
    int64_t us;
    (void)state;
    assert_int_equal(et_time_parse_iso8601("2024-02-29T23:59:58.250Z", &us), 0);
    assert_string_equal(et_time_iso8601(us, out, sizeof(out)), "2024-02-29T23:59:58.250Z");
    assert_int_equal(et_time_parse_iso8601("2024-03-01T01:59:58.250+02:00", &us), 0);
    assert_string_equal(et_time_iso8601(us, out, sizeof(out)), "2024-02-29T23:59:58.250Z");
    assert_int_equal(et_time_parse_iso8601("1970-01-01 00:00:01", &us), 0);
    assert_int_equal(us, 1000000);
    assert_int_equal(et_time_parse_iso8601("2024-13-01T00:00:00Z", &us), ET_EPARSE);
    assert_int_equal(et_time_parse_iso8601("2024-01-01T00:00:00Zjunk", &us), ET_EPARSE);
}

static void test_arena_many_allocations_and_large(void **state)
{
    struct et_arena *a = et_arena_new(256);
    (void)state;
    assert_non_null(a);
    for (int i = 0; i < 1000; i++) {
        char *s = et_arena_printf(a, "item-%d", i);
        assert_non_null(s);
        assert_true(((uintptr_t)s & 15) == 0);
    }
    unsigned char *big = et_arena_alloc(a, 100000);
    assert_non_null(big);
    assert_int_equal(big[99999], 0);
    assert_true(et_arena_used(a) >= 100000);
    et_arena_reset(a);
    assert_int_equal(et_arena_used(a), 0);
    assert_non_null(et_arena_strdup(a, "after reset"));
    et_arena_free(a);
    et_arena_free(NULL);
}

static void test_exchange_headers_and_failure(void **state)
{
    struct et_exchange *x = et_exchange_new();
    (void)state;
    assert_non_null(x);
    for (int i = 0; i < 40; i++)
        assert_int_equal(et_headers_add(&x->req.headers, x->arena, "X-N", 3, " v ", 3), 0);
    assert_int_equal(et_headers_add(&x->req.headers, x->arena, "Content-Type", 12,
                                    "application/vnd.ms-sync.wbxml", 29), 0);
    assert_string_equal(et_headers_get(&x->req.headers, "content-type"),
                        "application/vnd.ms-sync.wbxml");
    assert_string_equal(x->req.headers.v[0].value, "v");
    assert_null(et_headers_get(&x->req.headers, "Missing"));
    et_exchange_fail(x, ET_ECERT, ET_STAGE_UPSTREAM_TLS, "certificate for %s expired", "cas");
    et_exchange_fail(x, ET_EIO, ET_STAGE_RESPONSE, "second failure is ignored");
    assert_int_equal(x->err.code, ET_ECERT);
    assert_string_equal(x->err.message, "certificate for cas expired");
    assert_string_equal(et_stage_name(x->err.stage), "upstream-tls");
    x->t.req_begin = 1000;
    x->t.resp_end = 251000;
    assert_int_equal(et_exchange_duration_us(x), 250000);
    et_exchange_free(x);
}

static void test_alloc_failure_injection(void **state)
{
    struct et_buf b;
    (void)state;
    et_buf_init(&b, 0);
    et_alloc_fail_after(1);
    assert_int_equal(et_buf_append(&b, "x", 1), ET_ENOMEM);
    et_alloc_fail_after(-1);
    assert_int_equal(et_buf_append(&b, "x", 1), 0);
    et_buf_free(&b);
    assert_null(b.data);
}

/* The terminal scrubber: C0, DEL, ESC, C1 raw and as UTF-8, invalid UTF-8; text kept. */
static void test_scrub_terminal_controls(void **state)
{
    (void)state;
    char a[] = "a\x1b]0;PWNED\x07" "b\x7f\xc2\x9b" "c\x9b" "d\xc3\xa9\xe2\x82\xac\t\n";
    assert_int_equal(et_scrub((uint8_t *)a, strlen(a), 0, NULL), 8);
    assert_string_equal(a, "a?]0;PWNED?b???c?d\xc3\xa9\xe2\x82\xac??");
    char b[] = "x\ty\r\nz\rw\n";
    assert_int_equal(et_scrub((uint8_t *)b, strlen(b), ET_SCRUB_LINES, NULL), 1);
    assert_string_equal(b, "x\ty\r\nz?w\n");
    /* Overlong, surrogate and out-of-range forms are not text. */
    char c[] = "\xc0\x9b\xe0\x80\x9b\xed\xa0\x80\xf4\x90\x80\x80";
    et_scrub((uint8_t *)c, strlen(c), 0, NULL);
    assert_string_equal(c, "????????????");
    /* Colours survive only with ET_SCRUB_SGR, other sequences never. */
    char d[] = "\x1b[1;31mred\x1b[0m\x1b[2J";
    et_scrub((uint8_t *)d, strlen(d), ET_SCRUB_SGR, NULL);
    assert_string_equal(d, "\x1b[1;31mred\x1b[0m?[2J");
    /* A cut sequence at the end is held for the next call, or scrubbed without keep. */
    size_t keep = 0;
    char e[] = "ok\xe2\x82";
    assert_int_equal(et_scrub((uint8_t *)e, strlen(e), 0, &keep), 0);
    assert_int_equal(keep, 2);
    char f[] = "ok\r";
    et_scrub((uint8_t *)f, strlen(f), ET_SCRUB_LINES, &keep);
    assert_int_equal(keep, 1);
    et_scrub((uint8_t *)f, strlen(f), ET_SCRUB_LINES, NULL);
    assert_string_equal(f, "ok?");
    char g[] = "tab\there";
    assert_string_equal(et_str_printable(g), "tab?here");
}

/* JSON strings escape C1 as they escape C0: JSON printed on a terminal stays inert. */
static void test_json_string_escapes_c1(void **state)
{
    (void)state;
    struct et_buf b;
    et_buf_init(&b, 0);
    assert_int_equal(et_buf_put_json_string(&b, "a\xc2\x9b" "b\xc2\xa0\x7f", 7), 0);
    assert_string_equal((char *)b.data, "\"a\\u009bb\xc2\xa0\\u007f\"");
    et_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_respects_cap),
        cmocka_unit_test(test_buf_printf_long_output),
        cmocka_unit_test(test_buf_escapes),
        cmocka_unit_test(test_base64_roundtrip_and_errors),
        cmocka_unit_test(test_utf8_validation),
        cmocka_unit_test(test_time_format_and_parse),
        cmocka_unit_test(test_arena_many_allocations_and_large),
        cmocka_unit_test(test_exchange_headers_and_failure),
        cmocka_unit_test(test_alloc_failure_injection),
        cmocka_unit_test(test_scrub_terminal_controls),
        cmocka_unit_test(test_json_string_escapes_c1),
        cmocka_unit_test(test_fmt_numbers_and_times_as_printf),
        cmocka_unit_test(test_escapers_over_random_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
