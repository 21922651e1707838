/*
 * HTTP messages from raw bytes (decoder/http.c): the fixtures in tests/fixtures/http are
 * Fiddler-style raw/NN_c.txt and NN_s.txt files written by make-fixtures.py there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "et_test.h"

#include "eastrace/http.h"

struct fx {
    unsigned char *data;
    size_t len;
    struct et_exchange *x;
    struct et_error e;
};

static void fx_load(struct fx *f, const char *name)
{
    memset(f, 0, sizeof(*f));
    f->data = et_test_read_file(et_fixture(name), &f->len);
    if (f->data == NULL)
        fail_msg("fixture %s missing", name);
    f->x = et_exchange_new();
    assert_non_null(f->x);
    et_error_clear(&f->e);
}

static void fx_free(struct fx *f)
{
    et_exchange_free(f->x);
    free(f->data);
}

static int fx_request(struct fx *f, const char *name)
{
    fx_load(f, name);
    return et_http_parse_request(f->data, f->len, f->x, &f->e);
}

static int fx_response(struct fx *f, const char *name)
{
    fx_load(f, name);
    return et_http_parse_response(f->data, f->len, f->x, &f->e);
}

/* Returns the first note with the given name containing `needle`, or NULL. */
static const char *find_note(const struct et_exchange *x, const char *name, const char *needle)
{
    size_t i;
    for (i = 0; i < x->meta.n; i++)
        if (strcmp(x->meta.v[i].name, name) == 0 && strstr(x->meta.v[i].value, needle))
            return x->meta.v[i].value;
    return NULL;
}

static void assert_body_is_file(const struct et_body *b, const char *expected)
{
    size_t n;
    unsigned char *want = et_test_read_file(et_fixture(expected), &n);
    assert_non_null(want);
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
    free(want);
}

static void test_detect_request_response_and_wbxml(void **state)
{
    static const uint8_t wbxml[] = {0x03, 0x01, 0x6A, 0x00, 0x00, 0x07, 0x56, 0x01};
    (void)state;
    assert_int_equal(et_http_detect((const uint8_t *)"POST /x HTTP/1.1\r\n", 18),
                     ET_HTTP_REQUEST);
    assert_int_equal(et_http_detect((const uint8_t *)"\r\nGET / HTTP/1.0\n", 17),
                     ET_HTTP_REQUEST);
    assert_int_equal(et_http_detect((const uint8_t *)"HTTP/1.1 200 OK\r\n", 17),
                     ET_HTTP_RESPONSE);
    assert_int_equal(et_http_detect(wbxml, sizeof(wbxml)), ET_HTTP_NONE);
    assert_int_equal(et_http_detect((const uint8_t *)"<?xml version", 13), ET_HTTP_NONE);
    assert_int_equal(et_http_detect((const uint8_t *)"POST /x HTTP/9", 14), ET_HTTP_NONE);
    assert_int_equal(et_http_detect((const uint8_t *)"HTTP/1.1", 8), ET_HTTP_NONE);
    assert_int_equal(et_http_detect(NULL, 0), ET_HTTP_NONE);
}

static void test_request_sync_plain_query(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_request(&f, "http/request-sync-plain-query.txt"), 0);
    assert_true(f.x->has_request);
    assert_string_equal(f.x->req.method, "POST");
    assert_string_equal(f.x->req.target, "/Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&"
                                         "DeviceId=ANDROIDC1234567&DeviceType=Android");
    assert_int_equal(f.x->req.http_major, 1);
    assert_int_equal(f.x->req.http_minor, 1);
    assert_int_equal(f.x->req.headers.n, 7);
    assert_string_equal(f.x->req.headers.v[0].name, "Host");
    assert_string_equal(et_headers_get(&f.x->req.headers, "ms-asprotocolversion"), "14.1");
    assert_string_equal(f.x->host, "mail.example.com");
    assert_int_equal(f.x->port, 0);
    assert_null(f.x->scheme);
    assert_int_equal(f.x->req.body.len, 20);
    assert_int_equal(f.x->req.body.wire_len, 20);
    assert_false(f.x->req.body.truncated);
    assert_int_equal(f.x->req.body.data[0], 0x03);
    assert_int_equal(et_http_body_kind(&f.x->req.headers, f.x->req.body.data, f.x->req.body.len),
                     ET_BODY_WBXML);
    assert_int_equal(f.x->meta.n, 0);
    assert_int_equal(f.x->err.code, 0);
    fx_free(&f);
}

static void test_request_lf_only_and_vnd_ms_sync(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_request(&f, "http/request-foldersync-lf-only.txt"), 0);
    assert_string_equal(f.x->host, "mail.example.com");
    assert_int_equal(f.x->port, 8443);
    assert_int_equal(f.x->req.body.len, 13);
    /* application/vnd.ms-sync counts as WBXML too. */
    assert_int_equal(et_http_body_kind(&f.x->req.headers, f.x->req.body.data, f.x->req.body.len),
                     ET_BODY_WBXML);
    fx_free(&f);
}

static void test_request_sendmail_rfc822(void **state)
{
    struct fx f;
    struct et_http_view v;
    (void)state;
    assert_int_equal(fx_request(&f, "http/request-sendmail-rfc822-eas121.txt"), 0);
    assert_int_equal(et_http_body_view(&f.x->req.headers, &f.x->req.body, 0, &v, f.x->arena,
                                       &f.e),
                     0);
    assert_int_equal(v.kind, ET_BODY_RFC822);
    assert_false(v.decoded);
    assert_ptr_equal(v.data, f.x->req.body.data);
    assert_true(v.len > 20 && memcmp(v.data, "From: jdoe@example.com", 22) == 0);
    assert_string_equal(et_body_kind_name(v.kind), "rfc822");
    fx_free(&f);
}

static void test_request_absolute_form_sets_scheme_host_port(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_request(&f, "http/request-absolute-form-https-port.txt"), 0);
    assert_string_equal(f.x->scheme, "https");
    assert_string_equal(f.x->host, "Mail.Example.com");
    assert_int_equal(f.x->port, 8443);
    assert_int_equal(f.x->req.body.len, 0);
    assert_null(f.x->req.body.data);
    fx_free(&f);
}

static void test_request_host_already_set_is_kept(void **state)
{
    struct fx f;
    (void)state;
    fx_load(&f, "http/request-absolute-form-https-port.txt");
    f.x->host = "from-the-source.example";
    f.x->port = 443;
    assert_int_equal(et_http_parse_request(f.data, f.len, f.x, &f.e), 0);
    assert_string_equal(f.x->host, "from-the-source.example");
    assert_int_equal(f.x->port, 443);
    assert_string_equal(f.x->scheme, "https");
    fx_free(&f);
}

static void test_request_connect_authority(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_request(&f, "http/request-connect-tunnel.txt"), 0);
    assert_string_equal(f.x->req.method, "CONNECT");
    assert_string_equal(f.x->host, "mail.example.com");
    assert_int_equal(f.x->port, 443);
    fx_free(&f);
}

static void test_request_connect_keeps_fiddler_notes(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_request(&f, "http/request-connect-fiddler-clienthello-notes.txt"), 0);
    assert_string_equal(f.x->req.method, "CONNECT");
    assert_int_equal(f.x->req.http_minor, 0);
    assert_true(f.x->req.body.len > 40);
    assert_memory_equal(f.x->req.body.data, "A SSLv3-compatible ClientHello", 30);
    assert_non_null(find_note(f.x, ET_HTTP_NOTE_REQUEST, "after the CONNECT"));
    fx_free(&f);
}

/* Fuzz finding: a CONNECT whose header block ends in a way our blank-line search saw later
 * than llhttp did; keeping the bytes after it as the body overran the body buffer. */
static void test_fuzz_connect_trailing_before_body_start(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_request(&f, "http/request-fuzz-connect-trailing-before-body-start.bin"), 0);
    assert_string_equal(f.x->req.method, "CONNECT");
    assert_true(f.x->req.body.len > 0 && f.x->req.body.len < f.len);
    assert_memory_equal(f.x->req.body.data, f.data + f.len - f.x->req.body.len,
                        f.x->req.body.len);
    fx_free(&f);
}

static void test_response_to_connect_keeps_fiddler_notes(void **state)
{
    struct fx f;
    (void)state;
    fx_load(&f, "http/response-connect-established-fiddler-notes.txt");
    f.x->has_request = 1;
    f.x->req.method = "CONNECT";
    assert_int_equal(et_http_parse_response(f.data, f.len, f.x, &f.e), 0);
    assert_int_equal(f.x->resp.status, 200);
    assert_memory_equal(f.x->resp.body.data, "Encrypted HTTPS", 15);
    assert_non_null(find_note(f.x, ET_HTTP_NOTE_RESPONSE, "after the CONNECT response"));
    fx_free(&f);
    /* Without the CONNECT the same bytes are leftovers after a Content-Length: 0 body. */
    assert_int_equal(fx_response(&f, "http/response-connect-established-fiddler-notes.txt"), 0);
    assert_int_equal(f.x->resp.body.len, 0);
    assert_non_null(find_note(f.x, ET_HTTP_NOTE_RESPONSE, "ignored"));
    fx_free(&f);
}

static void test_request_host_ipv6(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_request(&f, "http/request-host-ipv6.txt"), 0);
    assert_string_equal(f.x->host, "2001:db8::7");
    assert_int_equal(f.x->port, 444);
    fx_free(&f);
}

static void test_request_body_without_content_length_kept(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_request(&f, "http/request-get-body-without-content-length.txt"), 0);
    assert_string_equal(f.x->req.method, "GET");
    assert_int_equal(f.x->req.body.len, 18);
    assert_memory_equal(f.x->req.body.data, "{\"request\":\"test\"}", 18);
    assert_non_null(find_note(f.x, ET_HTTP_NOTE_REQUEST, "without Content-Length"));
    assert_string_equal(f.x->host, "localhost");
    assert_int_equal(f.x->port, 9000);
    assert_string_equal(f.x->scheme, "http");
    fx_free(&f);
}

static void test_request_truncated_headers(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_request(&f, "http/request-truncated-headers.txt"), ET_ETRUNC);
    assert_int_equal(f.e.code, ET_ETRUNC);
    assert_true(f.e.has_offset);
    assert_int_equal(f.e.offset, f.len);
    assert_non_null(strstr(f.e.msg, "headers"));
    /* The request line was read, so the request is there, marked by the failure. */
    assert_true(f.x->has_request);
    assert_int_equal(f.x->err.code, ET_ETRUNC);
    assert_int_equal(f.x->err.stage, ET_STAGE_REQUEST);
    fx_free(&f);
}

static void test_request_malformed_version_offset(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_request(&f, "http/request-malformed-version.txt"), ET_EPARSE);
    assert_true(f.e.has_offset);
    /* "POST /Microsoft-Server-ActiveSync HTTP/1." is 41 bytes: the 'x' is at 41. */
    assert_int_equal(f.e.offset, 41);
    assert_non_null(strstr(f.e.msg, "HPE_INVALID_VERSION"));
    fx_free(&f);
}

static void test_response_content_length(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_response(&f, "http/response-foldersync-content-length.txt"), 0);
    assert_true(f.x->has_response);
    assert_false(f.x->has_request);
    assert_int_equal(f.x->resp.status, 200);
    assert_string_equal(f.x->resp.reason, "OK");
    assert_int_equal(f.x->resp.body.len, 18);
    assert_string_equal(et_headers_get(&f.x->resp.headers, "MS-Server-ActiveSync"), "15.1");
    fx_free(&f);
}

static void test_response_chunked_split_oddly(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_response(&f, "http/response-chunked-split-oddly.txt"), 0);
    assert_body_is_file(&f.x->resp.body, "http/response-chunked-split-oddly.expected");
    assert_int_equal(f.x->meta.n, 0);
    fx_free(&f);
}

static void test_response_chunked_gzip_view(void **state)
{
    struct fx f;
    struct et_http_view v;
    size_t n;
    unsigned char *want;
    (void)state;
    assert_int_equal(fx_response(&f, "http/response-sync-chunked-gzip.txt"), 0);
    assert_int_equal(f.x->resp.body.data[0], 0x1f);
    assert_int_equal(et_http_body_view(&f.x->resp.headers, &f.x->resp.body, 0, &v, f.x->arena,
                                       &f.e),
                     0);
    assert_true(v.decoded);
    assert_string_equal(v.encoding, "gzip");
    assert_int_equal(v.kind, ET_BODY_WBXML);
    want = et_test_read_file(et_fixture("http/response-sync-chunked-gzip.expected"), &n);
    assert_non_null(want);
    assert_int_equal(v.len, n);
    assert_memory_equal(v.data, want, n);
    free(want);
    fx_free(&f);
}

static void test_response_chunked_trailers_appended(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_response(&f, "http/response-chunked-trailers.txt"), 0);
    assert_int_equal(f.x->resp.body.len, 15);
    assert_memory_equal(f.x->resp.body.data, "hello, trailers", 15);
    assert_string_equal(et_headers_get(&f.x->resp.headers, "X-Checksum"), "abc123");
    assert_non_null(find_note(f.x, ET_HTTP_NOTE_RESPONSE, "trailer"));
    fx_free(&f);
}

static void test_response_chunked_header_over_dechunked_body(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_response(&f, "http/response-chunked-header-body-dechunked.txt"), 0);
    assert_int_equal(f.x->resp.body.len, 15);
    assert_memory_equal(f.x->resp.body.data, "{\"result\":\"ok\"}", 15);
    assert_non_null(find_note(f.x, ET_HTTP_NOTE_RESPONSE, "not chunked"));
    assert_int_equal(f.x->err.code, 0);
    fx_free(&f);
}

static void test_response_chunked_truncated_keeps_partial(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_response(&f, "http/response-chunked-truncated.txt"), ET_ETRUNC);
    assert_true(f.x->resp.body.truncated);
    assert_true(f.x->resp.body.len > 64 && f.x->resp.body.len < 200);
    assert_int_equal(f.e.offset, f.len);
    assert_non_null(strstr(f.e.msg, "chunked"));
    fx_free(&f);
}

static void test_response_truncated_body_keeps_partial(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_response(&f, "http/response-truncated-body.txt"), ET_ETRUNC);
    assert_true(f.x->has_response);
    assert_int_equal(f.x->resp.status, 200);
    assert_int_equal(f.x->resp.body.len, 40);
    assert_int_equal(f.x->resp.body.wire_len, 100);
    assert_true(f.x->resp.body.truncated);
    assert_int_equal(f.e.offset, f.len);
    assert_non_null(strstr(f.e.msg, "40 of 100"));
    assert_int_equal(f.x->err.code, ET_ETRUNC);
    assert_int_equal(f.x->err.stage, ET_STAGE_RESPONSE);
    fx_free(&f);
}

static void test_response_100_continue_skipped(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_response(&f, "http/response-100-continue-then-200.txt"), 0);
    assert_int_equal(f.x->resp.status, 200);
    assert_int_equal(f.x->resp.headers.n, 2);
    assert_null(et_headers_get(&f.x->resp.headers, "X-Interim"));
    assert_int_equal(f.x->resp.body.len, 18);
    assert_non_null(find_note(f.x, ET_HTTP_NOTE_RESPONSE, "skipped 2 interim"));
    fx_free(&f);
}

static void test_response_to_head_has_no_body(void **state)
{
    struct fx f;
    (void)state;
    fx_load(&f, "http/response-head-content-length.txt");
    f.x->has_request = 1;
    f.x->req.method = "HEAD";
    assert_int_equal(et_http_parse_response(f.data, f.len, f.x, &f.e), 0);
    assert_int_equal(f.x->resp.status, 200);
    assert_int_equal(f.x->resp.body.len, 0);
    assert_string_equal(et_headers_get(&f.x->resp.headers, "Content-Length"), "1234");
    fx_free(&f);
    /* Without the HEAD request the same bytes are a response cut short. */
    assert_int_equal(fx_response(&f, "http/response-head-content-length.txt"), ET_ETRUNC);
    fx_free(&f);
}

static void test_response_204_and_304_have_no_body(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_response(&f, "http/response-204-no-content.txt"), 0);
    assert_int_equal(f.x->resp.status, 204);
    assert_int_equal(f.x->resp.body.len, 0);
    fx_free(&f);
    assert_int_equal(fx_response(&f, "http/response-304-not-modified.txt"), 0);
    assert_int_equal(f.x->resp.status, 304);
    assert_int_equal(f.x->resp.body.len, 0);
    fx_free(&f);
}

static void test_response_451_redirect(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_response(&f, "http/response-451-redirect.txt"), 0);
    assert_int_equal(f.x->resp.status, 451);
    assert_string_equal(f.x->resp.reason, "");
    assert_string_equal(et_headers_get(&f.x->resp.headers, "X-MS-Location"),
                        "https://mail2.example.com/Microsoft-Server-ActiveSync");
    fx_free(&f);
}

static void test_response_without_length_reads_to_end(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_response(&f, "http/response-no-content-length-read-to-end.txt"), 0);
    assert_int_equal(f.x->resp.body.len, 58);
    assert_int_equal(et_http_body_kind(&f.x->resp.headers, f.x->resp.body.data,
                                       f.x->resp.body.len),
                     ET_BODY_XML);
    fx_free(&f);
}

static void test_response_extra_bytes_noted(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_response(&f, "http/response-extra-bytes-after-body.txt"), 0);
    assert_int_equal(f.x->resp.body.len, 5);
    assert_non_null(find_note(f.x, ET_HTTP_NOTE_RESPONSE, "6 bytes after the end"));
    fx_free(&f);
}

static void test_response_malformed_status(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_response(&f, "http/response-malformed-status.txt"), ET_EPARSE);
    assert_true(f.e.has_offset);
    assert_int_equal(f.e.offset, 10); /* "HTTP/1.1 2" then the 'x' */
    assert_false(f.x->has_response);
    fx_free(&f);
}

static void test_response_lf_only(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_response(&f, "http/response-autodiscover-xml-lf-only.txt"), 0);
    assert_int_equal(f.x->resp.body.len, 29);
    assert_string_equal(et_headers_get(&f.x->resp.headers, "Content-Type"),
                        "text/xml; charset=utf-8");
    fx_free(&f);
}

static void test_response_connection_established(void **state)
{
    struct fx f;
    (void)state;
    assert_int_equal(fx_response(&f, "http/response-connection-established.txt"), 0);
    assert_int_equal(f.x->resp.status, 200);
    assert_int_equal(f.x->resp.http_minor, 0);
    assert_string_equal(f.x->resp.reason, "Connection Established");
    assert_int_equal(f.x->resp.body.len, 0);
    fx_free(&f);
}

static void test_parse_empty_and_invalid_arguments(void **state)
{
    struct et_exchange *x = et_exchange_new();
    struct et_error e;
    (void)state;
    et_error_clear(&e);
    assert_int_equal(et_http_parse_response((const uint8_t *)"", 0, x, &e), ET_ETRUNC);
    assert_int_equal(et_http_parse_request(NULL, 5, x, NULL), ET_EINVAL);
    assert_int_equal(et_http_parse_request((const uint8_t *)"x", 1, NULL, NULL), ET_EINVAL);
    et_exchange_free(x);
}

/* Every split of a message into request + response keeps working when fed whole: the parser
 * also has to cope with every prefix of a message (a capture cut anywhere). */
static void test_every_prefix_is_clean(void **state)
{
    static const char *const names[] = {
        "http/response-sync-chunked-gzip.txt", "http/response-100-continue-then-200.txt",
        "http/response-multipart-itemoperations.bin", "http/request-sync-plain-query.txt"};
    size_t i, k;
    (void)state;
    for (i = 0; i < ET_ARRAY_SIZE(names); i++) {
        size_t n = 0;
        unsigned char *d = et_test_read_file(et_fixture(names[i]), &n);
        int is_req = strstr(names[i], "request") != NULL;
        assert_non_null(d);
        for (k = 0; k <= n; k++) {
            struct et_exchange *x = et_exchange_new();
            struct et_error e;
            int rc;
            et_error_clear(&e);
            rc = is_req ? et_http_parse_request(d, k, x, &e) : et_http_parse_response(d, k, x, &e);
            if (k == n) {
                assert_int_equal(rc, 0);
            } else {
                /* A prefix is never a success unless it ends at a point a reader cannot tell
                 * from the end (none of these fixtures has such a point before the end). */
                assert_true(rc == ET_ETRUNC || rc == ET_EPARSE);
                assert_true(e.has_offset);
                assert_true(e.offset <= k);
            }
            et_exchange_free(x);
        }
        free(d);
    }
}

static void test_alloc_failure_every_point(void **state)
{
    static const char *const names[] = {
        "http/response-sync-chunked-gzip.txt", "http/response-100-continue-then-200.txt",
        "http/response-chunked-trailers.txt", "http/request-get-body-without-content-length.txt",
        "http/response-multipart-gzip.bin", "http/request-absolute-form-https-port.txt"};
    size_t i;
    (void)state;
    for (i = 0; i < ET_ARRAY_SIZE(names); i++) {
        size_t n = 0;
        unsigned char *d = et_test_read_file(et_fixture(names[i]), &n);
        int is_req = strstr(names[i], "request") != NULL;
        long k;
        int ok = 0;
        assert_non_null(d);
        for (k = 1; k < 200 && !ok; k++) {
            struct et_exchange *x;
            struct et_error e;
            struct et_http_view v;
            int rc;
            et_error_clear(&e);
            et_alloc_fail_after(k);
            x = et_exchange_new();
            if (x == NULL) {
                et_alloc_fail_after(-1);
                continue;
            }
            rc = is_req ? et_http_parse_request(d, n, x, &e) : et_http_parse_response(d, n, x, &e);
            if (rc == 0) {
                struct et_body *b = is_req ? &x->req.body : &x->resp.body;
                struct et_headers *h = is_req ? &x->req.headers : &x->resp.headers;
                rc = et_http_body_view(h, b, 0, &v, x->arena, &e);
            }
            et_alloc_fail_after(-1);
            if (rc == 0)
                ok = 1;
            else
                assert_int_equal(rc, ET_ENOMEM);
            et_exchange_free(x);
        }
        assert_true(ok);
        free(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect_request_response_and_wbxml),
        cmocka_unit_test(test_request_sync_plain_query),
        cmocka_unit_test(test_request_lf_only_and_vnd_ms_sync),
        cmocka_unit_test(test_request_sendmail_rfc822),
        cmocka_unit_test(test_request_absolute_form_sets_scheme_host_port),
        cmocka_unit_test(test_request_host_already_set_is_kept),
        cmocka_unit_test(test_request_connect_authority),
        cmocka_unit_test(test_request_connect_keeps_fiddler_notes),
        cmocka_unit_test(test_fuzz_connect_trailing_before_body_start),
        cmocka_unit_test(test_response_to_connect_keeps_fiddler_notes),
        cmocka_unit_test(test_request_host_ipv6),
        cmocka_unit_test(test_request_body_without_content_length_kept),
        cmocka_unit_test(test_request_truncated_headers),
        cmocka_unit_test(test_request_malformed_version_offset),
        cmocka_unit_test(test_response_content_length),
        cmocka_unit_test(test_response_chunked_split_oddly),
        cmocka_unit_test(test_response_chunked_gzip_view),
        cmocka_unit_test(test_response_chunked_trailers_appended),
        cmocka_unit_test(test_response_chunked_header_over_dechunked_body),
        cmocka_unit_test(test_response_chunked_truncated_keeps_partial),
        cmocka_unit_test(test_response_truncated_body_keeps_partial),
        cmocka_unit_test(test_response_100_continue_skipped),
        cmocka_unit_test(test_response_to_head_has_no_body),
        cmocka_unit_test(test_response_204_and_304_have_no_body),
        cmocka_unit_test(test_response_451_redirect),
        cmocka_unit_test(test_response_without_length_reads_to_end),
        cmocka_unit_test(test_response_extra_bytes_noted),
        cmocka_unit_test(test_response_malformed_status),
        cmocka_unit_test(test_response_lf_only),
        cmocka_unit_test(test_response_connection_established),
        cmocka_unit_test(test_parse_empty_and_invalid_arguments),
        cmocka_unit_test(test_every_prefix_is_clean),
        cmocka_unit_test(test_alloc_failure_every_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
