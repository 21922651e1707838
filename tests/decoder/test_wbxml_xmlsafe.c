/*
 * XML safety of rendered text: control characters other than TAB, LF and CR are not XML
 * characters, wherever they stand (also after non-ASCII text, and in every position of the
 * 8-byte fast path). Such text is rendered as base64, never raw.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "eastrace/wbxml.h"

/* <Sync xmlns="AirSync:"><SyncKey>STR_I text</SyncKey></Sync> */
static void render_text(const uint8_t *t, size_t n, struct et_buf *out)
{
    uint8_t doc[256] = {0x03, 0x01, 0x6A, 0x00, 0x45, 0x4B, 0x03};
    size_t k = 7;
    struct et_wbxml_opts o = {0};
    struct et_wbxml_render_opts ro = {0};
    struct et_error e;
    assert_true(n + 10 < sizeof(doc));
    memcpy(doc + k, t, n);
    k += n;
    doc[k++] = 0x00;
    doc[k++] = 0x01;
    doc[k++] = 0x01;
    et_error_clear(&e);
    et_buf_init(out, 0);
    assert_int_equal(et_wbxml_bytes_to_xml(doc, k, &o, &ro, out, &e), 0);
}

static int has_raw_control(const struct et_buf *b)
{
    for (size_t i = 0; i < b->len; i++)
        if (b->data[i] < 0x20 && b->data[i] != '\n' && b->data[i] != '\t' && b->data[i] != '\r')
            return 1;
    return 0;
}

static void test_control_after_utf8_is_base64(void **state)
{
    static const uint8_t t[] = {0xC3, 0xA9, 0x01}; /* "é\x01" */
    struct et_buf out;
    (void)state;
    render_text(t, sizeof(t), &out);
    assert_false(has_raw_control(&out));
    assert_non_null(strstr((char *)out.data, "base64"));
    et_buf_free(&out);
}

static void test_control_in_every_position(void **state)
{
    (void)state;
    for (size_t len = 1; len <= 40; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            uint8_t t[64];
            struct et_buf out;
            for (size_t i = 0; i < len; i++)
                t[i] = (uint8_t)('a' + (i % 26));
            if (len > 4) { /* some non-ASCII text before the control */
                t[0] = 0xC3;
                t[1] = 0xA9;
                if (pos < 2)
                    continue;
            }
            t[pos] = 0x1B; /* ESC */
            render_text(t, len, &out);
            assert_false(has_raw_control(&out));
            et_buf_free(&out);
        }
    }
}

static void test_tab_newline_after_utf8_stay_text(void **state)
{
    static const uint8_t t[] = {0xC3, 0xA9, '\t', 'x', '\n', 'y'};
    struct et_buf out;
    (void)state;
    render_text(t, sizeof(t), &out);
    assert_non_null(strstr((char *)out.data, "\xC3\xA9\tx\ny"));
    et_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_after_utf8_is_base64),
        cmocka_unit_test(test_control_in_every_position),
        cmocka_unit_test(test_tab_newline_after_utf8_stay_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
