/* HAR reader and writer: the shared corpus, hand-made damaged files, round trips with and
 * without redaction, HAR 1.2 conformance of what we write, and a large file in bounded memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "eastrace/har.h"
#include "et_test.h"
#include "test_har_common.h"

static int read_counting(const char *path, size_t *ok, size_t *skipped, int *final_rc,
                         struct et_error *final_e)
{
    struct et_source *s;
    struct et_error e;
    int rc;
    *ok = *skipped = 0;
    *final_rc = 0;
    et_error_clear(&e);
    if ((rc = et_har_open(path, &s, &e)) != 0) {
        *final_rc = rc;
        *final_e = e;
        return rc;
    }
    for (;;) {
        struct et_exchange *x = NULL;
        et_error_clear(&e);
        rc = et_source_next(s, &x, &e);
        if (rc == 1) {
            assert_non_null(x);
            assert_int_equal(x->source, ET_SRC_HAR);
            assert_non_null(x->req.method);
            (*ok)++;
            et_exchange_free(x);
        } else if (rc == ET_EPARSE && e.msg[0] != '\0' && strstr(e.msg, "entry ") != NULL &&
                   *skipped < 100 && strstr(e.msg, "line") != NULL && e.has_offset &&
                   strstr(e.msg, "column") == NULL) {
            (*skipped)++;
        } else {
            if (rc < 0) {
                *final_rc = rc;
                *final_e = e;
            }
            break;
        }
    }
    et_source_close(s);
    return *final_rc;
}

/* Every file of the mitmproxy HAR corpus: entry counts checked against an independent
 * reading (Python's json module), broken ones rejected with a located error. */
static void test_har_corpus_mitmproxy(void **state)
{
    (void)state;
    ET_REQUIRE_CORPUS(dir, "mitmproxy/har");
    static const struct {
        const char *file;
        size_t entries;
        int rc; /* final error expected, 0 for none */
    } cases[] = {
        {"corrupted_har__brokenfile.har", 0, ET_EPARSE},
        {"flows__corrupted_gzip_body.har", 1, 0},
        {"flows__diff_data.har", 5, 0},
        {"flows__error_log.har", 2, 0},
        {"flows__event_stream.har", 2, 0},
        {"flows__incomplete_log.har", 4, 0},
        {"flows__successful_log.har", 2, 0},
        {"flows__websocket.har", 3, 0},
        {"har_extractor.har", 0, ET_EPARSE},
        {"har_files__charles.har", 1, 0},
        {"har_files__chrome.har", 3, 0},
        {"har_files__firefox.har", 14, 0},
        {"har_files__head-content-length.har", 1, 0},
        {"har_files__insomnia.har", 1, 0},
        {"har_files__postdata.har", 1, 0},
        {"har_files__safari.har", 19, 0},
        {"har_files__with-bom.har", 1, 0},
    };
    size_t total = 0, rejected = 0;
    for (size_t i = 0; i < ET_ARRAY_SIZE(cases); i++) {
        char path[8192];
        size_t ok, skipped;
        int rc;
        struct et_error e;
        snprintf(path, sizeof(path), "%s/%s", dir, cases[i].file);
        et_error_clear(&e);
        read_counting(path, &ok, &skipped, &rc, &e);
        print_message("%-40s %3zu entries, %zu skipped, %s\n", cases[i].file, ok, skipped,
                      rc ? e.msg : "ok");
        assert_int_equal(ok, cases[i].entries);
        assert_int_equal(skipped, 0);
        assert_int_equal(rc, cases[i].rc);
        if (rc != 0) {
            assert_non_null(strstr(e.msg, cases[i].file));
            rejected++;
        }
        total += ok;
    }
    assert_int_equal(rejected, 2);
    assert_int_equal(total, 60);
}

static void test_har_corpus_broken_file_located(void **state)
{
    (void)state;
    ET_REQUIRE_CORPUS(path, "mitmproxy/har/corrupted_har__brokenfile.har");
    size_t ok, skipped;
    int rc;
    struct et_error e;
    et_error_clear(&e);
    read_counting(path, &ok, &skipped, &rc, &e);
    /* {"log":\n[\n  2,1,3\n]\n"request:"} : the string after ']' lacks a comma. */
    assert_int_equal(rc, ET_EPARSE);
    assert_true(e.has_offset);
    assert_int_equal(e.offset, 22);
    assert_non_null(strstr(e.msg, "line 5, column 1"));
}

static struct et_exchange *find_cmd(struct et_exchange **v, size_t n, const char *cmd,
                                    const char *dev)
{
    for (size_t i = 0; i < n; i++)
        if (strstr(v[i]->req.target, cmd) != NULL && strstr(v[i]->req.target, dev) != NULL)
            return v[i];
    return NULL;
}

static void check_body_file(const struct et_body *b, const char *rel)
{
    const char *p = et_corpus(rel);
    size_t n;
    unsigned char *d;
    assert_non_null(p);
    d = et_test_read_file(p, &n);
    assert_non_null(d);
    hc_body_eq(b, d, n);
    free(d);
}

/* EAS traffic through mitmproxy: WBXML bodies stored as text (valid UTF-8) and as base64
 * both come back byte for byte, compared with the bodies the client and server exchanged. */
static void test_har_sogo_eas_bodies_exact(void **state)
{
    (void)state;
    ET_REQUIRE_CORPUS(path, "generated-sogo-loopback/eas-sogo-mitmproxy.har");
    struct et_source *s;
    struct et_error e;
    struct et_exchange *v[32], *x;
    size_t n;
    et_error_clear(&e);
    assert_int_equal(et_har_open(path, &s, &e), 0);
    n = hc_read_all(s, v, 32);
    assert_int_equal(n, 19);
    x = find_cmd(v, n, "Cmd=FolderSync", "LOOPTEST03");
    assert_non_null(x);
    check_body_file(&x->req.body, "generated-sogo-loopback/run/02-FolderSync-req.wbxml");
    check_body_file(&x->resp.body, "generated-sogo-loopback/run/02-FolderSync-resp.wbxml");
    x = find_cmd(v, n, "Cmd=Ping", "LOOPTEST03");
    assert_non_null(x);
    check_body_file(&x->req.body, "generated-sogo-loopback/run/07-Ping-req.wbxml");
    check_body_file(&x->resp.body, "generated-sogo-loopback/run/07-Ping-resp.wbxml");
    x = find_cmd(v, n, "Cmd=GetItemEstimate", "LOOPTEST03");
    assert_non_null(x);
    check_body_file(&x->req.body, "generated-sogo-loopback/run/04-GetItemEstimate-req.wbxml");
    check_body_file(&x->resp.body, "generated-sogo-loopback/run/04-GetItemEstimate-resp.wbxml");
    /* Bodies that mitmproxy stored as text with one code point per byte (Latin-1): the
     * declared size tells the reader to map them back to the original bytes. */
    x = find_cmd(v, n, "Cmd=ItemOperations", "LOOPTEST03");
    assert_non_null(x);
    check_body_file(&x->req.body, "generated-sogo-loopback/run/06-ItemOperations-req.wbxml");
    check_body_file(&x->resp.body, "generated-sogo-loopback/run/06-ItemOperations-resp.wbxml");
    {
        size_t syncs = 0;
        for (size_t i = 0; i < n; i++) {
            if (v[i]->req.target == NULL || strstr(v[i]->req.target, "Cmd=Sync") == NULL ||
                strstr(v[i]->req.target, "LOOPTEST03") == NULL)
                continue;
            syncs++;
            check_body_file(&v[i]->req.body, syncs == 1
                                                 ? "generated-sogo-loopback/run/03-Sync-req.wbxml"
                                                 : "generated-sogo-loopback/run/05-Sync-req.wbxml");
            check_body_file(&v[i]->resp.body,
                            syncs == 1 ? "generated-sogo-loopback/run/03-Sync-resp.wbxml"
                                       : "generated-sogo-loopback/run/05-Sync-resp.wbxml");
        }
        assert_int_equal(syncs, 2);
    }
    /* GetItemEstimate of the first run failed with HTTP 501. */
    x = find_cmd(v, n, "Cmd=GetItemEstimate", "LOOPTEST01");
    assert_non_null(x);
    assert_int_equal(x->resp.status, 501);
    assert_string_equal(x->resp.reason, "Request Failed");
    assert_string_equal(et_headers_get(&x->req.headers, "Authorization"), "Basic dDE6dDFwYXNz");
    assert_string_equal(x->host, "127.0.0.1");
    assert_int_equal(x->port, 20000);
    assert_string_equal(x->scheme, "http");
    assert_true(x->t.req_begin > 0);
    assert_int_equal(x->t.resp_end - x->t.req_begin, 70000);
    for (size_t i = 0; i < n; i++)
        et_exchange_free(v[i]);
    et_source_close(s);
}

static void test_har_bom_and_body_encodings(void **state)
{
    (void)state;
    struct et_source *s;
    struct et_error e;
    struct et_exchange *v[4];
    static const uint8_t b1[] = {0x03, 0x01, 0x6a, 0x00, 0x00, 0x00, 0x00};
    static const uint8_t b2[] = {0x03, 0x01, 0x6a, 0x00, 0x45, 0xc3, 0xbf};
    et_error_clear(&e);
    assert_int_equal(et_har_open(et_fixture("har/eas-two-entries-bom.har"), &s, &e), 0);
    assert_int_equal(hc_read_all(s, v, 4), 2);
    hc_body_eq(&v[0]->resp.body, b1, sizeof(b1));
    hc_body_eq(&v[1]->resp.body, b2, sizeof(b2));
    /* 12:00:01.25+02:00, then blocked 1 + dns 2 ms before connect, connect 3 ms. */
    assert_int_equal(v[0]->t.connect, (int64_t)1714557601250000 + 3000);
    assert_int_equal(v[0]->t.req_begin, v[0]->t.connect + 3000);
    assert_int_equal(v[0]->t.req_end, v[0]->t.req_begin + 4000);
    assert_int_equal(v[0]->t.resp_begin, v[0]->t.req_end + 10000);
    assert_int_equal(v[0]->t.resp_end, v[0]->t.resp_begin + 10000);
    assert_string_equal(v[0]->server_addr, "192.0.2.10");
    assert_string_equal(v[0]->client_addr, "198.51.100.7:50123");
    assert_string_equal(v[0]->req.target,
                        "/Microsoft-Server-ActiveSync?Cmd=Sync&User=u1&DeviceId=DEV1&"
                        "DeviceType=iPhone");
    assert_int_equal(v[0]->id, 1);
    assert_int_equal(v[1]->id, 2);
    et_exchange_free(v[0]);
    et_exchange_free(v[1]);
    et_source_close(s);
}

/* Reads a fixture and returns the results: exchanges read, skip errors, final code. */
static void read_fixture(const char *rel, size_t *ok, size_t *skipped, int *final_rc,
                         struct et_error *fe)
{
    struct et_source *s;
    struct et_error e;
    *ok = *skipped = 0;
    *final_rc = 0;
    et_error_clear(&e);
    assert_int_equal(et_har_open(et_fixture(rel), &s, &e), 0);
    for (;;) {
        struct et_exchange *x;
        int rc;
        et_error_clear(&e);
        rc = et_source_next(s, &x, &e);
        if (rc == 1) {
            (*ok)++;
            et_exchange_free(x);
            continue;
        }
        if (rc == ET_EPARSE && strstr(e.msg, "entry ") != NULL && *skipped < 10) {
            (*skipped)++;
            *fe = e;
            continue;
        }
        *final_rc = rc;
        if (rc != 0)
            *fe = e;
        break;
    }
    et_source_close(s);
}

static void test_har_damage_keeps_entries_before_it(void **state)
{
    size_t ok, skipped;
    int rc;
    struct et_error e;
    (void)state;
    read_fixture("har/broken-missing-comma-after-entry-2.har", &ok, &skipped, &rc, &e);
    assert_int_equal(ok, 2);
    assert_int_equal(skipped, 0);
    assert_int_equal(rc, ET_EPARSE);
    assert_true(e.has_offset);
    assert_non_null(strstr(e.msg, "expected ',' or the end of a container at line"));

    read_fixture("har/truncated-inside-entry-3.har", &ok, &skipped, &rc, &e);
    assert_int_equal(ok, 2);
    assert_int_equal(rc, ET_ETRUNC);
    assert_non_null(strstr(e.msg, "file ends"));

    read_fixture("har/not-har-no-entries.har", &ok, &skipped, &rc, &e);
    assert_int_equal(ok, 0);
    assert_int_equal(rc, ET_EPARSE);
    assert_non_null(strstr(e.msg, "no log.entries"));
}

static void test_har_bad_entry_skipped_next_read(void **state)
{
    size_t ok, skipped;
    int rc;
    struct et_error e;
    (void)state;
    read_fixture("har/entry-2-bad-base64.har", &ok, &skipped, &rc, &e);
    assert_int_equal(ok, 2);
    assert_int_equal(skipped, 1);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(e.msg, "entry 2"));
    assert_non_null(strstr(e.msg, "base64"));
}

static void test_har_mem_garbage_rejected(void **state)
{
    static const char *bad[] = {"", "{", "[1,2", "{\"log\":{\"entries\":[1]}}", "nul",
                                "{\"log\":{\"entries\":[{\"a\":\"\\x\"}]}}", "\"\x01\"",
                                "{\"log\":{\"entries\":[]}} x"};
    (void)state;
    for (size_t i = 0; i < ET_ARRAY_SIZE(bad); i++) {
        struct et_source *s;
        struct et_error e;
        struct et_exchange *x;
        int rc;
        et_error_clear(&e);
        assert_int_equal(et_har_open_mem(bad[i], strlen(bad[i]), "mem", &s, &e), 0);
        rc = et_source_next(s, &x, &e);
        assert_true(rc < 0);
        assert_true(e.msg[0] != '\0');
        et_source_close(s);
    }
}

/* ---- writer ---------------------------------------------------------------------------- */

static char tmpdir[256];

static int setup_tmp(void **state)
{
    (void)state;
    return et_test_tmpdir(tmpdir, sizeof(tmpdir)) == NULL ? -1 : 0;
}

static int teardown_tmp(void **state)
{
    (void)state;
    /* The directory holds only files we made (et_test_rmtree trips -Wformat-truncation). */
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    char p[1024];
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

static void write_samples(const char *path, int include_secrets)
{
    struct et_har_writer *w;
    struct et_har_write_opts o = {0};
    struct et_error e;
    et_error_clear(&e);
    o.include_secrets = include_secrets;
    assert_int_equal(et_har_writer_open(path, &o, &w, &e), 0);
    for (int i = 1; i <= 3; i++) {
        struct et_exchange *x = hc_sample(i);
        assert_int_equal(et_har_writer_add(w, x, &e), 0);
        et_exchange_free(x);
    }
    assert_int_equal(et_har_writer_close(w, &e), 0);
}

static void has(json_t *o, const char *key, int type)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || (int)json_typeof(v) != type)
        fail_msg("HAR field %s missing or of the wrong type", key);
}

/* Required fields of HAR 1.2 (log, creator, entries, request, response, content, cache,
 * timings) with their types. */
static void validate_har12(const char *path)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je), *log, *ents, *ent;
    size_t i;
    if (root == NULL)
        fail_msg("%s: %s at line %d", path, je.text, je.line);
    log = json_object_get(root, "log");
    assert_true(json_is_object(log));
    assert_string_equal(json_string_value(json_object_get(log, "version")), "1.2");
    has(log, "creator", JSON_OBJECT);
    has(json_object_get(log, "creator"), "name", JSON_STRING);
    has(json_object_get(log, "creator"), "version", JSON_STRING);
    ents = json_object_get(log, "entries");
    assert_true(json_is_array(ents));
    assert_int_equal(json_array_size(ents), 3);
    json_array_foreach(ents, i, ent) {
        json_t *rq = json_object_get(ent, "request"), *rs = json_object_get(ent, "response");
        json_t *tm = json_object_get(ent, "timings"), *h;
        size_t k;
        int64_t t;
        has(ent, "startedDateTime", JSON_STRING);
        assert_int_equal(
            et_time_parse_iso8601(json_string_value(json_object_get(ent, "startedDateTime")), &t),
            0);
        assert_true(json_is_number(json_object_get(ent, "time")));
        has(ent, "cache", JSON_OBJECT);
        assert_true(json_is_object(rq) && json_is_object(rs) && json_is_object(tm));
        has(rq, "method", JSON_STRING);
        has(rq, "url", JSON_STRING);
        assert_non_null(strstr(json_string_value(json_object_get(rq, "url")), "://"));
        has(rq, "httpVersion", JSON_STRING);
        has(rq, "cookies", JSON_ARRAY);
        has(rq, "headers", JSON_ARRAY);
        has(rq, "queryString", JSON_ARRAY);
        has(rq, "headersSize", JSON_INTEGER);
        has(rq, "bodySize", JSON_INTEGER);
        json_array_foreach(json_object_get(rq, "headers"), k, h) {
            has(h, "name", JSON_STRING);
            has(h, "value", JSON_STRING);
        }
        if (json_object_get(rq, "postData") != NULL) {
            has(json_object_get(rq, "postData"), "mimeType", JSON_STRING);
            has(json_object_get(rq, "postData"), "text", JSON_STRING);
        }
        has(rs, "status", JSON_INTEGER);
        has(rs, "statusText", JSON_STRING);
        has(rs, "httpVersion", JSON_STRING);
        has(rs, "cookies", JSON_ARRAY);
        has(rs, "headers", JSON_ARRAY);
        has(rs, "content", JSON_OBJECT);
        has(json_object_get(rs, "content"), "size", JSON_INTEGER);
        has(json_object_get(rs, "content"), "mimeType", JSON_STRING);
        has(rs, "redirectURL", JSON_STRING);
        has(rs, "headersSize", JSON_INTEGER);
        has(rs, "bodySize", JSON_INTEGER);
        assert_true(json_number_value(json_object_get(tm, "send")) >= 0);
        assert_true(json_number_value(json_object_get(tm, "wait")) >= 0);
        assert_true(json_number_value(json_object_get(tm, "receive")) >= 0);
    }
    json_decref(root);
}

/* Debian's node-har-validator (the HAR 1.2 JSON schema) accepts path; tests/cli/har-validate.js
 * calls it. */
static void validate_with_node(const char *path)
{
    char cmd[2048];
    int rc;
    snprintf(cmd, sizeof(cmd),
             "NODE_PATH=/usr/share/nodejs node '%s/../cli/har-validate.js' '%s'",
             ET_FIXTURES_DIR, path);
    rc = system(cmd);
    if (rc != 0)
        fail_msg("node-har-validator rejects %s (exit %d; needs nodejs node-har-validator, "
                 "scripts/install-deps.sh test)", path, rc);
}

static void test_har_write_validates_as_har12(void **state)
{
    char path[512];
    (void)state;
    snprintf(path, sizeof(path), "%s/out.har", tmpdir);
    write_samples(path, 0);
    validate_har12(path);
    validate_with_node(path);
}

/* gzip of "<hello/>" made with Python's gzip.compress(b"<hello/>", mtime=0). */
static const uint8_t gz_hello[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03,
                                   0xb3, 0xc9, 0x48, 0xcd, 0xc9, 0xc9, 0xd7, 0xb7, 0x03, 0x00,
                                   0x1c, 0x7e, 0xe4, 0xea, 0x08, 0x00, 0x00, 0x00};

/* A body recorded on the wire with Content-Encoding: gzip is written decoded, as HAR 1.2 wants
 * (content.size the decoded length, compression the bytes saved); our reader then marks it
 * decoded and the decoder does not gunzip it again. A body that does not decode keeps its
 * wire bytes with "_eastraceEncoded". The proxy's "ip:port" server address is written as an
 * address only, the port kept in _serverAddress. */
static void test_har_write_decodes_content_and_bare_server_ip(void **state)
{
    char path[512];
    struct et_har_writer *w;
    struct et_error e;
    struct et_source *s;
    struct et_exchange *x, *v[3];
    unsigned char *d;
    size_t n;
    (void)state;
    snprintf(path, sizeof(path), "%s/gzip.har", tmpdir);
    et_error_clear(&e);
    assert_int_equal(et_har_writer_open(path, NULL, &w, &e), 0);
    for (int i = 0; i < 2; i++) {
        x = hc_sample(1);
        x->server_addr = i == 0 ? "203.0.113.5:443" : "[2001:db8::5]:8443";
        hc_hdr(&x->resp.headers, x->arena, "Content-Encoding", "gzip");
        if (i == 0)
            assert_int_equal(et_body_set(&x->resp.body, x->arena, gz_hello, sizeof(gz_hello)), 0);
        else /* cut: not decodable */
            assert_int_equal(et_body_set(&x->resp.body, x->arena, gz_hello, 12), 0);
        assert_int_equal(et_har_writer_add(w, x, &e), 0);
        et_exchange_free(x);
    }
    assert_int_equal(et_har_writer_close(w, &e), 0);
    validate_with_node(path);
    d = et_test_read_file(path, &n);
    assert_non_null(d);
    assert_non_null(strstr((char *)d, "\"text\":\"<hello/>\""));
    assert_non_null(strstr((char *)d, "\"compression\":-20"));
    assert_non_null(strstr((char *)d, "\"_eastraceEncoded\":true"));
    assert_non_null(strstr((char *)d, "\"serverIPAddress\":\"203.0.113.5\""));
    assert_non_null(strstr((char *)d, "\"serverIPAddress\":\"2001:db8::5\""));
    assert_null(strstr((char *)d, "\"serverIPAddress\":\"203.0.113.5:443\""));
    free(d);

    assert_int_equal(et_har_open(path, &s, &e), 0);
    assert_int_equal(hc_read_all(s, v, 3), 2);
    hc_body_eq(&v[0]->resp.body, "<hello/>", 8);
    assert_true(v[0]->resp.body.content_decoded);
    assert_string_equal(v[0]->server_addr, "203.0.113.5:443");
    hc_body_eq(&v[1]->resp.body, gz_hello, 12);
    assert_false(v[1]->resp.body.content_decoded);
    assert_string_equal(v[1]->server_addr, "[2001:db8::5]:8443");
    et_exchange_free(v[0]);
    et_exchange_free(v[1]);
    et_source_close(s);
}

/* HAR "_error" texts of Chrome and mitmproxy name the step that failed. */
static void test_har_error_names_the_failed_step(void **state)
{
    static const struct {
        const char *error;
        int status;
        enum et_stage stage;
        int code;
    } cases[] = {
        {"net::ERR_NAME_NOT_RESOLVED", 0, ET_STAGE_DNS, ET_EDNS},
        {"[Errno -2] Name or service not known", 0, ET_STAGE_DNS, ET_EDNS},
        {"net::ERR_CONNECTION_REFUSED", 0, ET_STAGE_UPSTREAM_CONNECT, ET_ECONNREFUSED},
        {"Multiple exceptions: [Errno 60] Connect call failed ('123.58.180.8', 80)", 0,
         ET_STAGE_UPSTREAM_CONNECT, ET_ECONNREFUSED},
        {"net::ERR_CONNECTION_TIMED_OUT", 0, ET_STAGE_UPSTREAM_CONNECT, ET_ETIMEDOUT},
        {"net::ERR_CERT_AUTHORITY_INVALID", 0, ET_STAGE_UPSTREAM_TLS, ET_ECERT},
        {"TLS handshake failed", 0, ET_STAGE_UPSTREAM_TLS, ET_ETLS},
        {"Connection killed", 200, ET_STAGE_RESPONSE, ET_ECONNRESET},
        {"Connection reset by peer", 0, ET_STAGE_RESPONSE, ET_ECONNRESET},
        {"net::ERR_EMPTY_RESPONSE", 0, ET_STAGE_RESPONSE, ET_ECONNRESET},
        {"net::ERR_CONNECTION_FAILED", 0, ET_STAGE_UPSTREAM_CONNECT, ET_ECONNREFUSED},
        {"something else", 0, ET_STAGE_UPSTREAM_CONNECT, ET_ECONNRESET},
    };
    (void)state;
    for (size_t i = 0; i < ET_ARRAY_SIZE(cases); i++) {
        char har[1024];
        struct et_source *s;
        struct et_error e;
        struct et_exchange *x;
        snprintf(har, sizeof(har),
                 "{\"log\":{\"version\":\"1.2\",\"entries\":[{\"startedDateTime\":"
                 "\"2024-05-01T10:00:00Z\",\"request\":{\"method\":\"GET\",\"url\":"
                 "\"https://mail.example.com/\"},\"response\":{\"status\":%d,\"_error\":"
                 "\"%s\"}}]}}",
                 cases[i].status, cases[i].error);
        et_error_clear(&e);
        assert_int_equal(et_har_open_mem(har, strlen(har), "mem", &s, &e), 0);
        assert_int_equal(et_source_next(s, &x, &e), 1);
        if (x->err.stage != cases[i].stage || x->err.code != cases[i].code)
            fail_msg("%s: stage %s code %d", cases[i].error, et_stage_name(x->err.stage),
                     x->err.code);
        assert_string_equal(x->err.message, cases[i].error);
        et_exchange_free(x);
        et_source_close(s);
    }
}

static void check_common_roundtrip(struct et_exchange **v)
{
    struct et_exchange *x = v[0], *ref = hc_sample(1);
    assert_string_equal(x->req.method, "POST");
    assert_string_equal(x->host, "mail.example.com");
    assert_int_equal(x->port, 443);
    assert_string_equal(x->scheme, "https");
    assert_int_equal(x->req.http_major, 1);
    assert_int_equal(x->req.http_minor, 1);
    assert_int_equal(x->resp.status, 200);
    assert_string_equal(x->resp.reason, "OK");
    hc_body_eq(&x->req.body, ref->req.body.data, ref->req.body.len);
    hc_body_eq(&x->resp.body, ref->resp.body.data, ref->resp.body.len);
    assert_int_equal(x->t.connect, ref->t.connect);
    assert_int_equal(x->t.req_begin, ref->t.req_begin);
    assert_int_equal(x->t.req_end, ref->t.req_end);
    assert_int_equal(x->t.resp_begin, ref->t.resp_begin);
    assert_int_equal(x->t.resp_end, ref->t.resp_end);
    assert_string_equal(x->client_addr, "192.0.2.7:51234");
    assert_string_equal(x->server_addr, "203.0.113.5");
    assert_string_equal(et_headers_get(&x->meta, "x-processinfo"), "outlook:1234");
    assert_string_equal(et_headers_get(&x->req.headers, "MS-ASProtocolVersion"), "14.1");
    assert_int_equal(x->req.headers.n, ref->req.headers.n);
    et_exchange_free(ref);
    /* The failed exchange keeps its failure, the CONNECT its authority. */
    assert_int_equal(v[1]->has_response, 0);
    assert_int_equal(v[1]->err.code, ET_ECONNRESET);
    assert_int_equal(v[1]->err.stage, ET_STAGE_RESPONSE);
    assert_string_equal(v[1]->err.message, "upstream closed the connection");
    assert_string_equal(v[2]->req.method, "CONNECT");
    assert_string_equal(v[2]->req.target, "mail.example.com:443");
    assert_string_equal(v[2]->resp.reason, "Connection Established");
}

static void test_har_roundtrip_redacted_by_default(void **state)
{
    char path[512];
    struct et_source *s;
    struct et_error e;
    struct et_exchange *v[4];
    (void)state;
    snprintf(path, sizeof(path), "%s/redacted.har", tmpdir);
    write_samples(path, 0);
    et_error_clear(&e);
    assert_int_equal(et_har_open(path, &s, &e), 0);
    assert_int_equal(hc_read_all(s, v, 4), 3);
    check_common_roundtrip(v);
    assert_string_equal(et_headers_get(&v[0]->req.headers, "Authorization"),
                        "Basic [redacted] user=jdoe");
    assert_string_equal(et_headers_get(&v[0]->req.headers, "Cookie"), "[redacted]");
    assert_string_equal(et_headers_get(&v[0]->resp.headers, "Set-Cookie"), "[redacted]");
    assert_string_equal(et_headers_get(&v[1]->req.headers, "Proxy-Authorization"),
                        "NTLM [redacted]");
    assert_null(strstr(v[0]->req.target, "hunter2"));
    assert_non_null(strstr(v[0]->req.target, "Cmd=Sync"));
    {
        size_t n;
        unsigned char *d = et_test_read_file(path, &n);
        assert_non_null(d);
        assert_null(strstr((char *)d, "hunter2"));
        assert_null(strstr((char *)d, "amRvZTpodW50ZXIy"));
        assert_null(strstr((char *)d, "abc123"));
        assert_null(strstr((char *)d, "TlRMTVNTUAABAAAA"));
        free(d);
    }
    for (int i = 0; i < 3; i++)
        et_exchange_free(v[i]);
    et_source_close(s);
}

static void test_har_roundtrip_include_secrets(void **state)
{
    char path[512];
    struct et_source *s;
    struct et_error e;
    struct et_exchange *v[4];
    (void)state;
    snprintf(path, sizeof(path), "%s/secrets.har", tmpdir);
    write_samples(path, 1);
    et_error_clear(&e);
    assert_int_equal(et_har_open(path, &s, &e), 0);
    assert_int_equal(hc_read_all(s, v, 4), 3);
    check_common_roundtrip(v);
    assert_string_equal(et_headers_get(&v[0]->req.headers, "Authorization"),
                        "Basic amRvZTpodW50ZXIy");
    assert_string_equal(et_headers_get(&v[0]->req.headers, "Cookie"), "session=abc123");
    assert_string_equal(v[0]->req.target, hc_sample_target());
    for (int i = 0; i < 3; i++)
        et_exchange_free(v[i]);
    et_source_close(s);
}

static long vm_hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmHWM:", 6) == 0)
            v = strtol(line + 6, NULL, 10);
    fclose(f);
    return v;
}

/* A 200 MB HAR written by our writer streams back in memory that does not follow its size. */
static void test_har_large_file_bounded_memory(void **state)
{
    char path[512];
    struct et_har_writer *w;
    struct et_error e;
    struct et_source *s;
    struct et_exchange *x = hc_sample(1);
    size_t body_len = 512 * 1024, n = 0, entries = 400;
    uint8_t *body = malloc(body_len);
    long before, after;
    struct stat st;
    (void)state;
    assert_non_null(body);
    for (size_t i = 0; i < body_len; i++)
        body[i] = (uint8_t)('a' + i % 26);
    x->resp.body.data = body; /* borrowed for the writes */
    x->resp.body.len = x->resp.body.wire_len = body_len;
    snprintf(path, sizeof(path), "%s/large.har", tmpdir);
    et_error_clear(&e);
    assert_int_equal(et_har_writer_open(path, NULL, &w, &e), 0);
    for (size_t i = 0; i < entries; i++)
        assert_int_equal(et_har_writer_add(w, x, &e), 0);
    assert_int_equal(et_har_writer_close(w, &e), 0);
    x->resp.body.data = NULL;
    et_exchange_free(x);
    free(body);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 200 * 1000 * 1000);

    before = vm_hwm_kb();
    assert_int_equal(et_har_open(path, &s, &e), 0);
    for (;;) {
        int rc = et_source_next(s, &x, &e);
        if (rc == 0)
            break;
        assert_int_equal(rc, 1);
        assert_int_equal(x->resp.body.len, body_len);
        n++;
        et_exchange_free(x);
    }
    et_source_close(s);
    after = vm_hwm_kb();
    print_message("read %zu entries of a %lld MB HAR; peak RSS grew by %ld KiB\n", n,
                  (long long)st.st_size / 1000000, after - before);
    assert_int_equal(n, entries);
#if defined(__SANITIZE_ADDRESS__)
    /* ASan's quarantine keeps up to 256 MiB of freed memory resident: no bound to check. */
    (void)before;
#else
    if (before > 0)
        assert_true(after - before < 32 * 1024);
#endif
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_har_corpus_mitmproxy),
        cmocka_unit_test(test_har_corpus_broken_file_located),
        cmocka_unit_test(test_har_sogo_eas_bodies_exact),
        cmocka_unit_test(test_har_bom_and_body_encodings),
        cmocka_unit_test(test_har_damage_keeps_entries_before_it),
        cmocka_unit_test(test_har_bad_entry_skipped_next_read),
        cmocka_unit_test(test_har_mem_garbage_rejected),
        cmocka_unit_test(test_har_write_validates_as_har12),
        cmocka_unit_test(test_har_write_decodes_content_and_bare_server_ip),
        cmocka_unit_test(test_har_error_names_the_failed_step),
        cmocka_unit_test(test_har_roundtrip_redacted_by_default),
        cmocka_unit_test(test_har_roundtrip_include_secrets),
        cmocka_unit_test(test_har_large_file_bounded_memory),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
