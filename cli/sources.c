/*
 * Opening inputs of any supported format and merging them into one stream ordered by time.
 *
 *   FILE --sniff--> capture | .saz | HAR | mailbox log | IIS log --> struct et_source
 *   sources --merge (one look-ahead exchange each, smallest time first)--> exchanges
 *
 * The merge keeps one pending exchange per source, so memory stays bounded by the number of
 * inputs, not their size. Damaged records that a reader can skip are reported and skipped.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eastrace/arena.h"
#include "eastrace/capfile.h"
#include "eastrace/exchange.h"
#include "eastrace/source.h"
#include "eastrace/har.h"
#include "eastrace/iis.h"
#include "eastrace/mailboxlog.h"
#include "eastrace/saz.h"

const char *const et_cli_formats[] = {"capture", "saz", "har", "iis", "mailboxlog", NULL};

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && et_strcaseeq(s + n - m, suf);
}

/* Sniffs the format from the first bytes (and the name, for compressed IIS logs). */
static const char *sniff(const char *path, const unsigned char *p, size_t n)
{
    size_t i = 0;

    if (et_capfile_detect(p, n))
        return "capture";
    if (n >= 4 && memcmp(p, "PK\x03\x04", 4) == 0)
        return "saz";
    if (has_suffix(path, ".gz"))
        return "iis";
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    if (i < n && p[i] == '{')
        return "har";
    if (memmem(p, n, "Log Entry:", 10) != NULL || memmem(p, n, "RequestHeader", 13) != NULL)
        return "mailboxlog";
    if (i < n && p[i] == '#')
        return "iis";
    if (has_suffix(path, ".log"))
        return "iis";
    if (has_suffix(path, ".saz"))
        return "saz";
    if (has_suffix(path, ".har"))
        return "har";
    return NULL;
}

int et_cli_open_source(const char *path, const char *format, struct et_source **out,
                       struct et_error *e)
{
    unsigned char head[8192];
    size_t n = 0;
    struct stat st;

    *out = NULL;
    if (stat(path, &st) != 0) {
        et_error_set(e, ET_EIO, "%s: %s", path, strerror(errno));
        return ET_EIO;
    }
    if (format == NULL) {
        if (S_ISDIR(st.st_mode)) {
            format = "iis";
        } else {
            FILE *f = fopen(path, "rb");
            if (f == NULL) {
                et_error_set(e, ET_EIO, "%s: %s", path, strerror(errno));
                return ET_EIO;
            }
            n = fread(head, 1, sizeof(head), f);
            fclose(f);
            format = sniff(path, head, n);
            if (format == NULL) {
                et_error_set(e, ET_EUNSUPPORTED,
                             "%s: not a format eastrace reads (capture, .saz, HAR, IIS log, "
                             "mailbox log); name one with --format",
                             path);
                return ET_EUNSUPPORTED;
            }
        }
    }
    if (strcmp(format, "capture") == 0)
        return et_capfile_open(path, out, e);
    if (strcmp(format, "saz") == 0)
        return et_saz_open(path, out, e);
    if (strcmp(format, "har") == 0)
        return et_har_open(path, out, e);
    if (strcmp(format, "iis") == 0)
        return et_iis_open(path, NULL, out, e);
    if (strcmp(format, "mailboxlog") == 0)
        return et_mailboxlog_open(path, out, e);
    et_error_set(e, ET_EINVAL, "unknown format '%s' (capture, saz, har, iis, mailboxlog)",
                 format);
    return ET_EINVAL;
}

/* ---- merge ---------------------------------------------------------------------------- */

struct pending {
    struct et_source *src;
    struct et_exchange *x; /* look-ahead, NULL when the source is drained */
    int done;
};

struct et_cli_merge {
    struct pending *v;
    size_t n;
    uint64_t damaged; /* skipped records */
    int failed;       /* a source failed for good */
};

static int64_t when(const struct et_exchange *x)
{
    if (x->t.req_begin)
        return x->t.req_begin;
    if (x->t.connect)
        return x->t.connect;
    return x->t.resp_end;
}

/* Reads the next exchange of one source into its look-ahead slot. */
static void refill(struct et_cli_merge *m, struct pending *p)
{
    while (!p->done && p->x == NULL) {
        struct et_error e;
        char msg[400];
        int rc;
        et_error_clear(&e);
        rc = et_source_next(p->src, &p->x, &e);
        if (rc == 1)
            return;
        p->x = NULL;
        if (rc == 0) {
            p->done = 1;
        } else if (rc == ET_EPARSE) {
            m->damaged++;
            et_cli_err("%s: %s (skipped)", p->src->name, et_error_format(&e, msg, sizeof(msg)));
        } else {
            et_cli_err("%s: %s", p->src->name, et_error_format(&e, msg, sizeof(msg)));
            m->failed = 1;
            p->done = 1;
        }
    }
}

struct et_cli_merge *et_cli_merge_open(char **paths, size_t npaths, const char *format)
{
    struct et_cli_merge *m = et_calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->v = et_calloc(npaths ? npaths : 1, sizeof(*m->v));
    if (m->v == NULL) {
        et_free(m);
        return NULL;
    }
    for (size_t i = 0; i < npaths; i++) {
        struct et_error e;
        char msg[400];
        struct et_source *s = NULL;
        et_error_clear(&e);
        if (et_cli_open_source(paths[i], format, &s, &e) != 0) {
            et_cli_err("%s", et_error_format(&e, msg, sizeof(msg)));
            m->failed = 1;
            continue;
        }
        m->v[m->n].src = s;
        m->n++;
    }
    for (size_t i = 0; i < m->n; i++)
        refill(m, &m->v[i]);
    return m;
}

struct et_exchange *et_cli_merge_next(struct et_cli_merge *m)
{
    struct pending *best = NULL;
    struct et_exchange *x;

    for (size_t i = 0; i < m->n; i++) {
        struct pending *p = &m->v[i];
        if (p->x == NULL)
            continue;
        /* Earliest first; exchanges without a time keep their source order. */
        if (best == NULL || (when(p->x) > 0 && when(best->x) > 0 && when(p->x) < when(best->x)))
            best = p;
    }
    if (best == NULL)
        return NULL;
    x = best->x;
    best->x = NULL;
    refill(m, best);
    return x;
}

int et_cli_merge_failed(const struct et_cli_merge *m)
{
    return m->failed;
}

unsigned long long et_cli_merge_damaged_count(const struct et_cli_merge *m)
{
    return (unsigned long long)m->damaged;
}

void et_cli_merge_close(struct et_cli_merge *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++) {
        et_exchange_free(m->v[i].x);
        et_source_close(m->v[i].src);
    }
    et_free(m->v);
    et_free(m);
}
