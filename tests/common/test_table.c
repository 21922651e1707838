/* Tests of the table renderer (common/table.c) and the JSON string writer it shares with every
 * JSON output: CSV formula prefixes and quoting, terminal scrubbing, HTML escaping, JSON
 * numbers and UTF-8 repair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "eastrace/common.h"
#include "eastrace/table.h"

static char *render(const struct et_table *t, enum et_table_format fmt, unsigned flags,
                    struct et_buf *b)
{
    et_buf_reset(b);
    assert_int_equal(et_table_render(t, fmt, flags, b), 0);
    assert_int_equal(et_buf_putc(b, '\0'), 0);
    return (char *)b->data;
}

/* Text cells longer than a column are scrubbed from their first bytes only: each line shows
 * what scrubbing the whole cell and cutting it at 40 bytes shows, whatever straddles byte 40
 * (UTF-8 sequences valid and cut, C1 controls, stray continuation bytes, ESC). */
static void test_text_long_cells_cut_as_whole_cells(void **state)
{
    (void)state;
    static const char *const pieces[] = {"a", "bb", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                         "\xc2\x85", "\x80", "\xe2\x82", "\x1b[31m", "\t", "7"};
    static char cells[200][200];
    const char *cp[200];
    uint64_t x = 12345;
    for (int r = 0; r < 200; r++) {
        size_t n = 0;
        while (n < 120) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            const char *p = pieces[x % (sizeof(pieces) / sizeof(pieces[0]))];
            memcpy(cells[r] + n, p, strlen(p));
            n += strlen(p);
        }
        cells[r][n] = '\0';
        cp[r] = cells[r];
    }
    static const char *const cols[] = {"c"};
    struct et_table t = {"t", cols, 1, cp, 200};
    struct et_buf b;
    et_buf_init(&b, 0);
    char *out = render(&t, ET_TABLE_TEXT, 0, &b);
    char *line = strchr(out, '\n') + 1; /* after the header */
    for (int r = 0; r < 200; r++) {
        char want[300], full[200];
        strcpy(full, cells[r]);
        et_str_printable(full);
        snprintf(want, sizeof(want), "%-40.40s  \n", full);
        assert_memory_equal(line, want, strlen(want));
        line += strlen(want);
    }
    et_buf_free(&b);
}

static void test_csv_cell_prefixes_formulas(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"},
        {"+SUM(1+1)", "'+SUM(1+1)"},
        {"-2+3", "'-2+3"},
        {"@SUM(A1)", "'@SUM(A1)"},
        {"\tx", "'\tx"},
        {"\rx", "\"'\rx\""},
        {"=a,b", "\"'=a,b\""},
        {"say \"hi\"", "\"say \"\"hi\"\"\""},
        {"-5", "-5"}, /* a negative number is data */
        {"plain", "plain"},
        {"", ""},
    };
    struct et_buf b;
    (void)state;
    et_buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        et_buf_reset(&b);
        assert_int_equal(et_csv_cell(&b, cases[i].in), 0);
        assert_int_equal(b.len, strlen(cases[i].out));
        assert_memory_equal(b.data, cases[i].out, b.len);
    }
    et_buf_free(&b);
}

static void test_table_formats_escape_every_cell(void **state)
{
    static const char *const cols[] = {"DeviceID", "Hits", "User-Agent"};
    static const char *const cells[] = {
        "=cmd|' /C calc'!A0", "12", "UA\x1b]0;PWNED\x07\x1b[2J<b>&\"'",
        "dev2", "3", NULL,
    };
    struct et_table t = {"devices", cols, 3, cells, 2};
    struct et_buf b;
    char *s;
    (void)state;
    et_buf_init(&b, 0);

    s = render(&t, ET_TABLE_TEXT, ET_TABLE_TITLE, &b);
    assert_non_null(strstr(s, "== devices (2 rows)\n"));
    assert_null(strchr(s, '\x1b'));
    assert_null(strchr(s, '\x07'));
    assert_non_null(strstr(s, "UA?]0;PWNED??[2J<b>&\"'"));
    assert_non_null(strstr(s, "  12  ")); /* numbers right-aligned under "Hits" */

    s = render(&t, ET_TABLE_CSV, 0, &b);
    assert_string_equal(s, "DeviceID,Hits,User-Agent\r\n"
                           "'=cmd|' /C calc'!A0,12,\"UA\x1b]0;PWNED\x07\x1b[2J<b>&\"\"'\"\r\n"
                           "dev2,3,\r\n");

    s = render(&t, ET_TABLE_HTML, ET_TABLE_TITLE, &b);
    assert_non_null(strstr(s, "<h2>devices</h2>"));
    assert_null(strstr(s, "<b>"));
    assert_null(strchr(s, '\x1b'));
    assert_non_null(strstr(s, "<td class=\"n\">12</td>"));

    s = render(&t, ET_TABLE_JSON, 0, &b);
    assert_non_null(strstr(s, "\"rows\":[[\"=cmd|' /C calc'!A0\",12,\"UA\\u001b]0;PWNED\\u0007"));
    assert_non_null(strstr(s, "[\"dev2\",3,\"\"]"));
    et_buf_free(&b);
}

static void test_table_hide_zero_and_json_numbers(void **state)
{
    static const char *const cols[] = {"Key", "Count", "Zero", "Id", "Ratio"};
    static const char *const cells[] = {"a", "1", "0", "007", "0.5", "b", "2", "", "12", "1.25"};
    struct et_table t = {"t", cols, 5, cells, 2};
    struct et_buf b;
    char *s;
    (void)state;
    et_buf_init(&b, 0);
    s = render(&t, ET_TABLE_TEXT, ET_TABLE_HIDE_ZERO, &b);
    assert_null(strstr(s, "Zero"));
    assert_non_null(strstr(s, "Ratio"));
    s = render(&t, ET_TABLE_JSON, 0, &b);
    /* "007" is not a JSON number: it stays a string; decimals are numbers. */
    assert_non_null(strstr(s, "[\"a\",1,0,\"007\",0.5]"));
    assert_non_null(strstr(s, "[\"b\",2,\"\",12,1.25]"));
    et_buf_free(&b);
}

static void test_json_string_repairs_utf8(void **state)
{
    struct et_buf b;
    (void)state;
    et_buf_init(&b, 0);
    /* valid 2-, 3- and 4-byte sequences pass; a lone continuation byte, an overlong form,
     * a surrogate and a truncated sequence become U+FFFD. */
    static const char in[] = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82";
    assert_int_equal(et_buf_put_json_string(&b, in, sizeof(in) - 1), 0);
    assert_int_equal(et_buf_putc(&b, '\0'), 0);
    assert_string_equal((char *)b.data, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\\ufffd|\\ufffd\\ufffd|"
                                        "\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\"");
    et_buf_reset(&b);
    assert_int_equal(et_buf_put_json_string(&b, "C:\\logs\\a\"b", 11), 0);
    assert_int_equal(et_buf_putc(&b, '\0'), 0);
    assert_string_equal((char *)b.data, "\"C:\\\\logs\\\\a\\\"b\"");
    et_buf_free(&b);
}

/* Fixed widths, row by row (replay's device table, mailboxlog's tables): text cut to the
 * width but never inside a UTF-8 sequence, numbers never cut, right-aligned headers, controls
 * scrubbed, the separator between columns only. */
static void test_table_text_fixed_widths_stream_rows(void **state)
{
    static const char *const cols[] = {"device", "n"};
    static const int width[] = {5, -4};
    static const struct et_table t = {"d", cols, 2, NULL, 0};
    const struct et_table_text lay = {width, "  ", " "};
    const char *row1[] = {"ab\x1b[2Jc", "123456"};
    const char *row2[] = {"abcd\xc3\xa9", NULL};
    struct et_buf b;
    (void)state;
    et_buf_init(&b, 0);
    assert_int_equal(et_table_text_header(&t, &lay, &b), 0);
    assert_int_equal(et_table_text_row(&t, &lay, row1, &b), 0);
    assert_int_equal(et_table_text_row(&t, &lay, row2, &b), 0);
    assert_int_equal(et_buf_putc(&b, '\0'), 0);
    assert_string_equal((char *)b.data, "  device    n\n" /* a name is not cut */
                                        "  ab?[2 123456\n"
                                        "  abcd      \n");
    assert_int_equal(et_table_text_row(&t, NULL, row1, &b), ET_EINVAL);
    et_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_cell_prefixes_formulas),
        cmocka_unit_test(test_table_formats_escape_every_cell),
        cmocka_unit_test(test_table_hide_zero_and_json_numbers),
        cmocka_unit_test(test_json_string_repairs_utf8),
        cmocka_unit_test(test_table_text_fixed_widths_stream_rows),
        cmocka_unit_test(test_text_long_cells_cut_as_whole_cells),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
