/* Error names and error records. */
#include "eastrace/common.h"

#include <stdio.h>
#include <string.h>

const char *et_strerror(int err)
{
    switch (err) {
    case ET_OK: return "success";
    case ET_EAGAIN: return "need more input";
    case ET_ENOMEM: return "out of memory";
    case ET_EINVAL: return "invalid argument";
    case ET_EPARSE: return "malformed input";
    case ET_ETRUNC: return "input truncated";
    case ET_ETOOBIG: return "size limit reached";
    case ET_EUNSUPPORTED: return "not supported";
    case ET_EIO: return "I/O error";
    case ET_ETLS: return "TLS error";
    case ET_ENOTFOUND: return "not found";
    case ET_EDNS: return "name resolution failed";
    case ET_ECONNREFUSED: return "connection refused";
    case ET_ETIMEDOUT: return "timed out";
    case ET_ECONNRESET: return "connection reset";
    case ET_ECERT: return "certificate verification failed";
    case ET_EDENIED: return "refused by policy";
    case ET_EEXIST: return "already exists";
    case ET_EPERM: return "unsafe or insufficient permissions";
    default: return "unknown error";
    }
}

void et_error_clear(struct et_error *e)
{
    memset(e, 0, sizeof(*e));
}

static void error_vset(struct et_error *e, int code, int has_offset, uint64_t offset,
                       const char *fmt, va_list ap) ET_PRINTF(5, 0);

static void error_vset(struct et_error *e, int code, int has_offset, uint64_t offset,
                       const char *fmt, va_list ap)
{
    if (e == NULL || e->code != 0)
        return;
    e->code = code;
    e->has_offset = has_offset;
    e->offset = offset;
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
}

void et_error_set(struct et_error *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(e, code, 0, 0, fmt, ap);
    va_end(ap);
}

void et_error_set_at(struct et_error *e, int code, uint64_t offset, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(e, code, 1, offset, fmt, ap);
    va_end(ap);
}

const char *et_error_format(const struct et_error *e, char *out, size_t outlen)
{
    const char *msg = e->msg[0] ? e->msg : et_strerror(e->code);
    char at[40];
    snprintf(at, sizeof(at), "at byte %llu", (unsigned long long)e->offset);
    /* A message that already names its offset does not get it twice. */
    if (e->has_offset && strstr(msg, at) == NULL)
        snprintf(out, outlen, "%s (at byte %llu)", msg, (unsigned long long)e->offset);
    else
        snprintf(out, outlen, "%s", msg);
    return out;
}
