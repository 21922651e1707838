/* Checked allocation with a fail-the-Nth-call switch for allocation-failure tests. */
#include "eastrace/common.h"

#include <stdlib.h>
#include <string.h>

static long fail_countdown = -1; /* < 0: never fail */

void et_alloc_fail_after(long n)
{
    fail_countdown = n;
}

static int should_fail(void)
{
    if (fail_countdown < 0)
        return 0;
    if (fail_countdown <= 1) {
        fail_countdown = 0;
        return 1;
    }
    fail_countdown--;
    return 0;
}

void *et_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *et_calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *et_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void et_free(void *p)
{
    free(p);
}

char *et_strndup(const char *s, size_t n)
{
    char *d = et_malloc(n + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *et_strdup(const char *s)
{
    return et_strndup(s, strlen(s));
}
