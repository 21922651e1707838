/*
 * eastrace show: one exchange in full, as EAS Inspector shows it: where it came from, timings,
 * TLS facts, the failure if any, the findings, then the request and the response with headers,
 * the decoded EAS request line and the bodies as XML.
 *
 * N is the exchange's number in `eastrace replay` of the same files (the merged, unfiltered
 * numbering). The analyzer runs over every exchange up to N so pattern findings are the same.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "eastrace/redact.h"
#include "eastrace/analyzer.h"
#include "eastrace/exchange.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: eastrace show [OPTIONS] FILE... N\n"
               "\n"
               "Prints exchange N (its number in `eastrace replay FILE...`) in full: source,\n"
               "timings, TLS, findings with next steps, request and response headers, the\n"
               "decoded EAS request line and both bodies as XML with Status names.\n"
               "\n"
               "Options:\n"
               "  --json              one JSON object instead of text\n"
               "  --compact           XML without indentation\n"
               "  --include-secrets   show credentials: Authorization, cookies, passwords in queries\n"
               "                      and XML (redacted by default, docs/security.md)\n"
               "  --format FMT        read the files as FMT (capture, saz, har, iis, mailboxlog)\n"
               "  -h, --help          show this help\n");
}

static int show_secrets; /* --include-secrets: the metadata fields unredacted too */

static void put_kv(struct et_buf *b, const char *k, const char *v)
{
    if (v != NULL && v[0] != '\0')
        et_buf_printf(b, "  %-22s %s\n", k, v);
}

static void put_time(struct et_buf *b, const char *k, int64_t us, int64_t base)
{
    char t[40];
    if (us <= 0)
        return;
    et_time_iso8601(us, t, sizeof(t));
    if (base > 0 && us >= base)
        et_buf_printf(b, "  %-22s %s (+%.3f ms)\n", k, t, (double)(us - base) / 1000.0);
    else
        et_buf_printf(b, "  %-22s %s\n", k, t);
}

static void text_overview(const struct et_exchange *x, const struct et_view *v,
                          const struct et_finding *f, uint64_t n, unsigned flags,
                          struct et_buf *b)
{
    int64_t base = x->t.connect ? x->t.connect : x->t.req_begin;
    char num[32];

    et_timeline_header(0, b);
    et_timeline_line(x, v, f, flags & ET_RENDER_COLOR, b);
    et_buf_printf(b, "\nExchange %llu\n", (unsigned long long)n);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)x->id);
    put_kv(b, "source", et_source_name(x->source));
    put_kv(b, "file", x->source_name);
    put_kv(b, "record in file", num);
    put_kv(b, "client", x->client_addr);
    put_kv(b, "server", x->server_addr);
    put_kv(b, "host", x->host);
    put_time(b, "connect", x->t.connect, 0);
    put_time(b, "request begin", x->t.req_begin, base);
    put_time(b, "request end", x->t.req_end, base);
    put_time(b, "response begin", x->t.resp_begin, base);
    put_time(b, "response end", x->t.resp_end, base);
    if (x->tls.present) {
        put_kv(b, "TLS", x->tls.intercepted ? "intercepted" : "tunnelled");
        put_kv(b, "SNI", x->tls.sni);
        put_kv(b, "client TLS version", x->tls.client_version);
        put_kv(b, "server TLS version", x->tls.upstream_version);
        put_kv(b, "cipher", x->tls.cipher);
        put_kv(b, "ALPN", x->tls.alpn);
        put_kv(b, "server certificate", x->tls.upstream_subject);
        put_kv(b, "  issuer", x->tls.upstream_issuer);
        put_kv(b, "  not before", x->tls.upstream_not_before);
        put_kv(b, "  not after", x->tls.upstream_not_after);
        put_kv(b, "  sha256", x->tls.upstream_sha256);
        put_kv(b, "  verify error", x->tls.verify_error);
        if (x->tls.insecure)
            put_kv(b, "  verification", "OFF (--insecure-upstream)");
    }
    if (x->err.code != 0) {
        et_buf_printf(b, "  %-22s %s: %s\n", "FAILED", et_stage_name(x->err.stage),
                      x->err.message ? x->err.message : et_strerror(x->err.code));
    }
    if (x->meta.n > 0) {
        et_buf_puts(b, "\nSource fields\n");
        for (size_t i = 0; i < x->meta.n; i++) {
            const char *k = x->meta.v[i].name, *val = x->meta.v[i].value;
            /* Recorded fields (IIS cs(Cookie), cs-uri-query) under the redaction policy. */
            if (!show_secrets && val != NULL)
                val = strstr(k, "query") != NULL ? et_redact_query(x->arena, val)
                      : strstr(k, "uri") != NULL ? et_redact_target(x->arena, val)
                                                 : et_redact_header(x->arena, k, val);
            put_kv(b, k, val);
        }
    }
    if (f != NULL) {
        et_buf_puts(b, "\nFindings\n");
        for (; f != NULL; f = f->next)
            et_finding_text(f, flags & ET_RENDER_COLOR, "  ", b);
    }
    if (v->body_error)
        et_buf_printf(b, "\n  body decode error: %s\n", v->body_error_msg);
}

int et_cmd_show(int argc, char **argv)
{
    struct et_cli_render_opts ro = {0};
    const char *format = NULL;
    char **files = NULL;
    size_t nfiles = 0;
    unsigned long long want = 0;
    int json = 0, status = ET_EXIT_OK;
    struct et_cli_merge *m = NULL;
    struct et_analyzer *an = NULL;
    struct et_exchange *x;
    unsigned long long n = 0;
    int found = 0;

    ro.max_output = ET_BODY_BUDGET;
    files = et_calloc((size_t)argc, sizeof(*files));
    if (files == NULL)
        return ET_EXIT_INPUT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            et_free(files);
            return ET_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--compact") == 0) {
            ro.compact = 1;
        } else if (strcmp(a, "--include-secrets") == 0) {
            ro.include_secrets = 1;
            show_secrets = 1;
        } else if (strcmp(a, "--format") == 0 && i + 1 < argc) {
            format = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            et_cli_err("show: unknown option '%s' (see eastrace show --help)", a);
            et_free(files);
            return ET_EXIT_INPUT;
        } else {
            files[nfiles++] = argv[i];
        }
    }
    if (nfiles < 2) {
        usage(stderr);
        et_free(files);
        return ET_EXIT_INPUT;
    }
    {
        char *end;
        want = strtoull(files[nfiles - 1], &end, 10);
        if (*end != '\0' || want == 0) {
            et_cli_err("show: the last argument must be an exchange number (from replay)");
            et_free(files);
            return ET_EXIT_INPUT;
        }
        nfiles--;
    }
    m = et_cli_merge_open(files, nfiles, format);
    an = et_analyzer_new(NULL);
    if (m == NULL || an == NULL) {
        et_cli_err("out of memory");
        exit(ET_EXIT_INPUT);
    }
    while (!found && (x = et_cli_merge_next(m)) != NULL) {
        struct et_view v;
        struct et_finding *f = NULL;
        n++;
        if (et_view_build(x, x->arena, &v) != 0 ||
            et_analyzer_feed(an, x, &v, x->arena, &f) != 0) {
            et_cli_err("out of memory");
            exit(ET_EXIT_INPUT);
        }
        if (n == want) {
            struct et_buf b;
            int bad = 0;
            found = 1;
            et_buf_init(&b, 0);
            if (json) {
                et_buf_puts(&b, "{\"exchange\":");
                et_exchange_json(x, &v, f, n, &b);
                if (x->has_request) {
                    et_buf_puts(&b, ",\"request\":{");
                    bad |= et_cli_http_json(x->source_name, x, 1, &ro, &b);
                    et_buf_putc(&b, '}');
                }
                if (x->has_response) {
                    et_buf_puts(&b, ",\"response\":{");
                    bad |= et_cli_http_json(x->source_name, x, 0, &ro, &b);
                    et_buf_putc(&b, '}');
                }
                et_buf_puts(&b, "}\n");
                fwrite(b.data, 1, b.len, stdout);
            } else {
                unsigned flags = et_cli_use_color(stdout) ? ET_RENDER_COLOR : 0;
                text_overview(x, &v, f, n, flags, &b);
                fwrite(b.data, 1, b.len, stdout);
                et_buf_reset(&b);
                if (x->has_request) {
                    et_buf_puts(&b, "\n---- request ----\n");
                    bad |= et_cli_http_text(x->source_name, x, 1, &ro, &b);
                }
                if (x->has_response) {
                    et_buf_puts(&b, "\n---- response ----\n");
                    bad |= et_cli_http_text(x->source_name, x, 0, &ro, &b);
                } else {
                    et_buf_puts(&b, "\n---- no response ----\n");
                }
                et_cli_write_safe(stdout, b.data, b.len);
            }
            et_buf_free(&b);
            if (bad)
                status = ET_EXIT_FINDINGS;
        }
        et_view_reset(&v);
        et_exchange_free(x);
    }
    if (!found) {
        et_cli_err("show: no exchange %llu (the input holds %llu)", want, n);
        status = ET_EXIT_INPUT;
    } else if (et_cli_merge_failed(m)) {
        status = ET_EXIT_INPUT;
    }
    et_analyzer_free(an);
    et_cli_merge_close(m);
    et_free(files);
    return status;
}
