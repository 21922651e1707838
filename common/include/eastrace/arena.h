/*
 * Arena allocator: one per exchange (or per decoded document). Everything allocated from it is
 * released by one et_arena_free(). Allocations are 16-byte aligned.
 */
#ifndef ET_COMMON_ARENA_H
#define ET_COMMON_ARENA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct et_arena;

/* New arena; chunk is the preferred chunk size (0 for 8 KiB). NULL on ENOMEM. */
struct et_arena *et_arena_new(size_t chunk);
/* Frees the arena and everything in it. NULL does nothing. */
void et_arena_free(struct et_arena *a);
/* Releases all allocations but keeps the first chunk for reuse. */
void et_arena_reset(struct et_arena *a);
/* Returns zeroed memory valid until the arena is freed or reset; NULL on ENOMEM. */
void *et_arena_alloc(struct et_arena *a, size_t n);
/* The same, not zeroed: for bytes the caller writes at once (a body, a copy). */
void *et_arena_alloc_raw(struct et_arena *a, size_t n);
void *et_arena_memdup(struct et_arena *a, const void *p, size_t n);
/* Copies n bytes and adds a NUL. */
char *et_arena_strndup(struct et_arena *a, const char *s, size_t n);
char *et_arena_strdup(struct et_arena *a, const char *s);
char *et_arena_printf(struct et_arena *a, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Bytes handed out so far (for memory accounting and caps). */
size_t et_arena_used(const struct et_arena *a);

#ifdef __cplusplus
}
#endif
#endif
