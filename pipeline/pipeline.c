/*
 * The exchange pipeline (see eastrace/pipeline.h for the stages and docs/architecture.md for
 * who owns an exchange at each step).
 *
 * Held groups, the one buffer between the merge and the sink:
 *
 *   held (doubly linked, sorted by key = start time, ties in arrival order)
 *     head                                                     tail
 *     [g start 10:00:01] <-> [g 10:00:02] <-> ... <-> [g 10:00:07]  <- new groups enter
 *      ^ released when the clock (newest start seen) is past its last end + window (done),
 *        or when more than ET_PIPE_MAX_HELD groups are held; a group that is not done stops
 *        the ones after it only for window_max past its own start (see release())
 *
 * A new exchange first looks for a held group of another kind of source that is the same
 * request (correlation); either way it enters near the tail, so insertion is O(1) for a stream
 * that is already nearly in order.
 */
#include "eastrace/pipeline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eastrace/capfile.h"
#include "eastrace/eas.h"
#include "eastrace/har.h"
#include "eastrace/iis.h"
#include "eastrace/mailboxlog.h"
#include "eastrace/saz.h"

#define KIND_N 3

struct input {
    struct et_source *src;
    struct et_exchange *x; /* look-ahead, NULL when drained */
    unsigned kind;         /* ET_SEEN_* of its format */
    int done;
    uint64_t produced;     /* exchanges it gave */
    uint64_t skipped_run;  /* damaged records in a row */
    struct et_error pending; /* a skip not reported yet: reported once the next call differs */
    int has_pending;
    uint64_t skips_reported; /* skip messages given; past SKIPS_SHOWN they are only counted */
};

/* One request as seen by up to one exchange of each kind of source. */
struct group {
    struct et_exchange *x[KIND_N];
    const char *dev, *cmd; /* match keys, in the first member's arena */
    int status;            /* HTTP status, 0 when none */
    int64_t start, end;    /* of the first member (0 unknown) */
    int64_t last_end;      /* latest end (or start) of any member */
    int64_t key;           /* sort key: start, else the clock when it came */
    unsigned eas : 1;
    unsigned borrowed : 1; /* et_pipe_judge(): the caller owns the exchange */
    struct group *prev, *next;
};

struct et_pipe {
    struct et_pipe_opts o;
    struct et_pipe_sink sink;
    struct et_analyzer *an;
    struct input *in;
    size_t nin, capin;
    struct group *head, *tail;
    size_t nheld;
    int64_t clock;                 /* newest start time seen */
    int64_t iis_first, iis_last;   /* times the IIS lines seen so far cover */
    uint64_t cap_iis_matched;      /* delivered groups seen by a recording and an IIS log */
    uint64_t position;             /* delivered groups, the merged numbering */
    int stopped;                   /* the sink said stop (or failed) */
    int sink_rc;
    int finished;
    struct et_pipe_stats st;
};

static int kind_index(unsigned bit)
{
    return bit == ET_SEEN_IIS ? 1 : bit == ET_SEEN_MBX ? 2 : 0;
}

unsigned et_pipe_seen_of(enum et_source_kind k)
{
    return k == ET_SRC_IIS ? ET_SEEN_IIS : k == ET_SRC_MAILBOX ? ET_SEEN_MBX : ET_SEEN_CAP;
}

static unsigned seen_of_format(const char *format)
{
    if (format != NULL && strcmp(format, "iis") == 0)
        return ET_SEEN_IIS;
    if (format != NULL && strcmp(format, "mailboxlog") == 0)
        return ET_SEEN_MBX;
    return ET_SEEN_CAP;
}

void et_pipe_opts_default(struct et_pipe_opts *o)
{
    memset(o, 0, sizeof(*o));
    et_analyzer_opts_default(&o->analyzer);
    o->correlate = 1;
    o->tolerance_us = (int64_t)3 * 1000000;
    o->window_us = (int64_t)5 * 1000000;
    o->window_max_us = (int64_t)60 * 1000000;
    o->max_consecutive_skips = 10000;
}

struct et_pipe *et_pipe_new(const struct et_pipe_opts *o, const struct et_pipe_sink *sink)
{
    struct et_pipe *p = et_calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    if (o != NULL)
        p->o = *o;
    else
        et_pipe_opts_default(&p->o);
    if (sink != NULL)
        p->sink = *sink;
    p->an = et_analyzer_new(&p->o.analyzer);
    if (p->an == NULL) {
        et_free(p);
        return NULL;
    }
    p->st.max_severity = -1;
    return p;
}

void et_pipe_set_sink(struct et_pipe *p, const struct et_pipe_sink *sink)
{
    p->sink = *sink;
}

static void free_group(struct group *g)
{
    for (int k = 0; k < KIND_N; k++)
        if (!g->borrowed)
            et_exchange_free(g->x[k]);
    et_free(g);
}

void et_pipe_free(struct et_pipe *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nin; i++) {
        et_exchange_free(p->in[i].x);
        et_source_close(p->in[i].src);
    }
    et_free(p->in);
    while (p->head != NULL) {
        struct group *g = p->head;
        p->head = g->next;
        free_group(g);
    }
    et_analyzer_free(p->an);
    et_free(p);
}

const struct et_pipe_stats *et_pipe_stats(const struct et_pipe *p)
{
    return &p->st;
}

struct et_analyzer *et_pipe_analyzer(struct et_pipe *p)
{
    return p->an;
}

static void report(struct et_pipe *p, const char *input, const struct et_error *e, int skipped)
{
    char msg[400];
    if (p->o.on_error != NULL) {
        p->o.on_error(p->o.error_arg, input, e, skipped);
        return;
    }
    et_error_format(e, msg, sizeof(msg));
    /* Readers name their file in most messages, and some say they skipped: each once. */
    if (strstr(msg, "skipped") != NULL)
        skipped = 0;
    if (strncmp(msg, input, strlen(input)) == 0 &&
        (msg[strlen(input)] == ':' || msg[strlen(input)] == ' '))
        fprintf(stderr, "eastrace: %s%s\n", msg, skipped ? " (skipped)" : "");
    else
        fprintf(stderr, "eastrace: %s: %s%s\n", input, msg, skipped ? " (skipped)" : "");
}

/* ---- formats ---------------------------------------------------------------------------- */

const char *const et_pipe_formats[] = {"capture", "saz", "har", "iis", "mailboxlog", NULL};

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && et_strcaseeq(s + n - m, suf);
}

/* The first non-blank byte after an optional UTF-8 BOM. */
static size_t skip_blank(const unsigned char *p, size_t n)
{
    size_t i = 0;
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i;
}

/* An IIS W3C line without a #Fields header: "2024-05-01 10:00:00 " then more columns. */
static int looks_like_w3c_line(const unsigned char *p, size_t n)
{
    static const char pat[] = "dddd-dd-dd dd:dd:dd ";
    if (n < sizeof(pat) - 1)
        return 0;
    for (size_t i = 0; i < sizeof(pat) - 1; i++) {
        if (pat[i] == 'd' ? !(p[i] >= '0' && p[i] <= '9') : p[i] != (unsigned char)pat[i])
            return 0;
    }
    return 1;
}

/* A W3C extended log directive line (#Software:, #Version:, #Date:, #Fields:, ...), which
 * IIS writes at the top of every log; a Markdown heading or a shell comment is not one. */
static int looks_like_w3c_directive(const unsigned char *p, size_t n)
{
    static const char *const dir[] = {"#Software:", "#Version:", "#Date:",      "#Fields:",
                                      "#Remark:",   "#Start-Date:", "#End-Date:"};
    for (size_t k = 0; k < sizeof(dir) / sizeof(dir[0]); k++) {
        size_t l = strlen(dir[k]);
        if (n >= l && memcmp(p, dir[k], l) == 0)
            return 1;
    }
    return 0;
}

/* Does the text look like an IIS log: a directive or a W3C line at its start? */
static int looks_like_iis(const unsigned char *p, size_t n)
{
    return looks_like_w3c_directive(p, n) || looks_like_w3c_line(p, n);
}

const char *et_pipe_sniff(const char *path, const unsigned char *p, size_t n)
{
    size_t i;

    if (et_capfile_detect(p, n))
        return "capture";
    if (n >= 4 && memcmp(p, "PK\x03\x04", 4) == 0)
        return "saz";
    if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b)
        return "iis"; /* gzip: eastrace reads compressed IIS logs */
    if (path != NULL && has_suffix(path, ".gz"))
        return "iis";
    i = skip_blank(p, n);
    if (i < n && p[i] == '{')
        return "har";
    if (memmem(p, n, "Log Entry:", 10) != NULL || memmem(p, n, "RequestHeader", 13) != NULL)
        return "mailboxlog";
    /* Only by content: a README or any other text (".log" included) is not an IIS log, and
     * reading it as one would print an error per line. */
    if (looks_like_iis(p + i, n - i))
        return "iis";
    if (path != NULL && has_suffix(path, ".saz"))
        return "saz";
    if (path != NULL && has_suffix(path, ".har"))
        return "har";
    return NULL;
}

static size_t read_head(const char *path, unsigned char *head, size_t cap, struct et_error *e)
{
    FILE *f = fopen(path, "rb");
    size_t n;
    if (f == NULL) {
        et_error_set(e, ET_EIO, "%s: %s", path, strerror(errno));
        return (size_t)-1;
    }
    n = fread(head, 1, cap, f);
    fclose(f);
    return n;
}

static const char *format_text(const char *fmt)
{
    if (fmt == NULL)
        return "not a format eastrace reads";
    if (strcmp(fmt, "capture") == 0)
        return "an eastrace capture file: read it with `eastrace replay` (or show, export)";
    if (strcmp(fmt, "saz") == 0)
        return "a Fiddler .saz archive: read it with `eastrace replay` (or show, export)";
    if (strcmp(fmt, "har") == 0)
        return "a HAR file: read it with `eastrace replay` (or show, export)";
    if (strcmp(fmt, "iis") == 0)
        return "an IIS log: read it with `eastrace iis` or `eastrace replay`";
    if (strcmp(fmt, "mailboxlog") == 0)
        return "an EAS mailbox log: read it with `eastrace mailboxlog` or `eastrace replay`";
    return fmt;
}

int et_pipe_check_format(const char *path, const char *want, struct et_error *e)
{
    unsigned char head[8192];
    struct stat st;
    const char *fmt;
    size_t n, i;

    if (stat(path, &st) != 0 || S_ISDIR(st.st_mode))
        return 0; /* the command reports a missing file; a directory is IIS logs */
    n = read_head(path, head, sizeof(head), e);
    if (n == (size_t)-1)
        return 0;
    if (n == 0) {
        et_error_set(e, ET_EUNSUPPORTED, "%s: the file is empty", path);
        return ET_EUNSUPPORTED;
    }
    fmt = et_pipe_sniff(path, head, n);
    i = skip_blank(head, n);
    if (strcmp(want, "wbxml") == 0 || strcmp(want, "http") == 0) {
        /* decode: a WBXML body starts with version 0x01-0x03; HTTP with a method or
         * "HTTP/". Files that other commands read are named as such. */
        if (fmt == NULL)
            return 0; /* a raw message or body: decode judges it */
        et_error_set(e, ET_EUNSUPPORTED,
                     "%s: this is %s; `eastrace decode` reads one raw WBXML body or HTTP message",
                     path, format_text(fmt));
        return ET_EUNSUPPORTED;
    }
    if (fmt != NULL && strcmp(fmt, want) == 0) {
        /* ".log" alone says little: an IIS log holds text lines. */
        if (strcmp(want, "iis") == 0 && !(looks_like_iis(head + i, n - i) ||
                                          (n >= 2 && head[0] == 0x1f && head[1] == 0x8b) ||
                                          has_suffix(path, ".gz"))) {
            et_error_set(e, ET_EUNSUPPORTED,
                         "%s: not an IIS log (expected a '#Software'/'#Fields' header or W3C "
                         "lines 'YYYY-MM-DD hh:mm:ss ...' at offset 0)",
                         path);
            return ET_EUNSUPPORTED;
        }
        return 0;
    }
    if (fmt == NULL) {
        int binary = memchr(head, 0, n) != NULL || !et_utf8_valid(head, n > 4096 ? 4096 : n);
        et_error_set(e, ET_EUNSUPPORTED, "%s: not %s (%s at offset 0)", path,
                     strcmp(want, "iis") == 0 ? "an IIS log: expected a '#Fields' header or "
                                                "W3C lines"
                                              : "an EAS mailbox log: expected '----' and "
                                                "' Log Entry: N'",
                     binary ? "binary data" : "text of another kind");
        return ET_EUNSUPPORTED;
    }
    et_error_set(e, ET_EUNSUPPORTED, "%s: this is %s", path, format_text(fmt));
    return ET_EUNSUPPORTED;
}

static int open_format(const char *path, const char *format, const void *mem, size_t len,
                       struct et_source **out, struct et_error *e)
{
    if (strcmp(format, "capture") == 0)
        return mem ? et_capfile_open_mem(mem, len, path, NULL, out, e)
                   : et_capfile_open(path, out, e);
    if (strcmp(format, "saz") == 0)
        return mem ? et_saz_open_mem(mem, len, path, out, e) : et_saz_open(path, out, e);
    if (strcmp(format, "har") == 0)
        return mem ? et_har_open_mem(mem, len, path, out, e) : et_har_open(path, out, e);
    if (strcmp(format, "iis") == 0)
        return mem ? et_iis_open_mem(mem, len, path, NULL, out, e)
                   : et_iis_open(path, NULL, out, e);
    if (strcmp(format, "mailboxlog") == 0)
        return mem ? et_mailboxlog_open_mem(mem, len, path, out, e)
                   : et_mailboxlog_open(path, out, e);
    et_error_set(e, ET_EINVAL, "unknown format '%s' (capture, saz, har, iis, mailboxlog)",
                 format);
    return ET_EINVAL;
}

static int add_input(struct et_pipe *p, struct et_source *s, const char *format)
{
    if (p->nin == p->capin) {
        size_t ncap = p->capin ? p->capin * 2 : 4;
        struct input *nv = et_calloc(ncap, sizeof(*nv));
        if (nv == NULL) {
            et_source_close(s);
            return ET_ENOMEM;
        }
        if (p->nin)
            memcpy(nv, p->in, p->nin * sizeof(*nv));
        et_free(p->in);
        p->in = nv;
        p->capin = ncap;
    }
    memset(&p->in[p->nin], 0, sizeof(p->in[p->nin]));
    p->in[p->nin].src = s;
    p->in[p->nin].kind = seen_of_format(format ? format : s->ops->format);
    p->st.kinds |= p->in[p->nin].kind;
    p->nin++;
    p->st.inputs++;
    p->st.correlating = p->o.correlate && (p->st.kinds & (p->st.kinds - 1)) != 0;
    return 0;
}

static int open_any(struct et_pipe *p, const char *path, const void *mem, size_t len)
{
    struct et_error e;
    struct et_source *s = NULL;
    const char *format = p->o.format;
    int rc;

    et_error_clear(&e);
    if (format == NULL) {
        unsigned char head[8192];
        size_t n;
        struct stat st;
        if (mem != NULL) {
            n = len < sizeof(head) ? len : sizeof(head);
            memcpy(head, mem, n);
        } else if (stat(path, &st) != 0) {
            et_error_set(&e, ET_EIO, "%s", strerror(errno));
            rc = ET_EIO;
            goto fail;
        } else if (S_ISDIR(st.st_mode)) {
            format = "iis";
            n = 0;
        } else if ((n = read_head(path, head, sizeof(head), &e)) == (size_t)-1) {
            rc = ET_EIO;
            goto fail;
        }
        if (format == NULL && n == 0) {
            et_error_set_at(&e, ET_EUNSUPPORTED, 0, "the file is empty");
            rc = ET_EUNSUPPORTED;
            goto fail;
        }
        if (format == NULL)
            format = et_pipe_sniff(path, head, n);
        if (format == NULL) {
            et_error_set_at(&e, ET_EUNSUPPORTED, 0,
                            "not a format eastrace reads (expected a capture, .saz, HAR, IIS "
                            "log or mailbox log); name one with --format");
            rc = ET_EUNSUPPORTED;
            goto fail;
        }
    }
    rc = open_format(path, format, mem, len, &s, &e);
    if (rc != 0)
        goto fail;
    return add_input(p, s, format);
fail:
    /* Readers name the path themselves in some messages; say it once. */
    p->st.inputs_failed++;
    report(p, path, &e, 0);
    return rc;
}

int et_pipe_open(struct et_pipe *p, const char *path)
{
    return open_any(p, path, NULL, 0);
}

int et_pipe_open_mem(struct et_pipe *p, const void *data, size_t len, const char *name)
{
    return open_any(p, name ? name : "memory", data ? data : "", len);
}

int et_pipe_add_source(struct et_pipe *p, struct et_source *s)
{
    return add_input(p, s, NULL);
}

/* ---- reading inputs ---------------------------------------------------------------------- */

/* Skipped-record messages per input; the rest are counted in one closing line, so a damaged
 * file gives a screenful, not one line per record. */
#define SKIPS_SHOWN 10

static void report_skip(struct et_pipe *p, struct input *in, const struct et_error *e)
{
    if (in->skips_reported++ < SKIPS_SHOWN)
        report(p, in->src->name, e, 1);
}

/* At the end of an input: how many skip messages were not shown. */
static void report_skips_left(struct et_pipe *p, struct input *in)
{
    struct et_error e;
    if (in->skips_reported <= SKIPS_SHOWN)
        return;
    et_error_clear(&e);
    et_error_set(&e, ET_EPARSE, "%llu more damaged records",
                 (unsigned long long)(in->skips_reported - SKIPS_SHOWN));
    report(p, in->src->name, &e, 1);
}

static int same_error(const struct et_error *a, const struct et_error *b)
{
    return a->code == b->code && a->has_offset == b->has_offset && a->offset == b->offset &&
           strcmp(a->msg, b->msg) == 0;
}

/* Widens the period the IIS lines cover (not-in-server-log judges against it). */
static void cover(struct et_pipe *p, const struct et_exchange *x)
{
    int64_t st = et_exchange_time(x), en = et_exchange_end_time(x);
    if (en <= 0)
        return;
    if (p->iis_first == 0 || st < p->iis_first)
        p->iis_first = st;
    if (en > p->iis_last)
        p->iis_last = en;
}

/*
 * Reads the next exchange of one input into its look-ahead slot. A reader that reports a
 * skippable error but makes no progress (the same error at the same place again), or more
 * than max_consecutive_skips in a row, ends its input: every input ends.
 */
static void refill(struct et_pipe *p, struct input *in)
{
    while (!in->done && in->x == NULL) {
        struct et_error e;
        int rc;
        et_error_clear(&e);
        rc = et_source_next(in->src, &in->x, &e);
        if (rc == 1 && in->x != NULL) {
            if (in->kind == ET_SEEN_IIS)
                cover(p, in->x); /* known as soon as it is read, before it is taken */
            if (in->has_pending)
                report_skip(p, in, &in->pending);
            in->has_pending = 0;
            in->skipped_run = 0;
            in->produced++;
            return;
        }
        in->x = NULL;
        if (rc == ET_EPARSE && !(in->has_pending && same_error(&in->pending, &e)) &&
            in->skipped_run < p->o.max_consecutive_skips) {
            if (in->has_pending)
                report_skip(p, in, &in->pending);
            in->pending = e;
            in->has_pending = 1;
            in->skipped_run++;
            p->st.damaged++;
            continue;
        }
        in->done = 1;
        if (rc == 0 || rc == 1) {
            if (in->has_pending) {
                if (in->produced > 0) {
                    report_skip(p, in, &in->pending);
                } else {
                    report(p, in->src->name, &in->pending, 0);
                    p->st.inputs_failed++; /* not one usable record */
                }
            }
        } else {
            if (in->has_pending && !same_error(&in->pending, &e))
                report_skip(p, in, &in->pending);
            if (rc == ET_EPARSE && in->skipped_run >= p->o.max_consecutive_skips)
                et_error_set(&e, ET_EPARSE, "%llu damaged records in a row: stopped reading",
                             (unsigned long long)in->skipped_run);
            else if (rc == ET_EPARSE)
                p->st.damaged--; /* the repeat is the end, not one more skipped record */
            report(p, in->src->name, &e, 0);
            p->st.inputs_failed++;
        }
        in->has_pending = 0;
        report_skips_left(p, in);
    }
}

/* ---- correlation, reordering, delivery ------------------------------------------------ */

static int64_t absdiff(int64_t a, int64_t b)
{
    return a > b ? a - b : b - a;
}

static int same_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && et_strcaseeq(a, b));
}

/* The member whose decoding tells most: bodies first, then a recording over a mailbox log
 * over an IIS line. */
static int richest(const struct group *g)
{
    int best = -1, best_score = -1;
    for (int k = 0; k < KIND_N; k++) {
        const struct et_exchange *x = g->x[k];
        if (x == NULL)
            continue;
        int bodies = (!x->req.body.absent && x->req.body.len > 0) ||
                     (!x->resp.body.absent && x->resp.body.len > 0);
        int score = bodies * 4 + (k == 0 ? 2 : k == 2 ? 1 : 0);
        if (score > best_score) {
            best = k;
            best_score = score;
        }
    }
    return best;
}

static void count_findings(struct et_pipe *p, const struct et_finding *f)
{
    for (; f != NULL; f = f->next) {
        if (f->severity == ET_SEV_ERROR)
            p->st.errors++;
        else if (f->severity == ET_SEV_WARNING)
            p->st.warnings++;
        else
            p->st.infos++;
        if ((int)f->severity > p->st.max_severity)
            p->st.max_severity = (int)f->severity;
    }
}

/*
 * Facts of the other members the richest one lacks, so that merging never loses them: the
 * server log's typed facts (the mailbox log's exception, IIS Status and Error).
 */
static void carry_facts(struct et_exchange *to, const struct et_exchange *from)
{
    struct et_server_facts *t = &to->facts;
    const struct et_server_facts *f = &from->facts;
    if (!f->present)
        return;
    if (t->status < 0 && f->status >= 0)
        t->status = f->status;
    if (t->error == NULL && f->error != NULL)
        t->error = et_arena_strdup(to->arena, f->error);
    if (t->exception == NULL && f->exception != NULL)
        t->exception = et_arena_strdup(to->arena, f->exception);
    if (t->access_state == NULL && f->access_state != NULL)
        t->access_state = et_arena_strdup(to->arena, f->access_state);
    if (t->sync_key == NULL && f->sync_key != NULL)
        t->sync_key = et_arena_strdup(to->arena, f->sync_key);
    if (t->heartbeat < 0)
        t->heartbeat = f->heartbeat;
    t->present = 1;
}

static void deliver(struct et_pipe *p, struct group *g)
{
    struct et_correlation c;
    struct et_pipe_item it;
    struct et_view v;
    struct et_finding *f = NULL;
    struct et_exchange *x;
    int k = richest(g), rc;
    unsigned seen = 0;

    for (int i = 0; i < KIND_N; i++)
        if (g->x[i] != NULL)
            seen |= i == 0 ? ET_SEEN_CAP : i == 1 ? ET_SEEN_IIS : ET_SEEN_MBX;
    x = g->x[k];
    for (int i = 0; i < KIND_N; i++)
        if (i != k && g->x[i] != NULL)
            carry_facts(x, g->x[i]);
    p->position++;
    p->st.exchanges++;
    p->st.seen_count[seen & 7]++;
    memset(&it, 0, sizeof(it));
    /* One input (or the live proxy): the record's own number. Several: the position. */
    it.n = p->nin <= 1 && x->id != 0 ? x->id : p->position;
    it.record = x->id;
    /* From here on the exchange carries its one number: the timeline line, the JSON object
     * and every finding's exchange_id say the same. */
    x->id = it.n;
    it.x = x;
    it.v = &v;
    it.seen_by = seen;
    memset(&c, 0, sizeof(c));
    c.seen_by = seen;
    c.kinds = p->st.correlating ? p->st.kinds : 0;
    c.is_eas = g->eas;
    c.cmd = g->cmd;
    c.start = g->start;
    c.end = g->last_end;
    c.cap_iis_matched = p->cap_iis_matched;
    c.iis_first = p->iis_first;
    c.iis_last = p->iis_last;
    c.tolerance = p->o.tolerance_us;
    if ((seen & (ET_SEEN_CAP | ET_SEEN_IIS)) == (ET_SEEN_CAP | ET_SEEN_IIS))
        p->cap_iis_matched++;
    if (et_view_build(x, x->arena, &v) != 0 ||
        et_analyzer_feed_correlated(p->an, x, &v, &c, x->arena, &f) != 0) {
        et_view_reset(&v);
        p->stopped = 1;
        p->sink_rc = ET_ENOMEM;
        free_group(g);
        return;
    }
    it.findings = f;
    if (et_pipe_filter_match(&p->o.filter, &it)) {
        p->st.shown++;
        count_findings(p, f);
        if (!p->stopped && p->sink.on_exchange != NULL) {
            rc = p->sink.on_exchange(p->sink.arg, &it);
            if (rc != 0) {
                p->stopped = 1;
                p->sink_rc = rc < 0 ? rc : 0;
            }
        }
    }
    et_view_reset(&v);
    free_group(g);
}

static void unlink_group(struct et_pipe *p, struct group *g)
{
    if (g->prev)
        g->prev->next = g->next;
    else
        p->head = g->next;
    if (g->next)
        g->next->prev = g->prev;
    else
        p->tail = g->prev;
    g->prev = g->next = NULL;
    p->nheld--;
}

/* A group is done once the stream's clock is past its end by the window: no other source's
 * record of the same request can still come. */
static int done(const struct et_pipe *p, const struct group *g)
{
    return g->key == 0 || g->last_end + p->o.window_us + p->o.tolerance_us < p->clock;
}

/*
 * Releases held groups in start order (all of them when all is set). A group that is not done
 * keeps the ones after it waiting, for window_max of stream time past its start; past that (a
 * long poll recorded when it ended, held for its partners) it stops blocking: the done groups
 * after it go, and it goes when it is done, where it was recorded.
 */
static void release(struct et_pipe *p, int all)
{
    struct group *g = p->head;
    while (g != NULL && !p->stopped) {
        struct group *next = g->next;
        if (all || p->o.window_us == 0 || done(p, g) ||
            (p->nheld > ET_PIPE_MAX_HELD && g == p->head)) {
            unlink_group(p, g);
            deliver(p, g);
        } else if (g->key + p->o.window_max_us >= p->clock) {
            break; /* keep the order */
        }
        g = next;
    }
}

static void insert_sorted(struct et_pipe *p, struct group *g)
{
    struct group *at = p->tail;
    while (at != NULL && at->key > g->key)
        at = at->prev;
    g->prev = at;
    g->next = at ? at->next : p->head;
    if (g->next)
        g->next->prev = g;
    else
        p->tail = g;
    if (at)
        at->next = g;
    else
        p->head = g;
    p->nheld++;
}

/* Takes ownership of x: joins it to the held group of the same request seen by another kind
 * of source, or holds it as a new group. */
static int take(struct et_pipe *p, struct et_exchange *x)
{
    struct et_eas_request q;
    struct et_error e;
    struct group *g, *best = NULL;
    int k = kind_index(et_pipe_seen_of(x->source));
    int64_t st = et_exchange_time(x), en = et_exchange_end_time(x), best_d = 0;
    int status = x->has_response ? x->resp.status : 0;
    const char *dev = NULL, *cmd = NULL;
    int eas = 0;

    et_error_clear(&e);
    memset(&q, 0, sizeof(q));
    /* The match keys, only when correlating (the view parses the query again later; this is
     * before any reordering, so it cannot wait for it). */
    if (p->st.correlating && x->req.target != NULL &&
        et_eas_query_parse(x->req.target, x->arena, &q, &e) == 0 && q.is_eas) {
        eas = 1;
        dev = q.device_id ? q.device_id : q.user;
        cmd = q.cmd ? q.cmd : x->req.method;
    }
    if (st > p->clock)
        p->clock = st;
    if (k == 1)
        cover(p, x);
    if (eas && dev != NULL && st != 0) {
        for (g = p->tail; g != NULL; g = g->prev) {
            if (g->x[k] != NULL || !g->eas || g->dev == NULL || !et_strcaseeq(g->dev, dev) ||
                !same_text(g->cmd, cmd) || (status && g->status && status != g->status))
                continue;
            int64_t ds = absdiff(g->start, st);
            int64_t de = g->end && en ? absdiff(g->end, en) : ds;
            int64_t d = ds < de ? ds : de;
            if (d <= p->o.tolerance_us && (best == NULL || d < best_d)) {
                best = g;
                best_d = d;
            }
        }
    }
    if (best != NULL) {
        best->x[k] = x;
        if (!best->status)
            best->status = status;
        if (en > best->last_end)
            best->last_end = en;
    } else {
        g = et_calloc(1, sizeof(*g));
        if (g == NULL) {
            et_exchange_free(x);
            return ET_ENOMEM;
        }
        g->x[k] = x;
        g->dev = dev;
        g->cmd = cmd;
        g->status = status;
        g->start = st;
        g->end = x->t.resp_end;
        g->last_end = en;
        g->key = st ? st : p->clock;
        g->eas = (unsigned)eas;
        insert_sorted(p, g);
    }
    release(p, 0);
    return 0;
}

int et_pipe_push(struct et_pipe *p, struct et_exchange *x)
{
    int rc;
    if (p->stopped) {
        et_exchange_free(x);
        return p->sink_rc;
    }
    rc = take(p, x);
    if (rc != 0)
        return rc;
    return p->stopped ? p->sink_rc : 0;
}

int et_pipe_judge(struct et_pipe *p, struct et_exchange *x)
{
    struct group *g;
    int64_t st = et_exchange_time(x);

    if (p->stopped)
        return p->sink_rc;
    g = et_calloc(1, sizeof(*g));
    if (g == NULL)
        return ET_ENOMEM;
    g->x[kind_index(et_pipe_seen_of(x->source))] = x;
    g->borrowed = 1;
    g->start = st;
    g->end = x->t.resp_end;
    g->last_end = et_exchange_end_time(x);
    g->key = st;
    if (st > p->clock)
        p->clock = st;
    deliver(p, g);
    return p->stopped ? p->sink_rc : 0;
}

int et_pipe_finish(struct et_pipe *p)
{
    struct et_finding *sf = NULL;
    int rc;

    if (p->finished)
        return p->sink_rc;
    p->finished = 1;
    release(p, 1);
    if (p->stopped)
        return p->sink_rc;
    if (et_analyzer_finish(p->an, &sf) != 0)
        return ET_ENOMEM;
    if (p->o.filter.device != NULL) {
        /* Summary findings of other devices do not belong to a filtered view. */
        struct et_finding **pp = &sf;
        while (*pp != NULL) {
            if ((*pp)->device != NULL && !et_strcaseeq((*pp)->device, p->o.filter.device))
                *pp = (*pp)->next;
            else
                pp = &(*pp)->next;
        }
    }
    count_findings(p, sf);
    if (p->sink.on_finish != NULL && (rc = p->sink.on_finish(p->sink.arg, sf, p->an)) < 0)
        return rc;
    return 0;
}

int et_pipe_run(struct et_pipe *p)
{
    for (size_t i = 0; i < p->nin; i++)
        refill(p, &p->in[i]);
    while (!p->stopped) {
        struct input *best = NULL;
        struct et_exchange *x;
        for (size_t i = 0; i < p->nin; i++) {
            struct input *in = &p->in[i];
            if (in->x == NULL)
                continue;
            /* Earliest first; exchanges without a time keep their input's order. */
            int64_t t = et_exchange_time(in->x);
            if (best == NULL || (t > 0 && et_exchange_time(best->x) > 0 &&
                                 t < et_exchange_time(best->x)))
                best = in;
        }
        if (best == NULL)
            break;
        x = best->x;
        best->x = NULL;
        refill(p, best);
        if (take(p, x) != 0)
            return ET_ENOMEM;
    }
    return et_pipe_finish(p);
}
