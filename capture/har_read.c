/*
 * HAR 1.2 reader.
 *
 * Two layers, so memory follows the largest entry and never the file:
 *
 *   file --64 KiB chunks--> scanner (validates the JSON grammar, tracks the path)
 *                              | bytes of one element of log.entries, capped
 *                              v
 *                           jansson (DOM of that one entry) --> struct et_exchange
 *
 * The scanner is a byte-at-a-time state machine that survives chunk boundaries. It knows
 * where it is through a stack of open containers plus, per level, which key is open; it
 * starts copying at the '{' of an element of root.log.entries and stops at its '}'.
 * Jansson (Debian libjansson) then parses that span strictly (UTF-8, \u escapes with
 * surrogate pairs, \u0000 kept via JSON_ALLOW_NUL) and the converter below maps it.
 */
#include "eastrace/har.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h> /* isfinite, a macro */
#include <string.h>
#include <unistd.h>

#include "har_int.h"

#define CHUNK (64 * 1024)

/* What the grammar allows next. */
enum expect {
    EXP_VALUE = 0,          /* a value: start, after ':' or after ',' in an array */
    EXP_VALUE_OR_CLOSE = 1, /* just after '[' */
    EXP_KEY = 2,            /* after ',' in an object */
    EXP_KEY_OR_CLOSE = 3,   /* just after '{' */
    EXP_COLON = 4,          /* after a key */
    EXP_COMMA_OR_CLOSE = 5, /* after a value inside a container */
    EXP_END = 6             /* the root value is complete: only blanks may follow */
};

/* Lexical state inside a token. */
enum lex {
    LEX_NONE = 0,   /* between tokens */
    LEX_STR = 1,    /* inside a string */
    LEX_ESC = 2,    /* after a backslash */
    LEX_UHEX = 3,   /* inside \uXXXX (uhex digits seen) */
    LEX_LIT = 4     /* inside a number or true/false/null */
};

/* Keys that matter on the path root.log.entries. */
enum key {
    KEY_OTHER = 0,
    KEY_LOG = 1,
    KEY_ENTRIES = 2
};

struct har_reader {
    /* Input: a file descriptor or borrowed memory. */
    int fd;
    const uint8_t *mem;
    size_t memlen, mempos;
    uint8_t *chunk;
    size_t len, pos;
    uint64_t base;      /* file offset of chunk[0] */
    int eof;
    char *name;

    /* Scanner. */
    enum expect expect;
    enum lex lex;
    int in_key;         /* the string being read is an object key */
    int uhex;
    char keybuf[16];
    size_t keylen;
    char lit[40];
    size_t litlen;
    int depth;
    char stack[ET_HAR_MAX_DEPTH];
    unsigned char key_at[ET_HAR_MAX_DEPTH];
    int log_depth;      /* depth inside root.log, 0 when not there */
    int entries_depth;  /* depth inside root.log.entries, 0 when not there */
    int found_entries;
    uint64_t line;      /* 1-based line of the current byte */
    uint64_t line_start;/* offset of the first byte of that line */
    int started;        /* BOM check done */

    /* The entry being copied. */
    int capturing;
    int oversize;
    size_t cap_from;    /* index in chunk where copying resumes */
    uint64_t entry_off; /* file offset of the entry's '{' */
    uint64_t entry_line, entry_col;
    struct et_buf entry;

    uint64_t nentries;
    int final_rc;
    struct et_error final_err;
};

/* ---- input ---------------------------------------------------------------------------- */

static int fill(struct har_reader *r, struct et_error *e)
{
    r->base += r->len;
    r->len = 0;
    r->pos = 0;
    if (r->mem != NULL) {
        size_t n = ET_MIN((size_t)CHUNK, r->memlen - r->mempos);
        memcpy(r->chunk, r->mem + r->mempos, n);
        r->mempos += n;
        r->len = n;
    } else {
        ssize_t n;
        do
            n = read(r->fd, r->chunk, CHUNK);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            et_error_set_at(e, ET_EIO, r->base, "%s: read: %s", r->name, strerror(errno));
            return ET_EIO;
        }
        r->len = (size_t)n;
    }
    if (r->len == 0)
        r->eof = 1;
    return 0;
}

/* ---- scanner -------------------------------------------------------------------------- */

static int scan_fail(struct har_reader *r, int code, uint64_t off, const char *what,
                     struct et_error *e)
{
    et_error_set_at(e, code, off, "%s: %s at line %llu, column %llu", r->name, what,
                    (unsigned long long)r->line, (unsigned long long)(off - r->line_start + 1));
    return code;
}

static int literal_ok(const char *s, size_t n)
{
    size_t i = 0;
    if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0) ||
        (n == 4 && memcmp(s, "null", 4) == 0))
        return 1;
    /* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return 0;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t d;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    return i == n;
}

/* A value ended (string, literal or container): what comes next depends on the container. */
static void value_done(struct har_reader *r)
{
    r->expect = r->depth == 0 ? EXP_END : EXP_COMMA_OR_CLOSE;
}

/* Appends chunk[from..to) to the entry being copied, honouring the cap. */
static int capture_span(struct har_reader *r, size_t from, size_t to)
{
    int rc;
    if (r->oversize || to <= from)
        return 0;
    rc = et_buf_append(&r->entry, r->chunk + from, to - from);
    if (rc == ET_ETOOBIG) {
        /* Keep scanning to the end of this entry but stop holding its bytes. */
        r->oversize = 1;
        et_buf_free(&r->entry);
        et_buf_init(&r->entry, ET_HAR_MAX_ENTRY);
        return 0;
    }
    return rc;
}

/*
 * Runs the scanner until one entry is copied into r->entry (returns 1), the document ends
 * cleanly (0) or the JSON is broken (negative, final).
 */
static int scan(struct har_reader *r, struct et_error *e)
{
    for (;;) {
        int rc;
        if (r->pos == r->len) {
            if (r->capturing && (rc = capture_span(r, r->cap_from, r->len)) != 0) {
                et_error_set(e, rc, "%s: entry %llu: %s", r->name,
                             (unsigned long long)r->nentries + 1, et_strerror(rc));
                return rc;
            }
            r->cap_from = 0;
            if ((rc = fill(r, e)) != 0)
                return rc;
            if (r->eof)
                break;
            if (!r->started) {
                r->started = 1;
                if (r->len >= 3 && memcmp(r->chunk, "\xEF\xBB\xBF", 3) == 0)
                    r->pos = 3;
            }
        }
        size_t i = r->pos;
        uint64_t off = r->base + i;
        unsigned char c = r->chunk[i];

        switch (r->lex) {
        case LEX_STR: {
            /* Fast path through the body of a string. */
            size_t j = i;
            while (j < r->len && r->chunk[j] != '"' && r->chunk[j] != '\\' &&
                   r->chunk[j] >= 0x20)
                j++;
            if (r->in_key) {
                size_t k = ET_MIN(j - i, sizeof(r->keybuf) - r->keylen);
                memcpy(r->keybuf + r->keylen, r->chunk + i, k);
                r->keylen += k;
                if (j - i > k)
                    r->keylen = sizeof(r->keybuf); /* too long for a key that matters */
            }
            if (j == r->len) {
                r->pos = j;
                continue;
            }
            c = r->chunk[j];
            off = r->base + j;
            r->pos = j + 1;
            if (c < 0x20)
                return scan_fail(r, ET_EPARSE, off, "control character in a string", e);
            if (c == '\\') {
                r->lex = LEX_ESC;
                if (r->in_key)
                    r->keylen = sizeof(r->keybuf); /* escaped keys are never ours */
                continue;
            }
            /* Closing quote. */
            r->lex = LEX_NONE;
            if (r->in_key) {
                enum key k = KEY_OTHER;
                if (r->keylen == 3 && memcmp(r->keybuf, "log", 3) == 0)
                    k = KEY_LOG;
                else if (r->keylen == 7 && memcmp(r->keybuf, "entries", 7) == 0)
                    k = KEY_ENTRIES;
                r->key_at[r->depth - 1] = (unsigned char)k;
                r->in_key = 0;
                r->expect = EXP_COLON;
            } else {
                value_done(r);
            }
            continue;
        }
        case LEX_ESC:
            r->pos = i + 1;
            if (c == 'u') {
                r->lex = LEX_UHEX;
                r->uhex = 0;
            } else if (strchr("\"\\/bfnrt", c) != NULL && c != '\0') {
                r->lex = LEX_STR;
            } else {
                return scan_fail(r, ET_EPARSE, off, "invalid escape in a string", e);
            }
            continue;
        case LEX_UHEX:
            r->pos = i + 1;
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
                return scan_fail(r, ET_EPARSE, off, "invalid \\u escape", e);
            if (++r->uhex == 4)
                r->lex = LEX_STR;
            continue;
        case LEX_LIT:
            if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '.' || c == '+' ||
                c == '-' || c == 'E') {
                if (r->litlen >= sizeof(r->lit))
                    return scan_fail(r, ET_EPARSE, off, "number or literal too long", e);
                r->lit[r->litlen++] = (char)c;
                r->pos = i + 1;
                continue;
            }
            if (!literal_ok(r->lit, r->litlen))
                return scan_fail(r, ET_EPARSE, off - r->litlen, "invalid literal", e);
            r->lex = LEX_NONE;
            value_done(r);
            continue; /* c is looked at again as a structural byte */
        case LEX_NONE:
            break;
        }

        r->pos = i + 1;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            if (c == '\n') {
                r->line++;
                r->line_start = off + 1;
            }
            continue;
        }
        switch (r->expect) {
        case EXP_END:
            return scan_fail(r, ET_EPARSE, off, "data after the end of the JSON document", e);
        case EXP_COLON:
            if (c != ':')
                return scan_fail(r, ET_EPARSE, off, "expected ':' after an object key", e);
            r->expect = EXP_VALUE;
            continue;
        case EXP_KEY:
        case EXP_KEY_OR_CLOSE:
            if (c == '"') {
                r->lex = LEX_STR;
                r->in_key = 1;
                r->keylen = 0;
                continue;
            }
            if (c == '}' && r->expect == EXP_KEY_OR_CLOSE)
                goto close;
            return scan_fail(r, ET_EPARSE, off, "expected an object key", e);
        case EXP_COMMA_OR_CLOSE:
            if (c == ',') {
                r->expect = r->stack[r->depth - 1] == '{' ? EXP_KEY : EXP_VALUE;
                continue;
            }
            if (c == '}' || c == ']')
                goto close;
            return scan_fail(r, ET_EPARSE, off, "expected ',' or the end of a container", e);
        case EXP_VALUE_OR_CLOSE:
            if (c == ']')
                goto close;
            ET_FALLTHROUGH;
        case EXP_VALUE:
            break;
        }

        /* A value starts. */
        if (r->entries_depth != 0 && r->depth == r->entries_depth && !r->capturing) {
            if (c != '{')
                return scan_fail(r, ET_EPARSE, off, "an element of log.entries is not an object",
                                 e);
            r->capturing = 1;
            r->oversize = 0;
            r->cap_from = i;
            r->entry_off = off;
            r->entry_line = r->line;
            r->entry_col = off - r->line_start + 1;
            et_buf_reset(&r->entry);
        }
        if (c == '"') {
            r->lex = LEX_STR;
            r->in_key = 0;
        } else if (c == '{' || c == '[') {
            if (r->depth == ET_HAR_MAX_DEPTH)
                return scan_fail(r, ET_ETOOBIG, off, "JSON nested too deeply", e);
            /* Is this root.log or root.log.entries? */
            if (c == '{' && r->depth == 1 && r->stack[0] == '{' && r->key_at[0] == KEY_LOG)
                r->log_depth = 2;
            if (c == '[' && r->log_depth == 2 && r->depth == 2 && r->key_at[1] == KEY_ENTRIES) {
                r->entries_depth = 3;
                r->found_entries = 1;
            }
            r->stack[r->depth] = (char)c;
            r->key_at[r->depth] = KEY_OTHER;
            r->depth++;
            r->expect = c == '{' ? EXP_KEY_OR_CLOSE : EXP_VALUE_OR_CLOSE;
        } else if ((c >= '0' && c <= '9') || c == '-' || c == 't' || c == 'f' || c == 'n') {
            r->lex = LEX_LIT;
            r->lit[0] = (char)c;
            r->litlen = 1;
        } else {
            return scan_fail(r, ET_EPARSE, off, "expected a JSON value", e);
        }
        continue;

    close:
        if (r->depth == 0 || (c == '}') != (r->stack[r->depth - 1] == '{'))
            return scan_fail(r, ET_EPARSE, off, "mismatched closing bracket", e);
        r->depth--;
        if (r->depth < 2 && r->log_depth)
            r->log_depth = 0;
        if (r->depth < 3 && r->entries_depth)
            r->entries_depth = 0;
        value_done(r);
        if (r->capturing && r->depth == 3 && r->entries_depth == 3) {
            r->capturing = 0;
            if ((rc = capture_span(r, r->cap_from, i + 1)) != 0) {
                et_error_set(e, rc, "%s: entry %llu: %s", r->name,
                             (unsigned long long)r->nentries + 1, et_strerror(rc));
                return rc;
            }
            return 1;
        }
    }

    /* End of input. */
    uint64_t end = r->base;
    if (r->lex == LEX_LIT && r->depth == 0 && literal_ok(r->lit, r->litlen)) {
        r->lex = LEX_NONE;
        r->expect = EXP_END;
    }
    if (r->lex != LEX_NONE || r->expect != EXP_END)
        return scan_fail(r, ET_ETRUNC, end,
                         r->lex != LEX_NONE ? "file ends inside a token"
                                            : "file ends before the JSON document does",
                         e);
    if (!r->found_entries) {
        et_error_set(e, ET_EPARSE, "%s: not a HAR file: no log.entries array", r->name);
        return ET_EPARSE;
    }
    return 0;
}

/* ---- entry to exchange ---------------------------------------------------------------- */

static const char *jstr(json_t *o, const char *key, size_t *len)
{
    json_t *v = json_object_get(o, key);
    if (len != NULL)
        *len = 0;
    if (!json_is_string(v))
        return NULL;
    if (len != NULL)
        *len = json_string_length(v);
    return json_string_value(v);
}

/* A number of milliseconds, or -1 when absent or negative (HAR's "does not apply"). */
static double jms(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    double d;
    if (!json_is_number(v))
        return -1;
    d = json_number_value(v);
    return d >= 0 && isfinite(d) && d < 1e12 ? d : -1;
}

static int64_t ms_to_us(double ms)
{
    return ms > 0 ? (int64_t)(ms * 1000.0 + 0.5) : 0; /* no libm for llround */
}

static int add_headers(struct et_headers *h, struct et_arena *a, json_t *arr)
{
    size_t i;
    json_t *it;
    int rc;
    if (!json_is_array(arr))
        return 0;
    json_array_foreach(arr, i, it) {
        size_t nl, vl;
        const char *n = jstr(it, "name", &nl), *v = jstr(it, "value", &vl);
        if (n == NULL)
            continue;
        if (v == NULL) {
            v = "";
            vl = 0;
        }
        if ((rc = et_headers_add(h, a, n, nl, v, vl)) != 0)
            return rc;
    }
    return 0;
}

/*
 * Maps UTF-8 text whose code points are all U+0000..U+00FF to one byte each (Latin-1).
 * Returns the byte count, or -1 when a code point is above U+00FF. out holds len bytes.
 */
static long long utf8_to_latin1(const char *text, size_t len, uint8_t *out)
{
    const uint8_t *p = (const uint8_t *)text;
    size_t i = 0, n = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            out[n++] = p[i++];
        } else if ((p[i] == 0xC2 || p[i] == 0xC3) && i + 1 < len && (p[i + 1] & 0xC0) == 0x80) {
            out[n++] = (uint8_t)(((p[i] & 0x03) << 6) | (p[i + 1] & 0x3F));
            i += 2;
        } else {
            return -1;
        }
    }
    return (long long)n;
}

/*
 * Sets b from a HAR text with an optional "encoding" ("base64"); copies into a. declared is
 * the size the HAR gives for the body (content.size / bodySize), -1 when unknown. Some writers
 * (mitmproxy's har_dump) store a binary body as text with one code point per byte; when the
 * UTF-8 length disagrees with the declared size and the Latin-1 reading matches it exactly,
 * the Latin-1 bytes are the original body.
 */
static int set_body(struct et_body *b, struct et_arena *a, const char *text, size_t len,
                    const char *encoding, long long declared, const char **why)
{
    if (encoding != NULL && et_strcaseeq(encoding, "base64")) {
        struct et_buf dec;
        struct et_error de;
        int rc;
        et_buf_init(&dec, ET_HAR_MAX_ENTRY);
        et_error_clear(&de);
        rc = et_base64_decode(&dec, text, len, &de);
        if (rc == 0)
            rc = et_body_set(b, a, dec.data, dec.len);
        else
            *why = "body marked base64 is not valid base64";
        et_buf_free(&dec);
        return rc;
    }
    /* JSON text is Unicode; most HAR writers store byte bodies as their UTF-8 decoding, so the
     * UTF-8 encoding jansson hands us is the original bytes. */
    if (declared >= 0 && (size_t)declared != len && (size_t)declared < len) {
        uint8_t *tmp = et_malloc(len);
        long long n;
        int rc;
        if (tmp == NULL)
            return ET_ENOMEM;
        n = utf8_to_latin1(text, len, tmp);
        rc = n == declared ? et_body_set(b, a, tmp, (size_t)n) : et_body_set(b, a, text, len);
        et_free(tmp);
        return rc;
    }
    return et_body_set(b, a, text, len);
}

static int meta_add(struct et_exchange *x, const char *name, const char *value)
{
    return et_headers_add(&x->meta, x->arena, name, strlen(name), value, strlen(value));
}

static int convert(struct har_reader *r, json_t *ent, struct et_exchange *x, const char **why)
{
    json_t *req = json_object_get(ent, "request"), *resp = json_object_get(ent, "response");
    json_t *timings = json_object_get(ent, "timings"), *v;
    struct et_arena *a = x->arena;
    const char *s, *method, *url;
    size_t len = 0, ulen = 0;
    int rc;

    x->source = ET_SRC_HAR;
    x->source_name = et_arena_strdup(a, r->name);
    if (!json_is_object(req)) {
        *why = "entry has no request object";
        return ET_EPARSE;
    }
    method = jstr(req, "method", &len);
    url = jstr(req, "url", &ulen);
    if (method == NULL || url == NULL) {
        *why = "request lacks method or url";
        return ET_EPARSE;
    }
    if ((x->req.method = et_arena_strndup(a, method, len)) == NULL)
        return ET_ENOMEM;
    rc = et__url_split(a, url, ulen, &x->scheme, &x->host, &x->port, &x->req.target);
    if (rc == ET_ENOMEM)
        return rc;
    if (rc != 0) {
        /* Keep what was recorded even when it is not an absolute URL. */
        x->req.target = et_arena_strndup(a, url, ulen);
        if (x->req.target == NULL)
            return ET_ENOMEM;
    }
    if (strcmp(x->req.method, "CONNECT") == 0 && x->host != NULL) {
        x->req.target = et_arena_printf(a, "%s%s%s:%d", strchr(x->host, ':') ? "[" : "",
                                        x->host, strchr(x->host, ':') ? "]" : "", x->port);
        if (x->req.target == NULL)
            return ET_ENOMEM;
    }
    et__http_version(jstr(req, "httpVersion", NULL), &x->req.http_major, &x->req.http_minor);
    if ((rc = add_headers(&x->req.headers, a, json_object_get(req, "headers"))) != 0)
        return rc;
    v = json_object_get(req, "postData");
    if (json_is_object(v) && (s = jstr(v, "text", &len)) != NULL && len > 0) {
        const char *enc = jstr(v, "encoding", NULL);
        if (enc == NULL)
            enc = jstr(v, "_encoding", NULL);
        json_t *bs = json_object_get(req, "bodySize");
        if ((rc = set_body(&x->req.body, a, s, len, enc,
                           json_is_integer(bs) ? (long long)json_integer_value(bs) : -1, why)) != 0)
            return rc;
    }
    x->has_request = 1;

    if (json_is_object(resp)) {
        json_t *st = json_object_get(resp, "status");
        json_t *content = json_object_get(resp, "content");
        int status = json_is_integer(st) ? (int)json_integer_value(st) : 0;
        if (status > 0 && status < 1000) {
            x->has_response = 1;
            x->resp.status = status;
            if ((s = jstr(resp, "statusText", &len)) != NULL &&
                (x->resp.reason = et_arena_strndup(a, s, len)) == NULL)
                return ET_ENOMEM;
            et__http_version(jstr(resp, "httpVersion", NULL), &x->resp.http_major,
                             &x->resp.http_minor);
            if ((rc = add_headers(&x->resp.headers, a, json_object_get(resp, "headers"))) != 0)
                return rc;
            if (json_is_object(content)) {
                if ((s = jstr(content, "text", &len)) != NULL && len > 0) {
                    json_t *sz = json_object_get(content, "size");
                    rc = set_body(&x->resp.body, a, s, len, jstr(content, "encoding", NULL),
                                  json_is_integer(sz) ? (long long)json_integer_value(sz) : -1,
                                  why);
                    if (rc != 0)
                        return rc;
                } else if (json_is_integer(json_object_get(content, "size")) &&
                           json_integer_value(json_object_get(content, "size")) > 0) {
                    /* The tool recorded a size but left the content out. */
                    x->resp.body.absent = 1;
                    x->resp.body.wire_len =
                        (uint64_t)json_integer_value(json_object_get(content, "size"));
                }
            }
            /* HAR 1.2 stores content.text decoded ("HTTP decoded text") while the headers
             * keep Content-Encoding as sent: browsers, mitmproxy and Fiddler all do. Only our
             * own writer, when it could not decode a body, keeps the wire bytes and says so. */
            const char *ce = et_headers_get(&x->resp.headers, "Content-Encoding");
            if (ce != NULL && !et_strcaseeq(ce, "identity") && x->resp.body.len > 0 &&
                !(json_is_object(content) &&
                  json_is_true(json_object_get(content, "_eastraceEncoded"))))
                x->resp.body.content_decoded = 1;
        }
    }
    /* Our own writer's failure first (exact code and stage), else the recorder's _error. */
    v = json_object_get(ent, "_eastraceError");
    if (json_is_object(v) && json_is_integer(json_object_get(v, "code")) &&
        json_is_integer(json_object_get(v, "stage"))) {
        long long code = json_integer_value(json_object_get(v, "code"));
        long long stage = json_integer_value(json_object_get(v, "stage"));
        const char *m = jstr(v, "message", &len);
        if (code < 0 && code > -100 && stage >= 0 && stage <= ET_STAGE_CAPTURE)
            et_exchange_fail(x, (int)code, (enum et_stage)stage, "%.*s", m ? (int)len : 0,
                             m ? m : "");
    } else if ((s = jstr(ent, "_eastraceError", &len)) != NULL && len > 0) {
        et_exchange_fail(x, ET_EPARSE, ET_STAGE_NONE, "%.*s", (int)len, s);
    }
    if (json_is_object(resp) && (s = jstr(resp, "_error", &len)) != NULL && len > 0) {
        int code;
        enum et_stage stage = et__har_error_stage(s, len, x->has_response, &code);
        et_exchange_fail(x, code, stage, "%.*s", (int)ET_MIN(len, 1000), s);
    }

    /* Timings: startedDateTime is when the client began (blocked, dns and connect come
     * before the request goes out; connect includes ssl). */
    s = jstr(ent, "startedDateTime", NULL);
    int64_t start = 0;
    if (s != NULL && et_time_parse_iso8601(s, &start) == 0 && start > 0) {
        double blocked = jms(timings, "blocked"), dns = jms(timings, "dns");
        double connect = jms(timings, "connect"), send = jms(timings, "send");
        double wait = jms(timings, "wait"), receive = jms(timings, "receive");
        int64_t t = start + ms_to_us(blocked) + ms_to_us(dns);
        if (connect >= 0)
            x->t.connect = t;
        t += ms_to_us(connect);
        x->t.req_begin = t;
        t += ms_to_us(send);
        x->t.req_end = t;
        if (x->has_response) {
            t += ms_to_us(wait);
            x->t.resp_begin = t;
            t += ms_to_us(receive);
            x->t.resp_end = t;
        }
    }

    /* Our writer keeps the proxy's "ip:port" in _serverAddress (serverIPAddress is an
     * address only). */
    if (((s = jstr(ent, "_serverAddress", &len)) != NULL && len > 0) ||
        ((s = jstr(ent, "serverIPAddress", &len)) != NULL && len > 0))
        if ((x->server_addr = et_arena_strndup(a, s, len)) == NULL)
            return ET_ENOMEM;
    if ((s = jstr(ent, "_clientAddress", &len)) != NULL && len > 0 &&
        (x->client_addr = et_arena_strndup(a, s, len)) == NULL)
        return ET_ENOMEM;
    if ((s = jstr(ent, "_viaAddress", &len)) != NULL && len > 0 &&
        (x->via_addr = et_arena_strndup(a, s, len)) == NULL)
        return ET_ENOMEM;
    x->reverse = json_is_true(json_object_get(ent, "_eastraceReverse"));
    if ((s = jstr(ent, "comment", NULL)) != NULL && *s != '\0' &&
        (rc = meta_add(x, "har-comment", s)) != 0)
        return rc;
    if ((s = jstr(ent, "connection", NULL)) != NULL && *s != '\0' &&
        (rc = meta_add(x, "har-connection", s)) != 0)
        return rc;
    /* Our own writer keeps source-specific facts here so a round trip loses nothing. */
    v = json_object_get(ent, "_eastraceMeta");
    if (json_is_array(v) && (rc = add_headers(&x->meta, a, v)) != 0)
        return rc;
    return 0;
}

/* ---- source interface ----------------------------------------------------------------- */

static int har_next(void *impl, struct et_exchange **out, struct et_error *e)
{
    struct har_reader *r = impl;
    struct et_exchange *x;
    json_t *root;
    json_error_t je;
    const char *why = NULL;
    int rc;

    *out = NULL;
    if (r->final_rc != 0) {
        *e = r->final_err;
        return r->final_rc;
    }
    rc = scan(r, &r->final_err);
    if (rc <= 0) {
        r->final_rc = rc < 0 ? rc : 0;
        if (rc < 0)
            *e = r->final_err;
        else
            r->final_rc = 0, r->eof = 1;
        return rc;
    }
    r->nentries++;
    if (r->oversize) {
        et_error_set_at(e, ET_EPARSE, r->entry_off,
                        "%s: entry %llu (line %llu): larger than the %zu MiB cap, skipped",
                        r->name, (unsigned long long)r->nentries,
                        (unsigned long long)r->entry_line, ET_HAR_MAX_ENTRY >> 20);
        return ET_EPARSE;
    }
    root = json_loadb((const char *)r->entry.data, r->entry.len, JSON_ALLOW_NUL, &je);
    if (root == NULL) {
        /* jansson counts lines and columns inside the entry; make them file-relative. */
        uint64_t line = r->entry_line + (uint64_t)(je.line > 0 ? je.line - 1 : 0);
        et_error_set_at(e, ET_EPARSE, r->entry_off + (uint64_t)(je.position > 0 ? je.position : 0),
                        "%s: entry %llu (line %llu): %s", r->name,
                        (unsigned long long)r->nentries, (unsigned long long)line, je.text);
        return ET_EPARSE;
    }
    if ((x = et_exchange_new()) == NULL) {
        json_decref(root);
        et_error_set(e, ET_ENOMEM, "%s: out of memory", r->name);
        return ET_ENOMEM;
    }
    x->id = r->nentries;
    rc = convert(r, root, x, &why);
    json_decref(root);
    if (rc != 0) {
        et_exchange_free(x);
        if (rc == ET_ENOMEM) {
            et_error_set(e, ET_ENOMEM, "%s: out of memory", r->name);
            return ET_ENOMEM;
        }
        et_error_set_at(e, ET_EPARSE, r->entry_off, "%s: entry %llu (line %llu): %s", r->name,
                        (unsigned long long)r->nentries, (unsigned long long)r->entry_line,
                        why != NULL ? why : et_strerror(rc));
        return ET_EPARSE;
    }
    /* Give the copy back between entries so one huge entry does not pin its memory. */
    if (r->entry.cap > 4 * CHUNK)
        et_buf_free(&r->entry);
    *out = x;
    return 1;
}

static void har_close(void *impl)
{
    struct har_reader *r = impl;
    if (r == NULL)
        return;
    if (r->fd >= 0)
        close(r->fd);
    et_buf_free(&r->entry);
    et_free(r->chunk);
    et_free(r->name);
    et_free(r);
}

static const struct et_source_ops har_ops = {"har", har_next, har_close};

static int open_common(struct har_reader *r, const char *name, struct et_source **out,
                       struct et_error *e)
{
    /* jansson allocates through our allocator, so caps and failure tests cover it. */
    json_set_alloc_funcs(et_malloc, et_free);
    r->line = 1;
    et_buf_init(&r->entry, ET_HAR_MAX_ENTRY);
    r->chunk = et_malloc(CHUNK);
    r->name = et_strdup(name);
    if (r->chunk == NULL || r->name == NULL || (*out = et_source_new(&har_ops, r, name)) == NULL) {
        har_close(r);
        et_error_set(e, ET_ENOMEM, "%s: out of memory", name);
        return ET_ENOMEM;
    }
    return 0;
}

int et_har_open(const char *path, struct et_source **out, struct et_error *e)
{
    struct har_reader *r;
    *out = NULL;
    if ((r = et_calloc(1, sizeof(*r))) == NULL) {
        et_error_set(e, ET_ENOMEM, "%s: out of memory", path);
        return ET_ENOMEM;
    }
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int err = errno;
        et_free(r);
        et_error_set(e, err == ENOENT ? ET_ENOTFOUND : ET_EIO, "%s: %s", path, strerror(err));
        return err == ENOENT ? ET_ENOTFOUND : ET_EIO;
    }
    return open_common(r, path, out, e);
}

int et_har_open_mem(const void *p, size_t n, const char *name, struct et_source **out,
                    struct et_error *e)
{
    struct har_reader *r;
    *out = NULL;
    if ((r = et_calloc(1, sizeof(*r))) == NULL) {
        et_error_set(e, ET_ENOMEM, "%s: out of memory", name);
        return ET_ENOMEM;
    }
    r->fd = -1;
    r->mem = p;
    r->memlen = n;
    return open_common(r, name != NULL ? name : "(memory)", out, e);
}
