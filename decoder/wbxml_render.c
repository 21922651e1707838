/*
 * XML and JSON renderings of a decoded WBXML tree. Everything is appended to one et_buf;
 * text runs are copied in spans between the characters that need escaping.
 *
 * XML namespace scheme (docs/wbxml.md): the root element carries xmlns="<Page>:" for its own
 * code page, and xmlns:<page>="<Page>:" (lower-case prefix) for every other page used in the
 * document; elements of the root's page are unprefixed, the others are prefixed.
 */
#include "eastrace/wbxml.h"

#include "eastrace/redact.h"

#include <stdio.h>
#include <string.h>

#include "eastrace/eas.h"
#include "wbxml_int.h"

/* Lower-case namespace prefixes with their lengths, so a tag is written without strlen. */
#define PFX(s) { s, sizeof(s) - 1 }
static const struct {
    const char *s;
    size_t len;
} prefixes[ET_WBXML_PAGES] = {
    PFX("airsync"), PFX("contacts"), PFX("email"), PFX("airnotify"), PFX("calendar"),
    PFX("move"), PFX("getitemestimate"), PFX("folderhierarchy"), PFX("meetingresponse"),
    PFX("tasks"), PFX("resolverecipients"), PFX("validatecert"), PFX("contacts2"), PFX("ping"),
    PFX("provision"), PFX("search"), PFX("gal"), PFX("airsyncbase"), PFX("settings"),
    PFX("documentlibrary"), PFX("itemoperations"), PFX("composemail"), PFX("email2"),
    PFX("notes"), PFX("rightsmanagement"), PFX("find"),
};
#undef PFX

const char *et__wbxml_prefix(unsigned page)
{
    return page < ET_WBXML_PAGES ? prefixes[page].s : NULL;
}

struct rctx {
    struct et_buf *out;
    const struct et_wbxml_render_opts *o;
    const char *root_name; /* local name of the current document's root */
    unsigned root_page;
    uint32_t ns_used;      /* pages used by the current document */
    unsigned flat;         /* > 0 inside mixed content: no indentation added */
    int no_nl;             /* the next indentation starts the output: no newline */
    int rc;
    size_t saved_max;      /* the caller's cap of out, restored at the end */
};

/*
 * Bytes the buffer can take without a realloc and without passing its cap: everything up to
 * min(cap - 1, max), the last byte of cap being kept for the NUL (as et_buf_append does).
 */
static inline size_t buf_room(const struct et_buf *b)
{
    size_t max = b->max ? b->max : (size_t)-1 / 2;
    size_t lim = b->cap ? b->cap - 1 : 0;
    if (lim > max)
        lim = max;
    return lim > b->len ? lim - b->len : 0;
}

/*
 * Appends n bytes. Most pieces are a few bytes long and fit in the room already reserved, so
 * the common case is a bounds check and a memcpy here rather than a call to et_buf_append;
 * the rare case (growth, or the cap) goes through et_buf_append, which sets the error.
 */
static inline void put(struct rctx *c, const void *s, size_t n)
{
    struct et_buf *b = c->out;
    if (c->rc != 0)
        return;
    if (n <= buf_room(b) && b->data != NULL) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = '\0';
        return;
    }
    c->rc = et_buf_append(b, s, n);
}

#define PUT(c, s, n) put((c), (s), (n))
#define PUTS(c, s) put((c), (s), strlen(s))
/* A string literal: its length is known at compile time. */
#define PUTL(c, lit) put((c), (lit), sizeof(lit) - 1)

/* Word-at-a-time helpers: ONES * b repeats byte b in every byte of a word. */
#define ONES ((uint64_t)0x0101010101010101ULL)
#define HIGHS ((uint64_t)0x8080808080808080ULL)

/* High bit set in some byte when a byte of w is zero (exact as a yes/no answer). */
static inline uint64_t has_zero(uint64_t w)
{
    return (w - ONES) & ~w & HIGHS;
}

/* Non-zero when some byte of w is >= 0x80 or < 0x20. */
static inline uint64_t has_high_or_ctl(uint64_t w)
{
    return (w | ((w - ONES * 0x20) & ~w)) & HIGHS;
}

/* Non-zero when some byte of w needs a closer look in character data: >= 0x80, < 0x20, '&',
 * '<' or '>' ('<' 0x3C and '>' 0x3E differ only in bit 1, so one test catches both). */
static inline uint64_t has_special(uint64_t w)
{
    return has_high_or_ctl(w) | has_zero(w ^ (ONES * '&')) | has_zero((w | (ONES * 2)) ^ (ONES * '>'));
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return w;
}

/*
 * Length of the UTF-8 sequence at p[0..n) (n >= 1, p[0] >= 0x80), or 0 when it is not valid
 * UTF-8 (overlong, surrogate, beyond U+10FFFF, cut, or a bad byte): the rules of
 * et_utf8_valid.
 */
static inline size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    uint32_t cp;
    size_t need, k;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (n <= need)
        return 0;
    for (k = 1; k <= need; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[k] & 0x3Fu);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need + 1;
}

/*
 * Text that XML 1.0 can carry as character data: valid UTF-8 without C0 controls other
 * than tab, LF and CR. As it always has, the control check stops at the first non-ASCII
 * byte (from there on only UTF-8 validity is checked); the rendering must stay
 * byte-identical, so the fast path below keeps that rule.
 */
int et__wbxml_xml_safe(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t ch;
        /* Eight plain printable ASCII bytes at a time. */
        while (n - i >= 8 && has_high_or_ctl(load64(p + i)) == 0)
            i += 8;
        if (i == n)
            break;
        ch = p[i];
        if (ch >= 0x80)
            goto utf8;
        if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r')
            return 0;
        i++;
    }
    return 1;
utf8:
    /* All before i is ASCII; validate the rest as UTF-8. Controls other than TAB, LF and CR
     * are not XML characters wherever they stand. */
    while (i < n) {
        size_t k;
        while (n - i >= 8 && has_high_or_ctl(load64(p + i)) == 0)
            i += 8;
        if (i == n)
            break;
        if (p[i] < 0x80) {
            if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
                return 0;
            i++;
            continue;
        }
        if ((k = utf8_seq(p + i, n - i)) == 0)
            return 0;
        i += k;
    }
    return 1;
}

/*
 * One pass over character data: checks it is XML-safe (the et__wbxml_xml_safe rules) and
 * writes it escaped (& < > always, CR as &#13;) straight into the buffer, copying clean
 * 8-byte words whole. Returns 0 when written; 1 when the text is not XML-safe, or -1 when
 * the buffer could not take it (cap or memory), in both cases with nothing written, so the
 * caller falls back to the base64 form or the piecewise path (which reports the error the
 * way it always has).
 *
 * Invariant in the loop: the room from d to lim is at least the n - i input bytes left, since
 * every input byte but an escaped one becomes exactly one output byte.
 */
static int put_text_fast(struct et_buf *b, const uint8_t *s, size_t n)
{
    size_t start = b->len, i = 0;
    uint8_t *d, *lim;


    if (et_buf_reserve(b, n) != 0)
        return -1;
    d = b->data + b->len;
    lim = d + buf_room(b);
    while (i < n) {
        size_t stop;
        while (n - i >= 8) {
            uint64_t w = load64(s + i);
            if (has_special(w) != 0)
                break;
            memcpy(d, &w, sizeof(w));
            d += 8;
            i += 8;
        }
        /* At most one word byte by byte, then back to whole words. */
        stop = n - i > 8 ? i + 8 : n;
        while (i < stop) {
            uint8_t ch = s[i];
            const char *rep;
            size_t rlen;
            if (ch >= 0x20 && ch < 0x80) {
                switch (ch) {
                case '&': rep = "&amp;"; rlen = 5; goto esc;
                case '<': rep = "&lt;"; rlen = 4; goto esc;
                case '>': rep = "&gt;"; rlen = 4; goto esc;
                default: break;
                }
                *d++ = ch;
                i++;
                continue;
            }
            if (ch >= 0x80) {
                size_t k = utf8_seq(s + i, n - i);
                if (k == 0)
                    goto unsafe;

                memcpy(d, s + i, k);
                d += k;
                i += k;
                continue;
            }
            if (ch == '\r') {
                rep = "&#13;";
                rlen = 5;
                goto esc;
            }
            if (ch != '\t' && ch != '\n')
                goto unsafe;
            *d++ = ch;
            i++;
            continue;
        esc:
            if ((size_t)(lim - d) < rlen + (n - i - 1)) {
                b->len = (size_t)(d - b->data);
                if (et_buf_reserve(b, rlen + (n - i - 1)) != 0)
                    goto nospace;
                d = b->data + b->len;
                lim = d + buf_room(b);
            }
            memcpy(d, rep, rlen);
            d += rlen;
            i++;
        }
    }
    b->len = (size_t)(d - b->data);
    b->data[b->len] = '\0';
    return 0;
unsafe:
    b->len = start;
    b->data[start] = '\0';
    return 1;
nospace:
    b->len = start;
    b->data[start] = '\0';
    return -1;
}

/* Escapes character data: & < > always, CR as &#13; so XML readers keep it. */
static void put_escaped(struct rctx *c, const uint8_t *s, size_t n)
{
    size_t i, run = 0;
    for (i = 0; i < n; i++) {
        const char *rep;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '\r': rep = "&#13;"; break;
        default: continue;
        }
        PUT(c, s + run, i - run);
        PUTS(c, rep);
        run = i + 1;
    }
    PUT(c, s + run, n - run);
}

static void put_cdata(struct rctx *c, const uint8_t *s, size_t n)
{
    size_t i, run = 0;
    PUTS(c, "<![CDATA[");
    for (i = 0; i + 2 < n; i++) {
        if (s[i] == ']' && s[i + 1] == ']' && s[i + 2] == '>') {
            /* "]]>" cannot sit inside CDATA: close after "]]", reopen before ">". */
            PUT(c, s + run, i + 2 - run);
            PUTS(c, "]]><![CDATA[");
            run = i + 2;
        }
    }
    PUT(c, s + run, n - run);
    PUTS(c, "]]>");
}

/* Comment text with "--" broken up, since XML forbids it inside comments. */
static void put_comment_text(struct rctx *c, const char *s)
{
    size_t i, run = 0, n = strlen(s);
    for (i = 0; i < n; i++) {
        if (s[i] == '-' && (s[i + 1] == '-' || s[i + 1] == '\0')) {
            PUT(c, s + run, i + 1 - run);
            PUTS(c, " ");
            run = i + 1;
        }
    }
    PUT(c, s + run, n - run);
}

static void put_base64(struct rctx *c, const uint8_t *p, size_t n)
{
    if (c->rc == 0)
        c->rc = et_base64_encode(c->out, p, n);
}

/* A newline and 2 * depth spaces (none in compact or mixed content), written in one piece
 * from a static run of spaces when the buffer has room. */
static void put_indent(struct rctx *c, unsigned depth)
{
    static const char nl_spaces[] = "\n                                                                "
                                    "                                                                ";
    size_t n = (size_t)depth * 2, k;
    if (c->o->compact || c->flat > 0)
        return;
    if (c->no_nl) {
        c->no_nl = 0;
    } else if (n < sizeof(nl_spaces) - 1 && n + 1 <= buf_room(c->out)) {
        PUT(c, nl_spaces, n + 1);
        return;
    } else {
        /* Deep or near the cap: piece by piece, so a capped buffer stops where it did. */
        PUTL(c, "\n");
    }
    while (n > 0) {
        k = n > 64 ? 64 : n; /* 64-space pieces, as before */
        PUT(c, nl_spaces + 1, k);
        n -= k;
    }
}

static void put_hex2(struct rctx *c, unsigned v)
{
    char t[8];
    int k = snprintf(t, sizeof(t), "0x%02X", v & 0xFFu);
    PUT(c, t, (size_t)k);
}

/*
 * Writes lead, the element's qualified name ("prefix:Name", or "Name" on the root's page)
 * and tail, reserving once: a tag is then a few memcpys into the buffer.
 */
static void put_tag(struct rctx *c, const char *lead, size_t llen, const struct et_wbxml_node *n,
                    const char *tail, size_t tlen)
{
    struct et_buf *b = c->out;
    const char *pfx = NULL;
    size_t plen = 0, nlen = strlen(n->name), total;
    uint8_t *d;
    if (c->rc != 0)
        return;
    if (n->page != c->root_page) {
        pfx = prefixes[n->page].s;
        plen = prefixes[n->page].len + 1;
    }
    total = llen + plen + nlen + tlen;
    if (total > buf_room(b)) {
        /* Growth or the cap: the piecewise path reports errors as it always has. */
        PUT(c, lead, llen);
        if (pfx != NULL) {
            PUT(c, pfx, plen - 1);
            PUTL(c, ":");
        }
        PUT(c, n->name, nlen);
        PUT(c, tail, tlen);
        return;
    }
    d = b->data + b->len;
    memcpy(d, lead, llen);
    d += llen;
    if (pfx != NULL) {
        memcpy(d, pfx, plen - 1);
        d[plen - 1] = ':';
        d += plen;
    }
    memcpy(d, n->name, nlen);
    d += nlen;
    memcpy(d, tail, tlen);
    b->len += total;
    b->data[b->len] = '\0';
}

static void put_unknown_name(struct rctx *c, const struct et_wbxml_node *n)
{
    PUTL(c, "unknown page=\"");
    put_hex2(c, n->page);
    PUTL(c, "\" token=\"");
    put_hex2(c, n->token);
    PUTL(c, "\"");
}

static void render_doc(struct rctx *c, const struct et_wbxml_doc *doc, unsigned depth);

static void status_comment(struct rctx *c, const struct et_wbxml_node *n)
{
    const struct et_eas_status *s;
    long long v;
    char num[32];
    /* Called for every element: test the first letter before the strcmp. */
    if (c->o->no_status_comments || n->name == NULL || n->name[0] != 'S' ||
        strcmp(n->name, "Status") != 0)
        return;
    if (et_wbxml_node_int(n, &v) != 0 || v < -2147483647LL || v > 2147483647LL)
        return;
    s = et_eas_status_lookup(c->root_name,
                             n->parent != NULL && n->parent->name ? n->parent->name : NULL,
                             (int)v);
    if (s == NULL)
        return;
    snprintf(num, sizeof(num), "%lld", v);
    PUTS(c, "<!-- ");
    PUTS(c, num);
    PUTS(c, " = ");
    put_comment_text(c, s->name);
    if (s->meaning != NULL && s->meaning[0] != '\0') {
        PUTS(c, ": ");
        put_comment_text(c, s->meaning);
    }
    PUTS(c, " -->");
}

/* Renders a text or opaque node inline. */
static void render_leaf(struct rctx *c, const struct et_wbxml_node *n, unsigned depth)
{
    char hdr[96];
    if (n->type == ET_WBXML_TEXT) {
        int r = c->rc == 0 ? put_text_fast(c->out, n->data, n->len) : -1;
        if (r == 0)
            return;
        if (r < 0 && et__wbxml_xml_safe(n->data, n->len)) {
            /* The buffer refused the fast path: piece by piece, stopping where it did. */
            put_escaped(c, n->data, n->len);
        } else {
            snprintf(hdr, sizeof(hdr), "<!-- string %zu bytes, base64 -->", n->len);
            PUTS(c, hdr);
            put_base64(c, n->data, n->len);
        }
        return;
    }
    if (n->nested != NULL) {
        snprintf(hdr, sizeof(hdr), "<!-- opaque %zu bytes, WBXML -->", n->len);
        put_indent(c, depth);
        PUTS(c, hdr);
        render_doc(c, n->nested, depth);
        return;
    }
    if (et__wbxml_xml_safe(n->data, n->len)) {
        put_cdata(c, n->data, n->len);
    } else {
        snprintf(hdr, sizeof(hdr), "<!-- opaque %zu bytes, base64 -->", n->len);
        PUTS(c, hdr);
        put_base64(c, n->data, n->len);
    }
}

static void render_el(struct rctx *c, const struct et_wbxml_node *n, unsigned depth)
{
    const struct et_wbxml_node *k;
    int has_el = 0, has_text = 0;

    put_indent(c, depth);
    if (n->name == NULL) {
        PUTL(c, "<");
        put_unknown_name(c, n);
    } else {
        put_tag(c, "<", 1, n, "", 0);
    }
    if (n->parent == NULL && c->root_page != 0xFFFF) {
        /* The root declares every namespace the document uses. */
        unsigned p;
        if (n->page < ET_WBXML_PAGES) {
            PUTS(c, " xmlns=\"");
            PUTS(c, et_wbxml_page_name(n->page));
            PUTS(c, ":\"");
        }
        for (p = 0; p < ET_WBXML_PAGES; p++) {
            if (p == n->page || !(c->ns_used & (1u << p)))
                continue;
            PUTS(c, " xmlns:");
            PUT(c, prefixes[p].s, prefixes[p].len);
            PUTS(c, "=\"");
            PUTS(c, et_wbxml_page_name(p));
            PUTS(c, ":\"");
        }
    }
    if (!n->has_content && n->first_child == NULL) {
        PUTS(c, "/>");
        status_comment(c, n);
        return;
    }
    PUTS(c, ">");
    for (k = n->first_child; k != NULL; k = k->next) {
        if (k->type == ET_WBXML_ELEMENT || k->nested != NULL)
            has_el = 1;
        else
            has_text = 1;
    }
    /* Mixed content is written without indentation so no whitespace is added to it. */
    if (has_text)
        c->flat++;
    for (k = n->first_child; k != NULL && c->rc == 0; k = k->next) {
        if (k->type == ET_WBXML_ELEMENT)
            render_el(c, k, depth + 1);
        else if (!c->o->include_secrets && et_redact_is_secret_element(n->name))
            PUTS(c, ET_REDACTED); /* the redaction policy: a Password's text */
        else
            render_leaf(c, k, depth + 1);
    }
    if (has_text)
        c->flat--;
    if (has_el)
        put_indent(c, depth);
    if (n->name == NULL) {
        PUTL(c, "</");
        PUTL(c, "unknown");
        PUTL(c, ">");
    } else {
        put_tag(c, "</", 2, n, ">", 1);
    }
    status_comment(c, n);
}

static void render_doc(struct rctx *c, const struct et_wbxml_doc *doc, unsigned depth)
{
    const char *saved_name = c->root_name;
    unsigned saved_page = c->root_page;
    uint32_t saved_ns = c->ns_used;
    if (doc->root == NULL)
        return;
    c->root_name = doc->root->name;
    c->root_page = doc->root->page;
    c->ns_used = doc->pages_used;
    if (doc->root->next != NULL) {
        /* A headerless fragment with several top-level elements: one wrapper element keeps
         * the XML well-formed; every EAS element gets a prefix. */
        const struct et_wbxml_node *k;
        unsigned p;
        c->root_page = 0xFFFF;
        c->root_name = NULL;
        put_indent(c, depth);
        PUTS(c, "<fragment xmlns=\"" ET__WBXML_FRAGMENT_NS "\"");
        for (p = 0; p < ET_WBXML_PAGES; p++) {
            if (!(c->ns_used & (1u << p)))
                continue;
            PUTS(c, " xmlns:");
            PUT(c, prefixes[p].s, prefixes[p].len);
            PUTS(c, "=\"");
            PUTS(c, et_wbxml_page_name(p));
            PUTS(c, ":\"");
        }
        PUTS(c, ">");
        for (k = doc->root; k != NULL && c->rc == 0; k = k->next)
            render_el(c, k, depth + 1);
        put_indent(c, depth);
        PUTS(c, "</fragment>");
    } else {
        render_el(c, doc->root, depth);
    }
    c->root_name = saved_name;
    c->root_page = saved_page;
    c->ns_used = saved_ns;
}

static const struct et_wbxml_render_opts default_ropts;

/* What is rendered of a document a cap stopped (ET_ETOOBIG: the output budget, the node or
 * memory cap): its start, for orientation. Without this, a bomb stopped at the budget would
 * still come out as a budget's worth of partial XML. */
#define PARTIAL_MAX ((size_t)1 << 20)

/*
 * The output budget: for the length of one rendering, out's cap is lowered to what it holds
 * plus opts->max_output (ET_BODY_BUDGET by default; PARTIAL_MAX for a document a cap stopped),
 * so every append path of the renderer stops there as it stops at the caller's own cap.
 * Returns the cap to restore.
 */
static size_t budget_begin(struct et_buf *out, const struct et_wbxml_render_opts *o,
                           const struct et_wbxml_doc *doc)
{
    size_t saved = out->max, cur = out->max ? out->max : (size_t)-1 / 2;
    size_t budget = o->max_output ? o->max_output : ET_BODY_BUDGET;
    if (doc->err.code == ET_ETOOBIG && budget > PARTIAL_MAX)
        budget = PARTIAL_MAX;
    /* et_buf lets len reach max (the NUL lives in the allocation beyond it). */
    if (budget < cur - ET_MIN(cur, out->len))
        out->max = out->len + budget;
    return saved;
}

int et_wbxml_to_xml(const struct et_wbxml_doc *doc, const struct et_wbxml_render_opts *opts,
                    struct et_buf *out)
{
    struct rctx c;
    char t[160];

    memset(&c, 0, sizeof(c));
    c.out = out;
    c.o = opts != NULL ? opts : &default_ropts;
    c.root_page = 0xFFFF;
    c.saved_max = budget_begin(out, c.o, doc);
    if (!c.o->no_declaration)
        PUTS(&c, "<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    if (doc->fragment) {
        if (!c.o->no_declaration)
            PUTS(&c, c.o->compact ? "" : "\n");
        PUTS(&c, "<?eastrace-wbxml fragment=\"1\"?>");
    } else if (doc->version != 3 || doc->publicid != 1 || doc->charset != 106 ||
               doc->strtbl_len != 0) {
        /* Header fields EAS does not normally use, kept so the encoder can write them back. */
        snprintf(t, sizeof(t),
                 "<?eastrace-wbxml version=\"0x%02X\" publicid=\"0x%X\" charset=\"%u\" "
                 "strtbl=\"%zu\"?>",
                 doc->version, doc->publicid, doc->charset, doc->strtbl_len);
        if (!c.o->no_declaration)
            PUTS(&c, c.o->compact ? "" : "\n");
        PUTS(&c, t);
    }
    if (doc->root != NULL) {
        /* The first put_indent writes the newline after the declaration. */
        c.no_nl = c.o->no_declaration && !doc->fragment && doc->version == 3 &&
                  doc->publicid == 1 && doc->charset == 106 && doc->strtbl_len == 0;
        render_doc(&c, doc, 0);
    }
    if (doc->err.code != 0) {
        char msg[300];
        et_error_format(&doc->err, msg, sizeof(msg));
        PUTS(&c, c.o->compact ? "" : "\n");
        PUTS(&c, "<!-- eastrace: decoding stopped: ");
        put_comment_text(&c, msg);
        PUTS(&c, " -->");
    }
    if (!c.o->compact)
        PUTS(&c, "\n");
    out->max = c.saved_max;
    return c.rc;
}

/* ---- JSON ------------------------------------------------------------------------------ */

static void json_str(struct rctx *c, const void *s, size_t n)
{
    if (c->rc == 0)
        c->rc = et_buf_put_json_string(c->out, s, n);
}

static void json_doc(struct rctx *c, const struct et_wbxml_doc *doc);

static void json_node(struct rctx *c, const struct et_wbxml_node *n)
{
    char t[128];
    int k;
    if (n->type != ET_WBXML_ELEMENT) {
        if (!c->o->include_secrets && n->parent != NULL &&
            et_redact_is_secret_element(n->parent->name)) {
            PUTS(c, "{\"text\":\"" ET_REDACTED "\"}"); /* the redaction policy */
            return;
        }
        if (n->type == ET_WBXML_TEXT) {
            if (et__wbxml_xml_safe(n->data, n->len)) {
                PUTS(c, "{\"text\":");
                json_str(c, n->data, n->len);
            } else {
                PUTS(c, "{\"text_base64\":\"");
                put_base64(c, n->data, n->len);
                PUTS(c, "\"");
            }
            PUTS(c, "}");
            return;
        }
        k = snprintf(t, sizeof(t), "{\"opaque\":%zu,", n->len);
        PUT(c, t, (size_t)k);
        if (n->nested != NULL) {
            PUTS(c, "\"wbxml\":");
            json_doc(c, n->nested);
        } else if (et__wbxml_xml_safe(n->data, n->len)) {
            PUTS(c, "\"text\":");
            json_str(c, n->data, n->len);
        } else {
            PUTS(c, "\"base64\":\"");
            put_base64(c, n->data, n->len);
            PUTS(c, "\"");
        }
        PUTS(c, "}");
        return;
    }
    PUTS(c, "{\"ns\":");
    if (n->ns != NULL)
        json_str(c, n->ns, strlen(n->ns));
    else
        PUTS(c, "null");
    PUTS(c, ",\"name\":");
    if (n->name != NULL)
        json_str(c, n->name, strlen(n->name));
    else
        PUTS(c, "null");
    k = snprintf(t, sizeof(t), ",\"page\":%u,\"token\":%u,\"offset\":%llu", n->page, n->token,
                 (unsigned long long)n->offset);
    PUT(c, t, (size_t)k);
    if (n->name != NULL && strcmp(n->name, "Status") == 0) {
        long long v;
        const struct et_eas_status *s = NULL;
        if (et_wbxml_node_int(n, &v) == 0 && v >= -2147483647LL && v <= 2147483647LL)
            s = et_eas_status_lookup(c->root_name,
                                     n->parent != NULL ? n->parent->name : NULL, (int)v);
        if (s != NULL) {
            k = snprintf(t, sizeof(t), ",\"status\":{\"code\":%d,\"name\":", s->code);
            PUT(c, t, (size_t)k);
            json_str(c, s->name, strlen(s->name));
            PUTS(c, ",\"meaning\":");
            json_str(c, s->meaning ? s->meaning : "", s->meaning ? strlen(s->meaning) : 0);
            PUTS(c, "}");
        }
    }
    if (n->first_child != NULL || n->has_content) {
        const struct et_wbxml_node *ch;
        PUTS(c, ",\"children\":[");
        for (ch = n->first_child; ch != NULL && c->rc == 0; ch = ch->next) {
            json_node(c, ch);
            if (ch->next != NULL)
                PUTS(c, ",");
        }
        PUTS(c, "]");
    }
    PUTS(c, "}");
}

static void json_doc(struct rctx *c, const struct et_wbxml_doc *doc)
{
    char t[160];
    int k;
    const char *saved = c->root_name;
    k = snprintf(t, sizeof(t),
                 "{\"version\":\"1.%u\",\"publicid\":%u,\"charset\":%u,\"fragment\":%s,"
                 "\"root\":",
                 doc->version, doc->publicid, doc->charset, doc->fragment ? "true" : "false");
    PUT(c, t, (size_t)k);
    c->root_name = doc->root ? doc->root->name : NULL;
    if (doc->root != NULL)
        json_node(c, doc->root);
    else
        PUTS(c, "null");
    if (doc->root != NULL && doc->root->next != NULL) {
        /* Further top-level elements of a headerless fragment. */
        const struct et_wbxml_node *sib;
        PUTS(c, ",\"siblings\":[");
        for (sib = doc->root->next; sib != NULL && c->rc == 0; sib = sib->next) {
            json_node(c, sib);
            if (sib->next != NULL)
                PUTS(c, ",");
        }
        PUTS(c, "]");
    }
    c->root_name = saved;
    if (doc->err.code != 0) {
        k = snprintf(t, sizeof(t), ",\"error\":{\"code\":%d,\"name\":", doc->err.code);
        PUT(c, t, (size_t)k);
        json_str(c, et_strerror(doc->err.code), strlen(et_strerror(doc->err.code)));
        PUTS(c, ",\"message\":");
        json_str(c, doc->err.msg, strlen(doc->err.msg));
        k = snprintf(t, sizeof(t), ",\"offset\":%llu}", (unsigned long long)doc->err.offset);
        PUT(c, t, (size_t)k);
    }
    PUTS(c, "}");
}

int et_wbxml_to_json(const struct et_wbxml_doc *doc, const struct et_wbxml_render_opts *opts,
                     struct et_buf *out)
{
    struct rctx c;
    memset(&c, 0, sizeof(c));
    c.out = out;
    c.o = opts != NULL ? opts : &default_ropts;
    c.saved_max = budget_begin(out, c.o, doc);
    json_doc(&c, doc);
    if (!c.o->compact)
        PUTS(&c, "\n");
    out->max = c.saved_max;
    return c.rc;
}

int et_wbxml_bytes_to_xml(const uint8_t *bytes, size_t len, const struct et_wbxml_opts *opts,
                          const struct et_wbxml_render_opts *ropts, struct et_buf *out,
                          struct et_error *err)
{
    struct et_wbxml_doc *doc = NULL;
    int rc = et_wbxml_decode(bytes, len, opts, &doc, err);
    int rrc;
    if (doc == NULL)
        return rc;
    rrc = et_wbxml_to_xml(doc, ropts, out);
    et_wbxml_doc_free(doc);
    return rc != 0 ? rc : rrc;
}
