/* WBXML decoder, renderer, tree API and encoder: golden fixtures, corpus, caps, failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eastrace/wbxml.h"
#include "et_test.h"

static unsigned char *fixture(const char *name, size_t *len)
{
    char rel[256];
    unsigned char *d;
    snprintf(rel, sizeof(rel), "wbxml/%s", name);
    d = et_test_read_file(et_fixture(rel), len);
    assert_non_null(d);
    return d;
}

static struct et_wbxml_doc *decode_ok(const unsigned char *b, size_t n)
{
    struct et_wbxml_doc *doc = NULL;
    struct et_error e;
    et_error_clear(&e);
    int rc = et_wbxml_decode(b, n, NULL, &doc, &e);
    if (rc != 0)
        print_message("decode error: %s\n", e.msg);
    assert_int_equal(rc, 0);
    assert_non_null(doc);
    return doc;
}

/* Renders fixture NAME.wbxml and compares with NAME.xml; then encodes the XML back. */
static void golden(const char *name, int expect_rc, int byte_identical)
{
    char fn[256];
    size_t wl, xl;
    unsigned char *w, *x;
    struct et_wbxml_doc *doc = NULL;
    struct et_buf out, enc;
    struct et_error e;

    snprintf(fn, sizeof(fn), "%s.wbxml", name);
    w = fixture(fn, &wl);
    snprintf(fn, sizeof(fn), "%s.xml", name);
    x = fixture(fn, &xl);
    et_error_clear(&e);
    assert_int_equal(et_wbxml_decode(w, wl, NULL, &doc, &e), expect_rc);
    assert_non_null(doc);
    et_buf_init(&out, 0);
    assert_int_equal(et_wbxml_to_xml(doc, NULL, &out), 0);
    if (out.len != xl || memcmp(out.data, x, xl) != 0)
        print_message("%s: got\n%.*s\n", name, (int)out.len, (const char *)out.data);
    assert_int_equal(out.len, xl);
    assert_memory_equal(out.data, x, xl);
    if (expect_rc == 0) {
        et_buf_init(&enc, 0);
        assert_int_equal(et_wbxml_encode((const char *)out.data, out.len, &enc, &e), 0);
        if (byte_identical) {
            assert_int_equal(enc.len, wl);
            assert_memory_equal(enc.data, w, wl);
        }
        et_buf_reset(&enc);
        /* The tree itself always re-encodes to the same bytes. */
        assert_int_equal(et_wbxml_encode_doc(doc, &enc), 0);
        assert_int_equal(enc.len, wl);
        assert_memory_equal(enc.data, w, wl);
        et_buf_free(&enc);
    }
    et_buf_free(&out);
    et_wbxml_doc_free(doc);
    free(w);
    free(x);
}

static void test_wbxml_golden_foldersync(void **s)
{
    (void)s;
    golden("foldersync-response-initial", 0, 1);
}

static void test_wbxml_golden_find_request_gal(void **s)
{
    (void)s;
    golden("find-request-gal", 0, 1);
}

static void test_wbxml_golden_find_response(void **s)
{
    (void)s;
    golden("find-response", 0, 1);
}

static void test_wbxml_golden_sendmail_mime_opaque(void **s)
{
    (void)s;
    golden("sendmail-mime-opaque", 0, 1);
}

static void test_wbxml_golden_binary_opaque_base64(void **s)
{
    (void)s;
    golden("itemoperations-fetch-binary-opaque", 0, 1);
}

static void test_wbxml_golden_status_comment(void **s)
{
    (void)s;
    golden("sync-response-invalid-synckey", 0, 1);
}

static void test_wbxml_golden_sync_email(void **s)
{
    (void)s;
    golden("sync-response-email", 0, 1);
}

static void test_wbxml_golden_nested_wbxml(void **s)
{
    (void)s;
    golden("nested-wbxml-opaque", 0, 1);
}

static void test_wbxml_golden_unknown_tokens(void **s)
{
    (void)s;
    golden("unknown-token-and-page", 0, 1);
}

static void test_wbxml_golden_string_table(void **s)
{
    (void)s;
    /* STR_T becomes STR_I in XML: only the tree re-encodes byte for byte. */
    golden("strtbl-str-t-entity", 0, 0);
    golden("string-publicid", 0, 0);
}

static void test_wbxml_golden_truncated_keeps_partial(void **s)
{
    (void)s;
    golden("truncated-sync-response", ET_ETRUNC, 0);
}

static void test_wbxml_truncated_error_offset(void **s)
{
    size_t n;
    unsigned char *w = fixture("sync-response-email.wbxml", &n);
    (void)s;
    for (size_t cut = 0; cut < n; cut++) {
        struct et_wbxml_doc *doc = NULL;
        struct et_error e;
        et_error_clear(&e);
        int rc = et_wbxml_decode(w, cut, NULL, &doc, &e);
        assert_int_equal(rc, ET_ETRUNC);
        assert_int_equal(e.code, ET_ETRUNC);
        assert_true(e.has_offset);
        assert_true(e.offset <= cut);
        assert_true(e.msg[0] != '\0');
        et_wbxml_doc_free(doc);
    }
    free(w);
}

static void test_wbxml_code_pages(void **s)
{
    (void)s;
    assert_string_equal(et_wbxml_page_name(0), "AirSync");
    assert_string_equal(et_wbxml_page_name(3), "AirNotify");
    assert_string_equal(et_wbxml_page_name(25), "Find");
    assert_null(et_wbxml_page_name(26));
    assert_string_equal(et_wbxml_tag_name(25, 0x05), "Find");
    assert_string_equal(et_wbxml_tag_name(25, 0x19), "GALSearchCriterion");
    assert_string_equal(et_wbxml_tag_name(25, 0x22), "Picture");
    /* Deprecated tokens of old devices. */
    assert_string_equal(et_wbxml_tag_name(0, 0x19), "Truncation");
    assert_string_equal(et_wbxml_tag_name(2, 0x05), "Attachment");
    assert_string_equal(et_wbxml_tag_name(0, 0x29), "HeartbeatInterval");
    assert_null(et_wbxml_tag_name(25, 0x0F));
    assert_int_equal(et_wbxml_page_by_name("AirSyncBase:", 12), 17);
    assert_int_equal(et_wbxml_page_by_name("airsyncbase", 11), 17);
    assert_int_equal(et_wbxml_page_by_name("POOMMAIL", 8), -1);
    assert_int_equal(et_wbxml_token_by_name(13, "HeartbeatInterval", 17), 0x08);
    for (unsigned p = 0; p < ET_WBXML_PAGES; p++)
        for (unsigned t = 5; t < 64; t++) {
            const char *nm = et_wbxml_tag_name(p, t);
            int tk;
            if (nm == NULL)
                continue;
            /* A few names occur twice on a page (an old and a new token): first wins. */
            tk = et_wbxml_token_by_name(p, nm, strlen(nm));
            assert_true(tk >= 5 && tk <= (int)t);
            assert_string_equal(et_wbxml_tag_name(p, (unsigned)tk), nm);
        }
}

static void test_wbxml_tree_queries(void **s)
{
    size_t n;
    unsigned char *w = fixture("sync-response-email.wbxml", &n);
    struct et_wbxml_doc *doc = decode_ok(w, n);
    struct et_wbxml_iter it;
    const struct et_wbxml_node *c, *k;
    long long v;
    int count = 0;
    (void)s;

    assert_true(et_wbxml_node_is(doc->root, "AirSync", "Sync"));
    et_wbxml_iter_init(&it, doc->root, "Collections/Collection");
    while ((c = et_wbxml_iter_next(&it)) != NULL) {
        assert_int_equal(et_wbxml_find_int(c, "Status", &v), 0);
        assert_int_equal(v, 1);
        assert_non_null(et_wbxml_find(c, "AirSync:SyncKey"));
        count++;
    }
    assert_int_equal(count, 2);
    assert_int_equal(et_wbxml_find_int(doc->root, "Collections/Collection/SyncKey", &v), 0);
    assert_int_equal(v, 1034712963);
    /* Anywhere, with and without namespace. */
    count = 0;
    et_wbxml_iter_init(&it, doc->root, "//AirSync:Status");
    while (et_wbxml_iter_next(&it) != NULL)
        count++;
    assert_int_equal(count, 2);
    assert_null(et_wbxml_find(doc->root, "//Email:Status"));
    k = et_wbxml_find(doc->root, "//airsyncbase:Data");
    assert_null(k); /* namespaces are matched by their name, case-sensitive */
    k = et_wbxml_find(doc->root, "//AirSyncBase:Data");
    assert_non_null(k);
    assert_string_equal(et_wbxml_node_text(k, NULL), "Line one\nLine two\ttabbed");
    k = et_wbxml_find(doc->root, "//Email:Subject");
    assert_string_equal(et_wbxml_node_text(k, &n), "Ünïcödé ✓");
    assert_int_equal(et_wbxml_node_int(k, &v), ET_EPARSE);
    assert_int_equal(et_wbxml_find_int(doc->root, "Nope", &v), ET_ENOTFOUND);
    /* Navigation. */
    c = et_wbxml_first_element(doc->root);
    assert_true(et_wbxml_node_is(c, NULL, "Collections"));
    assert_null(et_wbxml_next_element(c));
    c = et_wbxml_first_element(c);
    assert_true(et_wbxml_node_is(et_wbxml_next_element(c), "AirSync", "Collection"));
    et_wbxml_doc_free(doc);
    free(w);

    w = fixture("ping-request-heartbeat.wbxml", &n);
    doc = decode_ok(w, n);
    assert_int_equal(et_wbxml_find_int(doc->root, "Ping:HeartbeatInterval", &v), 0);
    assert_int_equal(v, 3540);
    et_wbxml_doc_free(doc);
    free(w);
}

static void test_wbxml_json_shape(void **s)
{
    size_t n;
    unsigned char *w = fixture("sync-response-invalid-synckey.wbxml", &n);
    struct et_wbxml_doc *doc = decode_ok(w, n);
    struct et_buf j;
    (void)s;
    et_buf_init(&j, 0);
    assert_int_equal(et_wbxml_to_json(doc, NULL, &j), 0);
    assert_non_null(strstr((char *)j.data, "\"version\":\"1.3\""));
    assert_non_null(strstr((char *)j.data,
                           "{\"ns\":\"AirSync\",\"name\":\"Sync\",\"page\":0,\"token\":5,"));
    assert_non_null(strstr((char *)j.data, "\"status\":{\"code\":3,\"name\":\"InvalidSyncKey\""));
    assert_non_null(strstr((char *)j.data, "{\"text\":\"3\"}"));
    et_buf_free(&j);
    et_wbxml_doc_free(doc);
    free(w);
}

/* Feeding one byte at a time must give the same rendering as one call. */
static void split_feed_same(const unsigned char *w, size_t n, size_t step)
{
    struct et_wbxml_decoder d;
    struct et_wbxml_doc *a = NULL, *b = NULL;
    struct et_buf x1, x2;
    int rc1, rc2 = ET_EAGAIN;
    size_t i;

    rc1 = et_wbxml_decode(w, n, NULL, &a, NULL);
    assert_int_equal(et_wbxml_init(&d, NULL), 0);
    for (i = 0; i < n; i += step) {
        const uint8_t *p = w + i, *end = w + (i + step < n ? i + step : n);
        rc2 = et_wbxml_feed(&d, &p, end);
        assert_ptr_equal(p, end);
        if (rc2 != ET_EAGAIN && rc2 != 0)
            break;
    }
    rc2 = et_wbxml_finish(&d, &b);
    et_wbxml_free(&d);
    if (rc1 != rc2)
        print_message("step %zu: %s / %s\n", step, a->err.msg, b->err.msg);
    assert_int_equal(rc1, rc2);
    et_buf_init(&x1, 0);
    et_buf_init(&x2, 0);
    et_wbxml_to_xml(a, NULL, &x1);
    et_wbxml_to_xml(b, NULL, &x2);
    assert_int_equal(x1.len, x2.len);
    assert_memory_equal(x1.data, x2.data, x1.len);
    assert_int_equal(a->nodes, b->nodes);
    et_buf_free(&x1);
    et_buf_free(&x2);
    et_wbxml_doc_free(a);
    et_wbxml_doc_free(b);
}

static void test_wbxml_split_feed_one_byte(void **s)
{
    static const char *names[] = {
        "sync-response-email.wbxml", "sendmail-mime-opaque.wbxml", "nested-wbxml-opaque.wbxml",
        "strtbl-str-t-entity.wbxml", "truncated-sync-response.wbxml",
        "find-response.wbxml",       "itemoperations-fetch-binary-opaque.wbxml",
    };
    (void)s;
    for (size_t i = 0; i < ET_ARRAY_SIZE(names); i++) {
        size_t n;
        unsigned char *w = fixture(names[i], &n);
        split_feed_same(w, n, 1);
        split_feed_same(w, n, 3);
        split_feed_same(w, n, 17);
        free(w);
    }
}

static void test_wbxml_depth_cap(void **s)
{
    unsigned char b[4 + 1000];
    struct et_wbxml_doc *doc = NULL;
    struct et_error e;
    struct et_wbxml_opts o = {0};
    size_t n = 0;
    (void)s;
    b[n++] = 3;
    b[n++] = 1;
    b[n++] = 0x6a;
    b[n++] = 0;
    while (n < sizeof(b))
        b[n++] = 0x5C; /* Collections with content, over and over */
    et_error_clear(&e);
    assert_int_equal(et_wbxml_decode(b, n, NULL, &doc, &e), ET_ETOOBIG);
    assert_non_null(strstr(e.msg, "deeper than 256"));
    assert_int_equal(e.offset, 4 + 256);
    et_wbxml_doc_free(doc);
    o.max_depth = 10;
    assert_int_equal(et_wbxml_decode(b, n, &o, &doc, &e), ET_ETOOBIG);
    et_wbxml_doc_free(doc);
}

static void test_wbxml_node_and_output_caps(void **s)
{
    size_t n;
    unsigned char *w = fixture("sync-response-email.wbxml", &n);
    struct et_wbxml_doc *doc = NULL;
    struct et_wbxml_opts o = {0};
    struct et_buf out;
    struct et_error e;
    (void)s;
    o.max_nodes = 5;
    et_error_clear(&e);
    assert_int_equal(et_wbxml_decode(w, n, &o, &doc, &e), ET_ETOOBIG);
    assert_int_equal(doc->nodes, 5);
    et_wbxml_doc_free(doc);
    doc = decode_ok(w, n);
    et_buf_init(&out, 100);
    assert_int_equal(et_wbxml_to_xml(doc, NULL, &out), ET_ETOOBIG);
    assert_true(out.len <= 100);
    et_buf_free(&out);
    et_wbxml_doc_free(doc);
    free(w);
}

static void test_wbxml_refusals(void **s)
{
    static const struct {
        const char *what;
        unsigned char b[16];
        size_t n;
        int rc;
        const char *msg;
    } cases[] = {
        {"attributes", {3, 1, 0x6a, 0, 0xC5, 1, 1}, 7, ET_EUNSUPPORTED, "attributes"},
        {"EXT_I_0", {3, 1, 0x6a, 0, 0x45, 0x40, 'a', 0, 1}, 9, ET_EUNSUPPORTED, "EXT_"},
        {"PI", {3, 1, 0x6a, 0, 0x45, 0x43, 1}, 7, ET_EUNSUPPORTED, "processing"},
        {"LITERAL", {3, 1, 0x6a, 0, 0x04, 0}, 6, ET_EUNSUPPORTED, "LITERAL"},
        {"charset", {3, 1, 4, 0, 0x45, 1}, 6, ET_EUNSUPPORTED, "charset"},
        {"publicid", {3, 5, 0x6a, 0, 0x45, 1}, 6, ET_EUNSUPPORTED, "public id"},
        {"stray END", {3, 1, 0x6a, 0, 0x01}, 5, ET_EPARSE, "END"},
        {"trailing", {3, 1, 0x6a, 0, 0x05, 0x05}, 6, ET_EPARSE, "trailing"},
        {"STR_T", {3, 1, 0x6a, 0, 0x45, 0x83, 7, 1}, 8, ET_EPARSE, "string table"},
        {"mb overflow", {3, 1, 0x6a, 0, 0x45, 0xC3, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, 11, ET_EPARSE,
         "32 bits"},
        {"text at top", {3, 1, 0x6a, 0, 0x03, 'a', 0}, 7, ET_EPARSE, "outside"},
    };
    (void)s;
    for (size_t i = 0; i < ET_ARRAY_SIZE(cases); i++) {
        struct et_wbxml_doc *doc = NULL;
        struct et_error e;
        et_error_clear(&e);
        int rc = et_wbxml_decode(cases[i].b, cases[i].n, NULL, &doc, &e);
        if (rc != cases[i].rc || strstr(e.msg, cases[i].msg) == NULL)
            print_message("%s: rc %d msg %s\n", cases[i].what, rc, e.msg);
        assert_int_equal(rc, cases[i].rc);
        assert_non_null(strstr(e.msg, cases[i].msg));
        assert_true(e.has_offset);
        et_wbxml_doc_free(doc);
    }
}

static void test_wbxml_alloc_failure(void **s)
{
    size_t n;
    unsigned char *w = fixture("nested-wbxml-opaque.wbxml", &n);
    (void)s;
    for (long k = 1; k < 1000; k++) {
        struct et_wbxml_doc *doc = NULL;
        struct et_buf out, enc;
        int rc, rrc = 0, erc = 0;
        et_alloc_fail_after(k);
        rc = et_wbxml_decode(w, n, NULL, &doc, NULL);
        et_buf_init(&out, 0);
        et_buf_init(&enc, 0);
        if (doc != NULL) {
            rrc = et_wbxml_to_xml(doc, NULL, &out);
            if (rrc == 0)
                erc = et_wbxml_encode((const char *)out.data, out.len, &enc, NULL);
        }
        et_alloc_fail_after(-1);
        et_buf_free(&out);
        et_buf_free(&enc);
        et_wbxml_doc_free(doc);
        if (rc == 0 && rrc == 0 && erc == 0)
            break;
        assert_true(rc == 0 || rc == ET_ENOMEM);
        assert_true(rrc == 0 || rrc == ET_ENOMEM);
        assert_true(erc == 0 || erc == ET_ENOMEM);
    }
    free(w);
}

static void test_wbxml_encode_errors(void **s)
{
    static const struct {
        const char *xml;
        int rc;
        const char *msg;
    } cases[] = {
        {"<Sync xmlns=\"AirSync:\"><Nope/></Sync>", ET_ENOTFOUND, "AirSync:Nope"},
        {"<Sync><SyncKey/></Sync>", ET_ENOTFOUND, "no EAS namespace"},
        {"<!DOCTYPE x [<!ENTITY a \"b\">]><Sync xmlns=\"AirSync:\"/>", ET_EPARSE, "DTD"},
        {"<Sync xmlns=\"AirSync:\"><SyncKey>&bogus;</SyncKey></Sync>", ET_EPARSE, "entity"},
        {"<Sync xmlns=\"AirSync:\"><SyncKey></Sync>", ET_EPARSE, "does not match"},
        {"<Sync xmlns=\"AirSync:\">", ET_EPARSE, "open"},
        {"", ET_EPARSE, "no root"},
    };
    (void)s;
    for (size_t i = 0; i < ET_ARRAY_SIZE(cases); i++) {
        struct et_buf out;
        struct et_error e;
        et_buf_init(&out, 0);
        et_error_clear(&e);
        int rc = et_wbxml_encode(cases[i].xml, strlen(cases[i].xml), &out, &e);
        if (rc != cases[i].rc || strstr(e.msg, cases[i].msg) == NULL)
            print_message("case %zu: rc %d msg %s\n", i, rc, e.msg);
        assert_int_equal(rc, cases[i].rc);
        assert_non_null(strstr(e.msg, cases[i].msg));
        et_buf_free(&out);
    }
}

/* decode(encode(x)) == x for XML in the renderer's own form. */
static void test_wbxml_encode_then_decode_is_identity(void **s)
{
    static const char *names[] = {"find-request-gal.xml", "find-response.xml",
                                  "sendmail-mime-opaque.xml", "nested-wbxml-opaque.xml",
                                  "unknown-token-and-page.xml"};
    (void)s;
    for (size_t i = 0; i < ET_ARRAY_SIZE(names); i++) {
        size_t n;
        unsigned char *x = fixture(names[i], &n);
        struct et_buf w, x2;
        struct et_wbxml_doc *doc;
        et_buf_init(&w, 0);
        et_buf_init(&x2, 0);
        assert_int_equal(et_wbxml_encode((const char *)x, n, &w, NULL), 0);
        doc = decode_ok(w.data, w.len);
        assert_int_equal(et_wbxml_to_xml(doc, NULL, &x2), 0);
        assert_int_equal(x2.len, n);
        assert_memory_equal(x2.data, x, n);
        et_wbxml_doc_free(doc);
        et_buf_free(&w);
        et_buf_free(&x2);
        free(x);
    }
}

static void test_wbxml_compact(void **s)
{
    size_t n;
    unsigned char *w = fixture("ping-request-heartbeat.wbxml", &n);
    struct et_wbxml_doc *doc = decode_ok(w, n);
    struct et_wbxml_render_opts ro = {0};
    struct et_buf out;
    (void)s;
    ro.compact = 1;
    ro.no_declaration = 1;
    et_buf_init(&out, 0);
    assert_int_equal(et_wbxml_to_xml(doc, &ro, &out), 0);
    assert_string_equal((char *)out.data,
                        "<Ping xmlns=\"Ping:\"><HeartbeatInterval>3540</HeartbeatInterval>"
                        "<Folders><Folder><Id>5</Id><Class>Email</Class></Folder></Folders>"
                        "</Ping>");
    et_buf_free(&out);
    et_wbxml_doc_free(doc);
    free(w);
}

/* ---- Corpus ---------------------------------------------------------------------------- */

static int corpus_dir(const char *dir, int recurse, int *files, int *roundtrips)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        char p[8192];
        size_t n = 0, len = strlen(de->d_name);
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (recurse)
                corpus_dir(p, 0, files, roundtrips);
            continue;
        }
        if (len < 6 || strcmp(de->d_name + len - 6, ".wbxml") != 0)
            continue;
        unsigned char *w = et_test_read_file(p, &n);
        struct et_wbxml_doc *doc = NULL;
        struct et_error e;
        struct et_buf x, enc;
        et_error_clear(&e);
        assert_non_null(w);
        if (et_wbxml_decode(w, n, NULL, &doc, &e) != 0)
            fail_msg("%s: %s at %llu", p, e.msg, (unsigned long long)e.offset);
        et_buf_init(&x, 0);
        et_buf_init(&enc, 0);
        assert_int_equal(et_wbxml_to_xml(doc, NULL, &x), 0);
        if (et_wbxml_encode((const char *)x.data, x.len, &enc, &e) != 0)
            fail_msg("%s: re-encoding failed: %s", p, e.msg);
        if (enc.len != n || memcmp(enc.data, w, n) != 0)
            fail_msg("%s: re-encoded bytes differ", p);
        (*files)++;
        (*roundtrips)++;
        et_buf_free(&x);
        et_buf_free(&enc);
        et_wbxml_doc_free(doc);
        free(w);
    }
    closedir(d);
    return 0;
}

static void test_wbxml_corpus_syncgw_and_pywbxml_round_trip(void **s)
{
    int files = 0, rt = 0;
    (void)s;
    ET_REQUIRE_CORPUS(sg, "syncgw-traces/extracted");
    corpus_dir(sg, 1, &files, &rt);
    ET_REQUIRE_CORPUS(py, "pywbxmldecoder");
    corpus_dir(py, 0, &files, &rt);
    print_message("corpus: %d bodies decoded, %d round-tripped byte for byte\n", files, rt);
    assert_true(files > 200);
    assert_int_equal(files, rt);
}

static void test_wbxml_corpus_libwbxml_crashers_clean_errors(void **s)
{
    (void)s;
    ET_REQUIRE_CORPUS(dir, "libwbxml-fuzz-crashers");
    for (int i = 1; i <= 3; i++) {
        char p[8192];
        size_t n = 0;
        struct et_wbxml_doc *doc = NULL;
        struct et_error e;
        struct et_buf x;
        snprintf(p, sizeof(p), "%s/crash-%d.wbxml", dir, i % 10);
        unsigned char *w = et_test_read_file(p, &n);
        assert_non_null(w);
        et_error_clear(&e);
        int rc = et_wbxml_decode(w, n, NULL, &doc, &e);
        assert_true(rc < 0);
        assert_true(e.msg[0] != '\0' && e.has_offset);
        print_message("crash-%d: %s (at byte %llu)\n", i, e.msg, (unsigned long long)e.offset);
        et_buf_init(&x, 0);
        assert_int_equal(et_wbxml_to_xml(doc, NULL, &x), 0);
        et_buf_free(&x);
        et_wbxml_doc_free(doc);
        free(w);
    }
}

static void test_wbxml_corpus_horde_fragments(void **s)
{
    static const char *names[] = {"allday_appointment", "appointment", "default_policies",
                                  "dst", "meeting_request_one", "recurrence",
                                  "simpleexception"};
    (void)s;
    ET_REQUIRE_CORPUS(dir, "horde-activesync-fixtures");
    for (size_t i = 0; i < ET_ARRAY_SIZE(names); i++) {
        char p[8192];
        size_t n = 0;
        struct et_buf x, enc;
        snprintf(p, sizeof(p), "%s/%s.wbxml", dir, names[i]);
        unsigned char *w = et_test_read_file(p, &n);
        assert_non_null(w);
        struct et_wbxml_doc *doc = decode_ok(w, n);
        assert_true(doc->fragment);
        assert_non_null(doc->root->name);
        et_buf_init(&x, 0);
        et_buf_init(&enc, 0);
        assert_int_equal(et_wbxml_to_xml(doc, NULL, &x), 0);
        assert_int_equal(et_wbxml_encode((const char *)x.data, x.len, &enc, NULL), 0);
        assert_int_equal(enc.len, n);
        assert_memory_equal(enc.data, w, n);
        et_buf_free(&x);
        et_buf_free(&enc);
        et_wbxml_doc_free(doc);
        free(w);
    }
}

static void test_wbxml_corpus_libwbxml_test_xml_encodes(void **s)
{
    DIR *d;
    struct dirent *de;
    int count = 0;
    (void)s;
    ET_REQUIRE_CORPUS(dir, "libwbxml-tests/activesync");
    d = opendir(dir);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        char p[8192];
        size_t n = 0;
        struct et_buf w, x;
        struct et_error e;
        struct et_wbxml_doc *doc;
        if (strstr(de->d_name, ".xml") == NULL)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unsigned char *t = et_test_read_file(p, &n);
        et_buf_init(&w, 0);
        et_buf_init(&x, 0);
        et_error_clear(&e);
        if (et_wbxml_encode((const char *)t, n, &w, &e) != 0)
            fail_msg("%s: %s", p, e.msg);
        doc = decode_ok(w.data, w.len);
        assert_int_equal(et_wbxml_to_xml(doc, NULL, &x), 0);
        et_wbxml_doc_free(doc);
        et_buf_free(&w);
        et_buf_free(&x);
        free(t);
        count++;
    }
    closedir(d);
    assert_true(count > 0);
}

static void put_mb(struct et_buf *b, uint32_t v)
{
    uint8_t t[5];
    int n = 0;
    do {
        t[n++] = (uint8_t)(v & 0x7F);
        v >>= 7;
    } while (v);
    while (n-- > 0)
        et_buf_putc(b, t[n] | (n ? 0x80 : 0));
}

/* The string-table bomb of issue 9: 0.9 MB of WBXML standing for 100 GB of text. The decoder
 * stops at the text budget (naming it), quickly, and the rendering stays within its budget. */
/* A nested document past the budget stops the whole document (as the string-table bomb does),
 * the error naming the OPAQUE's offset and the budget: it used to leave the OPAQUE as bytes
 * (base64 when shown) and go on, so a bomb of nested levels came out as a budget of base64. */
static void test_wbxml_nested_opaque_past_budget_stops(void **s)
{
    (void)s;
    struct et_buf inner, in, out;
    struct et_wbxml_doc *doc = NULL;
    struct et_wbxml_opts o = {0};
    struct et_error err;
    et_buf_init(&inner, 0);
    et_buf_init(&in, 0);
    et_buf_append(&inner, "\x03\x01\x6a\x00\x45\x03", 6); /* <Sync> STR_I */
    for (int i = 0; i < 600; i++)
        et_buf_putc(&inner, 'A');
    et_buf_append(&inner, "\x00\x01", 2);
    et_buf_append(&in, "\x03\x01\x6a\x00\x45", 5); /* <Sync> */
    for (int k = 0; k < 2; k++) {
        et_buf_append(&in, "\x4f\xc3", 2); /* <Data> OPAQUE */
        put_mb(&in, (uint32_t)inner.len);
        et_buf_append(&in, inner.data, inner.len);
        et_buf_putc(&in, 0x01);
    }
    et_buf_putc(&in, 0x01);
    /* Within the budget the nested documents decode. */
    assert_int_equal(et_wbxml_decode(in.data, in.len, NULL, &doc, &err), 0);
    assert_non_null(doc->root->first_child->first_child->nested);
    et_wbxml_doc_free(doc);
    doc = NULL;
    o.max_text = 1000;
    et_error_clear(&err);
    assert_int_equal(et_wbxml_decode(in.data, in.len, &o, &doc, &err), ET_ETOOBIG);
    assert_non_null(strstr(err.msg, "nested WBXML in the OPAQUE data at byte 9:"));
    assert_non_null(strstr(err.msg, "output budget of 1000 bytes"));
    assert_true(err.has_offset);
    assert_true(err.offset > 9 && err.offset < in.len); /* in the outer document's bytes */
    et_buf_init(&out, 0);
    (void)et_wbxml_to_xml(doc, NULL, &out);
    assert_true(out.len < 4096);
    et_buf_free(&out);
    et_wbxml_doc_free(doc);
    et_buf_free(&in);
    et_buf_free(&inner);
}

static void test_wbxml_string_table_bomb_stops_at_budget(void **s)
{
    (void)s;
    struct et_buf in, out;
    struct et_wbxml_doc *doc = NULL;
    struct et_error err;
    et_buf_init(&in, 0);
    et_buf_append(&in, "\x03\x01\x6a", 3);
    put_mb(&in, 524288);
    for (int i = 0; i < 524287; i++)
        et_buf_putc(&in, 'A');
    et_buf_putc(&in, 0);
    et_buf_putc(&in, 0x45); /* <Sync> */
    for (int i = 0; i < 200000; i++)
        et_buf_append(&in, "\x83\x00", 2);
    et_buf_putc(&in, 0x01);
    assert_int_equal(et_wbxml_decode(in.data, in.len, NULL, &doc, &err), ET_ETOOBIG);
    assert_non_null(strstr(err.msg, "output budget"));
    assert_non_null(strstr(err.msg, "string-table"));
    et_buf_init(&out, 0);
    size_t cap = out.max;
    assert_int_equal(et_wbxml_to_xml(doc, NULL, &out), ET_ETOOBIG);
    /* Of a document a cap stopped only the start is shown (1 MiB), not a budget's worth. */
    assert_true(out.len <= ((size_t)1 << 20));
    assert_true(out.len > 1000);
    assert_int_equal(out.max, cap); /* the caller's cap is restored */
    et_buf_reset(&out);
    /* A smaller budget is obeyed by both renderings. */
    struct et_wbxml_render_opts ro = {0};
    ro.max_output = 1000;
    assert_int_equal(et_wbxml_to_json(doc, &ro, &out), ET_ETOOBIG);
    assert_true(out.len <= 1000);
    /* Never a byte past the budget, whatever the budget (found by fuzz_output: one over). */
    for (size_t b = 1; b < 400; b++) {
        struct et_wbxml_render_opts rb = {0};
        rb.max_output = b;
        et_buf_reset(&out);
        assert_int_equal(et_wbxml_to_xml(doc, &rb, &out), ET_ETOOBIG);
        assert_true(out.len <= b);
        et_buf_reset(&out);
        assert_int_equal(et_wbxml_to_json(doc, &rb, &out), ET_ETOOBIG);
        assert_true(out.len <= b);
    }
    et_wbxml_doc_free(doc);
    /* A lower text budget through the options. */
    struct et_wbxml_opts wo = {0};
    wo.max_text = 1 << 20;
    doc = NULL;
    assert_int_equal(et_wbxml_decode(in.data, in.len, &wo, &doc, &err), ET_ETOOBIG);
    et_wbxml_doc_free(doc);
    et_buf_free(&out);
    et_buf_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wbxml_golden_foldersync),
        cmocka_unit_test(test_wbxml_golden_find_request_gal),
        cmocka_unit_test(test_wbxml_golden_find_response),
        cmocka_unit_test(test_wbxml_golden_sendmail_mime_opaque),
        cmocka_unit_test(test_wbxml_golden_binary_opaque_base64),
        cmocka_unit_test(test_wbxml_golden_status_comment),
        cmocka_unit_test(test_wbxml_golden_sync_email),
        cmocka_unit_test(test_wbxml_golden_nested_wbxml),
        cmocka_unit_test(test_wbxml_golden_unknown_tokens),
        cmocka_unit_test(test_wbxml_golden_string_table),
        cmocka_unit_test(test_wbxml_golden_truncated_keeps_partial),
        cmocka_unit_test(test_wbxml_truncated_error_offset),
        cmocka_unit_test(test_wbxml_code_pages),
        cmocka_unit_test(test_wbxml_tree_queries),
        cmocka_unit_test(test_wbxml_json_shape),
        cmocka_unit_test(test_wbxml_split_feed_one_byte),
        cmocka_unit_test(test_wbxml_depth_cap),
        cmocka_unit_test(test_wbxml_node_and_output_caps),
        cmocka_unit_test(test_wbxml_refusals),
        cmocka_unit_test(test_wbxml_string_table_bomb_stops_at_budget),
        cmocka_unit_test(test_wbxml_nested_opaque_past_budget_stops),
        cmocka_unit_test(test_wbxml_alloc_failure),
        cmocka_unit_test(test_wbxml_encode_errors),
        cmocka_unit_test(test_wbxml_encode_then_decode_is_identity),
        cmocka_unit_test(test_wbxml_compact),
        cmocka_unit_test(test_wbxml_corpus_syncgw_and_pywbxml_round_trip),
        cmocka_unit_test(test_wbxml_corpus_libwbxml_crashers_clean_errors),
        cmocka_unit_test(test_wbxml_corpus_horde_fragments),
        cmocka_unit_test(test_wbxml_corpus_libwbxml_test_xml_encodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
