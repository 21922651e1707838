/*
 * The hash table and hash function of map.h, and the string pool on them.
 */
#include "eastrace/map.h"

#include <string.h>

#include "eastrace/common.h"

static inline uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* Eight bytes per step; `fold` is ORed into every word (0, or 0x20 in each byte to fold
 * ASCII case). The final avalanche makes the low bits, which the table uses, depend on all. */
static inline uint64_t hash_words(const uint8_t *s, size_t n, uint64_t seed, uint64_t fold)
{
    uint64_t h = seed ^ ((uint64_t)n * 0x9E3779B97F4A7C15ULL), w;
    while (n >= 8) {
        memcpy(&w, s, 8);
        h ^= (w | fold) * 0x87C37B91114253D5ULL;
        h = rotl(h, 31) * 0x4CF5AD432745937FULL;
        s += 8;
        n -= 8;
    }
    w = 0;
    if (n > 0)
        memcpy(&w, s, n);
    h ^= (w | fold) * 0x87C37B91114253D5ULL;
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 33);
}

uint64_t et_hash(const void *p, size_t n, uint64_t seed)
{
    return hash_words(p, n, seed, 0);
}

uint64_t et_hash_ci(const void *p, size_t n, uint64_t seed)
{
    return hash_words(p, n, seed, 0x2020202020202020ULL);
}

void et_map_init(struct et_map *m)
{
    m->slot = NULL;
    m->cap = m->n = 0;
}

void et_map_free(struct et_map *m)
{
    et_free(m->slot);
    et_map_init(m);
}

static int rehash(struct et_map *m, size_t ncap)
{
    struct et_map_slot *ns = et_calloc(ncap, sizeof(*ns));
    if (ns == NULL)
        return ET_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        const struct et_map_slot *s = &m->slot[i];
        if (s->val == NULL)
            continue;
        size_t j = (size_t)s->hash & (ncap - 1);
        while (ns[j].val != NULL)
            j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    et_free(m->slot);
    m->slot = ns;
    m->cap = ncap;
    return 0;
}

int et_map_reserve(struct et_map *m, size_t n)
{
    size_t ncap = m->cap ? m->cap : 16;
    while (n * 4 > ncap * 3) {
        if (ncap > SIZE_MAX / 4 / sizeof(struct et_map_slot))
            return ET_ENOMEM;
        ncap *= 2;
    }
    return ncap == m->cap ? 0 : rehash(m, ncap);
}

struct et_map_slot *et__map_grow_for_one(struct et_map *m)
{
    if (et_map_reserve(m, m->n + 1) != 0)
        return NULL;
    return m->slot;
}

int et_map_put(struct et_map *m, uint64_t h, void *val)
{
    if (et_map_reserve(m, m->n + 1) != 0)
        return ET_ENOMEM;
    size_t i = (size_t)h & (m->cap - 1);
    while (m->slot[i].val != NULL)
        i = (i + 1) & (m->cap - 1);
    m->slot[i].hash = h;
    m->slot[i].val = val;
    m->n++;
    return 0;
}

int et_map_remove(struct et_map *m, uint64_t h, const void *val)
{
    if (m->cap == 0)
        return 0;
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    for (;; i = (i + 1) & mask) {
        if (m->slot[i].val == NULL)
            return 0;
        if (m->slot[i].val == val)
            break;
    }
    /* Backward-shift deletion: move later members of the probe run into the hole when
     * their home slot is at or before it, so that no lookup stops early. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slot[j].val != NULL; j = (j + 1) & mask) {
        size_t home = (size_t)m->slot[j].hash & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->slot[hole] = m->slot[j];
            hole = j;
        }
    }
    m->slot[hole].val = NULL;
    m->slot[hole].hash = 0;
    m->n--;
    return 1;
}

/* ---- the string pool ------------------------------------------------------------------ */

struct pooled {
    uint32_t len, id;
    char s[];
};

struct pool_key {
    const char *s;
    size_t n;
};

static int pooled_eq(const void *val, const void *key)
{
    const struct pooled *p = val;
    const struct pool_key *k = key;
    return p->len == k->n && memcmp(p->s, k->s, k->n) == 0;
}

int et_strpool_init(struct et_strpool *p, size_t arena_chunk)
{
    memset(p, 0, sizeof(*p));
    p->arena = et_arena_new(arena_chunk);
    return p->arena != NULL ? 0 : ET_ENOMEM;
}

void et_strpool_free(struct et_strpool *p)
{
    et_map_free(&p->map);
    et_arena_free(p->arena);
    et_free(p->str);
    et_free(p->len);
    memset(p, 0, sizeof(*p));
}

const char *et_strpool_intern(struct et_strpool *p, const char *s, size_t n, uint32_t *id)
{
    struct pool_key k = {s, n};
    int found;
    if (n > UINT32_MAX || p->n >= UINT32_MAX)
        return NULL;
    struct et_map_slot *sl = et_map_upsert(&p->map, et_hash(s, n, 0), pooled_eq, &k, &found);
    if (sl == NULL)
        return NULL;
    if (found) {
        const struct pooled *e = sl->val;
        if (id != NULL)
            *id = e->id;
        return e->s;
    }
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 64;
        const char **ns = et_realloc(p->str, nc * sizeof(*ns));
        if (ns != NULL)
            p->str = ns;
        uint32_t *nl = ns ? et_realloc(p->len, nc * sizeof(*nl)) : NULL;
        if (nl == NULL) {
            et_map_upsert_cancel(&p->map, sl);
            return NULL;
        }
        p->len = nl;
        p->cap = nc;
    }
    struct pooled *e = et_arena_alloc(p->arena, sizeof(*e) + n + 1);
    if (e == NULL) {
        et_map_upsert_cancel(&p->map, sl);
        return NULL;
    }
    e->len = (uint32_t)n;
    e->id = (uint32_t)p->n;
    if (n > 0)
        memcpy(e->s, s, n);
    e->s[n] = '\0';
    sl->val = e;
    p->str[p->n] = e->s;
    p->len[p->n] = (uint32_t)n;
    p->n++;
    if (id != NULL)
        *id = e->id;
    return e->s;
}

int64_t et_strpool_find(const struct et_strpool *p, const char *s, size_t n)
{
    struct pool_key k = {s, n};
    const struct pooled *e = et_map_get(&p->map, et_hash(s, n, 0), pooled_eq, &k);
    return e != NULL ? (int64_t)e->id : -1;
}
