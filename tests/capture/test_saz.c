/* .saz reader and writer: the shared corpus, hostile archives built here with libzip, a bad
 * session in the middle, and write -> read round trips with and without redaction. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <zip.h>

#include "eastrace/saz.h"
#include "et_test.h"
#include "test_har_common.h"

static char tmpdir[256];

static int setup_tmp(void **state)
{
    (void)state;
    return et_test_tmpdir(tmpdir, sizeof(tmpdir)) == NULL ? -1 : 0;
}

static int teardown_tmp(void **state)
{
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    char p[1024];
    (void)state;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if ((size_t)snprintf(p, sizeof(p), "%s/%.200s", tmpdir, de->d_name) < sizeof(p))
            unlink(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(tmpdir);
    return 0;
}

static const char *tmp(const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof(p[k]), "%s/%s", tmpdir, name);
    return p[k];
}

/* Reads all of path: counts exchanges and skipped sessions; returns the open/final code. */
static int read_all(const char *path, size_t *ok, size_t *bad, struct et_error *last)
{
    struct et_source *s;
    struct et_error e;
    int rc;
    *ok = *bad = 0;
    et_error_clear(&e);
    if ((rc = et_saz_open(path, &s, &e)) != 0) {
        *last = e;
        return rc;
    }
    for (;;) {
        struct et_exchange *x;
        et_error_clear(&e);
        rc = et_source_next(s, &x, &e);
        if (rc == 1) {
            assert_int_equal(x->source, ET_SRC_SAZ);
            (*ok)++;
            et_exchange_free(x);
        } else if (rc == ET_EPARSE) {
            (*bad)++;
            *last = e;
        } else {
            break;
        }
    }
    et_source_close(s);
    return rc;
}

static void test_saz_corpus(void **state)
{
    (void)state;
    ET_REQUIRE_CORPUS(dir, "saz");
    static const struct {
        const char *file;
        size_t sessions;
        int rc;
    } cases[] = {
        {"NewCaseName.saz", 56, 0},  {"NewCaseName1.saz", 3, 0}, {"httpbin-test.saz", 6, 0},
        {"images.saz", 3, 0},        {"multipleSessions.saz", 4, 0}, {"sample.saz", 4, 0},
        {"simple.saz", 1, 0},        {"notASazFile.saz", 0, ET_EPARSE},
    };
    for (size_t i = 0; i < ET_ARRAY_SIZE(cases); i++) {
        char path[8192];
        size_t ok, bad;
        struct et_error e;
        int rc;
        et_error_clear(&e);
        snprintf(path, sizeof(path), "%s/%s", dir, cases[i].file);
        rc = read_all(path, &ok, &bad, &e);
        print_message("%-22s %3zu sessions, %zu bad, %s\n", cases[i].file, ok, bad,
                      rc || bad ? e.msg : "ok");
        assert_int_equal(rc, cases[i].rc);
        assert_int_equal(ok, cases[i].sessions);
        assert_int_equal(bad, 0);
    }
}

static void test_saz_corpus_timers_and_flags(void **state)
{
    (void)state;
    ET_REQUIRE_CORPUS(path, "saz/httpbin-test.saz");
    struct et_source *s;
    struct et_error e;
    struct et_exchange *v[8];
    int64_t t;
    et_error_clear(&e);
    assert_int_equal(et_saz_open(path, &s, &e), 0);
    assert_int_equal(hc_read_all(s, v, 8), 6);
    assert_int_equal(v[0]->id, 1);
    assert_string_equal(v[0]->req.method, "GET");
    assert_string_equal(v[0]->host, "httpbin.org");
    assert_int_equal(v[0]->resp.status, 200);
    assert_string_equal(v[0]->client_addr, "127.0.0.1:64971");
    assert_string_equal(v[0]->server_addr, "44.195.242.49");
    assert_int_equal(et_time_parse_iso8601("2025-08-30T11:33:29.356942-07:00", &t), 0);
    assert_int_equal(v[0]->t.connect, t);
    /* 7 fractional digits: 100 ns resolution truncated to microseconds. */
    assert_int_equal(et_time_parse_iso8601("2025-08-30T11:33:40.0256586-07:00", &t), 0);
    assert_int_equal(v[0]->t.req_begin, t);
    assert_int_equal(t % 1000000, 25658);
    assert_true(v[0]->t.resp_end >= v[0]->t.resp_begin && v[0]->t.resp_begin > 0);
    assert_string_equal(et_headers_get(&v[0]->meta, "x-processinfo"), "msedge:12140");
    assert_string_equal(et_headers_get(&v[0]->meta, "x-responsebodytransferlength"), "789");
    assert_string_equal(et_headers_get(&v[0]->meta, "fiddler-sid"), "2");
    for (int i = 0; i < 6; i++)
        et_exchange_free(v[i]);
    et_source_close(s);
}

static void test_saz_corpus_connect_tunnels_and_order(void **state)
{
    (void)state;
    ET_REQUIRE_CORPUS(path, "saz/NewCaseName.saz");
    struct et_source *s;
    struct et_error e;
    struct et_exchange *v[64];
    size_t n, connects = 0;
    et_error_clear(&e);
    assert_int_equal(et_saz_open(path, &s, &e), 0);
    n = hc_read_all(s, v, 64);
    assert_int_equal(n, 56);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i]->id, i + 1);
        if (strcmp(v[i]->req.method, "CONNECT") == 0) {
            connects++;
            assert_string_equal(v[i]->req.target + strlen(v[i]->req.target) - 4, ":443");
            assert_int_equal(v[i]->port, 443);
        }
        et_exchange_free(v[i]);
    }
    assert_int_equal(connects, 11); /* unzip -p | grep -c ^CONNECT */
    et_source_close(s);
}

/* ---- hostile archives ----------------------------------------------------------------- */

static zip_t *new_zip(const char *path)
{
    int err;
    zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
    assert_non_null(za);
    return za;
}

static void add_text(zip_t *za, const char *name, const char *text)
{
    zip_source_t *src = zip_source_buffer(za, text, strlen(text), 0);
    assert_non_null(src);
    assert_true(zip_file_add(za, name, src, ZIP_FL_ENC_UTF_8) >= 0);
}

static const char req1[] = "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n";
static const char resp1[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static void expect_open_fails(const char *path, int code, const char *text)
{
    struct et_source *s = NULL;
    struct et_error e;
    time_t t0 = time(NULL);
    et_error_clear(&e);
    assert_int_equal(et_saz_open(path, &s, &e), code);
    assert_null(s);
    print_message("  %s\n", e.msg);
    if (strstr(e.msg, text) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", e.msg, text);
    assert_true(time(NULL) - t0 < 20);
}

static void test_saz_zip_slip_names_rejected(void **state)
{
    static const char *names[] = {"../evil.txt", "raw/../../etc/passwd", "/etc/cron.d/x",
                                  "raw\\01_c.txt", "C:/Windows/x"};
    (void)state;
    for (size_t i = 0; i < ET_ARRAY_SIZE(names); i++) {
        zip_t *za = new_zip(tmp("slip.saz"));
        add_text(za, "raw/1_c.txt", req1);
        add_text(za, names[i], "x");
        assert_int_equal(zip_close(za), 0);
        expect_open_fails(tmp("slip.saz"), ET_EPARSE, "unsafe entry name");
    }
    /* Nothing was written anywhere outside the temp dir. */
    assert_int_not_equal(access("../evil.txt", F_OK), 0);
}

/* 1 GiB of zeros deflated to about 1 MB: rejected from its declared sizes; then with the sizes
 * patched to lie (100 bytes), rejected while reading, after at most a few MiB. */
static void test_saz_zip_bomb_and_lying_sizes(void **state)
{
    size_t big = (size_t)1 << 30, n = 0;
    void *zeros = calloc(1, big);
    unsigned char *d;
    zip_t *za;
    zip_source_t *src;
    (void)state;
    assert_non_null(zeros);
    za = new_zip(tmp("bomb.saz"));
    add_text(za, "raw/1_c.txt", req1);
    src = zip_source_buffer(za, zeros, big, 0);
    assert_non_null(src);
    assert_true(zip_file_add(za, "raw/1_s.txt", src, 0) >= 0);
    assert_int_equal(zip_close(za), 0);
    free(zeros);
    expect_open_fails(tmp("bomb.saz"), ET_ETOOBIG, "zip bomb");

    /* Patch every 32-bit "uncompressed size" equal to 1 GiB (local header and central
     * directory) to 100. */
    d = et_test_read_file(tmp("bomb.saz"), &n);
    assert_non_null(d);
    int patched = 0;
    for (size_t i = 0; i + 4 <= n; i++)
        if (d[i] == 0x00 && d[i + 1] == 0x00 && d[i + 2] == 0x00 && d[i + 3] == 0x40 &&
            i >= 22 && ((d[i - 22] == 'P' && d[i - 21] == 'K') || (d[i - 24] == 'P' && d[i - 23] == 'K'))) {
            d[i] = 100;
            d[i + 3] = 0;
            patched++;
        }
    assert_true(patched >= 2);
    FILE *f = fopen(tmp("lying.saz"), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, n, f), n);
    fclose(f);
    free(d);

    size_t ok, bad;
    struct et_error e;
    time_t t0 = time(NULL);
    et_error_clear(&e);
    int rc = read_all(tmp("lying.saz"), &ok, &bad, &e);
    print_message("  lying sizes: rc %d, %zu ok, %zu bad: %s\n", rc, ok, bad, e.msg);
    assert_int_equal(ok, 0);
    assert_true(rc != 0 || bad == 1);
    assert_true(e.msg[0] != '\0');
    assert_true(time(NULL) - t0 < 20);
}

static void test_saz_truncated_central_directory(void **state)
{
    size_t n = 0;
    unsigned char *d;
    zip_t *za = new_zip(tmp("whole.saz"));
    (void)state;
    add_text(za, "raw/1_c.txt", req1);
    add_text(za, "raw/1_s.txt", resp1);
    assert_int_equal(zip_close(za), 0);
    d = et_test_read_file(tmp("whole.saz"), &n);
    assert_non_null(d);
    for (size_t cut = 10; cut <= 60; cut += 25) {
        FILE *f = fopen(tmp("cut.saz"), "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(d, 1, n - cut, f), n - cut);
        fclose(f);
        expect_open_fails(tmp("cut.saz"), ET_EPARSE, "not a readable zip archive");
    }
    free(d);
}

static void test_saz_encrypted_entry_named(void **state)
{
    zip_t *za;
    zip_int64_t idx;
    size_t ok, bad;
    struct et_error e;
    (void)state;
    if (!zip_encryption_method_supported(ZIP_EM_AES_256, 1))
        skip();
    za = new_zip(tmp("enc.saz"));
    add_text(za, "raw/01_c.txt", req1);
    add_text(za, "raw/01_s.txt", resp1);
    add_text(za, "raw/03_c.txt", req1);
    idx = zip_name_locate(za, "raw/03_c.txt", 0);
    assert_true(idx >= 0);
    assert_int_equal(zip_file_set_encryption(za, (zip_uint64_t)idx, ZIP_EM_AES_256, "pw"), 0);
    assert_int_equal(zip_close(za), 0);
    et_error_clear(&e);
    assert_int_equal(read_all(tmp("enc.saz"), &ok, &bad, &e), 0);
    assert_int_equal(ok, 1);
    assert_int_equal(bad, 1);
    assert_non_null(strstr(e.msg, "session 3 (raw/03_c.txt): encrypted entry raw/03_c.txt: "
                                  "not supported"));
}

static void test_saz_too_many_entries(void **state)
{
    zip_t *za = new_zip(tmp("many.saz"));
    char name[64];
    (void)state;
    for (int i = 0; i < 100000; i++) {
        zip_source_t *src = zip_source_buffer(za, NULL, 0, 0);
        snprintf(name, sizeof(name), "raw/%d_c.txt", i + 1);
        assert_true(zip_file_add(za, name, src, 0) >= 0);
        zip_set_file_compression(za, (zip_uint64_t)i, ZIP_CM_STORE, 0);
    }
    assert_int_equal(zip_close(za), 0);
    expect_open_fails(tmp("many.saz"), ET_ETOOBIG, "entries");
}

static void test_saz_bad_session_skipped(void **state)
{
    zip_t *za = new_zip(tmp("badsess.saz"));
    struct et_source *s;
    struct et_error e;
    struct et_exchange *x;
    (void)state;
    add_text(za, "raw/1_c.txt", req1);
    add_text(za, "raw/1_s.txt", resp1);
    add_text(za, "raw/2_c.txt", req1);
    add_text(za, "raw/2_s.txt", "\x01\x02 this is not HTTP\r\n\r\n");
    add_text(za, "raw/3_c.txt", req1);
    add_text(za, "raw/3_s.txt", resp1);
    add_text(za, "raw/4_s.txt", resp1);
    assert_int_equal(zip_close(za), 0);
    et_error_clear(&e);
    assert_int_equal(et_saz_open(tmp("badsess.saz"), &s, &e), 0);
    assert_int_equal(et_source_next(s, &x, &e), 1);
    assert_int_equal(x->resp.status, 200);
    et_exchange_free(x);
    assert_int_equal(et_source_next(s, &x, &e), ET_EPARSE);
    print_message("  %s\n", e.msg);
    assert_non_null(strstr(e.msg, "session 2 (raw/2_s.txt): "));
    et_error_clear(&e);
    assert_int_equal(et_source_next(s, &x, &e), 1);
    assert_int_equal(x->id, 3);
    et_exchange_free(x);
    et_error_clear(&e);
    assert_int_equal(et_source_next(s, &x, &e), ET_EPARSE);
    assert_non_null(strstr(e.msg, "session 4"));
    assert_non_null(strstr(e.msg, "no request entry"));
    assert_int_equal(et_source_next(s, &x, &e), 0);
    et_source_close(s);
}

/* Inputs the fuzzer found: each must fail cleanly (run under ASan/UBSan in CI). */
static void test_saz_fuzz_regressions(void **state)
{
    static const char *files[] = {"saz/fuzz-empty-input.saz", "saz/fuzz-zip-without-sessions.saz"};
    (void)state;
    for (size_t i = 0; i < ET_ARRAY_SIZE(files); i++) {
        size_t n = 0;
        unsigned char *d = et_test_read_file(et_fixture(files[i]), &n);
        struct et_source *s = NULL;
        struct et_error e;
        assert_non_null(d);
        et_error_clear(&e);
        assert_int_equal(et_saz_open_mem(d, n, files[i], &s, &e), ET_EPARSE);
        assert_null(s);
        assert_true(e.msg[0] != '\0');
        free(d);
    }
}

/* ---- writer ----------------------------------------------------------------------------- */

static void write_samples(const char *path, int include_secrets)
{
    struct et_saz_writer *w;
    struct et_saz_write_opts o = {0};
    struct et_error e;
    et_error_clear(&e);
    o.include_secrets = include_secrets;
    assert_int_equal(et_saz_writer_open(path, &o, &w, &e), 0);
    for (int i = 1; i <= 3; i++) {
        struct et_exchange *x = hc_sample(i);
        assert_int_equal(et_saz_writer_add(w, x, &e), 0);
        et_exchange_free(x);
    }
    if (et_saz_writer_close(w, &e) != 0)
        fail_msg("close: %s", e.msg);
}

static void check_roundtrip(struct et_exchange **v)
{
    struct et_exchange *ref = hc_sample(1), *x = v[0];
    assert_string_equal(x->req.method, "POST");
    assert_string_equal(x->host, "mail.example.com");
    assert_int_equal(x->port, 443);
    hc_body_eq(&x->req.body, ref->req.body.data, ref->req.body.len);
    hc_body_eq(&x->resp.body, ref->resp.body.data, ref->resp.body.len);
    assert_int_equal(x->resp.status, 200);
    assert_string_equal(x->resp.reason, "OK");
    assert_int_equal(x->t.connect, ref->t.connect);
    assert_int_equal(x->t.req_begin, ref->t.req_begin);
    assert_int_equal(x->t.req_end, ref->t.req_end);
    assert_int_equal(x->t.resp_begin, ref->t.resp_begin);
    assert_int_equal(x->t.resp_end, ref->t.resp_end);
    assert_string_equal(x->client_addr, "192.0.2.7:51234");
    assert_string_equal(x->server_addr, "203.0.113.5");
    assert_string_equal(et_headers_get(&x->meta, "x-processinfo"), "outlook:1234");
    assert_string_equal(et_headers_get(&x->req.headers, "MS-ASProtocolVersion"), "14.1");
    et_exchange_free(ref);
    assert_int_equal(v[1]->has_response, 0);
    assert_int_equal(v[1]->err.code, ET_ECONNRESET);
    assert_int_equal(v[1]->err.stage, ET_STAGE_RESPONSE);
    assert_string_equal(v[1]->err.message, "upstream closed the connection");
    assert_string_equal(v[2]->req.method, "CONNECT");
    assert_string_equal(v[2]->req.target, "mail.example.com:443");
}

static void test_saz_roundtrip_redacted_by_default(void **state)
{
    struct et_source *s;
    struct et_error e;
    struct et_exchange *v[4];
    (void)state;
    write_samples(tmp("out.saz"), 0);
    et_error_clear(&e);
    assert_int_equal(et_saz_open(tmp("out.saz"), &s, &e), 0);
    assert_int_equal(hc_read_all(s, v, 4), 3);
    check_roundtrip(v);
    assert_string_equal(et_headers_get(&v[0]->req.headers, "Authorization"),
                        "Basic [redacted] user=jdoe");
    assert_string_equal(et_headers_get(&v[0]->req.headers, "Cookie"), "[redacted]");
    assert_string_equal(et_headers_get(&v[0]->resp.headers, "Set-Cookie"), "[redacted]");
    assert_string_equal(et_headers_get(&v[1]->req.headers, "Proxy-Authorization"),
                        "NTLM [redacted]");
    assert_null(strstr(v[0]->req.target, "hunter2"));
    for (int i = 0; i < 3; i++)
        et_exchange_free(v[i]);
    et_source_close(s);
}

static void test_saz_roundtrip_include_secrets(void **state)
{
    struct et_source *s;
    struct et_error e;
    struct et_exchange *v[4];
    (void)state;
    write_samples(tmp("secrets.saz"), 1);
    et_error_clear(&e);
    assert_int_equal(et_saz_open(tmp("secrets.saz"), &s, &e), 0);
    assert_int_equal(hc_read_all(s, v, 4), 3);
    check_roundtrip(v);
    assert_string_equal(et_headers_get(&v[0]->req.headers, "Authorization"),
                        "Basic amRvZTpodW50ZXIy");
    assert_string_equal(et_headers_get(&v[0]->req.headers, "Cookie"), "session=abc123");
    /* Written in absolute form, as Fiddler does. */
    assert_string_equal(v[0]->req.target + strlen("https://mail.example.com"),
                        hc_sample_target());
    assert_string_equal(v[0]->scheme, "https");
    for (int i = 0; i < 3; i++)
        et_exchange_free(v[i]);
    et_source_close(s);
}

/* Entry names with digits replaced by N, in archive order. */
static void layout(const char *path, char *out, size_t outlen)
{
    int err;
    zip_t *za = zip_open(path, ZIP_RDONLY, &err);
    size_t o = 0;
    assert_non_null(za);
    out[0] = '\0';
    for (zip_int64_t i = 0; i < zip_get_num_entries(za, 0) && i < 40; i++) {
        const char *n = zip_get_name(za, (zip_uint64_t)i, 0);
        char norm[128];
        size_t k = 0;
        for (const char *p = n; *p && k < sizeof(norm) - 1; p++) {
            if (*p >= '0' && *p <= '9') {
                while (p[1] >= '0' && p[1] <= '9')
                    p++;
                norm[k++] = 'N';
            } else {
                norm[k++] = *p;
            }
        }
        norm[k] = '\0';
        o += (size_t)snprintf(out + o, outlen - o, "%s%s", o ? " " : "", norm);
    }
    zip_close(za);
}

/* Our archive has Fiddler's layout: the same entry names and order as Fiddler v5's, and the
 * files parse as Fiddler writes them. */
static void test_saz_written_layout_matches_fiddler(void **state)
{
    char ours[4096], theirs[4096];
    (void)state;
    ET_REQUIRE_CORPUS(path, "saz/httpbin-test.saz");
    write_samples(tmp("layout.saz"), 0);
    layout(tmp("layout.saz"), ours, sizeof(ours));
    layout(path, theirs, sizeof(theirs));
    print_message("ours:   %s\nfiddler: %s\n", ours, theirs);
    /* Fiddler's file lists 6 sessions, ours 3; compare the first 3 and the tail. */
    assert_memory_equal(ours, theirs, strlen("raw/ raw/N_c.txt raw/N_s.txt raw/N_m.xml"));
    assert_non_null(strstr(ours, "raw/N_m.xml _index.htm [Content_Types].xml"));
    assert_non_null(strstr(theirs, "raw/N_m.xml _index.htm [Content_Types].xml"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_saz_corpus),
        cmocka_unit_test(test_saz_corpus_timers_and_flags),
        cmocka_unit_test(test_saz_corpus_connect_tunnels_and_order),
        cmocka_unit_test(test_saz_zip_slip_names_rejected),
        cmocka_unit_test(test_saz_zip_bomb_and_lying_sizes),
        cmocka_unit_test(test_saz_truncated_central_directory),
        cmocka_unit_test(test_saz_encrypted_entry_named),
        cmocka_unit_test(test_saz_too_many_entries),
        cmocka_unit_test(test_saz_bad_session_skipped),
        cmocka_unit_test(test_saz_fuzz_regressions),
        cmocka_unit_test(test_saz_roundtrip_redacted_by_default),
        cmocka_unit_test(test_saz_roundtrip_include_secrets),
        cmocka_unit_test(test_saz_written_layout_matches_fiddler),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
