/*
 * The probe's small parts: EAS version negotiation, WWW-Authenticate schemes, command lists,
 * the Autodiscover request and response parser (fixtures in tests/fixtures/probe/), and the
 * report renderings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "et_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "eastrace/exchange.h"
#include "eastrace/probe.h"
#include "probe_int.h"

static void test_negotiate_picks_highest_common(void **state)
{
    const char *v = NULL;
    (void)state;
    assert_int_equal(et_probe_negotiate_version("2.5,12.0,12.1,14.0,14.1", NULL, &v), 0);
    assert_string_equal(v, "14.1");
    assert_int_equal(et_probe_negotiate_version("2.0,2.1,2.5,12.0,12.1,14.0,14.1,16.0,16.1",
                                                NULL, &v),
                     0);
    assert_string_equal(v, "16.1");
    /* Blanks and order do not matter; unknown versions are ignored. */
    assert_int_equal(et_probe_negotiate_version(" 16.1 , 12.1,  99.0 ,14.0", NULL, &v), 0);
    assert_string_equal(v, "16.1");
    assert_int_equal(et_probe_negotiate_version("2.5", NULL, &v), 0);
    assert_string_equal(v, "2.5");
}

static void test_negotiate_forced_version(void **state)
{
    const char *v = NULL;
    (void)state;
    assert_int_equal(et_probe_negotiate_version("2.5,12.0,12.1,14.0,14.1", "12.1", &v), 0);
    assert_string_equal(v, "12.1");
    /* Forced but not offered by the server: no silent fallback. */
    assert_int_equal(et_probe_negotiate_version("2.5,12.0,12.1,14.0,14.1", "16.1", &v),
                     ET_ENOTFOUND);
    assert_null(v);
    /* Not a version eastrace knows. */
    assert_int_equal(et_probe_negotiate_version("2.5,14.1", "15.0", &v), ET_EINVAL);
}

static void test_negotiate_nothing_in_common(void **state)
{
    const char *v = NULL;
    (void)state;
    assert_int_equal(et_probe_negotiate_version("1.0,2.0", NULL, &v), ET_ENOTFOUND);
    assert_int_equal(et_probe_negotiate_version("", NULL, &v), ET_EPARSE);
    assert_int_equal(et_probe_negotiate_version(" , ,", NULL, &v), ET_EPARSE);
    assert_int_equal(et_probe_negotiate_version(NULL, NULL, &v), ET_EPARSE);
}

static unsigned schemes_of(const char *v1, const char *v2)
{
    struct et_exchange *x = et_exchange_new();
    unsigned m;
    assert_non_null(x);
    if (v1 != NULL)
        et_headers_add(&x->resp.headers, x->arena, "WWW-Authenticate", 16, v1, strlen(v1));
    if (v2 != NULL)
        et_headers_add(&x->resp.headers, x->arena, "www-authenticate", 16, v2, strlen(v2));
    et_headers_add(&x->resp.headers, x->arena, "Content-Type", 12, "text/html", 9);
    m = et_probe_auth_schemes(&x->resp.headers);
    et_exchange_free(x);
    return m;
}

static void test_auth_schemes_from_www_authenticate(void **state)
{
    (void)state;
    assert_int_equal(schemes_of("Basic realm=\"mail.example.test\"", NULL), ET_PROBE_AUTH_BASIC);
    /* IIS sends one header per scheme. */
    assert_int_equal(schemes_of("Negotiate", "NTLM"),
                     ET_PROBE_AUTH_NEGOTIATE | ET_PROBE_AUTH_NTLM);
    /* Several challenges in one header; a quoted comma is not a separator. */
    assert_int_equal(schemes_of("Negotiate, NTLM, Basic realm=\"a, b\", charset=\"UTF-8\"", NULL),
                     ET_PROBE_AUTH_NEGOTIATE | ET_PROBE_AUTH_NTLM | ET_PROBE_AUTH_BASIC);
    assert_int_equal(schemes_of("Bearer authorization_uri=\"https://login.example/x\", "
                                "error=\"invalid_token\"",
                                NULL),
                     ET_PROBE_AUTH_BEARER);
    assert_int_equal(schemes_of("basic realm=\"SOGo\"", NULL), ET_PROBE_AUTH_BASIC);
    assert_int_equal(schemes_of("Negotiate oYG3MIG0oAMKAQChCwYJKoZIgvcSAQICooGf==", NULL),
                     ET_PROBE_AUTH_NEGOTIATE);
    assert_int_equal(schemes_of("Kerberos", NULL), ET_PROBE_AUTH_OTHER);
    assert_int_equal(schemes_of(NULL, NULL), 0);
}

static void test_auth_explain_names_the_cause(void **state)
{
    (void)state;
    assert_non_null(strstr(et_probe_auth_explain(ET_PROBE_AUTH_BASIC), "password is wrong"));
    assert_non_null(strstr(et_probe_auth_explain(ET_PROBE_AUTH_NTLM | ET_PROBE_AUTH_NEGOTIATE),
                           "Basic authentication is off"));
    assert_non_null(strstr(et_probe_auth_explain(ET_PROBE_AUTH_BEARER), "OAuth"));
    assert_non_null(strstr(et_probe_auth_explain(0), "no WWW-Authenticate"));
}

static void test_list_count(void **state)
{
    int has = -1;
    (void)state;
    assert_int_equal(et_probe_list_count("Sync,SendMail,Provision,FolderSync", "Provision", &has),
                     4);
    assert_int_equal(has, 1);
    assert_int_equal(et_probe_list_count("Sync, SendMail , FolderSync,", "Provision", &has), 3);
    assert_int_equal(has, 0);
    /* Whole items only: "Sync" is not found in "SyncX". */
    assert_int_equal(et_probe_list_count("SyncX,FolderSync", "Sync", &has), 2);
    assert_int_equal(has, 0);
    assert_int_equal(et_probe_list_count(NULL, "Sync", &has), 0);
}

static void parse_fixture(const char *name, struct et_arena *a, struct et_probe_autodiscover *ad,
                          int expect_rc)
{
    size_t n = 0;
    unsigned char *d = et_test_read_file(et_fixture(name), &n);
    struct et_error e;
    assert_non_null(d);
    et_error_clear(&e);
    assert_int_equal(et_probe_autodiscover_parse(d, n, a, ad, &e), expect_rc);
    if (expect_rc != 0)
        assert_int_equal(e.code, expect_rc);
    free(d);
}

static void test_autodiscover_mobilesync_url(void **state)
{
    struct et_arena *a = et_arena_new(0);
    struct et_probe_autodiscover ad;
    (void)state;
    parse_fixture("probe/autodiscover-mobilesync-server.xml", a, &ad, 0);
    assert_string_equal(ad.eas_url, "https://mail.example.test/Microsoft-Server-ActiveSync");
    assert_string_equal(ad.server_name, "https://mail.example.test/Microsoft-Server-ActiveSync");
    assert_string_equal(ad.display_name, "Jane Doe & Co");
    assert_null(ad.redirect);
    assert_null(ad.error_code);
    et_arena_free(a);
}

static void test_autodiscover_redirect_with_prefixes(void **state)
{
    struct et_arena *a = et_arena_new(0);
    struct et_probe_autodiscover ad;
    (void)state;
    parse_fixture("probe/autodiscover-redirect-address.xml", a, &ad, 0);
    assert_null(ad.eas_url);
    assert_string_equal(ad.redirect, "jane@corp.example.test");
    et_arena_free(a);
}

static void test_autodiscover_errors(void **state)
{
    struct et_arena *a = et_arena_new(0);
    struct et_probe_autodiscover ad;
    (void)state;
    parse_fixture("probe/autodiscover-error-600.xml", a, &ad, 0);
    assert_string_equal(ad.error_code, "600");
    assert_string_equal(ad.error_message, "Invalid Request");
    assert_null(ad.eas_url);
    parse_fixture("probe/autodiscover-action-error.xml", a, &ad, 0);
    assert_string_equal(ad.error_code, "2");
    assert_string_equal(ad.error_message, "The e-mail address cannot be found.");
    et_arena_free(a);
}

static void test_autodiscover_html_is_not_a_response(void **state)
{
    struct et_arena *a = et_arena_new(0);
    struct et_probe_autodiscover ad;
    struct et_error e;
    (void)state;
    parse_fixture("probe/login-page.html", a, &ad, ET_EPARSE);
    et_error_clear(&e);
    assert_int_equal(et_probe_autodiscover_parse(NULL, 0, a, &ad, &e), ET_EPARSE);
    /* Truncated: the root never closes. */
    et_error_clear(&e);
    assert_int_equal(et_probe_autodiscover_parse((const uint8_t *)"<Autodiscover><Response>", 24,
                                                 a, &ad, &e),
                     ET_EPARSE);
    assert_non_null(strstr(e.msg, "not an Autodiscover response"));
    et_arena_free(a);
}

static void test_autodiscover_request_escapes_the_address(void **state)
{
    struct et_buf b;
    (void)state;
    et_buf_init(&b, 0);
    assert_int_equal(et_probe_autodiscover_request("o'brien&co@example.test", &b), 0);
    assert_non_null(strstr((char *)b.data, "<EMailAddress>o&apos;brien&amp;co@example.test"
                                           "</EMailAddress>"));
    assert_non_null(strstr((char *)b.data,
                           "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/"
                           "autodiscover/mobilesync/responseschema/2006"
                           "</AcceptableResponseSchema>"));
    assert_non_null(strstr((char *)b.data, "xmlns=\"http://schemas.microsoft.com/exchange/"
                                           "autodiscover/mobilesync/requestschema/2006\""));
    et_buf_free(&b);
}

static void test_report_renderings(void **state)
{
    struct et_probe_report r;
    struct et_buf b;
    struct et_arena *a = et_arena_new(0);
    (void)state;
    memset(&r, 0, sizeof(r));
    r.arena = a;
    for (int i = 0; i < ET_PROBE_NSTEPS; i++)
        r.steps[i].id = (enum et_probe_step_id)i;
    r.url = "https://mail.example.test/Microsoft-Server-ActiveSync";
    r.user = "EXAMPLE\\jane";
    r.steps[1].result = ET_PROBE_PASSED;
    et__probe_line(&r.steps[1], a, "mail.example.test resolves to %s", "192.0.2.7");
    et__probe_set(&r.steps[2], a, ET_PROBE_WARNED, "expires \"soon\"", "Renew it.");
    et__probe_set(&r.steps[3], a, ET_PROBE_FAILED, "HTTP 401", "Check the password.");
    /* A lesser verdict does not replace the reason of a worse one. */
    et__probe_set(&r.steps[3], a, ET_PROBE_WARNED, "minor", "ignore");
    assert_string_equal(r.steps[3].reason, "HTTP 401");
    r.steps[4].reason = "OPTIONS failed";
    assert_int_equal(et_probe_report_worst(&r), ET_PROBE_FAILED);

    et_buf_init(&b, 0);
    assert_int_equal(et_probe_report_text(&r, 0, &b), 0);
    assert_non_null(strstr((char *)b.data, "[2] DNS and TCP   passed\n"
                                           "      mail.example.test resolves to 192.0.2.7\n"));
    assert_non_null(strstr((char *)b.data, "[4] OPTIONS       failed\n      reason: HTTP 401\n"
                                           "      next step: Check the password.\n"));
    assert_non_null(strstr((char *)b.data, "[5] Provision     skipped: OPTIONS failed\n"));
    assert_non_null(strstr((char *)b.data, "result: a step failed"));
    et_buf_reset(&b);
    assert_int_equal(et_probe_report_json(&r, &b), 0);
    assert_non_null(strstr((char *)b.data, "\"user\":\"EXAMPLE\\\\jane\""));
    assert_non_null(strstr((char *)b.data, "\"result\":\"failed\""));
    assert_non_null(strstr((char *)b.data, "{\"step\":3,\"name\":\"TLS\",\"result\":\"warned\""));
    assert_non_null(strstr((char *)b.data, "\"reason\":\"expires \\\"soon\\\"\""));
    assert_non_null(strstr((char *)b.data, "\"details\":[\"mail.example.test resolves to "
                                           "192.0.2.7\"]"));
    et_buf_free(&b);
    et_arena_free(a);
}

static void test_run_rejects_bad_urls(void **state)
{
    struct et_probe_opts o;
    struct et_probe_report *r = NULL;
    struct et_error e;
    static const char *const bad[] = {"ftp://mail.example.test/", "https://:443/",
                                      "https://mail.example.test:99999/",
                                      "https://user@mail.example.test/", "https://[::1/"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        et_probe_opts_init(&o);
        o.url = bad[i];
        o.user = "u";
        o.password = "p";
        et_error_clear(&e);
        assert_int_equal(et_probe_run(&o, &r, &e), ET_EINVAL);
        assert_non_null(strstr(e.msg, "not an http(s) URL"));
        et_probe_report_free(r);
        r = NULL;
    }
    et_probe_opts_init(&o);
    et_error_clear(&e);
    assert_int_equal(et_probe_run(&o, &r, &e), ET_EINVAL);
    et_probe_report_free(r);
}

static void test_run_refused_port_fails_step_2(void **state)
{
    struct et_probe_opts o;
    struct et_probe_report *r = NULL;
    struct et_error e;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    char url[64];
    (void)state;
    /* A port that was just free: bind, read it back, close, then connect to it. */
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", ntohs(sa.sin_port));
    et_probe_opts_init(&o);
    o.url = url;
    o.user = "u";
    o.password = "p";
    o.timeout_ms = 3000;
    et_error_clear(&e);
    assert_int_equal(et_probe_run(&o, &r, &e), 0);
    assert_int_equal(r->steps[ET_PROBE_STEP_CONNECT].result, ET_PROBE_FAILED);
    /* The common client's words (eastrace/net.h), with the address it tried. */
    assert_non_null(strstr(r->steps[ET_PROBE_STEP_CONNECT].reason, "connection refused"));
    assert_non_null(strstr(r->steps[ET_PROBE_STEP_CONNECT].reason, "(last address tried 127.0.0.1:"));
    assert_non_null(strstr(r->steps[ET_PROBE_STEP_CONNECT].next_step, "firewall"));
    assert_int_equal(r->steps[ET_PROBE_STEP_TLS].result, ET_PROBE_SKIPPED);
    assert_string_equal(r->steps[ET_PROBE_STEP_TLS].reason, "DNS and TCP failed");
    assert_int_equal(r->steps[ET_PROBE_STEP_AUTODISCOVER].result, ET_PROBE_SKIPPED);
    assert_int_equal(et_probe_report_worst(r), ET_PROBE_FAILED);
    assert_int_equal(r->exchanges, 0);
    et_probe_report_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negotiate_picks_highest_common),
        cmocka_unit_test(test_negotiate_forced_version),
        cmocka_unit_test(test_negotiate_nothing_in_common),
        cmocka_unit_test(test_auth_schemes_from_www_authenticate),
        cmocka_unit_test(test_auth_explain_names_the_cause),
        cmocka_unit_test(test_list_count),
        cmocka_unit_test(test_autodiscover_mobilesync_url),
        cmocka_unit_test(test_autodiscover_redirect_with_prefixes),
        cmocka_unit_test(test_autodiscover_errors),
        cmocka_unit_test(test_autodiscover_html_is_not_a_response),
        cmocka_unit_test(test_autodiscover_request_escapes_the_address),
        cmocka_unit_test(test_report_renderings),
        cmocka_unit_test(test_run_rejects_bad_urls),
        cmocka_unit_test(test_run_refused_port_fails_step_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
