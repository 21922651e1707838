/* Pull XML reader for the WBXML encoder; see xml.h. */
#include "xml.h"

#include <string.h>

#define TEXT_CAP ((size_t)512 << 20)

void et__xml_init(struct et__xml *x, const char *s, size_t n, struct et_error *err)
{
    memset(x, 0, sizeof(*x));
    x->start = x->p = (const uint8_t *)s;
    x->end = x->start + n;
    x->err = err;
    et_buf_init(&x->text, TEXT_CAP);
    et_buf_init(&x->attrv, TEXT_CAP);
}

void et__xml_free(struct et__xml *x)
{
    et_buf_free(&x->text);
    et_buf_free(&x->attrv);
}

static int xfail(struct et__xml *x, const uint8_t *at, const char *what)
{
    size_t off = (size_t)(at - x->start);
    size_t line = 1;
    const uint8_t *q;
    for (q = x->start; q < at; q++)
        line += *q == '\n';
    if (x->err != NULL)
        et_error_set_at(x->err, ET_EPARSE, off, "XML line %zu: %s", line, what);
    return ET_EPARSE;
}

static int starts(const struct et__xml *x, const uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(x->end - p) >= n && memcmp(p, s, n) == 0;
}

static const uint8_t *find(const uint8_t *p, const uint8_t *end, const char *s)
{
    size_t n = strlen(s);
    while ((size_t)(end - p) >= n) {
        const uint8_t *q = memchr(p, s[0], (size_t)(end - p) - n + 1);
        if (q == NULL)
            return NULL;
        if (memcmp(q, s, n) == 0)
            return q;
        p = q + 1;
    }
    return NULL;
}

static int is_name_start(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' || c >= 0x80;
}

static int is_name(uint8_t c)
{
    return is_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static int is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int put_utf8(struct et_buf *b, uint32_t cp)
{
    uint8_t o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        o[0] = (uint8_t)(0xF0 | (cp >> 18));
        o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return et_buf_append(b, o, n);
}

/* Decodes character data p..e (entities) and appends it to b. */
static int decode_chars(struct et__xml *x, const uint8_t *p, const uint8_t *e, struct et_buf *b)
{
    while (p < e) {
        const uint8_t *amp = memchr(p, '&', (size_t)(e - p));
        const uint8_t *semi;
        int rc;
        if (amp == NULL)
            return et_buf_append(b, p, (size_t)(e - p));
        if ((rc = et_buf_append(b, p, (size_t)(amp - p))) != 0)
            return rc;
        semi = memchr(amp, ';', (size_t)(e - amp));
        if (semi == NULL || semi - amp > 12)
            return xfail(x, amp, "'&' that starts no entity");
        {
            const char *n = (const char *)amp + 1;
            size_t nl = (size_t)(semi - amp) - 1;
            uint32_t cp = 0;
            if (nl == 2 && memcmp(n, "lt", 2) == 0)
                cp = '<';
            else if (nl == 2 && memcmp(n, "gt", 2) == 0)
                cp = '>';
            else if (nl == 3 && memcmp(n, "amp", 3) == 0)
                cp = '&';
            else if (nl == 4 && memcmp(n, "quot", 4) == 0)
                cp = '"';
            else if (nl == 4 && memcmp(n, "apos", 4) == 0)
                cp = '\'';
            else if (nl >= 2 && n[0] == '#') {
                size_t i = 1;
                int hex = n[1] == 'x' || n[1] == 'X';
                if (hex)
                    i++;
                if (i >= nl)
                    return xfail(x, amp, "empty character reference");
                for (; i < nl; i++) {
                    char c = n[i];
                    uint32_t d;
                    if (c >= '0' && c <= '9')
                        d = (uint32_t)(c - '0');
                    else if (hex && c >= 'a' && c <= 'f')
                        d = (uint32_t)(c - 'a' + 10);
                    else if (hex && c >= 'A' && c <= 'F')
                        d = (uint32_t)(c - 'A' + 10);
                    else
                        return xfail(x, amp, "bad character reference");
                    cp = cp * (hex ? 16u : 10u) + d;
                    if (cp > 0x10FFFF)
                        return xfail(x, amp, "character reference beyond U+10FFFF");
                }
                if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
                    return xfail(x, amp, "character reference to an invalid code point");
            } else {
                return xfail(x, amp, "unknown entity (only the XML predefined ones exist)");
            }
            if ((rc = put_utf8(b, cp)) != 0)
                return rc;
        }
        p = semi + 1;
    }
    return 0;
}

static int parse_tag(struct et__xml *x, struct et__xml_ev *ev)
{
    const uint8_t *p = x->p + 1;
    const uint8_t *e = x->end;
    const uint8_t *ns = p;
    int rc;

    if (p >= e || !is_name_start(*p))
        return xfail(x, x->p, "'<' not followed by a name");
    while (p < e && is_name(*p))
        p++;
    ev->type = ET__XML_START;
    ev->name.ptr = ns;
    ev->name.len = (size_t)(p - ns);
    ev->nattrs = 0;
    ev->empty = 0;
    et_buf_reset(&x->attrv);
    /* Values are decoded into attrv; record offsets first, fix pointers at the end since
     * attrv may move. */
    for (;;) {
        const uint8_t *an, *av;
        uint8_t q;
        size_t vstart;
        while (p < e && is_space(*p))
            p++;
        if (p >= e)
            return xfail(x, x->p, "start tag not closed");
        if (*p == '>') {
            p++;
            break;
        }
        if (*p == '/') {
            if (p + 1 >= e || p[1] != '>')
                return xfail(x, p, "'/' not followed by '>'");
            ev->empty = 1;
            p += 2;
            break;
        }
        if (!is_name_start(*p))
            return xfail(x, p, "bad attribute name");
        an = p;
        while (p < e && is_name(*p))
            p++;
        if (ev->nattrs == ET__XML_MAX_ATTRS)
            return xfail(x, an, "too many attributes");
        ev->attrs[ev->nattrs].name.ptr = an;
        ev->attrs[ev->nattrs].name.len = (size_t)(p - an);
        while (p < e && is_space(*p))
            p++;
        if (p >= e || *p != '=')
            return xfail(x, p, "attribute without '='");
        p++;
        while (p < e && is_space(*p))
            p++;
        if (p >= e || (*p != '"' && *p != '\''))
            return xfail(x, p, "attribute value not quoted");
        q = *p++;
        av = p;
        while (p < e && *p != q) {
            if (*p == '<')
                return xfail(x, p, "'<' in an attribute value");
            p++;
        }
        if (p >= e)
            return xfail(x, av, "attribute value not closed");
        vstart = x->attrv.len;
        if ((rc = decode_chars(x, av, p, &x->attrv)) != 0)
            return rc;
        ev->attrs[ev->nattrs].value.ptr = NULL;
        ev->attrs[ev->nattrs].value.len = x->attrv.len - vstart;
        /* Stash the start offset in the pointer slot until attrv stops moving. */
        ev->attrs[ev->nattrs].value.ptr = (const uint8_t *)(uintptr_t)vstart;
        ev->nattrs++;
        p++;
    }
    {
        size_t i;
        for (i = 0; i < ev->nattrs; i++) {
            size_t off = (size_t)(uintptr_t)ev->attrs[i].value.ptr;
            ev->attrs[i].value.ptr = x->attrv.data != NULL ? x->attrv.data + off
                                                           : (const uint8_t *)"";
        }
    }
    if (ev->empty) {
        x->pending_end = ev->name;
        x->has_pending_end = 1;
    }
    x->p = p;
    return 0;
}

int et__xml_next(struct et__xml *x, struct et__xml_ev *ev)
{
    const uint8_t *p, *e = x->end, *q;
    int rc;

    ev->nattrs = 0;
    ev->empty = 0;
    ev->text.ptr = NULL;
    ev->text.len = 0;
    if (x->has_pending_end) {
        x->has_pending_end = 0;
        ev->type = ET__XML_END;
        ev->name = x->pending_end;
        ev->offset = (size_t)(x->p - x->start);
        return 0;
    }
    p = x->p;
    ev->offset = (size_t)(p - x->start);
    if (p >= e) {
        ev->type = ET__XML_EOF;
        return 0;
    }
    if (*p != '<') {
        q = memchr(p, '<', (size_t)(e - p));
        if (q == NULL)
            q = e;
        et_buf_reset(&x->text);
        if ((rc = decode_chars(x, p, q, &x->text)) != 0)
            return rc;
        ev->type = ET__XML_TEXT;
        ev->text.ptr = x->text.data != NULL ? x->text.data : (const uint8_t *)"";
        ev->text.len = x->text.len;
        x->p = q;
        return 0;
    }
    if (starts(x, p, "<!--")) {
        q = find(p + 4, e, "-->");
        if (q == NULL)
            return xfail(x, p, "comment not closed");
        ev->type = ET__XML_COMMENT;
        ev->text.ptr = p + 4;
        ev->text.len = (size_t)(q - (p + 4));
        x->p = q + 3;
        return 0;
    }
    if (starts(x, p, "<![CDATA[")) {
        q = find(p + 9, e, "]]>");
        if (q == NULL)
            return xfail(x, p, "CDATA section not closed");
        ev->type = ET__XML_CDATA;
        ev->text.ptr = p + 9;
        ev->text.len = (size_t)(q - (p + 9));
        x->p = q + 3;
        return 0;
    }
    if (starts(x, p, "<!DOCTYPE")) {
        /* Only an external id is allowed: an internal subset could declare entities. */
        for (q = p + 9; q < e && *q != '>'; q++) {
            if (*q == '[')
                return xfail(x, p, "DOCTYPE with an internal subset (DTD) is refused");
        }
        if (q >= e)
            return xfail(x, p, "DOCTYPE not closed");
        x->p = q + 1;
        return et__xml_next(x, ev);
    }
    if (starts(x, p, "<!"))
        return xfail(x, p, "unsupported markup declaration");
    if (starts(x, p, "<?")) {
        const uint8_t *n = p + 2;
        q = find(p + 2, e, "?>");
        if (q == NULL)
            return xfail(x, p, "processing instruction not closed");
        ev->type = ET__XML_PI;
        ev->name.ptr = n;
        while (n < q && is_name(*n))
            n++;
        ev->name.len = (size_t)(n - ev->name.ptr);
        ev->text.ptr = n;
        ev->text.len = (size_t)(q - n);
        x->p = q + 2;
        return 0;
    }
    if (starts(x, p, "</")) {
        const uint8_t *n = p + 2;
        q = n;
        while (q < e && is_name(*q))
            q++;
        ev->type = ET__XML_END;
        ev->name.ptr = n;
        ev->name.len = (size_t)(q - n);
        while (q < e && is_space(*q))
            q++;
        if (q >= e || *q != '>' || ev->name.len == 0)
            return xfail(x, p, "bad end tag");
        x->p = q + 1;
        return 0;
    }
    return parse_tag(x, ev);
}
