/* The EAS request: plain and base64 queries, headers, request line, redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eastrace/eas.h"
#include "et_test.h"

struct ctx {
    struct et_arena *a;
    struct et_error e;
    struct et_eas_request r;
};

static int setup_arena(void **state)
{
    struct ctx *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    c->a = et_arena_new(0);
    et_error_clear(&c->e);
    *state = c;
    return c->a != NULL ? 0 : -1;
}

static int teardown_arena(void **state)
{
    struct ctx *c = *state;
    et_arena_free(c->a);
    free(c);
    return 0;
}

static const char *param(const struct et_eas_request *r, const char *name)
{
    for (size_t i = 0; i < r->nparams; i++)
        if (strcmp(r->params[i].name, name) == 0)
            return r->params[i].value;
    return NULL;
}

/* Builds "/Microsoft-Server-ActiveSync?" + base64(bytes) in a static buffer. */
static const char *b64_target(const uint8_t *p, size_t n)
{
    static char out[2048];
    struct et_buf b;
    et_buf_init(&b, 0);
    assert_int_equal(et_base64_encode(&b, p, n), 0);
    snprintf(out, sizeof(out), "/Microsoft-Server-ActiveSync?%s", (const char *)b.data);
    et_buf_free(&b);
    return out;
}

static const char *line_of(const struct et_eas_request *r)
{
    static char out[2048];
    struct et_buf b;
    et_buf_init(&b, 0);
    assert_int_equal(et_eas_request_line(r, &b), 0);
    snprintf(out, sizeof(out), "%s", (const char *)b.data);
    et_buf_free(&b);
    return out;
}

static void test_eas_plain_query_core_fields(void **state)
{
    struct ctx *c = *state;
    int rc = et_eas_query_parse("/Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&"
                                "DeviceId=ABC123&DeviceType=iPhone",
                                c->a, &c->r, &c->e);
    assert_int_equal(rc, 0);
    assert_true(c->r.is_eas);
    assert_false(c->r.base64_form);
    assert_true(c->r.cmd_known);
    assert_string_equal(c->r.cmd, "Sync");
    assert_string_equal(c->r.user, "jdoe");
    assert_string_equal(c->r.device_id, "ABC123");
    assert_string_equal(c->r.device_type, "iPhone");
    assert_int_equal(c->r.cmd_code, -1);
    assert_int_equal(c->r.nparams, 0);
    assert_null(c->r.locale);
}

static void test_eas_plain_query_params_and_percent(void **state)
{
    struct ctx *c = *state;
    int rc = et_eas_query_parse("/microsoft-server-activesync/default.eas?Cmd=SmartReply&"
                                "User=CONTOSO%5Cj%20doe&DeviceId=dev1&DeviceType=Android&"
                                "CollectionId=5&ItemId=5%3A12&SaveInSent=T&Occurrence=x",
                                c->a, &c->r, &c->e);
    assert_int_equal(rc, 0);
    assert_string_equal(c->r.path, "/microsoft-server-activesync/default.eas");
    assert_string_equal(c->r.user, "CONTOSO\\j doe");
    assert_string_equal(param(&c->r, "CollectionId"), "5");
    assert_string_equal(param(&c->r, "ItemId"), "5:12");
    assert_string_equal(param(&c->r, "Occurrence"), "x");
    assert_true(c->r.save_in_sent);
    assert_string_equal(line_of(&c->r), "SmartReply user=CONTOSO\\j%20doe device=dev1 "
                                        "type=Android CollectionId=5 ItemId=5:12 "
                                        "SaveInSent=T Occurrence=x SaveInSent");
}

static void test_eas_paths_accepted_and_refused(void **state)
{
    struct ctx *c = *state;
    assert_int_equal(et_eas_query_parse("/Microsoft-Server-ActiveSync/Proxy/default.eas?"
                                        "Cmd=Ping&User=u&DeviceId=d&DeviceType=t",
                                        c->a, &c->r, &c->e), 0);
    assert_string_equal(c->r.cmd, "Ping");
    assert_int_equal(et_eas_query_parse("https://mail.example.com/Microsoft-Server-ActiveSync"
                                        "?Cmd=FolderSync&User=u&DeviceId=d&DeviceType=t",
                                        c->a, &c->r, &c->e), 0);
    assert_string_equal(c->r.cmd, "FolderSync");
    /* OPTIONS has no query. */
    assert_int_equal(et_eas_query_parse("/Microsoft-Server-ActiveSync", c->a, &c->r, &c->e), 0);
    assert_true(c->r.is_eas);
    assert_null(c->r.cmd);
    et_error_clear(&c->e);
    assert_int_equal(et_eas_query_parse("/owa/?Cmd=Sync", c->a, &c->r, &c->e), ET_EUNSUPPORTED);
    assert_false(c->r.is_eas);
    assert_true(c->e.has_offset);
    assert_int_equal(c->e.offset, 0);
    et_error_clear(&c->e);
    assert_int_equal(et_eas_query_parse("/Microsoft-Server-ActiveSyncX?Cmd=Sync", c->a, &c->r,
                                        &c->e), ET_EUNSUPPORTED);
}

static void test_eas_plain_bad_percent_escape_offset(void **state)
{
    struct ctx *c = *state;
    const char *t = "/Microsoft-Server-ActiveSync?Cmd=Sync&User=a%G1b";
    int rc = et_eas_query_parse(t, c->a, &c->r, &c->e);
    assert_int_equal(rc, ET_EPARSE);
    assert_true(c->e.has_offset);
    assert_int_equal(c->e.offset, (uint64_t)(strchr(t, '%') - t));
    assert_non_null(strstr(c->e.msg, "percent"));
    /* What came before the error is kept. */
    assert_string_equal(c->r.cmd, "Sync");
    et_error_clear(&c->e);
    t = "/Microsoft-Server-ActiveSync?Cmd=Sync&User=a%4";
    assert_int_equal(et_eas_query_parse(t, c->a, &c->r, &c->e), ET_EPARSE);
    assert_int_equal(c->e.offset, (uint64_t)(strchr(t, '%') - t));
}

/* The example of [MS-ASHTTP] 2.2.1.1.1.1. */
static void test_eas_base64_spec_example(void **state)
{
    struct ctx *c = *state;
    int rc = et_eas_query_parse("/Microsoft-Server-ActiveSync?jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l",
                                c->a, &c->r, &c->e);
    assert_int_equal(rc, 0);
    assert_true(c->r.base64_form);
    assert_string_equal(c->r.protocol, "14.0");
    assert_string_equal(c->r.cmd, "Sync");
    assert_int_equal(c->r.cmd_code, 0);
    assert_int_equal(c->r.locale_id, 0x0409);
    assert_string_equal(c->r.locale, "en-US");
    assert_string_equal(c->r.device_id, "v140Device");
    assert_null(c->r.device_guid);
    assert_null(c->r.policy_key);
    assert_string_equal(c->r.device_type, "SmartPhone");
    assert_int_equal(c->r.nparams, 0);
    assert_string_equal(line_of(&c->r),
                        "Sync device=v140Device type=SmartPhone v14.0 locale=en-US [base64]");
}

static void test_eas_base64_every_field(void **state)
{
    struct ctx *c = *state;
    /* 16.1 SmartForward, locale 0x0407, GUID device ID, policy key 3942919513, type,
     * then AttachmentName, CollectionId, ItemId, LongId, Occurrence, Options=0x03, User. */
    static const uint8_t q[] = {
        161, 2, 0x07, 0x04,
        16, 0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xAA, 0xBB, 0xCC,
        0xDD, 0xEE, 0xFF,
        4, 0x59, 0x6F, 0x05, 0xEB,
        6, 'A', 'n', 'd', 'r', 'o', 'i',
        0, 5, 'a', '.', 'p', 'd', 'f',
        1, 1, '5',
        3, 4, '5', ':', '1', '2',
        4, 3, 'R', 'g', 'A',
        6, 2, '4', '2',
        7, 1, 0x03,
        8, 4, 'j', 'd', 'o', 'e',
    };
    int rc = et_eas_query_parse(b64_target(q, sizeof(q)), c->a, &c->r, &c->e);
    assert_int_equal(rc, 0);
    assert_string_equal(c->r.protocol, "16.1");
    assert_string_equal(c->r.cmd, "SmartForward");
    assert_string_equal(c->r.locale, "de-DE");
    assert_int_equal(c->r.locale_id, 1031);
    assert_string_equal(c->r.device_id, "33221100554477668899AABBCCDDEEFF");
    assert_string_equal(c->r.device_guid, "{00112233-4455-6677-8899-AABBCCDDEEFF}");
    assert_string_equal(c->r.policy_key, "3943001945");
    assert_string_equal(c->r.device_type, "Androi");
    assert_string_equal(param(&c->r, "AttachmentName"), "a.pdf");
    assert_string_equal(param(&c->r, "CollectionId"), "5");
    assert_string_equal(param(&c->r, "ItemId"), "5:12");
    assert_string_equal(param(&c->r, "LongId"), "RgA");
    assert_string_equal(param(&c->r, "Occurrence"), "42");
    assert_string_equal(param(&c->r, "Options"), "0x03");
    assert_true(c->r.has_options);
    assert_true(c->r.save_in_sent);
    assert_true(c->r.accept_multipart);
    assert_string_equal(c->r.user, "jdoe");
    assert_string_equal(line_of(&c->r),
                        "SmartForward user=jdoe device=33221100554477668899AABBCCDDEEFF "
                        "type=Androi v16.1 policy=3943001945 locale=de-DE [base64] "
                        "AttachmentName=a.pdf CollectionId=5 ItemId=5:12 LongId=RgA "
                        "Occurrence=42 SaveInSent AcceptMultiPart");
}

static void test_eas_base64_options_bits_separately(void **state)
{
    struct ctx *c = *state;
    uint8_t q[] = {141, 1, 0x09, 0x04, 1, 'd', 0, 1, 't', 7, 1, 0x01};
    assert_int_equal(et_eas_query_parse(b64_target(q, sizeof(q)), c->a, &c->r, &c->e), 0);
    assert_string_equal(c->r.cmd, "SendMail");
    assert_true(c->r.save_in_sent);
    assert_false(c->r.accept_multipart);
    q[1] = 19;
    q[11] = 0x02;
    assert_int_equal(et_eas_query_parse(b64_target(q, sizeof(q)), c->a, &c->r, &c->e), 0);
    assert_string_equal(c->r.cmd, "ItemOperations");
    assert_false(c->r.save_in_sent);
    assert_true(c->r.accept_multipart);
    /* Unknown bits are kept and shown. */
    q[11] = 0x86;
    assert_int_equal(et_eas_query_parse(b64_target(q, sizeof(q)), c->a, &c->r, &c->e), 0);
    assert_int_equal(c->r.options, 0x86);
    assert_non_null(strstr(line_of(&c->r), "Options=0x86"));
}

static void test_eas_base64_unknown_command_and_tag_go_on(void **state)
{
    struct ctx *c = *state;
    const uint8_t q[] = {140, 0x42, 0x34, 0x12, 2, 'd', '1', 0, 1, 't', 0x33, 2, 'h', 'i',
                         1, 1, '7'};
    assert_int_equal(et_eas_query_parse(b64_target(q, sizeof(q)), c->a, &c->r, &c->e), 0);
    assert_string_equal(c->r.cmd, "Unknown(0x42)");
    assert_false(c->r.cmd_known);
    assert_string_equal(c->r.locale, "0x1234");
    assert_string_equal(param(&c->r, "Tag(0x33)"), "hi");
    assert_string_equal(param(&c->r, "CollectionId"), "7");
    /* Every command code of the table. */
    assert_string_equal(et_eas_command_name(23), "Find");
    assert_string_equal(et_eas_command_name(4), "GetAttachment");
    assert_null(et_eas_command_name(5));
    assert_int_equal(et_eas_command_code("validatecert"), 22);
}

static void test_eas_base64_truncated_everywhere(void **state)
{
    struct ctx *c = *state;
    static const uint8_t q[] = {141, 0, 0x09, 0x04, 3, 'd', 'e', 'v', 4, 1, 0, 0, 0,
                                 2, 'W', 'P', 1, 2, '1', '2'};
    /* Every strict prefix that ends inside a field fails with ET_ETRUNC; the ones that end
     * exactly after the device type or after a parameter are complete. */
    for (size_t n = 1; n < sizeof(q); n++) {
        et_error_clear(&c->e);
        int rc = et_eas_query_parse(b64_target(q, n), c->a, &c->r, &c->e);
        if (n == 16) {
            assert_int_equal(rc, 0);
            continue;
        }
        if (rc != ET_ETRUNC)
            fail_msg("prefix %zu: rc %d (%s)", n, rc, c->e.msg);
        assert_true(c->e.has_offset);
        assert_true(c->e.offset >= strlen("/Microsoft-Server-ActiveSync?"));
        assert_true(c->e.offset <= strlen(b64_target(q, n)));
    }
}

static void test_eas_base64_bad_lengths_and_chars(void **state)
{
    struct ctx *c = *state;
    const uint8_t zero_devid[] = {141, 0, 9, 4, 0, 0, 1, 't'};
    const uint8_t bad_pk[] = {141, 0, 9, 4, 1, 'd', 3, 1, 2, 3, 1, 't'};
    const uint8_t long_devid[] = {141, 0, 9, 4, 200, 'd'};
    int rc;

    rc = et_eas_query_parse(b64_target(zero_devid, sizeof(zero_devid)), c->a, &c->r, &c->e);
    assert_int_equal(rc, ET_EPARSE);
    assert_non_null(strstr(c->e.msg, "device ID length"));
    et_error_clear(&c->e);
    rc = et_eas_query_parse(b64_target(bad_pk, sizeof(bad_pk)), c->a, &c->r, &c->e);
    assert_int_equal(rc, ET_EPARSE);
    assert_non_null(strstr(c->e.msg, "policy key length"));
    et_error_clear(&c->e);
    rc = et_eas_query_parse(b64_target(long_devid, sizeof(long_devid)), c->a, &c->r, &c->e);
    assert_int_equal(rc, ET_ETRUNC);
    assert_non_null(strstr(c->e.msg, "device ID"));
    et_error_clear(&c->e);
    rc = et_eas_query_parse("/Microsoft-Server-ActiveSync?jAAJBA*p2MTQw", c->a, &c->r, &c->e);
    assert_int_equal(rc, ET_EPARSE);
    assert_int_equal(c->e.offset, strlen("/Microsoft-Server-ActiveSync?jAAJBA"));
    et_error_clear(&c->e);
    /* Percent-encoded base64 ('/' as %2F, '=' as %3D) decodes the same. */
    rc = et_eas_query_parse("/Microsoft-Server-ActiveSync?jQAJBAFkAANhYmM%3D", c->a, &c->r, &c->e);
    assert_int_equal(rc, 0);
    assert_string_equal(c->r.device_id, "d");
    assert_string_equal(c->r.device_type, "abc");
    rc = et_eas_query_parse("/Microsoft-Server-ActiveSync?jQ%41JBAFkAAF0", c->a, &c->r, &c->e);
    assert_int_equal(rc, 0);
    assert_string_equal(c->r.device_type, "t");
}

static const char *load_uri(const char *jsonpath, char *out, size_t outlen)
{
    size_t n;
    unsigned char *d = et_test_read_file(jsonpath, &n);
    const char *p, *q;
    if (d == NULL)
        return NULL;
    p = strstr((const char *)d, "\"uri\": \"");
    if (p == NULL) {
        free(d);
        return NULL;
    }
    p += 8;
    q = strchr(p, '"');
    snprintf(out, outlen, "%.*s", (int)(q - p), p);
    free(d);
    return out;
}

static void test_eas_corpus_windows_mail_base64(void **state)
{
    struct ctx *c = *state;
    char uri[1024];
    ET_REQUIRE_CORPUS(j806, "syncgw-traces/extracted/806/01-POST-Microsoft-Server-ActiveSync.json");
    assert_non_null(load_uri(j806, uri, sizeof(uri)));
    assert_int_equal(et_eas_query_parse(uri, c->a, &c->r, &c->e), 0);
    assert_true(c->r.base64_form);
    assert_string_equal(c->r.protocol, "16.1");
    assert_string_equal(c->r.cmd, "ItemOperations");
    assert_string_equal(c->r.locale, "de-DE");
    assert_non_null(c->r.device_guid);
    assert_int_equal(strlen(c->r.device_id), 32);
    assert_string_equal(c->r.policy_key, "0");
    assert_string_equal(c->r.device_type, "WindowsMail");
    assert_true(c->r.accept_multipart);
    assert_false(c->r.save_in_sent);

    ET_REQUIRE_CORPUS(j807, "syncgw-traces/extracted/807/01-POST-Microsoft-Server-ActiveSync.json");
    assert_non_null(load_uri(j807, uri, sizeof(uri)));
    assert_int_equal(et_eas_query_parse(uri, c->a, &c->r, &c->e), 0);
    assert_string_equal(c->r.cmd, "Settings");
    ET_REQUIRE_CORPUS(j807b, "syncgw-traces/extracted/807/02-POST-Microsoft-Server-ActiveSync.json");
    assert_non_null(load_uri(j807b, uri, sizeof(uri)));
    assert_int_equal(et_eas_query_parse(uri, c->a, &c->r, &c->e), 0);
    assert_string_equal(c->r.cmd, "Search");
    assert_string_equal(c->r.device_type, "WindowsMail");
}

static struct et_exchange *make_exchange(const char *target)
{
    struct et_exchange *x = et_exchange_new();
    assert_non_null(x);
    x->has_request = 1;
    x->req.method = "POST";
    x->req.target = et_arena_strdup(x->arena, target);
    return x;
}

static void add_req_header(struct et_exchange *x, const char *n, const char *v)
{
    assert_int_equal(et_headers_add(&x->req.headers, x->arena, n, strlen(n), v, strlen(v)), 0);
}

static void add_resp_header(struct et_exchange *x, const char *n, const char *v)
{
    assert_int_equal(et_headers_add(&x->resp.headers, x->arena, n, strlen(n), v, strlen(v)), 0);
}

static void test_eas_request_headers_fill_gaps(void **state)
{
    struct ctx *c = *state;
    struct et_exchange *x = make_exchange("/Microsoft-Server-ActiveSync?Cmd=ItemOperations&"
                                          "User=jdoe&DeviceId=D1&DeviceType=iPad");
    add_req_header(x, "MS-ASProtocolVersion", "14.1");
    add_req_header(x, "X-MS-PolicyKey", "1234567890");
    add_req_header(x, "ms-asacceptmultipart", "T");
    add_req_header(x, "User-Agent", "Apple-iPad8C1/1803.1");
    /* "jdoe@contoso.com:s3cr3t!" */
    add_req_header(x, "Authorization", "Basic amRvZUBjb250b3NvLmNvbTpzM2NyM3Qh");
    assert_int_equal(et_eas_request_parse(x, x->arena, &c->r, &c->e), 0);
    assert_string_equal(c->r.protocol, "14.1");
    assert_string_equal(c->r.policy_key, "1234567890");
    assert_true(c->r.accept_multipart);
    assert_string_equal(c->r.user_agent, "Apple-iPad8C1/1803.1");
    assert_string_equal(c->r.auth_scheme, "Basic");
    assert_string_equal(c->r.auth_user, "jdoe@contoso.com");
    {
        const char *l = line_of(&c->r);
        assert_null(strstr(l, "s3cr3t"));
        assert_string_equal(l, "ItemOperations user=jdoe device=D1 type=iPad v14.1 "
                               "policy=1234567890 AcceptMultiPart auth=Basic:jdoe@contoso.com");
    }
    et_exchange_free(x);
}

static void test_eas_request_base64_wins_over_headers(void **state)
{
    struct ctx *c = *state;
    struct et_exchange *x = make_exchange("/Microsoft-Server-ActiveSync?jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l");
    add_req_header(x, "MS-ASProtocolVersion", "16.1");
    add_req_header(x, "X-MS-PolicyKey", "77");
    add_req_header(x, "Authorization", "Bearer eyJ0eXAiOiJKV1Qi.secret");
    assert_int_equal(et_eas_request_parse(x, x->arena, &c->r, &c->e), 0);
    assert_string_equal(c->r.protocol, "14.0"); /* the query says 14.0 */
    assert_string_equal(c->r.policy_key, "77"); /* the query had none */
    assert_string_equal(c->r.auth_scheme, "Bearer");
    assert_null(c->r.auth_user);
    et_exchange_free(x);
    x = et_exchange_new();
    et_error_clear(&c->e);
    assert_int_equal(et_eas_request_parse(x, x->arena, &c->r, &c->e), ET_EINVAL);
    et_exchange_free(x);
}

static void test_eas_response_info_headers(void **state)
{
    struct et_eas_response_info ri;
    struct et_exchange *x = make_exchange("/Microsoft-Server-ActiveSync");
    (void)state;
    x->has_response = 1;
    x->resp.status = 451;
    add_resp_header(x, "MS-Server-ActiveSync", "15.1");
    add_resp_header(x, "MS-ASProtocolVersions", "2.5,12.0,12.1,14.0,14.1,16.0,16.1");
    add_resp_header(x, "MS-ASProtocolCommands", "Sync,SendMail,Find");
    add_resp_header(x, "X-MS-Location", "https://mail2.example.com/Microsoft-Server-ActiveSync");
    add_resp_header(x, "X-MS-ASThrottle", "CommandFrequency");
    add_resp_header(x, "Retry-After", "120");
    add_resp_header(x, "X-MS-RP", "2.5,12.0");
    et_eas_response_info(x, &ri);
    assert_int_equal(ri.http_status, 451);
    assert_non_null(strstr(ri.http_meaning, "X-MS-Location"));
    assert_string_equal(ri.server_version, "15.1");
    assert_string_equal(ri.protocol_versions, "2.5,12.0,12.1,14.0,14.1,16.0,16.1");
    assert_string_equal(ri.protocol_commands, "Sync,SendMail,Find");
    assert_string_equal(ri.location, "https://mail2.example.com/Microsoft-Server-ActiveSync");
    assert_string_equal(ri.throttle, "CommandFrequency");
    assert_string_equal(ri.retry_after, "120");
    assert_string_equal(ri.rp, "2.5,12.0");
    assert_null(ri.credentials_expire);
    et_exchange_free(x);
}

static const char *redact(const char *t, unsigned flags)
{
    static char out[2048];
    struct et_buf b;
    et_buf_init(&b, 0);
    assert_int_equal(et_eas_query_redact(t, flags, &b), 0);
    snprintf(out, sizeof(out), "%s", (const char *)b.data);
    et_buf_free(&b);
    return out;
}

static void test_eas_redaction(void **state)
{
    struct ctx *c = *state;
    const char *r;
    (void)c;
    assert_string_equal(redact("/Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&Password=hunter2"
                               "&DeviceId=D&DeviceType=t&access_token=abc", 0),
                        "/Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&Password=REDACTED"
                        "&DeviceId=D&DeviceType=t&access_token=REDACTED");
    assert_string_equal(redact("/Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&DeviceId=D",
                               ET_EAS_REDACT_IDENTITY),
                        "/Microsoft-Server-ActiveSync?Cmd=Sync&User=REDACTED&DeviceId=REDACTED");
    /* base64 without identity redaction is kept as is. */
    assert_string_equal(redact("/Microsoft-Server-ActiveSync?jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l", 0),
                        "/Microsoft-Server-ActiveSync?jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l");
    /* With identity redaction it is re-encoded and still decodes. */
    r = redact("/Microsoft-Server-ActiveSync?jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l",
               ET_EAS_REDACT_IDENTITY);
    assert_int_equal(et_eas_query_parse(r, c->a, &c->r, &c->e), 0);
    assert_string_equal(c->r.device_id, "REDACTED");
    assert_string_equal(c->r.device_type, "SmartPhone");
    assert_string_equal(c->r.cmd, "Sync");
    /* Unparseable queries leak nothing. */
    assert_string_equal(redact("/Microsoft-Server-ActiveSync?Cmd=Sync&Password=a%ZZ", 0),
                        "/Microsoft-Server-ActiveSync?REDACTED");
    {
        struct et_buf b;
        et_buf_init(&b, 0);
        assert_int_equal(et_eas_auth_redact("Basic amRvZUBjb250b3NvLmNvbTpzM2NyM3Qh", &b), 0);
        assert_string_equal((const char *)b.data, "Basic REDACTED (user=jdoe@contoso.com)");
        et_buf_reset(&b);
        assert_int_equal(et_eas_auth_redact("Bearer abc.def", &b), 0);
        assert_string_equal((const char *)b.data, "Bearer REDACTED");
        et_buf_free(&b);
    }
}

static void test_eas_fixture_regressions(void **state)
{
    struct ctx *c = *state;
    DIR *d = opendir(et_fixture("eas"));
    struct dirent *de;
    int n = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        char path[4400];
        size_t len = 0;
        unsigned char *data;
        if (strncmp(de->d_name, "query-", 6) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", et_fixture("eas"), de->d_name);
        data = et_test_read_file(path, &len);
        assert_non_null(data);
        /* Strip one trailing newline the file may carry. */
        if (len > 0 && data[len - 1] == '\n')
            data[--len] = '\0';
        et_error_clear(&c->e);
        int rc = et_eas_query_parse((const char *)data, c->a, &c->r, &c->e);
        if (strstr(de->d_name, "-bad-") != NULL) {
            if (rc == 0)
                fail_msg("%s: parsed but should fail", de->d_name);
            assert_true(c->e.code != 0);
        } else if (rc != 0) {
            fail_msg("%s: %s", de->d_name, c->e.msg);
        }
        {
            struct et_buf b;
            et_buf_init(&b, 0);
            assert_int_equal(et_eas_request_line(&c->r, &b), 0);
            et_buf_reset(&b);
            assert_int_equal(et_eas_query_redact((const char *)data, ET_EAS_REDACT_IDENTITY, &b),
                             0);
            et_buf_free(&b);
        }
        free(data);
        n++;
    }
    closedir(d);
    assert_true(n >= 4);
}

/* Fails each allocation in turn: every failure is ET_ENOMEM with a message, never a crash. */
static void test_eas_alloc_failure_each_call(void **state)
{
    static const uint8_t q[] = {161, 2, 0x07, 0x04, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                13, 14, 15, 16, 4, 1, 0, 0, 0, 2, 'W', 'P', 1, 1, '5',
                                7, 1, 3, 8, 1, 'u'};
    const char *targets[2];
    char b64[512];
    (void)state;
    assert_true((size_t)snprintf(b64, sizeof(b64), "%s", b64_target(q, sizeof(q))) < sizeof(b64));
    targets[0] = b64;
    targets[1] = "/Microsoft-Server-ActiveSync?Cmd=Sync&User=u&DeviceId=d&DeviceType=t&"
                 "A=1&B=2&C=3&D=4&E=5&F=6&G=7&H=8&I=9&J=10";
    for (int t = 0; t < 2; t++) {
        int ok = 0, fails = 0;
        for (long n = 1; n < 200 && !ok; n++) {
            struct et_arena *a = et_arena_new(64);
            struct et_eas_request r;
            struct et_error e;
            struct et_buf b;
            int rc;
            if (a == NULL)
                continue;
            et_error_clear(&e);
            et_buf_init(&b, 0);
            et_alloc_fail_after(n);
            rc = et_eas_query_parse(targets[t], a, &r, &e);
            if (rc == 0)
                rc = et_eas_query_redact(targets[t], ET_EAS_REDACT_IDENTITY, &b);
            et_alloc_fail_after(-1);
            if (rc == 0) {
                ok = 1;
            } else {
                assert_int_equal(rc, ET_ENOMEM);
                fails++;
            }
            et_buf_free(&b);
            et_arena_free(a);
        }
        assert_true(ok);
        assert_true(fails > 0); /* the loop really hit failing allocations */
    }
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_arena, teardown_arena)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_eas_plain_query_core_fields),
        T(test_eas_plain_query_params_and_percent),
        T(test_eas_paths_accepted_and_refused),
        T(test_eas_plain_bad_percent_escape_offset),
        T(test_eas_base64_spec_example),
        T(test_eas_base64_every_field),
        T(test_eas_base64_options_bits_separately),
        T(test_eas_base64_unknown_command_and_tag_go_on),
        T(test_eas_base64_truncated_everywhere),
        T(test_eas_base64_bad_lengths_and_chars),
        T(test_eas_corpus_windows_mail_base64),
        T(test_eas_request_headers_fill_gaps),
        T(test_eas_request_base64_wins_over_headers),
        T(test_eas_response_info_headers),
        T(test_eas_redaction),
        T(test_eas_fixture_regressions),
        T(test_eas_alloc_failure_each_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
