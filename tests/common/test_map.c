/* Tests of the common hash table (common/map.c): lookups and find-or-insert against a plain
 * array as the oracle, growth, colliding hashes, removal keeping probe runs reachable, the
 * case-folding hash, the string pool, and allocation failures leaving the table usable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "eastrace/common.h"
#include "eastrace/map.h"

struct rec {
    char key[24];
    int value;
};

static int rec_eq(const void *val, const void *key)
{
    return strcmp(((const struct rec *)val)->key, key) == 0;
}

static uint64_t rec_hash(const char *k)
{
    return et_hash(k, strlen(k), 0);
}

static void test_map_upsert_finds_what_it_inserted(void **state)
{
    enum { N = 20000 };
    static struct rec recs[N];
    struct et_map m;
    (void)state;
    et_map_init(&m);
    for (int i = 0; i < N; i++) {
        int found = -1;
        snprintf(recs[i].key, sizeof(recs[i].key), "DEV%08X%d", (unsigned)i * 2654435761u, i);
        recs[i].value = i;
        struct et_map_slot *s = et_map_upsert(&m, rec_hash(recs[i].key), rec_eq, recs[i].key,
                                              &found);
        assert_non_null(s);
        assert_int_equal(found, 0);
        s->val = &recs[i];
    }
    assert_int_equal(m.n, N);
    assert_true(m.n * 4 <= m.cap * 3); /* never fuller than 3/4 */
    for (int i = 0; i < N; i++) {
        int found = 0;
        struct rec *r = et_map_get(&m, rec_hash(recs[i].key), rec_eq, recs[i].key);
        assert_ptr_equal(r, &recs[i]);
        struct et_map_slot *s = et_map_upsert(&m, rec_hash(recs[i].key), rec_eq, recs[i].key,
                                              &found);
        assert_int_equal(found, 1);
        assert_ptr_equal(s->val, &recs[i]);
    }
    assert_int_equal(m.n, N); /* finding inserts nothing */
    assert_null(et_map_get(&m, rec_hash("absent"), rec_eq, "absent"));
    et_map_free(&m);
    assert_null(et_map_get(&m, rec_hash(recs[0].key), rec_eq, recs[0].key));
}

/* Every key under the same hash: eq alone tells them apart, and removal in any order keeps
 * the others reachable (backward-shift deletion). */
static void test_map_colliding_hashes_and_removal(void **state)
{
    enum { N = 200 };
    static struct rec recs[N];
    struct et_map m;
    (void)state;
    et_map_init(&m);
    for (int i = 0; i < N; i++) {
        snprintf(recs[i].key, sizeof(recs[i].key), "k%d", i);
        /* Two hash values only, near the table's end, so their runs interleave and wrap. */
        assert_int_equal(et_map_put(&m, (uint64_t)(i % 2 ? 15 : 14), &recs[i]), 0);
    }
    for (int i = 0; i < N; i++)
        assert_ptr_equal(et_map_get(&m, (uint64_t)(i % 2 ? 15 : 14), rec_eq, recs[i].key),
                         &recs[i]);
    assert_null(et_map_get(&m, 15, rec_eq, "k-none"));
    et_map_free(&m);

    et_map_init(&m);
    for (int i = 0; i < N; i++)
        assert_int_equal(et_map_put(&m, (uint64_t)(i % 3), &recs[i]), 0);
    for (int i = 0; i < N; i += 2)
        assert_int_equal(et_map_remove(&m, (uint64_t)(i % 3), &recs[i]), 1);
    assert_int_equal(et_map_remove(&m, 0, &recs[0]), 0); /* already gone */
    assert_int_equal(m.n, N / 2);
    for (int i = 0; i < N; i++) {
        void *got = et_map_get(&m, (uint64_t)(i % 3), rec_eq, recs[i].key);
        if (i % 2 == 0)
            assert_null(got);
        else
            assert_ptr_equal(got, &recs[i]);
    }
    et_map_free(&m);
}

static void test_map_reserve_and_cancel(void **state)
{
    struct et_map m;
    struct rec r = {"x", 1};
    int found;
    (void)state;
    et_map_init(&m);
    assert_int_equal(et_map_reserve(&m, 1000), 0);
    size_t cap = m.cap;
    assert_true(cap * 3 >= 1000 * 4);
    struct et_map_slot *s = et_map_upsert(&m, rec_hash("x"), rec_eq, "x", &found);
    assert_non_null(s);
    et_map_upsert_cancel(&m, s); /* the caller could not make its record */
    assert_int_equal(m.n, 0);
    assert_null(et_map_get(&m, rec_hash("x"), rec_eq, "x"));
    s = et_map_upsert(&m, rec_hash("x"), rec_eq, "x", &found);
    s->val = &r;
    assert_ptr_equal(et_map_get(&m, rec_hash("x"), rec_eq, "x"), &r);
    assert_int_equal(m.cap, cap);
    et_map_free(&m);
}

static void test_map_growth_failure_leaves_table_usable(void **state)
{
    struct et_map m;
    static struct rec recs[64];
    int found;
    (void)state;
    et_map_init(&m);
    for (int i = 0; i < 12; i++) {
        snprintf(recs[i].key, sizeof(recs[i].key), "a%d", i);
        assert_int_equal(et_map_put(&m, rec_hash(recs[i].key), &recs[i]), 0);
    }
    assert_int_equal(m.cap, 16);
    et_alloc_fail_after(1);
    snprintf(recs[12].key, sizeof(recs[12].key), "a12");
    assert_null(et_map_upsert(&m, rec_hash(recs[12].key), rec_eq, recs[12].key, &found));
    assert_int_equal(et_map_put(&m, rec_hash(recs[12].key), &recs[12]), ET_ENOMEM);
    et_alloc_fail_after(-1);
    for (int i = 0; i < 12; i++)
        assert_ptr_equal(et_map_get(&m, rec_hash(recs[i].key), rec_eq, recs[i].key), &recs[i]);
    assert_int_equal(et_map_put(&m, rec_hash(recs[12].key), &recs[12]), 0);
    assert_ptr_equal(et_map_get(&m, rec_hash(recs[12].key), rec_eq, recs[12].key), &recs[12]);
    et_map_free(&m);
}

static void test_hash_ci_folds_ascii_case_only(void **state)
{
    (void)state;
    assert_true(et_hash_ci("ApplDNPX1", 9, 0) == et_hash_ci("appldnpx1", 9, 0));
    assert_true(et_hash_ci("A-LONGER-DEVICE-ID-0001", 23, 5) ==
                et_hash_ci("a-longer-device-id-0001", 23, 5));
    assert_true(et_hash("ApplDNPX1", 9, 0) != et_hash("appldnpx1", 9, 0));
    /* Length, seed and every byte count, in the low bits the table uses. */
    assert_true(et_hash("ab", 2, 0) != et_hash("ab\0", 3, 0));
    assert_true(et_hash("ab", 2, 0) != et_hash("ab", 2, 1));
    assert_true(et_hash(NULL, 0, 0) == et_hash("", 0, 0));
    unsigned low[64] = {0};
    char k[16];
    for (int i = 0; i < 64 * 64; i++) {
        int n = snprintf(k, sizeof(k), "DEV%d", i);
        low[et_hash(k, (size_t)n, 0) & 63]++;
    }
    for (int i = 0; i < 64; i++)
        assert_true(low[i] > 64 / 4 && low[i] < 64 * 4); /* roughly even */
}

static void test_strpool_interns_once_with_ids(void **state)
{
    struct et_strpool p;
    uint32_t id = 99, id2 = 99;
    (void)state;
    assert_int_equal(et_strpool_init(&p, 0), 0);
    const char *a = et_strpool_intern(&p, "Sync", 4, &id);
    const char *b = et_strpool_intern(&p, "Ping and more", 4, &id2);
    assert_string_equal(a, "Sync");
    assert_string_equal(b, "Ping");
    assert_int_equal(id, 0);
    assert_int_equal(id2, 1);
    assert_ptr_equal(et_strpool_intern(&p, "Sync", 4, &id), a);
    assert_int_equal(id, 0);
    assert_ptr_equal(et_strpool_str(&p, 1), b);
    assert_null(et_strpool_str(&p, 2));
    assert_int_equal(et_strpool_find(&p, "Ping", 4), 1);
    assert_int_equal(et_strpool_find(&p, "Pin", 3), -1);
    const char *e = et_strpool_intern(&p, "", 0, &id);
    assert_string_equal(e, "");
    assert_int_equal(id, 2);
    /* Embedded NUL: compared by length, so "a\0b" and "a" are two strings. */
    et_strpool_intern(&p, "a\0b", 3, &id);
    et_strpool_intern(&p, "a", 1, &id2);
    assert_int_not_equal(id, id2);
    for (int i = 0; i < 5000; i++) {
        char k[16];
        int n = snprintf(k, sizeof(k), "s%d", i);
        assert_non_null(et_strpool_intern(&p, k, (size_t)n, &id));
        assert_string_equal(et_strpool_str(&p, id), k);
    }
    assert_int_equal(p.n, 5005);
    et_strpool_free(&p);
}

static void test_strpool_allocation_failures(void **state)
{
    (void)state;
    /* Each allocation in turn fails; the pool stays consistent and the string is either
     * interned or not at all. */
    for (long k = 1; k < 8; k++) {
        struct et_strpool p;
        assert_int_equal(et_strpool_init(&p, 0), 0);
        for (int i = 0; i < 100; i++) {
            char s[16];
            int n = snprintf(s, sizeof(s), "x%d", i);
            assert_non_null(et_strpool_intern(&p, s, (size_t)n, NULL));
        }
        et_alloc_fail_after(k);
        const char *r = et_strpool_intern(&p, "new-one-long-enough-for-a-new-chunk", 35, NULL);
        et_alloc_fail_after(-1);
        if (r == NULL)
            assert_int_equal(et_strpool_find(&p, "new-one-long-enough-for-a-new-chunk", 35), -1);
        assert_int_equal(et_strpool_find(&p, "x42", 3), 42);
        assert_non_null(et_strpool_intern(&p, "after", 5, NULL));
        et_strpool_free(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_upsert_finds_what_it_inserted),
        cmocka_unit_test(test_map_colliding_hashes_and_removal),
        cmocka_unit_test(test_map_reserve_and_cancel),
        cmocka_unit_test(test_map_growth_failure_leaves_table_usable),
        cmocka_unit_test(test_hash_ci_folds_ascii_case_only),
        cmocka_unit_test(test_strpool_interns_once_with_ids),
        cmocka_unit_test(test_strpool_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
