/* The redaction policy (eastrace/redact.h): which recorded values are credentials. */
#include "eastrace/redact.h"

#include <string.h>

#include "eastrace/eas.h"

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

int et_redact_xml(struct et_buf *out, const char *s, size_t n)
{
    size_t i = 0, run = 0;
    int rc;
    while (i < n) {
        const char *lt = memchr(s + i, '<', n - i), *gt, *name, *close;
        size_t nl, pl;
        if (lt == NULL)
            break;
        i = (size_t)(lt - s) + 1;
        if (i >= n || lt[1] == '/' || lt[1] == '!' || lt[1] == '?')
            continue;
        if ((gt = memchr(lt, '>', n - (size_t)(lt - s))) == NULL)
            break;
        if (gt[-1] == '/') /* <Password/> holds nothing */
            continue;
        /* The local name: after an optional "prefix:", up to a blank or '>'. */
        name = lt + 1;
        nl = strcspn(name, " \t\r\n/>");
        if (name + nl > gt)
            continue;
        pl = 0;
        for (size_t k = 0; k < nl; k++)
            if (name[k] == ':')
                pl = k + 1;
        if (nl - pl != 8 || strncmp(name + pl, "Password", 8) != 0)
            continue;
        /* Content runs to the matching close tag with the same qualified name. */
        close = gt + 1;
        for (;;) {
            const char *c = memchr(close, '<', n - (size_t)(close - s));
            if (c == NULL || (size_t)(c - s) + 2 + nl >= n) {
                close = NULL;
                break;
            }
            if (c[1] == '/' && strncmp(c + 2, name, nl) == 0 && (c[2 + nl] == '>' ||
                                                                  c[2 + nl] == ' ')) {
                close = c;
                break;
            }
            close = c + 1;
        }
        if (close == NULL)
            close = s + n; /* unterminated: redact to the end */
        if ((rc = et_buf_append(out, s + run, (size_t)(gt + 1 - (s + run)))) != 0 ||
            (rc = et_buf_puts(out, ET_REDACTED)) != 0)
            return rc;
        run = i = (size_t)(close - s);
    }
    return et_buf_append(out, s + run, n - run);
}
