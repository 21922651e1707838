/*
 * Queries over a decoded WBXML tree: navigation, text and integer values, and path matching
 * ("Collections/Collection/SyncKey", "//AirSync:Status") for the analyzer.
 */
#include "eastrace/wbxml.h"

#include <string.h>

#define MAX_STEPS 16

const struct et_wbxml_node *et_wbxml_first_element(const struct et_wbxml_node *n)
{
    const struct et_wbxml_node *k;
    if (n == NULL)
        return NULL;
    for (k = n->first_child; k != NULL; k = k->next)
        if (k->type == ET_WBXML_ELEMENT)
            return k;
    return NULL;
}

const struct et_wbxml_node *et_wbxml_next_element(const struct et_wbxml_node *n)
{
    const struct et_wbxml_node *k;
    if (n == NULL)
        return NULL;
    for (k = n->next; k != NULL; k = k->next)
        if (k->type == ET_WBXML_ELEMENT)
            return k;
    return NULL;
}

const char *et_wbxml_node_text(const struct et_wbxml_node *n, size_t *len)
{
    const char *t = "";
    size_t l = 0;
    if (n != NULL) {
        if (n->type == ET_WBXML_ELEMENT) {
            if (n->text != NULL) {
                t = n->text;
                l = n->text_len;
            }
        } else if (n->data != NULL) {
            t = (const char *)n->data;
            l = n->len;
        }
    }
    if (len != NULL)
        *len = l;
    return t;
}

int et_wbxml_node_int(const struct et_wbxml_node *n, long long *out)
{
    size_t len, i = 0;
    const char *t;
    long long v = 0;
    int neg = 0, digits = 0;

    if (n == NULL)
        return ET_ENOTFOUND;
    t = et_wbxml_node_text(n, &len);
    while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\r' || t[i] == '\n'))
        i++;
    if (i < len && (t[i] == '-' || t[i] == '+'))
        neg = t[i++] == '-';
    for (; i < len && t[i] >= '0' && t[i] <= '9'; i++) {
        int d = t[i] - '0';
        if (v > (9223372036854775807LL - d) / 10)
            return ET_EPARSE;
        v = v * 10 + d;
        digits++;
    }
    while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\r' || t[i] == '\n'))
        i++;
    if (digits == 0 || i != len)
        return ET_EPARSE;
    *out = neg ? -v : v;
    return 0;
}

/* Matches one path step (s, n bytes: "Name", "Ns:Name" or "*") against element e. */
static int step_match(const struct et_wbxml_node *e, const char *s, size_t n)
{
    const char *colon;
    if (e->type != ET_WBXML_ELEMENT)
        return 0;
    if (n == 1 && s[0] == '*')
        return 1;
    if (e->name == NULL)
        return 0;
    colon = memchr(s, ':', n);
    if (colon != NULL) {
        size_t nl = (size_t)(colon - s);
        if (e->ns == NULL || strlen(e->ns) != nl || strncmp(e->ns, s, nl) != 0)
            return 0;
        n -= nl + 1;
        s = colon + 1;
    }
    return strlen(e->name) == n && strncmp(e->name, s, n) == 0;
}

struct steps {
    const char *s[MAX_STEPS];
    size_t n[MAX_STEPS];
    int count;
    int anywhere;
};

static int split(const char *path, struct steps *st)
{
    const char *p = path;
    st->count = 0;
    st->anywhere = 0;
    if (p[0] == '/' && p[1] == '/') {
        st->anywhere = 1;
        p += 2;
    }
    while (*p != '\0') {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || st->count == MAX_STEPS)
            return -1;
        st->s[st->count] = p;
        st->n[st->count] = n;
        st->count++;
        p += n;
        if (*p == '/')
            p++;
    }
    return st->count > 0 ? 0 : -1;
}

/* Does e (a descendant of from) match the path? */
static int path_match(const struct et_wbxml_node *from, const struct et_wbxml_node *e,
                      const struct steps *st)
{
    int k;
    const struct et_wbxml_node *a = e;
    for (k = st->count - 1; k >= 0; k--) {
        if (a == NULL || a == from || !step_match(a, st->s[k], st->n[k]))
            return 0;
        a = a->parent;
    }
    return st->anywhere || a == from;
}

/* Next node in document order below `from` (pre-order), NULL when done. */
static const struct et_wbxml_node *walk(const struct et_wbxml_node *from,
                                        const struct et_wbxml_node *n)
{
    if (n->first_child != NULL)
        return n->first_child;
    while (n != from) {
        if (n->next != NULL)
            return n->next;
        n = n->parent;
    }
    return NULL;
}

void et_wbxml_iter_init(struct et_wbxml_iter *it, const struct et_wbxml_node *from,
                        const char *path)
{
    it->from = from;
    it->cur = from;
    it->path = path;
}

const struct et_wbxml_node *et_wbxml_iter_next(struct et_wbxml_iter *it)
{
    struct steps st;
    const struct et_wbxml_node *n;
    if (it->from == NULL || it->cur == NULL || it->path == NULL || split(it->path, &st) != 0)
        return NULL;
    for (n = walk(it->from, it->cur); n != NULL; n = walk(it->from, n)) {
        if (n->type == ET_WBXML_ELEMENT && path_match(it->from, n, &st)) {
            it->cur = n;
            return n;
        }
    }
    it->cur = NULL;
    return NULL;
}

const struct et_wbxml_node *et_wbxml_find(const struct et_wbxml_node *from, const char *path)
{
    struct et_wbxml_iter it;
    et_wbxml_iter_init(&it, from, path);
    return et_wbxml_iter_next(&it);
}

int et_wbxml_find_int(const struct et_wbxml_node *from, const char *path, long long *out)
{
    return et_wbxml_node_int(et_wbxml_find(from, path), out);
}

int et_wbxml_node_is(const struct et_wbxml_node *n, const char *ns, const char *name)
{
    if (n == NULL || n->type != ET_WBXML_ELEMENT || n->name == NULL)
        return 0;
    if (ns != NULL && (n->ns == NULL || strcmp(n->ns, ns) != 0))
        return 0;
    return strcmp(n->name, name) == 0;
}
