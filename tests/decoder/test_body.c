/*
 * HTTP bodies (decoder/body.c, decoder/multipart.c): content decoding with its cap, body kinds,
 * the MS-ASCMD multipart layout and the body view. Compressed fixtures come from
 * tests/fixtures/http/make-fixtures.py; some inputs are built here with zlib.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <zlib.h>

#include "et_test.h"

#include "eastrace/http.h"

struct msg {
    unsigned char *data;
    size_t len;
    struct et_exchange *x;
    struct et_error e;
};

static void load_response(struct msg *m, const char *name)
{
    memset(m, 0, sizeof(*m));
    m->data = et_test_read_file(et_fixture(name), &m->len);
    if (m->data == NULL)
        fail_msg("fixture %s missing", name);
    m->x = et_exchange_new();
    assert_non_null(m->x);
    et_error_clear(&m->e);
    assert_int_equal(et_http_parse_response(m->data, m->len, m->x, &m->e), 0);
}

static void msg_free(struct msg *m)
{
    et_exchange_free(m->x);
    free(m->data);
}

static int decode_fixture(const char *name, size_t cap, struct et_buf *out, struct et_error *e)
{
    struct msg m;
    int rc;
    load_response(&m, name);
    et_error_clear(e);
    rc = et_http_content_decode(&m.x->resp.headers, m.x->resp.body.data, m.x->resp.body.len, cap,
                                out, e);
    msg_free(&m);
    return rc;
}

static void assert_buf_is_file(const struct et_buf *b, const char *expected)
{
    size_t n = 0;
    unsigned char *want = et_test_read_file(et_fixture(expected), &n);
    assert_non_null(want);
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
    free(want);
}

static void test_deflate_raw_and_zlib(void **state)
{
    struct et_buf out;
    struct et_error e;
    (void)state;
    et_buf_init(&out, 0);
    assert_int_equal(decode_fixture("http/response-deflate-raw.txt", 0, &out, &e), 0);
    assert_buf_is_file(&out, "http/response-deflate.expected");
    et_buf_reset(&out);
    assert_int_equal(decode_fixture("http/response-deflate-zlib.txt", 0, &out, &e), 0);
    assert_buf_is_file(&out, "http/response-deflate.expected");
    et_buf_free(&out);
}

static void test_stacked_deflate_gzip(void **state)
{
    struct et_buf out;
    struct et_error e;
    (void)state;
    et_buf_init(&out, 0);
    assert_int_equal(decode_fixture("http/response-stacked-deflate-gzip.txt", 0, &out, &e), 0);
    assert_buf_is_file(&out, "http/response-deflate.expected");
    et_buf_free(&out);
}

static void test_gzip_two_members_x_gzip(void **state)
{
    struct et_buf out;
    struct et_error e;
    (void)state;
    et_buf_init(&out, 0);
    assert_int_equal(decode_fixture("http/response-gzip-two-members.txt", 0, &out, &e), 0);
    assert_int_equal(out.len, 12);
    assert_string_equal((const char *)out.data, "first second");
    et_buf_free(&out);
}

static void test_gzip_bomb_capped(void **state)
{
    struct et_buf out;
    struct et_error e;
    (void)state;
    et_buf_init(&out, 0);
    /* 8 MiB of zeros in about 8 KiB; a 1 MiB cap stops it without growing past the cap. */
    assert_int_equal(decode_fixture("http/response-gzip-bomb-8mib.txt", 1024 * 1024, &out, &e),
                     ET_ETOOBIG);
    assert_int_equal(e.code, ET_ETOOBIG);
    assert_non_null(strstr(e.msg, "zip bomb"));
    assert_int_equal(out.len, 1024 * 1024);
    assert_true(out.cap <= 2 * 1024 * 1024 + 65536);
    et_buf_free(&out);
    /* Exactly at the cap is fine. */
    et_buf_init(&out, 0);
    assert_int_equal(decode_fixture("http/response-gzip-bomb-8mib.txt", 8 * 1024 * 1024, &out,
                                    &e),
                     0);
    assert_int_equal(out.len, 8 * 1024 * 1024);
    et_buf_free(&out);
}

static void test_gzip_corrupt_has_offset(void **state)
{
    struct et_buf out;
    struct et_error e;
    (void)state;
    et_buf_init(&out, 0);
    assert_int_equal(decode_fixture("http/response-gzip-corrupt.txt", 0, &out, &e), ET_EPARSE);
    assert_true(e.has_offset);
    assert_true(e.offset > 10 && e.offset < 800);
    assert_non_null(strstr(e.msg, "corrupt gzip"));
    et_buf_free(&out);
}

static void test_gzip_cut_is_truncated_with_partial_output(void **state)
{
    struct et_buf out;
    struct et_error e;
    (void)state;
    et_buf_init(&out, 0);
    assert_int_equal(decode_fixture("http/response-gzip-stream-cut.txt", 0, &out, &e),
                     ET_ETRUNC);
    assert_int_equal(e.offset, 60);
    assert_true(out.len > 0);
    assert_int_equal(out.data[0], 0x03);
    et_buf_free(&out);
}

static void test_brotli_and_unknown_unsupported(void **state)
{
    struct et_buf out;
    struct et_error e;
    struct et_headers h = {0};
    struct et_arena *a = et_arena_new(0);
    (void)state;
    et_buf_init(&out, 0);
    assert_int_equal(decode_fixture("http/response-brotli.txt", 0, &out, &e), ET_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "Brotli"));
    assert_int_equal(et_headers_add(&h, a, "Content-Encoding", 16, "zstd", 4), 0);
    et_error_clear(&e);
    assert_int_equal(et_http_content_decode(&h, (const uint8_t *)"abc", 3, 0, &out, &e),
                     ET_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "zstd"));
    et_buf_free(&out);
    et_arena_free(a);
}

static void test_identity_copies_and_caps(void **state)
{
    struct et_buf out;
    struct et_error e;
    struct et_headers h = {0};
    struct et_arena *a = et_arena_new(0);
    (void)state;
    et_buf_init(&out, 0);
    et_error_clear(&e);
    assert_int_equal(et_http_content_decode(NULL, (const uint8_t *)"plain", 5, 0, &out, &e), 0);
    assert_int_equal(et_headers_add(&h, a, "content-encoding", 16, "identity", 8), 0);
    assert_int_equal(et_http_content_decode(&h, (const uint8_t *)"!", 1, 0, &out, &e), 0);
    assert_string_equal((const char *)out.data, "plain!");
    assert_int_equal(et_http_content_decode(&h, (const uint8_t *)"toolong", 7, 3, &out, &e),
                     ET_ETOOBIG);
    et_buf_free(&out);
    et_arena_free(a);
}

static void test_deflate_built_here_all_levels(void **state)
{
    /* zlib with each window size the zlib header can declare decodes. */
    uint8_t src[5000], comp[6000];
    struct et_headers h = {0};
    struct et_arena *a = et_arena_new(0);
    size_t i;
    int bits;
    (void)state;
    for (i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 7 % 251);
    assert_int_equal(et_headers_add(&h, a, "Content-Encoding", 16, "deflate", 7), 0);
    for (bits = 9; bits <= 15; bits++) {
        z_stream z;
        struct et_buf out;
        struct et_error e;
        memset(&z, 0, sizeof(z));
        assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
        z.next_in = src;
        z.avail_in = sizeof(src);
        z.next_out = comp;
        z.avail_out = sizeof(comp);
        assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
        et_buf_init(&out, 0);
        et_error_clear(&e);
        assert_int_equal(et_http_content_decode(&h, comp, z.total_out, 0, &out, &e), 0);
        assert_int_equal(out.len, sizeof(src));
        assert_memory_equal(out.data, src, sizeof(src));
        deflateEnd(&z);
        et_buf_free(&out);
    }
    et_arena_free(a);
}

static void test_body_kinds_from_content_type(void **state)
{
    static const struct {
        const char *ct;
        enum et_body_kind kind;
    } cases[] = {
        {"application/vnd.ms-sync.wbxml", ET_BODY_WBXML},
        {"application/vnd.ms-sync", ET_BODY_WBXML},
        {"Application/Vnd.MS-Sync.WBXML; charset=utf-8", ET_BODY_WBXML},
        {"application/vnd.ms-sync.multipart", ET_BODY_MULTIPART},
        {"message/rfc822", ET_BODY_RFC822},
        {"text/xml; charset=utf-8", ET_BODY_XML},
        {"application/xml", ET_BODY_XML},
        {"application/soap+xml", ET_BODY_XML},
        {"text/html", ET_BODY_TEXT},
        {"application/json", ET_BODY_TEXT},
        {"image/png", ET_BODY_OTHER},
    };
    size_t i;
    (void)state;
    for (i = 0; i < ET_ARRAY_SIZE(cases); i++) {
        struct et_headers h = {0};
        struct et_arena *a = et_arena_new(0);
        assert_int_equal(et_headers_add(&h, a, "Content-Type", 12, cases[i].ct,
                                        strlen(cases[i].ct)),
                         0);
        assert_int_equal(et_http_body_kind(&h, (const uint8_t *)"xy", 2), cases[i].kind);
        assert_int_equal(et_http_body_kind(&h, (const uint8_t *)"", 0), ET_BODY_EMPTY);
        et_arena_free(a);
    }
}

static void test_body_kinds_sniffed(void **state)
{
    static const uint8_t wbxml[] = {0x03, 0x01, 0x6A, 0x00, 0x00, 0x07, 0x56, 0x01};
    static const uint8_t bin[] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    static const uint8_t mp[] = {1, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 'h', 'i'};
    (void)state;
    assert_int_equal(et_http_body_kind(NULL, wbxml, sizeof(wbxml)), ET_BODY_WBXML);
    assert_int_equal(et_http_body_kind(NULL, mp, sizeof(mp)), ET_BODY_MULTIPART);
    assert_int_equal(et_http_body_kind(NULL, (const uint8_t *)"\xEF\xBB\xBF <a/>", 8),
                     ET_BODY_XML);
    assert_int_equal(et_http_body_kind(NULL, (const uint8_t *)"From: a@b\r\n\r\nhi", 15),
                     ET_BODY_RFC822);
    assert_int_equal(et_http_body_kind(NULL, (const uint8_t *)"{\"a\": 1}", 8), ET_BODY_TEXT);
    assert_int_equal(et_http_body_kind(NULL, bin, sizeof(bin)), ET_BODY_OTHER);
    assert_int_equal(et_http_body_kind(NULL, NULL, 0), ET_BODY_EMPTY);
    assert_string_equal(et_body_kind_name(ET_BODY_WBXML), "wbxml");
    assert_string_equal(et_body_kind_name((enum et_body_kind)99), "other");
}

static void put32(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

static void test_multipart_three_parts(void **state)
{
    struct msg m;
    struct et_multipart_part parts[8];
    size_t np = 99;
    const struct et_body *b;
    (void)state;
    load_response(&m, "http/response-multipart-itemoperations.bin");
    b = &m.x->resp.body;
    assert_int_equal(et_multipart_parse(b->data, b->len, parts, 8, &np, &m.e), 0);
    assert_int_equal(np, 3);
    assert_int_equal(parts[0].offset, 28);
    assert_int_equal(parts[0].len, 22);
    assert_int_equal(b->data[parts[0].offset], 0x03); /* part 0 is WBXML */
    assert_int_equal(parts[1].offset, 50);
    assert_memory_equal(b->data + parts[1].offset, "%PDF-1.4", 8);
    assert_memory_equal(b->data + parts[2].offset, "From: jdoe", 10);
    assert_int_equal(parts[2].offset + parts[2].len, b->len);
    /* Too small an array is refused, not overrun. */
    assert_int_equal(et_multipart_parse(b->data, b->len, parts, 2, &np, NULL), ET_ETOOBIG);
    msg_free(&m);
}

static void test_multipart_lying_offsets(void **state)
{
    struct msg m;
    struct et_multipart_part parts[8];
    size_t np = 0;
    (void)state;
    load_response(&m, "http/response-multipart-lying-offsets.bin");
    assert_int_equal(et_multipart_parse(m.x->resp.body.data, m.x->resp.body.len, parts, 8, &np,
                                        &m.e),
                     ET_EPARSE);
    assert_int_equal(np, 2);
    assert_int_equal(m.e.offset, 4 + 8 * 2 + 4); /* the length field of part 2 */
    assert_non_null(strstr(m.e.msg, "part 2"));
    msg_free(&m);
}

static void test_multipart_hostile_tables(void **state)
{
    uint8_t b[64];
    struct et_multipart_part parts[4];
    size_t np;
    struct et_error e;
    (void)state;
    memset(b, 0, sizeof(b));
    et_error_clear(&e);
    assert_int_equal(et_multipart_parse(b, 3, parts, 4, &np, &e), ET_ETRUNC);
    put32(b, -1);
    assert_int_equal(et_multipart_parse(b, sizeof(b), parts, 4, &np, NULL), ET_EPARSE);
    put32(b, 0);
    assert_int_equal(et_multipart_parse(b, sizeof(b), parts, 4, &np, NULL), ET_EPARSE);
    put32(b, INT32_MAX);
    assert_int_equal(et_multipart_parse(b, sizeof(b), parts, 4, &np, NULL), ET_ETOOBIG);
    assert_int_equal(et_multipart_parse(b, sizeof(b), parts, SIZE_MAX, &np, NULL), ET_ETRUNC);
    /* Offset pointing into the table. */
    put32(b, 2);
    put32(b + 4, 4);
    put32(b + 8, 1);
    et_error_clear(&e);
    assert_int_equal(et_multipart_parse(b, sizeof(b), parts, 4, &np, &e), ET_EPARSE);
    assert_int_equal(e.offset, 4);
    /* offset + length overflowing 32 bits. */
    put32(b + 4, 20);
    put32(b + 8, 10);
    put32(b + 12, 30);
    put32(b + 16, INT32_MAX);
    et_error_clear(&e);
    assert_int_equal(et_multipart_parse(b, sizeof(b), parts, 4, &np, &e), ET_EPARSE);
    assert_int_equal(e.offset, 16);
    assert_int_equal(np, 1);
    /* Negative length. */
    put32(b + 16, -5);
    assert_int_equal(et_multipart_parse(b, sizeof(b), parts, 4, &np, NULL), ET_EPARSE);
    /* Empty parts at the very end are fine. */
    put32(b + 12, 64);
    put32(b + 16, 0);
    assert_int_equal(et_multipart_parse(b, sizeof(b), parts, 4, &np, NULL), 0);
    assert_int_equal(np, 2);
}

static void test_view_multipart_gzip(void **state)
{
    struct msg m;
    struct et_http_view v;
    (void)state;
    load_response(&m, "http/response-multipart-gzip.bin");
    assert_int_equal(et_http_body_view(&m.x->resp.headers, &m.x->resp.body, 0, &v, m.x->arena,
                                       &m.e),
                     0);
    assert_true(v.decoded);
    assert_int_equal(v.kind, ET_BODY_MULTIPART);
    assert_int_equal(v.nparts, 3);
    assert_int_equal(v.multipart_status, 0);
    assert_int_equal(v.data[v.parts[0].offset], 0x03);
    assert_memory_equal(v.data + v.parts[1].offset, "%PDF", 4);
    msg_free(&m);
}

static void test_view_multipart_lying_keeps_bytes(void **state)
{
    struct msg m;
    struct et_http_view v;
    (void)state;
    load_response(&m, "http/response-multipart-lying-offsets.bin");
    assert_int_equal(et_http_body_view(&m.x->resp.headers, &m.x->resp.body, 0, &v, m.x->arena,
                                       &m.e),
                     ET_EPARSE);
    assert_int_equal(v.kind, ET_BODY_MULTIPART);
    assert_int_equal(v.multipart_status, ET_EPARSE);
    assert_int_equal(v.nparts, 0);
    assert_null(v.parts);
    assert_int_equal(v.len, m.x->resp.body.len);
    msg_free(&m);
}

static void test_view_undecodable_is_other(void **state)
{
    struct msg m;
    struct et_http_view v;
    (void)state;
    load_response(&m, "http/response-gzip-corrupt.txt");
    assert_int_equal(et_http_body_view(&m.x->resp.headers, &m.x->resp.body, 0, &v, m.x->arena,
                                       &m.e),
                     ET_EPARSE);
    assert_int_equal(v.decode_status, ET_EPARSE);
    assert_false(v.decoded);
    assert_int_equal(v.kind, ET_BODY_OTHER);
    assert_ptr_equal(v.data, m.x->resp.body.data);
    msg_free(&m);
    load_response(&m, "http/response-gzip-stream-cut.txt");
    assert_int_equal(et_http_body_view(&m.x->resp.headers, &m.x->resp.body, 0, &v, m.x->arena,
                                       &m.e),
                     ET_ETRUNC);
    assert_true(v.decoded);
    assert_true(v.truncated);
    assert_int_equal(v.kind, ET_BODY_WBXML);
    msg_free(&m);
}

static void test_view_bomb_refused(void **state)
{
    struct msg m;
    struct et_http_view v;
    (void)state;
    load_response(&m, "http/response-gzip-bomb-8mib.txt");
    assert_int_equal(et_http_body_view(&m.x->resp.headers, &m.x->resp.body, 65536, &v,
                                       m.x->arena, &m.e),
                     ET_ETOOBIG);
    assert_int_equal(v.decode_status, ET_ETOOBIG);
    assert_int_equal(v.kind, ET_BODY_OTHER);
    assert_int_equal(v.len, m.x->resp.body.len);
    msg_free(&m);
}

static void test_view_empty_and_absent(void **state)
{
    struct et_body b = {0};
    struct et_http_view v;
    struct et_arena *a = et_arena_new(0);
    (void)state;
    b.absent = 1;
    assert_int_equal(et_http_body_view(NULL, &b, 0, &v, a, NULL), 0);
    assert_int_equal(v.kind, ET_BODY_EMPTY);
    assert_int_equal(et_http_body_view(NULL, NULL, 0, &v, a, NULL), ET_EINVAL);
    et_arena_free(a);
}

/* A body the recorder already decoded (HAR content.text) under Content-Encoding: gzip is
 * classified as it is, not gunzipped again; a recorder that kept the gzip stream anyway (its
 * magic bytes) is still decoded. */
static void test_view_content_decoded_by_recorder(void **state)
{
    static const uint8_t wbxml[] = {0x03, 0x01, 0x6a, 0x00, 0x45, 0x4e, 0x03, 0x31, 0x00, 0x01,
                                    0x01};
    static const uint8_t gz_hello[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
                                       0x03, 0xb3, 0xc9, 0x48, 0xcd, 0xc9, 0xc9, 0xd7, 0xb7,
                                       0x03, 0x00, 0x1c, 0x7e, 0xe4, 0xea, 0x08, 0x00, 0x00,
                                       0x00};
    struct et_exchange *x = et_exchange_new();
    struct et_http_view v;
    struct et_error e;
    (void)state;
    assert_non_null(x);
    et_headers_add(&x->resp.headers, x->arena, "Content-Type", 12,
                   "application/vnd.ms-sync.wbxml", 29);
    et_headers_add(&x->resp.headers, x->arena, "Content-Encoding", 16, "gzip", 4);
    assert_int_equal(et_body_set(&x->resp.body, x->arena, wbxml, sizeof(wbxml)), 0);
    et_error_clear(&e);
    /* Without the flag: the WBXML is not gzip. */
    assert_true(et_http_body_view(&x->resp.headers, &x->resp.body, 0, &v, x->arena, &e) != 0);
    assert_int_equal(v.kind, ET_BODY_OTHER);
    x->resp.body.content_decoded = 1;
    et_error_clear(&e);
    assert_int_equal(et_http_body_view(&x->resp.headers, &x->resp.body, 0, &v, x->arena, &e), 0);
    assert_int_equal(v.kind, ET_BODY_WBXML);
    assert_int_equal(v.len, sizeof(wbxml));
    assert_true(v.decoded);
    assert_string_equal(v.encoding, "gzip");
    assert_int_equal(et_body_set(&x->resp.body, x->arena, gz_hello, sizeof(gz_hello)), 0);
    x->resp.body.content_decoded = 1;
    assert_int_equal(et_http_body_view(&x->resp.headers, &x->resp.body, 0, &v, x->arena, &e), 0);
    assert_int_equal(v.len, 8);
    assert_memory_equal(v.data, "<hello/>", 8);
    et_exchange_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_view_content_decoded_by_recorder),
        cmocka_unit_test(test_deflate_raw_and_zlib),
        cmocka_unit_test(test_stacked_deflate_gzip),
        cmocka_unit_test(test_gzip_two_members_x_gzip),
        cmocka_unit_test(test_gzip_bomb_capped),
        cmocka_unit_test(test_gzip_corrupt_has_offset),
        cmocka_unit_test(test_gzip_cut_is_truncated_with_partial_output),
        cmocka_unit_test(test_brotli_and_unknown_unsupported),
        cmocka_unit_test(test_identity_copies_and_caps),
        cmocka_unit_test(test_deflate_built_here_all_levels),
        cmocka_unit_test(test_body_kinds_from_content_type),
        cmocka_unit_test(test_body_kinds_sniffed),
        cmocka_unit_test(test_multipart_three_parts),
        cmocka_unit_test(test_multipart_lying_offsets),
        cmocka_unit_test(test_multipart_hostile_tables),
        cmocka_unit_test(test_view_multipart_gzip),
        cmocka_unit_test(test_view_multipart_lying_keeps_bytes),
        cmocka_unit_test(test_view_undecodable_is_other),
        cmocka_unit_test(test_view_bomb_refused),
        cmocka_unit_test(test_view_empty_and_absent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
