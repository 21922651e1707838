/* IIS reports: counts checked against hand counts of the fixtures, CSV column order, HTML
 * shape, JSON, threads over byte ranges with a #Fields change, allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "eastrace/iisreport.h"
#include "et_test.h"

#define FIX2010 "logs/iis-ex2010-sync-ping-errors.log"

/* Runs a report into a malloc'd string. */
static char *run(const struct et_iis_report_opts *o, const char *fixture, enum et_report_format fmt,
                 struct et_iis_report_totals *t)
{
    struct et_iis_report *r = et_iis_report_new(o);
    struct et_error e;
    char *buf = NULL;
    size_t len = 0;
    assert_non_null(r);
    et_error_clear(&e);
    assert_int_equal(et_iis_report_add_path(r, et_fixture(fixture), &e), 0);
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(et_iis_report_write(r, f, fmt, &e), 0);
    fclose(f);
    if (t)
        et_iis_report_totals(r, t);
    et_iis_report_free(r);
    return buf;
}

/* The CSV line that starts with key (a copy, without CRLF). */
static char *csv_line(const char *csv, const char *key)
{
    static char line[4096];
    const char *p = csv;
    while (p && *p) {
        const char *e = strstr(p, "\r\n");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (strncmp(p, key, strlen(key)) == 0 && p[strlen(key)] == ',') {
            snprintf(line, sizeof(line), "%.*s", (int)l, p);
            return line;
        }
        p = e ? e + 2 : NULL;
    }
    return NULL;
}

static void test_hits_csv_columns_and_hand_counts(void **state)
{
    (void)state;
    struct et_iis_report_opts o = {0};
    struct et_iis_report_totals t;
    char *csv = run(&o, FIX2010, ET_REPORT_CSV, &t);
    assert_int_equal(t.lines, 16);
    assert_int_equal(t.eas, 15);
    assert_int_equal(t.devices, 3);
    /* The script's default columns first. */
    static const char hdr[] = "DeviceID,Hits,Ping,Sync,FolderSync,DeviceType,User-Agent,User,"
                              "cs-username,SendMail,SmartReply,SmartForward,MeetingResponse,"
                              "GetAttachment,ItemOperations,Provision,Settings,Search,";
    assert_int_equal(strncmp(csv, hdr, sizeof(hdr) - 1), 0);
    /* Sorted by hits: alice 8, bob 5, carol 2. */
    const char *second = strstr(csv, "\r\n") + 2;
    assert_int_equal(strncmp(second, "ApplDNPX1,8,1,3,1,iPhone,Apple-iPhone4C1/902.206,alice,", 55),
                     0);
    char *bob = csv_line(csv, "androidc12345");
    assert_non_null(bob);
    static const char bobl[] = "androidc12345,5,1,3,0,Android,Android-Mail/7.5.1,bob,CONTOSO\\bob,"
                               "0,0,0,1,";
    assert_int_equal(strncmp(bob, bobl, sizeof(bobl) - 1), 0);
    char *carol = csv_line(csv, "NokiaXYZ");
    assert_non_null(carol);
    /* The user agent's '+' became a space. */
    assert_non_null(strstr(carol, "NokiaE72/2.02(0)MailforExchange 3gpp-gba"));
    free(csv);
}

/* Column index of name in the CSV header. */
static int col_of(const char *csv, const char *name)
{
    char hdr[4096];
    const char *e = strstr(csv, "\r\n");
    snprintf(hdr, sizeof(hdr), "%.*s", (int)(e - csv), csv);
    int i = 0;
    for (char *tok = hdr, *c; tok; tok = c ? c + 1 : NULL, i++) {
        c = strchr(tok, ',');
        if (c)
            *c = '\0';
        if (strcmp(tok, name) == 0)
            return i;
    }
    return -1;
}

static const char *cell(const char *line, int idx)
{
    static char v[256];
    const char *p = line;
    for (int i = 0; i < idx && p; i++) {
        p = strchr(p, ',');
        if (p)
            p++;
    }
    if (p == NULL)
        return "";
    const char *c = strchr(p, ',');
    snprintf(v, sizeof(v), "%.*s", (int)(c ? (size_t)(c - p) : strlen(p)), p);
    return v;
}

static void test_hits_http_and_error_columns(void **state)
{
    (void)state;
    struct et_iis_report_opts o = {0};
    char *csv = run(&o, FIX2010, ET_REPORT_CSV, NULL);
    char a[4096], b[4096], c[4096];
    snprintf(a, sizeof(a), "%s", csv_line(csv, "ApplDNPX1"));
    snprintf(b, sizeof(b), "%s", csv_line(csv, "androidc12345"));
    snprintf(c, sizeof(c), "%s", csv_line(csv, "NokiaXYZ"));
    assert_string_equal(cell(a, col_of(csv, "5xx")), "1");
    assert_string_equal(cell(a, col_of(csv, "500")), "1");
    assert_string_equal(cell(a, col_of(csv, "MailboxQuotaExceeded")), "1");
    assert_string_equal(cell(a, col_of(csv, "ServerError")), "1");
    assert_string_equal(cell(a, col_of(csv, "GetItemEstimate")), "1");
    assert_string_equal(cell(a, col_of(csv, "OPTIONS")), "1");
    assert_string_equal(cell(a, col_of(csv, "time-taken-max")), "1680000");
    assert_string_equal(cell(b, col_of(csv, "503")), "2");
    assert_string_equal(cell(b, col_of(csv, "TooManyJobsQueued")), "1");
    assert_string_equal(cell(b, col_of(csv, "OverBudget")), "1");
    assert_string_equal(cell(b, col_of(csv, "SyncStateNotFound")), "1");
    assert_string_equal(cell(c, col_of(csv, "4xx")), "2");
    assert_string_equal(cell(c, col_of(csv, "DeviceNotProvisioned")), "1");
    assert_string_equal(cell(c, col_of(csv, "AccessDenied")), "1");
    assert_string_equal(cell(c, col_of(csv, "Settings")), "1");
    assert_string_equal(cell(c, col_of(csv, "Provision")), "1");
    free(csv);
}

static void test_hits_filters_minimum_top_date_device_hourly(void **state)
{
    (void)state;
    struct et_iis_report_opts o = {0};
    struct et_iis_report_totals t;
    o.minimum_hits = 3;
    char *csv = run(&o, FIX2010, ET_REPORT_CSV, NULL);
    assert_non_null(csv_line(csv, "ApplDNPX1"));
    assert_non_null(csv_line(csv, "androidc12345"));
    assert_null(csv_line(csv, "NokiaXYZ"));
    free(csv);
    memset(&o, 0, sizeof(o));
    o.top = 1;
    csv = run(&o, FIX2010, ET_REPORT_CSV, NULL);
    assert_non_null(csv_line(csv, "ApplDNPX1"));
    assert_null(csv_line(csv, "androidc12345"));
    free(csv);
    memset(&o, 0, sizeof(o));
    o.date = "05-07-2011"; /* the script's MM-DD-YYYY */
    csv = run(&o, FIX2010, ET_REPORT_CSV, &t);
    assert_int_equal(t.eas, 1);
    assert_int_equal(strncmp(csv_line(csv, "ApplDNPX1"), "ApplDNPX1,1,0,1,", 16), 0);
    free(csv);
    memset(&o, 0, sizeof(o));
    o.device = "androidC12345"; /* case-insensitive */
    csv = run(&o, FIX2010, ET_REPORT_CSV, &t);
    assert_int_equal(t.eas, 5);
    assert_null(csv_line(csv, "ApplDNPX1"));
    free(csv);
    memset(&o, 0, sizeof(o));
    o.interval = 3600;
    o.device = "ApplDNPX1";
    csv = run(&o, FIX2010, ET_REPORT_CSV, NULL);
    /* 10:00 hour: 6 hits; 12:00: 1; next day 09:00: 1 */
    assert_non_null(strstr(csv, "ApplDNPX1,6,1,2,1,"));
    assert_non_null(strstr(csv, ",2011-05-06 10:00:00,"));
    assert_non_null(strstr(csv, ",2011-05-06 12:00:00,"));
    assert_non_null(strstr(csv, ",2011-05-07 09:00:00,"));
    free(csv);
}

static void test_named_reports_hand_counts(void **state)
{
    (void)state;
    struct et_iis_report_opts o = {0};
    o.kind = ET_IIS_REPORT_SYNCKEY0;
    char *csv = run(&o, FIX2010, ET_REPORT_CSV, NULL);
    assert_string_equal(csv, "User,DeviceID,DeviceType,SyncKey0-Syncs\r\n"
                             "bob,androidc12345,Android,2\r\n"
                             "alice,ApplDNPX1,iPhone,1\r\n");
    free(csv);
    o.kind = ET_IIS_REPORT_SYNCS_BY_SYNCKEY;
    csv = run(&o, FIX2010, ET_REPORT_CSV, NULL);
    assert_non_null(strstr(csv, "alice,ApplDNPX1,iPhone,1234567,1\r\n"));
    assert_non_null(strstr(csv, "bob,androidc12345,Android,0,2\r\n"));
    free(csv);
    o.kind = ET_IIS_REPORT_SENDMAIL;
    csv = run(&o, FIX2010, ET_REPORT_CSV, NULL);
    assert_non_null(strstr(csv, "2011-05-06 10:30:00,alice,ApplDNPX1,iPhone,SendMail,200,0,0,120,"
                                "MailboxQuotaExceeded,AllowedG,"));
    assert_int_equal(strchr(strstr(csv, "\r\n") + 2, '\n') - csv + 1, (long)strlen(csv));
    free(csv);
    o.kind = ET_IIS_REPORT_EAS_ERRORS;
    struct et_iis_report_totals t;
    csv = run(&o, FIX2010, ET_REPORT_JSON, &t);
    /* 7 rows: lines 6, 8, 9, 11, 12, 14, 16 (the Ping with Status 2 is not an error) */
    int rows = 0;
    for (const char *p = strstr(csv, "\"rows\":["); (p = strstr(p + 1, "[\"")) != NULL;)
        rows++;
    assert_int_equal(rows, 7);
    free(csv);
    o.kind = ET_IIS_REPORT_RPC;
    csv = run(&o, FIX2010, ET_REPORT_CSV, NULL);
    assert_non_null(strstr(csv, "2011-05-06 10:00:09,alice,"));
    assert_null(strstr(csv, "10:00:05"));
    free(csv);
    o.kind = ET_IIS_REPORT_CALENDAR;
    csv = run(&o, FIX2010, ET_REPORT_CSV, NULL);
    assert_non_null(strstr(csv, "11:00:00,bob"));
    assert_non_null(strstr(csv, "11:00:30,bob"));
    assert_non_null(strstr(csv, "11:06:00,bob,androidc12345,Android,MeetingResponse"));
    assert_null(strstr(csv, "alice"));
    free(csv);
    o.kind = ET_IIS_REPORT_DEVICE_TIMELINE;
    o.device = "NokiaXYZ";
    csv = run(&o, FIX2010, ET_REPORT_CSV, NULL);
    const char *s1 = strstr(csv, "11:05:00"), *s2 = strstr(csv, "12:00:00");
    assert_non_null(s1);
    assert_non_null(s2);
    assert_true(s1 < s2);
    free(csv);
    memset(&o, 0, sizeof(o));
    o.kind = ET_IIS_REPORT_ERRORS;
    csv = run(&o, FIX2010, ET_REPORT_CSV, NULL);
    assert_non_null(strstr(csv, "TooManyJobsQueued,1\r\n"));
    assert_non_null(strstr(csv, "ItemNotFound,0\r\n"));
    assert_non_null(strstr(csv, "SyncStateNotFound,1\r\n"));
    free(csv);
    o.kind = ET_IIS_REPORT_TOP;
    csv = run(&o, FIX2010, ET_REPORT_TABLE, NULL);
    assert_non_null(strstr(csv, "== top-users"));
    assert_non_null(strstr(csv, "== top-devices"));
    free(csv);
}

static void test_other_versions_and_sites(void **state)
{
    (void)state;
    struct et_iis_report_opts o = {0};
    struct et_iis_report_totals t;
    char *csv = run(&o, "logs/iis-ex2003-iis6.log", ET_REPORT_CSV, &t);
    assert_int_equal(t.eas, 4);
    char l[4096];
    snprintf(l, sizeof(l), "%s", csv_line(csv, "A1B2C3D4E5F60718293A4B5C6D7E8F90"));
    assert_string_equal(cell(l, col_of(csv, "GetHierarchy")), "1");
    assert_string_equal(cell(l, col_of(csv, "sc-bytes")), "3100");
    assert_string_equal(cell(l, col_of(csv, "cs-bytes")), "812");
    assert_string_equal(cell(l, col_of(csv, "time-taken-avg")), "410");
    snprintf(l, sizeof(l), "%s", csv_line(csv, "SP0099887766"));
    assert_string_equal(cell(l, col_of(csv, "CreateCollection")), "1");
    free(csv);
    csv = run(&o, "logs/iis-ex2016-fields-change-frontend-backend.log", ET_REPORT_CSV, &t);
    assert_int_equal(t.frontend, 4);
    assert_int_equal(t.backend, 1);
    assert_int_equal(t.eas, 4);
    assert_int_equal(t.site_used, ET_IIS_SITE_FRONTEND);
    assert_int_equal(strncmp(csv_line(csv, "WP8GINA01"), "WP8GINA01,3,1,1,1,WP8,", 22), 0);
    free(csv);
    o.site = ET_IIS_SITE_BACKEND;
    csv = run(&o, "logs/iis-ex2016-fields-change-frontend-backend.log", ET_REPORT_CSV, &t);
    assert_int_equal(t.eas, 1);
    free(csv);
}

static void test_html_is_self_contained_with_svg_and_tables(void **state)
{
    (void)state;
    struct et_iis_report_opts o = {0};
    char *h = run(&o, FIX2010, ET_REPORT_HTML, NULL);
    assert_int_equal(strncmp(h, "<!DOCTYPE html>", 15), 0);
    assert_non_null(strstr(h, "<style>"));
    assert_non_null(strstr(h, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_non_null(strstr(h, "</svg>"));
    assert_non_null(strstr(h, "<th>DeviceID</th>"));
    assert_non_null(strstr(h, "</table>"));
    assert_non_null(strstr(h, "</html>"));
    assert_null(strstr(h, "<script"));
    assert_null(strstr(h, "http://" "example")); /* nothing fetched from elsewhere */
    /* Tags balance for the elements we emit. */
    int open = 0, close = 0;
    for (const char *p = h; (p = strstr(p, "<table>")) != NULL; p++)
        open++;
    for (const char *p = h; (p = strstr(p, "</table>")) != NULL; p++)
        close++;
    assert_int_equal(open, close);
    assert_true(open >= 2);
    /* 3 hours with traffic on 05-06 (10, 11, 12) and 1 on 05-07. */
    int rects = 0;
    for (const char *p = h; (p = strstr(p, "<rect ")) != NULL; p++)
        rects++;
    assert_int_equal(rects, 4);
    free(h);
}

/* A big file cut between two threads, with a #Fields change only in the first half: the
 * second worker must recount its prefix under the right layout. */
static void test_threads_recount_prefix_after_fields_change(void **state)
{
    (void)state;
    char dir[256], p[512];
    assert_non_null(et_test_tmpdir(dir, sizeof(dir)));
    snprintf(p, sizeof(p), "%s/u_ex160901.log", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query sc-status time-taken\n", f);
    fputs("2016-09-01 08:00:00 10.0.0.1 POST /Microsoft-Server-ActiveSync/default.eas "
          "User=u&DeviceId=D0&DeviceType=T&Cmd=Ping 200 5\n", f);
    /* Same columns plus one in the middle: a reader with the old layout would miscount. */
    fputs("#Fields: date time s-ip s-port cs-method cs-uri-stem cs-uri-query sc-status time-taken\n", f);
    long lines = 0;
    while (ftell(f) < 12L * 1024 * 1024) {
        fprintf(f, "2016-09-01 09:%02ld:%02ld 10.0.0.1 443 POST /Microsoft-Server-ActiveSync/"
                   "default.eas User=u%ld&DeviceId=D%ld&DeviceType=T&Cmd=Sync 200 7\n",
                (lines / 60) % 60, lines % 60, lines % 7, lines % 7);
        lines++;
    }
    fclose(f);
    for (int threads = 1; threads <= 3; threads++) {
        struct et_iis_report_opts o = {0};
        o.threads = threads;
        struct et_iis_report *r = et_iis_report_new(&o);
        struct et_error e;
        et_error_clear(&e);
        assert_int_equal(et_iis_report_add_path(r, p, &e), 0);
        struct et_iis_report_totals t;
        et_iis_report_totals(r, &t);
        assert_int_equal(t.eas, (uint64_t)lines + 1);
        assert_int_equal(t.bad, 0);
        assert_int_equal(t.devices, 7); /* D0..D6 */
        et_iis_report_free(r);
    }
    et_test_rmtree(dir);
}

static void test_report_allocation_failures(void **state)
{
    (void)state;
    size_t len = 0;
    unsigned char *d = et_test_read_file(et_fixture(FIX2010), &len);
    assert_non_null(d);
    for (int kind = 0; kind < ET_IIS_REPORT_COUNT; kind++) {
        for (long k = 1; k < 120; k++) {
            struct et_iis_report_opts o = {0};
            o.kind = (enum et_iis_report_kind)kind;
            o.device = "ApplDNPX1";
            et_alloc_fail_after(k);
            struct et_iis_report *r = et_iis_report_new(&o);
            if (r != NULL) {
                struct et_error e;
                et_error_clear(&e);
                int rc = et_iis_report_add_mem(r, d, len, &e);
                assert_true(rc == 0 || rc == ET_ENOMEM);
                FILE *f = fopen("/dev/null", "w");
                rc = et_iis_report_write(r, f, ET_REPORT_JSON, &e);
                assert_true(rc == 0 || rc == ET_ENOMEM);
                fclose(f);
                et_iis_report_free(r);
            }
            et_alloc_fail_after(-1);
        }
    }
    free(d);
}

/* Fuzz findings: an EAS line without Log= (or without DeviceId) left a NULL slice that the
 * hot path offset or hashed. */
static void test_report_fuzz_regression_line_without_log(void **state)
{
    (void)state;
    size_t len = 0;
    static const char *const crashers[] = {"logs/fuzz/iis-eas-line-without-log-null-slice.log",
                                           "logs/fuzz/iis-eas-line-without-device-id.log"};
    for (size_t c = 0; c < 2; c++) {
    unsigned char *d = et_test_read_file(et_fixture(crashers[c]), &len);
    assert_non_null(d);
    for (int kind = 0; kind < ET_IIS_REPORT_COUNT; kind++) {
        struct et_iis_report_opts o = {0};
        o.kind = (enum et_iis_report_kind)kind;
        struct et_iis_report *r = et_iis_report_new(&o);
        struct et_error e;
        assert_non_null(r);
        assert_int_equal(et_iis_report_add_mem(r, d, len, &e), 0);
        FILE *f = fopen("/dev/null", "w");
        assert_int_equal(et_iis_report_write(r, f, ET_REPORT_HTML, &e), 0);
        fclose(f);
        et_iis_report_free(r);
    }
    free(d);
    }
}

/* Base64 queries (Outlook, Windows Mail) count under their decoded DeviceId, DeviceType, User
 * and command, beside plain lines. */
static void test_report_hits_base64_queries_decoded(void **state)
{
    (void)state;
    struct et_iis_report_opts o;
    struct et_iis_report_totals t;
    memset(&o, 0, sizeof(o));
    char *csv = run(&o, "logs/iis-ex2016-base64-query-windowsmail.log", ET_REPORT_CSV, &t);
    assert_int_equal(t.eas, 4);
    assert_int_equal(t.devices, 2);
    /* DeviceID,Hits,Ping,Sync,FolderSync,DeviceType,User-Agent,User,... */
    assert_non_null(strstr(csv, "8E3A1F2B4C5D6E7F8091A2B3C4D5E6F7,3,1,1,1,WindowsMail,"
                                "MSFT-WIN-3/10.0.19045,alice1,"));
    assert_non_null(strstr(csv, "ANDROIDC1,1,0,1,0,Android,"));
    free(csv);
    o.device = "8e3a1f2b4c5d6e7f8091a2b3c4d5e6f7";
    csv = run(&o, "logs/iis-ex2016-base64-query-windowsmail.log", ET_REPORT_CSV, &t);
    assert_int_equal(t.eas, 3);
    assert_null(strstr(csv, "ANDROIDC1"));
    free(csv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_hits_base64_queries_decoded),
        cmocka_unit_test(test_hits_csv_columns_and_hand_counts),
        cmocka_unit_test(test_hits_http_and_error_columns),
        cmocka_unit_test(test_hits_filters_minimum_top_date_device_hourly),
        cmocka_unit_test(test_named_reports_hand_counts),
        cmocka_unit_test(test_other_versions_and_sites),
        cmocka_unit_test(test_html_is_self_contained_with_svg_and_tables),
        cmocka_unit_test(test_threads_recount_prefix_after_fields_change),
        cmocka_unit_test(test_report_allocation_failures),
        cmocka_unit_test(test_report_fuzz_regression_line_without_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
