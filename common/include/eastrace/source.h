/*
 * A source of exchanges: every reader (eastrace capture files, .saz, HAR, IIS logs, mailbox
 * logs) hands out exchanges one at a time through this interface, so cli/ can merge several
 * sources by time and feed one decoder/analyzer pipeline. Readers stream: memory does not grow
 * with the size of the input.
 */
#ifndef ET_COMMON_SOURCE_H
#define ET_COMMON_SOURCE_H

#include "eastrace/common.h"
#include "eastrace/exchange.h"

#ifdef __cplusplus
extern "C" {
#endif

struct et_source_ops {
    const char *format; /* "capture", "saz", "har", "iis", "mailboxlog" */
    /*
     * Produces the next exchange. Returns 1 and sets *out (the caller owns it and frees it with
     * et_exchange_free), 0 at the end of the input, or a negative ET_E* with e set. A record
     * that is damaged but skippable (a torn capture record, one bad .saz session, one
     * unparsable log line) is reported as ET_EPARSE with e naming it; the next call goes on
     * after it. Any other negative value is final.
     */
    int (*next)(void *impl, struct et_exchange **out, struct et_error *e);
    void (*close)(void *impl);
};

struct et_source {
    const struct et_source_ops *ops;
    void *impl;
    char *name; /* the path it reads, owned (et_malloc) */
};

/* Helpers over the vtable. et_source_close(NULL) does nothing; close frees the source. */
static inline int et_source_next(struct et_source *s, struct et_exchange **out,
                                 struct et_error *e)
{
    return s->ops->next(s->impl, out, e);
}

static inline void et_source_close(struct et_source *s)
{
    if (s == NULL)
        return;
    s->ops->close(s->impl);
    et_free(s->name);
    et_free(s);
}

/* Allocates a source wrapping impl (name is copied). NULL on ENOMEM, in which case the caller
 * still owns impl. */
struct et_source *et_source_new(const struct et_source_ops *ops, void *impl, const char *name);

#ifdef __cplusplus
}
#endif
#endif
