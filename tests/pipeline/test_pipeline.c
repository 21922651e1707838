/*
 * The exchange pipeline: numbering, merge order and the reordering window, correlation and
 * the facts it carries, filters that do not renumber, readers that always end, format
 * sniffing. Sources are small in-memory readers behind the real et_source interface, plus
 * the fixture files the CLI tests read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "et_test.h"

#include "eastrace/pipeline.h"

#define T0 1714557600000000LL /* 2024-05-01T10:00:00Z */
#define SEC 1000000LL
#define MS 1000LL

/* ---- a scripted source ------------------------------------------------------------------ */

struct step {
    uint64_t id;
    int64_t t;        /* request start; 0: no exchange, an error instead */
    const char *cmd;  /* EAS command */
    enum et_source_kind kind;
    const char *exception;
    int body;         /* give it a request body (the richest member of a group) */
    int64_t dur;      /* response end - start; 0: 50 ms */
    const char *access; /* the server log's access state, or NULL */
};

struct script {
    const struct step *steps;
    size_t n, next;
    int error_mode;   /* 0: steps; 1: the same EPARSE forever; 2: a new EPARSE forever */
    uint64_t calls;
};

static struct et_exchange *make(const struct step *s)
{
    struct et_exchange *x = et_exchange_new();
    char target[200];
    assert_non_null(x);
    x->id = s->id;
    x->source = s->kind;
    x->has_request = 1;
    x->has_response = 1;
    x->req.method = "POST";
    snprintf(target, sizeof(target),
             "/Microsoft-Server-ActiveSync?Cmd=%s&User=alice&DeviceId=APPL1&DeviceType=iPhone",
             s->cmd);
    x->req.target = et_arena_strdup(x->arena, target);
    x->resp.status = 200;
    x->t.req_begin = s->t;
    x->t.resp_end = s->t + (s->dur ? s->dur : 50 * MS);
    if (s->body)
        assert_int_equal(et_body_set(&x->req.body, x->arena, "\x03\x01\x6a\x00", 4), 0);
    else
        x->req.body.absent = 1;
    if (s->exception != NULL) {
        x->facts.exception = et_arena_strdup(x->arena, s->exception);
        x->facts.present = 1;
    }
    if (s->access != NULL) {
        x->facts.access_state = et_arena_strdup(x->arena, s->access);
        x->facts.present = 1;
    }
    return x;
}

static int script_next(void *impl, struct et_exchange **out, struct et_error *e)
{
    struct script *sc = impl;
    sc->calls++;
    if (sc->error_mode == 1) {
        et_error_set_at(e, ET_EPARSE, 10, "expected an entry");
        return ET_EPARSE;
    }
    if (sc->error_mode == 2) {
        et_error_set_at(e, ET_EPARSE, sc->calls, "damaged record");
        return ET_EPARSE;
    }
    if (sc->next >= sc->n)
        return 0;
    *out = make(&sc->steps[sc->next++]);
    return 1;
}

static void script_close(void *impl)
{
    (void)impl;
}

static const struct et_source_ops script_ops = {"capture", script_next, script_close};
static const struct et_source_ops script_iis_ops = {"iis", script_next, script_close};
static const struct et_source_ops script_mbx_ops = {"mailboxlog", script_next, script_close};

static void add(struct et_pipe *p, const struct et_source_ops *ops, struct script *sc)
{
    struct et_source *s = et_source_new(ops, sc, "script");
    assert_non_null(s);
    assert_int_equal(et_pipe_add_source(p, s), 0);
}

/* ---- a recording sink ------------------------------------------------------------------- */

struct got {
    uint64_t n[64];
    uint64_t record[64];
    int64_t t[64];
    unsigned seen[64];
    char server_error[64][128];
    size_t count;
    int finished;
    unsigned errors, skips;
    int stop_at;
};

static int on_item(void *arg, const struct et_pipe_item *it)
{
    struct got *g = arg;
    assert_int_equal(it->x->id, it->n); /* the exchange carries its one number */
    if (g->count < 64) {
        g->n[g->count] = it->n;
        g->record[g->count] = it->record;
        g->t[g->count] = et_exchange_time(it->x);
        g->seen[g->count] = it->seen_by;
        snprintf(g->server_error[g->count], sizeof(g->server_error[0]), "%s",
                 it->v->server_error ? it->v->server_error : "");
    }
    g->count++;
    return g->stop_at && (int)it->n == g->stop_at ? ET_PIPE_STOP : 0;
}

static int on_finish(void *arg, const struct et_finding *f, const struct et_analyzer *an)
{
    struct got *g = arg;
    (void)f;
    (void)an;
    g->finished++;
    return 0;
}

static void on_error(void *arg, const char *input, const struct et_error *e, int skipped)
{
    struct got *g = arg;
    assert_non_null(input);
    assert_int_not_equal(e->code, 0);
    if (skipped)
        g->skips++;
    else
        g->errors++;
}

static struct et_pipe *pipe_for(struct got *g, struct et_pipe_opts *o)
{
    struct et_pipe_sink sink = {on_item, on_finish, g};
    struct et_pipe_opts d;
    if (o == NULL) {
        et_pipe_opts_default(&d);
        o = &d;
    }
    o->on_error = on_error;
    o->error_arg = g;
    struct et_pipe *p = et_pipe_new(o, &sink);
    assert_non_null(p);
    return p;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_pipe_one_input_keeps_record_numbers(void **state)
{
    (void)state;
    const struct step st[] = {{3, T0, "Sync", ET_SRC_SAZ, NULL, 1, 0, NULL},
                              {7, T0 + SEC, "Ping", ET_SRC_SAZ, NULL, 1, 0, NULL}};
    struct script sc = {st, 2, 0, 0, 0};
    struct got g;
    memset(&g, 0, sizeof(g));
    struct et_pipe *p = pipe_for(&g, NULL);
    add(p, &script_ops, &sc);
    assert_int_equal(et_pipe_run(p), 0);
    assert_int_equal(g.count, 2);
    assert_int_equal(g.n[0], 3);
    assert_int_equal(g.n[1], 7);
    assert_int_equal(g.finished, 1);
    assert_int_equal(et_pipe_stats(p)->exchanges, 2);
    et_pipe_free(p);
}

static void test_pipe_several_inputs_number_by_merged_position(void **state)
{
    (void)state;
    const struct step a[] = {{1, T0, "Sync", ET_SRC_CAPTURE, NULL, 1, 0, NULL},
                             {2, T0 + 2 * SEC, "Sync", ET_SRC_CAPTURE, NULL, 1, 0, NULL}};
    const struct step b[] = {{1, T0 + SEC, "Ping", ET_SRC_HAR, NULL, 1, 0, NULL},
                             {2, T0 + 3 * SEC, "Ping", ET_SRC_HAR, NULL, 1, 0, NULL}};
    struct script sa = {a, 2, 0, 0, 0}, sb = {b, 2, 0, 0, 0};
    struct got g;
    memset(&g, 0, sizeof(g));
    struct et_pipe *p = pipe_for(&g, NULL);
    add(p, &script_ops, &sa);
    add(p, &script_ops, &sb);
    assert_int_equal(et_pipe_run(p), 0);
    assert_int_equal(g.count, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(g.n[i], i + 1);
        assert_int_equal(g.t[i], T0 + (int64_t)i * SEC);
    }
    /* Each keeps its number in its own input. */
    assert_int_equal(g.record[1], 1);
    assert_int_equal(g.record[2], 2);
    et_pipe_free(p);
}

static void test_pipe_reorder_window_puts_a_source_in_time_order(void **state)
{
    (void)state;
    /* Completion order, as a capture or an IIS log writes them. */
    const struct step st[] = {{1, T0 + 55898 * MS, "Sync", ET_SRC_CAPTURE, NULL, 1, 0, NULL},
                              {2, T0 + 55737 * MS, "Ping", ET_SRC_CAPTURE, NULL, 1, 0, NULL},
                              {3, T0 + 55349 * MS, "Options", ET_SRC_CAPTURE, NULL, 1, 0, NULL},
                              {4, T0 + 57000 * MS, "Sync", ET_SRC_CAPTURE, NULL, 1, 0, NULL}};
    struct script sc = {st, 4, 0, 0, 0};
    struct got g;
    memset(&g, 0, sizeof(g));
    struct et_pipe *p = pipe_for(&g, NULL);
    add(p, &script_ops, &sc);
    assert_int_equal(et_pipe_run(p), 0);
    assert_int_equal(g.count, 4);
    for (size_t i = 1; i < 4; i++)
        assert_true(g.t[i - 1] <= g.t[i]);
    /* Numbers stay the records' own. */
    assert_int_equal(g.n[0], 3);
    assert_int_equal(g.n[1], 2);
    assert_int_equal(g.n[2], 1);
    assert_int_equal(g.n[3], 4);
    et_pipe_free(p);
}

static void test_pipe_window_is_bounded(void **state)
{
    (void)state;
    /* An exchange that starts far before what was already delivered is not held back for:
     * past window_max of stream time the earlier ones are out. */
    static struct step st[40];
    for (size_t i = 0; i < 39; i++)
        st[i] = (struct step){i + 1, T0 + (int64_t)i * 10 * SEC, "Sync", ET_SRC_CAPTURE, NULL, 1, 0, NULL};
    st[39] = (struct step){40, T0 + 5 * SEC, "Ping", ET_SRC_CAPTURE, NULL, 1, 0, NULL};
    struct script sc = {st, 40, 0, 0, 0};
    struct got g;
    memset(&g, 0, sizeof(g));
    struct et_pipe_opts o;
    et_pipe_opts_default(&o);
    struct et_pipe *p = pipe_for(&g, &o);
    add(p, &script_ops, &sc);
    assert_int_equal(et_pipe_run(p), 0);
    assert_int_equal(g.count, 40);
    /* The late Ping comes after the groups the window had already let go. */
    size_t ping = 0;
    for (size_t i = 0; i < 40; i++)
        if (g.n[i] == 40)
            ping = i;
    assert_true(ping > 20);
    et_pipe_free(p);
}

static void test_pipe_correlation_keeps_the_mailbox_log_exception(void **state)
{
    (void)state;
    const struct step cap[] = {{1, T0, "SendMail", ET_SRC_HAR, NULL, 1, 0, NULL}};
    const struct step mbx[] = {
        {1, T0 + 20 * MS, "SendMail", ET_SRC_MAILBOX,
         "Microsoft.Exchange.Data.Storage.StoragePermanentException: submission failed", 0, 0, NULL}};
    struct script sa = {cap, 1, 0, 0, 0}, sb = {mbx, 1, 0, 0, 0};
    struct got g;
    memset(&g, 0, sizeof(g));
    struct et_pipe *p = pipe_for(&g, NULL);
    add(p, &script_ops, &sa);
    add(p, &script_mbx_ops, &sb);
    assert_int_equal(et_pipe_run(p), 0);
    assert_int_equal(g.count, 1);
    assert_int_equal(g.seen[0], ET_SEEN_CAP | ET_SEEN_MBX);
    assert_int_equal(g.n[0], 1);
    /* The HAR entry (with the body) is shown; the exception came with the log entry. */
    assert_string_equal(g.server_error[0],
                        "Microsoft.Exchange.Data.Storage.StoragePermanentException: submission "
                        "failed");
    et_pipe_free(p);
}

static void test_pipe_long_poll_recorded_at_its_end_still_correlates(void **state)
{
    (void)state;
    /* Both sources write a 30-minute Ping when it ends, after requests that started later:
     * the Ping is held for its partner past the window, without holding the others back. */
    const struct step cap[] = {{1, T0 + 1790 * SEC, "Sync", ET_SRC_CAPTURE, NULL, 1, 0, NULL},
                               {2, T0, "Ping", ET_SRC_CAPTURE, NULL, 1, 1800 * SEC, NULL},
                               {3, T0 + 1805 * SEC, "Sync", ET_SRC_CAPTURE, NULL, 1, 0, NULL}};
    const struct step iis[] = {{1, T0 + 1790 * SEC, "Sync", ET_SRC_IIS, NULL, 0, 0, NULL},
                               {2, T0 + 1 * SEC, "Ping", ET_SRC_IIS, NULL, 0, 1799 * SEC, NULL},
                               {3, T0 + 1805 * SEC, "Sync", ET_SRC_IIS, NULL, 0, 0, NULL}};
    struct script sa = {cap, 3, 0, 0, 0}, sb = {iis, 3, 0, 0, 0};
    struct got g;
    memset(&g, 0, sizeof(g));
    struct et_pipe *p = pipe_for(&g, NULL);
    add(p, &script_ops, &sa);
    add(p, &script_iis_ops, &sb);
    assert_int_equal(et_pipe_run(p), 0);
    assert_int_equal(g.count, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(g.seen[i], ET_SEEN_CAP | ET_SEEN_IIS);
    et_pipe_free(p);
}

struct rules_got {
    int blocked;
};

static int on_rules(void *arg, const struct et_pipe_item *it)
{
    struct rules_got *r = arg;
    for (const struct et_finding *f = it->findings; f != NULL; f = f->next)
        if (strcmp(f->rule, "device-blocked") == 0)
            r->blocked++;
    return 0;
}

static void test_pipe_carried_access_state_reaches_the_rules(void **state)
{
    (void)state;
    /* The capture is shown; the mailbox log's "Blocked" comes with it. */
    const struct step cap[] = {{1, T0, "Sync", ET_SRC_HAR, NULL, 1, 0, NULL}};
    const struct step mbx[] = {{1, T0 + 20 * MS, "Sync", ET_SRC_MAILBOX, NULL, 0, 0, "Blocked"}};
    struct script sa = {cap, 1, 0, 0, 0}, sb = {mbx, 1, 0, 0, 0};
    struct rules_got r = {0};
    struct et_pipe_sink sink = {on_rules, NULL, &r};
    struct et_pipe *p = et_pipe_new(NULL, &sink);
    assert_non_null(p);
    add(p, &script_ops, &sa);
    add(p, &script_mbx_ops, &sb);
    assert_int_equal(et_pipe_run(p), 0);
    assert_int_equal(r.blocked, 1);
    et_pipe_free(p);
}

static void test_pipe_not_in_server_log_from_correlation_facts(void **state)
{
    (void)state;
    const struct step cap[] = {{1, T0, "Sync", ET_SRC_HAR, NULL, 1, 0, NULL},
                               {2, T0 + 10 * SEC, "Sync", ET_SRC_HAR, NULL, 1, 0, NULL},
                               {3, T0 + 20 * SEC, "Sync", ET_SRC_HAR, NULL, 1, 0, NULL}};
    const struct step iis[] = {{1, T0, "Sync", ET_SRC_IIS, NULL, 0, 0, NULL},
                               {2, T0 + 20 * SEC, "Sync", ET_SRC_IIS, NULL, 0, 0, NULL}};
    struct script sa = {cap, 3, 0, 0, 0}, sb = {iis, 2, 0, 0, 0};
    struct got g;
    memset(&g, 0, sizeof(g));
    struct et_pipe *p = pipe_for(&g, NULL);
    add(p, &script_ops, &sa);
    add(p, &script_iis_ops, &sb);
    assert_int_equal(et_pipe_run(p), 0);
    assert_int_equal(g.count, 3);
    assert_int_equal(g.seen[1], ET_SEEN_CAP);
    assert_int_equal(et_pipe_stats(p)->seen_count[ET_SEEN_CAP | ET_SEEN_IIS], 2);
    assert_int_equal(et_pipe_stats(p)->infos, 1); /* not-in-server-log for the middle one */
    et_pipe_free(p);
}

static void test_pipe_filter_does_not_renumber(void **state)
{
    (void)state;
    const struct step a[] = {{1, T0, "Sync", ET_SRC_CAPTURE, NULL, 1, 0, NULL},
                             {2, T0 + 2 * SEC, "Ping", ET_SRC_CAPTURE, NULL, 1, 0, NULL}};
    const struct step b[] = {{1, T0 + SEC, "Ping", ET_SRC_HAR, NULL, 1, 0, NULL},
                             {2, T0 + 3 * SEC, "Sync", ET_SRC_HAR, NULL, 1, 0, NULL}};
    struct script sa = {a, 2, 0, 0, 0}, sb = {b, 2, 0, 0, 0};
    struct got g;
    struct et_pipe_opts o;
    memset(&g, 0, sizeof(g));
    et_pipe_opts_default(&o);
    o.filter.cmd = "Ping";
    struct et_pipe *p = pipe_for(&g, &o);
    add(p, &script_ops, &sa);
    add(p, &script_ops, &sb);
    assert_int_equal(et_pipe_run(p), 0);
    assert_int_equal(g.count, 2);
    assert_int_equal(g.n[0], 2);
    assert_int_equal(g.n[1], 3);
    assert_int_equal(et_pipe_stats(p)->exchanges, 4);
    assert_int_equal(et_pipe_stats(p)->shown, 2);
    et_pipe_free(p);
}

static void test_pipe_sink_stop_ends_the_run(void **state)
{
    (void)state;
    const struct step st[] = {{1, T0, "Sync", ET_SRC_SAZ, NULL, 1, 0, NULL},
                              {2, T0 + SEC, "Ping", ET_SRC_SAZ, NULL, 1, 0, NULL},
                              {3, T0 + 2 * SEC, "Ping", ET_SRC_SAZ, NULL, 1, 0, NULL}};
    struct script sc = {st, 3, 0, 0, 0};
    struct got g;
    memset(&g, 0, sizeof(g));
    g.stop_at = 2;
    struct et_pipe *p = pipe_for(&g, NULL);
    add(p, &script_ops, &sc);
    assert_int_equal(et_pipe_run(p), 0);
    assert_int_equal(g.count, 2);
    assert_int_equal(g.finished, 0);
    et_pipe_free(p);
}

static void test_pipe_reader_without_progress_ends_with_one_message(void **state)
{
    (void)state;
    struct script sc = {NULL, 0, 0, 1, 0};
    struct got g;
    memset(&g, 0, sizeof(g));
    struct et_pipe *p = pipe_for(&g, NULL);
    add(p, &script_ops, &sc);
    assert_int_equal(et_pipe_run(p), 0);
    assert_int_equal(g.count, 0);
    assert_int_equal(g.errors, 1);
    assert_int_equal(g.skips, 0);
    assert_true(sc.calls <= 2);
    assert_int_equal(et_pipe_stats(p)->inputs_failed, 1);
    et_pipe_free(p);
}

static void test_pipe_reader_with_endless_new_errors_ends(void **state)
{
    (void)state;
    struct script sc = {NULL, 0, 0, 2, 0};
    struct got g;
    struct et_pipe_opts o;
    memset(&g, 0, sizeof(g));
    et_pipe_opts_default(&o);
    o.max_consecutive_skips = 50;
    struct et_pipe *p = pipe_for(&g, &o);
    add(p, &script_ops, &sc);
    assert_int_equal(et_pipe_run(p), 0);
    assert_int_equal(g.errors, 1);
    assert_true(g.skips <= 50);
    assert_true(sc.calls <= 52);
    assert_int_equal(et_pipe_stats(p)->inputs_failed, 1);
    et_pipe_free(p);
}

static void test_pipe_live_push_delivers_at_once(void **state)
{
    (void)state;
    const struct step st[] = {{1, T0 + 5 * SEC, "Ping", ET_SRC_PROXY, NULL, 1, 0, NULL},
                              {2, T0, "Sync", ET_SRC_PROXY, NULL, 1, 0, NULL}};
    struct got g;
    struct et_pipe_opts o;
    memset(&g, 0, sizeof(g));
    et_pipe_opts_default(&o);
    o.window_us = 0;
    struct et_pipe *p = pipe_for(&g, &o);
    assert_int_equal(et_pipe_push(p, make(&st[0])), 0);
    assert_int_equal(g.count, 1);
    assert_int_equal(et_pipe_push(p, make(&st[1])), 0);
    assert_int_equal(g.count, 2);
    assert_int_equal(g.n[0], 1);
    assert_int_equal(g.n[1], 2);
    assert_int_equal(et_pipe_finish(p), 0);
    assert_int_equal(g.finished, 1);
    et_pipe_free(p);
}

static void test_pipe_sniff_and_check_format_of_fixtures(void **state)
{
    (void)state;
    struct et_error e;
    char mbx[4096], iis[4096], har[4096];
    snprintf(mbx, sizeof(mbx), "%s", et_fixture("timeline/mailboxlog-appl1-4-entries.txt"));
    snprintf(iis, sizeof(iis), "%s", et_fixture("timeline/iis-appl1-dev2-6-eas-lines.log"));
    snprintf(har, sizeof(har), "%s", et_fixture("timeline/capture-appl1-5-requests.har"));

    et_error_clear(&e);
    assert_int_equal(et_pipe_check_format(mbx, "mailboxlog", &e), 0);
    assert_int_equal(et_pipe_check_format(iis, "iis", &e), 0);
    assert_int_equal(et_pipe_check_format(mbx, "iis", &e), ET_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "mailbox log"));
    assert_non_null(strstr(e.msg, "eastrace mailboxlog"));
    et_error_clear(&e);
    assert_int_equal(et_pipe_check_format(iis, "mailboxlog", &e), ET_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "IIS log"));
    assert_non_null(strstr(e.msg, "eastrace iis"));
    et_error_clear(&e);
    assert_int_equal(et_pipe_check_format(har, "iis", &e), ET_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "HAR"));

    /* W3C lines without a #Fields header are an IIS log. */
    const char *w3c = "2024-05-01 10:00:00 192.0.2.1 POST /Microsoft-Server-ActiveSync/ - 443";
    assert_string_equal(et_pipe_sniff("x.txt", (const unsigned char *)w3c, strlen(w3c)), "iis");
    const unsigned char bin[] = {0x00, 0xff, 0x13, 0x88, 0x01, 0x02, 0x00, 0x7f};
    assert_null(et_pipe_sniff("garbage.bin", bin, sizeof(bin)));
    /* A Markdown heading or a shell comment is not a W3C directive, and ".log" alone says
     * nothing: text of another kind is no format (it used to be read as an IIS log, one
     * error per line). */
    const char *md = "# eastrace\n\nA fast, headless tool.\n";
    assert_null(et_pipe_sniff("README.md", (const unsigned char *)md, strlen(md)));
    assert_null(et_pipe_sniff("notes.log", (const unsigned char *)md, strlen(md)));
    const char *hdr = "#Software: Microsoft Internet Information Services 10.0\r\n";
    assert_string_equal(et_pipe_sniff("u_ex.txt", (const unsigned char *)hdr, strlen(hdr)), "iis");
}

static void test_pipe_opens_fixture_files_of_three_kinds(void **state)
{
    (void)state;
    struct got g;
    memset(&g, 0, sizeof(g));
    struct et_pipe *p = pipe_for(&g, NULL);
    assert_int_equal(et_pipe_open(p, et_fixture("timeline/capture-appl1-5-requests.har")), 0);
    assert_int_equal(et_pipe_open(p, et_fixture("timeline/iis-appl1-dev2-6-eas-lines.log")), 0);
    assert_int_equal(et_pipe_open(p, et_fixture("timeline/mailboxlog-appl1-4-entries.txt")), 0);
    assert_int_equal(et_pipe_run(p), 0);
    /* tests/fixtures/timeline/README.md: 7 lines, cap iis mbx 3, cap iis 1, iis mbx 1,
     * iis 1, cap 1. */
    const struct et_pipe_stats *st = et_pipe_stats(p);
    assert_int_equal(g.count, 7);
    assert_int_equal(st->seen_count[ET_SEEN_CAP | ET_SEEN_IIS | ET_SEEN_MBX], 3);
    assert_int_equal(st->seen_count[ET_SEEN_CAP | ET_SEEN_IIS], 1);
    assert_int_equal(st->seen_count[ET_SEEN_IIS | ET_SEEN_MBX], 1);
    assert_int_equal(st->seen_count[ET_SEEN_IIS], 1);
    assert_int_equal(st->seen_count[ET_SEEN_CAP], 1);
    for (size_t i = 1; i < 7; i++)
        assert_true(g.t[i - 1] <= g.t[i]);
    /* The SendMail 500: its exception came from the mailbox log. */
    assert_non_null(strstr(g.server_error[6], "StoragePermanentException"));
    et_pipe_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipe_one_input_keeps_record_numbers),
        cmocka_unit_test(test_pipe_several_inputs_number_by_merged_position),
        cmocka_unit_test(test_pipe_reorder_window_puts_a_source_in_time_order),
        cmocka_unit_test(test_pipe_window_is_bounded),
        cmocka_unit_test(test_pipe_correlation_keeps_the_mailbox_log_exception),
        cmocka_unit_test(test_pipe_long_poll_recorded_at_its_end_still_correlates),
        cmocka_unit_test(test_pipe_carried_access_state_reaches_the_rules),
        cmocka_unit_test(test_pipe_not_in_server_log_from_correlation_facts),
        cmocka_unit_test(test_pipe_filter_does_not_renumber),
        cmocka_unit_test(test_pipe_sink_stop_ends_the_run),
        cmocka_unit_test(test_pipe_reader_without_progress_ends_with_one_message),
        cmocka_unit_test(test_pipe_reader_with_endless_new_errors_ends),
        cmocka_unit_test(test_pipe_live_push_delivers_at_once),
        cmocka_unit_test(test_pipe_sniff_and_check_format_of_fixtures),
        cmocka_unit_test(test_pipe_opens_fixture_files_of_three_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
