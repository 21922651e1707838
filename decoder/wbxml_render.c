/*
 * XML and JSON renderings of a decoded WBXML tree. Everything is appended to one et_buf;
 * text runs are copied in spans between the characters that need escaping.
 *
 * XML namespace scheme (docs/wbxml.md): the root element carries xmlns="<Page>:" for its own
 * code page, and xmlns:<page>="<Page>:" (lower-case prefix) for every other page used in the
 * document; elements of the root's page are unprefixed, the others are prefixed.
 */
#include "eastrace/wbxml.h"

#include <stdio.h>
#include <string.h>

#include "eastrace/eas.h"
#include "wbxml_int.h"

static const char *const prefixes[ET_WBXML_PAGES] = {
    "airsync", "contacts", "email", "airnotify", "calendar", "move", "getitemestimate",
    "folderhierarchy", "meetingresponse", "tasks", "resolverecipients", "validatecert",
    "contacts2", "ping", "provision", "search", "gal", "airsyncbase", "settings",
    "documentlibrary", "itemoperations", "composemail", "email2", "notes", "rightsmanagement",
    "find",
};

const char *et__wbxml_prefix(unsigned page)
{
    return page < ET_WBXML_PAGES ? prefixes[page] : NULL;
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
};

#define PUT(c, s, n)                                                                           \
    do {                                                                                       \
        if ((c)->rc == 0)                                                                      \
            (c)->rc = et_buf_append((c)->out, (s), (n));                                       \
    } while (0)
#define PUTS(c, s) PUT(c, s, strlen(s))

/* Text that XML 1.0 can carry as character data: valid UTF-8 without C0 controls other
 * than tab, LF and CR. */
int et__wbxml_xml_safe(const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
            return 0;
        if (p[i] >= 0x80)
            return et_utf8_valid(p, n);
    }
    return 1;
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

static void put_indent(struct rctx *c, unsigned depth)
{
    static const char spaces[] = "                                                                ";
    unsigned n = depth * 2;
    if (c->o->compact || c->flat > 0)
        return;
    if (c->no_nl)
        c->no_nl = 0;
    else
        PUTS(c, "\n");
    while (n > 0) {
        unsigned k = n > 64 ? 64 : n;
        PUT(c, spaces, k);
        n -= k;
    }
}

static void put_hex2(struct rctx *c, unsigned v)
{
    char t[8];
    int k = snprintf(t, sizeof(t), "0x%02X", v & 0xFFu);
    PUT(c, t, (size_t)k);
}

static void put_name(struct rctx *c, const struct et_wbxml_node *n)
{
    if (n->name == NULL) {
        PUTS(c, "unknown page=\"");
        put_hex2(c, n->page);
        PUTS(c, "\" token=\"");
        put_hex2(c, n->token);
        PUTS(c, "\"");
        return;
    }
    if (n->page != c->root_page) {
        PUTS(c, prefixes[n->page]);
        PUTS(c, ":");
    }
    PUTS(c, n->name);
}

static void put_end_name(struct rctx *c, const struct et_wbxml_node *n)
{
    if (n->name == NULL) {
        PUTS(c, "unknown");
        return;
    }
    if (n->page != c->root_page) {
        PUTS(c, prefixes[n->page]);
        PUTS(c, ":");
    }
    PUTS(c, n->name);
}

static void render_doc(struct rctx *c, const struct et_wbxml_doc *doc, unsigned depth);

static void status_comment(struct rctx *c, const struct et_wbxml_node *n)
{
    const struct et_eas_status *s;
    long long v;
    char num[32];
    if (c->o->no_status_comments || n->name == NULL || strcmp(n->name, "Status") != 0)
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
        if (et__wbxml_xml_safe(n->data, n->len)) {
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
    PUTS(c, "<");
    put_name(c, n);
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
            PUTS(c, prefixes[p]);
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
        else
            render_leaf(c, k, depth + 1);
    }
    if (has_text)
        c->flat--;
    if (has_el)
        put_indent(c, depth);
    PUTS(c, "</");
    put_end_name(c, n);
    PUTS(c, ">");
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
            PUTS(c, prefixes[p]);
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

int et_wbxml_to_xml(const struct et_wbxml_doc *doc, const struct et_wbxml_render_opts *opts,
                    struct et_buf *out)
{
    struct rctx c;
    char t[160];

    memset(&c, 0, sizeof(c));
    c.out = out;
    c.o = opts != NULL ? opts : &default_ropts;
    c.root_page = 0xFFFF;
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
    json_doc(&c, doc);
    if (!c.o->compact)
        PUTS(&c, "\n");
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
