/*
 * The detail of one exchange as JSON for the page (rendered once, when the exchange is added,
 * then kept in the spill file).
 *
 * Everything from traffic goes out as a JSON string (et__web_json_str: '<' '>' '&' escaped,
 * invalid UTF-8 replaced), and the page puts it in the DOM as text, never as markup.
 * Credentials are redacted by the one policy every output follows (eastrace/redact.h,
 * docs/security.md): headers and source fields with secret names, credential-like query
 * values and URL userinfo, Password elements of WBXML and plain XML bodies; --include-secrets
 * shows them.
 */
#include "web_int.h"

#include <stdio.h>
#include <string.h>

#include "eastrace/eas.h"
#include "eastrace/http.h"
#include "eastrace/redact.h"
#include "eastrace/wbxml.h"

/* Appends the value of header or source field h as the page may show it. */
static void header_value(const struct et_web_store_opts *o, struct et_arena *a,
                         const struct et_header *h, struct et_buf *out)
{
    const char *v = h->value;
    if (!o->include_secrets && et_redact_is_secret_name(h->name) &&
        (v = et_redact_header(a, h->name, h->value)) == NULL)
        v = ET_REDACTED;
    et__web_json_cstr(out, v);
}

static void jkey(struct et_buf *b, const char *k)
{
    et_buf_printf(b, ",\"%s\":", k);
}

static void jms(struct et_buf *b, int64_t us)
{
    if (us > 0)
        et_buf_printf(b, "%.3f", (double)us / 1000.0);
    else
        et_buf_puts(b, "null");
}

static void headers_json(const struct et_web_store_opts *o, struct et_arena *a,
                         const struct et_headers *h, struct et_buf *out)
{
    et_buf_putc(out, '[');
    for (size_t i = 0; i < h->n; i++) {
        if (i)
            et_buf_putc(out, ',');
        et_buf_putc(out, '[');
        et__web_json_cstr(out, h->v[i].name);
        et_buf_putc(out, ',');
        header_value(o, a, &h->v[i], out);
        et_buf_putc(out, ']');
    }
    et_buf_putc(out, ']');
}

/* 00000000  48 65 6c 6c 6f 0a ...                             |Hello.|  */
static void hex_dump(const uint8_t *p, size_t n, struct et_buf *out)
{
    static const char hex[] = "0123456789abcdef";
    char line[80];
    for (size_t off = 0; off < n; off += 16) {
        size_t k = 0;
        k += (size_t)snprintf(line, sizeof(line), "%08zx  ", off);
        for (size_t i = 0; i < 16; i++) {
            if (off + i < n) {
                line[k++] = hex[p[off + i] >> 4];
                line[k++] = hex[p[off + i] & 15];
            } else {
                line[k++] = ' ';
                line[k++] = ' ';
            }
            line[k++] = ' ';
            if (i == 7)
                line[k++] = ' ';
        }
        line[k++] = '|';
        for (size_t i = 0; i < 16 && off + i < n; i++) {
            uint8_t c = p[off + i];
            line[k++] = c >= 0x20 && c < 0x7f ? (char)c : '.';
        }
        line[k++] = '|';
        line[k++] = '\n';
        et_buf_append(out, line, k);
    }
}

/* "xml":"...","xml_cut":false  or "text":... or "hex":... for one piece of a body. */
static void piece_json(const struct et_web_store_opts *o, int wbxml, int xml, const uint8_t *p,
                       size_t n, struct et_buf *out)
{
    struct et_buf tmp, red;
    int cut = 0;

    et_buf_init(&tmp, o->max_body_xml);
    et_buf_init(&red, 0);
    if (xml && !o->include_secrets && et_utf8_valid(p, n) &&
        et_redact_xml(&red, (const char *)p, n) == 0) {
        /* Plain XML (Autodiscover): Password elements redacted by the policy. */
        p = red.data ? red.data : (const uint8_t *)"";
        n = red.len;
    }
    if (wbxml) {
        struct et_wbxml_opts wo = {0};
        struct et_wbxml_render_opts ro = {0};
        struct et_error err;
        ro.include_secrets = o->include_secrets;
        et_error_clear(&err);
        int rc = et_wbxml_bytes_to_xml(p, n, &wo, &ro, &tmp, &err);
        cut = rc == ET_ETOOBIG && err.code == 0;
        et_buf_puts(out, "\"xml\":");
        et__web_json_str(out, tmp.data ? (const char *)tmp.data : "", tmp.len);
        et_buf_printf(out, ",\"xml_cut\":%s,\"decode_error\":", cut ? "true" : "false");
        if (err.code != 0) {
            char msg[400];
            et__web_json_cstr(out, et_error_format(&err, msg, sizeof(msg)));
        } else {
            et_buf_puts(out, "null");
        }
    } else if (et_utf8_valid(p, n)) {
        size_t k = n > o->max_body_xml ? o->max_body_xml : n;
        while (k < n && k > 0 && (p[k] & 0xC0) == 0x80)
            k--; /* cut on a character boundary */
        et_buf_puts(out, "\"text\":");
        et__web_json_str(out, (const char *)p, k);
        et_buf_printf(out, ",\"text_cut\":%s", k < n ? "true" : "false");
    } else {
        size_t k = n > o->max_body_hex ? o->max_body_hex : n;
        hex_dump(p, k, &tmp);
        et_buf_puts(out, "\"hex\":");
        et__web_json_str(out, tmp.data ? (const char *)tmp.data : "", tmp.len);
        et_buf_printf(out, ",\"hex_cut\":%s", k < n ? "true" : "false");
    }
    et_buf_free(&tmp);
    et_buf_free(&red);
}

static void body_json(const struct et_web_store_opts *o, const struct et_exchange *x,
                      int is_request, struct et_buf *out)
{
    const struct et_headers *h = is_request ? &x->req.headers : &x->resp.headers;
    const struct et_body *b = is_request ? &x->req.body : &x->resp.body;
    struct et_http_view v;
    struct et_error err;
    char msg[400];

    if (b->absent) {
        et_buf_puts(out, "{\"absent\":true}");
        return;
    }
    if (b->len == 0) {
        et_buf_printf(out, "{\"kind\":\"empty\",\"bytes\":%llu}",
                      (unsigned long long)b->wire_len);
        return;
    }
    et_error_clear(&err);
    et_http_body_view(h, b, 0, &v, x->arena, &err);
    et_buf_puts(out, "{\"kind\":");
    et__web_json_cstr(out, et_body_kind_name(v.kind));
    et_buf_printf(out, ",\"bytes\":%llu,\"held\":%zu,\"decoded\":%zu,\"truncated\":%s,",
                  (unsigned long long)b->wire_len, b->len, v.len,
                  v.truncated || b->truncated ? "true" : "false");
    et_buf_puts(out, "\"encoding\":");
    et__web_json_cstr(out, v.encoding);
    et_buf_puts(out, ",\"error\":");
    if (v.decode_status != 0 || v.multipart_status != 0)
        et__web_json_cstr(out, et_error_format(&err, msg, sizeof(msg)));
    else
        et_buf_puts(out, "null");
    et_buf_putc(out, ',');
    if (v.kind == ET_BODY_MULTIPART) {
        et_buf_puts(out, "\"parts\":[");
        for (size_t i = 0; i < v.nparts; i++) {
            et_buf_printf(out, "%s{\"index\":%zu,\"bytes\":%zu,", i ? "," : "", i,
                          v.parts[i].len);
            piece_json(o, i == 0, 0, v.data + v.parts[i].offset, v.parts[i].len, out);
            et_buf_putc(out, '}');
        }
        et_buf_puts(out, "]");
    } else {
        piece_json(o, v.kind == ET_BODY_WBXML, v.kind == ET_BODY_XML, v.data, v.len, out);
    }
    et_buf_putc(out, '}');
}

static void request_json(const struct et_web_store_opts *o, const struct et_exchange *x,
                         struct et_buf *out)
{
    struct et_buf t;
    struct et_eas_request r;
    struct et_error err;

    const char *target = x->req.target ? x->req.target : "?";
    if (!o->include_secrets && (target = et_redact_target(x->arena, target)) == NULL)
        target = ET_REDACTED;
    et_buf_init(&t, 0);
    et_buf_puts(&t, target);
    et_buf_puts(out, "{\"method\":");
    et__web_json_cstr(out, x->req.method);
    jkey(out, "target");
    et__web_json_str(out, t.data ? (const char *)t.data : "", t.len);
    et_buf_printf(out, ",\"version\":\"HTTP/%u.%u\"", x->req.http_major, x->req.http_minor);
    jkey(out, "headers");
    headers_json(o, x->arena, &x->req.headers, out);
    jkey(out, "eas_line");
    et_error_clear(&err);
    /* The EAS line of the target as shown: a credential-like parameter stays redacted. */
    struct et_exchange y = *x;
    y.req.target = target;
    if (et_eas_request_parse(&y, x->arena, &r, &err) == 0 && r.is_eas) {
        et_buf_reset(&t);
        et_eas_request_line(&r, &t);
        et__web_json_str(out, t.data ? (const char *)t.data : "", t.len);
        jkey(out, "eas_error");
        et_buf_puts(out, "null");
    } else {
        char msg[400];
        et_buf_puts(out, "null");
        jkey(out, "eas_error");
        if (err.code != 0 && err.code != ET_EUNSUPPORTED)
            et__web_json_cstr(out, et_error_format(&err, msg, sizeof(msg)));
        else
            et_buf_puts(out, "null");
    }
    jkey(out, "body");
    body_json(o, x, 1, out);
    et_buf_putc(out, '}');
    et_buf_free(&t);
}

static void response_json(const struct et_web_store_opts *o, const struct et_exchange *x,
                          struct et_buf *out)
{
    struct et_eas_response_info ri;
    int m = 0;

    et_buf_printf(out, "{\"status\":%d,\"reason\":", x->resp.status);
    et__web_json_cstr(out, x->resp.reason);
    et_buf_printf(out, ",\"version\":\"HTTP/%u.%u\"", x->resp.http_major, x->resp.http_minor);
    jkey(out, "headers");
    headers_json(o, x->arena, &x->resp.headers, out);
    jkey(out, "notes");
    et_buf_putc(out, '[');
    et_eas_response_info(x, &ri);
    if (ri.http_status != 200 && ri.http_meaning != NULL) {
        struct et_buf n;
        et_buf_init(&n, 0);
        et_buf_printf(&n, "HTTP %d: %s", ri.http_status, ri.http_meaning);
        et__web_json_str(out, (const char *)n.data, n.len);
        et_buf_free(&n);
        m++;
    }
    if (ri.throttle != NULL) {
        et_buf_puts(out, m++ ? "," : "");
        et__web_json_cstr(out, "throttled by the server:");
        et_buf_putc(out, ',');
        et__web_json_cstr(out, ri.throttle);
    }
    if (ri.location != NULL) {
        et_buf_puts(out, m++ ? "," : "");
        et__web_json_cstr(out, "redirect (X-MS-Location):");
        et_buf_putc(out, ',');
        et__web_json_cstr(out, ri.location);
    }
    et_buf_putc(out, ']');
    jkey(out, "body");
    body_json(o, x, 0, out);
    et_buf_putc(out, '}');
}

int et__web_render_detail(const struct et_web_store_opts *o, uint64_t n,
                          const struct et_exchange *x, const struct et_view *v,
                          const struct et_finding *f, unsigned seen, struct et_buf *out)
{
    struct et_buf ex;
    int rc;

    et_buf_printf(out, "{\"n\":%llu,\"seen\":%u", (unsigned long long)n, seen);
    /* The replay --json object: the numbers and names the CLI prints. Its strings are
     * escaped for HTML below; its path has no query, so nothing secret is in it. */
    et_buf_init(&ex, 0);
    et_exchange_json(x, v, f, n, &ex);
    if ((rc = et__web_json_harden(&ex)) != 0) {
        et_buf_free(&ex);
        return rc;
    }
    jkey(out, "exchange");
    et_buf_append(out, ex.data, ex.len);
    et_buf_free(&ex);
    jkey(out, "source");
    et__web_json_cstr(out, et_source_name(x->source));
    jkey(out, "file");
    et__web_json_cstr(out, x->source_name);
    et_buf_printf(out, ",\"record\":%llu", (unsigned long long)x->id);
    jkey(out, "client");
    et__web_json_cstr(out, x->client_addr);
    jkey(out, "via");
    et__web_json_cstr(out, x->via_addr);
    et_buf_printf(out, ",\"reverse\":%s", x->reverse ? "true" : "false");
    jkey(out, "server");
    et__web_json_cstr(out, x->server_addr);
    jkey(out, "scheme");
    et__web_json_cstr(out, x->scheme);
    jkey(out, "host");
    et__web_json_cstr(out, x->host);
    et_buf_printf(out, ",\"port\":%d", x->port);
    et_buf_puts(out, ",\"timings\":{\"connect\":");
    jms(out, x->t.connect);
    et_buf_puts(out, ",\"req_begin\":");
    jms(out, x->t.req_begin);
    et_buf_puts(out, ",\"req_end\":");
    jms(out, x->t.req_end);
    et_buf_puts(out, ",\"resp_begin\":");
    jms(out, x->t.resp_begin);
    et_buf_puts(out, ",\"resp_end\":");
    jms(out, x->t.resp_end);
    et_buf_putc(out, '}');
    jkey(out, "tls");
    if (x->tls.present) {
        et_buf_printf(out, "{\"intercepted\":%s,\"insecure\":%s,\"sni\":",
                      x->tls.intercepted ? "true" : "false", x->tls.insecure ? "true" : "false");
        et__web_json_cstr(out, x->tls.sni);
        jkey(out, "client_version");
        et__web_json_cstr(out, x->tls.client_version);
        jkey(out, "upstream_version");
        et__web_json_cstr(out, x->tls.upstream_version);
        jkey(out, "cipher");
        et__web_json_cstr(out, x->tls.cipher);
        jkey(out, "alpn");
        et__web_json_cstr(out, x->tls.alpn);
        jkey(out, "subject");
        et__web_json_cstr(out, x->tls.upstream_subject);
        jkey(out, "issuer");
        et__web_json_cstr(out, x->tls.upstream_issuer);
        jkey(out, "not_before");
        et__web_json_cstr(out, x->tls.upstream_not_before);
        jkey(out, "not_after");
        et__web_json_cstr(out, x->tls.upstream_not_after);
        jkey(out, "sha256");
        et__web_json_cstr(out, x->tls.upstream_sha256);
        jkey(out, "verify_error");
        et__web_json_cstr(out, x->tls.verify_error);
        et_buf_putc(out, '}');
    } else {
        et_buf_puts(out, "null");
    }
    jkey(out, "meta");
    et_buf_putc(out, '[');
    for (size_t i = 0; i < x->meta.n; i++) {
        et_buf_puts(out, i ? ",[" : "[");
        et__web_json_cstr(out, x->meta.v[i].name);
        et_buf_putc(out, ',');
        header_value(o, x->arena, &x->meta.v[i], out);
        et_buf_putc(out, ']');
    }
    et_buf_putc(out, ']');
    jkey(out, "request");
    if (x->has_request)
        request_json(o, x, out);
    else
        et_buf_puts(out, "null");
    jkey(out, "response");
    if (x->has_response)
        response_json(o, x, out);
    else
        et_buf_puts(out, "null");
    jkey(out, "body_error");
    if (v->body_error)
        et__web_json_cstr(out, v->body_error_msg);
    else
        et_buf_puts(out, "null");
    return et_buf_putc(out, '}');
}
