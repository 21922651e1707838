/*
 * Small, separately tested parts of the probe: EAS version negotiation, the authentication
 * schemes of WWW-Authenticate, list counting, and the Autodiscover (POX, mobilesync schema)
 * request and response.
 */
#include "eastrace/probe.h"
#include "probe_pieces.h"

#include <string.h>

const char *const et_probe_our_versions[] = {"2.5", "12.0", "12.1", "14.0", "14.1", "16.0",
                                             "16.1"};
const size_t et_probe_our_versions_count = ET_ARRAY_SIZE(et_probe_our_versions);

/* Index of v (length n) in our list, or -1. */
static int our_index(const char *v, size_t n)
{
    for (size_t i = 0; i < et_probe_our_versions_count; i++)
        if (strlen(et_probe_our_versions[i]) == n && memcmp(et_probe_our_versions[i], v, n) == 0)
            return (int)i;
    return -1;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int et_probe_negotiate_version(const char *server_versions, const char *forced,
                               const char **out)
{
    int best = -1, forced_idx = -1, forced_offered = 0, any = 0;
    const char *p = server_versions;

    *out = NULL;
    if (forced != NULL) {
        forced_idx = our_index(forced, strlen(forced));
        if (forced_idx < 0)
            return ET_EINVAL;
    }
    if (p == NULL)
        return ET_EPARSE;
    while (*p != '\0') {
        const char *s, *e;
        while (is_blank(*p) || *p == ',')
            p++;
        s = p;
        while (*p != '\0' && *p != ',')
            p++;
        e = p;
        while (e > s && is_blank(e[-1]))
            e--;
        if (e > s) {
            int i = our_index(s, (size_t)(e - s));
            any = 1;
            if (i > best)
                best = i;
            if (i >= 0 && i == forced_idx)
                forced_offered = 1;
        }
    }
    if (!any)
        return ET_EPARSE;
    if (forced_idx >= 0) {
        if (!forced_offered)
            return ET_ENOTFOUND;
        *out = et_probe_our_versions[forced_idx];
        return 0;
    }
    if (best < 0)
        return ET_ENOTFOUND;
    *out = et_probe_our_versions[best];
    return 0;
}

/* The scheme token at the start of a challenge; the rest of the challenge is its params. */
static unsigned scheme_bit(const char *s, size_t n)
{
    static const struct {
        const char *name;
        unsigned bit;
    } schemes[] = {
        {"Basic", ET_PROBE_AUTH_BASIC},     {"NTLM", ET_PROBE_AUTH_NTLM},
        {"Negotiate", ET_PROBE_AUTH_NEGOTIATE}, {"Bearer", ET_PROBE_AUTH_BEARER},
        {"Digest", ET_PROBE_AUTH_DIGEST},
    };
    for (size_t i = 0; i < ET_ARRAY_SIZE(schemes); i++)
        if (strlen(schemes[i].name) == n && et_strncaseeq(schemes[i].name, s, n))
            return schemes[i].bit;
    return ET_PROBE_AUTH_OTHER;
}

unsigned et_probe_auth_schemes(const struct et_headers *h)
{
    unsigned mask = 0;
    if (h == NULL)
        return 0;
    for (size_t i = 0; i < h->n; i++) {
        const char *p;
        if (!et_strcaseeq(h->v[i].name, "WWW-Authenticate") || h->v[i].value == NULL)
            continue;
        /* Items are separated by commas outside quotes. An item whose first token is not
         * followed by '=' starts a challenge: "Basic realm=\"x\"", "NTLM", "Negotiate abc=";
         * "realm=\"x\"" is a parameter of the previous one. */
        p = h->v[i].value;
        while (*p != '\0') {
            const char *s, *e, *q;
            while (is_blank(*p) || *p == ',')
                p++;
            s = p;
            while (*p != '\0' && !is_blank(*p) && *p != ',' && *p != '=')
                p++;
            e = p;
            q = p;
            while (is_blank(*q))
                q++;
            if (e > s && *q != '=')
                mask |= scheme_bit(s, (size_t)(e - s));
            while (*p != '\0' && *p != ',') {
                if (*p == '"') {
                    p++;
                    while (*p != '\0' && *p != '"') {
                        if (*p == '\\' && p[1] != '\0')
                            p++;
                        p++;
                    }
                    if (*p == '"')
                        p++;
                } else {
                    p++;
                }
            }
        }
    }
    return mask;
}

const char *et_probe_auth_explain(unsigned s)
{
    if (s == 0)
        return "the server asked for credentials without naming a scheme (no WWW-Authenticate): "
               "something in front of it (a load balancer, a reverse proxy) answered";
    if (s & ET_PROBE_AUTH_BASIC)
        return "the server offers Basic authentication, which EAS devices use: the user name "
               "or password is wrong, the account is locked or disabled, or the user name form "
               "(DOMAIN\\user, UPN) is not the one the server expects";
    if ((s & ET_PROBE_AUTH_BEARER) && !(s & (ET_PROBE_AUTH_NTLM | ET_PROBE_AUTH_NEGOTIATE)))
        return "the server offers only Bearer (OAuth, Modern Authentication): devices need an "
               "OAuth-capable mail app; Basic authentication is turned off";
    if (s & (ET_PROBE_AUTH_NTLM | ET_PROBE_AUTH_NEGOTIATE))
        return "the server offers only Windows authentication (NTLM/Negotiate), which EAS "
               "devices do not speak: Basic authentication is off on the "
               "Microsoft-Server-ActiveSync virtual directory";
    return "the server offers an authentication scheme EAS devices do not use";
}

size_t et_probe_list_count(const char *list, const char *cmd, int *has_cmd)
{
    size_t n = 0;
    const char *p = list;
    if (has_cmd != NULL)
        *has_cmd = 0;
    if (p == NULL)
        return 0;
    while (*p != '\0') {
        const char *s, *e;
        while (is_blank(*p) || *p == ',')
            p++;
        s = p;
        while (*p != '\0' && *p != ',')
            p++;
        e = p;
        while (e > s && is_blank(e[-1]))
            e--;
        if (e > s) {
            n++;
            if (cmd != NULL && has_cmd != NULL && strlen(cmd) == (size_t)(e - s) &&
                memcmp(cmd, s, (size_t)(e - s)) == 0)
                *has_cmd = 1;
        }
    }
    return n;
}

/* ---- Autodiscover --------------------------------------------------------------------- */

#define AD_REQ_NS "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"
#define AD_RESP_NS \
    "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"

int et_probe_autodiscover_request(const char *email, struct et_buf *out)
{
    int rc = et_buf_puts(out, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n"
                              "<Autodiscover xmlns=\"" AD_REQ_NS "\">\r\n"
                              "  <Request>\r\n    <EMailAddress>");
    if (rc == 0)
        rc = et_buf_put_xml_escaped(out, email, strlen(email));
    if (rc == 0)
        rc = et_buf_puts(out, "</EMailAddress>\r\n    <AcceptableResponseSchema>" AD_RESP_NS
                              "</AcceptableResponseSchema>\r\n  </Request>\r\n"
                              "</Autodiscover>\r\n");
    return rc;
}

/*
 * Finds the first element named `name` (any namespace prefix) in [s, e) and returns its
 * content span. Elements of the same name are not nested in these responses.
 */
static int find_elem(const char *s, const char *e, const char *name, const char **cs,
                     const char **ce)
{
    size_t nl = strlen(name);
    for (const char *p = s; p < e; p++) {
        const char *q, *t;
        if (*p != '<' || p + 1 >= e || p[1] == '/' || p[1] == '?' || p[1] == '!')
            continue;
        q = p + 1;
        t = q;
        while (t < e && *t != '>' && *t != ' ' && *t != '/' && *t != '\t' && *t != '\r' &&
               *t != '\n')
            t++;
        /* local name = after the last ':' of the tag name */
        {
            const char *ln = q;
            for (const char *k = q; k < t; k++)
                if (*k == ':')
                    ln = k + 1;
            if ((size_t)(t - ln) != nl || memcmp(ln, name, nl) != 0)
                continue;
        }
        while (t < e && *t != '>')
            t++;
        if (t >= e)
            return 0;
        if (t[-1] == '/') { /* <Name/> */
            *cs = *ce = t + 1;
            return 1;
        }
        *cs = t + 1;
        for (const char *k = t + 1; k + 1 < e; k++) {
            if (k[0] == '<' && k[1] == '/') {
                const char *m = k + 2, *ln = m, *te = m;
                while (te < e && *te != '>')
                    te++;
                for (const char *z = m; z < te; z++)
                    if (*z == ':')
                        ln = z + 1;
                if ((size_t)(te - ln) == nl && memcmp(ln, name, nl) == 0) {
                    *ce = k;
                    return 1;
                }
            }
        }
        return 0;
    }
    return 0;
}

/* Text of an element with blanks trimmed and the five XML entities undone, in the arena. */
static const char *elem_text(struct et_arena *a, const char *s, const char *e, const char *name)
{
    const char *cs, *ce;
    char *out, *w;
    if (!find_elem(s, e, name, &cs, &ce))
        return NULL;
    while (cs < ce && (*cs == ' ' || *cs == '\t' || *cs == '\r' || *cs == '\n'))
        cs++;
    while (ce > cs && (ce[-1] == ' ' || ce[-1] == '\t' || ce[-1] == '\r' || ce[-1] == '\n'))
        ce--;
    out = et_arena_alloc(a, (size_t)(ce - cs) + 1);
    if (out == NULL)
        return NULL;
    w = out;
    for (const char *p = cs; p < ce; p++) {
        static const struct {
            const char *ent;
            char c;
        } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
        int done = 0;
        if (*p == '&') {
            for (size_t i = 0; i < ET_ARRAY_SIZE(ents); i++) {
                size_t l = strlen(ents[i].ent);
                if ((size_t)(ce - p) >= l && memcmp(p, ents[i].ent, l) == 0) {
                    *w++ = ents[i].c;
                    p += l - 1;
                    done = 1;
                    break;
                }
            }
        }
        if (!done)
            *w++ = *p;
    }
    *w = '\0';
    return out;
}

int et_probe_autodiscover_parse(const uint8_t *p, size_t n, struct et_arena *a,
                                struct et_probe_autodiscover *out, struct et_error *e)
{
    const char *s = (const char *)p, *end = s + n;
    const char *rs, *re, *xs, *xe;

    memset(out, 0, sizeof(*out));
    if (p == NULL || n == 0) {
        et_error_set(e, ET_EPARSE, "empty body, not an Autodiscover response");
        return ET_EPARSE;
    }
    if (!find_elem(s, end, "Autodiscover", &rs, &re)) {
        size_t k = 0;
        while (k < n && k < 40 && p[k] >= 0x20 && p[k] < 0x7f)
            k++;
        et_error_set(e, ET_EPARSE, "not an Autodiscover response (starts with \"%.*s\")",
                     (int)k, s);
        return ET_EPARSE;
    }
    out->display_name = elem_text(a, rs, re, "DisplayName");
    /* Error at the top (protocol errors: ErrorCode 600 invalid request, 601 schema) ... */
    if (find_elem(rs, re, "Error", &xs, &xe)) {
        out->error_code = elem_text(a, xs, xe, "ErrorCode");
        if (out->error_code == NULL)
            out->error_code = elem_text(a, xs, xe, "Status");
        out->error_message = elem_text(a, xs, xe, "Message");
        if (out->error_code == NULL && out->error_message == NULL)
            out->error_code = "unknown";
    }
    out->redirect = elem_text(a, rs, re, "Redirect");
    /* Every Server element: the one of Type MobileSync carries the EAS URL. */
    {
        const char *cur = rs;
        while (cur < re && find_elem(cur, re, "Server", &xs, &xe)) {
            const char *type = elem_text(a, xs, xe, "Type");
            if (type != NULL && strcmp(type, "MobileSync") == 0) {
                out->eas_url = elem_text(a, xs, xe, "Url");
                out->server_name = elem_text(a, xs, xe, "Name");
                break;
            }
            cur = xe + 1;
        }
    }
    return 0;
}
