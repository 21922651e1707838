/*
 * Rendering of HTTP messages and bodies for people and scripts, shared by `eastrace decode`
 * and `eastrace show`: start line, headers (credentials redacted unless asked for), the EAS
 * request line, and the body view (WBXML as XML with Status names, multipart parts, MIME).
 */
#include "cli.h"

#include <string.h>

#include "eastrace/arena.h"
#include "eastrace/common.h"
#include "eastrace/eas.h"
#include "eastrace/exchange.h"
#include "eastrace/http.h"
#include "eastrace/redact.h"
#include "eastrace/wbxml.h"

/* Appends a header value, redacted by the policy (eastrace/redact.h) unless secrets are
 * wanted. */
static int put_header_value(struct et_buf *out, const struct et_header *h,
                            const struct et_cli_render_opts *o, struct et_buf *tmp)
{
    struct et_arena *a;
    const char *v;
    int rc;
    (void)tmp;
    if (o->include_secrets || !et_redact_is_secret_name(h->name))
        return et_buf_puts(out, h->value);
    if ((a = et_arena_new(1024)) == NULL)
        return ET_ENOMEM;
    v = et_redact_header(a, h->name, h->value);
    rc = et_buf_puts(out, v != NULL ? v : ET_REDACTED);
    et_arena_free(a);
    return rc;
}

/* The exchange as the outputs may show it: the request target redacted by the policy (a
 * shallow copy in y when it changes). */
static const struct et_exchange *shown(const struct et_exchange *x, struct et_exchange *y,
                                       const struct et_cli_render_opts *o)
{
    const char *t;
    if (o->include_secrets || x->req.target == NULL)
        return x;
    t = et_redact_target(x->arena, x->req.target);
    if (t == NULL || t == x->req.target)
        return x;
    *y = *x;
    y->req.target = t;
    return y;
}

/* ---- text (XML) output ---------------------------------------------------------------- */

/* Renders a WBXML body; reports the decode error with the file name. Returns 0 or 1. */
int et_cli_wbxml_text(const char *path, const char *what, const uint8_t *p, size_t n,
                      const struct et_cli_render_opts *o, struct et_buf *out)
{
    struct et_wbxml_opts wo = {0};
    struct et_wbxml_render_opts ro = {0};
    struct et_error err;
    char msg[400];
    int rc;

    wo.fragment = o->fragment ? 1 : 0;
    ro.compact = o->compact;
    ro.no_status_comments = o->no_status_names;
    ro.include_secrets = o->include_secrets;
    et_error_clear(&err);
    rc = et_wbxml_bytes_to_xml(p, n, &wo, &ro, out, &err);
    if (rc == ET_ETOOBIG && err.code == 0) {
        et_cli_err("%s: output larger than --max-output (%zu bytes): cut", path, o->max_output);
        return 1;
    }
    if (rc != 0) {
        et_cli_err("%s: %s: %s", path, what, et_error_format(&err, msg, sizeof(msg)));
        return 1;
    }
    return 0;
}

/* Binary bytes shown as base64 are held to the body budget: a 48 MiB prefix is 64 MiB of
 * base64. Returns how many bytes to encode. */
static size_t base64_budget(size_t n)
{
    return ET_MIN(n, ET_BODY_BUDGET / 4 * 3);
}

/* Shows a body that is not WBXML: text as is, binary as a short hex/base64 summary. */
static int text_other_body(const uint8_t *p, size_t n, struct et_buf *out)
{
    if (et_utf8_valid(p, n)) {
        int rc = et_buf_append(out, p, n);
        if (rc == 0 && n > 0 && p[n - 1] != '\n')
            rc = et_buf_putc(out, '\n');
        return rc;
    }
    if (base64_budget(n) < n)
        et_buf_printf(out, "[%zu bytes of binary data, base64 of the first %zu: the output "
                      "budget]\n", n, base64_budget(n));
    else
        et_buf_printf(out, "[%zu bytes of binary data, base64]\n", n);
    et_base64_encode(out, p, base64_budget(n));
    return et_buf_putc(out, '\n');
}

static int text_body(const char *path, const struct et_exchange *x, int is_request,
                     const struct et_cli_render_opts *o, struct et_buf *out)
{
    const struct et_headers *h = is_request ? &x->req.headers : &x->resp.headers;
    const struct et_body *b = is_request ? &x->req.body : &x->resp.body;
    struct et_http_view v;
    struct et_error err;
    char msg[400];
    int bad = 0;

    if (b->len == 0)
        return 0;
    et_error_clear(&err);
    et_http_body_view(h, b, o->max_output, &v, x->arena, &err);
    et_buf_puts(out, "\n");
    if (v.encoding != NULL)
        et_buf_printf(out, "<!-- body: %zu bytes %s, %zu bytes decoded -->\n", b->len, v.encoding,
                      v.len);
    if (v.decode_status != 0 || v.multipart_status != 0) {
        et_cli_err("%s: %s body: %s", path, is_request ? "request" : "response",
                   et_error_format(&err, msg, sizeof(msg)));
        bad = 1;
    }
    if (v.truncated)
        et_buf_puts(out, "<!-- body truncated: what follows is partial -->\n");
    switch (v.kind) {
    case ET_BODY_EMPTY:
        break;
    case ET_BODY_WBXML:
        bad |= et_cli_wbxml_text(path, is_request ? "request body" : "response body", v.data,
                                 v.len, o, out);
        break;
    case ET_BODY_MULTIPART:
        for (size_t i = 0; i < v.nparts; i++) {
            const uint8_t *pp = v.data + v.parts[i].offset;
            size_t pn = v.parts[i].len;
            et_buf_printf(out, "<!-- multipart part %zu of %zu: %zu bytes -->\n", i, v.nparts,
                          pn);
            if (i == 0)
                bad |= et_cli_wbxml_text(path, "multipart part 0", pp, pn, o, out);
            else
                text_other_body(pp, pn, out);
        }
        break;
    case ET_BODY_RFC822:
        et_buf_puts(out, "<!-- message/rfc822 (MIME) -->\n");
        text_other_body(v.data, v.len, out);
        break;
    case ET_BODY_XML:
        if (!o->include_secrets && et_utf8_valid(v.data, v.len)) {
            /* Plain XML (Autodiscover): Password elements redacted by the policy. */
            et_redact_xml(out, (const char *)v.data, v.len);
            if (v.len > 0 && v.data[v.len - 1] != '\n')
                et_buf_putc(out, '\n');
            break;
        }
        text_other_body(v.data, v.len, out);
        break;
    case ET_BODY_TEXT:
    case ET_BODY_OTHER:
        text_other_body(v.data, v.len, out);
        break;
    }
    return bad;
}

int et_cli_http_text(const char *path, const struct et_exchange *x, int is_request,
                     const struct et_cli_render_opts *o, struct et_buf *out)
{
    const struct et_headers *h = is_request ? &x->req.headers : &x->resp.headers;
    struct et_buf tmp;
    int bad = 0;

    struct et_exchange y;
    x = shown(x, &y, o);
    et_buf_init(&tmp, 0);
    if (is_request)
        et_buf_printf(out, "%s %s HTTP/%u.%u\n", x->req.method ? x->req.method : "?",
                      x->req.target ? x->req.target : "?", x->req.http_major, x->req.http_minor);
    else
        et_buf_printf(out, "HTTP/%u.%u %d %s\n", x->resp.http_major, x->resp.http_minor,
                      x->resp.status, x->resp.reason ? x->resp.reason : "");
    for (size_t i = 0; i < h->n; i++) {
        et_buf_printf(out, "%s: ", h->v[i].name);
        put_header_value(out, &h->v[i], o, &tmp);
        et_buf_putc(out, '\n');
    }
    if (is_request) {
        struct et_eas_request r;
        struct et_error err;
        et_error_clear(&err);
        if (et_eas_request_parse(x, x->arena, &r, &err) == 0 && r.is_eas) {
            et_buf_puts(out, "\n<!-- EAS: ");
            et_buf_reset(&tmp);
            et_eas_request_line(&r, &tmp);
            et_buf_put_xml_escaped(out, (const char *)tmp.data, tmp.len);
            et_buf_puts(out, " -->\n");
        } else if (err.code != 0) {
            char msg[400];
            et_buf_printf(out, "\n<!-- EAS query: %s -->\n",
                          et_error_format(&err, msg, sizeof(msg)));
        }
    } else {
        struct et_eas_response_info ri;
        et_eas_response_info(x, &ri);
        if (ri.http_status != 200 && ri.http_meaning != NULL)
            et_buf_printf(out, "\n<!-- HTTP %d: %s -->\n", ri.http_status, ri.http_meaning);
        if (ri.throttle != NULL)
            et_buf_printf(out, "<!-- throttled by the server: %s -->\n", ri.throttle);
        if (ri.location != NULL)
            et_buf_printf(out, "<!-- redirect (X-MS-Location): %s -->\n", ri.location);
    }
    bad |= text_body(path, x, is_request, o, out);
    et_buf_free(&tmp);
    return bad;
}

/* ---- JSON output ---------------------------------------------------------------------- */

static void json_key(struct et_buf *out, const char *k)
{
    et_buf_put_json_string(out, k, strlen(k));
    et_buf_putc(out, ':');
}

void et_cli_json_str(struct et_buf *out, const char *s)
{
    if (s == NULL)
        et_buf_puts(out, "null");
    else
        et_buf_put_json_string(out, s, strlen(s));
}

void et_cli_json_error(struct et_buf *out, const struct et_error *e)
{
    et_buf_puts(out, "{\"code\":");
    et_cli_json_str(out, et_strerror(e->code));
    et_buf_puts(out, ",\"message\":");
    et_cli_json_str(out, e->msg);
    if (e->has_offset)
        et_buf_printf(out, ",\"offset\":%llu", (unsigned long long)e->offset);
    et_buf_putc(out, '}');
}

/* Appends {"kind":"wbxml","tree":...,"error":...}. Returns 1 on a decode error. */
int et_cli_wbxml_json(const uint8_t *p, size_t n, const struct et_cli_render_opts *o, struct et_buf *out,
                      struct et_error *err)
{
    struct et_wbxml_opts wo = {0};
    struct et_wbxml_render_opts ro = {0};
    struct et_wbxml_doc *doc = NULL;
    int rc;

    wo.fragment = o->fragment ? 1 : 0;
    ro.no_status_comments = o->no_status_names;
    ro.include_secrets = o->include_secrets;
    rc = et_wbxml_decode(p, n, &wo, &doc, err);
    et_buf_puts(out, "{\"kind\":\"wbxml\",\"tree\":");
    if (doc != NULL)
        et_wbxml_to_json(doc, &ro, out);
    else
        et_buf_puts(out, "null");
    et_buf_puts(out, ",\"error\":");
    if (rc != 0)
        et_cli_json_error(out, err);
    else
        et_buf_puts(out, "null");
    et_buf_putc(out, '}');
    et_wbxml_doc_free(doc);
    return rc != 0;
}

static int json_body(const char *path, const struct et_exchange *x, int is_request,
                     const struct et_cli_render_opts *o, struct et_buf *out)
{
    const struct et_headers *h = is_request ? &x->req.headers : &x->resp.headers;
    const struct et_body *b = is_request ? &x->req.body : &x->resp.body;
    struct et_http_view v;
    struct et_error err;
    char msg[400];
    int bad = 0;

    et_error_clear(&err);
    et_http_body_view(h, b, o->max_output, &v, x->arena, &err);
    et_buf_puts(out, "{\"kind\":");
    et_cli_json_str(out, et_body_kind_name(v.kind));
    et_buf_printf(out, ",\"wire_bytes\":%zu,\"decoded_bytes\":%zu,\"truncated\":%s,\"encoding\":",
                  b->len, v.len, v.truncated ? "true" : "false");
    et_cli_json_str(out, v.encoding);
    et_buf_puts(out, ",\"error\":");
    if (v.decode_status != 0 || v.multipart_status != 0) {
        et_cli_json_error(out, &err);
        et_cli_err("%s: %s body: %s", path, is_request ? "request" : "response",
                   et_error_format(&err, msg, sizeof(msg)));
        bad = 1;
    } else {
        et_buf_puts(out, "null");
    }
    et_buf_puts(out, ",\"content\":");
    et_error_clear(&err);
    if (v.kind == ET_BODY_WBXML) {
        bad |= et_cli_wbxml_json(v.data, v.len, o, out, &err);
    } else if (v.kind == ET_BODY_MULTIPART) {
        et_buf_puts(out, "{\"kind\":\"multipart\",\"parts\":[");
        for (size_t i = 0; i < v.nparts; i++) {
            const uint8_t *pp = v.data + v.parts[i].offset;
            size_t pn = v.parts[i].len;
            if (i)
                et_buf_putc(out, ',');
            if (i == 0) {
                bad |= et_cli_wbxml_json(pp, pn, o, out, &err);
            } else {
                et_buf_printf(out, "{\"kind\":\"data\",\"bytes\":%zu,\"base64\":\"", pn);
                et_base64_encode(out, pp, base64_budget(pn));
                et_buf_puts(out, "\"}");
            }
        }
        et_buf_puts(out, "]}");
    } else if (v.len > 0 && et_utf8_valid(v.data, v.len)) {
        et_buf_puts(out, "{\"kind\":\"text\",\"text\":");
        if (v.kind == ET_BODY_XML && !o->include_secrets) {
            struct et_buf r; /* plain XML: Password elements redacted by the policy */
            et_buf_init(&r, 0);
            et_redact_xml(&r, (const char *)v.data, v.len);
            et_buf_put_json_string(out, r.data ? (const char *)r.data : "", r.len);
            et_buf_free(&r);
        } else {
            et_buf_put_json_string(out, (const char *)v.data, v.len);
        }
        et_buf_putc(out, '}');
    } else if (v.len > 0) {
        /* Past the body budget only a prefix is encoded; "bytes" says how long the body is. */
        et_buf_printf(out, "{\"kind\":\"data\",\"bytes\":%zu,\"base64\":\"", v.len);
        et_base64_encode(out, v.data, base64_budget(v.len));
        et_buf_puts(out, "\"}");
    } else {
        et_buf_puts(out, "null");
    }
    if (err.code != 0)
        et_cli_err("%s: %s body: %s", path, is_request ? "request" : "response",
                   et_error_format(&err, msg, sizeof(msg)));
    et_buf_putc(out, '}');
    return bad;
}

int et_cli_http_json(const char *path, const struct et_exchange *x, int is_request,
                     const struct et_cli_render_opts *o, struct et_buf *out)
{
    const struct et_headers *h = is_request ? &x->req.headers : &x->resp.headers;
    struct et_buf tmp;
    int bad;

    struct et_exchange y;
    x = shown(x, &y, o);
    et_buf_init(&tmp, 0);
    if (is_request) {
        et_buf_puts(out, "\"type\":\"request\",\"method\":");
        et_cli_json_str(out, x->req.method);
        et_buf_puts(out, ",\"target\":");
        et_cli_json_str(out, x->req.target);
    } else {
        et_buf_printf(out, "\"type\":\"response\",\"status\":%d,\"reason\":", x->resp.status);
        et_cli_json_str(out, x->resp.reason);
    }
    et_buf_puts(out, ",\"headers\":[");
    for (size_t i = 0; i < h->n; i++) {
        if (i)
            et_buf_putc(out, ',');
        et_buf_putc(out, '[');
        et_cli_json_str(out, h->v[i].name);
        et_buf_putc(out, ',');
        {
            struct et_buf val;
            et_buf_init(&val, 0);
            put_header_value(&val, &h->v[i], o, &tmp);
            et_buf_put_json_string(out, val.data ? (const char *)val.data : "", val.len);
            et_buf_free(&val);
        }
        et_buf_putc(out, ']');
    }
    et_buf_putc(out, ']');
    if (is_request) {
        struct et_eas_request r;
        struct et_error err;
        et_error_clear(&err);
        et_buf_puts(out, ",\"eas\":");
        if (et_eas_request_parse(x, x->arena, &r, &err) == 0 && r.is_eas) {
            et_buf_puts(out, "{\"cmd\":");
            et_cli_json_str(out, r.cmd);
            et_buf_puts(out, ",\"user\":");
            et_cli_json_str(out, r.user);
            et_buf_puts(out, ",\"device_id\":");
            et_cli_json_str(out, r.device_id);
            et_buf_puts(out, ",\"device_type\":");
            et_cli_json_str(out, r.device_type);
            et_buf_puts(out, ",\"protocol\":");
            et_cli_json_str(out, r.protocol);
            et_buf_puts(out, ",\"policy_key\":");
            et_cli_json_str(out, r.policy_key);
            et_buf_printf(out, ",\"base64_query\":%s,\"params\":{",
                          r.base64_form ? "true" : "false");
            for (size_t i = 0; i < r.nparams; i++) {
                if (i)
                    et_buf_putc(out, ',');
                json_key(out, r.params[i].name);
                et_cli_json_str(out, o->include_secrets || !et_redact_is_secret_name(
                                                               r.params[i].name)
                                         ? r.params[i].value
                                         : ET_REDACTED);
            }
            et_buf_puts(out, "}}");
        } else {
            et_buf_puts(out, "null");
        }
    }
    et_buf_puts(out, ",\"body\":");
    bad = json_body(path, x, is_request, o, out);
    et_buf_free(&tmp);
    return bad;
}

