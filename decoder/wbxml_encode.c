/*
 * XML -> WBXML with the EAS code pages, and tree -> WBXML. The XML side reads what
 * et_wbxml_to_xml() writes (namespaces by xmlns/prefix, CDATA as OPAQUE, the base64 comment
 * forms, nested WBXML, <unknown page= token=> placeholders) and plain EAS XML.
 *
 * A tag is written when its start tag is read, without the content bit; the bit is set in
 * place (tag_pos) once the element turns out to have content or an explicit end tag.
 */
#include "eastrace/wbxml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbxml_int.h"
#include "xml.h"

#define MAX_DEPTH 1024
#define MAX_BINDINGS 256
#define MAX_DOCS 8

static int put_mb(struct et_buf *b, uint32_t v)
{
    uint8_t t[5];
    int n = 0, i;
    do {
        t[n++] = (uint8_t)(v & 0x7F);
        v >>= 7;
    } while (v != 0);
    for (i = n - 1; i >= 0; i--) {
        int rc = et_buf_putc(b, t[i] | (i > 0 ? 0x80 : 0));
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- Tree -> WBXML --------------------------------------------------------------------- */

struct tenc {
    struct et_buf *out;
    unsigned page;
    int rc;
};

static void tput(struct tenc *t, const void *p, size_t n)
{
    if (t->rc == 0)
        t->rc = et_buf_append(t->out, p, n);
}

static void tbyte(struct tenc *t, unsigned c)
{
    if (t->rc == 0)
        t->rc = et_buf_putc(t->out, (int)(c & 0xFF));
}

static void tmb(struct tenc *t, uint32_t v)
{
    if (t->rc == 0)
        t->rc = put_mb(t->out, v);
}

static void enc_node(struct tenc *t, const struct et_wbxml_node *n, unsigned depth)
{
    const struct et_wbxml_node *k;
    if (depth > MAX_DEPTH) {
        t->rc = ET_ETOOBIG;
        return;
    }
    switch (n->type) {
    case ET_WBXML_TEXT:
        if (n->text_kind == ET_WBXML_STR_T) {
            tbyte(t, 0x83);
            tmb(t, n->ref);
        } else if (n->text_kind == ET_WBXML_ENTITY) {
            tbyte(t, 0x02);
            tmb(t, n->ref);
        } else {
            tbyte(t, 0x03);
            tput(t, n->data, n->len);
            tbyte(t, 0x00);
        }
        return;
    case ET_WBXML_OPAQUE:
        tbyte(t, 0xC3);
        tmb(t, (uint32_t)n->len);
        tput(t, n->data, n->len);
        return;
    case ET_WBXML_ELEMENT:
        break;
    }
    if (n->page != t->page) {
        tbyte(t, 0x00);
        tbyte(t, n->page);
        t->page = n->page;
    }
    tbyte(t, n->token | (n->has_content ? 0x40u : 0u));
    for (k = n->first_child; k != NULL && t->rc == 0; k = k->next)
        enc_node(t, k, depth + 1);
    if (n->has_content)
        tbyte(t, 0x01);
}

int et_wbxml_encode_doc(const struct et_wbxml_doc *doc, struct et_buf *out)
{
    struct tenc t;
    t.out = out;
    t.page = 0;
    t.rc = 0;
    if (!doc->fragment) {
        tbyte(&t, doc->version);
        tmb(&t, doc->publicid);
        if (doc->publicid == 0)
            tmb(&t, doc->publicid_index);
        tmb(&t, doc->charset);
        tmb(&t, (uint32_t)doc->strtbl_len);
        tput(&t, doc->strtbl, doc->strtbl_len);
    }
    if (doc->root != NULL)
        enc_node(&t, doc->root, 0);
    return t.rc;
}

/* ---- XML -> WBXML ---------------------------------------------------------------------- */

enum pend_kind {
    PEND_TEXT = 0,       /* plain text: STR_I */
    PEND_B64_OPAQUE = 1, /* after <!-- opaque N bytes, base64 --> */
    PEND_B64_STRING = 2, /* after <!-- string N bytes, base64 --> */
    PEND_CDATA = 3       /* CDATA sections: adjacent ones form one OPAQUE */
};

struct binding {
    struct et_slice prefix; /* len 0: the default namespace */
    int page;               /* -1: not an EAS namespace */
    unsigned depth;         /* element depth that declared it */
};

struct frame {
    size_t tag_pos;     /* offset of the tag byte in the document's buffer */
    int content;        /* content bit set */
    int has_child;      /* a child element (or nested document) was written */
    struct et_slice qname;
    int nested_root;    /* this element is the root of a nested document */
};

struct xdoc {
    struct et_buf buf;  /* nested documents are assembled here, then written as OPAQUE */
    unsigned page;
};

struct xenc {
    struct et__xml x;
    struct et_error *err;
    struct et_buf *out;        /* outermost output */
    struct xdoc docs[MAX_DOCS];
    unsigned ndocs;            /* nested documents open */
    unsigned page;             /* current page in the current document */
    struct frame st[MAX_DEPTH];
    unsigned depth;
    struct binding b[MAX_BINDINGS];
    unsigned nb;
    struct et_buf pend;        /* text not yet written */
    int pend_kind;
    int pend_any;              /* pend holds at least one text event */
    int nested_next;           /* the next element starts a nested document */
    int header_done;
    int fragment;
    unsigned version, charset;
    uint32_t publicid;
    int seen_root;
    int in_wrapper;            /* inside <fragment> holding several top-level elements */
    struct et_slice wrapper;   /* its qname */
};

static struct et_buf *cur_buf(struct xenc *e)
{
    return e->ndocs > 0 ? &e->docs[e->ndocs - 1].buf : e->out;
}

static int efail(struct xenc *e, int code, size_t off, const char *fmt, ...) ET_PRINTF(4, 5);

static int efail(struct xenc *e, int code, size_t off, const char *fmt, ...)
{
    va_list ap;
    char msg[200];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (e->err != NULL)
        et_error_set_at(e->err, code, off, "%s", msg);
    return code;
}

static int is_ws(const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
            return 0;
    return 1;
}

/* Marks the innermost element as having content (sets its content bit). */
static void mark_content(struct xenc *e)
{
    struct frame *f;
    if (e->depth == 0)
        return;
    f = &e->st[e->depth - 1];
    if (!f->content) {
        f->content = 1;
        cur_buf(e)->data[f->tag_pos] |= 0x40;
    }
}

/*
 * Writes pending text. Whitespace-only text next to child elements is indentation and is
 * dropped; `closing` says the element ends here (text-only elements keep all text).
 */
static int flush_text(struct xenc *e, int before_child, size_t off)
{
    struct et_buf *b = cur_buf(e);
    int rc = 0;
    if (!e->pend_any)
        return 0;
    e->pend_any = 0;
    if (e->pend_kind == PEND_TEXT && is_ws(e->pend.data, e->pend.len) &&
        (before_child || (e->depth > 0 && e->st[e->depth - 1].has_child) || e->depth == 0)) {
        et_buf_reset(&e->pend);
        return 0;
    }
    if (e->depth == 0) {
        et_buf_reset(&e->pend);
        return efail(e, ET_EPARSE, off, "text outside the root element");
    }
    mark_content(e);
    if (e->pend_kind == PEND_CDATA) {
        if ((rc = et_buf_putc(b, 0xC3)) == 0 && (rc = put_mb(b, (uint32_t)e->pend.len)) == 0)
            rc = et_buf_append(b, e->pend.data, e->pend.len);
    } else if (e->pend_kind == PEND_TEXT) {
        if (memchr(e->pend.data, 0, e->pend.len) != NULL) {
            rc = efail(e, ET_EPARSE, off, "text holds a NUL character (not possible in STR_I)");
        } else if ((rc = et_buf_putc(b, 0x03)) == 0 &&
                   (rc = et_buf_append(b, e->pend.data, e->pend.len)) == 0) {
            rc = et_buf_putc(b, 0x00);
        }
    } else {
        struct et_buf raw;
        struct et_error be;
        et_buf_init(&raw, 0);
        et_error_clear(&be);
        rc = et_base64_decode(&raw, (const char *)e->pend.data, e->pend.len, &be);
        if (rc != 0) {
            rc = efail(e, rc, off, "bad base64 after an opaque/string comment");
        } else if (e->pend_kind == PEND_B64_OPAQUE) {
            if ((rc = et_buf_putc(b, 0xC3)) == 0 && (rc = put_mb(b, (uint32_t)raw.len)) == 0)
                rc = et_buf_append(b, raw.data, raw.len);
        } else if (memchr(raw.data, 0, raw.len) != NULL) {
            rc = efail(e, ET_EPARSE, off, "string holds a NUL byte");
        } else if ((rc = et_buf_putc(b, 0x03)) == 0 &&
                   (rc = et_buf_append(b, raw.data, raw.len)) == 0) {
            rc = et_buf_putc(b, 0x00);
        }
        et_buf_free(&raw);
    }
    e->pend_kind = PEND_TEXT;
    et_buf_reset(&e->pend);
    return rc;
}

static int write_header(struct xenc *e, struct et_buf *b, int fragment)
{
    int rc;
    if (fragment)
        return 0;
    if ((rc = et_buf_putc(b, (int)e->version)) != 0 || (rc = put_mb(b, e->publicid)) != 0 ||
        (rc = put_mb(b, e->charset)) != 0 || (rc = et_buf_putc(b, 0)) != 0)
        return rc;
    return 0;
}

/* Resolves the namespace of qname to a page; -1 when unbound or not EAS. */
static int resolve(struct xenc *e, struct et_slice q, struct et_slice *local)
{
    const uint8_t *colon = memchr(q.ptr, ':', q.len);
    struct et_slice pre = {q.ptr, 0};
    unsigned i;
    *local = q;
    if (colon != NULL) {
        pre.len = (size_t)(colon - q.ptr);
        local->ptr = colon + 1;
        local->len = q.len - pre.len - 1;
    }
    for (i = e->nb; i > 0; i--) {
        const struct binding *bd = &e->b[i - 1];
        if (bd->prefix.len == pre.len && memcmp(bd->prefix.ptr, pre.ptr, pre.len) == 0)
            return bd->page;
    }
    return -2;
}

static int attr_hex(const struct et__xml_ev *ev, const char *name, unsigned *out)
{
    size_t i;
    for (i = 0; i < ev->nattrs; i++) {
        const struct et__xml_attr *a = &ev->attrs[i];
        if (a->name.len == strlen(name) && memcmp(a->name.ptr, name, a->name.len) == 0) {
            char t[16];
            char *endp;
            unsigned long v;
            if (a->value.len == 0 || a->value.len >= sizeof(t))
                return -1;
            memcpy(t, a->value.ptr, a->value.len);
            t[a->value.len] = '\0';
            v = strtoul(t, &endp, 0);
            if (*endp != '\0' || v > 0xFF)
                return -1;
            *out = (unsigned)v;
            return 0;
        }
    }
    return -1;
}

/*
 * Names other tools write for EAS tags (libwbxml's test files among them): an older name of
 * the same token, or a different letter case ("MIME" for ComposeMail:Mime).
 */
static const struct {
    uint8_t page, token;
    const char *name;
} aliases[] = {
    {14, 0x10, "DeviceEncryptionEnabled"}, /* MS-ASPROV 12.x name of token 0x10 */
};

static int alias_token(unsigned page, struct et_slice local)
{
    size_t i;
    for (i = 0; i < ET_ARRAY_SIZE(aliases); i++)
        if (aliases[i].page == page && strlen(aliases[i].name) == local.len &&
            memcmp(aliases[i].name, local.ptr, local.len) == 0)
            return aliases[i].token;
    for (i = 0x05; i <= 0x3F; i++) {
        const char *n = et_wbxml_tag_name(page, (unsigned)i);
        if (n != NULL && strlen(n) == local.len &&
            et_strncaseeq(n, (const char *)local.ptr, local.len))
            return (int)i;
    }
    return -1;
}

static int on_start(struct xenc *e, const struct et__xml_ev *ev)
{
    size_t i;
    unsigned nb0 = e->nb, page, token;
    int pg, tk, rc;
    struct et_slice local;
    struct et_buf *b;
    struct frame *f;

    if ((rc = flush_text(e, 1, ev->offset)) != 0)
        return rc;
    if (e->depth == 0 && e->seen_root && !e->nested_next && !e->in_wrapper)
        return efail(e, ET_EPARSE, ev->offset, "second root element");
    if (e->depth >= MAX_DEPTH)
        return efail(e, ET_ETOOBIG, ev->offset, "elements nested deeper than %d", MAX_DEPTH);
    /* Namespace declarations first: they apply to this element. */
    for (i = 0; i < ev->nattrs; i++) {
        const struct et__xml_attr *a = &ev->attrs[i];
        struct binding *bd;
        if (a->name.len < 5 || memcmp(a->name.ptr, "xmlns", 5) != 0)
            continue;
        if (a->name.len > 5 && a->name.ptr[5] != ':')
            continue;
        if (e->nb == MAX_BINDINGS)
            return efail(e, ET_ETOOBIG, ev->offset, "too many namespace declarations");
        bd = &e->b[e->nb++];
        bd->prefix.ptr = a->name.ptr + (a->name.len > 5 ? 6 : 5);
        bd->prefix.len = a->name.len > 5 ? a->name.len - 6 : 0;
        bd->page = et_wbxml_page_by_name((const char *)a->value.ptr, a->value.len);
        bd->depth = e->depth + 1;
    }
    if (e->depth == 0 && !e->seen_root && !e->in_wrapper && ev->name.len >= 8 &&
        memcmp(ev->name.ptr + ev->name.len - 8, "fragment", 8) == 0) {
        for (i = 0; i < ev->nattrs; i++) {
            const struct et__xml_attr *a = &ev->attrs[i];
            if (a->value.len == strlen(ET__WBXML_FRAGMENT_NS) &&
                memcmp(a->value.ptr, ET__WBXML_FRAGMENT_NS, a->value.len) == 0) {
                unsigned k;
                /* Its declarations live as long as the wrapper. */
                for (k = nb0; k < e->nb; k++)
                    e->b[k].depth = 0;
                e->in_wrapper = 1;
                e->fragment = 1;
                e->wrapper = ev->name;
                return 0;
            }
        }
    }
    pg = resolve(e, ev->name, &local);
    if (local.len == 7 && memcmp(local.ptr, "unknown", 7) == 0 &&
        attr_hex(ev, "page", &page) == 0 && attr_hex(ev, "token", &token) == 0) {
        if (token < 5 || token > 0x3F)
            return efail(e, ET_EPARSE, ev->offset, "placeholder token 0x%X is not a tag", token);
    } else {
        if (pg < 0)
            return efail(e, ET_ENOTFOUND, ev->offset, "element <%.*s> is in no EAS namespace",
                         (int)ev->name.len, (const char *)ev->name.ptr);
        tk = et_wbxml_token_by_name((unsigned)pg, (const char *)local.ptr, local.len);
        if (tk < 0)
            tk = alias_token((unsigned)pg, local);
        if (tk < 0)
            return efail(e, ET_ENOTFOUND, ev->offset, "no token for %s:%.*s",
                         et_wbxml_page_name((unsigned)pg), (int)local.len,
                         (const char *)local.ptr);
        page = (unsigned)pg;
        token = (unsigned)tk;
    }
    if (e->depth > 0) {
        mark_content(e);
        e->st[e->depth - 1].has_child = 1;
    }
    f = &e->st[e->depth];
    memset(f, 0, sizeof(*f));
    f->qname = ev->name;
    if (e->depth == 0 && !e->seen_root) {
        e->seen_root = 1;
        if (e->in_wrapper)
            e->fragment = 1;
        if ((rc = write_header(e, e->out, e->fragment)) != 0)
            return rc;
    }
    if (e->nested_next) {
        e->nested_next = 0;
        if (e->ndocs == MAX_DOCS)
            return efail(e, ET_ETOOBIG, ev->offset, "nested WBXML deeper than %d", MAX_DOCS);
        e->docs[e->ndocs].page = e->page;
        et_buf_init(&e->docs[e->ndocs].buf, 0);
        e->ndocs++;
        e->page = 0;
        f->nested_root = 1;
        b = cur_buf(e);
        if ((rc = et_buf_append(b, "\x03\x01\x6a\x00", 4)) != 0)
            return rc;
    }
    b = cur_buf(e);
    if (page != e->page) {
        if ((rc = et_buf_putc(b, 0)) != 0 || (rc = et_buf_putc(b, (int)page)) != 0)
            return rc;
        e->page = page;
    }
    f->tag_pos = b->len;
    if ((rc = et_buf_putc(b, (int)token)) != 0)
        return rc;
    e->depth++;
    if (ev->empty)
        f->content = -1; /* <a/>: no content bit, no END */
    return 0;
}

static int on_end(struct xenc *e, const struct et__xml_ev *ev)
{
    struct frame *f;
    int rc;
    if (e->depth == 0 && e->in_wrapper && ev->name.len == e->wrapper.len &&
        memcmp(ev->name.ptr, e->wrapper.ptr, ev->name.len) == 0) {
        e->in_wrapper = 0;
        return 0;
    }
    if (e->depth == 0)
        return efail(e, ET_EPARSE, ev->offset, "end tag </%.*s> with no open element",
                     (int)ev->name.len, (const char *)ev->name.ptr);
    f = &e->st[e->depth - 1];
    if (f->qname.len != ev->name.len || memcmp(f->qname.ptr, ev->name.ptr, ev->name.len) != 0)
        return efail(e, ET_EPARSE, ev->offset, "end tag </%.*s> does not match <%.*s>",
                     (int)ev->name.len, (const char *)ev->name.ptr, (int)f->qname.len,
                     (const char *)f->qname.ptr);
    if (f->content != -1) {
        if ((rc = flush_text(e, 0, ev->offset)) != 0)
            return rc;
        mark_content(e);
        if ((rc = et_buf_putc(cur_buf(e), 1)) != 0)
            return rc;
    }
    e->depth--;
    while (e->nb > 0 && e->b[e->nb - 1].depth > e->depth)
        e->nb--;
    if (f->nested_root) {
        /* The nested document is complete: write it into its parent as OPAQUE. */
        struct xdoc *d = &e->docs[--e->ndocs];
        struct et_buf *pb = cur_buf(e);
        rc = et_buf_putc(pb, 0xC3);
        if (rc == 0)
            rc = put_mb(pb, (uint32_t)d->buf.len);
        if (rc == 0)
            rc = et_buf_append(pb, d->buf.data, d->buf.len);
        et_buf_free(&d->buf);
        e->page = d->page;
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int on_comment(struct xenc *e, const struct et__xml_ev *ev)
{
    char t[64];
    size_t n = ev->text.len;
    unsigned long len;
    char kind[16];
    int rc;
    if (n >= sizeof(t))
        return 0; /* Status names and other remarks: ignored */
    memcpy(t, ev->text.ptr, n);
    t[n] = '\0';
    if (sscanf(t, " opaque %lu bytes, %15s", &len, kind) == 2) {
        /* Before a nested document, whitespace is indentation. */
        if ((rc = flush_text(e, strcmp(kind, "WBXML") == 0, ev->offset)) != 0)
            return rc;
        if (strcmp(kind, "base64") == 0) {
            e->pend_kind = PEND_B64_OPAQUE;
            e->pend_any = 1; /* an empty opaque still counts */
        } else if (strcmp(kind, "WBXML") == 0) {
            e->nested_next = 1;
        }
    } else if (sscanf(t, " string %lu bytes, %15s", &len, kind) == 2 &&
               strcmp(kind, "base64") == 0) {
        if ((rc = flush_text(e, 0, ev->offset)) != 0)
            return rc;
        e->pend_kind = PEND_B64_STRING;
        e->pend_any = 1;
    }
    return 0;
}

/* <?eastrace-wbxml version="0x03" publicid="0x1" charset="106" fragment="1"?> */
static void on_pi(struct xenc *e, const struct et__xml_ev *ev)
{
    char t[256], *p;
    size_t n = ev->text.len;
    if (ev->name.len != 14 || memcmp(ev->name.ptr, "eastrace-wbxml", 14) != 0 || e->seen_root)
        return;
    if (n >= sizeof(t))
        n = sizeof(t) - 1;
    memcpy(t, ev->text.ptr, n);
    t[n] = '\0';
    if ((p = strstr(t, "fragment=\"1\"")) != NULL)
        e->fragment = 1;
    if ((p = strstr(t, "version=\"")) != NULL)
        e->version = (unsigned)strtoul(p + 9, NULL, 0) & 0xFFu;
    if ((p = strstr(t, "publicid=\"")) != NULL)
        e->publicid = (uint32_t)strtoul(p + 10, NULL, 0);
    /* A string public id needs the string table, which the XML does not carry. */
    if (e->publicid == 0)
        e->publicid = 1;
    if ((p = strstr(t, "charset=\"")) != NULL)
        e->charset = (unsigned)strtoul(p + 9, NULL, 0);
}

int et_wbxml_encode(const char *xml, size_t len, struct et_buf *out, struct et_error *err)
{
    struct xenc *e = et_calloc(1, sizeof(*e));
    struct et__xml_ev ev;
    int rc = 0;
    unsigned i;

    if (e == NULL)
        return ET_ENOMEM;
    e->err = err;
    e->out = out;
    e->version = 3;
    e->publicid = 1;
    e->charset = 106;
    et_buf_init(&e->pend, 0);
    et__xml_init(&e->x, xml, len, err);
    for (;;) {
        if ((rc = et__xml_next(&e->x, &ev)) != 0)
            break;
        if (ev.type == ET__XML_EOF)
            break;
        switch (ev.type) {
        case ET__XML_START:
            rc = on_start(e, &ev);
            break;
        case ET__XML_END:
            rc = on_end(e, &ev);
            break;
        case ET__XML_TEXT:
            if (e->depth == 0 && !is_ws(ev.text.ptr, ev.text.len)) {
                rc = efail(e, ET_EPARSE, ev.offset, "text outside the root element");
                break;
            }
            if (e->pend_kind == PEND_CDATA && (rc = flush_text(e, 0, ev.offset)) != 0)
                break;
            if (e->depth > 0) {
                rc = et_buf_append(&e->pend, ev.text.ptr, ev.text.len);
                e->pend_any = 1;
            }
            break;
        case ET__XML_CDATA:
            if (e->depth == 0) {
                rc = efail(e, ET_EPARSE, ev.offset, "CDATA outside the root element");
                break;
            }
            if (e->pend_kind != PEND_CDATA && (rc = flush_text(e, 0, ev.offset)) != 0)
                break;
            e->pend_kind = PEND_CDATA;
            e->pend_any = 1;
            rc = et_buf_append(&e->pend, ev.text.ptr, ev.text.len);
            break;
        case ET__XML_COMMENT:
            rc = on_comment(e, &ev);
            break;
        case ET__XML_PI:
            on_pi(e, &ev);
            break;
        case ET__XML_EOF:
            break;
        }
        if (rc != 0)
            break;
    }
    if (rc == 0 && e->depth > 0)
        rc = efail(e, ET_EPARSE, len, "input ended with <%.*s> open",
                   (int)e->st[e->depth - 1].qname.len,
                   (const char *)e->st[e->depth - 1].qname.ptr);
    if (rc == 0 && !e->seen_root)
        rc = efail(e, ET_EPARSE, len, "no root element");
    if (rc != 0 && err != NULL && err->code == 0)
        et_error_set(err, rc, "%s", et_strerror(rc));
    for (i = 0; i < e->ndocs; i++)
        et_buf_free(&e->docs[i].buf);
    et__xml_free(&e->x);
    et_buf_free(&e->pend);
    et_free(e);
    return rc;
}
