/*
 * eastrace decode: raw WBXML bodies or raw HTTP messages (a Fiddler raw/NN_c.txt or NN_s.txt,
 * a body saved from any tool) to readable XML, or to JSON for scripts.
 *
 *   file bytes -> HTTP message? -- yes --> start line, headers, EAS request line, body view
 *                      \-- no ---> WBXML document (or headerless fragment)
 *
 * Exit status: 0 when every file decoded, 1 when one had a decode error (the partial result is
 * still printed, the error names the file and byte offset), 2 when a file could not be read.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "eastrace/arena.h"
#include "eastrace/common.h"
#include "eastrace/eas.h"
#include "eastrace/exchange.h"
#include "eastrace/http.h"
#include "eastrace/wbxml.h"

/* Largest input file read (a capture body cap is 16 MiB; leave room for odd files). */
#define DECODE_MAX_INPUT ((size_t)512 * 1024 * 1024)
/* Default cap on one file's rendered output. */
#define DECODE_DEFAULT_MAX_OUTPUT ((size_t)256 * 1024 * 1024)

struct decode_opts {
    int json;
    int compact;
    int no_status_names;
    int fragment;        /* 1: input is a headerless WBXML fragment */
    int include_secrets; /* show Authorization / Cookie values */
    size_t max_output;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eastrace decode [OPTIONS] FILE...\n"
            "\n"
            "Decodes EAS traffic to readable XML. Each FILE (or - for standard input) is either a\n"
            "raw WBXML body or a raw HTTP request or response (as in a Fiddler raw/NN_c.txt or\n"
            "NN_s.txt): detected from its first bytes. For HTTP, prints the start line, the\n"
            "headers, the decoded EAS request (plain or base64 query) and the body: WBXML as XML\n"
            "with Status names, multipart responses part by part, gzip/deflate undone, MIME\n"
            "(SendMail of EAS 12.1 and earlier) as text.\n"
            "\n"
            "Options:\n"
            "  --json              print one JSON object per file (the decoded tree)\n"
            "  --compact           XML without indentation\n"
            "  --no-status-names   omit the <!-- N = Name --> comments after Status elements\n"
            "  --fragment          the input is a WBXML body without its header\n"
            "  --include-secrets   show Authorization and Cookie values (redacted by default)\n"
            "  --max-output BYTES  cap on the output of one file (default 256 MiB)\n"
            "  -h, --help          show this help\n"
            "\n"
            "Exit status: 0 all decoded, 1 a decode error (partial output and the byte offset\n"
            "are printed), 2 a file could not be read or bad usage.\n");
}

/* Reads a whole file or stdin ("-") into a buffer capped at DECODE_MAX_INPUT. */
static int read_input(const char *path, struct et_buf *out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    uint8_t chunk[65536];
    int rc = 0;

    if (f == NULL) {
        et_cli_err("%s: %s", path, strerror(errno));
        return ET_EIO;
    }
    et_buf_init(out, DECODE_MAX_INPUT);
    for (;;) {
        size_t n = fread(chunk, 1, sizeof(chunk), f);
        if (n > 0 && (rc = et_buf_append(out, chunk, n)) != 0) {
            et_cli_err("%s: larger than %zu MiB, not decoded", path,
                       DECODE_MAX_INPUT / (1024 * 1024));
            break;
        }
        if (n < sizeof(chunk)) {
            if (ferror(f)) {
                et_cli_err("%s: read error: %s", path, strerror(errno));
                rc = ET_EIO;
            }
            break;
        }
    }
    if (f != stdin)
        fclose(f);
    if (rc != 0)
        et_buf_free(out);
    return rc;
}

/* True for headers whose values are credentials. */
static int is_secret_header(const char *name)
{
    return et_strcaseeq(name, "Authorization") || et_strcaseeq(name, "Proxy-Authorization") ||
           et_strcaseeq(name, "Cookie") || et_strcaseeq(name, "Set-Cookie");
}

/* Appends a header value, redacted unless secrets are wanted. */
static int put_header_value(struct et_buf *out, const struct et_header *h,
                            const struct decode_opts *o, struct et_buf *tmp)
{
    if (o->include_secrets || !is_secret_header(h->name))
        return et_buf_puts(out, h->value);
    et_buf_reset(tmp);
    if (et_strcaseeq(h->name, "Authorization") || et_strcaseeq(h->name, "Proxy-Authorization")) {
        if (et_eas_auth_redact(h->value, tmp) == 0)
            return et_buf_append(out, tmp->data, tmp->len);
    }
    return et_buf_puts(out, "[redacted]");
}

/* ---- text (XML) output ---------------------------------------------------------------- */

/* Renders a WBXML body; reports the decode error with the file name. Returns 0 or 1. */
static int text_wbxml(const char *path, const char *what, const uint8_t *p, size_t n,
                      const struct decode_opts *o, struct et_buf *out)
{
    struct et_wbxml_opts wo = {0};
    struct et_wbxml_render_opts ro = {0};
    struct et_error err;
    char msg[400];
    int rc;

    wo.fragment = o->fragment ? 1 : 0;
    ro.compact = o->compact;
    ro.no_status_comments = o->no_status_names;
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

/* Shows a body that is not WBXML: text as is, binary as a short hex/base64 summary. */
static int text_other_body(const uint8_t *p, size_t n, struct et_buf *out)
{
    if (et_utf8_valid(p, n)) {
        int rc = et_buf_append(out, p, n);
        if (rc == 0 && n > 0 && p[n - 1] != '\n')
            rc = et_buf_putc(out, '\n');
        return rc;
    }
    et_buf_printf(out, "[%zu bytes of binary data, base64]\n", n);
    et_base64_encode(out, p, n);
    return et_buf_putc(out, '\n');
}

static int text_body(const char *path, const struct et_exchange *x, int is_request,
                     const struct decode_opts *o, struct et_buf *out)
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
        et_cli_err("%s: body: %s", path, et_error_format(&err, msg, sizeof(msg)));
        bad = 1;
    }
    if (v.truncated)
        et_buf_puts(out, "<!-- body truncated: what follows is partial -->\n");
    switch (v.kind) {
    case ET_BODY_EMPTY:
        break;
    case ET_BODY_WBXML:
        bad |= text_wbxml(path, "body", v.data, v.len, o, out);
        break;
    case ET_BODY_MULTIPART:
        for (size_t i = 0; i < v.nparts; i++) {
            const uint8_t *pp = v.data + v.parts[i].offset;
            size_t pn = v.parts[i].len;
            et_buf_printf(out, "<!-- multipart part %zu of %zu: %zu bytes -->\n", i, v.nparts,
                          pn);
            if (i == 0)
                bad |= text_wbxml(path, "multipart part 0", pp, pn, o, out);
            else
                text_other_body(pp, pn, out);
        }
        break;
    case ET_BODY_RFC822:
        et_buf_puts(out, "<!-- message/rfc822 (MIME) -->\n");
        text_other_body(v.data, v.len, out);
        break;
    case ET_BODY_XML:
    case ET_BODY_TEXT:
    case ET_BODY_OTHER:
        text_other_body(v.data, v.len, out);
        break;
    }
    return bad;
}

static int text_http(const char *path, const struct et_exchange *x, int is_request,
                     const struct decode_opts *o, struct et_buf *out)
{
    const struct et_headers *h = is_request ? &x->req.headers : &x->resp.headers;
    struct et_buf tmp;
    int bad = 0;

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

static void json_str_or_null(struct et_buf *out, const char *s)
{
    if (s == NULL)
        et_buf_puts(out, "null");
    else
        et_buf_put_json_string(out, s, strlen(s));
}

static void json_error(struct et_buf *out, const struct et_error *e)
{
    et_buf_puts(out, "{\"code\":");
    json_str_or_null(out, et_strerror(e->code));
    et_buf_puts(out, ",\"message\":");
    json_str_or_null(out, e->msg);
    if (e->has_offset)
        et_buf_printf(out, ",\"offset\":%llu", (unsigned long long)e->offset);
    et_buf_putc(out, '}');
}

/* Appends {"kind":"wbxml","tree":...,"error":...}. Returns 1 on a decode error. */
static int json_wbxml(const uint8_t *p, size_t n, const struct decode_opts *o, struct et_buf *out,
                      struct et_error *err)
{
    struct et_wbxml_opts wo = {0};
    struct et_wbxml_render_opts ro = {0};
    struct et_wbxml_doc *doc = NULL;
    int rc;

    wo.fragment = o->fragment ? 1 : 0;
    ro.no_status_comments = o->no_status_names;
    rc = et_wbxml_decode(p, n, &wo, &doc, err);
    et_buf_puts(out, "{\"kind\":\"wbxml\",\"tree\":");
    if (doc != NULL)
        et_wbxml_to_json(doc, &ro, out);
    else
        et_buf_puts(out, "null");
    et_buf_puts(out, ",\"error\":");
    if (rc != 0)
        json_error(out, err);
    else
        et_buf_puts(out, "null");
    et_buf_putc(out, '}');
    et_wbxml_doc_free(doc);
    return rc != 0;
}

static int json_body(const char *path, const struct et_exchange *x, int is_request,
                     const struct decode_opts *o, struct et_buf *out)
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
    json_str_or_null(out, et_body_kind_name(v.kind));
    et_buf_printf(out, ",\"wire_bytes\":%zu,\"decoded_bytes\":%zu,\"truncated\":%s,\"encoding\":",
                  b->len, v.len, v.truncated ? "true" : "false");
    json_str_or_null(out, v.encoding);
    et_buf_puts(out, ",\"error\":");
    if (v.decode_status != 0 || v.multipart_status != 0) {
        json_error(out, &err);
        et_cli_err("%s: body: %s", path, et_error_format(&err, msg, sizeof(msg)));
        bad = 1;
    } else {
        et_buf_puts(out, "null");
    }
    et_buf_puts(out, ",\"content\":");
    et_error_clear(&err);
    if (v.kind == ET_BODY_WBXML) {
        bad |= json_wbxml(v.data, v.len, o, out, &err);
    } else if (v.kind == ET_BODY_MULTIPART) {
        et_buf_puts(out, "{\"kind\":\"multipart\",\"parts\":[");
        for (size_t i = 0; i < v.nparts; i++) {
            const uint8_t *pp = v.data + v.parts[i].offset;
            size_t pn = v.parts[i].len;
            if (i)
                et_buf_putc(out, ',');
            if (i == 0) {
                bad |= json_wbxml(pp, pn, o, out, &err);
            } else {
                et_buf_printf(out, "{\"kind\":\"data\",\"bytes\":%zu,\"base64\":\"", pn);
                et_base64_encode(out, pp, pn);
                et_buf_puts(out, "\"}");
            }
        }
        et_buf_puts(out, "]}");
    } else if (v.len > 0 && et_utf8_valid(v.data, v.len)) {
        et_buf_puts(out, "{\"kind\":\"text\",\"text\":");
        et_buf_put_json_string(out, (const char *)v.data, v.len);
        et_buf_putc(out, '}');
    } else if (v.len > 0) {
        et_buf_puts(out, "{\"kind\":\"data\",\"base64\":\"");
        et_base64_encode(out, v.data, v.len);
        et_buf_puts(out, "\"}");
    } else {
        et_buf_puts(out, "null");
    }
    if (err.code != 0)
        et_cli_err("%s: body: %s", path, et_error_format(&err, msg, sizeof(msg)));
    et_buf_putc(out, '}');
    return bad;
}

static int json_http(const char *path, const struct et_exchange *x, int is_request,
                     const struct decode_opts *o, struct et_buf *out)
{
    const struct et_headers *h = is_request ? &x->req.headers : &x->resp.headers;
    struct et_buf tmp;
    int bad;

    et_buf_init(&tmp, 0);
    if (is_request) {
        et_buf_puts(out, "\"type\":\"request\",\"method\":");
        json_str_or_null(out, x->req.method);
        et_buf_puts(out, ",\"target\":");
        json_str_or_null(out, x->req.target);
    } else {
        et_buf_printf(out, "\"type\":\"response\",\"status\":%d,\"reason\":", x->resp.status);
        json_str_or_null(out, x->resp.reason);
    }
    et_buf_puts(out, ",\"headers\":[");
    for (size_t i = 0; i < h->n; i++) {
        if (i)
            et_buf_putc(out, ',');
        et_buf_putc(out, '[');
        json_str_or_null(out, h->v[i].name);
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
            json_str_or_null(out, r.cmd);
            et_buf_puts(out, ",\"user\":");
            json_str_or_null(out, r.user);
            et_buf_puts(out, ",\"device_id\":");
            json_str_or_null(out, r.device_id);
            et_buf_puts(out, ",\"device_type\":");
            json_str_or_null(out, r.device_type);
            et_buf_puts(out, ",\"protocol\":");
            json_str_or_null(out, r.protocol);
            et_buf_puts(out, ",\"policy_key\":");
            json_str_or_null(out, r.policy_key);
            et_buf_printf(out, ",\"base64_query\":%s,\"params\":{",
                          r.base64_form ? "true" : "false");
            for (size_t i = 0; i < r.nparams; i++) {
                if (i)
                    et_buf_putc(out, ',');
                json_key(out, r.params[i].name);
                json_str_or_null(out, r.params[i].value);
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

/* ---- driver --------------------------------------------------------------------------- */

/* Decodes one input. Returns ET_EXIT_OK, ET_EXIT_FINDINGS (decode error) or ET_EXIT_INPUT. */
static int decode_one(const char *path, const struct decode_opts *o)
{
    struct et_buf in, out;
    struct et_exchange *x = NULL;
    struct et_error err;
    char msg[400];
    int kind, bad = 0, rc;

    if (read_input(path, &in) != 0)
        return ET_EXIT_INPUT;
    et_buf_init(&out, o->max_output);
    et_error_clear(&err);
    kind = o->fragment ? ET_HTTP_NONE : et_http_detect(in.data, in.len);

    if (o->json) {
        et_buf_puts(&out, "{\"file\":");
        json_str_or_null(&out, path);
        et_buf_putc(&out, ',');
    }
    if (kind == ET_HTTP_REQUEST || kind == ET_HTTP_RESPONSE) {
        x = et_exchange_new();
        if (x == NULL) {
            et_cli_err("out of memory");
            exit(ET_EXIT_INPUT);
        }
        x->source = ET_SRC_RAW;
        rc = kind == ET_HTTP_REQUEST ? et_http_parse_request(in.data, in.len, x, &err)
                                     : et_http_parse_response(in.data, in.len, x, &err);
        if (rc != 0) {
            et_cli_err("%s: HTTP %s: %s", path, kind == ET_HTTP_REQUEST ? "request" : "response",
                       et_error_format(&err, msg, sizeof(msg)));
            bad = 1;
        }
        if (o->json) {
            bad |= json_http(path, x, kind == ET_HTTP_REQUEST, o, &out);
            et_buf_puts(&out, ",\"http_error\":");
            if (rc != 0)
                json_error(&out, &err);
            else
                et_buf_puts(&out, "null");
        } else {
            bad |= text_http(path, x, kind == ET_HTTP_REQUEST, o, &out);
            if (rc != 0)
                et_buf_printf(&out, "<!-- HTTP message incomplete: %s -->\n", msg);
        }
    } else if (o->json) {
        et_buf_puts(&out, "\"type\":\"wbxml\",\"body\":");
        bad |= json_wbxml(in.data, in.len, o, &out, &err);
        if (err.code != 0)
            et_cli_err("%s: %s", path, et_error_format(&err, msg, sizeof(msg)));
    } else {
        bad |= text_wbxml(path, "WBXML", in.data, in.len, o, &out);
    }
    if (o->json)
        et_buf_puts(&out, "}\n");
    else if (out.len > 0 && out.data[out.len - 1] != '\n')
        et_buf_putc(&out, '\n');

    if (out.len > 0)
        fwrite(out.data, 1, out.len, stdout);
    et_buf_free(&out);
    et_buf_free(&in);
    et_exchange_free(x);
    return bad ? ET_EXIT_FINDINGS : ET_EXIT_OK;
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v == 0)
        return -1;
    *out = (size_t)v;
    return 0;
}

int et_cmd_decode(int argc, char **argv)
{
    struct decode_opts o = {0};
    int status = ET_EXIT_OK, nfiles = 0, i;

    o.max_output = DECODE_DEFAULT_MAX_OUTPUT;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return ET_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            o.json = 1;
        } else if (strcmp(a, "--compact") == 0) {
            o.compact = 1;
        } else if (strcmp(a, "--no-status-names") == 0) {
            o.no_status_names = 1;
        } else if (strcmp(a, "--fragment") == 0) {
            o.fragment = 1;
        } else if (strcmp(a, "--include-secrets") == 0) {
            o.include_secrets = 1;
        } else if (strcmp(a, "--max-output") == 0) {
            if (i + 1 >= argc || parse_size(argv[++i], &o.max_output) != 0) {
                et_cli_err("--max-output needs a positive number of bytes");
                return ET_EXIT_INPUT;
            }
        } else if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (a[0] == '-' && a[1] != '\0') {
            et_cli_err("decode: unknown option '%s' (see eastrace decode --help)", a);
            return ET_EXIT_INPUT;
        } else {
            break;
        }
    }
    for (; i < argc; i++) {
        int rc = decode_one(argv[i], &o);
        if (rc > status)
            status = rc;
        nfiles++;
    }
    if (nfiles == 0) {
        usage(stderr);
        return ET_EXIT_INPUT;
    }
    return status;
}
