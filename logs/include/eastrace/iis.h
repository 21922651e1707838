/*
 * Exchange IIS (W3C extended) logs: the reader that turns EAS request lines into exchanges.
 * The line pieces it is built from (the `#Fields:` layout, the line splitter, the EAS query
 * fields, Exchange's `Log=` items) are in eastrace/iisline.h, shared with the report engine
 * (report/, eastrace/iisreport.h), which counts lines without building an exchange.
 */
#ifndef ET_LOGS_IIS_H
#define ET_LOGS_IIS_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/arena.h"
#include "eastrace/common.h"
#include "eastrace/source.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Which EAS virtual directory's lines count. Exchange 2013+ logs each request twice: once on
 * the front end (CAFE, "Default Web Site", /Microsoft-Server-ActiveSync/default.eas) and once
 * on the back end ("Exchange Back End", /Microsoft-Server-ActiveSync/Proxy/default.eas). */
enum et_iis_site {
    ET_IIS_SITE_AUTO = 0,     /* front end; back end only when no front-end line is seen */
    ET_IIS_SITE_FRONTEND = 1, /* only front-end lines (incl. 2003/2007 plain stem) */
    ET_IIS_SITE_BACKEND = 2,  /* only Proxy/default.eas lines */
    ET_IIS_SITE_BOTH = 3      /* every EAS line (may count a request twice) */
};

struct et_iis_opts {
    enum et_iis_site site;
    int all_requests; /* also emit non-EAS lines (OWA, EWS, ...) as exchanges */
};

/*
 * Opens an IIS log: a file (plain or .gz), or a directory (every u_ex*.log, ex*.log, *.log
 * and *.log.gz in it, in name order). o may be NULL for defaults; it is copied. On success
 * *out is a source producing one exchange (ET_SRC_IIS, body.absent) per EAS line; an
 * unparsable line is reported as a skippable ET_EPARSE naming file and line.
 * Returns 0, ET_ENOMEM, ET_EIO (with e naming the path) or ET_ENOTFOUND (no log files).
 */
int et_iis_open(const char *path, const struct et_iis_opts *o, struct et_source **out,
                struct et_error *e);

/* Same over bytes in memory (borrowed: they must outlive the source); name is for messages.
 * Used by the fuzz target and tests. */
int et_iis_open_mem(const void *data, size_t len, const char *name, const struct et_iis_opts *o,
                    struct et_source **out, struct et_error *e);

#ifdef __cplusplus
}
#endif
#endif
