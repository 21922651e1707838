/*
 * Differential test against Debian's libwbxml (a test oracle only). libwbxml's public API
 * gives XML, with its own tag and namespace names, so the comparison is on what both must
 * agree on: the element structure (the depth of every element in document order) and the
 * text of every element. Only bodies that libwbxml decodes and whose pages it knows (not 25,
 * Find) are compared; opaque data is skipped since libwbxml renders it differently.
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wbxml_libwbxml_agrees_on_fixtures),
        cmocka_unit_test(test_wbxml_libwbxml_agrees_on_corpus),
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
