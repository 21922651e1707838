/* IIS reader: line shapes of Exchange 2003-2019, #Fields changes, custom fields, gz, dirs,
 * the Log= grammar, and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "eastrace/iis.h"
#include "eastrace/iisline.h"
#include "et_test.h"

/* Reads every exchange of a source; returns the count, fails on final errors. */
static size_t drain(struct et_source *s, struct et_exchange **keep, size_t nkeep, int *parse_errs)
{
    size_t n = 0;
    for (;;) {
        struct et_exchange *x = NULL;
        struct et_error e;
        et_error_clear(&e);
        int rc = et_source_next(s, &x, &e);
        if (rc == 0)
            break;
        if (rc == ET_EPARSE) {
            if (parse_errs)
                (*parse_errs)++;
            continue;
        }
        assert_int_equal(rc, 1);
        if (n < nkeep)
            keep[n] = x;
        else
            et_exchange_free(x);
        n++;
    }
    return n;
}

static void test_log_items_2010_digit_and_colon_forms(void **state)
{
    (void)state;
    static const char s[] = "V121_Ssnf:T_LdapC4_LdapL16_RpcC45_RpcL125_Ers1_Cpo19781_Fet19999_"
                            "Pk0_Error:DeviceNotProvisioned_As:BlockedP_Mbx:MB.DOMAIN.LOCAL_"
                            "Throttle0_Budget:(D)Conn%3a1%2cHangingConn%3a0_";
    struct et_eas_log lg;
    et_eas_log_parse(s, strlen(s), &lg);
    assert_int_equal(lg.exch2003, 0);
    assert_int_equal(lg.version, 121);
    assert_int_equal(lg.ldap_count, 4);
    assert_int_equal(lg.ldap_latency, 16);
    assert_int_equal(lg.rpc_count, 45);
    assert_int_equal(lg.rpc_latency, 125);
    assert_int_equal(lg.cpo, 19781);
    assert_int_equal(lg.fet, 19999);
    assert_int_equal(lg.throttle, 0);
    assert_int_equal(lg.status, -1);
    assert_int_equal(lg.error.len, strlen("DeviceNotProvisioned"));
    assert_memory_equal(lg.error.ptr, "DeviceNotProvisioned", lg.error.len);
    assert_memory_equal(lg.access_state.ptr, "BlockedP", 8);
    assert_memory_equal(lg.mailbox.ptr, "MB.DOMAIN.LOCAL", 15);
    assert_memory_equal(lg.budget.ptr, "(D)Conn%3a1%2cHangingConn%3a0", lg.budget.len);
    assert_int_equal(lg.nitems, 15);
    char dec[64];
    et_iis_url_decode((const char *)lg.budget.ptr, lg.budget.len, dec, sizeof(dec));
    assert_string_equal(dec, "(D)Conn:1,HangingConn:0");
}

static void test_log_items_newer_colon_numbers(void **state)
{
    (void)state;
    static const char s[] = "Ver1:161_Hb:600_S:1_Sk:0_Ty:Ca_";
    struct et_eas_log lg;
    et_eas_log_parse(s, strlen(s), &lg);
    assert_int_equal(lg.version, 161);
    assert_int_equal(lg.heartbeat, 600);
    assert_int_equal(lg.status, 1);
    assert_int_equal(lg.sync_key, 0);
    assert_memory_equal(lg.folder_type.ptr, "Ca", 2);
}

/* The parse that keeps only some items gives those items and fields as the full parse does,
 * including past the item cap (items beyond it are dropped by both). */
static void check_only_matches_full(const char *s, size_t n)
{
    struct et_eas_log a, b;
    et_eas_log_parse(s, n, &a);
    et_eas_log_parse_only(s, n, "SHEAa", &b);
    assert_int_equal(a.exch2003, b.exch2003);
    assert_int_equal(a.status, b.status);
    assert_int_equal(a.heartbeat, b.heartbeat);
    assert_int_equal(a.sync_key, b.sync_key);
    assert_int_equal(a.dropped, b.dropped);
    assert_int_equal(a.error.len, b.error.len);
    assert_int_equal(a.access_state.len, b.access_state.len);
    if (a.error.len)
        assert_ptr_equal(a.error.ptr, b.error.ptr);
    if (a.access_state.len)
        assert_ptr_equal(a.access_state.ptr, b.access_state.ptr);
    size_t k = 0;
    for (size_t i = 0; i < a.nitems; i++) {
        /* The packed 2003 string is parsed whole by both. */
        if (!a.exch2003 &&
            (a.items[i].name.len == 0 || strchr("SHEAa", a.items[i].name.ptr[0]) == NULL))
            continue;
        assert_true(k < b.nitems);
        assert_ptr_equal(a.items[i].name.ptr, b.items[k].name.ptr);
        assert_int_equal(a.items[i].name.len, b.items[k].name.len);
        assert_int_equal(a.items[i].value.len, b.items[k].value.len);
        assert_int_equal(a.items[i].colon, b.items[k].colon);
        k++;
    }
    assert_int_equal(k, b.nitems);
}

static void test_log_parse_only_keeps_wanted_items_as_full_parse(void **state)
{
    (void)state;
    static const char *const cases[] = {
        ("V141_Sst3_LdapC0_LdapL0_RpcC9_RpcL15_Hb960_Rto1_S1_Erq1_Pk1111111_Sp1_Cpo172_"
         "Fet960000_Mbx:MBX1.CONTOSO.COM_Dc:DC1.CONTOSO.COM_Throttle0_Budget:(A)Conn%3a1_"),
        "V141_Error:TooManyJobsQueued_Throttle1_",
        "V141_Error:DeviceNotProvisioned_As:BlockedP_as:lower_AS:Upper_",
        "Ver1:161_Hb:600_S:1_Sk:0_Ty:Ca_", "_S1__Sk22___", "S", ":S1_:_E:", "S12Sk_Hb-3_",
        "V2TCoSSC:0A0C0D0FS:1A0C0D0SP:1C2I105992S109982R", "",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_only_matches_full(cases[i], strlen(cases[i]));
    /* The common shape, read by the fast scan. */
    struct et_eas_log c;
    static const char common[] = "V141_S1_Hb60_Error:x_Fet1_";
    et_eas_log_parse_only(common, strlen(common), "SHEAa", &c);
    assert_int_equal(c.heartbeat, 60);
    assert_int_equal(c.status, 1);
    /* More items than the cap, wanted ones before and after it. */
    char big[2048];
    size_t n = 0;
    for (int i = 0; i < 60; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, i % 7 == 0 ? "S%d_" : "X%d_", i);
    check_only_matches_full(big, n);
    struct et_eas_log b;
    et_eas_log_parse_only(big, n, "SHEAa", &b);
    assert_int_equal(b.dropped, 60 - ET_EAS_LOG_MAX_ITEMS);
    assert_int_equal(b.status, 42); /* the last S within the cap (S49 and S56 are past it) */
}

/* Random strings over the bytes that matter (separators, wanted and unwanted first
 * bytes), short and long: past the item cap, past 4080 bytes (where the fast scan gives up),
 * ending in every position of a 16-byte block. */
static void test_log_parse_only_random(void **state)
{
    (void)state;
    static const char alpha[] = "SHEAa_:_X1%9b&";
    static char buf[6000];
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int iter = 0; iter < 20000; iter++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t n = iter % 100 == 0 ? 4000 + (size_t)(x % 2000) : (size_t)(x % 300);
        uint64_t y = x;
        for (size_t i = 0; i < n; i++) {
            y = y * 6364136223846793005ULL + 1442695040888963407ULL;
            buf[i] = alpha[(y >> 33) % (sizeof(alpha) - 1)];
        }
        check_only_matches_full(buf, n);
    }
}

static void test_log_items_2003_packed_grammar(void **state)
{
    (void)state;
    static const char s[] = "V2TCoSSC:0A0C0D0FS:1A0C0D0SP:1C2I105992S109982R";
    struct et_eas_log lg;
    et_eas_log_parse(s, strlen(s), &lg);
    assert_int_equal(lg.exch2003, 1);
    assert_int_equal(lg.version, 2);
    assert_memory_equal(lg.folder_type.ptr, "Co", 2);
    assert_int_equal(lg.sync_type.len, 1);
    assert_memory_equal(lg.sync_type.ptr, "S", 1);
    assert_int_equal(lg.nitems, 6);
    assert_memory_equal(lg.items[3].value.ptr, "0A0C0D0F", 8);
    assert_memory_equal(lg.items[4].value.ptr, "1A0C0D0", 7);
    assert_memory_equal(lg.items[5].value.ptr, "1C2I105992S109982R", 18);
}

static void test_log_items_cap_counts_dropped(void **state)
{
    (void)state;
    char s[2048] = "";
    for (int i = 0; i < 60; i++)
        strcat(s, "X1_");
    struct et_eas_log lg;
    et_eas_log_parse(s, strlen(s), &lg);
    assert_int_equal(lg.nitems, ET_EAS_LOG_MAX_ITEMS);
    assert_int_equal(lg.dropped, 60 - ET_EAS_LOG_MAX_ITEMS);
}

static void test_query_scan_and_commands(void **state)
{
    (void)state;
    static const char q[] = "User=alice&DeviceId=ApplDNPX1&DeviceType=iPhone&Cmd=Sync&Log=V141_S1_";
    struct et_iis_query eq;
    et_iis_query_scan(q, strlen(q), &eq);
    assert_memory_equal(eq.cmd.ptr, "Sync", 4);
    assert_memory_equal(eq.user.ptr, "alice", 5);
    assert_memory_equal(eq.device_id.ptr, "ApplDNPX1", 9);
    assert_memory_equal(eq.device_type.ptr, "iPhone", 6);
    assert_memory_equal(eq.log.ptr, "V141_S1_", 8);
    assert_int_equal(eq.base64, 0);
    et_iis_query_scan("jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l", 36, &eq);
    assert_int_equal(eq.base64, 1);
    assert_int_equal(et_eas_cmd_from("GetHierarchy", 12), ET_EAS_CMD_GETHIERARCHY);
    assert_int_equal(et_eas_cmd_from("moveCollection", 14), ET_EAS_CMD_MOVECOLLECTION);
    assert_int_equal(et_eas_cmd_from("Bogus", 5), ET_EAS_CMD_OTHER);
    assert_int_equal(et_iis_stem_classify("/Microsoft-Server-ActiveSync", 28), ET_IIS_STEM_FRONTEND);
    assert_int_equal(et_iis_stem_classify("/Microsoft-Server-ActiveSync/Proxy/default.eas", 46),
                     ET_IIS_STEM_BACKEND);
    assert_int_equal(et_iis_stem_classify("/owa/", 5), ET_IIS_STEM_OTHER);
}

static void test_iis_2010_exchanges_fields_and_meta(void **state)
{
    (void)state;
    struct et_source *s;
    struct et_error e;
    struct et_exchange *x[20] = {0};
    et_error_clear(&e);
    assert_int_equal(et_iis_open(et_fixture("logs/iis-ex2010-sync-ping-errors.log"), NULL, &s, &e), 0);
    size_t n = drain(s, x, 20, NULL);
    et_source_close(s);
    assert_int_equal(n, 15); /* 16 lines, one OWA */
    /* Line 2: FolderSync. */
    assert_int_equal(x[1]->source, ET_SRC_IIS);
    assert_string_equal(x[1]->req.method, "POST");
    assert_string_equal(x[1]->req.target, "/Microsoft-Server-ActiveSync/default.eas?User=alice&"
                                          "DeviceId=ApplDNPX1&DeviceType=iPhone&Cmd=FolderSync&"
                                          "Log=V141_LdapC1_LdapL0_RpcC12_RpcL31_S1_Cpo47_Fet62_");
    assert_int_equal(x[1]->resp.status, 200);
    assert_string_equal(x[1]->client_addr, "198.51.100.7");
    assert_string_equal(x[1]->host, "10.0.0.5");
    assert_int_equal(x[1]->port, 443);
    assert_true(x[1]->req.body.absent);
    char t[40];
    assert_string_equal(et_time_iso8601(x[1]->t.resp_end, t, sizeof(t)), "2011-05-06T10:00:02.000Z");
    assert_int_equal(x[1]->t.resp_end - x[1]->t.req_begin, 62000);
    assert_string_equal(et_headers_get(&x[1]->meta, "cs-username"), "CONTOSO\\alice");
    assert_string_equal(et_headers_get(&x[1]->meta, "time-taken"), "62");
    assert_string_equal(et_headers_get(&x[1]->meta, "eas-cmd"), "FolderSync");
    assert_string_equal(et_headers_get(&x[1]->meta, "eas-device-id"), "ApplDNPX1");
    assert_string_equal(et_headers_get(&x[1]->meta, "Log-RpcC"), "12");
    assert_string_equal(et_headers_get(&x[1]->meta, "Log-S"), "1");
    assert_string_equal(et_headers_get(&x[1]->meta, "eas-site"), "frontend");
    /* Line 9: Nokia user agent, '+' is a space. */
    assert_string_equal(et_headers_get(&x[8]->req.headers, "User-Agent"),
                        "NokiaE72/2.02(0)MailforExchange 3gpp-gba");
    assert_int_equal(x[8]->resp.status, 449);
    assert_string_equal(et_headers_get(&x[8]->meta, "Log-Error"), "DeviceNotProvisioned");
    assert_string_equal(et_headers_get(&x[8]->meta, "Log-As"), "BlockedP");
    /* The same Log= items as typed facts (exchange.h), which the view reads. */
    assert_true(x[1]->facts.present);
    assert_int_equal(x[1]->facts.status, 1);
    assert_null(x[1]->facts.error);
    assert_string_equal(x[8]->facts.error, "DeviceNotProvisioned");
    assert_string_equal(x[8]->facts.access_state, "BlockedP");
    for (size_t i = 0; i < 20; i++)
        et_exchange_free(x[i]);
}

static void test_iis_fields_change_mid_file_custom_field_and_sites(void **state)
{
    (void)state;
    const char *p = et_fixture("logs/iis-ex2016-fields-change-frontend-backend.log");
    struct et_source *s;
    struct et_error e;
    struct et_exchange *x[8] = {0};
    struct et_iis_opts o = {ET_IIS_SITE_AUTO, 0};
    assert_int_equal(et_iis_open(p, &o, &s, &e), 0);
    size_t n = drain(s, x, 8, NULL);
    et_source_close(s);
    assert_int_equal(n, 4); /* the back-end copy of line 3 is not counted */
    assert_string_equal(et_headers_get(&x[2]->meta, "X-Forwarded-For"), "203.0.113.77");
    assert_string_equal(et_headers_get(&x[2]->meta, "sc-bytes"), "1500");
    assert_int_equal(x[2]->t.resp_end - x[2]->t.req_begin, 45000);
    assert_string_equal(et_headers_get(&x[0]->meta, "Log-Hb"), "600");
    assert_int_equal(x[0]->facts.heartbeat, 600);
    assert_string_equal(et_headers_get(&x[0]->meta, "eas-user"), "gina@contoso.com");
    for (size_t i = 0; i < 8; i++)
        et_exchange_free(x[i]);

    o.site = ET_IIS_SITE_BACKEND;
    assert_int_equal(et_iis_open(p, &o, &s, &e), 0);
    assert_int_equal(drain(s, NULL, 0, NULL), 1);
    et_source_close(s);
    o.site = ET_IIS_SITE_BOTH;
    assert_int_equal(et_iis_open(p, &o, &s, &e), 0);
    assert_int_equal(drain(s, NULL, 0, NULL), 5);
    et_source_close(s);
}

static void test_iis_2003_2007_2019_shapes(void **state)
{
    (void)state;
    struct et_source *s;
    struct et_error e;
    struct et_exchange *x[8] = {0};
    assert_int_equal(et_iis_open(et_fixture("logs/iis-ex2003-iis6.log"), NULL, &s, &e), 0);
    assert_int_equal(drain(s, x, 8, NULL), 4);
    et_source_close(s);
    assert_string_equal(et_headers_get(&x[0]->meta, "eas-log-format"), "2003");
    assert_string_equal(et_headers_get(&x[0]->meta, "Log-T"), "Em");
    assert_string_equal(et_headers_get(&x[0]->meta, "Log-P:"), "1C2I2048S4096R");
    assert_string_equal(et_headers_get(&x[0]->meta, "cs-bytes"), "512");
    assert_string_equal(et_headers_get(&x[0]->req.headers, "User-Agent"), "Microsoft-AirSync/3.0");
    assert_string_equal(et_headers_get(&x[1]->meta, "eas-cmd"), "GetHierarchy");
    for (size_t i = 0; i < 8; i++) {
        et_exchange_free(x[i]);
        x[i] = NULL;
    }
    assert_int_equal(et_iis_open(et_fixture("logs/iis-ex2007-iis6-default-fields.log"), NULL, &s, &e), 0);
    assert_int_equal(drain(s, x, 8, NULL), 3);
    et_source_close(s);
    assert_string_equal(et_headers_get(&x[0]->meta, "Log-Cli"), "0A0C0D1F0E");
    assert_string_equal(et_headers_get(&x[0]->meta, "s-sitename"), "W3SVC1");
    assert_int_equal(x[0]->t.resp_end, x[0]->t.req_begin); /* no time-taken column */
    for (size_t i = 0; i < 8; i++) {
        et_exchange_free(x[i]);
        x[i] = NULL;
    }
    assert_int_equal(et_iis_open(et_fixture("logs/iis-ex2019-no-log-tokens.log"), NULL, &s, &e), 0);
    assert_int_equal(drain(s, x, 8, NULL), 3);
    et_source_close(s);
    assert_int_equal(x[1]->resp.status, 500);
    assert_null(et_headers_get(&x[1]->meta, "Log-S"));
    assert_string_equal(et_headers_get(&x[1]->meta, "eas-cmd"), "SendMail");
    for (size_t i = 0; i < 8; i++)
        et_exchange_free(x[i]);
}

static void write_gz(const char *src, const char *dst)
{
    size_t len = 0;
    unsigned char *d = et_test_read_file(src, &len);
    assert_non_null(d);
    gzFile g = gzopen(dst, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, d, (unsigned)len), (int)len);
    gzclose(g);
    free(d);
}

static void copy_file(const char *src, const char *dst)
{
    size_t len = 0;
    unsigned char *d = et_test_read_file(src, &len);
    assert_non_null(d);
    FILE *f = fopen(dst, "wb");
    assert_non_null(f);
    fwrite(d, 1, len, f);
    fclose(f);
    free(d);
}

static void test_iis_gz_and_directory_input(void **state)
{
    (void)state;
    char dir[256], p[512];
    struct et_source *s;
    struct et_error e;
    assert_non_null(et_test_tmpdir(dir, sizeof(dir)));
    snprintf(p, sizeof(p), "%s/u_ex110506.log.gz", dir);
    write_gz(et_fixture("logs/iis-ex2010-sync-ping-errors.log"), p);
    assert_int_equal(et_iis_open(p, NULL, &s, &e), 0);
    assert_int_equal(drain(s, NULL, 0, NULL), 15);
    et_source_close(s);
    snprintf(p, sizeof(p), "%s/W3SVC1", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/W3SVC1/u_ex050308.log", dir);
    copy_file(et_fixture("logs/iis-ex2003-iis6.log"), p);
    snprintf(p, sizeof(p), "%s/readme.txt", dir);
    copy_file(et_fixture("logs/iis-ex2003-iis6.log"), p);
    assert_int_equal(et_iis_open(dir, NULL, &s, &e), 0);
    assert_int_equal(drain(s, NULL, 0, NULL), 15 + 4);
    et_source_close(s);
    et_test_rmtree(dir);
    assert_int_equal(et_iis_open(dir, NULL, &s, &e), ET_EIO);
}

static void test_iis_bad_lines_are_skippable_errors(void **state)
{
    (void)state;
    static const char log[] =
        "#Fields: date time cs-method cs-uri-stem cs-uri-query sc-status\n"
        "2020-01-01 00:00:00 POST /Microsoft-Server-ActiveSync/default.eas Cmd=Sync 200\n"
        "garbage\n"
        "2020-01-01 00:00:01 POST /Microsoft-Server-ActiveSync/default.eas\n"
        "#Fields: \n"
        "2020-01-01 00:00:02 POST /Microsoft-Server-ActiveSync/default.eas Cmd=Ping 200\r\n";
    struct et_source *s;
    struct et_error e;
    int errs = 0;
    assert_int_equal(et_iis_open_mem(log, sizeof(log) - 1, "mem", NULL, &s, &e), 0);
    size_t n = drain(s, NULL, 0, &errs);
    et_source_close(s);
    assert_int_equal(n, 2);
    assert_int_equal(errs, 3);
    /* The error names the line. */
    assert_int_equal(et_iis_open_mem(log, sizeof(log) - 1, "mem", NULL, &s, &e), 0);
    struct et_exchange *x = NULL;
    assert_int_equal(et_source_next(s, &x, &e), 1);
    et_exchange_free(x);
    et_error_clear(&e);
    assert_int_equal(et_source_next(s, &x, &e), ET_EPARSE);
    assert_non_null(strstr(e.msg, "mem line 3"));
    et_source_close(s);
}

static void test_iis_corpus_lines(void **state)
{
    (void)state;
    ET_REQUIRE_CORPUS(p10, "exchange-iis-logs/exchange2010-2011-johanveldhuis.log");
    struct et_source *s;
    struct et_error e;
    struct et_exchange *x[4] = {0};
    /* The corpus lines have no #Fields header; SOURCES.md names the IIS 7.5 default set,
     * which is the reader's default layout minus cs(Referer): prepend it. */
    size_t len = 0;
    unsigned char *d = et_test_read_file(p10, &len);
    assert_non_null(d);
    static const char hdr[] = "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port "
                              "cs-username c-ip cs(User-Agent) sc-status sc-substatus "
                              "sc-win32-status time-taken\n";
    size_t tl = strlen(hdr) + len;
    char *all = malloc(tl);
    memcpy(all, hdr, strlen(hdr));
    memcpy(all + strlen(hdr), d, len);
    assert_int_equal(et_iis_open_mem(all, tl, "corpus2010", NULL, &s, &e), 0);
    assert_int_equal(drain(s, x, 4, NULL), 2);
    et_source_close(s);
    assert_int_equal(x[1]->resp.status, 449);
    assert_string_equal(et_headers_get(&x[1]->meta, "Log-Error"), "DeviceNotProvisioned");
    assert_string_equal(et_headers_get(&x[1]->meta, "Log-As"), "BlockedP");
    assert_string_equal(et_headers_get(&x[1]->meta, "Log-RpcC"), "45");
    for (int i = 0; i < 4; i++)
        et_exchange_free(x[i]);
    free(all);
    free(d);

    ET_REQUIRE_CORPUS(p03, "exchange-iis-logs/exchange2003-2005-techcommunity.log");
    d = et_test_read_file(p03, &len);
    static const char h03[] = "#Fields: date time c-ip cs-method cs-uri-stem cs-uri-query sc-status "
                              "sc-bytes cs-bytes time-taken cs(User-Agent)\n";
    tl = strlen(h03) + len;
    all = malloc(tl);
    memcpy(all, h03, strlen(h03));
    memcpy(all + strlen(h03), d, len);
    assert_int_equal(et_iis_open_mem(all, tl, "corpus2003", NULL, &s, &e), 0);
    memset(x, 0, sizeof(x));
    assert_int_equal(drain(s, x, 4, NULL), 1);
    et_source_close(s);
    assert_string_equal(et_headers_get(&x[0]->meta, "Log-T"), "Co");
    assert_string_equal(et_headers_get(&x[0]->meta, "Log-V"), "2");
    et_exchange_free(x[0]);
    free(all);
    free(d);
}

static void test_iis_allocation_failures(void **state)
{
    (void)state;
    size_t len = 0;
    unsigned char *d = et_test_read_file(et_fixture("logs/iis-ex2010-sync-ping-errors.log"), &len);
    assert_non_null(d);
    for (long k = 1; k < 400; k++) {
        struct et_source *s = NULL;
        struct et_error e;
        et_error_clear(&e);
        et_alloc_fail_after(k);
        int rc = et_iis_open_mem(d, len, "mem", NULL, &s, &e);
        if (rc == 0) {
            for (;;) {
                struct et_exchange *x = NULL;
                rc = et_source_next(s, &x, &e);
                if (rc <= 0 && rc != ET_EPARSE)
                    break;
                et_exchange_free(x);
            }
            assert_true(rc == 0 || rc == ET_ENOMEM);
            et_source_close(s);
        } else {
            assert_int_equal(rc, ET_ENOMEM);
        }
        et_alloc_fail_after(-1);
    }
    free(d);
}

/* Fuzz finding: a #Fields line parsed into a stack copy left column names pointing into it
 * (names are offsets now). Needs the sanitizer build to fail loudly; checks the names here. */
static void test_iis_fuzz_regression_layout_copy(void **state)
{
    (void)state;
    size_t len = 0;
    unsigned char *d =
        et_test_read_file(et_fixture("logs/fuzz/iis-fields-line-then-data-stack-layout-copy.log"), &len);
    assert_non_null(d);
    struct et_source *s;
    struct et_error e;
    assert_int_equal(et_iis_open_mem(d, len, "crash", NULL, &s, &e), 0);
    drain(s, NULL, 0, NULL);
    et_source_close(s);
    free(d);
    static const char log[] = "#Fields: date time cs-uri-stem cs-uri-query custom-one\n"
                              "2020-01-01 00:00:00 /Microsoft-Server-ActiveSync Cmd=Sync v1\n";
    struct et_exchange *x[2] = {0};
    assert_int_equal(et_iis_open_mem(log, sizeof(log) - 1, "mem", NULL, &s, &e), 0);
    assert_int_equal(drain(s, x, 2, NULL), 1);
    et_source_close(s);
    assert_string_equal(et_headers_get(&x[0]->meta, "custom-one"), "v1");
    et_exchange_free(x[0]);
}

/* Lines without a #Fields header get the standard layout with their field count. */
static void test_iis_layout_inferred_without_fields_header(void **state)
{
    static const char iis75[] =
        "2011-05-06 11:29:51 10.0.0.5 POST /Microsoft-Server-ActiveSync/default.eas "
        "User=jdoe&DeviceId=DEV75&DeviceType=iPhone&Cmd=Sync&Log=V121_S1 443 DOM\\jdoe "
        "192.0.2.10 Apple-iPhone/705.18 200 0 0 140\n";
    static const char iis6[] =
        "2009-03-08 09:00:07 W3SVC1 10.0.0.5 POST /Microsoft-Server-ActiveSync "
        "User=jdoe&DeviceId=DEV6&DeviceType=PocketPC&Cmd=Ping 443 DOM\\jdoe 192.0.2.11 "
        "MSFT-PPC/5.1.2000 200 0 0\n";
    static const char ex2003[] =
        "2005-03-08 09:00:07 192.0.2.12 POST /Microsoft-Server-ActiveSync "
        "User=jdoe&DeviceId=DEV3&DeviceType=PocketPC&Cmd=Sync 200 300 400 657 MSFT-PPC/4.0\n";
    const char *logs[] = {iis75, iis6, ex2003};
    const char *devs[] = {"DEV75", "DEV6", "DEV3"};
    const char *cmds[] = {"Sync", "Ping", "Sync"};
    (void)state;
    for (int i = 0; i < 3; i++) {
        struct et_source *s;
        struct et_exchange *x = NULL;
        struct et_error e;
        et_error_clear(&e);
        assert_int_equal(et_iis_open_mem(logs[i], strlen(logs[i]), "mem", NULL, &s, &e), 0);
        assert_int_equal(et_source_next(s, &x, &e), 1);
        assert_non_null(strstr(x->req.target, devs[i]));
        assert_string_equal(et_headers_get(&x->meta, "eas-cmd"), cmds[i]);
        assert_int_equal(x->resp.status, 200);
        assert_non_null(x->client_addr);
        et_exchange_free(x);
        et_source_close(s);
    }
}

/* Outlook / Windows Mail send the MS-ASHTTP base64 query; Exchange logs it as is, sometimes
 * with "&Log=..." after it, and the base64 may end in '=' padding. */
static void test_iis_base64_query_decoded(void **state)
{
    (void)state;
    struct et_iis_query eq;
    static const char padded[] = "jQkJBBCOOh8rTF1uf4CRorPE1eb3BMAnPAALV2luZG93c01haWwIBmFsaWNlMQ==&Log=V141_S1_";
    et_iis_query_scan(padded, strlen(padded), &eq);
    assert_int_equal(eq.base64, 1);
    assert_int_equal(eq.raw.len, strlen(padded) - strlen("&Log=V141_S1_"));
    assert_int_equal(eq.log.len, 8);
    assert_int_equal(eq.device_id.len, 0);
    struct et_arena *a = et_arena_new(1024);
    assert_non_null(a);
    assert_int_equal(et_iis_query_decode_base64(&eq, a), 0);
    assert_int_equal(eq.cmd.len, 10);
    assert_memory_equal(eq.cmd.ptr, "FolderSync", 10);
    assert_memory_equal(eq.user.ptr, "alice1", 6);
    assert_int_equal(eq.device_type.len, 11);
    assert_memory_equal(eq.device_type.ptr, "WindowsMail", 11);
    assert_int_equal(eq.device_id.len, 32);
    assert_memory_equal(eq.device_id.ptr, "8E3A1F2B4C5D6E7F8091A2B3C4D5E6F7", 32);
    /* A plain query is not decoded; bad base64 is an error, not a crash. */
    et_iis_query_scan("Cmd=Sync&User=a", 15, &eq);
    assert_int_equal(et_iis_query_decode_base64(&eq, a), ET_EINVAL);
    et_iis_query_scan("jQ", 2, &eq);
    assert_int_equal(eq.base64, 1);
    assert_true(et_iis_query_decode_base64(&eq, a) < 0);
    et_arena_free(a);

    struct et_source *s;
    struct et_error e;
    struct et_exchange *x[8] = {0};
    et_error_clear(&e);
    assert_int_equal(
        et_iis_open(et_fixture("logs/iis-ex2016-base64-query-windowsmail.log"), NULL, &s, &e), 0);
    size_t n = drain(s, x, 8, NULL);
    et_source_close(s);
    assert_int_equal(n, 4);
    static const char *const cmds[3] = {"FolderSync", "Sync", "Ping"};
    for (int i = 0; i < 3; i++) {
        assert_string_equal(et_headers_get(&x[i]->meta, "eas-query-base64"), "1");
        assert_string_equal(et_headers_get(&x[i]->meta, "eas-cmd"), cmds[i]);
        assert_string_equal(et_headers_get(&x[i]->meta, "eas-device-id"),
                            "8E3A1F2B4C5D6E7F8091A2B3C4D5E6F7");
        assert_string_equal(et_headers_get(&x[i]->meta, "eas-device-type"), "WindowsMail");
        /* The target is what the device sent: Exchange's Log= is not part of it. */
        assert_null(strstr(x[i]->req.target, "Log="));
    }
    assert_string_equal(et_headers_get(&x[0]->meta, "eas-user"), "alice1");
    assert_string_equal(et_headers_get(&x[0]->meta, "Log-S"), "1");
    assert_string_equal(et_headers_get(&x[2]->meta, "Log-Hb"), "900");
    assert_null(et_headers_get(&x[3]->meta, "eas-query-base64"));
    for (size_t i = 0; i < n && i < 8; i++)
        et_exchange_free(x[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iis_layout_inferred_without_fields_header),
        cmocka_unit_test(test_log_items_2010_digit_and_colon_forms),
        cmocka_unit_test(test_log_items_newer_colon_numbers),
        cmocka_unit_test(test_log_items_2003_packed_grammar),
        cmocka_unit_test(test_log_parse_only_keeps_wanted_items_as_full_parse),
        cmocka_unit_test(test_log_parse_only_random),
        cmocka_unit_test(test_log_items_cap_counts_dropped),
        cmocka_unit_test(test_query_scan_and_commands),
        cmocka_unit_test(test_iis_base64_query_decoded),
        cmocka_unit_test(test_iis_2010_exchanges_fields_and_meta),
        cmocka_unit_test(test_iis_fields_change_mid_file_custom_field_and_sites),
        cmocka_unit_test(test_iis_2003_2007_2019_shapes),
        cmocka_unit_test(test_iis_gz_and_directory_input),
        cmocka_unit_test(test_iis_bad_lines_are_skippable_errors),
        cmocka_unit_test(test_iis_corpus_lines),
        cmocka_unit_test(test_iis_allocation_failures),
        cmocka_unit_test(test_iis_fuzz_regression_layout_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
