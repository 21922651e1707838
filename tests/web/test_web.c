/*
 * The web store, API and server in process (so the ASan+UBSan run covers them; the page
 * itself is tested in Chromium by test_browser.js):
 *   - JSON strings safe inside HTML (markup, invalid UTF-8, U+2028);
 *   - /api/rows filters give the pipeline's own filter results, on the fixture files;
 *   - details redact credentials; the export file holds no "</script" of its data;
 *   - the server's gate over a real socket, and a held /api/wait answered by a new exchange.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "et_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "eastrace/http.h"
#include "eastrace/pipeline.h"
#include "eastrace/web.h"
#include "web_int.h"

/* ---- JSON ----------------------------------------------------------------------------- */

static void test_web_json_string_is_safe_in_html(void **state)
{
    struct et_buf b;
    (void)state;
    et_buf_init(&b, 0);
    et__web_json_str(&b, "</script>&\xff\xe2\x80\xa8\"\\\x01ok\xc3\xa9", 21);
    assert_string_equal((const char *)b.data,
                        "\"</script>&\\ufffd\\u2028\\\"\\\\\\u0001ok\xc3\xa9\"");
    assert_int_equal(et__web_json_harden(&b), 0); /* for the export */
    assert_string_equal((const char *)b.data,
                        "\"\\u003c/script\\u003e\\u0026\\ufffd\\u2028\\\"\\\\\\u0001ok\xc3\xa9\"");
    et_buf_reset(&b);
    et_buf_puts(&b, "{\"a\":\"</script><b>\xfe\"}");
    assert_int_equal(et__web_json_harden(&b), 0);
    assert_string_equal((const char *)b.data, "{\"a\":\"\\u003c/script\\u003e\\u003cb\\u003e\\ufffd\"}");
    et_buf_free(&b);
}

static void test_web_query_param_decodes_and_refuses_nul(void **state)
{
    char *v;
    (void)state;
    v = et__web_query_param("a=1&find=Status%3E3%3C+x&b=2", "find");
    assert_string_equal(v, "Status>3< x");
    et_free(v);
    assert_null(et__web_query_param("find=a%00b", "find"));
    assert_null(et__web_query_param("find=", "find"));
    assert_null(et__web_query_param("xfind=1", "find"));
    v = et__web_query_param("find=%4", "find"); /* a cut escape stays as it is */
    assert_string_equal(v, "%4");
    et_free(v);
}

/* ---- the store against the pipeline ---------------------------------------------------- */

struct counter {
    unsigned long long n;
};

static int count_item(void *arg, const struct et_pipe_item *it)
{
    (void)it;
    ((struct counter *)arg)->n++;
    return 0;
}

/* Runs the pipeline over files into a store (no filter), or counting with filter f. */
static void run(const char *const *files, size_t n, struct et_web_store *s,
                const struct et_pipe_filter *f, unsigned long long *count)
{
    struct et_pipe_opts po;
    struct counter c = {0};
    struct et_pipe_sink sink = {count_item, NULL, &c};
    struct et_pipe *p;
    et_pipe_opts_default(&po);
    if (s != NULL)
        sink = et_web_store_sink(s);
    if (f != NULL)
        po.filter = *f;
    p = et_pipe_new(&po, &sink);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", ET_FIXTURES_DIR, files[i]);
        assert_int_equal(et_pipe_open(p, path), 0);
    }
    assert_int_equal(et_pipe_run(p), 0);
    if (count != NULL)
        *count = c.n;
    et_pipe_free(p);
}

static unsigned long long api_matched(struct et_web_store *s, const char *target)
{
    struct et_buf b;
    int status;
    const char *m;
    unsigned long long n;
    et_buf_init(&b, 0);
    assert_int_equal(et_web_store_api(s, target, &b, &status), 0);
    assert_int_equal(status, 200);
    m = strstr((const char *)b.data, "\"matched\":");
    assert_non_null(m);
    n = strtoull(m + 10, NULL, 10);
    et_buf_free(&b);
    return n;
}

static void test_web_filters_are_the_pipelines(void **state)
{
    static const char *const files[] = {"timeline/capture-appl1-5-requests.har",
                                        "timeline/iis-appl1-dev2-6-eas-lines.log",
                                        "timeline/mailboxlog-appl1-4-entries.txt",
                                        "capture/capfile-v1-sync-and-cert-error.etcap"};
    static const struct {
        const char *query;
        struct et_pipe_filter f;
    } cases[] = {
        {"", {0}},
        {"device=appl1", {.device = "appl1"}},
        {"device=DEV2", {.device = "DEV2"}},
        {"cmd=sync", {.cmd = "sync"}},
        {"cmd=SendMail", {.cmd = "SendMail"}},
        {"user=alice", {.user = "alice"}},
        {"host=mail.example.com", {.host = "mail.example.com"}},
        {"errors=1", {.errors_only = 1}},
        {"find=SyncKey%3E0%3C", {.find = "SyncKey>0<"}},
        {"find=iphone", {.find = "iphone"}},
        {"find=StoragePermanentException", {.find = "StoragePermanentException"}},
        {"find=nothing-like-this", {.find = "nothing-like-this"}},
        {"since=2024-05-01T10:00:10Z", {.since = 1714557610000000LL}},
        {"until=2024-05-01T10:00:10Z&cmd=Sync", {.until = 1714557610000000LL, .cmd = "Sync"}},
    };
    struct et_error e;
    struct et_web_store *s;
    unsigned long long total = 0;
    (void)state;

    et_error_clear(&e);
    s = et_web_store_new(NULL, &e);
    assert_non_null(s);
    run(files, ET_ARRAY_SIZE(files), s, NULL, NULL);
    run(files, ET_ARRAY_SIZE(files), NULL, NULL, &total);
    assert_int_equal(et_web_store_count(s), total);
    assert_true(total >= 9);
    for (size_t i = 0; i < ET_ARRAY_SIZE(cases); i++) {
        unsigned long long want = 0;
        char target[256];
        run(files, ET_ARRAY_SIZE(files), NULL, &cases[i].f, &want);
        snprintf(target, sizeof(target), "/api/rows?%s", cases[i].query);
        if (api_matched(s, target) != want)
            fail_msg("%s: store %llu, pipeline %llu", target, api_matched(s, target), want);
    }
    {
        struct et_buf b;
        int status;
        et_buf_init(&b, 0);
        assert_int_equal(et_web_store_api(s, "/api/rows?since=yesterday", &b, &status), 0);
        assert_int_equal(status, 400);
        et_buf_reset(&b);
        assert_int_equal(et_web_store_api(s, "/api/exchange/999", &b, &status), 0);
        assert_int_equal(status, 404);
        et_buf_reset(&b);
        assert_int_equal(et_web_store_api(s, "/api/findings", &b, &status), 0);
        assert_non_null(strstr((const char *)b.data, "\"rule\":\"not-in-server-log\""));
        et_buf_free(&b);
    }
    et_web_store_free(s);
}

static void test_web_detail_redacts_credentials(void **state)
{
    static const char *const files[] = {"har/eas-two-entries-bom.har"};
    struct et_error e;
    struct et_web_store *s;
    struct et_buf b;
    int status;
    (void)state;

    et_error_clear(&e);
    s = et_web_store_new(NULL, &e);
    assert_non_null(s);
    run(files, 1, s, NULL, NULL);
    et_buf_init(&b, 0);
    assert_int_equal(et_web_store_api(s, "/api/exchange/1", &b, &status), 0);
    assert_int_equal(status, 200);
    assert_null(strstr((const char *)b.data, "dTE6c2VjcmV0")); /* base64 of u1:secret */
    assert_null(strstr((const char *)b.data, "secret"));
    /* The policy's form, as show prints it (decoder/redact.h). */
    assert_non_null(strstr((const char *)b.data, "\"Authorization\",\"Basic [redacted] user=u1"));
    et_buf_free(&b);
    et_web_store_free(s);
}

/* A hostile exchange built by hand: markup in the target, a header and the body. */
static void add_hostile(struct et_web_store *s, uint64_t n)
{
    struct et_exchange *x = et_exchange_new();
    struct et_view v;
    const char *evil = "</script><script>alert(1)</script>";
    assert_non_null(x);
    x->id = n;
    x->source = ET_SRC_HAR;
    x->has_request = x->has_response = 1;
    x->req.method = "POST";
    x->req.target = "/Microsoft-Server-ActiveSync?Cmd=Sync&User=%3C/script%3E&DeviceId=X1&DeviceType=T";
    x->host = "</script>.example";
    x->t.req_begin = 1714557600000000LL + (int64_t)n * 1000000;
    x->t.resp_end = x->t.req_begin + 1000;
    assert_int_equal(et_headers_add(&x->req.headers, x->arena, "X-Evil", 6, evil, strlen(evil)), 0);
    assert_int_equal(et_headers_add(&x->resp.headers, x->arena, "Content-Type", 12, "text/plain", 10), 0);
    x->resp.status = 200;
    assert_int_equal(et_body_set(&x->resp.body, x->arena, evil, strlen(evil)), 0);
    assert_int_equal(et_view_build(x, x->arena, &v), 0);
    assert_int_equal(et_web_store_add(s, n, x, &v, NULL, ET_WEB_SEEN_CAP), 0);
    et_view_reset(&v);
    et_exchange_free(x);
}

static void test_web_export_holds_no_script_end(void **state)
{
    struct et_error e;
    struct et_web_store *s;
    char dir[] = "/tmp/et-web-XXXXXX", path[64];
    unsigned char *html;
    size_t len, ends = 0;
    (void)state;

    et_error_clear(&e);
    s = et_web_store_new(NULL, &e);
    assert_non_null(s);
    for (uint64_t n = 1; n <= 3; n++)
        add_hostile(s, n);
    assert_int_equal(et_web_store_finish(s, NULL, NULL), 0);
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/x.html", dir);
    assert_int_equal(et_web_export_html(s, path, "</title><script>", &e), 0);
    html = et_test_read_file(path, &len);
    assert_non_null(html);
    for (const unsigned char *p = html; (p = (const unsigned char *)strstr((const char *)p, "</script")) != NULL; p++)
        ends++;
    assert_int_equal(ends, 2); /* the data block's and the script's own */
    assert_null(strstr((const char *)html, "<script>alert"));
    assert_non_null(strstr((const char *)html, "script-src 'sha256-"));
    free(html);
    unlink(path);
    rmdir(dir);
    et_web_store_free(s);
}

/* A multipart ItemOperations response (a fixture) and a binary body: parts and hex. */
static void test_web_detail_shows_parts_and_hex(void **state)
{
    static const char *const req =
        "POST /Microsoft-Server-ActiveSync?Cmd=ItemOperations&User=u&DeviceId=D&DeviceType=T "
        "HTTP/1.1\r\nHost: mail.example.com\r\nMS-ASAcceptMultiPart: T\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 6\r\n\r\n\x00\x01\x02\xff\xfe\x80";
    char path[1024];
    unsigned char *resp;
    size_t len;
    struct et_exchange *x = et_exchange_new();
    struct et_error e;
    struct et_web_store *s;
    struct et_view v;
    struct et_buf b;
    int status;
    (void)state;

    snprintf(path, sizeof(path), "%s/http/response-multipart-itemoperations.bin", ET_FIXTURES_DIR);
    resp = et_test_read_file(path, &len);
    assert_non_null(resp);
    assert_non_null(x);
    et_error_clear(&e);
    assert_int_equal(et_http_parse_request((const uint8_t *)req, strlen(req) + 6, x, &e), 0);
    assert_int_equal(et_http_parse_response(resp, len, x, &e), 0);
    x->t.req_begin = 1714557600000000LL;
    assert_int_equal(et_view_build(x, x->arena, &v), 0);
    s = et_web_store_new(NULL, &e);
    assert_non_null(s);
    assert_int_equal(et_web_store_add(s, 1, x, &v, NULL, 0), 0);
    et_buf_init(&b, 0);
    assert_int_equal(et_web_store_api(s, "/api/exchange/1", &b, &status), 0);
    assert_int_equal(status, 200);
    assert_non_null(strstr((const char *)b.data, "\"kind\":\"multipart\""));
    assert_non_null(strstr((const char *)b.data, "\"parts\":[{\"index\":0,"));
    assert_non_null(strstr((const char *)b.data, "<ItemOperations xmlns=\\\"ItemOperations:\\\""));
    assert_non_null(strstr((const char *)b.data, "{\"index\":1,"));
    /* The request's six binary bytes as a hex dump line. */
    assert_non_null(strstr((const char *)b.data, "\"hex\":\"00000000  00 01 02 ff fe 80"));
    et_buf_free(&b);
    et_view_reset(&v);
    et_exchange_free(x);
    free(resp);
    et_web_store_free(s);
}

/* ---- the server over a socket --------------------------------------------------------- */

static int port_of(const char *url)
{
    const char *c = strrchr(url, ':');
    return atoi(c + 1);
}

/* Sends req, returns the status code of the answer and (optionally) the whole answer. */
static int http(int port, const char *req, char *out, size_t outlen)
{
    struct sockaddr_in a;
    char buf[65536];
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0), code = -1;
    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    for (;;) {
        ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        buf[got] = '\0';
        /* Connection: close answers end with the socket; keep-alive ones with their body. */
        const char *cl = strstr(buf, "Content-Length: ");
        const char *end = strstr(buf, "\r\n\r\n");
        if (cl && end && got >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10))
            break;
    }
    buf[got] = '\0';
    close(fd);
    if (got > 12)
        code = atoi(buf + 9);
    if (out != NULL)
        snprintf(out, outlen, "%s", buf);
    return code;
}

struct waiter {
    int port;
    char req[512];
    char answer[65536];
    int code;
};

static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    w->code = http(w->port, w->req, w->answer, sizeof(w->answer));
    return NULL;
}

static void test_web_server_gate_and_wait(void **state)
{
    struct et_error e;
    struct et_web_store *s;
    struct et_web_server *srv;
    struct et_web_server_opts o = {.listen = "127.0.0.1:0", .token = "0123456789abcdef0123456789abcdef"};
    char req[1024], ans[65536];
    struct waiter w;
    pthread_t th;
    int port;
    (void)state;

    et_error_clear(&e);
    s = et_web_store_new(NULL, &e);
    assert_non_null(s);
    add_hostile(s, 1);
    assert_int_equal(et_web_server_start(s, &o, &srv, &e), 0);
    assert_true(et_web_server_loopback(srv));
    port = port_of(et_web_server_url(srv) + 7);
    assert_string_equal(strstr(et_web_server_url(srv), "?token="), "?token=0123456789abcdef0123456789abcdef");

    snprintf(req, sizeof(req), "GET /api/rows HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", port);
    assert_int_equal(http(port, req, NULL, 0), 401);
    snprintf(req, sizeof(req), "GET /api/rows?token=0123456789abcdef0123456789abcdee HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", port);
    assert_int_equal(http(port, req, NULL, 0), 403);
    snprintf(req, sizeof(req), "GET /api/rows HTTP/1.1\r\nHost: evil.example:%d\r\nCookie: et_token_%d=0123456789abcdef0123456789abcdef\r\nConnection: close\r\n\r\n", port, port);
    assert_int_equal(http(port, req, NULL, 0), 421);
    snprintf(req, sizeof(req), "GET /api/rows HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: http://evil.example\r\nCookie: et_token_%d=0123456789abcdef0123456789abcdef\r\nConnection: close\r\n\r\n", port, port);
    assert_int_equal(http(port, req, NULL, 0), 403);
    snprintf(req, sizeof(req), "GET /?token=0123456789abcdef0123456789abcdef HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", port);
    assert_int_equal(http(port, req, ans, sizeof(ans)), 303);
    assert_non_null(strstr(ans, "HttpOnly; SameSite=Strict"));
    snprintf(req, sizeof(req), "GET /api/rows HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nCookie: a=b; et_token_%d=0123456789abcdef0123456789abcdef\r\nConnection: close\r\n\r\n", port, port);
    assert_int_equal(http(port, req, ans, sizeof(ans)), 200);
    assert_non_null(strstr(ans, "\"matched\":1"));
    assert_non_null(strstr(ans, "\"host\":\"</script>.example\"")); /* a JSON string */
    assert_non_null(strstr(ans, "Content-Type: application/json"));
    assert_non_null(strstr(ans, "X-Content-Type-Options: nosniff"));
    assert_null(strstr(ans, "Access-Control"));
    /* Two requests on one keep-alive connection, pipelined. */
    snprintf(req, sizeof(req),
             "GET /api/summary HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nCookie: et_token_%d=0123456789abcdef0123456789abcdef\r\n\r\n"
             "GET /api/nothing HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nCookie: et_token_%d=0123456789abcdef0123456789abcdef\r\nConnection: close\r\n\r\n",
             port, port, port, port);
    http(port, req, ans, sizeof(ans));
    assert_non_null(strstr(ans, "HTTP/1.1 200 OK"));

    /* A held /api/wait is answered when an exchange arrives. */
    memset(&w, 0, sizeof(w));
    w.port = port;
    pthread_mutex_lock(&s->mu);
    snprintf(w.req, sizeof(w.req), "GET /api/wait?v=%llu HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nCookie: et_token_%d=0123456789abcdef0123456789abcdef\r\nConnection: close\r\n\r\n",
             (unsigned long long)s->version, port, port);
    pthread_mutex_unlock(&s->mu);
    assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
    usleep(300 * 1000);
    assert_int_equal(w.code, 0); /* still held */
    add_hostile(s, 2);
    pthread_join(th, NULL);
    assert_int_equal(w.code, 200);
    assert_non_null(strstr(w.answer, "\"exchanges\":2"));

    et_web_server_stop(srv);
    et_web_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_web_json_string_is_safe_in_html),
        cmocka_unit_test(test_web_query_param_decodes_and_refuses_nul),
        cmocka_unit_test(test_web_filters_are_the_pipelines),
        cmocka_unit_test(test_web_detail_redacts_credentials),
        cmocka_unit_test(test_web_export_holds_no_script_end),
        cmocka_unit_test(test_web_detail_shows_parts_and_hex),
        cmocka_unit_test(test_web_server_gate_and_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
