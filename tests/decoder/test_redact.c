/* The redaction policy (eastrace/redact.h): names, headers, targets, queries and XML. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "eastrace/redact.h"
#include "et_test.h"

static void test_redact_names(void **s)
{
    (void)s;
    assert_true(et_redact_is_secret_name("Authorization"));
    assert_true(et_redact_is_secret_name("set-cookie"));
    assert_true(et_redact_is_secret_name("cs(Cookie)"));
    assert_true(et_redact_is_secret_name("X-Password"));
    assert_true(et_redact_is_secret_name("Pwd"));
    /* A policy key is not a credential (docs/security.md). */
    assert_false(et_redact_is_secret_name("X-MS-PolicyKey"));
    assert_false(et_redact_is_secret_name("User-Agent"));
    assert_true(et_redact_is_secret_element("Password"));
    assert_false(et_redact_is_secret_element("DevicePasswordEnabled"));
}

static void test_redact_headers_targets_queries(void **s)
{
    (void)s;
    struct et_arena *a = et_arena_new(4096);
    assert_string_equal(et_redact_header(a, "Cookie", "s=1"), ET_REDACTED);
    /* "jdoe:pw" in base64: the scheme and the user stay. */
    assert_string_equal(et_redact_header(a, "Authorization", "Basic amRvZTpwdw=="),
                        "Basic " ET_REDACTED " user=jdoe");
    assert_string_equal(et_redact_header(a, "X-MS-PolicyKey", "123"), "123");
    const char *t = et_redact_target(a, "/Microsoft-Server-ActiveSync?Cmd=Sync&Password=pw&User=u");
    assert_null(strstr(t, "pw&"));
    assert_non_null(strstr(t, "User=u"));
    t = et_redact_target(a, "https://u:pw@host/x");
    assert_string_equal(t, "https://" ET_REDACTED "@host/x");
    t = et_redact_query(a, "User=u&Password=pw");
    assert_null(strstr(t, "=pw"));
    assert_string_equal(et_redact_query(a, "User=u"), "User=u");
    et_arena_free(a);
}

static void test_redact_xml_password_elements(void **s)
{
    (void)s;
    static const char x[] = "<R><a:Password>pw1</a:Password><Password x=\"1\">pw2</Password>"
                            "<Password/><PasswordHint>h</PasswordHint><Password>pw3";
    struct et_buf b;
    et_buf_init(&b, 0);
    assert_int_equal(et_redact_xml(&b, x, strlen(x)), 0);
    assert_string_equal((char *)b.data,
                        "<R><a:Password>" ET_REDACTED "</a:Password><Password x=\"1\">" ET_REDACTED
                        "</Password><Password/><PasswordHint>h</PasswordHint><Password>"
                        ET_REDACTED);
    et_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redact_names),
        cmocka_unit_test(test_redact_headers_targets_queries),
        cmocka_unit_test(test_redact_xml_password_elements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
