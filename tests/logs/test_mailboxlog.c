/* Mailbox log reader: entries, multi-line values, duplicates by Identifier, elided bodies,
 * truncated last entry, allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "eastrace/mailboxlog.h"
#include "et_test.h"

static size_t read_all(const char *path, struct et_exchange **xs, size_t max, int *final_rc,
                       struct et_error *e)
{
    struct et_source *s;
    size_t n = 0;
    et_error_clear(e);
    assert_int_equal(et_mailboxlog_open(path, &s, e), 0);
    for (;;) {
        struct et_exchange *x = NULL;
        et_error_clear(e);
        int rc = et_source_next(s, &x, e);
        if (rc <= 0) {
            *final_rc = rc;
            break;
        }
        assert_true(n < max);
        xs[n++] = x;
    }
    et_source_close(s);
    return n;
}

static void test_mailboxlog_entries_fields_and_dedup(void **state)
{
    (void)state;
    struct et_exchange *x[8] = {0};
    struct et_error e;
    int rc;
    size_t n = read_all(et_fixture("logs/mailboxlog-sync-ping-sendmail.txt"), x, 8, &rc, &e);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 4); /* entry 4 repeats entry 1's Identifier */
    /* Entry 1: Sync with SyncKey 0, verbose XML bodies. */
    assert_int_equal(x[0]->source, ET_SRC_MAILBOX);
    assert_string_equal(x[0]->req.method, "POST");
    assert_string_equal(x[0]->req.target, "/Microsoft-Server-ActiveSync/default.eas?Cmd=Sync&"
                                          "User=jdoe&DeviceId=ApplC39GQ0AB&DeviceType=iPhone");
    assert_int_equal(x[0]->req.http_major, 1);
    assert_int_equal(x[0]->req.http_minor, 1);
    assert_string_equal(et_headers_get(&x[0]->req.headers, "Content-Type"), "text/xml");
    assert_string_equal(et_headers_get(&x[0]->meta, "RequestBody-logged-content-type"),
                        "application/vnd.ms-sync.wbxml");
    assert_string_equal(et_headers_get(&x[0]->req.headers, "X-MS-PolicyKey"), "1307199584");
    assert_string_equal(x[0]->host, "mail.contoso.com");
    assert_int_equal(x[0]->resp.status, 200);
    assert_string_equal(x[0]->resp.reason, "OK");
    assert_string_equal(et_headers_get(&x[0]->meta, "body-format"), "xml");
    assert_string_equal(et_headers_get(&x[0]->meta, "ServerName"), "EXCH01");
    assert_string_equal(et_headers_get(&x[0]->meta, "AccessStateReason"), "Global");
    assert_string_equal(et_headers_get(&x[0]->meta, "Identifier"), "4B2E1A32");
    const char *body = (const char *)x[0]->req.body.data;
    assert_int_equal(strncmp(body, "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<Sync", 45), 0);
    assert_int_equal(body[x[0]->req.body.len - 1], '>');
    assert_int_equal(x[0]->t.resp_end - x[0]->t.req_begin, 375000);

    /* Entry 2: Ping; US-style times; a blank line inside the request body stays in it. */
    assert_int_equal(x[1]->t.resp_end - x[1]->t.req_begin, 330LL * 1000000);
    assert_non_null(strstr((const char *)x[1]->req.body.data, "<Id>2</Id>\n\n      <Class>Calendar"));
    assert_string_equal(et_headers_get(&x[1]->meta, "WasPending"), "True");
    /* Entry 3: SendMail with elided bodies. */
    assert_true(x[2]->req.body.absent);
    assert_int_equal(x[2]->req.body.wire_len, 1234);
    assert_string_equal(et_headers_get(&x[2]->meta, "RequestBody-elided-bytes"), "1234");
    /* Entry 5: no response, an exception field spanning lines. */
    assert_string_equal(et_headers_get(&x[3]->meta, "Log Entry"), "5");
    const char *ex = et_headers_get(&x[3]->meta,
                                    "Microsoft.Exchange.Data.Storage.StoragePermanentException_Exception");
    assert_non_null(ex);
    assert_non_null(strstr(ex, "The device is blocked.\n   at Microsoft.Exchange.AirSync"));
    /* The typed fact: the exception's first line only. */
    assert_true(x[3]->facts.present);
    assert_non_null(x[3]->facts.exception);
    assert_null(strchr(x[3]->facts.exception, '\n'));
    assert_non_null(strstr(x[3]->facts.exception, "The device is blocked."));
    assert_string_equal(et_headers_get(&x[3]->meta, "DeviceAccessControlRule") != NULL
                            ? "ok" : "missing", "ok");
    assert_int_equal(x[3]->has_response, 0);
    for (size_t i = 0; i < 8; i++)
        et_exchange_free(x[i]);
}

static void test_mailboxlog_truncated_last_entry_names_the_line(void **state)
{
    (void)state;
    struct et_exchange *x[4] = {0};
    struct et_error e;
    int rc;
    size_t n = read_all(et_fixture("logs/mailboxlog-truncated-last-entry.txt"), x, 4, &rc, &e);
    assert_int_equal(n, 2); /* nothing already read is lost */
    assert_int_equal(rc, ET_ETRUNC);
    assert_non_null(strstr(e.msg, "log entry 2 starting at line 67"));
    assert_non_null(strstr(e.msg, "ends at line 93"));
    assert_int_equal(x[1]->err.code, ET_ETRUNC);
    assert_int_equal(x[0]->err.code, 0);
    for (size_t i = 0; i < 4; i++)
        et_exchange_free(x[i]);
}


static void test_mailboxlog_garbage_and_empty(void **state)
{
    (void)state;
    static const char *inputs[] = {
        "", "no entries here\n", "-----------------\n Log Entry: 1\n",
        ("-----------------\n Log Entry: x\n-----------------\nA :\n\nB :\nv\n\n"
         "-----------------\n"),
    };
    for (size_t i = 0; i < ET_ARRAY_SIZE(inputs); i++) {
        struct et_source *s;
        struct et_error e;
        et_error_clear(&e);
        assert_int_equal(et_mailboxlog_open_mem(inputs[i], strlen(inputs[i]), "mem", &s, &e), 0);
        for (int k = 0; k < 10; k++) {
            struct et_exchange *x = NULL;
            int rc = et_source_next(s, &x, &e);
            et_exchange_free(x);
            if (rc <= 0)
                break;
        }
        et_source_close(s);
    }
}

static void test_mailboxlog_allocation_failures(void **state)
{
    (void)state;
    size_t len = 0;
    unsigned char *d = et_test_read_file(et_fixture("logs/mailboxlog-sync-ping-sendmail.txt"), &len);
    assert_non_null(d);
    for (long k = 1; k < 300; k++) {
        struct et_source *s = NULL;
        struct et_error e;
        et_error_clear(&e);
        et_alloc_fail_after(k);
        int rc = et_mailboxlog_open_mem(d, len, "mem", &s, &e);
        if (rc == 0) {
            for (;;) {
                struct et_exchange *x = NULL;
                rc = et_source_next(s, &x, &e);
                et_exchange_free(x);
                if (rc <= 0)
                    break;
            }
            assert_true(rc == 0 || rc == ET_ENOMEM);
            et_source_close(s);
        }
        et_alloc_fail_after(-1);
    }
    free(d);
}

/* Fuzz finding: " Log Entry: 5" as the very last bytes (no newline) was read with strtol
 * past the end of the input. */
static void test_mailboxlog_fuzz_regression_entry_number_at_end(void **state)
{
    (void)state;
    size_t len = 0;
    unsigned char *d =
        et_test_read_file(et_fixture("logs/fuzz/mailboxlog-entry-number-at-buffer-end.txt"), &len);
    assert_non_null(d);
    /* Copy to an exact-size heap block so ASan sees a read past the end. */
    unsigned char *exact = malloc(len);
    memcpy(exact, d, len);
    struct et_source *s;
    struct et_error e;
    assert_int_equal(et_mailboxlog_open_mem(exact, len, "crash", &s, &e), 0);
    for (int k = 0; k < 100; k++) {
        struct et_exchange *x = NULL;
        int rc = et_source_next(s, &x, &e);
        et_exchange_free(x);
        if (rc <= 0)
            break;
    }
    et_source_close(s);
    free(exact);
    free(d);
}

/* Fuzz finding: a "[N bytes]" body placeholder with more digits than a long holds overflowed
 * (signed overflow, UB). Such a value is not a byte count; the body is kept as text. */
static void test_mailboxlog_fuzz_regression_elided_count_overflow(void **state)
{
    (void)state;
    size_t len = 0;
    unsigned char *d = et_test_read_file(
        et_fixture("logs/fuzz/mailboxlog-elided-byte-count-overflows-long.txt"), &len);
    assert_non_null(d);
    struct et_source *s;
    struct et_error e;
    et_error_clear(&e);
    assert_int_equal(et_mailboxlog_open_mem(d, len, "crash", &s, &e), 0);
    for (int k = 0; k < 100; k++) {
        struct et_exchange *x = NULL;
        int rc = et_source_next(s, &x, &e);
        et_exchange_free(x);
        if (rc <= 0)
            break;
    }
    et_source_close(s);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mailboxlog_fuzz_regression_elided_count_overflow),
        cmocka_unit_test(test_mailboxlog_entries_fields_and_dedup),
        cmocka_unit_test(test_mailboxlog_truncated_last_entry_names_the_line),
        cmocka_unit_test(test_mailboxlog_garbage_and_empty),
        cmocka_unit_test(test_mailboxlog_allocation_failures),
        cmocka_unit_test(test_mailboxlog_fuzz_regression_entry_number_at_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
