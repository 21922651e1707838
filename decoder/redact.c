/* The redaction policy (eastrace/redact.h): which recorded values are credentials. */
#include "eastrace/redact.h"

#include <string.h>

#include "eastrace/eas.h"
#include "eastrace/http.h"
#include "eastrace/wbxml.h"

/* Case-insensitive substring test. */
static int contains_ci(const char *s, const char *w)
{
    size_t wl = strlen(w);
    for (; *s != '\0'; s++)
        if (et_strncaseeq(s, w, wl))
            return 1;
    return 0;
}

int et_redact_is_secret_name(const char *name)
{
    if (name == NULL)
        return 0;
    return et_strcaseeq(name, "Authorization") || et_strcaseeq(name, "Proxy-Authorization") ||
           et_strcaseeq(name, "Pwd") || et_strcaseeq(name, "jwt") || et_strcaseeq(name, "auth") ||
           et_strcaseeq(name, "Key") || contains_ci(name, "cookie") || contains_ci(name, "password") ||
           contains_ci(name, "secret") || contains_ci(name, "token") ||
           contains_ci(name, "cs(Authorization)");
}

int et_redact_is_secret_element(const char *local_name)
{
    return local_name != NULL && strcmp(local_name, "Password") == 0;
}

const char *et_redact_header(struct et_arena *a, const char *name, const char *value)
{
    if (value == NULL || !et_redact_is_secret_name(name))
        return value;
    if (!contains_ci(name, "authorization"))
        return ET_REDACTED;

    /* Keep the scheme ("Basic", "Bearer", "NTLM", ...) so a reader sees how the client
     * authenticated; for Basic also the user name, which troubleshooting needs. */
    size_t sl = strcspn(value, " \t");
    if (sl == 0 || value[sl] == '\0')
        return ET_REDACTED;
    if (sl == 5 && et_strncaseeq(value, "Basic", 5)) {
        struct et_buf dec;
        const char *p = value + sl, *out = NULL;
        struct et_error e;
        while (*p == ' ' || *p == '\t')
            p++;
        et_buf_init(&dec, 4096);
        et_error_clear(&e);
        if (et_base64_decode(&dec, p, strlen(p), &e) == 0 && dec.len > 0) {
            const uint8_t *colon = memchr(dec.data, ':', dec.len);
            size_t ul = colon != NULL ? (size_t)(colon - dec.data) : 0;
            if (ul > 0 && et_utf8_valid(dec.data, ul)) {
                /* The user name goes out quoted as JSON would, control bytes dropped. */
                struct et_buf u;
                et_buf_init(&u, 1024);
                for (size_t i = 0; i < ul; i++)
                    if (dec.data[i] >= 0x20 && dec.data[i] != 0x7f)
                        et_buf_putc(&u, dec.data[i]);
                out = et_arena_printf(a, "%.*s " ET_REDACTED " user=%s", (int)sl, value,
                                      u.data != NULL ? (const char *)u.data : "");
                et_buf_free(&u);
                et_buf_free(&dec);
                return out;
            }
        }
        et_buf_free(&dec);
    }
    return et_arena_printf(a, "%.*s " ET_REDACTED, (int)sl, value);
}

const char *et_redact_target(struct et_arena *a, const char *target)
{
    const char *sep, *auth, *end, *at = NULL, *t = target;
    struct et_buf b;
    if (target == NULL)
        return NULL;
    if (strchr(target, '?') != NULL) {
        et_buf_init(&b, 1 << 20);
        if (et_eas_query_redact(target, ET_EAS_REDACT_SECRETS, &b) != 0) {
            et_buf_free(&b);
            return et_arena_printf(a, "%.*s?" ET_REDACTED, (int)strcspn(target, "?"), target);
        }
        if (b.len != strlen(target) || memcmp(b.data, target, b.len) != 0)
            t = et_arena_strndup(a, (const char *)b.data, b.len);
        et_buf_free(&b);
        if (t == NULL)
            return NULL;
    }
    if ((sep = strstr(t, "://")) == NULL)
        return t;
    auth = sep + 3;
    end = auth + strcspn(auth, "/?#");
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    if (at == NULL)
        return t;
    return et_arena_printf(a, "%.*s" ET_REDACTED "%s", (int)(auth - t), t, at);
}

const char *et_redact_query(struct et_arena *a, const char *query)
{
    const char *t, *r;
    if (query == NULL || strchr(query, '=') == NULL)
        return query;
    if ((t = et_arena_printf(a, "/Microsoft-Server-ActiveSync?%s", query)) == NULL || (r = et_redact_target(a, t)) == NULL)
        return NULL;
    return r == t ? query : r + strlen("/Microsoft-Server-ActiveSync?");
}

/*
 * Finds the next element named Password (any prefix) in s[*i..n) and gives the span of its
 * content, [*start, *end): up to the matching close tag, or to the end when unterminated.
 * Returns 0 when there is none left.
 */
static int next_password(const char *s, size_t n, size_t *i, size_t *start, size_t *end)
{
    while (*i < n) {
        const char *lt = memchr(s + *i, '<', n - *i), *gt, *name, *close;
        size_t nl, pl;
        if (lt == NULL)
            return 0;
        *i = (size_t)(lt - s) + 1;
        if (*i >= n || lt[1] == '/' || lt[1] == '!' || lt[1] == '?')
            continue;
        if ((gt = memchr(lt, '>', n - (size_t)(lt - s))) == NULL)
            return 0;
        if (gt[-1] == '/') /* <Password/> holds nothing */
            continue;
        /* The local name: after an optional "prefix:", up to a blank or '>'. */
        name = lt + 1;
        nl = 0;
        while (name + nl < gt && !strchr(" \t\r\n/", name[nl]))
            nl++;
        pl = 0;
        for (size_t k = 0; k < nl; k++)
            if (name[k] == ':')
                pl = k + 1;
        if (nl - pl != 8 || strncmp(name + pl, "Password", 8) != 0)
            continue;
        /* Content runs to the close tag with the same qualified name. */
        close = NULL;
        for (const char *c = gt + 1; (c = memchr(c, '<', n - (size_t)(c - s))) != NULL; c++) {
            if ((size_t)(c - s) + 2 + nl < n && c[1] == '/' && strncmp(c + 2, name, nl) == 0 &&
                (c[2 + nl] == '>' || c[2 + nl] == ' ')) {
                close = c;
                break;
            }
        }
        *start = (size_t)(gt + 1 - s);
        *end = close != NULL ? (size_t)(close - s) : n;
        *i = *end;
        return 1;
    }
    return 0;
}

int et_redact_xml(struct et_buf *out, const char *s, size_t n)
{
    size_t i = 0, run = 0, start, end;
    int rc;
    while (next_password(s, n, &i, &start, &end)) {
        if ((rc = et_buf_append(out, s + run, start - run)) != 0 ||
            (rc = et_buf_puts(out, ET_REDACTED)) != 0)
            return rc;
        run = end;
    }
    return et_buf_append(out, s + run, n - run);
}

/* ---- bodies for export ------------------------------------------------------------------ */

/* Reads a WBXML mb_u_int32 at p[*i..n); -1 when cut or too long. */
static int mb(const uint8_t *p, size_t n, size_t *i, uint32_t *v)
{
    *v = 0;
    for (int k = 0; k < 5 && *i < n; k++) {
        uint8_t c = p[(*i)++];
        *v = *v << 7 | (c & 0x7F);
        if (!(c & 0x80))
            return 0;
    }
    return -1;
}

/* Offset of the string table in a WBXML header, or 0 when there is none. */
static size_t strtbl_offset(const uint8_t *p, size_t n)
{
    size_t i = 1;
    uint32_t v;
    if (mb(p, n, &i, &v) != 0 || (v == 0 && mb(p, n, &i, &v) != 0) || mb(p, n, &i, &v) != 0 ||
        mb(p, n, &i, &v) != 0)
        return 0;
    return i;
}

/* Overwrites len bytes at off with '*' in the copy of p[0..n) (made on first use), when p
 * holds the node's bytes there. Returns 1 when masked, 0 when not, -1 on ENOMEM. */
static int mask(struct et_arena *a, const uint8_t *p, size_t n, uint8_t **copy, size_t off,
                const uint8_t *want, size_t len)
{
    if (len == 0 || off > n || len > n - off || memcmp(p + off, want, len) != 0)
        return 0; /* not where we expect it: leave the bytes (never mask the wrong ones) */
    if (*copy == NULL) {
        if ((*copy = et_arena_alloc(a, n + 1)) == NULL)
            return -1;
        memcpy(*copy, p, n);
        (*copy)[n] = 0;
    }
    memset(*copy + off, '*', len);
    return 1;
}

/* Masks the text of every Password element of a WBXML body (inline strings, string-table
 * strings, OPAQUE). Returns 0 or -1 on ENOMEM. */
static int redact_wbxml(struct et_arena *a, const uint8_t *p, size_t n, uint8_t **copy)
{
    struct et_wbxml_opts wo = {0};
    struct et_wbxml_doc *doc = NULL;
    struct et_wbxml_iter it;
    const struct et_wbxml_node *el;
    size_t tbl = 0;
    int rc = 0;

    wo.no_nested = 1;
    wo.fragment = -1;
    if (et_wbxml_decode(p, n, &wo, &doc, NULL) != 0 || doc == NULL || doc->root == NULL) {
        et_wbxml_doc_free(doc);
        return 0;
    }
    if (doc->strtbl_len > 0)
        tbl = strtbl_offset(p, n);
    et_wbxml_iter_init(&it, doc->root, "//Password");
    while (rc >= 0 && (el = et_wbxml_iter_next(&it)) != NULL) {
        for (const struct et_wbxml_node *k = el->first_child; k != NULL && rc >= 0; k = k->next) {
            size_t i = (size_t)k->offset + 1;
            uint32_t v;
            if (k->type == ET_WBXML_TEXT && k->text_kind == ET_WBXML_STR_I)
                rc = mask(a, p, n, copy, i, k->data, k->len);
            else if (k->type == ET_WBXML_TEXT && k->text_kind == ET_WBXML_STR_T && tbl > 0)
                rc = mask(a, p, n, copy, tbl + k->ref, k->data, k->len);
            else if (k->type == ET_WBXML_OPAQUE && mb(p, n, &i, &v) == 0)
                rc = mask(a, p, n, copy, i, k->data, k->len);
        }
    }
    et_wbxml_doc_free(doc);
    return rc < 0 ? -1 : 0;
}

/* Masks the content of every Password element of a plain-XML body. 0 or -1 on ENOMEM. */
static int redact_plain_xml(struct et_arena *a, const uint8_t *p, size_t n, uint8_t **copy)
{
    size_t i = 0, start, end;
    while (next_password((const char *)p, n, &i, &start, &end))
        if (mask(a, p, n, copy, start, p + start, end - start) < 0)
            return -1;
    return 0;
}

const uint8_t *et_redact_body(struct et_arena *a, const struct et_headers *h,
                              const struct et_body *body)
{
    const char *ce = h != NULL ? et_headers_get(h, "Content-Encoding") : NULL;
    if (!body->content_decoded && ce != NULL && !et_strcaseeq(ce, "identity"))
        return body->data;
    return et_redact_decoded_body(a, h, body->data, body->len);
}

const uint8_t *et_redact_decoded_body(struct et_arena *a, const struct et_headers *h,
                                      const uint8_t *p, size_t n)
{
    uint8_t *copy = NULL;
    int rc = 0;

    if (p == NULL || n == 0)
        return p;
    switch (et_http_body_kind(h, p, n)) {
    case ET_BODY_WBXML:
        rc = redact_wbxml(a, p, n, &copy);
        break;
    case ET_BODY_XML:
        if (et_utf8_valid(p, n))
            rc = redact_plain_xml(a, p, n, &copy);
        break;
    default:
        break;
    }
    if (rc < 0)
        return NULL;
    return copy != NULL ? copy : p;
}
