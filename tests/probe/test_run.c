/*
 * The whole probe against a scripted EAS server on 127.0.0.1 (plain HTTP, a thread, one
 * request per connection): both Provision phases with a policy, FolderSync answered with 449
 * first (the probe provisions again and retries, as a device does), Sync with items, Ping,
 * Autodiscover through --autodiscover-url, 401 with Windows-only schemes, and the capture file
 * the probe writes (every exchange, Authorization redacted).
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
#include <unistd.h>

#include "eastrace/capfile.h"
#include "eastrace/probe.h"
#include "eastrace/source.h"
#include "eastrace/wbxml.h"

struct fake {
    int lfd;
    int port;
    int mode_401;         /* answer everything with 401 NTLM/Negotiate */
    int foldersyncs;      /* FolderSync requests seen */
    int provisions;       /* Provision requests seen */
    int stop;
    pthread_t th;
    char last_auth[256];
};

static void send_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        b += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, int status, const char *reason, const char *headers,
                    const void *body, size_t len)
{
    char h[2048];
    int n = snprintf(h, sizeof(h),
                     "HTTP/1.1 %d %s\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, reason, headers, len);
    send_all(fd, h, (size_t)n);
    if (len > 0)
        send_all(fd, body, len);
}

static void respond_wbxml(int fd, const char *xml)
{
    struct et_buf b;
    et_buf_init(&b, 0);
    if (et_wbxml_encode(xml, strlen(xml), &b, NULL) != 0)
        fail_msg("fake server cannot encode %s", xml);
    respond(fd, 200, "OK", "Content-Type: application/vnd.ms-sync.wbxml\r\n", b.data, b.len);
    et_buf_free(&b);
}

static const char *header(const char *req, const char *name, char *out, size_t outlen)
{
    const char *p = strcasestr(req, name);
    out[0] = '\0';
    if (p == NULL)
        return NULL;
    p += strlen(name);
    while (*p == ' ')
        p++;
    snprintf(out, outlen, "%.*s", (int)strcspn(p, "\r\n"), p);
    return out;
}

static void serve_one(struct fake *f, int fd)
{
    char req[65536], v[256], cmd[64] = "";
    size_t n = 0;
    const char *he = NULL, *q;
    long cl = 0;

    while (n < sizeof(req) - 1) {
        ssize_t r = recv(fd, req + n, sizeof(req) - 1 - n, 0);
        if (r <= 0)
            return;
        n += (size_t)r;
        req[n] = '\0';
        if (he == NULL && (he = strstr(req, "\r\n\r\n")) != NULL) {
            if (header(req, "Content-Length:", v, sizeof(v)))
                cl = strtol(v, NULL, 10);
        }
        if (he != NULL && n >= (size_t)(he + 4 - req) + (size_t)cl)
            break;
    }
    header(req, "Authorization:", f->last_auth, sizeof(f->last_auth));
    if ((q = strstr(req, "Cmd=")) != NULL)
        snprintf(cmd, sizeof(cmd), "%.*s", (int)strcspn(q + 4, "& "), q + 4);

    if (f->mode_401) {
        respond(fd, 401, "Unauthorized", "WWW-Authenticate: Negotiate\r\nWWW-Authenticate: NTLM\r\n",
                NULL, 0);
    } else if (strncmp(req, "POST /autodiscover/autodiscover.xml", 35) == 0) {
        char body[1024];
        int bl = snprintf(body, sizeof(body),
                          "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"http://"
                          "schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">"
                          "<Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/"
                          "mobilesync/responseschema/2006\"><Action><Settings><Server><Type>"
                          "MobileSync</Type><Url>http://127.0.0.1:%d/Microsoft-Server-ActiveSync"
                          "</Url></Server></Settings></Action></Response></Autodiscover>",
                          f->port);
        respond(fd, 200, "OK", "Content-Type: text/xml\r\n", body, (size_t)bl);
    } else if (strncmp(req, "OPTIONS ", 8) == 0) {
        respond(fd, 200, "OK",
                "MS-Server-ActiveSync: 15.1\r\nMS-ASProtocolVersions: 2.5,12.0,12.1,14.0,14.1,16.0"
                "\r\nMS-ASProtocolCommands: Sync,FolderSync,Provision,Ping,Settings\r\n",
                NULL, 0);
    } else if (strcmp(cmd, "Provision") == 0) {
        f->provisions++;
        header(req, "X-MS-PolicyKey:", v, sizeof(v));
        if (strcmp(v, "0") == 0)
            respond_wbxml(fd, "<Provision xmlns=\"Provision:\"><Status>1</Status><Policies><Policy>"
                              "<PolicyType>MS-EAS-Provisioning-WBXML</PolicyType><Status>1</Status>"
                              "<PolicyKey>1111</PolicyKey><Data><EASProvisionDoc>"
                              "<DevicePasswordEnabled>1</DevicePasswordEnabled>"
                              "<MinDevicePasswordLength>4</MinDevicePasswordLength>"
                              "</EASProvisionDoc></Data></Policy></Policies></Provision>");
        else if (strcmp(v, "1111") == 0)
            respond_wbxml(fd, "<Provision xmlns=\"Provision:\"><Status>1</Status><Policies><Policy>"
                              "<PolicyType>MS-EAS-Provisioning-WBXML</PolicyType><Status>1</Status>"
                              "<PolicyKey>2222</PolicyKey></Policy></Policies></Provision>");
        else
            respond(fd, 400, "Bad Request", "", NULL, 0);
    } else if (strcmp(cmd, "FolderSync") == 0) {
        header(req, "X-MS-PolicyKey:", v, sizeof(v));
        if (f->foldersyncs++ == 0 || strcmp(v, "2222") != 0)
            respond(fd, 449, "Retry after sending a PROVISION command", "", NULL, 0);
        else
            respond_wbxml(fd, "<FolderSync xmlns=\"FolderHierarchy:\"><Status>1</Status>"
                              "<SyncKey>F1</SyncKey><Changes><Count>2</Count>"
                              "<Add><ServerId>5</ServerId><ParentId>0</ParentId>"
                              "<DisplayName>Inbox</DisplayName><Type>2</Type></Add>"
                              "<Add><ServerId>6</ServerId><ParentId>0</ParentId>"
                              "<DisplayName>Sent Items</DisplayName><Type>5</Type></Add>"
                              "</Changes></FolderSync>");
    } else if (strcmp(cmd, "Sync") == 0) {
        /* The body is WBXML (NUL bytes): look for the inline string of the second SyncKey. */
        if (memmem(he + 4, n - (size_t)(he + 4 - req), "S1", 3) == NULL)
            respond_wbxml(fd, "<Sync xmlns=\"AirSync:\"><Collections><Collection><SyncKey>S1"
                              "</SyncKey><CollectionId>5</CollectionId><Status>1</Status>"
                              "</Collection></Collections></Sync>");
        else
            respond_wbxml(fd, "<Sync xmlns=\"AirSync:\"><Collections><Collection><SyncKey>S2"
                              "</SyncKey><CollectionId>5</CollectionId><Status>1</Status>"
                              "<Commands><Add><ServerId>5:1</ServerId></Add><Add><ServerId>5:2"
                              "</ServerId></Add></Commands></Collection></Collections></Sync>");
    } else if (strcmp(cmd, "Ping") == 0) {
        respond_wbxml(fd, "<Ping xmlns=\"Ping:\"><Status>1</Status></Ping>");
    } else {
        respond(fd, 404, "Not Found", "", NULL, 0);
    }
}

static void *server_main(void *arg)
{
    struct fake *f = arg;
    for (;;) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0 || f->stop) {
            if (fd >= 0)
                close(fd);
            break;
        }
        serve_one(f, fd);
        close(fd);
    }
    return NULL;
}

static void fake_start(struct fake *f)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int one = 1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->lfd, 16), 0);
    getsockname(f->lfd, (struct sockaddr *)&sa, &sl);
    f->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&f->th, NULL, server_main, f), 0);
}

static void fake_stop(struct fake *f)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    f->stop = 1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)f->port);
    connect(fd, (struct sockaddr *)&sa, sizeof(sa)); /* wakes accept() */
    close(fd);
    pthread_join(f->th, NULL);
    close(f->lfd);
}

static int has_line(const struct et_probe_step *s, const char *text)
{
    for (const struct et_probe_line *l = s->details; l != NULL; l = l->next)
        if (strstr(l->text, text) != NULL)
            return 1;
    return 0;
}

struct capture_cb {
    struct et_capfile_writer *w;
    uint64_t last_id;
};

static void on_capture(struct et_exchange *x, struct et_probe_report *r, struct et_probe_step *s,
                       void *arg)
{
    struct capture_cb *cc = arg;
    struct et_error e;
    (void)s;
    assert_int_equal(x->id, cc->last_id + 1);
    cc->last_id = x->id;
    et_error_clear(&e);
    if (et_capfile_write(cc->w, x, &e) == 0)
        r->captured++;
}

static void test_run_full_probe_with_policy_and_449(void **state)
{
    struct fake f;
    struct et_probe_opts o;
    struct et_probe_report *r = NULL;
    struct et_error e;
    char url[128], dir[512], cap[600];
    struct et_source *src = NULL;
    struct et_exchange *x;
    uint64_t n = 0;
    (void)state;

    memset(&f, 0, sizeof(f));
    fake_start(&f);
    assert_non_null(et_test_tmpdir(dir, sizeof(dir)));
    snprintf(cap, sizeof(cap), "%s/probe.cap", dir);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", f.port);
    et_probe_opts_init(&o);
    o.url = url;
    o.user = "EXAMPLE\\jane";
    o.password = "s3cret-pass";
    o.do_sync = 1;
    o.do_ping = 1;
    o.ping_seconds = 5;
    /* The probe reports every exchange; here the callback records them, as the CLI does. */
    struct capture_cb cc = {NULL, 0};
    assert_int_equal(et_capfile_open_append(cap, NULL, &cc.w, &e), 0);
    o.on_exchange = on_capture;
    o.exchange_arg = &cc;
    et_error_clear(&e);
    assert_int_equal(et_probe_run(&o, &r, &e), 0);
    assert_int_equal(et_capfile_close(cc.w, &e), 0);
    assert_int_equal(cc.last_id, 10); /* numbered from 1 */
    fake_stop(&f);

    assert_int_equal(r->steps[ET_PROBE_STEP_CONNECT].result, ET_PROBE_PASSED);
    /* Plain HTTP is a warning, never a pass. */
    assert_int_equal(r->steps[ET_PROBE_STEP_TLS].result, ET_PROBE_WARNED);
    assert_int_equal(r->steps[ET_PROBE_STEP_OPTIONS].result, ET_PROBE_PASSED);
    assert_string_equal(r->protocol, "16.0");
    assert_true(has_line(&r->steps[ET_PROBE_STEP_OPTIONS], "version used: 16.0"));
    assert_int_equal(r->steps[ET_PROBE_STEP_PROVISION].result, ET_PROBE_PASSED);
    assert_true(has_line(&r->steps[ET_PROBE_STEP_PROVISION], "temporary key 1111"));
    assert_true(has_line(&r->steps[ET_PROBE_STEP_PROVISION], "final policy key 2222"));
    assert_non_null(r->steps[ET_PROBE_STEP_PROVISION].xml);
    assert_non_null(strstr(r->steps[ET_PROBE_STEP_PROVISION].xml,
                           "<MinDevicePasswordLength>4</MinDevicePasswordLength>"));
    /* 449 on FolderSync: provision again (2 more Provision requests) and retry once. */
    assert_int_equal(r->steps[ET_PROBE_STEP_FOLDERSYNC].result, ET_PROBE_PASSED);
    assert_true(has_line(&r->steps[ET_PROBE_STEP_FOLDERSYNC], "HTTP 449"));
    assert_true(has_line(&r->steps[ET_PROBE_STEP_FOLDERSYNC], "2 folders"));
    assert_true(has_line(&r->steps[ET_PROBE_STEP_FOLDERSYNC], "Inbox: \"Inbox\" (ServerId 5)"));
    assert_int_equal(f.provisions, 4);
    assert_int_equal(f.foldersyncs, 2);
    assert_int_equal(r->steps[ET_PROBE_STEP_SYNC].result, ET_PROBE_PASSED);
    assert_true(has_line(&r->steps[ET_PROBE_STEP_SYNC], "2 items added"));
    assert_int_equal(r->steps[ET_PROBE_STEP_PING].result, ET_PROBE_PASSED);
    assert_int_equal(et_probe_report_worst(r), ET_PROBE_WARNED);
    /* OPTIONS, Provision x2, FolderSync (449), Provision x2, FolderSync, Sync x2, Ping */
    assert_int_equal(r->exchanges, 10);
    assert_int_equal(r->captured, 10);
    assert_null(r->capture_error);
    /* The server got the real credentials ... */
    assert_non_null(strstr(f.last_auth, "Basic "));

    /* ... the capture holds every exchange, with Authorization redacted. */
    assert_int_equal(et_capfile_open(cap, &src, &e), 0);
    while (et_source_next(src, &x, &e) == 1) {
        const char *auth = et_headers_get(&x->req.headers, "Authorization");
        n++;
        assert_non_null(auth);
        assert_non_null(strstr(auth, "REDACTED"));
        assert_null(strstr(auth, "s3cret"));
        et_exchange_free(x);
    }
    et_source_close(src);
    assert_int_equal(n, 10);
    {
        size_t len = 0;
        unsigned char *raw = et_test_read_file(cap, &len);
        assert_non_null(raw);
        for (size_t i = 0; i + 11 <= len; i++)
            assert_false(memcmp(raw + i, "s3cret-pass", 11) == 0);
        free(raw);
    }
    et_probe_report_free(r);
    et_test_rmtree(dir);
}

static void test_run_autodiscover_gives_the_url(void **state)
{
    struct fake f;
    struct et_probe_opts o;
    struct et_probe_report *r = NULL;
    struct et_error e;
    char ad[128], want[128];
    (void)state;

    memset(&f, 0, sizeof(f));
    fake_start(&f);
    snprintf(ad, sizeof(ad), "http://127.0.0.1:%d/autodiscover/autodiscover.xml", f.port);
    snprintf(want, sizeof(want), "http://127.0.0.1:%d/Microsoft-Server-ActiveSync", f.port);
    et_probe_opts_init(&o);
    o.autodiscover = "jane@example.test";
    o.autodiscover_url = ad;
    o.user = "jane@example.test";
    o.password = "pw";
    et_error_clear(&e);
    assert_int_equal(et_probe_run(&o, &r, &e), 0);
    fake_stop(&f);
    assert_int_equal(r->steps[ET_PROBE_STEP_AUTODISCOVER].result, ET_PROBE_PASSED);
    assert_true(has_line(&r->steps[ET_PROBE_STEP_AUTODISCOVER], "answered: EAS URL"));
    assert_string_equal(r->url, want);
    assert_int_equal(r->steps[ET_PROBE_STEP_FOLDERSYNC].result, ET_PROBE_PASSED);
    et_probe_report_free(r);
}

static void test_run_401_windows_only_explained(void **state)
{
    struct fake f;
    struct et_probe_opts o;
    struct et_probe_report *r = NULL;
    struct et_error e;
    char url[128];
    const struct et_probe_step *s;
    (void)state;

    memset(&f, 0, sizeof(f));
    f.mode_401 = 1;
    fake_start(&f);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/Microsoft-Server-ActiveSync", f.port);
    et_probe_opts_init(&o);
    o.url = url;
    o.user = "jane";
    o.password = "pw";
    et_error_clear(&e);
    assert_int_equal(et_probe_run(&o, &r, &e), 0);
    fake_stop(&f);
    s = &r->steps[ET_PROBE_STEP_OPTIONS];
    assert_int_equal(s->result, ET_PROBE_FAILED);
    assert_non_null(strstr(s->reason, "HTTP 401"));
    assert_non_null(strstr(s->reason, "Windows authentication"));
    assert_non_null(strstr(s->next_step, "Basic authentication"));
    assert_int_equal(r->steps[ET_PROBE_STEP_PROVISION].result, ET_PROBE_SKIPPED);
    assert_string_equal(r->steps[ET_PROBE_STEP_PROVISION].reason, "OPTIONS failed");
    assert_int_equal(et_probe_report_worst(r), ET_PROBE_FAILED);
    et_probe_report_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_full_probe_with_policy_and_449),
        cmocka_unit_test(test_run_autodiscover_gives_the_url),
        cmocka_unit_test(test_run_401_windows_only_explained),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
