/*
 * EAS mailbox log reader (see mailboxlog.h for the format). Line-oriented state machine:
 *
 *   SEEK --dashes--> HEAD --" Log Entry: N"--> HEAD2 --dashes--> FIELDS
 *   FIELDS: "Name :" after a blank line starts a field; other lines append to its value;
 *           dashes + " Log Entry:" (or EOF) end the entry.
 */
#include "eastrace/mailboxlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eastrace/arena.h"
#include "eastrace/loglines.h"
#include "eastrace/map.h"

#define MAX_ENTRY_BYTES (64u * 1024u * 1024u)
#define SEEN_MAX (1u << 22)

struct mbx_src {
    struct et_loglines lines;
    char *name;
    uint64_t id;
    /* Pending: a separator line read ahead while finishing the previous entry. */
    int have_sep;
    uint64_t sep_line;
    int done, trunc_reported;
    char trunc_msg[200];
    struct et_map seen; /* hashes of Identifiers seen (the hash is the key) */
};

static int is_dashes(const char *s, size_t n)
{
    if (n < 10)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '-')
            return 0;
    return 1;
}

static size_t trim_end(const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return n;
}

/* "Name :" with Name of letters, digits, '_' and '.' (exception fields are named after the
 * .NET exception type) and nothing after the colon. */
static int field_header(const char *s, size_t n, size_t *nl)
{
    size_t i = 0;
    n = trim_end(s, n);
    while (i < n && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
                     (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '.'))
        i++;
    if (i == 0 || i + 1 > n)
        return 0;
    size_t name_end = i;
    while (i < n && s[i] == ' ')
        i++;
    if (i + 1 != n || s[i] != ':')
        return 0;
    *nl = name_end;
    return 1;
}

/* The fields of one entry, collected as (name, value) in a buffer. */
struct fields {
    struct et_buf text;
    struct { size_t name, nlen, val, vlen; } f[64];
    int n;
};

static const char *fget(const struct fields *fs, const char *name, size_t *len)
{
    for (int i = 0; i < fs->n; i++)
        if (strlen(name) == fs->f[i].nlen &&
            memcmp(fs->text.data + fs->f[i].name, name, fs->f[i].nlen) == 0) {
            *len = fs->f[i].vlen;
            return (const char *)fs->text.data + fs->f[i].val;
        }
    *len = 0;
    return NULL;
}

static int month_day_year(const char *s, size_t n, int64_t *us)
{
    /* "11/21/2013 10:15:02 AM" (en-US, as PowerShell prints it). */
    char b[64];
    int mo, d, y, h, mi, se;
    char ampm[3] = "";
    if (n >= sizeof(b))
        return -1;
    memcpy(b, s, n);
    b[n] = '\0';
    if (sscanf(b, "%d/%d/%d %d:%d:%d %2s", &mo, &d, &y, &h, &mi, &se, ampm) < 6)
        return -1;
    if (et_strcaseeq(ampm, "PM") && h < 12)
        h += 12;
    if (et_strcaseeq(ampm, "AM") && h == 12)
        h = 0;
    char iso[40];
    snprintf(iso, sizeof(iso), "%04d-%02d-%02dT%02d:%02d:%02dZ", y, mo, d, h, mi, se);
    return et_time_parse_iso8601(iso, us) == 0 ? 0 : -1;
}

static int64_t parse_time(const char *s, size_t n)
{
    char b[64];
    int64_t us = 0;
    n = trim_end(s, n);
    if (n == 0 || n >= sizeof(b))
        return 0;
    memcpy(b, s, n);
    b[n] = '\0';
    if (et_time_parse_iso8601(b, &us) == 0)
        return us;
    if (month_day_year(b, n, &us) == 0)
        return us;
    return 0;
}

/* Parses a header block (request or status line, then "Name: value" lines). */
static int parse_head(struct et_exchange *x, const char *s, size_t n, int request)
{
    struct et_arena *a = x->arena;
    const char *p = s, *end = s + n;
    int first = 1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = trim_end(p, (size_t)((nl ? nl : end) - p));
        if (first) {
            first = 0;
            if (request) {
                const char *sp1 = memchr(p, ' ', l);
                const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', l - (size_t)(sp1 + 1 - p)) : NULL;
                if (sp1 != NULL) {
                    x->req.method = et_arena_strndup(a, p, (size_t)(sp1 - p));
                    const char *te = sp2 ? sp2 : p + l;
                    x->req.target = et_arena_strndup(a, sp1 + 1, (size_t)(te - sp1 - 1));
                    if (x->req.method == NULL || x->req.target == NULL)
                        return ET_ENOMEM;
                    if (sp2 && p + l - sp2 == 9 && memcmp(sp2 + 1, "HTTP/", 5) == 0) {
                        x->req.http_major = (uint8_t)(sp2[6] - '0');
                        x->req.http_minor = (uint8_t)(sp2[8] - '0');
                    }
                    goto next;
                }
            } else if (l >= 12 && memcmp(p, "HTTP/", 5) == 0) {
                x->resp.http_major = (uint8_t)(p[5] - '0');
                x->resp.http_minor = l > 7 ? (uint8_t)(p[7] - '0') : 0;
                const char *sp = memchr(p, ' ', l);
                if (sp != NULL) {
                    int stc = 0;
                    for (const char *q = sp + 1; q < p + l && *q >= '0' && *q <= '9' && stc < 1000; q++)
                        stc = stc * 10 + (*q - '0');
                    x->resp.status = stc;
                    const char *sp2 = memchr(sp + 1, ' ', l - (size_t)(sp + 1 - p));
                    if (sp2 && (x->resp.reason = et_arena_strndup(a, sp2 + 1,
                                                                  (size_t)(p + l - sp2 - 1))) == NULL)
                        return ET_ENOMEM;
                }
                goto next;
            }
        }
        {
            const char *c = memchr(p, ':', l);
            if (c != NULL && c > p) {
                struct et_headers *h = request ? &x->req.headers : &x->resp.headers;
                if (et_headers_add(h, a, p, (size_t)(c - p), c + 1, l - (size_t)(c + 1 - p)) < 0)
                    return ET_ENOMEM;
            }
        }
    next:
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return 0;
}

/* "[123 bytes]" -> 123, else -1. */
static long elided(const char *s, size_t n)
{
    n = trim_end(s, n);
    if (n < 9 || s[0] != '[' || s[n - 1] != ']')
        return -1;
    long v = 0;
    size_t i = 1;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        /* A body is never anywhere near this big: more digits than that is not a count. */
        if (v > 100000000000L)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (i == 1 || i + 7 != n || memcmp(s + i, " bytes", 6) != 0)
        return -1;
    return v;
}

static int set_body(struct et_exchange *x, struct et_body *b, struct et_headers *h,
                    const char *s, size_t n, const char *which)
{
    n = trim_end(s, n);
    if (n == 0)
        return 0;
    long el = elided(s, n);
    char mname[48];
    if (el >= 0) {
        b->absent = 1;
        b->wire_len = (uint64_t)el;
        snprintf(mname, sizeof(mname), "%s-elided-bytes", which);
        char v[24];
        int vl = snprintf(v, sizeof(v), "%ld", el);
        return et_headers_add(&x->meta, x->arena, mname, strlen(mname), v, (size_t)vl);
    }
    if (et_body_set(b, x->arena, s, n) < 0)
        return ET_ENOMEM;
    /* The log holds XML text, not the WBXML that crossed the wire. */
    for (size_t i = 0; i < h->n; i++) {
        if (et_strcaseeq(h->v[i].name, "Content-Type")) {
            snprintf(mname, sizeof(mname), "%s-logged-content-type", which);
            if (et_headers_add(&x->meta, x->arena, mname, strlen(mname), h->v[i].value,
                               strlen(h->v[i].value)) < 0)
                return ET_ENOMEM;
            h->v[i].value = "text/xml";
            return 0;
        }
    }
    return et_headers_add(h, x->arena, "Content-Type", 12, "text/xml", 8);
}

/* Identifiers are told apart by their 64-bit hash alone: equal hashes are the same one. */
static int same_hash(const void *val, const void *key)
{
    (void)val;
    (void)key;
    return 1;
}

/* Returns 1 if the identifier was seen before (and records it otherwise). */
static int seen_before(struct mbx_src *m, const char *id, size_t n, int *oom)
{
    uint64_t h = et_hash(id, n, 0);
    int found;
    if (m->seen.n >= SEEN_MAX / 2)
        return 0; /* stop de-duplicating rather than grow without bound */
    struct et_map_slot *s = et_map_upsert(&m->seen, h, same_hash, NULL, &found);
    if (s == NULL) {
        *oom = 1;
        return 0;
    }
    if (found)
        return 1;
    s->val = m; /* any non-NULL value: the set holds hashes only */
    return 0;
}

static int build(struct mbx_src *m, struct fields *fs, long entry_no, uint64_t line,
                 int truncated, struct et_exchange **out)
{
    struct et_exchange *x = et_exchange_new();
    size_t l;
    const char *v;
    if (x == NULL)
        return ET_ENOMEM;
    x->id = ++m->id;
    x->source = ET_SRC_MAILBOX;
    x->source_name = et_arena_strdup(x->arena, m->name);
    if ((v = fget(fs, "RequestTime", &l)) != NULL)
        x->t.req_begin = parse_time(v, l);
    if ((v = fget(fs, "ResponseTime", &l)) != NULL)
        x->t.resp_end = parse_time(v, l);
    if ((v = fget(fs, "RequestHeader", &l)) != NULL) {
        x->has_request = 1;
        if (parse_head(x, v, l, 1) < 0)
            goto nomem;
    }
    if ((v = fget(fs, "ResponseHeader", &l)) != NULL) {
        x->has_response = 1;
        if (parse_head(x, v, l, 0) < 0)
            goto nomem;
    }
    if ((v = fget(fs, "RequestBody", &l)) != NULL &&
        set_body(x, &x->req.body, &x->req.headers, v, l, "RequestBody") < 0)
        goto nomem;
    if ((v = fget(fs, "ResponseBody", &l)) != NULL &&
        set_body(x, &x->resp.body, &x->resp.headers, v, l, "ResponseBody") < 0)
        goto nomem;
    const char *host = et_headers_get(&x->req.headers, "Host");
    if (host != NULL)
        x->host = host;
    char num[24];
    int nn = snprintf(num, sizeof(num), "%ld", entry_no);
    if (et_headers_add(&x->meta, x->arena, "Log Entry", 9, num, (size_t)nn) < 0 ||
        et_headers_add(&x->meta, x->arena, "body-format", 11, "xml", 3) < 0)
        goto nomem;
    for (int i = 0; i < fs->n; i++) {
        const char *name = (const char *)fs->text.data + fs->f[i].name;
        size_t nl = fs->f[i].nlen;
        if ((nl == 13 && memcmp(name, "RequestHeader", 13) == 0) ||
            (nl == 14 && memcmp(name, "ResponseHeader", 14) == 0) ||
            (nl == 11 && memcmp(name, "RequestBody", 11) == 0) ||
            (nl == 12 && memcmp(name, "ResponseBody", 12) == 0))
            continue;
        const char *val = (const char *)fs->text.data + fs->f[i].val;
        size_t vl = trim_end(val, fs->f[i].vlen);
        if (et_headers_add(&x->meta, x->arena, name, nl, val, vl) < 0)
            goto nomem;
        /* Typed facts (exchange.h): the first exception's first line, the access state. */
        if (nl > 10 && memcmp(name + nl - 10, "_Exception", 10) == 0 &&
            x->facts.exception == NULL && vl > 0) {
            size_t fl = 0;
            while (fl < vl && fl < 300 && val[fl] != '\r' && val[fl] != '\n')
                fl++;
            if ((x->facts.exception = et_arena_strndup(x->arena, val, fl)) == NULL)
                goto nomem;
            x->facts.present = 1;
        } else if (nl == 11 && memcmp(name, "AccessState", 11) == 0 && vl > 0) {
            if ((x->facts.access_state = et_arena_strndup(x->arena, val, vl)) == NULL)
                goto nomem;
            x->facts.present = 1;
        }
    }
    if (truncated)
        et_exchange_fail(x, ET_ETRUNC, ET_STAGE_DECODE,
                         "%s: log entry %ld (line %llu) is cut off: the file ends before its "
                         "ResponseTime",
                         m->name, entry_no, (unsigned long long)line);
    *out = x;
    return 0;
nomem:
    et_exchange_free(x);
    return ET_ENOMEM;
}

static void fields_reset(struct fields *fs)
{
    et_buf_reset(&fs->text);
    fs->n = 0;
}

static int mbx_next(void *impl, struct et_exchange **out, struct et_error *e)
{
    struct mbx_src *m = impl;
    struct fields fs;
    int rc, in_entry = 0, prev_blank = 1, cur = -1, state = 0;
    long entry_no = 0;
    uint64_t entry_line = 0;

    if (m->done) {
        if (m->trunc_msg[0] && !m->trunc_reported) {
            m->trunc_reported = 1;
            et_error_set(e, ET_ETRUNC, "%s", m->trunc_msg);
            return ET_ETRUNC;
        }
        return 0;
    }
    memset(&fs, 0, sizeof(fs));
    et_buf_init(&fs.text, MAX_ENTRY_BYTES);
    for (;;) {
        const char *line;
        size_t len;
        if (m->have_sep) {
            /* The dashes of this entry were read while finishing the last one. */
            m->have_sep = 0;
            state = 1;
            entry_line = m->sep_line;
            continue;
        }
        rc = et_loglines_next(&m->lines, &line, &len, e);
        if (rc == ET_ETOOBIG) {
            e->code = 0;
            continue; /* an overlong line inside a body: drop it, keep the entry */
        }
        if (rc < 0)
            goto out;
        if (rc == 0) {
            m->done = 1;
            if (in_entry) {
                size_t l;
                int complete = fget(&fs, "ResponseTime", &l) != NULL;
                for (int i = 0; !complete && i < fs.n; i++) {
                    const char *nm = (const char *)fs.text.data + fs.f[i].name;
                    complete = fs.f[i].nlen > 10 &&
                               memcmp(nm + fs.f[i].nlen - 10, "_Exception", 10) == 0;
                }
                if (!complete)
                    snprintf(m->trunc_msg, sizeof(m->trunc_msg),
                             "%s: log entry %ld starting at line %llu is truncated (the file "
                             "ends at line %llu, before its ResponseTime)",
                             m->name, entry_no, (unsigned long long)entry_line,
                             (unsigned long long)m->lines.lineno);
                rc = build(m, &fs, entry_no, entry_line, !complete, out);
                rc = rc < 0 ? rc : 1;
                if (rc < 0)
                    et_error_set(e, rc, "out of memory");
                goto out;
            }
            rc = 0;
            goto out;
        }
        size_t tl = trim_end(line, len);
        if (state == 0) { /* seeking the first separator */
            if (is_dashes(line, tl)) {
                state = 1;
                entry_line = m->lines.lineno;
            }
            continue;
        }
        if (state == 1) { /* expect " Log Entry: N" */
            const char *p = line;
            size_t k = tl;
            while (k > 0 && *p == ' ') {
                p++;
                k--;
            }
            if (k > 10 && memcmp(p, "Log Entry:", 10) == 0) {
                /* The line is not NUL-terminated: read the digits by hand. */
                const char *q = p + 10, *qe = p + k;
                entry_no = 0;
                while (q < qe && *q == ' ')
                    q++;
                while (q < qe && *q >= '0' && *q <= '9' && entry_no < 100000000L)
                    entry_no = entry_no * 10 + (*q++ - '0');
                state = 2;
            } else {
                state = is_dashes(line, tl) ? 1 : 0;
            }
            continue;
        }
        if (state == 2) { /* closing dashes */
            state = 3;
            in_entry = 1;
            prev_blank = 1;
            cur = -1;
            if (is_dashes(line, tl))
                continue;
        }
        /* state 3: fields */
        if (is_dashes(line, tl) && prev_blank) {
            m->have_sep = 1;
            m->sep_line = m->lines.lineno;
            rc = build(m, &fs, entry_no, entry_line, 0, out);
            if (rc < 0) {
                et_error_set(e, rc, "out of memory");
                goto out;
            }
            size_t il;
            const char *id = fget(&fs, "Identifier", &il);
            int oom = 0;
            if (id != NULL && trim_end(id, il) > 0 && seen_before(m, id, trim_end(id, il), &oom)) {
                et_exchange_free(*out);
                *out = NULL;
                m->id--;
                fields_reset(&fs);
                in_entry = 0;
                state = 0;
                continue;
            }
            if (oom) {
                et_exchange_free(*out);
                *out = NULL;
                rc = ET_ENOMEM;
                et_error_set(e, rc, "out of memory");
                goto out;
            }
            rc = 1;
            goto out;
        }
        size_t nl;
        if (prev_blank && fs.n < 64 && field_header(line, tl, &nl)) {
            /* Close the previous value: drop the blank line before this header. */
            if (cur >= 0) {
                size_t vl = fs.f[cur].vlen;
                while (vl > 0 && (fs.text.data[fs.f[cur].val + vl - 1] == '\n'))
                    vl--;
                fs.f[cur].vlen = vl;
            }
            cur = fs.n++;
            fs.f[cur].name = fs.text.len;
            fs.f[cur].nlen = nl;
            if (et_buf_append(&fs.text, line, nl) < 0)
                goto toobig;
            fs.f[cur].val = fs.text.len;
            fs.f[cur].vlen = 0;
            prev_blank = 0;
            continue;
        }
        prev_blank = tl == 0;
        if (cur < 0)
            continue;
        /* Values are contiguous: only the current field appends to text. */
        if ((fs.f[cur].vlen > 0 && et_buf_putc(&fs.text, '\n') < 0) ||
            et_buf_append(&fs.text, line, trim_end(line, len) == len ? len : len -
                          (line[len - 1] == '\r')) < 0)
            goto toobig;
        fs.f[cur].vlen = fs.text.len - fs.f[cur].val;
    }
toobig:
    rc = fs.text.len >= MAX_ENTRY_BYTES ? ET_ETOOBIG : ET_ENOMEM;
    et_error_set(e, rc, "%s: log entry %ld at line %llu: %s", m->name, entry_no,
                 (unsigned long long)entry_line,
                 rc == ET_ETOOBIG ? "larger than 64 MiB" : "out of memory");
out:
    et_buf_free(&fs.text);
    return rc;
}

static void mbx_close(void *impl)
{
    struct mbx_src *m = impl;
    et_loglines_close(&m->lines);
    et_map_free(&m->seen);
    et_free(m->name);
    et_free(m);
}

static const struct et_source_ops mbx_ops = {"mailboxlog", mbx_next, mbx_close};

static int finish(struct mbx_src *m, const char *name, struct et_source **out,
                  struct et_error *e)
{
    m->name = et_strdup(name);
    if (m->name == NULL || (*out = et_source_new(&mbx_ops, m, name)) == NULL) {
        mbx_close(m);
        et_error_set(e, ET_ENOMEM, "mailbox log source");
        return ET_ENOMEM;
    }
    return 0;
}

int et_mailboxlog_open(const char *path, struct et_source **out, struct et_error *e)
{
    struct mbx_src *m = et_calloc(1, sizeof(*m));
    *out = NULL;
    if (m == NULL) {
        et_error_set(e, ET_ENOMEM, "mailbox log source");
        return ET_ENOMEM;
    }
    int rc = et_loglines_open_file(&m->lines, path, e);
    if (rc < 0) {
        et_free(m);
        return rc;
    }
    return finish(m, path, out, e);
}

int et_mailboxlog_open_mem(const void *data, size_t len, const char *name,
                           struct et_source **out, struct et_error *e)
{
    struct mbx_src *m = et_calloc(1, sizeof(*m));
    *out = NULL;
    if (m == NULL) {
        et_error_set(e, ET_ENOMEM, "mailbox log source");
        return ET_ENOMEM;
    }
    et_loglines_open_mem(&m->lines, len ? data : "", len);
    return finish(m, name ? name : "memory", out, e);
}

