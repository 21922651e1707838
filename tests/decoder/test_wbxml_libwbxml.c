/*
 * Differential tests against Debian's libwbxml (a test oracle only).
 *
 * 1. Structure and text: libwbxml's XML (its own tag and namespace names) against our tree:
 *    the depth of every element in document order and the text of every element. Bodies with
 *    opaque data or page 25 (Find) are left out.
 *
 * 2. Page, token and content through libwbxml's own round trip, since Debian ships only its
 *    converter API (no tree):
 *
 *      original --wbxml2xml (ACTIVESYNC)--> XML --xml2wbxml--> libwbxml's WBXML
 *         |                                                         |
 *         +---- et_wbxml_decode ---> tree A      tree B <--- et_wbxml_decode
 *                                        \       /
 *                   node by node: element page and token, content bytes, same order
 *
 *    libwbxml chose every token of its re-encoding from its own tables, so a tag it names or
 *    maps differently from MS-ASWBXML (and from us) shows up as a page/token mismatch. Content
 *    is compared as bytes: text may come back as opaque or as base64 text (libwbxml's binary
 *    tags), and XML round trips turn CR LF into LF; those normalisations are counted. Bodies
 *    with page 25 or tokens libwbxml lacks (its XML holds unknown elements, or it fails) are
 *    skipped and counted. Known differences are in `allowed` below, each with its reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eastrace/wbxml.h"
#include "et_test.h"

#ifdef ET_HAVE_LIBWBXML
#include <wbxml/wbxml.h>
#include <wbxml/wbxml_conv.h>

#include "../../decoder/xml.h"

struct item {
    unsigned depth;
    char text[128]; /* text of the element, trimmed, truncated */
};

struct list {
    struct item v[4096];
    size_t n;
    int opaque; /* the body holds opaque data: not comparable */
    int page25;
};

static void trim_copy(char *dst, size_t cap, const uint8_t *s, size_t n)
{
    while (n > 0 && (s[0] == ' ' || s[0] == '\n' || s[0] == '\t' || s[0] == '\r')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' ||
                     s[n - 1] == '\r'))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static void ours(const struct et_wbxml_node *n, unsigned depth, struct list *l)
{
    for (; n != NULL; n = n->next) {
        if (n->type == ET_WBXML_OPAQUE)
            l->opaque = 1;
        if (n->type != ET_WBXML_ELEMENT)
            continue;
        if (n->page == 25)
            l->page25 = 1;
        if (l->n < ET_ARRAY_SIZE(l->v)) {
            struct item *it = &l->v[l->n++];
            size_t tl;
            const char *t = et_wbxml_node_text(n, &tl);
            it->depth = depth;
            trim_copy(it->text, sizeof(it->text), (const uint8_t *)t, tl);
        }
        ours(n->first_child, depth + 1, l);
    }
}

static int theirs(const char *xml, size_t len, struct list *l)
{
    struct et__xml x;
    struct et__xml_ev ev;
    struct et_error e;
    unsigned depth = 0;
    size_t cur[1024];
    et_error_clear(&e);
    et__xml_init(&x, xml, len, &e);
    for (;;) {
        if (et__xml_next(&x, &ev) != 0) {
            et__xml_free(&x);
            return -1;
        }
        if (ev.type == ET__XML_EOF)
            break;
        if (ev.type == ET__XML_START && l->n < ET_ARRAY_SIZE(l->v) && depth < 1024) {
            l->v[l->n].depth = depth;
            l->v[l->n].text[0] = '\0';
            cur[depth++] = l->n++;
        } else if (ev.type == ET__XML_END && depth > 0) {
            depth--;
        } else if ((ev.type == ET__XML_TEXT || ev.type == ET__XML_CDATA) && depth > 0) {
            struct item *it = &l->v[cur[depth - 1]];
            size_t have = strlen(it->text);
            char tmp[128];
            trim_copy(tmp, sizeof(tmp), ev.text.ptr, ev.text.len);
            snprintf(it->text + have, sizeof(it->text) - have, "%s", tmp);
        }
    }
    et__xml_free(&x);
    return 0;
}

/* libwbxml shows some binary-typed tags (ConversationId, ...) as base64. */
static int is_base64_of(const char *b64, const char *plain)
{
    struct et_buf t;
    int same;
    et_buf_init(&t, 0);
    if (et_base64_encode(&t, (const uint8_t *)plain, strlen(plain)) != 0) {
        et_buf_free(&t);
        return 0;
    }
    same = t.len > 0 && strncmp((const char *)t.data, b64, strlen(b64)) == 0;
    et_buf_free(&t);
    return same;
}

static int compare(const uint8_t *w, size_t n, const char *what)
{
    static struct list a, b;
    struct et_wbxml_doc *doc = NULL;
    WBXMLConvWBXML2XML *conv = NULL;
    WB_UTINY *xml = NULL;
    WB_ULONG xl = 0;
    WBXMLError werr;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    if (et_wbxml_decode(w, n, NULL, &doc, NULL) != 0) {
        et_wbxml_doc_free(doc);
        return 0;
    }
    ours(doc->root, 0, &a);
    et_wbxml_doc_free(doc);
    if (a.opaque || a.page25)
        return 0;
    if (wbxml_conv_wbxml2xml_create(&conv) != WBXML_OK)
        return 0;
    wbxml_conv_wbxml2xml_set_gen_type(conv, WBXML_GEN_XML_COMPACT);
    wbxml_conv_wbxml2xml_set_language(conv, WBXML_LANG_ACTIVESYNC);
    werr = wbxml_conv_wbxml2xml_run(conv, (WB_UTINY *)(uintptr_t)w, (WB_ULONG)n, &xml, &xl);
    wbxml_conv_wbxml2xml_destroy(conv);
    if (werr != WBXML_OK || xml == NULL) {
        free(xml);
        return 0;
    }
    if (theirs((const char *)xml, xl, &b) != 0) {
        free(xml);
        return 0;
    }
    free(xml);
    if (a.n != b.n)
        fail_msg("%s: %zu elements here, %zu in libwbxml", what, a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        if (a.v[i].depth != b.v[i].depth)
            fail_msg("%s: element %zu at depth %u here, %u in libwbxml", what, i, a.v[i].depth,
                     b.v[i].depth);
        if (strcmp(a.v[i].text, b.v[i].text) != 0 && !is_base64_of(b.v[i].text, a.v[i].text))
            fail_msg("%s: element %zu text '%s' here, '%s' in libwbxml", what, i, a.v[i].text,
                     b.v[i].text);
    }
    return 1;
}

static void test_wbxml_libwbxml_agrees_on_fixtures(void **s)
{
    static const char *names[] = {"foldersync-response-initial.wbxml",
                                  "sync-response-email.wbxml", "sync-response-invalid-synckey.wbxml",
                                  "ping-request-heartbeat.wbxml"};
    int compared = 0;
    (void)s;
    for (size_t i = 0; i < ET_ARRAY_SIZE(names); i++) {
        char rel[256];
        size_t n = 0;
        snprintf(rel, sizeof(rel), "wbxml/%s", names[i]);
        unsigned char *w = et_test_read_file(et_fixture(rel), &n);
        assert_non_null(w);
        compared += compare(w, n, names[i]);
        free(w);
    }
    assert_int_equal(compared, (int)ET_ARRAY_SIZE(names));
}

static void test_wbxml_libwbxml_agrees_on_corpus(void **s)
{
    DIR *top;
    struct dirent *de;
    int compared = 0, seen = 0;
    (void)s;
    ET_REQUIRE_CORPUS(dir, "syncgw-traces/extracted");
    top = opendir(dir);
    assert_non_null(top);
    while ((de = readdir(top)) != NULL) {
        char sub[8192];
        DIR *d;
        struct dirent *fe;
        if (de->d_name[0] == '.')
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
        if ((d = opendir(sub)) == NULL)
            continue;
        while ((fe = readdir(d)) != NULL) {
            char p[16384];
            size_t n = 0, l = strlen(fe->d_name);
            if (l < 6 || strcmp(fe->d_name + l - 6, ".wbxml") != 0)
                continue;
            snprintf(p, sizeof(p), "%s/%s", sub, fe->d_name);
            unsigned char *w = et_test_read_file(p, &n);
            assert_non_null(w);
            seen++;
            compared += compare(w, n, p);
            free(w);
        }
        closedir(d);
    }
    closedir(top);
    print_message("libwbxml: %d of %d bodies compared (others use opaque, page 25, or "
                  "libwbxml failed)\n", compared, seen);
    assert_true(compared > 0);
}

/* ---- 2. Round trip through libwbxml: page, token and content ----------------------------- */

/* Differences we know and accept, by the element where they show (page, token of our tree;
 * token 0 matches any token of the page), the comparison ("round trip" or "our XML") and the
 * kind of difference ("token", "content", "missing", "extra"). */
struct allowed_diff {
    unsigned page, token;
    const char *via;
    const char *what;
    const char *reason;
};
static const struct allowed_diff allowed[] = {
    {16, 0, "our XML", "token",
     "libwbxml names code page 16 \"Gal:\", MS-ASWBXML and we \"GAL:\"; libwbxml ignores the "
     "namespace it does not know and takes the first page with the same tag name "
     "(Email:DisplayName, Contacts:FirstName, ResolveRecipients:EmailAddress, ...)"},
};

struct rt_counts {
    int compared, agreed, allowed, disagreed;
};

struct rt_stats {
    int seen;
    struct rt_counts rt;  /* original vs libwbxml's wbxml2xml + xml2wbxml */
    struct rt_counts enc; /* original vs libwbxml's xml2wbxml of our XML */
    int skip_ours, skip_page25, skip_lib_fail, skip_lib_unknown, skip_lib_reencode;
    int skip_enc_binary, skip_enc_fail;
    int ws_normalised, base64_normalised, opaque_text;
};

struct rt_ctx {
    const char *body;
    const char *via; /* "round trip" or "our XML" */
    char path[1024];
    int diffs, unallowed;
    struct rt_stats *st;
};

static const char *allowed_reason(unsigned page, unsigned token, const char *via,
                                  const char *what)
{
    for (size_t i = 0; i < ET_ARRAY_SIZE(allowed); i++)
        if (allowed[i].page == page && strcmp(allowed[i].via, via) == 0 &&
            (allowed[i].token == 0 || allowed[i].token == token) &&
            strcmp(allowed[i].what, what) == 0)
            return allowed[i].reason;
    return NULL;
}

static void rt_diff(struct rt_ctx *c, const struct et_wbxml_node *a, const char *what,
                    const char *fmt, ...) ET_PRINTF(4, 5);
static void rt_diff(struct rt_ctx *c, const struct et_wbxml_node *a, const char *what,
                    const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    const char *why = allowed_reason(a->page, a->token, c->via, what);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->diffs++;
    if (why == NULL)
        c->unallowed++;
    if (c->diffs <= 6)
        print_message("  %s (%s): %s %s: %s%s%s%s\n", c->body, c->via, c->path, what, msg,
                      why ? " [allowed: " : "", why ? why : "", why ? "]" : "");
}

/* Bytes of an element's direct text and opaque children; *kind: 0 none, 1 text only,
 * 2 opaque only, 3 both. */
static void content_of(const struct et_wbxml_node *e, struct et_buf *out, int *kind)
{
    *kind = 0;
    for (const struct et_wbxml_node *n = e->first_child; n != NULL; n = n->next) {
        if (n->type == ET_WBXML_ELEMENT)
            continue;
        *kind |= n->type == ET_WBXML_OPAQUE ? 2 : 1;
        et_buf_append(out, n->data, n->len);
    }
}

/* CR LF to LF and blanks trimmed at both ends: what an XML round trip may do to text. */
static void normalise_ws(struct et_buf *b)
{
    size_t i = 0, j = 0, start = 0, end;
    for (; i < b->len; i++)
        if (!(b->data[i] == '\r' && i + 1 < b->len && b->data[i + 1] == '\n'))
            b->data[j++] = b->data[i];
    end = j;
    while (start < end && strchr(" \t\r\n", b->data[start]) != NULL)
        start++;
    while (end > start && strchr(" \t\r\n", b->data[end - 1]) != NULL)
        end--;
    memmove(b->data, b->data + start, end - start);
    b->len = end - start;
}

static int same_bytes(const struct et_buf *a, const struct et_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* 1 when text (base64, whitespace allowed) decodes to exactly the bytes of raw. */
static int base64_of(const struct et_buf *text, const struct et_buf *raw)
{
    struct et_buf d;
    struct et_error e;
    int same = 0;
    if (text->len == 0)
        return 0;
    et_buf_init(&d, 0);
    et_error_clear(&e);
    if (et_base64_decode(&d, (const char *)text->data, text->len, &e) == 0)
        same = same_bytes(&d, raw);
    et_buf_free(&d);
    return same;
}

static void snippet(char *dst, size_t cap, const struct et_buf *b)
{
    size_t k = 0;
    for (size_t i = 0; i < b->len && k + 5 < cap; i++) {
        unsigned char ch = b->data[i];
        if (ch >= 0x20 && ch < 0x7f) {
            dst[k++] = (char)ch;
        } else {
            snprintf(dst + k, cap - k, "\\x%02x", ch);
            k += 4;
        }
    }
    if (b->len > 0 && k + 5 >= cap && cap > 4)
        memcpy(dst + cap - 4, "...", 4);
    else
        dst[k] = '\0';
}

static void rt_compare_content(struct rt_ctx *c, const struct et_wbxml_node *a,
                               const struct et_wbxml_node *b)
{
    struct et_buf ca, cb;
    int ka, kb;
    et_buf_init(&ca, 0);
    et_buf_init(&cb, 0);
    content_of(a, &ca, &ka);
    content_of(b, &cb, &kb);
    if (ka != kb && (ka | kb) == 3)
        c->st->opaque_text++;
    if (!same_bytes(&ca, &cb)) {
        if (base64_of(&cb, &ca) || base64_of(&ca, &cb)) {
            c->st->base64_normalised++;
        } else {
            normalise_ws(&ca);
            normalise_ws(&cb);
            if (same_bytes(&ca, &cb)) {
                c->st->ws_normalised++;
            } else {
                char sa[80], sb[80];
                snippet(sa, sizeof(sa), &ca);
                snippet(sb, sizeof(sb), &cb);
                rt_diff(c, a, "content", "%zu bytes '%s' here, %zu bytes '%s' after libwbxml",
                        ca.len, sa, cb.len, sb);
            }
        }
    }
    et_buf_free(&ca);
    et_buf_free(&cb);
}

static void rt_compare(struct rt_ctx *c, const struct et_wbxml_node *a,
                       const struct et_wbxml_node *b)
{
    size_t plen = strlen(c->path);
    unsigned i = 0;
    for (; a != NULL && b != NULL; a = et_wbxml_next_element(a), b = et_wbxml_next_element(b)) {
        i++;
        snprintf(c->path + plen, sizeof(c->path) - plen, "/%s[%u](%u:0x%02x)",
                 a->name ? a->name : "?", i, a->page, a->token);
        if (a->page != b->page || a->token != b->token) {
            rt_diff(c, a, "token", "page %u token 0x%02x (%s:%s) here, page %u token 0x%02x "
                    "(%s:%s) after libwbxml", a->page, a->token, a->ns ? a->ns : "?",
                    a->name ? a->name : "?", b->page, b->token, b->ns ? b->ns : "?",
                    b->name ? b->name : "?");
            continue;
        }
        rt_compare_content(c, a, b);
        rt_compare(c, et_wbxml_first_element(a), et_wbxml_first_element(b));
    }
    if (a != NULL || b != NULL) {
        const struct et_wbxml_node *x = a ? a : b;
        snprintf(c->path + plen, sizeof(c->path) - plen, "/%s[%u]", x->name ? x->name : "?",
                 i + 1);
        rt_diff(c, x, a ? "missing" : "extra", "element %s:%s (page %u token 0x%02x) %s",
                x->ns ? x->ns : "?", x->name ? x->name : "?", x->page, x->token,
                a ? "dropped by libwbxml" : "added by libwbxml");
    }
    c->path[plen] = '\0';
}

static int uses_page25(const struct et_wbxml_node *n)
{
    for (; n != NULL; n = n->next) {
        if (n->type == ET_WBXML_ELEMENT && (n->page >= 25 || uses_page25(n->first_child)))
            return 1;
    }
    return 0;
}

/* Compares tree a (the original) with b (libwbxml's encoding) and counts the outcome. */
static void rt_docs(const struct et_wbxml_doc *a, const struct et_wbxml_doc *b,
                    const char *what, const char *via, struct rt_stats *st,
                    struct rt_counts *k)
{
    struct rt_ctx c;
    memset(&c, 0, sizeof(c));
    c.body = what;
    c.via = via;
    c.st = st;
    k->compared++;
    rt_compare(&c, a->root, b->root);
    if (c.diffs == 0)
        k->agreed++;
    else if (c.unallowed == 0)
        k->allowed++;
    else
        k->disagreed++;
}

/* 1 when an opaque node anywhere holds bytes that are not UTF-8 text: our XML shows them as
 * base64 in a comment, which only our encoder reads back. */
static int has_binary_opaque(const struct et_wbxml_node *n)
{
    for (; n != NULL; n = n->next) {
        if (n->type == ET_WBXML_OPAQUE) {
            for (size_t i = 0; i < n->len; i++)
                if (n->data[i] == 0 || (n->data[i] < 0x20 && !strchr("\t\r\n", n->data[i])))
                    return 1;
        }
        if (n->type == ET_WBXML_ELEMENT && has_binary_opaque(n->first_child))
            return 1;
    }
    return 0;
}

/* libwbxml's XML to WBXML converter, configured for EAS: no string table, no public id,
 * whitespace kept. *out is malloc()ed; NULL on failure. */
static WB_UTINY *lib_xml2wbxml(const WB_UTINY *xml, size_t xl, WB_ULONG *wl,
                               WBXMLError *err)
{
    WBXMLConvXML2WBXML *c2 = NULL;
    WB_UTINY *w2 = NULL;
    if (wbxml_conv_xml2wbxml_create(&c2) != WBXML_OK)
        fail_msg("libwbxml: out of memory");
    wbxml_conv_xml2wbxml_enable_preserve_whitespaces(c2);
    wbxml_conv_xml2wbxml_disable_string_table(c2);
    wbxml_conv_xml2wbxml_disable_public_id(c2);
    if ((*err = wbxml_conv_xml2wbxml_run(c2, (WB_UTINY *)(uintptr_t)xml, (WB_ULONG)xl, &w2,
                                         wl)) != WBXML_OK) {
        free(w2);
        w2 = NULL;
    }
    wbxml_conv_xml2wbxml_destroy(c2);
    return w2;
}

/* One body through libwbxml and back; updates st. */
static void roundtrip(const uint8_t *w, size_t n, const char *what, struct rt_stats *st)
{
    struct et_wbxml_opts o = {.no_nested = 1, .any_publicid = 1};
    struct et_wbxml_doc *a = NULL, *b = NULL;
    struct et_wbxml_doc *d = NULL;
    WBXMLConvWBXML2XML *c1 = NULL;
    WB_UTINY *xml = NULL, *w2 = NULL, *w3 = NULL;
    WB_ULONG xl = 0, wl = 0, wl3 = 0;
    WBXMLError werr = WBXML_OK;
    struct et_buf ox;
    et_buf_init(&ox, 0);

    st->seen++;
    if (et_wbxml_decode(w, n, &o, &a, NULL) != 0 || a->root == NULL) {
        st->skip_ours++; /* truncated or malformed on purpose: libwbxml may crash on it */
        goto out;
    }
    if (uses_page25(a->root)) {
        st->skip_page25++;
        goto out;
    }
    if (wbxml_conv_wbxml2xml_create(&c1) != WBXML_OK)
        fail_msg("libwbxml: out of memory");
    wbxml_conv_wbxml2xml_set_gen_type(c1, WBXML_GEN_XML_COMPACT);
    wbxml_conv_wbxml2xml_set_language(c1, WBXML_LANG_ACTIVESYNC);
    wbxml_conv_wbxml2xml_enable_preserve_whitespaces(c1);
    if (wbxml_conv_wbxml2xml_run(c1, (WB_UTINY *)(uintptr_t)w, (WB_ULONG)n, &xml, &xl) !=
            WBXML_OK || xml == NULL) {
        st->skip_lib_fail++;
        goto out;
    }
    if (memmem(xml, xl, "<unknown", 8) != NULL || memmem(xml, xl, ":unknown", 8) != NULL) {
        st->skip_lib_unknown++;
        goto out;
    }
    if ((w2 = lib_xml2wbxml(xml, xl, &wl, &werr)) == NULL) {
        st->skip_lib_reencode++;
        print_message("  %s: libwbxml cannot re-encode its own XML (%s): skipped\n", what,
                      (const char *)wbxml_errors_string(werr));
    } else {
        if (et_wbxml_decode(w2, wl, &o, &b, NULL) != 0 || b->root == NULL)
            fail_msg("%s: libwbxml's re-encoding (%lu bytes) does not decode here: %s", what,
                     (unsigned long)wl, b ? b->err.msg : "out of memory");
        rt_docs(a, b, what, "round trip", st, &st->rt);
    }
    /* The other direction: our XML, with our names, encoded by libwbxml's tables. */
    if (has_binary_opaque(a->root)) {
        st->skip_enc_binary++;
        goto out;
    }
    {
        /* libwbxml picks its language from the DOCTYPE (or a few root names it knows). */
        struct et_wbxml_render_opts ro = {.compact = 1, .no_status_comments = 1,
                                          .no_declaration = 1};
        et_buf_puts(&ox, "<?xml version=\"1.0\"?><!DOCTYPE ActiveSync PUBLIC \"-//MICROSOFT//"
                         "DTD ActiveSync//EN\" \"http://www.microsoft.com/\">");
        assert_int_equal(et_wbxml_to_xml(a, &ro, &ox), 0);
    }
    if ((w3 = lib_xml2wbxml(ox.data, ox.len, &wl3, &werr)) == NULL) {
        /* Mostly "can't encode Literal": a tag libwbxml knows under another name. */
        st->skip_enc_fail++;
        print_message("  %s: libwbxml cannot encode our XML (%s): skipped\n", what,
                      (const char *)wbxml_errors_string(werr));
        goto out;
    }
    if (et_wbxml_decode(w3, wl3, &o, &d, NULL) != 0 || d->root == NULL)
        fail_msg("%s: libwbxml's encoding of our XML (%lu bytes) does not decode here: %s",
                 what, (unsigned long)wl3, d ? d->err.msg : "out of memory");
    rt_docs(a, d, what, "our XML", st, &st->enc);
out:
    if (c1 != NULL)
        wbxml_conv_wbxml2xml_destroy(c1);
    free(xml); /* libwbxml allocates its output with malloc() */
    free(w2);
    free(w3);
    et_buf_free(&ox);
    et_wbxml_doc_free(a);
    et_wbxml_doc_free(b);
    et_wbxml_doc_free(d);
}

static void rt_report(const char *set, const struct rt_stats *st)
{
    print_message("libwbxml, %s: %d bodies; skipped: %d page 25, %d unknown to libwbxml, %d "
                  "libwbxml failed, %d not decodable here\n"
                  "  round trip (wbxml2xml+xml2wbxml): %d compared, %d agree, %d differ only as "
                  "allowed, %d disagree, %d not re-encodable by libwbxml\n"
                  "  our XML via xml2wbxml: %d compared, %d agree, %d differ only as allowed, "
                  "%d disagree, %d skipped (binary opaque), %d refused by libwbxml\n"
                  "  normalised: %d CR LF/blank, %d base64, %d text<->opaque\n",
                  set, st->seen, st->skip_page25, st->skip_lib_unknown, st->skip_lib_fail,
                  st->skip_ours, st->rt.compared, st->rt.agreed, st->rt.allowed,
                  st->rt.disagreed, st->skip_lib_reencode, st->enc.compared, st->enc.agreed,
                  st->enc.allowed, st->enc.disagreed, st->skip_enc_binary, st->skip_enc_fail,
                  st->ws_normalised, st->base64_normalised, st->opaque_text);
}

/* Every *.wbxml in dir (and, when sub, in its subdirectories). */
static void roundtrip_dir(const char *dir, int sub, struct rt_stats *st)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        char p[8192];
        size_t n = 0, l = strlen(de->d_name);
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        if (sub) {
            struct stat sb;
            if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
                roundtrip_dir(p, 0, st);
            continue;
        }
        if (l < 6 || strcmp(de->d_name + l - 6, ".wbxml") != 0)
            continue;
        unsigned char *w = et_test_read_file(p, &n);
        assert_non_null(w);
        roundtrip(w, n, p, st);
        free(w);
    }
    closedir(d);
}

static void test_wbxml_libwbxml_roundtrip_fixtures(void **s)
{
    struct rt_stats st;
    (void)s;
    memset(&st, 0, sizeof(st));
    roundtrip_dir(et_fixture("wbxml"), 0, &st);
    rt_report("tests/fixtures/wbxml", &st);
    /* Pages 0-24 fixtures: FolderSync, Sync (2), Ping, SendMail, ItemOperations, nested. */
    assert_true(st.rt.compared >= 5);
    assert_true(st.enc.compared >= 5);
    assert_int_equal(st.rt.disagreed + st.enc.disagreed, 0);
}

static void test_wbxml_libwbxml_roundtrip_syncgw(void **s)
{
    struct rt_stats st;
    (void)s;
    ET_REQUIRE_CORPUS(dir, "syncgw-traces/extracted");
    memset(&st, 0, sizeof(st));
    roundtrip_dir(dir, 1, &st);
    rt_report("syncgw-traces", &st);
    assert_true(st.rt.compared > 0 && st.enc.compared > 0);
    assert_int_equal(st.rt.disagreed + st.enc.disagreed, 0);
}

static void test_wbxml_libwbxml_roundtrip_pywbxmldecoder(void **s)
{
    struct rt_stats st;
    (void)s;
    ET_REQUIRE_CORPUS(dir, "pywbxmldecoder");
    memset(&st, 0, sizeof(st));
    roundtrip_dir(dir, 0, &st);
    rt_report("pywbxmldecoder", &st);
    assert_true(st.rt.compared > 0 && st.enc.compared > 0);
    assert_int_equal(st.rt.disagreed + st.enc.disagreed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wbxml_libwbxml_agrees_on_fixtures),
        cmocka_unit_test(test_wbxml_libwbxml_agrees_on_corpus),
        cmocka_unit_test(test_wbxml_libwbxml_roundtrip_fixtures),
        cmocka_unit_test(test_wbxml_libwbxml_roundtrip_syncgw),
        cmocka_unit_test(test_wbxml_libwbxml_roundtrip_pywbxmldecoder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
static void test_wbxml_libwbxml_absent(void **s)
{
    (void)s;
    print_message("libwbxml2 not found by pkg-config: differential test skipped\n");
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_wbxml_libwbxml_absent)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
