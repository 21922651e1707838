/*
 * The PROXY protocol header parser (proxy/proxyproto.c): v1 and v2 headers that must be
 * accepted with their addresses, and malformed, truncated and oversized ones that must be
 * refused (or wait for more bytes) with a reason. Fixtures: tests/fixtures/proxyproto/ (they
 * also seed fuzz_proxyproto).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "et_test.h"
#include "proxy_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static int parse(const void *d, size_t n, struct et__pp *pp, struct et_error *e)
{
    et_error_clear(e);
    return et__pp_parse(d, n, pp, e);
}

static int parse_str(const char *s, struct et__pp *pp, struct et_error *e)
{
    return parse(s, strlen(s), pp, e);
}

static void assert_src(const struct et__pp *pp, const char *want)
{
    char a[64];
    et_sockaddr_format((const struct sockaddr *)&pp->src, a, sizeof(a));
    assert_string_equal(a, want);
}

static int parse_fixture(const char *name, struct et__pp *pp, struct et_error *e, size_t *len)
{
    char rel[128];
    snprintf(rel, sizeof(rel), "proxyproto/%s", name);
    unsigned char *d = et_test_read_file(et_fixture(rel), len);
    assert_non_null(d);
    int r = parse(d, *len, pp, e);
    free(d);
    return r;
}

static void test_pp_v1_tcp4_and_tcp6_give_the_client(void **state)
{
    struct et__pp pp;
    struct et_error e;
    size_t n;
    (void)state;
    assert_int_equal(parse_fixture("v1-tcp4.bin", &pp, &e, &n), 0);
    assert_int_equal(pp.version, 1);
    assert_false(pp.local);
    assert_int_equal(pp.len, strlen("PROXY TCP4 203.0.113.7 192.0.2.1 50123 443\r\n"));
    assert_src(&pp, "203.0.113.7:50123");
    assert_int_equal(parse_fixture("v1-tcp6.bin", &pp, &e, &n), 0);
    assert_src(&pp, "[2001:db8::5]:40000");
    assert_int_equal(parse_fixture("v1-unknown.bin", &pp, &e, &n), 0);
    assert_true(pp.local);
    assert_int_equal(parse_str("PROXY UNKNOWN anything at all here\r\n", &pp, &e), 0);
    assert_true(pp.local);
}

static void test_pp_v1_malformed_are_refused_with_a_reason(void **state)
{
    static const char *const bad[] = {
        "PROXY TCP4 203.0.113.07 192.0.2.1 1 443\r\n", /* leading zero in an octet */
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 443\r\n",       /* leading zero in a port */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",      /* port out of range */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",            /* bare LF */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",           /* bare CR */
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",         /* two spaces */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",            /* a port missing */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",        /* an extra field */
        "PROXY TCP4 ::1 ::1 1 2\r\n",                  /* IPv6 under TCP4 */
        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",          /* IPv4 under TCP6 */
        "PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n",       /* not the hex form */
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",          /* not TCP */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x01\r\n",      /* a control byte */
        "GET / HTTP/1.1\r\n\r\n",                      /* no header at all */
        "PROXX TCP4",                                  /* decided before the line ends */
    };
    struct et__pp pp;
    struct et_error e;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = parse_str(bad[i], &pp, &e);
        if (r != ET_EPARSE)
            fail_msg("accepted or waited on '%s' (%d)", bad[i], r);
        assert_non_null(strstr(e.msg, "PROXY header"));
    }
}

static void test_pp_v1_truncated_waits_and_oversized_fails(void **state)
{
    struct et__pp pp;
    struct et_error e;
    char line[200];
    (void)state;
    const char *full = "PROXY TCP4 203.0.113.7 192.0.2.1 50123 443\r\n";
    for (size_t k = 0; k < strlen(full); k++)
        assert_int_equal(parse(full, k, &pp, &e), ET_EAGAIN);
    /* 107 bytes without CRLF: no valid v1 line is longer. */
    memset(line, 'a', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    assert_int_equal(parse(line, 106, &pp, &e), ET_EAGAIN);
    assert_int_equal(parse(line, 107, &pp, &e), ET_EPARSE);
    assert_non_null(strstr(e.msg, "107"));
}

static void test_pp_v2_tcp4_tcp6_local_and_tlvs(void **state)
{
    struct et__pp pp;
    struct et_error e;
    size_t n;
    (void)state;
    assert_int_equal(parse_fixture("v2-tcp4.bin", &pp, &e, &n), 0);
    assert_int_equal(pp.version, 2);
    assert_int_equal(pp.len, 28);
    assert_src(&pp, "203.0.113.7:50123");
    assert_int_equal(parse_fixture("v2-tcp6-tlv.bin", &pp, &e, &n), 0);
    assert_int_equal(pp.len, n); /* the TLV is skipped as part of the header */
    assert_src(&pp, "[2001:db8::5]:40000");
    assert_int_equal(parse_fixture("v2-local.bin", &pp, &e, &n), 0);
    assert_true(pp.local);
    assert_int_equal(pp.len, 16);
    /* PROXY over UDP or UNIX, or AF_UNSPEC: valid, the connection's own peer is used. */
    uint8_t u[16 + 12];
    memcpy(u, "\r\n\r\n\0\r\nQUIT\n", 12);
    u[12] = 0x21;
    u[13] = 0x12;
    u[14] = 0;
    u[15] = 12;
    memset(u + 16, 1, 12);
    assert_int_equal(parse(u, sizeof(u), &pp, &e), 0);
    assert_true(pp.local);
}

static void test_pp_v2_malformed_truncated_oversized(void **state)
{
    struct et__pp pp;
    struct et_error e;
    size_t n;
    uint8_t h[16 + 12];
    (void)state;
    assert_int_equal(parse_fixture("v2-truncated.bin", &pp, &e, &n), ET_EAGAIN);
    assert_int_equal(parse_fixture("v2-oversized.bin", &pp, &e, &n), ET_EPARSE);
    assert_non_null(strstr(e.msg, "4096"));
    assert_int_equal(parse_fixture("v2-bad-command.bin", &pp, &e, &n), ET_EPARSE);
    memcpy(h, "\r\n\r\n\0\r\nQUIT\n", 12);
    memset(h + 16, 0, 12);
    h[14] = 0;
    h[15] = 12;
    h[12] = 0x11; /* version 1 in a v2 header */
    h[13] = 0x11;
    assert_int_equal(parse(h, sizeof(h), &pp, &e), ET_EPARSE);
    h[12] = 0x21;
    h[13] = 0x41; /* family 4 */
    assert_int_equal(parse(h, sizeof(h), &pp, &e), ET_EPARSE);
    h[13] = 0x13; /* transport 3 */
    assert_int_equal(parse(h, sizeof(h), &pp, &e), ET_EPARSE);
    h[13] = 0x21; /* TCP6 with a 12-byte block */
    assert_int_equal(parse(h, sizeof(h), &pp, &e), ET_EPARSE);
    h[13] = 0x11;
    h[15] = 11; /* TCP4 with an 11-byte block */
    assert_int_equal(parse(h, 16 + 11, &pp, &e), ET_EPARSE);
    /* The signature itself, bit by bit: a wrong byte fails at once, a prefix waits. */
    assert_int_equal(parse("\r\n\r\n\0\r\n", 7, &pp, &e), ET_EAGAIN);
    assert_int_equal(parse("\r\n\r\n\0\r\nQUIX", 11, &pp, &e), ET_EPARSE);
    assert_int_equal(parse("", 0, &pp, &e), ET_EAGAIN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pp_v1_tcp4_and_tcp6_give_the_client),
        cmocka_unit_test(test_pp_v1_malformed_are_refused_with_a_reason),
        cmocka_unit_test(test_pp_v1_truncated_waits_and_oversized_fails),
        cmocka_unit_test(test_pp_v2_tcp4_tcp6_local_and_tlvs),
        cmocka_unit_test(test_pp_v2_malformed_truncated_oversized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
