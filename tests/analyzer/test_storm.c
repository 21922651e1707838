/*
 * The request-storm rule and the per-device rate against a plain model of their definition:
 * the last storm_per_minute + 1 requests of a device (in arrival order) are kept; the rate at
 * a request is how many of them fall in the 60 s up to its time; a storm starts when the
 * oldest of them is within 60 s of the newest, and ends when the rate falls to half the
 * threshold. The analyzer counts a ring in time order from its newest end (amortized) and
 * one out of order whole; the model always counts whole. Times are random: in order with
 * bursts, and with requests whose time is far earlier (IIS lines carry a long poll's start).
 * With no_rates the findings are the same and the rate is not kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "eastrace/analyzer.h"
#include "eastrace/arena.h"

#define W (60LL * 1000000)

struct model {
    int64_t ring[1024];
    unsigned len, pos, active, max;
};

/* Returns 1 when this request starts a storm. */
static int model_feed(struct model *m, int64_t t, unsigned spm)
{
    unsigned count = 0;
    m->ring[m->pos] = t;
    m->pos = (m->pos + 1) % m->len;
    for (unsigned i = 0; i < m->len; i++)
        count += m->ring[i] > 0 && t - m->ring[i] < W && m->ring[i] <= t;
    if (count > m->max)
        m->max = count;
    int64_t oldest = m->ring[m->pos];
    if (oldest > 0 && t - oldest < W) {
        if (!m->active) {
            m->active = 1;
            return 1;
        }
    } else if (count <= spm / 2) {
        m->active = 0;
    }
    return 0;
}

static uint64_t rnd_state = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* Feeds n requests of one device; checks each storm finding against the model and the rate
 * (unless no_rates). */
static void run_one(unsigned spm, int no_rates, int out_of_order, size_t n)
{
    struct et_analyzer_opts o;
    struct et_analyzer *an;
    struct et_arena *a = et_arena_new(4096);
    struct model m;
    struct et_exchange x;
    struct et_view v;
    int64_t t = 1714557600000000LL;

    assert_non_null(a);
    et_analyzer_opts_default(&o);
    o.storm_per_minute = spm;
    o.no_rates = no_rates;
    o.high_usage_per_day = 1000000; /* only the storm rule speaks here */
    o.very_high_per_day = 1000000;
    an = et_analyzer_new(&o);
    assert_non_null(an);
    memset(&m, 0, sizeof(m));
    m.len = spm + 1;
    memset(&x, 0, sizeof(x));
    memset(&v, 0, sizeof(v));
    x.source = ET_SRC_IIS;
    x.has_request = x.has_response = 1;
    x.req.body.absent = x.resp.body.absent = 1;
    x.resp.status = 200;
    v.is_eas = 1;
    v.cmd = "Sync";
    v.device = "DEV1";
    v.http_status = 200;
    v.top_status = -1;
    v.heartbeat_req = v.heartbeat_resp = v.max_folders = v.ping_folders = -1;
    size_t storms = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd();
        /* Bursts (a few ms apart), normal gaps (seconds), pauses (minutes). */
        int64_t gap = r % 10 < 6 ? (int64_t)(r >> 8) % 20000
                      : r % 10 < 9 ? (int64_t)(r >> 8) % (5 * 1000000)
                                   : (int64_t)(r >> 8) % (300LL * 1000000);
        t += gap;
        int64_t at = t;
        if (out_of_order && (r >> 40) % 5 == 0)
            at = t - (int64_t)((r >> 20) % (3000LL * 1000000)); /* a long poll's start */
        x.id = i + 1;
        x.t.req_begin = x.t.resp_end = at;
        struct et_finding *f = NULL;
        assert_int_equal(et_analyzer_feed(an, &x, &v, a, &f), 0);
        int got = 0;
        for (; f != NULL; f = f->next)
            if (strcmp(f->rule, "request-storm") == 0)
                got++;
        int want = model_feed(&m, at, spm);
        if (got != want)
            fail_msg("spm %u no_rates %d ooo %d: request %zu: storm %d, model %d", spm, no_rates,
                     out_of_order, i + 1, got, want);
        storms += (size_t)want;
        et_arena_reset(a);
    }
    const struct et_device_stats *ds;
    assert_int_equal(et_analyzer_devices(an, &ds), 1);
    assert_int_equal(ds[0].max_per_minute, no_rates ? 0 : m.max);
    assert_true(storms > 0); /* the random times do make storms: the test can fail */
    et_analyzer_free(an);
    et_arena_free(a);
}

static void test_storm_and_rate_match_the_model(void **state)
{
    (void)state;
    static const unsigned spms[] = {1, 2, 5, 10, 60};
    for (size_t k = 0; k < sizeof(spms) / sizeof(spms[0]); k++)
        for (int no_rates = 0; no_rates < 2; no_rates++)
            for (int ooo = 0; ooo < 2; ooo++)
                run_one(spms[k], no_rates, ooo, 20000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_storm_and_rate_match_the_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
