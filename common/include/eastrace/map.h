/*
 * One hash table for the whole program: open addressing with linear probing over slots of
 * {hash, value}, a power-of-two capacity kept at most 3/4 full, and one hash function.
 *
 *   slot[hash & (cap - 1)] -> {hash, val} -> next slot ... until an empty one (val NULL)
 *
 * The table never owns or compares keys: a value is the caller's record (a device's state,
 * a row, an interned string) and the caller's `eq` callback says whether a record has the
 * key being looked up. The stored hash is compared first, so `eq` runs only on a real
 * candidate, and growing the table never calls back (it moves the stored hashes). Lookups
 * are inline so that a static `eq` is inlined into the probe loop (the analyzer's device
 * lookup and the IIS report's row lookup are per line).
 *
 * Values are non-NULL pointers; nothing is ever removed except by et_map_free / _clear (the
 * users keep state for the whole run; the certificate cache rebuilds after an eviction with
 * et_map_remove).
 *
 * Interning (et_strpool): distinct byte strings stored once in an arena, each with a small
 * integer id, on the same table.
 */
#ifndef ET_COMMON_MAP_H
#define ET_COMMON_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/arena.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The hash of n bytes at p (p may be NULL when n is 0). Fast on short keys (8 bytes per
 * step), well mixed in its low bits (the table masks them). seed separates key spaces (a
 * bucket number, a second field). */
uint64_t et_hash(const void *p, size_t n, uint64_t seed);
/* The same with ASCII letters folded to lower case ("DEV1" and "dev1" hash alike; a few
 * punctuation pairs such as '@' and '`' too, which only costs an extra comparison). */
uint64_t et_hash_ci(const void *p, size_t n, uint64_t seed);
/* Mixes another 64-bit value into a hash (composite keys). */
static inline uint64_t et_hash_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 31);
}

struct et_map_slot {
    uint64_t hash;
    void *val; /* NULL: empty */
};

struct et_map {
    struct et_map_slot *slot;
    size_t cap; /* 0 or a power of two */
    size_t n;
};

/* Does the record val have the key `key`? (The hashes are already equal.) */
typedef int (*et_map_eq_cb)(const void *val, const void *key);

/* An empty table (no allocation until the first insertion). Equivalent to zeroing it. */
void et_map_init(struct et_map *m);
/* Frees the slots (not the values). The table is empty and usable again. */
void et_map_free(struct et_map *m);
/* Makes room for n values in all without growing again. Returns 0 or ET_ENOMEM. */
int et_map_reserve(struct et_map *m, size_t n);

/* The value with hash h for which eq(val, key) holds, or NULL. */
static inline void *et_map_get(const struct et_map *m, uint64_t h, et_map_eq_cb eq,
                               const void *key)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = (size_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const struct et_map_slot *s = &m->slot[i];
        if (s->val == NULL)
            return NULL;
        if (s->hash == h && eq(s->val, key))
            return s->val;
    }
}

/*
 * Find-or-insert in one probe: returns the slot of the value with hash h and key `key`
 * (*found = 1, slot->val is it), or the empty slot where such a value goes (*found = 0; the
 * caller stores its new record in slot->val, non-NULL, before any other call on m, or leaves
 * it NULL to insert nothing). NULL on ENOMEM. The slot is valid until the next insertion.
 */
struct et_map_slot *et__map_grow_for_one(struct et_map *m);
static inline struct et_map_slot *et_map_upsert(struct et_map *m, uint64_t h, et_map_eq_cb eq,
                                                const void *key, int *found)
{
    if ((m->n + 1) * 4 > m->cap * 3 && et__map_grow_for_one(m) == NULL)
        return NULL;
    for (size_t i = (size_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct et_map_slot *s = &m->slot[i];
        if (s->val == NULL) {
            *found = 0;
            s->hash = h;
            m->n++; /* counted now; et_map_upsert_cancel undoes it when val stays NULL */
            return s;
        }
        if (s->hash == h && eq(s->val, key)) {
            *found = 1;
            return s;
        }
    }
}
/* After et_map_upsert gave an empty slot the caller could not fill (ENOMEM): forget it. */
static inline void et_map_upsert_cancel(struct et_map *m, struct et_map_slot *s)
{
    s->val = NULL;
    m->n--;
}

/* Adds val (non-NULL) under hash h without looking for an equal key. Returns 0 or ET_ENOMEM. */
int et_map_put(struct et_map *m, uint64_t h, void *val);
/* Removes the value val (compared by pointer) stored under hash h. Returns 1 when found. */
int et_map_remove(struct et_map *m, uint64_t h, const void *val);

/* ---- interning ------------------------------------------------------------------------ */

/*
 * Distinct strings kept once: et_strpool_intern returns a stable NUL-terminated copy (in the
 * pool's arena) and its id, 0, 1, 2 ... in first-seen order. et_strpool_str(p, id) gives the
 * string back. Strings may hold any bytes except that comparisons use their length.
 */
struct et_strpool {
    struct et_map map;
    struct et_arena *arena;
    const char **str; /* by id */
    uint32_t *len;
    size_t n, cap;
};

/* arena_chunk: the arena's chunk size (0 = its default). Returns 0 or ET_ENOMEM. */
int et_strpool_init(struct et_strpool *p, size_t arena_chunk);
void et_strpool_free(struct et_strpool *p);
/* The interned copy of s[0..n) (*id set when id is not NULL), or NULL on ENOMEM. */
const char *et_strpool_intern(struct et_strpool *p, const char *s, size_t n, uint32_t *id);
/* The id of s[0..n) when interned, else -1. */
int64_t et_strpool_find(const struct et_strpool *p, const char *s, size_t n);
static inline const char *et_strpool_str(const struct et_strpool *p, uint32_t id)
{
    return id < p->n ? p->str[id] : NULL;
}

#ifdef __cplusplus
}
#endif
#endif
