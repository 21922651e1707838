/*
 * WBXML decoder (WBXML 1.1-1.3 as EAS uses it, MS-ASWBXML) building a tree in an arena.
 *
 * The decoder is push-style. Each feed parses whole tokens straight from the caller's bytes;
 * a token cut by the end of a feed is copied into `pending` and completed by later feeds.
 * `need` remembers how many pending bytes the cut token wants at least, so that a long
 * string fed one byte at a time is not rescanned on every feed (that would be quadratic).
 *
 *   state:  HEADER --(version, publicid, charset, string table)--> BODY --(root END)--> DONE
 *              \___________________ any error: ERROR (sticky) __________________/
 */
#include "eastrace/wbxml.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "codepages.h"
#include "wbxml_int.h"

enum dec_state {
    ST_HEADER = 0, /* expecting the WBXML header */
    ST_BODY = 1,   /* inside the body */
    ST_DONE = 2,   /* root element closed */
    ST_ERROR = 3   /* an error is set in doc->err */
};

#define DEFAULT_MAX_DEPTH 256u
#define DEFAULT_MAX_NODES ((size_t)4000000)
#define DEFAULT_MAX_BYTES (2 * ET_BODY_BUDGET)
#define MAX_NEST 4u

/* Result of one parse step over a contiguous buffer. */
#define STEP_OK 0
#define STEP_MORE 1 /* incomplete token: need more bytes */

/* ---- Code pages ------------------------------------------------------------------------ */

const char *et_wbxml_page_name(unsigned page)
{
    return page < ET__CP_PAGES ? et__cp_namespaces[page] : NULL;
}

const char *et_wbxml_tag_name(unsigned page, unsigned token)
{
    int16_t i;
    if (page >= ET__CP_PAGES)
        return NULL;
    i = et__cp_index[page][token & 0x3F];
    return i < 0 ? NULL : et__cp_tags[i].name;
}

int et_wbxml_page_by_name(const char *ns, size_t n)
{
    unsigned p;
    if (n > 0 && ns[n - 1] == ':')
        n--;
    for (p = 0; p < ET__CP_PAGES; p++) {
        const char *name = et__cp_namespaces[p];
        if (strlen(name) == n && et_strncaseeq(name, ns, n))
            return (int)p;
    }
    return -1;
}

int et_wbxml_token_by_name(unsigned page, const char *name, size_t n)
{
    size_t i;
    if (page >= ET__CP_PAGES)
        return -1;
    for (i = et__cp_page_start[page]; i < et__cp_page_start[page + 1]; i++) {
        const char *t = et__cp_tags[i].name;
        if (strncmp(t, name, n) == 0 && t[n] == '\0')
            return et__cp_tags[i].token;
    }
    return -1;
}

/* ---- Helpers --------------------------------------------------------------------------- */

static int fail(struct et_wbxml_decoder *d, int code, uint64_t off, const char *fmt, ...)
    ET_PRINTF(4, 5);

static int fail(struct et_wbxml_decoder *d, int code, uint64_t off, const char *fmt, ...)
{
    struct et_error *e = &d->doc->err;
    va_list ap;
    if (e->code == 0) {
        e->code = code;
        e->has_offset = 1;
        e->offset = d->origin + off;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
    }
    d->state = ST_ERROR;
    return e->code;
}

/*
 * Reads a WBXML mb_u_int32 at *i. Returns STEP_OK, STEP_MORE, or -1 when it does not fit in
 * 32 bits (more than 5 bytes, or overflow).
 */
static int read_mb(const uint8_t *b, size_t len, size_t *i, uint32_t *out)
{
    uint32_t v = 0;
    size_t k;
    for (k = 0; k < 5; k++) {
        uint8_t c;
        if (*i + k >= len)
            return STEP_MORE;
        c = b[*i + k];
        if (v > (UINT32_MAX >> 7))
            return -1;
        v = (v << 7) | (uint32_t)(c & 0x7F);
        if ((c & 0x80) == 0) {
            *i += k + 1;
            *out = v;
            return STEP_OK;
        }
    }
    return -1;
}

static int check_caps(struct et_wbxml_decoder *d, uint64_t off)
{
    if (d->doc->nodes >= d->opts.max_nodes)
        return fail(d, ET_ETOOBIG, off, "node cap reached (%zu nodes)", d->opts.max_nodes);
    if (et_arena_used(d->arena) > d->opts.max_bytes)
        return fail(d, ET_ETOOBIG, off, "memory cap reached (%zu bytes)", d->opts.max_bytes);
    return 0;
}

static struct et_wbxml_node *new_node(struct et_wbxml_decoder *d, enum et_wbxml_node_type t,
                                      uint64_t off)
{
    struct et_wbxml_node *n;
    if (check_caps(d, off) != 0)
        return NULL;
    n = et_arena_alloc(d->arena, sizeof(*n));
    if (n == NULL) {
        fail(d, ET_ENOMEM, off, "out of memory");
        return NULL;
    }
    n->type = t;
    n->offset = off;
    n->parent = d->cur;
    if (d->cur == NULL && t == ET_WBXML_ELEMENT) {
        /* Top level: the root, or a sibling of it in a headerless fragment. */
        if (d->last_top != NULL)
            d->last_top->next = n;
        d->last_top = n;
    } else if (d->cur != NULL) {
        if (d->cur->last_child == NULL)
            d->cur->first_child = n;
        else
            d->cur->last_child->next = n;
        d->cur->last_child = n;
    }
    d->doc->nodes++;
    return n;
}

/* Sets an element's concatenated text once it is closed (or at finish for open ones). */
static int element_text(struct et_arena *a, struct et_wbxml_node *el)
{
    struct et_wbxml_node *c, *only = NULL;
    size_t total = 0, count = 0;
    char *t;

    for (c = el->first_child; c != NULL; c = c->next) {
        if (c->type == ET_WBXML_ELEMENT)
            continue;
        only = c;
        total += c->len;
        count++;
    }
    if (count == 0) {
        el->text = "";
        el->text_len = 0;
        return 0;
    }
    if (count == 1) {
        el->text = (const char *)only->data;
        el->text_len = only->len;
        return 0;
    }
    t = et_arena_alloc(a, total + 1);
    if (t == NULL)
        return ET_ENOMEM;
    total = 0;
    for (c = el->first_child; c != NULL; c = c->next) {
        if (c->type == ET_WBXML_ELEMENT)
            continue;
        memcpy(t + total, c->data, c->len);
        total += c->len;
    }
    t[total] = '\0';
    el->text = t;
    el->text_len = total;
    return 0;
}

static size_t utf8_put(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- Header ---------------------------------------------------------------------------- */

static int parse_header(struct et_wbxml_decoder *d, const uint8_t *b, size_t len, size_t *pos)
{
    struct et_wbxml_doc *doc = d->doc;
    size_t i = *pos;
    uint32_t v, strl;
    int r;

    if (i >= len)
        return STEP_MORE;
    if (d->opts.fragment == 1 || (d->opts.fragment == 0 && (b[i] == 0 || b[i] > 3))) {
        /* A bare body (Horde fixtures, log excerpts): assume the EAS header 03 01 6A 00. */
        doc->fragment = 1;
        doc->version = 3;
        doc->publicid = 1;
        doc->charset = 106;
        d->state = ST_BODY;
        return STEP_OK;
    }
    if (b[i] > 3)
        return fail(d, ET_EPARSE, d->base + i,
                    "not WBXML: version byte 0x%02X (expected 0x01-0x03)", b[i]);
    if (b[i] == 0)
        return fail(d, ET_EUNSUPPORTED, d->base + i,
                    "WBXML 1.0 (version byte 0x00) is not supported");
    doc->version = b[i++];
    if ((r = read_mb(b, len, &i, &v)) != STEP_OK)
        goto bad;
    doc->publicid = v;
    if (v == 0) {
        if ((r = read_mb(b, len, &i, &v)) != STEP_OK)
            goto bad;
        doc->publicid_index = v;
    }
    if ((r = read_mb(b, len, &i, &v)) != STEP_OK)
        goto bad;
    doc->charset = v;
    if ((r = read_mb(b, len, &i, &strl)) != STEP_OK)
        goto bad;
    if (strl > d->opts.max_bytes)
        return fail(d, ET_ETOOBIG, d->base + *pos, "string table of %u bytes is over the cap",
                    strl);
    if (len - i < strl) {
        d->need = i + strl - *pos;
        return STEP_MORE;
    }
    if (strl > 0) {
        uint8_t *t = et_arena_alloc(d->arena, (size_t)strl + 1);
        if (t == NULL)
            return fail(d, ET_ENOMEM, d->base + i, "out of memory");
        memcpy(t, b + i, strl);
        doc->strtbl = t;
        doc->strtbl_len = strl;
        i += strl;
    }
    if (doc->charset != 106 && doc->charset != 0 && doc->charset != 3)
        return fail(d, ET_EUNSUPPORTED, d->base + *pos,
                    "charset MIBenum %u is not supported (EAS uses UTF-8 = 106)", doc->charset);
    if (doc->publicid == 0 && doc->publicid_index >= doc->strtbl_len)
        return fail(d, ET_EPARSE, d->base + *pos,
                    "public id string at offset %u is outside the string table (%zu bytes)",
                    doc->publicid_index, doc->strtbl_len);
    if (!d->opts.any_publicid && doc->publicid != 1 && doc->publicid != 0)
        return fail(d, ET_EUNSUPPORTED, d->base + *pos,
                    "public id 0x%X is not EAS (EAS uses 0x01, unknown)", doc->publicid);
    *pos = i;
    d->state = ST_BODY;
    return STEP_OK;
bad:
    if (r == STEP_MORE)
        return STEP_MORE;
    return fail(d, ET_EPARSE, d->base + i, "header: multi-byte integer longer than 32 bits");
}

/* ---- Body ------------------------------------------------------------------------------ */

static int close_element(struct et_wbxml_decoder *d, uint64_t off)
{
    struct et_wbxml_node *el = d->cur;
    if (element_text(d->arena, el) != 0)
        return fail(d, ET_ENOMEM, off, "out of memory");
    d->cur = el->parent;
    d->depth--;
    if (d->depth == 0 && !d->doc->fragment)
        d->state = ST_DONE;
    return 0;
}

static int add_text(struct et_wbxml_decoder *d, uint64_t off, const uint8_t *s, size_t n,
                    enum et_wbxml_node_type type, int copy)
{
    struct et_wbxml_node *t;
    if (d->depth == 0)
        return fail(d, ET_EPARSE, off, "%s outside the root element",
                    type == ET_WBXML_OPAQUE ? "opaque data" : "text");
    /* The budget counts what the tree stands for, not what it stores: a string-table
     * reference costs its string every time, so 0.9 MB cannot stand for 100 GB. */
    if (n > d->opts.max_text - d->text)
        return fail(d, ET_ETOOBIG, off,
                    "text passes the output budget of %zu bytes (%s)", d->budget,
                    copy == 0 && type == ET_WBXML_TEXT && d->doc->strtbl != NULL &&
                            s >= d->doc->strtbl && s < d->doc->strtbl + d->doc->strtbl_len
                        ? "string-table references"
                        : "document text");
    d->text += n;
    t = new_node(d, type, off);
    if (t == NULL)
        return d->doc->err.code;
    if (copy) {
        uint8_t *c = et_arena_alloc(d->arena, n + 1);
        if (c == NULL)
            return fail(d, ET_ENOMEM, off, "out of memory");
        memcpy(c, s, n);
        t->data = c;
    } else {
        t->data = s;
    }
    t->len = n;
    return 0;
}

/* Decodes opaque bytes that look like a WBXML document as a nested tree; data_off is where
 * they start in this document. Opaque data that is not WBXML stays opaque (0); a nested
 * document past the output budget stops this one too (ET_ETOOBIG), as a string-table bomb
 * does: a bomb of nested documents must not turn into base64 of each level instead. */
static int try_nested(struct et_wbxml_decoder *d, struct et_wbxml_node *op, uint64_t data_off)
{
    struct et_wbxml_decoder sub;
    const uint8_t *p = op->data, *end = op->data + op->len;
    const struct et_error *se;
    int rc = 0;

    if (d->opts.no_nested || d->nest + 1 >= MAX_NEST || op->len < 5 || p[0] < 1 || p[0] > 3)
        return 0;
    /* Cheap checks first: public id 1 and UTF-8 charset, as EAS writes them. */
    if (p[1] != 0x01 || p[2] != 0x6A)
        return 0;
    if (et__wbxml_init_in(&sub, &d->opts, d->arena, d->nest + 1) != 0)
        return 0;
    sub.opts.fragment = -1;
    sub.opts.max_nodes = d->opts.max_nodes > d->doc->nodes ? d->opts.max_nodes - d->doc->nodes : 1;
    /* A nested document spends the same budget: what it stands for counts in its parent. */
    sub.opts.max_text = d->opts.max_text - d->text;
    sub.budget = d->budget;
    sub.origin = d->origin + data_off;
    (void)et_wbxml_feed(&sub, &p, end);
    se = &sub.doc->err;
    if (se->code == 0 && sub.doc->root != NULL)
        op->nested = sub.doc;
    /* Nodes of a failed attempt stay in the arena (bounded: MAX_NEST levels). */
    d->doc->nodes += sub.doc->nodes;
    if (op->nested != NULL)
        d->text += ET_MIN(sub.text, d->opts.max_text - d->text);
    if (se->code == ET_ETOOBIG) {
        if (strncmp(se->msg, "nested WBXML", 12) == 0) /* said by the innermost level */
            rc = fail(d, ET_ETOOBIG, se->offset - d->origin, "%s", se->msg);
        else
            rc = fail(d, ET_ETOOBIG, se->offset - d->origin,
                      "nested WBXML in the OPAQUE data at byte %llu: %s",
                      (unsigned long long)sub.origin, se->msg);
    }
    et_buf_free(&sub.pending);
    return rc;
}

/*
 * Parses as many whole tokens as b[*pos..len) holds. Returns STEP_OK when the document is
 * done, STEP_MORE when more input is needed, or a negative error.
 */
static int parse_body(struct et_wbxml_decoder *d, const uint8_t *b, size_t len, size_t *pos,
                      int copy)
{
    struct et_wbxml_doc *doc = d->doc;
    size_t i = *pos;
    int rc = STEP_MORE;

    while (i < len) {
        uint8_t c = b[i];
        uint64_t off = d->base + i;
        size_t j = i + 1;
        uint32_t v = 0;
        int r;

        if (d->state == ST_DONE) {
            rc = fail(d, ET_EPARSE, off, "trailing byte 0x%02X after the root element", c);
            break;
        }
        switch (c) {
        case 0x00: /* SWITCH_PAGE */
            if (j >= len)
                goto more;
            d->page = b[j];
            j++;
            break;
        case 0x01: /* END */
            if (d->depth == 0) {
                rc = fail(d, ET_EPARSE, off, "END token with no open element");
                goto out;
            }
            if (close_element(d, off) != 0) {
                rc = doc->err.code;
                goto out;
            }
            break;
        case 0x02: { /* ENTITY */
            uint8_t u[4];
            struct et_wbxml_node *t;
            if ((r = read_mb(b, len, &j, &v)) == STEP_MORE)
                goto more;
            if (r < 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || v == 0) {
                rc = fail(d, ET_EPARSE, off, "ENTITY: invalid code point");
                goto out;
            }
            if ((rc = add_text(d, off, u, utf8_put(u, v), ET_WBXML_TEXT, 1)) != 0)
                goto out;
            t = d->cur->last_child;
            t->text_kind = ET_WBXML_ENTITY;
            t->ref = v;
            break;
        }
        case 0x03: { /* STR_I */
            const uint8_t *z = memchr(b + j, 0, len - j);
            if (z == NULL) {
                d->need = len + 1 - i;
                goto more;
            }
            if ((rc = add_text(d, off, b + j, (size_t)(z - (b + j)), ET_WBXML_TEXT, copy)) != 0)
                goto out;
            j = (size_t)(z - b) + 1;
            break;
        }
        case 0x83: { /* STR_T */
            struct et_wbxml_node *t;
            const uint8_t *z;
            if ((r = read_mb(b, len, &j, &v)) == STEP_MORE)
                goto more;
            if (r < 0 || v >= doc->strtbl_len ||
                (z = memchr(doc->strtbl + v, 0, doc->strtbl_len - v)) == NULL) {
                rc = fail(d, ET_EPARSE, off,
                          "STR_T: offset %u is outside the string table (%zu bytes)", v,
                          doc->strtbl_len);
                goto out;
            }
            if ((rc = add_text(d, off, doc->strtbl + v, (size_t)(z - (doc->strtbl + v)),
                               ET_WBXML_TEXT, 0)) != 0)
                goto out;
            t = d->cur->last_child;
            t->text_kind = ET_WBXML_STR_T;
            t->ref = v;
            break;
        }
        case 0xC3: /* OPAQUE */
            if ((r = read_mb(b, len, &j, &v)) == STEP_MORE)
                goto more;
            if (r < 0) {
                rc = fail(d, ET_EPARSE, off, "OPAQUE: length longer than 32 bits");
                goto out;
            }
            if (v > d->opts.max_bytes) {
                rc = fail(d, ET_ETOOBIG, off, "OPAQUE of %u bytes is over the cap", v);
                goto out;
            }
            if (len - j < v) {
                d->need = j + v - i;
                goto more;
            }
            if ((rc = add_text(d, off, b + j, v, ET_WBXML_OPAQUE, 1)) != 0)
                goto out;
            if ((rc = try_nested(d, d->cur->last_child, d->base + j)) != 0)
                goto out;
            j += v;
            break;
        case 0x04: case 0x44: case 0x84: case 0xC4:
            rc = fail(d, ET_EUNSUPPORTED, off,
                      "LITERAL tag 0x%02X (name from the string table) is not used by EAS", c);
            goto out;
        case 0x40: case 0x41: case 0x42: case 0x80: case 0x81: case 0x82:
        case 0xC0: case 0xC1: case 0xC2:
            rc = fail(d, ET_EUNSUPPORTED, off,
                      "extension token 0x%02X (EXT_*) is not used by EAS", c);
            goto out;
        case 0x43:
            rc = fail(d, ET_EUNSUPPORTED, off,
                      "processing instruction (PI, 0x43) is not used by EAS");
            goto out;
        default: {
            struct et_wbxml_node *el;
            unsigned tok = c & 0x3Fu;
            if (c & 0x80) {
                rc = fail(d, ET_EUNSUPPORTED, off,
                          "tag 0x%02X on page %u has attributes, which EAS never uses", tok,
                          d->page);
                goto out;
            }
            if (d->depth == 0 && doc->root != NULL && !doc->fragment) {
                rc = fail(d, ET_EPARSE, off, "second root element");
                goto out;
            }
            if ((c & 0x40) && d->depth >= d->opts.max_depth) {
                rc = fail(d, ET_ETOOBIG, off, "nesting deeper than %u elements",
                          d->opts.max_depth);
                goto out;
            }
            el = new_node(d, ET_WBXML_ELEMENT, off);
            if (el == NULL) {
                rc = doc->err.code;
                goto out;
            }
            el->page = (uint8_t)d->page;
            el->token = (uint8_t)tok;
            el->ns = et_wbxml_page_name(d->page);
            el->name = et_wbxml_tag_name(d->page, tok);
            el->text = "";
            if (d->page < 32)
                doc->pages_used |= 1u << d->page;
            if (doc->root == NULL)
                doc->root = el;
            if (c & 0x40) {
                el->has_content = 1;
                d->cur = el;
                d->depth++;
            } else if (d->depth == 0 && !doc->fragment) {
                d->state = ST_DONE;
            }
            break;
        }
        }
        i = j;
        d->need = 0;
        rc = STEP_MORE;
        if (d->state == ST_DONE && i == len) {
            rc = STEP_OK;
            break;
        }
    }
    if (d->state == ST_DONE && rc == STEP_MORE && doc->err.code == 0)
        rc = STEP_OK;
out:
    *pos = i;
    return rc;
more:
    *pos = i;
    return STEP_MORE;
}

/* Parses b[0..len) whose first byte is at input offset d->base. */
static int parse(struct et_wbxml_decoder *d, const uint8_t *b, size_t len, size_t *pos, int copy)
{
    int rc;
    if (d->state == ST_HEADER) {
        rc = parse_header(d, b, len, pos);
        if (rc != STEP_OK)
            return rc;
    }
    return parse_body(d, b, len, pos, copy);
}

/* ---- Public push API ------------------------------------------------------------------- */

int et__wbxml_init_in(struct et_wbxml_decoder *d, const struct et_wbxml_opts *opts,
                      struct et_arena *arena, unsigned nest)
{
    struct et_arena *a = arena;
    memset(d, 0, sizeof(*d));
    if (opts != NULL)
        d->opts = *opts;
    if (d->opts.max_depth == 0)
        d->opts.max_depth = DEFAULT_MAX_DEPTH;
    if (d->opts.max_nodes == 0)
        d->opts.max_nodes = DEFAULT_MAX_NODES;
    if (d->opts.max_bytes == 0)
        d->opts.max_bytes = DEFAULT_MAX_BYTES;
    if (d->opts.max_text == 0)
        d->opts.max_text = ET_BODY_BUDGET;
    d->budget = d->opts.max_text;
    if (a == NULL && (a = et_arena_new(64 * 1024)) == NULL)
        return ET_ENOMEM;
    d->doc = et_arena_alloc(a, sizeof(*d->doc));
    if (d->doc == NULL) {
        if (arena == NULL)
            et_arena_free(a);
        return ET_ENOMEM;
    }
    d->doc->arena = arena == NULL ? a : NULL; /* nested documents share their parent's */
    d->doc->err.code = 0;
    d->nest = nest;
    /* Nested documents share the arena: let them see it through a private pointer. */
    d->arena = a;
    et_buf_init(&d->pending, d->opts.max_bytes + 64);
    return 0;
}

int et_wbxml_init(struct et_wbxml_decoder *d, const struct et_wbxml_opts *opts)
{
    return et__wbxml_init_in(d, opts, NULL, 0);
}

int et_wbxml_feed(struct et_wbxml_decoder *d, const uint8_t **p, const uint8_t *end)
{
    size_t len = (size_t)(end - *p), pos = 0;
    int rc;

    if (d->doc == NULL)
        return ET_EINVAL;
    if (d->state == ST_ERROR) {
        *p = end;
        return d->doc->err.code;
    }
    if (len == 0)
        return d->state == ST_DONE ? 0 : ET_EAGAIN;
    if (d->state == ST_DONE && d->pending.len == 0) {
        rc = fail(d, ET_EPARSE, d->base, "trailing byte 0x%02X after the root element", **p);
        *p = end;
        return rc;
    }
    if (d->pending.len > 0) {
        /* Complete the cut token first. */
        if (et_buf_append(&d->pending, *p, len) != 0) {
            *p = end;
            return fail(d, ET_ETOOBIG, d->base, "token larger than the memory cap");
        }
        *p = end;
        if (d->pending.len < d->need)
            return ET_EAGAIN;
        d->need = 0; /* parse sets it again when the token is still cut */
        rc = parse(d, d->pending.data, d->pending.len, &pos, 1);
        d->base += pos;
        d->doc->consumed = (size_t)d->base;
        et_buf_consume(&d->pending, pos);
        if (rc < 0)
            return rc;
        if (rc == STEP_MORE)
            return ET_EAGAIN;
        return 0;
    }
    rc = parse(d, *p, len, &pos, 1);
    d->base += pos;
    d->doc->consumed = (size_t)d->base;
    if (rc == STEP_MORE && pos < len) {
        if (et_buf_append(&d->pending, *p + pos, len - pos) != 0) {
            *p = end;
            return fail(d, ET_ENOMEM, d->base, "out of memory");
        }
    }
    *p = end;
    if (rc < 0)
        return rc;
    return rc == STEP_MORE ? ET_EAGAIN : 0;
}

/* Fills in the text of elements left open by a truncated input. */
static void close_open(struct et_wbxml_decoder *d)
{
    struct et_wbxml_node *n;
    for (n = d->cur; n != NULL; n = n->parent)
        if (element_text(d->arena, n) != 0)
            n->text = "";
}

int et_wbxml_finish(struct et_wbxml_decoder *d, struct et_wbxml_doc **doc)
{
    struct et_wbxml_doc *dd = d->doc;
    int rc = 0;

    if (dd == NULL)
        return ET_EINVAL;
    if (d->state == ST_ERROR) {
        rc = dd->err.code;
    } else if (d->state == ST_HEADER) {
        rc = fail(d, ET_ETRUNC, d->base,
                  d->pending.len ? "input ended inside the WBXML header" : "empty input");
    } else if (d->state == ST_BODY && !(dd->fragment && d->depth == 0 && dd->root != NULL &&
                                          d->pending.len == 0)) {
        if (dd->root == NULL)
            rc = fail(d, ET_ETRUNC, d->base + d->pending.len,
                      "input ended before the root element");
        else
            rc = fail(d, ET_ETRUNC, d->base + d->pending.len,
                      "input ended inside <%s> with %u element(s) open",
                      d->cur && d->cur->name ? d->cur->name : "unknown", d->depth);
    }
    if (rc != 0)
        close_open(d);
    d->doc = NULL;
    if (doc != NULL)
        *doc = dd;
    else
        et_wbxml_doc_free(dd);
    return rc;
}

void et_wbxml_free(struct et_wbxml_decoder *d)
{
    if (d == NULL)
        return;
    et_buf_free(&d->pending);
    if (d->doc != NULL && d->nest == 0)
        et_wbxml_doc_free(d->doc);
    d->doc = NULL;
}

void et_wbxml_doc_free(struct et_wbxml_doc *doc)
{
    if (doc == NULL || doc->arena == NULL)
        return;
    et_arena_free(doc->arena);
}

int et_wbxml_decode(const uint8_t *bytes, size_t len, const struct et_wbxml_opts *opts,
                    struct et_wbxml_doc **doc, struct et_error *err)
{
    struct et_wbxml_decoder d;
    const uint8_t *p = bytes;
    size_t pos = 0;
    int rc;

    *doc = NULL;
    if ((rc = et_wbxml_init(&d, opts)) != 0) {
        if (err != NULL)
            et_error_set(err, rc, "out of memory");
        return rc;
    }
    /* Whole input at hand: text can point into a private copy instead of being copied per
     * node (one memcpy for the document). */
    if (len > 0) {
        uint8_t *copy = et_arena_alloc_raw(d.arena, len + 1);
        if (copy == NULL) {
            fail(&d, ET_ENOMEM, 0, "out of memory");
        } else {
            memcpy(copy, p, len);
            copy[len] = 0;
            rc = parse(&d, copy, len, &pos, 0);
            d.base = pos;
            d.doc->consumed = pos;
            /* A cut token goes to pending, so finish sees and reports it. */
            if (rc == STEP_MORE && pos < len &&
                et_buf_append(&d.pending, copy + pos, len - pos) != 0)
                fail(&d, ET_ENOMEM, pos, "out of memory");
        }
    }
    rc = et_wbxml_finish(&d, doc);
    et_wbxml_free(&d);
    if (rc != 0 && err != NULL && *doc != NULL)
        *err = (*doc)->err;
    return rc;
}
