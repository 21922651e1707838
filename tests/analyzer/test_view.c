/*
 * The view of an exchange (analyzer/view.c): typed server-log facts read the same whichever
 * reader set them, and the one Status every command shows (et_view_status).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "eastrace/analyzer.h"
#include "eastrace/wbxml.h"

static struct et_exchange *eas(const char *cmd, enum et_source_kind src)
{
    struct et_exchange *x = et_exchange_new();
    char t[200];
    assert_non_null(x);
    x->source = src;
    x->has_request = x->has_response = 1;
    x->req.method = "POST";
    snprintf(t, sizeof(t),
             "/Microsoft-Server-ActiveSync?Cmd=%s&User=alice&DeviceId=APPL1&DeviceType=iPhone",
             cmd);
    x->req.target = et_arena_strdup(x->arena, t);
    x->resp.status = 200;
    x->req.body.absent = x->resp.body.absent = 1;
    return x;
}

static void set_body(struct et_exchange *x, struct et_headers *h, struct et_body *b,
                     const char *xml, int as_wbxml)
{
    if (as_wbxml) {
        struct et_buf w;
        struct et_error e;
        et_buf_init(&w, 0);
        et_error_clear(&e);
        assert_int_equal(et_wbxml_encode(xml, strlen(xml), &w, &e), 0);
        assert_int_equal(et_body_set(b, x->arena, w.data, w.len), 0);
        et_buf_free(&w);
        assert_int_equal(et_headers_add(h, x->arena, "Content-Type", 12,
                                        "application/vnd.ms-sync.wbxml", 29), 0);
    } else {
        assert_int_equal(et_body_set(b, x->arena, xml, strlen(xml)), 0);
        assert_int_equal(et_headers_add(h, x->arena, "Content-Type", 12, "text/xml", 8), 0);
    }
}

static const char sync_1_and_3[] =
    "<Sync xmlns=\"AirSync:\"><Collections>"
    "<Collection><SyncKey>42</SyncKey><CollectionId>5</CollectionId><Status>1</Status>"
    "</Collection>"
    "<Collection><SyncKey>17</SyncKey><CollectionId>9</CollectionId><Status>3</Status>"
    "</Collection></Collections></Sync>";

static void test_view_reads_iis_facts(void **state)
{
    struct et_exchange *x = eas("Sync", ET_SRC_IIS);
    struct et_view v;
    const char *root, *parent;
    (void)state;
    x->facts.present = 1;
    x->facts.status = 3;
    x->facts.sync_key = "0";
    x->facts.heartbeat = 900;
    assert_int_equal(et_view_build(x, x->arena, &v), 0);
    assert_int_equal(v.top_status, 3);
    assert_int_equal(et_view_status(&v, &root, &parent), 3);
    assert_string_equal(root, "Sync");
    assert_int_equal(v.ncolls, 1);
    assert_string_equal(v.colls[0].sync_key, "0");
    assert_int_equal(v.heartbeat_req, 900);
    assert_null(v.server_error);
    et_view_reset(&v);
    et_exchange_free(x);
}

static void test_view_facts_error_throttles_and_exception_explains(void **state)
{
    struct et_exchange *x = eas("Sync", ET_SRC_IIS);
    struct et_view v;
    (void)state;
    x->facts.present = 1;
    x->facts.error = "OverBudget";
    assert_int_equal(et_view_build(x, x->arena, &v), 0);
    assert_true(v.throttled);
    assert_string_equal(v.server_error, "OverBudget");
    et_view_reset(&v);
    /* A correlated group carried a mailbox-log exception over: it is the explanation. */
    x->facts.exception = "StoragePermanentException: submission failed";
    assert_int_equal(et_view_build(x, x->arena, &v), 0);
    assert_string_equal(v.server_error, "StoragePermanentException: submission failed");
    assert_true(v.throttled); /* the error name still says throttling */
    et_view_reset(&v);
    et_exchange_free(x);
}

static void test_view_no_facts_no_status(void **state)
{
    struct et_exchange *x = eas("Ping", ET_SRC_CAPTURE);
    struct et_view v;
    const char *root, *parent;
    (void)state;
    assert_int_equal(x->facts.status, -1); /* et_exchange_new: unknown */
    assert_int_equal(x->facts.heartbeat, -1);
    assert_int_equal(et_view_build(x, x->arena, &v), 0);
    assert_int_equal(et_view_status(&v, &root, &parent), -1);
    assert_int_equal(v.heartbeat_req, -1);
    et_view_reset(&v);
    et_exchange_free(x);
}

static void test_view_status_first_not_success_wbxml_and_mailbox_xml(void **state)
{
    const char *root, *parent;
    struct et_view v;
    (void)state;
    for (int wb = 0; wb < 2; wb++) {
        struct et_exchange *x = eas("Sync", wb ? ET_SRC_CAPTURE : ET_SRC_MAILBOX);
        set_body(x, &x->resp.headers, &x->resp.body, sync_1_and_3, wb);
        assert_int_equal(et_view_build(x, x->arena, &v), 0);
        assert_int_equal(v.nstatus, 2);
        assert_int_equal(et_view_status(&v, &root, &parent), 3);
        assert_string_equal(parent, "Collection");
        /* A body beats a logged Status. */
        et_view_reset(&v);
        x->facts.present = 1;
        x->facts.status = 1;
        assert_int_equal(et_view_build(x, x->arena, &v), 0);
        assert_int_equal(et_view_status(&v, &root, &parent), 3);
        et_view_reset(&v);
        et_exchange_free(x);
    }
}

static void test_exchange_time_one_order(void **state)
{
    struct et_exchange *x = et_exchange_new();
    (void)state;
    assert_non_null(x);
    assert_int_equal(et_exchange_time(x), 0);
    x->t.resp_end = 50;
    assert_int_equal(et_exchange_time(x), 50);
    assert_int_equal(et_exchange_end_time(x), 50);
    x->t.resp_begin = 40;
    assert_int_equal(et_exchange_time(x), 40);
    x->t.connect = 10;
    assert_int_equal(et_exchange_time(x), 10);
    x->t.req_begin = 20;
    assert_int_equal(et_exchange_time(x), 20);
    x->t.resp_end = 0;
    assert_int_equal(et_exchange_end_time(x), 40);
    et_exchange_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_view_reads_iis_facts),
        cmocka_unit_test(test_view_facts_error_throttles_and_exception_explains),
        cmocka_unit_test(test_view_no_facts_no_status),
        cmocka_unit_test(test_view_status_first_not_success_wbxml_and_mailbox_xml),
        cmocka_unit_test(test_exchange_time_one_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
