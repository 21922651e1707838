/* The exchange model: allocation, headers, bodies and failures. */
#include "eastrace/exchange.h"
#include "eastrace/source.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *et_source_name(enum et_source_kind s)
{
    switch (s) {
    case ET_SRC_PROXY: return "proxy";
    case ET_SRC_CAPTURE: return "capture";
    case ET_SRC_SAZ: return "saz";
    case ET_SRC_HAR: return "har";
    case ET_SRC_IIS: return "iis";
    case ET_SRC_MAILBOX: return "mailboxlog";
    case ET_SRC_PROBE: return "probe";
    case ET_SRC_RAW: return "raw";
    case ET_SRC_UNKNOWN: break;
    }
    return "unknown";
}

const char *et_stage_name(enum et_stage s)
{
    switch (s) {
    case ET_STAGE_NONE: return "none";
    case ET_STAGE_CLIENT: return "client";
    case ET_STAGE_CLIENT_TLS: return "client-tls";
    case ET_STAGE_REQUEST: return "request";
    case ET_STAGE_DNS: return "dns";
    case ET_STAGE_UPSTREAM_CONNECT: return "upstream-connect";
    case ET_STAGE_UPSTREAM_TLS: return "upstream-tls";
    case ET_STAGE_RESPONSE: return "response";
    case ET_STAGE_DECODE: return "decode";
    case ET_STAGE_CAPTURE: return "capture";
    }
    return "unknown";
}

struct et_exchange *et_exchange_new(void)
{
    struct et_exchange *x = et_calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->arena = et_arena_new(0);
    if (x->arena == NULL) {
        et_free(x);
        return NULL;
    }
    x->facts.status = -1;
    x->facts.heartbeat = -1;
    return x;
}

void et_exchange_free(struct et_exchange *x)
{
    if (x == NULL)
        return;
    et_arena_free(x->arena);
    x->arena = NULL;
    et_free(x);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int et_headers_add(struct et_headers *h, struct et_arena *a, const char *name, size_t nlen,
                   const char *value, size_t vlen)
{
    struct et_header *e;

    while (vlen && is_blank(value[0])) {
        value++;
        vlen--;
    }
    while (vlen && is_blank(value[vlen - 1]))
        vlen--;
    if (h->n == h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 16;
        struct et_header *nv = et_arena_alloc(a, ncap * sizeof(*nv));
        if (nv == NULL)
            return ET_ENOMEM;
        if (h->n)
            memcpy(nv, h->v, h->n * sizeof(*nv));
        h->v = nv; /* the old array stays in the arena until the arena goes */
        h->cap = ncap;
    }
    e = &h->v[h->n];
    e->name = et_arena_strndup(a, name, nlen);
    e->value = et_arena_strndup(a, value, vlen);
    if (e->name == NULL || e->value == NULL)
        return ET_ENOMEM;
    h->n++;
    return 0;
}

const char *et_headers_get(const struct et_headers *h, const char *name)
{
    size_t i;
    for (i = 0; i < h->n; i++)
        if (et_strcaseeq(h->v[i].name, name))
            return h->v[i].value;
    return NULL;
}

int et_body_set(struct et_body *b, struct et_arena *a, const void *data, size_t len)
{
    uint8_t *d = NULL;
    if (len) {
        d = et_arena_memdup(a, data, len);
        if (d == NULL)
            return ET_ENOMEM;
    }
    b->data = d;
    b->len = len;
    b->wire_len = len;
    b->truncated = 0;
    b->absent = 0;
    return 0;
}

void et_exchange_fail(struct et_exchange *x, int code, enum et_stage stage, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (x->err.code != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    x->err.code = code;
    x->err.stage = stage;
    x->err.message = et_arena_strdup(x->arena, msg);
}

int64_t et_exchange_duration_us(const struct et_exchange *x)
{
    int64_t start = x->t.req_begin ? x->t.req_begin : x->t.connect;
    int64_t end = x->t.resp_end ? x->t.resp_end : x->t.resp_begin;
    if (start <= 0 || end <= 0 || end < start)
        return -1;
    return end - start;
}

int64_t et_exchange_time(const struct et_exchange *x)
{
    if (x->t.req_begin > 0)
        return x->t.req_begin;
    if (x->t.connect > 0)
        return x->t.connect;
    if (x->t.resp_begin > 0)
        return x->t.resp_begin;
    return x->t.resp_end > 0 ? x->t.resp_end : 0;
}

int64_t et_exchange_end_time(const struct et_exchange *x)
{
    if (x->t.resp_end > 0)
        return x->t.resp_end;
    if (x->t.resp_begin > 0)
        return x->t.resp_begin;
    return et_exchange_time(x);
}

struct et_source *et_source_new(const struct et_source_ops *ops, void *impl, const char *name)
{
    struct et_source *s = et_calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->ops = ops;
    s->impl = impl;
    s->name = et_strdup(name ? name : "-");
    if (s->name == NULL) {
        et_free(s);
        return NULL;
    }
    return s;
}
