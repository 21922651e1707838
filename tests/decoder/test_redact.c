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

/* Exported bodies: the Password text masked with '*' of the same length, wherever WBXML
 * keeps it (inline string, string table, OPAQUE), and in plain XML; nothing else changes. */
static void test_redact_body_masks_in_place(void **s)
{
    (void)s;
    struct et_arena *a = et_arena_new(4096);
    struct et_headers h = {0};
    /* Settings (page 18): <Settings><DevicePassword><Password>pw1</Password>... */
    static const uint8_t stri[] = "\x03\x01\x6a\x00\x00\x12\x45\x54\x55\x03pw1\x00\x01\x01\x01";
    static const uint8_t strt[] = "\x03\x01\x6a\x04pw2\x00\x00\x12\x45\x54\x55\x83\x00\x01\x01\x01";
    static const uint8_t opq[] = "\x03\x01\x6a\x00\x00\x12\x45\x54\x55\xc3\x03pw3\x01\x01\x01";
    static const uint8_t none[] = "\x03\x01\x6a\x00\x00\x12\x45\x54\x01\x01";
    const uint8_t *r;
    size_t n;

    n = sizeof(stri) - 1;
    r = et_redact_decoded_body(a, NULL, stri, n);
    assert_ptr_not_equal(r, stri);
    assert_memory_equal(r + 10, "***\0", 4);
    assert_memory_equal(r, stri, 10);
    n = sizeof(strt) - 1;
    r = et_redact_decoded_body(a, NULL, strt, n);
    assert_memory_equal(r + 4, "***\0", 4);
    n = sizeof(opq) - 1;
    r = et_redact_decoded_body(a, NULL, opq, n);
    assert_memory_equal(r + 11, "***", 3);
    n = sizeof(none) - 1;
    assert_ptr_equal(et_redact_decoded_body(a, NULL, none, n), none);
    /* Plain XML, by its Content-Type. */
    static const char x[] = "<A><p:Password>secret</p:Password><B>keep</B></A>";
    et_headers_add(&h, a, "Content-Type", 12, "text/xml", 8);
    r = et_redact_decoded_body(a, &h, (const uint8_t *)x, strlen(x));
    assert_string_equal((const char *)r, "<A><p:Password>******</p:Password><B>keep</B></A>");
    /* Under a Content-Encoding the bytes are not ours to touch. */
    et_headers_add(&h, a, "Content-Encoding", 16, "gzip", 4);
    struct et_body body = {0};
    body.data = (const uint8_t *)x;
    body.len = strlen(x);
    assert_ptr_equal(et_redact_body(a, &h, &body), (const uint8_t *)x);
    /* ... unless the recorder already undid it. */
    body.content_decoded = 1;
    assert_ptr_not_equal(et_redact_body(a, &h, &body), (const uint8_t *)x);
    et_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redact_names),
        cmocka_unit_test(test_redact_headers_targets_queries),
        cmocka_unit_test(test_redact_xml_password_elements),
        cmocka_unit_test(test_redact_body_masks_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
