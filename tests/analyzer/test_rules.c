/*
 * Analyzer rules: every rule fires on a scenario built to trigger it and stays silent on its
 * negative twin; a healthy session produces no warning or error. Scenarios are built from XML
 * bodies encoded to WBXML with the decoder's own tables, so the analyzer sees what a capture
 * would hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "eastrace/analyzer.h"
#include "eastrace/wbxml.h"

#define T0 1714557600000000LL /* 2024-05-01T10:00:00Z */
#define SEC 1000000LL

struct run {
    struct et_analyzer *an;
    uint64_t next_id;
    /* Rule ids seen, with severities. */
    char rules[256][40];
    int sevs[256];
    size_t nrules;
    int max_sev;
};

static void run_init(struct run *r, const struct et_analyzer_opts *o)
{
    memset(r, 0, sizeof(*r));
    r->an = et_analyzer_new(o);
    assert_non_null(r->an);
    r->max_sev = -1;
}

static void record(struct run *r, const struct et_finding *f)
{
    for (; f != NULL; f = f->next) {
        assert_non_null(f->rule);
        assert_non_null(f->message);
        assert_non_null(f->next_step);
        assert_true(strlen(f->next_step) > 10);
        if (r->nrules < 256) {
            snprintf(r->rules[r->nrules], sizeof(r->rules[0]), "%s", f->rule);
            r->sevs[r->nrules++] = (int)f->severity;
        }
        if ((int)f->severity > r->max_sev)
            r->max_sev = (int)f->severity;
    }
}

static int count_rule(const struct run *r, const char *rule)
{
    int n = 0;
    for (size_t i = 0; i < r->nrules; i++)
        if (strcmp(r->rules[i], rule) == 0)
            n++;
    return n;
}

static int rule_severity(const struct run *r, const char *rule)
{
    for (size_t i = 0; i < r->nrules; i++)
        if (strcmp(r->rules[i], rule) == 0)
            return r->sevs[i];
    return -1;
}

static void set_wbxml_body(struct et_exchange *x, struct et_headers *h, struct et_body *b,
                           const char *xml)
{
    struct et_buf w;
    struct et_error e;
    et_buf_init(&w, 0);
    et_error_clear(&e);
    if (et_wbxml_encode(xml, strlen(xml), &w, &e) != 0)
        fail_msg("fixture XML does not encode: %s", e.msg);
    assert_int_equal(et_body_set(b, x->arena, w.data, w.len), 0);
    assert_int_equal(et_headers_add(h, x->arena, "Content-Type", 12,
                                    "application/vnd.ms-sync.wbxml", 29), 0);
    et_buf_free(&w);
}

/*
 * Feeds one EAS exchange: cmd from device at time t, HTTP status, request/response XML
 * (NULL for none). Extra response headers as "Name: value" (NULL for none).
 */
static void feed(struct run *r, const char *device, int64_t t, const char *method,
                 const char *cmd, int http, const char *req_xml, const char *resp_xml,
                 const char *resp_header)
{
    struct et_exchange *x = et_exchange_new();
    struct et_view v;
    struct et_finding *f = NULL;
    char target[256];

    assert_non_null(x);
    x->id = ++r->next_id;
    x->source = ET_SRC_CAPTURE;
    x->has_request = 1;
    x->has_response = http > 0;
    x->host = "mail.example.com";
    x->t.req_begin = t;
    x->t.resp_end = t + 50000;
    x->req.method = method;
    snprintf(target, sizeof(target),
             "/Microsoft-Server-ActiveSync?Cmd=%s&User=alice&DeviceId=%s&DeviceType=iPhone",
             cmd, device);
    x->req.target = et_arena_strdup(x->arena, target);
    et_headers_add(&x->req.headers, x->arena, "MS-ASProtocolVersion", 20, "14.1", 4);
    et_headers_add(&x->req.headers, x->arena, "Authorization", 13, "Basic YWxpY2U6cHc=", 18);
    if (req_xml != NULL)
        set_wbxml_body(x, &x->req.headers, &x->req.body, req_xml);
    x->resp.status = http;
    if (resp_xml != NULL)
        set_wbxml_body(x, &x->resp.headers, &x->resp.body, resp_xml);
    if (resp_header != NULL) {
        const char *c = strchr(resp_header, ':');
        assert_non_null(c);
        et_headers_add(&x->resp.headers, x->arena, resp_header, (size_t)(c - resp_header),
                       c + 1, strlen(c + 1));
    }
    assert_int_equal(et_view_build(x, x->arena, &v), 0);
    assert_int_equal(et_analyzer_feed(r->an, x, &v, x->arena, &f), 0);
    record(r, f);
    et_view_reset(&v);
    et_exchange_free(x);
}

static void finish(struct run *r)
{
    struct et_finding *f = NULL;
    assert_int_equal(et_analyzer_finish(r->an, &f), 0);
    record(r, f);
}

static void run_free(struct run *r)
{
    et_analyzer_free(r->an);
}

/* ---- documents ------------------------------------------------------------------------ */

#define SYNC_REQ(key, coll)                                                                    \
    "<Sync xmlns=\"AirSync:\"><Collections><Collection><SyncKey>" key                          \
    "</SyncKey><CollectionId>" coll "</CollectionId></Collection></Collections></Sync>"
#define SYNC_RESP(key, coll, status)                                                           \
    "<Sync xmlns=\"AirSync:\"><Collections><Collection><SyncKey>" key                          \
    "</SyncKey><CollectionId>" coll "</CollectionId><Status>" status                           \
    "</Status></Collection></Collections></Sync>"
#define PING_REQ(hb)                                                                           \
    "<Ping xmlns=\"Ping:\"><HeartbeatInterval>" hb "</HeartbeatInterval><Folders><Folder>"     \
    "<Id>7</Id><Class>Email</Class></Folder></Folders></Ping>"
#define PING_RESP(st) "<Ping xmlns=\"Ping:\"><Status>" st "</Status></Ping>"
#define FS_REQ(key) "<FolderSync xmlns=\"FolderHierarchy:\"><SyncKey>" key "</SyncKey></FolderSync>"
#define FS_RESP(key, st)                                                                       \
    "<FolderSync xmlns=\"FolderHierarchy:\"><Status>" st "</Status><SyncKey>" key              \
    "</SyncKey><Changes><Count>1</Count><Add><ServerId>7</ServerId><ParentId>0</ParentId>"     \
    "<DisplayName>Inbox</DisplayName><Type>2</Type></Add></Changes></FolderSync>"
#define PROV_REQ                                                                               \
    "<Provision xmlns=\"Provision:\"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML" \
    "</PolicyType></Policy></Policies></Provision>"
#define PROV_RESP(st)                                                                          \
    "<Provision xmlns=\"Provision:\"><Status>" st "</Status><Policies><Policy><PolicyType>"   \
    "MS-EAS-Provisioning-WBXML</PolicyType><Status>1</Status><PolicyKey>1307199584"           \
    "</PolicyKey></Policy></Policies></Provision>"
#define SENDMAIL_RESP(st) "<SendMail xmlns=\"ComposeMail:\"><Status>" st "</Status></SendMail>"

/* A healthy session: OPTIONS, Provision, FolderSync, Syncs, Pings 1 and 2, a SendMail answered
 * 200 with an empty body. */
static void healthy_session(struct run *r, const char *dev, int64_t t)
{
    feed(r, dev, t, "OPTIONS", "", 200, NULL, NULL, "MS-ASProtocolVersions: 2.5,12.0,14.1");
    feed(r, dev, t + 1 * SEC, "POST", "Provision", 200, PROV_REQ, PROV_RESP("1"), NULL);
    feed(r, dev, t + 2 * SEC, "POST", "FolderSync", 200, FS_REQ("0"), FS_RESP("1", "1"), NULL);
    feed(r, dev, t + 3 * SEC, "POST", "Sync", 200, SYNC_REQ("0", "7"), SYNC_RESP("11", "7", "1"),
         NULL);
    feed(r, dev, t + 4 * SEC, "POST", "Sync", 200, SYNC_REQ("11", "7"),
         SYNC_RESP("12", "7", "1"), NULL);
    feed(r, dev, t + 5 * SEC, "POST", "Sync", 200, SYNC_REQ("12", "7"), NULL, NULL);
    feed(r, dev, t + 6 * SEC, "POST", "Ping", 200, PING_REQ("900"), PING_RESP("1"), NULL);
    feed(r, dev, t + 906 * SEC, "POST", "Ping", 200, PING_REQ("900"), PING_RESP("2"), NULL);
    feed(r, dev, t + 907 * SEC, "POST", "Sync", 200, SYNC_REQ("12", "7"),
         SYNC_RESP("13", "7", "1"), NULL);
    feed(r, dev, t + 908 * SEC, "POST", "SendMail", 200, NULL, NULL, NULL);
}

static void test_healthy_session_has_no_warning(void **state)
{
    struct run r;
    (void)state;
    run_init(&r, NULL);
    healthy_session(&r, "HEALTHY1", T0);
    finish(&r);
    for (size_t i = 0; i < r.nrules; i++)
        print_message("unexpected finding: %s\n", r.rules[i]);
    assert_true(r.max_sev < ET_SEV_WARNING);
    run_free(&r);
}

static void test_http_status_explains_each_code(void **state)
{
    struct run r;
    (void)state;
    run_init(&r, NULL);
    feed(&r, "D1", T0, "POST", "Sync", 401, SYNC_REQ("5", "7"), NULL, NULL);
    feed(&r, "D2", T0, "POST", "Sync", 403, SYNC_REQ("5", "7"), NULL, NULL);
    feed(&r, "D3", T0, "POST", "Sync", 449, SYNC_REQ("5", "7"), NULL, NULL);
    feed(&r, "D4", T0, "POST", "Sync", 451, SYNC_REQ("5", "7"), NULL,
         "X-MS-Location: https://other.example.com/Microsoft-Server-ActiveSync");
    feed(&r, "D5", T0, "POST", "Sync", 500, SYNC_REQ("5", "7"), NULL, NULL);
    feed(&r, "D6", T0, "POST", "Sync", 503, SYNC_REQ("5", "7"), NULL,
         "X-MS-ASThrottle: TooManyJobsQueued");
    feed(&r, "D7", T0, "POST", "Sync", 507, SYNC_REQ("5", "7"), NULL, NULL);
    feed(&r, "D8", T0, "POST", "Sync", 409, SYNC_REQ("5", "7"), NULL, NULL);
    assert_int_equal(count_rule(&r, "http-status"), 8);
    /* Each code once, with the severities the guides imply. */
    assert_int_equal(r.sevs[0], ET_SEV_ERROR);   /* 401 with credentials */
    assert_int_equal(r.sevs[1], ET_SEV_ERROR);   /* 403 */
    assert_int_equal(r.sevs[2], ET_SEV_INFO);    /* one 449 is the normal provisioning dance */
    assert_int_equal(r.sevs[3], ET_SEV_WARNING); /* 451 */
    assert_int_equal(r.sevs[4], ET_SEV_ERROR);   /* 500 */
    assert_int_equal(r.sevs[5], ET_SEV_WARNING); /* 503 throttled */
    assert_int_equal(r.sevs[6], ET_SEV_ERROR);   /* 507 */
    run_free(&r);
}

static void test_sync_status_per_collection(void **state)
{
    struct run r;
    (void)state;
    run_init(&r, NULL);
    feed(&r, "D1", T0, "POST", "Sync", 200, SYNC_REQ("44", "7"), SYNC_RESP("0", "7", "3"), NULL);
    assert_int_equal(count_rule(&r, "sync-status"), 1);
    assert_true(rule_severity(&r, "sync-status") >= ET_SEV_WARNING);
    /* Negative: Status 1. */
    run_free(&r);
    run_init(&r, NULL);
    feed(&r, "D1", T0, "POST", "Sync", 200, SYNC_REQ("44", "7"), SYNC_RESP("45", "7", "1"),
         NULL);
    assert_int_equal(count_rule(&r, "sync-status"), 0);
    run_free(&r);
}

static void test_sendmail_status_next_steps(void **state)
{
    struct run r;
    struct et_exchange *x;
    (void)state;
    run_init(&r, NULL);
    feed(&r, "D1", T0, "POST", "SendMail", 200, NULL, SENDMAIL_RESP("129"), NULL);
    feed(&r, "D2", T0, "POST", "SendMail", 200, NULL, SENDMAIL_RESP("126"), NULL);
    feed(&r, "D3", T0, "POST", "SmartReply", 200, NULL,
         "<SmartReply xmlns=\"ComposeMail:\"><Status>120</Status></SmartReply>", NULL);
    assert_int_equal(count_rule(&r, "sendmail-status"), 3);
    assert_int_equal(rule_severity(&r, "sendmail-status"), ET_SEV_ERROR);
    run_free(&r);

    /* The next step names the organization settings for 129 and ActiveSyncEnabled for 126. */
    x = et_exchange_new();
    assert_non_null(x);
    {
        struct et_analyzer *an = et_analyzer_new(NULL);
        struct et_view v;
        struct et_finding *f;
        x->has_request = x->has_response = 1;
        x->req.method = "POST";
        x->req.target = "/Microsoft-Server-ActiveSync?Cmd=SendMail&User=a&DeviceId=X&DeviceType=Y";
        x->resp.status = 200;
        set_wbxml_body(x, &x->resp.headers, &x->resp.body, SENDMAIL_RESP("129"));
        assert_int_equal(et_view_build(x, x->arena, &v), 0);
        assert_int_equal(et_analyzer_feed(an, x, &v, x->arena, &f), 0);
        assert_non_null(f);
        assert_non_null(strstr(f->next_step, "DefaultAccessLevel"));
        assert_non_null(strstr(f->next_step, "ActiveSyncBlockedDeviceIDs"));
        assert_non_null(strstr(f->message, "129"));
        et_view_reset(&v);
        et_analyzer_free(an);
    }
    et_exchange_free(x);
}

static void test_ping_status_above_two(void **state)
{
    struct run r;
    (void)state;
    run_init(&r, NULL);
    feed(&r, "D1", T0, "POST", "Ping", 200, PING_REQ("4000"),
         "<Ping xmlns=\"Ping:\"><Status>5</Status><HeartbeatInterval>3540</HeartbeatInterval>"
         "</Ping>",
         NULL);
    feed(&r, "D2", T0, "POST", "Ping", 200, PING_REQ("600"),
         "<Ping xmlns=\"Ping:\"><Status>6</Status><MaxFolders>300</MaxFolders></Ping>", NULL);
    feed(&r, "D3", T0, "POST", "Ping", 200, PING_REQ("600"), PING_RESP("8"), NULL);
    assert_int_equal(count_rule(&r, "ping-status"), 3);
    run_free(&r);
    run_init(&r, NULL);
    feed(&r, "D1", T0, "POST", "Ping", 200, PING_REQ("600"), PING_RESP("1"), NULL);
    feed(&r, "D1", T0 + 600 * SEC, "POST", "Ping", 200, PING_REQ("600"), PING_RESP("2"), NULL);
    assert_int_equal(count_rule(&r, "ping-status"), 0);
    run_free(&r);
}

static void test_synckey_reset_loop_notes_500s(void **state)
{
    struct run r;
    (void)state;
    run_init(&r, NULL);
    for (int i = 0; i < 4; i++) {
        int64_t t = T0 + i * 120 * SEC;
        feed(&r, "LOOP1", t, "POST", "Sync", 500, SYNC_REQ("22", "7"), NULL, NULL);
        feed(&r, "LOOP1", t + SEC, "POST", "Sync", 200, SYNC_REQ("0", "7"),
             SYNC_RESP("1", "7", "1"), NULL);
    }
    assert_int_equal(count_rule(&r, "synckey-reset-loop"), 1);
    assert_int_equal(rule_severity(&r, "synckey-reset-loop"), ET_SEV_ERROR);
    run_free(&r);
    /* Negative: one initial SyncKey 0 per collection is normal. */
    run_init(&r, NULL);
    feed(&r, "OK1", T0, "POST", "Sync", 200, SYNC_REQ("0", "7"), SYNC_RESP("1", "7", "1"), NULL);
    feed(&r, "OK1", T0 + SEC, "POST", "Sync", 200, SYNC_REQ("0", "8"), SYNC_RESP("1", "8", "1"),
         NULL);
    assert_int_equal(count_rule(&r, "synckey-reset-loop"), 0);
    run_free(&r);
}

static void test_synckey_repeat_only_when_server_moved_on(void **state)
{
    struct run r;
    (void)state;
    run_init(&r, NULL);
    /* The server answers a new key each time, the device keeps sending the old one. */
    for (int i = 0; i < 5; i++)
        feed(&r, "REP1", T0 + i * 10 * SEC, "POST", "Sync", 200, SYNC_REQ("50", "7"),
             SYNC_RESP("51", "7", "1"), NULL);
    assert_int_equal(count_rule(&r, "synckey-repeat"), 1);
    run_free(&r);
    /* Negative: empty "no changes" answers keep the key legitimately. */
    run_init(&r, NULL);
    for (int i = 0; i < 8; i++)
        feed(&r, "REP2", T0 + i * 10 * SEC, "POST", "Sync", 200, SYNC_REQ("50", "7"), NULL,
             NULL);
    assert_int_equal(count_rule(&r, "synckey-repeat"), 0);
    run_free(&r);
}

static void test_request_storm_threshold(void **state)
{
    struct run r;
    struct et_analyzer_opts o;
    (void)state;
    et_analyzer_opts_default(&o);
    run_init(&r, &o);
    /* 61 requests in 59 s: one storm. */
    for (int i = 0; i < 61; i++)
        feed(&r, "STORM", T0 + (int64_t)i * 980000, "POST", "Ping", 200, PING_REQ("600"),
             PING_RESP("1"), NULL);
    assert_int_equal(count_rule(&r, "request-storm"), 1);
    run_free(&r);
    /* Negative: 60 requests spread over two minutes. */
    run_init(&r, &o);
    for (int i = 0; i < 60; i++)
        feed(&r, "CALM", T0 + (int64_t)i * 2 * SEC, "POST", "Ping", 200, PING_REQ("600"),
             PING_RESP("1"), NULL);
    assert_int_equal(count_rule(&r, "request-storm"), 0);
    run_free(&r);
    /* A lower configured threshold fires earlier. */
    o.storm_per_minute = 10;
    run_init(&r, &o);
    for (int i = 0; i < 11; i++)
        feed(&r, "STORM2", T0 + (int64_t)i * SEC, "POST", "Ping", 200, PING_REQ("600"),
             PING_RESP("1"), NULL);
    assert_int_equal(count_rule(&r, "request-storm"), 1);
    run_free(&r);
}

static void test_high_usage_per_day(void **state)
{
    struct run r;
    (void)state;
    run_init(&r, NULL);
    for (int i = 0; i < 1600; i++)
        feed(&r, "BUSY", T0 + (int64_t)i * 30 * SEC, "POST", "Sync", 200, SYNC_REQ("9", "7"),
             NULL, NULL);
    finish(&r);
    assert_int_equal(count_rule(&r, "high-usage"), 1);
    assert_int_equal(rule_severity(&r, "high-usage"), ET_SEV_WARNING);
    run_free(&r);
    run_init(&r, NULL);
    for (int i = 0; i < 900; i++)
        feed(&r, "NORMAL", T0 + (int64_t)i * 60 * SEC, "POST", "Sync", 200, SYNC_REQ("9", "7"),
             NULL, NULL);
    finish(&r);
    assert_int_equal(count_rule(&r, "high-usage"), 0);
    run_free(&r);
}

static void test_provisioning_loop(void **state)
{
    struct run r;
    (void)state;
    run_init(&r, NULL);
    for (int i = 0; i < 3; i++) {
        feed(&r, "PROV", T0 + i * 10 * SEC, "POST", "FolderSync", 449, FS_REQ("0"), NULL, NULL);
        feed(&r, "PROV", T0 + i * 10 * SEC + SEC, "POST", "Provision", 200, PROV_REQ,
             PROV_RESP("1"), NULL);
    }
    assert_int_equal(count_rule(&r, "provisioning-loop"), 1);
    run_free(&r);
    /* Negative: one 449, provision, then the command succeeds. */
    run_init(&r, NULL);
    feed(&r, "PROV", T0, "POST", "FolderSync", 449, FS_REQ("0"), NULL, NULL);
    feed(&r, "PROV", T0 + SEC, "POST", "Provision", 200, PROV_REQ, PROV_RESP("1"), NULL);
    feed(&r, "PROV", T0 + 2 * SEC, "POST", "FolderSync", 200, FS_REQ("0"), FS_RESP("1", "1"),
         NULL);
    feed(&r, "PROV", T0 + 99 * SEC, "POST", "FolderSync", 449, FS_REQ("1"), NULL, NULL);
    feed(&r, "PROV", T0 + 100 * SEC, "POST", "Provision", 200, PROV_REQ, PROV_RESP("1"), NULL);
    feed(&r, "PROV", T0 + 101 * SEC, "POST", "FolderSync", 200, FS_REQ("1"), FS_RESP("2", "1"),
         NULL);
    assert_int_equal(count_rule(&r, "provisioning-loop"), 0);
    run_free(&r);
}

static void test_auth_failures_repeated(void **state)
{
    struct run r;
    (void)state;
    run_init(&r, NULL);
    for (int i = 0; i < 3; i++)
        feed(&r, "AUTH", T0 + i * SEC, "POST", "Sync", 401, SYNC_REQ("3", "7"), NULL, NULL);
    assert_int_equal(count_rule(&r, "auth-failures"), 1);
    run_free(&r);
    run_init(&r, NULL);
    feed(&r, "AUTH", T0, "POST", "Sync", 401, SYNC_REQ("3", "7"), NULL, NULL);
    feed(&r, "AUTH", T0 + SEC, "POST", "Sync", 200, SYNC_REQ("3", "7"), NULL, NULL);
    feed(&r, "AUTH", T0 + 2 * SEC, "POST", "Sync", 401, SYNC_REQ("3", "7"), NULL, NULL);
    assert_int_equal(count_rule(&r, "auth-failures"), 0);
    run_free(&r);
}

static void test_heartbeat_out_of_range(void **state)
{
    struct run r;
    (void)state;
    /* No answer says whether the server accepts 30 s: the usual range judges. */
    run_init(&r, NULL);
    feed(&r, "HB", T0, "POST", "Ping", 0, PING_REQ("30"), NULL, NULL);
    feed(&r, "HB", T0 + 30 * SEC, "POST", "Ping", 0, PING_REQ("30"), NULL, NULL);
    assert_int_equal(count_rule(&r, "heartbeat-range"), 1);
    run_free(&r);
    run_init(&r, NULL);
    feed(&r, "HB", T0, "POST", "Ping", 200, PING_REQ("480"), PING_RESP("1"), NULL);
    assert_int_equal(count_rule(&r, "heartbeat-range"), 0);
    run_free(&r);
    /* The server's own answers count: 30 s answered Status 1 and 2 is accepted. */
    run_init(&r, NULL);
    feed(&r, "HB", T0, "POST", "Ping", 200, PING_REQ("30"), PING_RESP("1"), NULL);
    feed(&r, "HB", T0 + 30 * SEC, "POST", "Ping", 200, PING_REQ("30"), PING_RESP("2"), NULL);
    assert_int_equal(count_rule(&r, "heartbeat-range"), 0);
    run_free(&r);
    /* Status 5 with the limit, then the device complies: a note on the Status 5, nothing
     * else. */
    run_init(&r, NULL);
    feed(&r, "HB", T0, "POST", "Ping", 200, PING_REQ("4000"),
         "<Ping xmlns=\"Ping:\"><Status>5</Status><HeartbeatInterval>3540</HeartbeatInterval>"
         "</Ping>",
         NULL);
    feed(&r, "HB", T0 + SEC, "POST", "Ping", 200, PING_REQ("3540"), PING_RESP("1"), NULL);
    assert_int_equal(count_rule(&r, "heartbeat-range"), 0);
    assert_int_equal(rule_severity(&r, "ping-status"), ET_SEV_INFO);
    assert_int_equal(r.max_sev, ET_SEV_INFO);
    run_free(&r);
    /* ... or it does not (below the server's minimum, asked again). */
    run_init(&r, NULL);
    feed(&r, "HB", T0, "POST", "Ping", 200, PING_REQ("20"),
         "<Ping xmlns=\"Ping:\"><Status>5</Status><HeartbeatInterval>120</HeartbeatInterval>"
         "</Ping>",
         NULL);
    feed(&r, "HB", T0 + SEC, "POST", "Ping", 200, PING_REQ("20"), PING_RESP("1"), NULL);
    assert_int_equal(count_rule(&r, "heartbeat-range"), 1);
    assert_int_equal(rule_severity(&r, "heartbeat-range"), ET_SEV_WARNING);
    run_free(&r);
}

/* A SyncKey 0 that never got a key (449, 401, 404, 5xx answers) is a retry, not a reset. */
static void test_synckey_reset_loop_needs_an_issued_key(void **state)
{
    static const int answers[] = {449, 401, 404, 500, 503, 449, 401};
    struct run r;
    (void)state;
    run_init(&r, NULL);
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++)
        feed(&r, "RETRY", T0 + (int64_t)i * 10 * SEC, "POST", "Sync", answers[i],
             SYNC_REQ("0", "7"), NULL, NULL);
    feed(&r, "RETRY", T0 + 100 * SEC, "POST", "Sync", 200, SYNC_REQ("0", "7"),
         SYNC_RESP("1", "7", "1"), NULL);
    assert_int_equal(count_rule(&r, "synckey-reset-loop"), 0);
    /* Three SyncKey 0 after keys were issued are. */
    for (int i = 0; i < 3; i++)
        feed(&r, "RETRY", T0 + (101 + i) * SEC, "POST", "Sync", 200, SYNC_REQ("0", "7"),
             SYNC_RESP("1", "7", "1"), NULL);
    assert_int_equal(count_rule(&r, "synckey-reset-loop"), 1);
    run_free(&r);
    /* The folder hierarchy the same way. */
    run_init(&r, NULL);
    for (int i = 0; i < 5; i++)
        feed(&r, "FSR", T0 + i * SEC, "POST", "FolderSync", 449, FS_REQ("0"), NULL, NULL);
    assert_int_equal(count_rule(&r, "synckey-reset-loop"), 0);
    run_free(&r);
}

/* Exchange's diagnostic headers reach the view, the JSON and cas-error; folder names from the
 * device's FolderSync reach the view, the findings and the JSON. */
static void test_cas_error_and_folder_names(void **state)
{
    struct et_analyzer *an = et_analyzer_new(NULL);
    struct et_exchange *x[3];
    struct et_view v[3];
    struct et_finding *f[3];
    struct et_buf j;
    (void)state;
    assert_non_null(an);
    for (int i = 0; i < 3; i++) {
        static const char *const cmds[] = {"FolderSync", "Sync", "Sync"};
        char target[160];
        x[i] = et_exchange_new();
        assert_non_null(x[i]);
        x[i]->id = (uint64_t)i + 1;
        x[i]->has_request = x[i]->has_response = 1;
        x[i]->req.method = "POST";
        x[i]->t.req_begin = T0 + i * SEC;
        snprintf(target, sizeof(target),
                 "/Microsoft-Server-ActiveSync?Cmd=%s&User=a&DeviceId=FN1&DeviceType=Y", cmds[i]);
        x[i]->req.target = et_arena_strdup(x[i]->arena, target);
    }
    set_wbxml_body(x[0], &x[0]->req.headers, &x[0]->req.body, FS_REQ("0"));
    x[0]->resp.status = 200;
    set_wbxml_body(x[0], &x[0]->resp.headers, &x[0]->resp.body, FS_RESP("1", "1"));
    set_wbxml_body(x[1], &x[1]->req.headers, &x[1]->req.body, SYNC_REQ("9", "7"));
    x[1]->resp.status = 200;
    set_wbxml_body(x[1], &x[1]->resp.headers, &x[1]->resp.body, SYNC_RESP("0", "7", "3"));
    set_wbxml_body(x[2], &x[2]->req.headers, &x[2]->req.body, SYNC_REQ("9", "7"));
    x[2]->resp.status = 404;
    et_headers_add(&x[2]->resp.headers, x[2]->arena, "X-CasErrorCode", 14,
                   "MailboxGuidWithDomainNotFound", 29);
    et_headers_add(&x[2]->resp.headers, x[2]->arena, "X-FEServer", 10, "CAS01", 5);
    /* "mailbox moved" in base64 */
    et_headers_add(&x[2]->resp.headers, x[2]->arena, "X-FailureContext", 16,
                   "bWFpbGJveCBtb3ZlZA==", 20);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(et_view_build(x[i], x[i]->arena, &v[i]), 0);
        assert_int_equal(et_analyzer_feed(an, x[i], &v[i], x[i]->arena, &f[i]), 0);
    }
    /* The Sync's collection 7 is the Inbox the FolderSync named. */
    assert_string_equal(v[1].colls[0].folder_name, "Inbox");
    assert_non_null(f[1]);
    assert_string_equal(f[1]->rule, "sync-status");
    assert_non_null(strstr(f[1]->message, "collection Inbox (7)"));
    /* cas-error with the decoded failure context. */
    assert_string_equal(v[2].exdiag.cas_error, "MailboxGuidWithDomainNotFound");
    assert_string_equal(v[2].exdiag.failure_context, "mailbox moved");
    assert_true(v[2].exdiag.present);
    {
        const struct et_finding *g;
        int seen = 0;
        for (g = f[2]; g != NULL; g = g->next)
            if (strcmp(g->rule, "cas-error") == 0) {
                seen = 1;
                assert_non_null(strstr(g->message, "front end CAS01"));
                assert_non_null(strstr(g->message, "mailbox moved"));
                assert_non_null(strstr(g->next_step, "Exchange Online"));
                assert_int_equal(g->severity, ET_SEV_ERROR);
            }
        assert_true(seen);
    }
    et_buf_init(&j, 0);
    assert_int_equal(et_exchange_json(x[2], &v[2], f[2], 3, &j), 0);
    assert_int_equal(et_buf_putc(&j, '\0'), 0);
    assert_non_null(strstr((char *)j.data, "\"cas_error\":\"MailboxGuidWithDomainNotFound\""));
    assert_non_null(strstr((char *)j.data, "\"failure_context\":\"mailbox moved\""));
    assert_non_null(strstr((char *)j.data, "\"name\":\"Inbox\""));
    et_buf_free(&j);
    for (int i = 0; i < 3; i++) {
        et_view_reset(&v[i]);
        et_exchange_free(x[i]);
    }
    et_analyzer_free(an);
}

static void test_threshold_options_parse(void **state)
{
    struct et_analyzer_opts o;
    (void)state;
    et_analyzer_opts_default(&o);
    assert_int_equal(o.slow_ms, 10000);
    assert_int_equal(o.longpoll_cut_repeat, 3);
    assert_int_equal(o.foldersync_grace, 2);
    assert_int_equal(et_analyzer_opt_parse(&o, "--slow-ms", "2500"), 1);
    assert_int_equal(o.slow_ms, 2500);
    assert_int_equal(et_analyzer_opt_parse(&o, "--longpoll-cut", "5"), 1);
    assert_int_equal(o.longpoll_cut_repeat, 5);
    assert_int_equal(et_analyzer_opt_parse(&o, "--foldersync-grace", "1"), 1);
    assert_int_equal(o.foldersync_grace, 1);
    assert_int_equal(et_analyzer_opt_parse(&o, "--slow-ms", "0"), ET_EINVAL);
    assert_int_equal(et_analyzer_opt_parse(&o, "--slow-ms", "12x"), ET_EINVAL);
    assert_int_equal(et_analyzer_opt_parse(&o, "--slow-ms", NULL), ET_EINVAL);
    assert_int_equal(et_analyzer_opt_parse(&o, "--device", "X"), 0);
    assert_non_null(strstr(et_analyzer_opts_help(), "--slow-ms"));
}

/* The next step of a command's Status names that command's protocol section. */
static void test_status_next_step_names_the_command(void **state)
{
    struct et_analyzer *an = et_analyzer_new(NULL);
    struct et_exchange *x = et_exchange_new();
    struct et_view v;
    struct et_finding *f;
    (void)state;
    assert_non_null(an);
    assert_non_null(x);
    x->has_request = x->has_response = 1;
    x->req.method = "POST";
    x->req.target = "/Microsoft-Server-ActiveSync?Cmd=Search&User=a&DeviceId=X&DeviceType=Y";
    x->resp.status = 200;
    set_wbxml_body(x, &x->resp.headers, &x->resp.body,
                   "<Search xmlns=\"Search:\"><Status>1</Status><Response><Store><Status>6"
                   "</Status></Store></Response></Search>");
    assert_int_equal(et_view_build(x, x->arena, &v), 0);
    assert_int_equal(et_analyzer_feed(an, x, &v, x->arena, &f), 0);
    assert_non_null(f);
    assert_string_equal(f->rule, "command-status");
    assert_non_null(strstr(f->next_step, "MS-ASCMD Search"));
    assert_null(strstr(f->next_step, "Sync"));
    et_view_reset(&v);
    et_exchange_free(x);
    et_analyzer_free(an);
}

static void test_exchange_error_and_throttling_header(void **state)
{
    struct run r;
    struct et_exchange *x = et_exchange_new();
    struct et_view v;
    struct et_finding *f;
    (void)state;
    run_init(&r, NULL);
    x->id = 1;
    x->has_request = 1;
    x->req.method = "POST";
    x->req.target = "/Microsoft-Server-ActiveSync?Cmd=Ping&User=a&DeviceId=E1&DeviceType=T";
    et_exchange_fail(x, ET_ECERT, ET_STAGE_UPSTREAM_TLS, "certificate has expired");
    assert_int_equal(et_view_build(x, x->arena, &v), 0);
    assert_int_equal(et_analyzer_feed(r.an, x, &v, x->arena, &f), 0);
    record(&r, f);
    assert_int_equal(count_rule(&r, "exchange-error"), 1);
    assert_non_null(strstr(f->next_step, "certificate"));
    et_view_reset(&v);
    et_exchange_free(x);
    /* Throttling announced on a 200 answer. */
    feed(&r, "THR", T0, "POST", "Sync", 200, SYNC_REQ("3", "7"), NULL,
         "X-MS-ASThrottle: CommandFrequency");
    assert_int_equal(count_rule(&r, "throttling"), 1);
    run_free(&r);
}

static void test_device_stats_and_json(void **state)
{
    struct run r;
    const struct et_device_stats *st;
    size_t n;
    struct et_exchange *x;
    struct et_view v;
    struct et_finding *f;
    struct et_buf out;
    (void)state;
    run_init(&r, NULL);
    healthy_session(&r, "STATS", T0);
    n = et_analyzer_devices(r.an, &st);
    assert_int_equal(n, 1);
    assert_string_equal(st[0].device, "STATS");
    assert_int_equal(st[0].requests, 10);
    assert_int_equal(st[0].cmd_counts[0], 4); /* Sync */
    assert_int_equal(st[0].cmd_counts[1], 2); /* Ping */
    assert_string_equal(st[0].device_type, "iPhone");
    run_free(&r);

    x = et_exchange_new();
    x->id = 7;
    x->has_request = x->has_response = 1;
    x->host = "mail.example.com";
    x->client_addr = "192.0.2.7:50000";
    x->t.req_begin = T0;
    x->t.resp_end = T0 + 1500;
    x->req.method = "POST";
    x->req.target = "/Microsoft-Server-ActiveSync?Cmd=Sync&User=bob&DeviceId=J1&DeviceType=T";
    x->resp.status = 200;
    set_wbxml_body(x, &x->resp.headers, &x->resp.body, SYNC_RESP("2", "7", "3"));
    assert_int_equal(et_view_build(x, x->arena, &v), 0);
    {
        struct et_analyzer *an = et_analyzer_new(NULL);
        assert_int_equal(et_analyzer_feed(an, x, &v, x->arena, &f), 0);
        et_buf_init(&out, 0);
        assert_int_equal(et_exchange_json(x, &v, f, 3, &out), 0);
        assert_non_null(strstr((char *)out.data, "\"n\":3"));
        assert_non_null(strstr((char *)out.data, "\"time\":\"2024-05-01T10:00:00.000Z\""));
        assert_non_null(strstr((char *)out.data, "\"path\":\"/Microsoft-Server-ActiveSync\""));
        assert_non_null(strstr((char *)out.data, "\"cmd\":\"Sync\""));
        assert_non_null(strstr((char *)out.data, "\"status\":[3]"));
        assert_non_null(strstr((char *)out.data, "\"rule\":\"sync-status\""));
        assert_non_null(strstr((char *)out.data, "\"severity\":\"warning\"") ||
                        strstr((char *)out.data, "\"severity\":\"error\""));
        et_buf_reset(&out);
        assert_int_equal(et_timeline_line(x, &v, f, ET_RENDER_FINDINGS, &out), 0);
        assert_non_null(strstr((char *)out.data, "Sync"));
        assert_non_null(strstr((char *)out.data, "3=InvalidSyncKey") ||
                        strstr((char *)out.data, "3="));
        assert_non_null(strstr((char *)out.data, "next:"));
        et_buf_free(&out);
        et_analyzer_free(an);
    }
    et_view_reset(&v);
    et_exchange_free(x);
}

static void test_allocation_failures_do_not_crash(void **state)
{
    (void)state;
    for (long n = 1; n < 400; n++) {
        struct et_analyzer *an;
        struct et_exchange *x;
        struct et_view v;
        struct et_finding *f;
        x = et_exchange_new();
        if (x == NULL)
            continue;
        x->has_request = x->has_response = 1;
        x->req.method = "POST";
        x->req.target = "/Microsoft-Server-ActiveSync?Cmd=Sync&User=a&DeviceId=M&DeviceType=T";
        x->resp.status = 500;
        set_wbxml_body(x, &x->req.headers, &x->req.body, SYNC_REQ("0", "7"));
        et_alloc_fail_after(n);
        an = et_analyzer_new(NULL);
        if (an != NULL) {
            if (et_view_build(x, x->arena, &v) == 0) {
                (void)et_analyzer_feed(an, x, &v, x->arena, &f);
                (void)et_analyzer_finish(an, &f);
                et_view_reset(&v);
            }
        }
        et_alloc_fail_after(-1);
        et_analyzer_free(an);
        et_exchange_free(x);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthy_session_has_no_warning),
        cmocka_unit_test(test_http_status_explains_each_code),
        cmocka_unit_test(test_sync_status_per_collection),
        cmocka_unit_test(test_sendmail_status_next_steps),
        cmocka_unit_test(test_ping_status_above_two),
        cmocka_unit_test(test_synckey_reset_loop_notes_500s),
        cmocka_unit_test(test_synckey_repeat_only_when_server_moved_on),
        cmocka_unit_test(test_request_storm_threshold),
        cmocka_unit_test(test_high_usage_per_day),
        cmocka_unit_test(test_provisioning_loop),
        cmocka_unit_test(test_auth_failures_repeated),
        cmocka_unit_test(test_heartbeat_out_of_range),
        cmocka_unit_test(test_synckey_reset_loop_needs_an_issued_key),
        cmocka_unit_test(test_status_next_step_names_the_command),
        cmocka_unit_test(test_cas_error_and_folder_names),
        cmocka_unit_test(test_threshold_options_parse),
        cmocka_unit_test(test_exchange_error_and_throttling_header),
        cmocka_unit_test(test_device_stats_and_json),
        cmocka_unit_test(test_allocation_failures_do_not_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
