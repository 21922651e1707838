/*
 * Arena allocator. Chunks form a singly linked list; the newest chunk is at the head and
 * serves allocations until it is full. Large requests get a chunk of their own.
 *
 *   head -> [chunk: used | free ...] -> [older chunk] -> ... -> NULL
 */
#include "eastrace/arena.h"
#include "eastrace/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_DEFAULT_CHUNK 8192

struct chunk {
    struct chunk *next;
    size_t size; /* usable bytes in data */
    size_t used;
    /* Padded so data[] is ARENA_ALIGN-aligned. */
    size_t pad_;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct et_arena {
    struct chunk *head;
    size_t chunk_size;
    size_t total; /* bytes handed out */
};

struct et_arena *et_arena_new(size_t chunk)
{
    struct et_arena *a = et_calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->chunk_size = chunk ? chunk : ARENA_DEFAULT_CHUNK;
    return a;
}

static void free_chunks(struct chunk *c)
{
    while (c != NULL) {
        struct chunk *next = c->next;
        et_free(c);
        c = next;
    }
}

void et_arena_free(struct et_arena *a)
{
    if (a == NULL)
        return;
    free_chunks(a->head);
    et_free(a);
}

void et_arena_reset(struct et_arena *a)
{
    struct chunk *keep;
    if (a->head == NULL)
        return;
    /* Keep the oldest chunk (normally of the default size), free the rest. */
    keep = a->head;
    while (keep->next != NULL) {
        struct chunk *c = keep;
        keep = keep->next;
        et_free(c);
    }
    keep->used = 0;
    a->head = keep;
    a->total = 0;
}

void *et_arena_alloc_raw(struct et_arena *a, size_t n)
{
    struct chunk *c = a->head;
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    void *p;

    if (n == 0)
        need = ARENA_ALIGN;
    if (need < n) /* overflow */
        return NULL;
    if (c == NULL || c->size - c->used < need) {
        size_t size = need > a->chunk_size / 4 ? need : a->chunk_size;
        struct chunk *nc;
        if (size > ((size_t)-1) / 2)
            return NULL;
        nc = et_malloc(sizeof(*nc) + size);
        if (nc == NULL)
            return NULL;
        nc->size = size;
        nc->used = 0;
        if (size == need && c != NULL) {
            /* A large block: put it behind the head so the head keeps serving small ones. */
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    p = c->data + c->used;
    c->used += need;
    a->total += need;
    return p;
}

void *et_arena_alloc(struct et_arena *a, size_t n)
{
    void *p = et_arena_alloc_raw(a, n);
    if (p != NULL)
        memset(p, 0, n);
    return p;
}

void *et_arena_memdup(struct et_arena *a, const void *p, size_t n)
{
    void *d = et_arena_alloc_raw(a, n);
    if (d != NULL && n)
        memcpy(d, p, n);
    return d;
}

char *et_arena_strndup(struct et_arena *a, const char *s, size_t n)
{
    char *d = et_arena_alloc_raw(a, n + 1);
    if (d == NULL)
        return NULL;
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *et_arena_strdup(struct et_arena *a, const char *s)
{
    return et_arena_strndup(a, s, strlen(s));
}

char *et_arena_printf(struct et_arena *a, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *d;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    d = et_arena_alloc(a, (size_t)n + 1);
    if (d == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

size_t et_arena_used(const struct et_arena *a)
{
    return a->total;
}
