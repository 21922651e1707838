/* The ClickHouse engine's pieces that need no server: URL parsing, TabSeparated and SQL
 * literal escaping (what keeps a log line from injecting), and the row reader the loader uses,
 * whose counts must be the local report's on every fixture. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ch_int.h"
#include "eastrace/iisreport.h"
#include "eastrace/iisrows.h"
#include "et_test.h"

static void test_url_forms(void **state)
{
    struct et_ch_url u;
    struct et_error e;
    (void)state;
    et_error_clear(&e);
    assert_int_equal(et_ch_url_parse("clickhouse://ch1.example.net/logs", &u, &e), 0);
    assert_string_equal(u.host, "ch1.example.net");
    assert_int_equal(u.port, 8123);
    assert_string_equal(u.db, "logs");
    assert_string_equal(u.table, ET_CH_TABLE);
    assert_string_equal(u.user, "");
    assert_int_equal(et_ch_url_parse("clickhouse://reader@127.0.0.1:18123/eas_2024?table=cas1",
                                     &u, &e), 0);
    assert_string_equal(u.user, "reader");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 18123);
    assert_string_equal(u.db, "eas_2024");
    assert_string_equal(u.table, "cas1");
    assert_int_equal(et_ch_url_parse("clickhouse://[::1]:9123/db", &u, &e), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 9123);
}

static void test_url_refused(void **state)
{
    static const char *const bad[] = {
        "http://127.0.0.1:8123/db",            /* scheme */
        "clickhouse://127.0.0.1:8123",         /* no database */
        "clickhouse://127.0.0.1:8123/",        /* empty database */
        "clickhouse://127.0.0.1:0/db",         /* port */
        "clickhouse://127.0.0.1:70000/db",
        "clickhouse://127.0.0.1:80x/db",
        "clickhouse://:8123/db",               /* no host */
        "clickhouse://127.0.0.1/db;DROP",      /* database name */
        "clickhouse://127.0.0.1/d'b",
        "clickhouse://127.0.0.1/1db",
        "clickhouse://u:pw@127.0.0.1/db",      /* a password */
        "clickhouse://127.0.0.1/db?table=a-b", /* table name */
        "clickhouse://127.0.0.1/db?limit=1",   /* unknown parameter */
        "clickhouse://[::1/db",
    };
    (void)state;
    for (size_t i = 0; i < ET_ARRAY_SIZE(bad); i++) {
        struct et_ch_url u;
        struct et_error e;
        et_error_clear(&e);
        assert_int_equal(et_ch_url_parse(bad[i], &u, &e), ET_EINVAL);
        assert_true(e.msg[0] != '\0');
    }
}

/* Every byte value survives escaping and unescaping, and an escaped field holds no raw tab,
 * newline or NUL (so a value cannot end its field or row). */
static void test_tsv_round_trip(void **state)
{
    uint8_t all[256];
    struct et_buf b;
    (void)state;
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    et_buf_init(&b, 0);
    assert_int_equal(et__ch_tsv_put(&b, all, sizeof(all)), 0);
    assert_null(memchr(b.data, '\t', b.len));
    assert_null(memchr(b.data, '\n', b.len));
    assert_null(memchr(b.data, '\0', b.len));
    size_t n = et__ch_tsv_unescape((char *)b.data, b.len);
    assert_int_equal(n, sizeof(all));
    assert_memory_equal(b.data, all, sizeof(all));
    et_buf_reset(&b);
    assert_int_equal(et__ch_tsv_put(&b, "a\\b\tc", 5), 0);
    assert_string_equal((const char *)b.data, "a\\\\b\\tc");
    et_buf_free(&b);
}

static void test_sql_literal(void **state)
{
    struct et_buf b;
    (void)state;
    et_buf_init(&b, 0);
    assert_int_equal(et__ch_sql_str(&b, "x' OR '1'='1"), 0);
    assert_string_equal((const char *)b.data, "'x\\' OR \\'1\\'=\\'1'");
    et_buf_reset(&b);
    assert_int_equal(et__ch_sql_str(&b, "a\\'; DROP TABLE t; --\n\x1b"), 0);
    assert_string_equal((const char *)b.data, "'a\\\\\\'; DROP TABLE t; --\\x0A\\x1B'");
    /* Between the outer quotes, every quote is escaped by an odd run of backslashes. */
    const char *s = (const char *)b.data;
    for (size_t i = 1; i + 1 < b.len; i++) {
        if (s[i] != '\'')
            continue;
        size_t k = 0;
        while (i > k && s[i - 1 - k] == '\\')
            k++;
        assert_true(k % 2 == 1);
    }
    et_buf_free(&b);
}

/* The loader's reader counts what the report counts (lines, bad lines, EAS lines per site). */
static void test_rows_match_report(void **state)
{
    static const char *const fx[] = {
        "logs/iis-ex2003-iis6.log", "logs/iis-ex2007-iis6-default-fields.log",
        "logs/iis-ex2010-sync-ping-errors.log", "logs/iis-ex2016-base64-query-windowsmail.log",
        "logs/iis-ex2016-fields-change-frontend-backend.log", "logs/iis-ex2019-no-log-tokens.log",
        "logs/iis-hostile-values-sql-tsv-csv.log",
        "logs/fuzz/iis-eas-line-without-device-id.log",
        "logs/fuzz/iis-fields-line-then-data-stack-layout-copy.log",
    };
    (void)state;
    for (size_t i = 0; i < ET_ARRAY_SIZE(fx); i++) {
        struct et_iis_report_opts o = {0};
        struct et_iis_report_totals t;
        struct et_iis_rows *rr;
        struct et_iis_row row;
        struct et_iis_rows_totals rt;
        struct et_error e;
        uint64_t fe = 0, be = 0, ends = 0;
        int n;
        et_error_clear(&e);
        o.site = ET_IIS_SITE_BOTH;
        struct et_iis_report *r = et_iis_report_new(&o);
        assert_non_null(r);
        assert_int_equal(et_iis_report_add_path(r, et_fixture(fx[i]), &e), 0);
        et_iis_report_totals(r, &t);
        et_iis_report_free(r);
        assert_int_equal(et_iis_rows_open(et_fixture(fx[i]), &rr, &e), 0);
        while ((n = et_iis_rows_next(rr, &row, &e)) > 0) {
            if (n == 2) {
                ends++;
                continue;
            }
            fe += row.stem == ET_IIS_STEM_FRONTEND;
            be += row.stem == ET_IIS_STEM_BACKEND;
        }
        assert_int_equal(n, 0);
        et_iis_rows_totals(rr, 0, &rt);
        et_iis_rows_free(rr);
        assert_int_equal(ends, 1);
        assert_int_equal(rt.lines, t.lines);
        assert_int_equal(rt.bad, t.bad);
        assert_int_equal(rt.bytes, t.bytes);
        assert_int_equal(fe, t.frontend);
        assert_int_equal(be, t.backend);
        assert_int_equal(rt.eas, t.eas);
    }
}

/* A base64 query (Windows Mail) comes out decoded; Log= items come out typed. */
static void test_rows_typed_fields(void **state)
{
    struct et_iis_rows *rr;
    struct et_iis_row row;
    struct et_error e;
    int n, seen = 0;
    (void)state;
    et_error_clear(&e);
    assert_int_equal(et_iis_rows_open(et_fixture("logs/iis-ex2016-base64-query-windowsmail.log"),
                                      &rr, &e), 0);
    while ((n = et_iis_rows_next(rr, &row, &e)) == 1) {
        if (!row.q.base64)
            continue;
        seen++;
        assert_int_equal(row.q.device_id.len, 32);
        assert_memory_equal(row.q.device_type.ptr, "WindowsMail", 11);
        assert_true(row.cmd != ET_EAS_CMD_NONE);
        assert_true(row.t_us > 0);
        assert_int_equal(row.status, 200);
    }
    assert_int_equal(n, 2);
    assert_int_equal(seen, 3);
    et_iis_rows_free(rr);
    assert_int_equal(et_iis_rows_open(et_fixture("logs/iis-ex2010-sync-ping-errors.log"), &rr, &e),
                     0);
    seen = 0;
    while (et_iis_rows_next(rr, &row, &e) == 1)
        if (row.cmd == ET_EAS_CMD_PING && row.log.heartbeat == 1680 && row.log.status == 2)
            seen++;
    assert_int_equal(seen, 1);
    et_iis_rows_free(rr);
}

static void test_rows_missing_file(void **state)
{
    struct et_iis_rows *rr = NULL;
    struct et_error e;
    (void)state;
    et_error_clear(&e);
    assert_true(et_iis_rows_open("/nonexistent/u_ex240101.log", &rr, &e) < 0);
    assert_null(rr);
    assert_non_null(strstr(e.msg, "/nonexistent"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_forms),
        cmocka_unit_test(test_url_refused),
        cmocka_unit_test(test_tsv_round_trip),
        cmocka_unit_test(test_sql_literal),
        cmocka_unit_test(test_rows_match_report),
        cmocka_unit_test(test_rows_typed_fields),
        cmocka_unit_test(test_rows_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
