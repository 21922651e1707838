/*
 * eastrace show: one exchange in full, as EAS Inspector shows it: where it came from, timings,
 * TLS facts, the failure if any, the findings, then the request and the response with headers,
 * the decoded EAS request line and the bodies as XML.
 *
 * N is the exchange's number in `eastrace replay` of the same files (the pipeline's one
 * number: the record's number for one input, the merged position for several; docs/json.md).
 * The pipeline runs the analyzer over every exchange up to N, so pattern findings are the
 * same as replay's.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "eastrace/redact.h"
#include "eastrace/analyzer.h"
#include "eastrace/exchange.h"
#include "eastrace/pipeline.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: eastrace show [OPTIONS] FILE... N\n"
               "\n"
               "Prints exchange N (its number in `eastrace replay FILE...`) in full: source,\n"
               "timings, TLS, findings with next steps, request and response headers, the\n"
               "decoded EAS request line and both bodies as XML with Status names.\n"
               "\n"
               "N is the number replay prints: with one input, the record's own number (capture\n"
               "record, .saz session, HAR entry, log line or mailbox-log entry, as the proxy's\n"
               "live view printed it); with several, the position in the merged timeline.\n"
               "\n"
               "Options:\n"
               "  --json              one JSON object instead of text\n"
               "  --compact           XML without indentation\n"
               "  --include-secrets   show credentials: Authorization, cookies, passwords in queries\n"
               "                      and XML (redacted by default, docs/security.md)\n"
               "  --format FMT        read the files as FMT (capture, saz, har, iis, mailboxlog)\n"
               "  --no-correlate      as replay --no-correlate (the numbers then match it)\n"
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
                          const struct et_finding *f, uint64_t n, uint64_t record,
                          unsigned seen_by, unsigned flags, struct et_buf *b)
{
    int64_t base = x->t.connect ? x->t.connect : x->t.req_begin;
    char num[32];

    et_timeline_header(0, b);
    et_timeline_line(x, v, f, flags & ET_RENDER_COLOR, b);
    et_buf_printf(b, "\nExchange %llu\n", (unsigned long long)n);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)record);
    put_kv(b, "source", et_source_name(x->source));
    put_kv(b, "file", x->source_name);
    put_kv(b, "record in file", num);
    if (seen_by & (seen_by - 1))
        et_buf_printf(b, "  %-22s %s%s%s\n", "seen by", seen_by & ET_SEEN_CAP ? "capture " : "",
                      seen_by & ET_SEEN_IIS ? "iis " : "",
                      seen_by & ET_SEEN_MBX ? "mailboxlog" : "");
    put_kv(b, "client", x->client_addr);
    put_kv(b, "via", x->via_addr);
    if (x->reverse)
        put_kv(b, "recorded by", "reverse proxy (in front of the server)");
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
    if (v->exdiag.present) {
        et_buf_puts(b, "Exchange diagnostics\n");
        et_view_exdiag_text(v, "  ", b);
    }
    if (x->err.code != 0) {
        et_buf_printf(b, "  %-22s %s: %s\n", "FAILED", et_stage_name(x->err.stage),
                      x->err.message ? x->err.message : et_strerror(x->err.code));
    }
    if (x->facts.present) {
        char st[24] = "", hb[24] = "";
        if (x->facts.status >= 0)
            snprintf(st, sizeof(st), "%ld", x->facts.status);
        if (x->facts.heartbeat >= 0)
            snprintf(hb, sizeof(hb), "%ld s", x->facts.heartbeat);
        et_buf_puts(b, "\nServer log\n");
        put_kv(b, "Status", st);
        put_kv(b, "error", x->facts.error);
        put_kv(b, "exception", x->facts.exception);
        put_kv(b, "heartbeat", hb);
        put_kv(b, "SyncKey", x->facts.sync_key);
        put_kv(b, "access state", x->facts.access_state);
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

struct show_ctx {
    uint64_t want;
    int json, found, bad;
    struct et_cli_render_opts ro;
    uint64_t count, lo, hi; /* exchanges seen and their lowest and highest numbers */
};

/* The show sink: renders the exchange numbered want, then stops the pipeline. */
static int on_show(void *arg, const struct et_pipe_item *it)
{
    struct show_ctx *c = arg;
    const struct et_exchange *x = it->x;
    struct et_buf b;

    c->count++;
    if (c->lo == 0 || it->n < c->lo)
        c->lo = it->n;
    if (it->n > c->hi)
        c->hi = it->n;
    if (it->n != c->want)
        return 0;
    c->found = 1;
    et_buf_init(&b, 0);
    if (c->json) {
        et_buf_puts(&b, "{\"exchange\":");
        et_exchange_json(x, it->v, it->findings, it->n, &b);
        if (x->has_request) {
            et_buf_puts(&b, ",\"request\":{");
            c->bad |= et_cli_http_json(x->source_name, x, 1, &c->ro, &b);
            et_buf_putc(&b, '}');
        }
        if (x->has_response) {
            et_buf_puts(&b, ",\"response\":{");
            c->bad |= et_cli_http_json(x->source_name, x, 0, &c->ro, &b);
            et_buf_putc(&b, '}');
        }
        et_buf_puts(&b, "}\n");
        fwrite(b.data, 1, b.len, stdout);
    } else {
        unsigned flags = et_cli_use_color(stdout) ? ET_RENDER_COLOR : 0;
        text_overview(x, it->v, it->findings, it->n, it->record, it->seen_by, flags, &b);
        fwrite(b.data, 1, b.len, stdout);
        et_buf_reset(&b);
        if (x->has_request) {
            et_buf_puts(&b, "\n---- request ----\n");
            c->bad |= et_cli_http_text(x->source_name, x, 1, &c->ro, &b);
        }
        if (x->has_response) {
            et_buf_puts(&b, "\n---- response ----\n");
            c->bad |= et_cli_http_text(x->source_name, x, 0, &c->ro, &b);
        } else {
            et_buf_puts(&b, "\n---- no response ----\n");
        }
        et_cli_write_safe(stdout, b.data, b.len);
    }
    et_buf_free(&b);
    return ET_PIPE_STOP;
}

int et_cmd_show(int argc, char **argv)
{
    struct et_pipe_opts po;
    struct show_ctx c;
    struct et_pipe_sink sink;
    struct et_pipe *p;
    char **files = NULL;
    size_t nfiles = 0;
    int status = ET_EXIT_OK;

    memset(&c, 0, sizeof(c));
    et_pipe_opts_default(&po);
    c.ro.max_output = ET_BODY_BUDGET;
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
            c.json = 1;
        } else if (strcmp(a, "--compact") == 0) {
            c.ro.compact = 1;
        } else if (strcmp(a, "--include-secrets") == 0) {
            c.ro.include_secrets = 1;
            show_secrets = 1;
        } else if (strcmp(a, "--no-correlate") == 0) {
            po.correlate = 0;
        } else if (strcmp(a, "--format") == 0 && i + 1 < argc) {
            po.format = argv[++i];
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
        c.want = strtoull(files[nfiles - 1], &end, 10);
        if (*end != '\0' || c.want == 0) {
            et_cli_err("show: the last argument must be an exchange number (from replay)");
            et_free(files);
            return ET_EXIT_INPUT;
        }
        nfiles--;
    }
    sink.on_exchange = on_show;
    sink.on_finish = NULL;
    sink.arg = &c;
    p = et_pipe_new(&po, &sink);
    if (p == NULL) {
        et_cli_err("out of memory");
        exit(ET_EXIT_INPUT);
    }
    for (size_t i = 0; i < nfiles; i++)
        et_pipe_open(p, files[i]);
    if (et_pipe_run(p) != 0) {
        et_cli_err("show: out of memory");
        status = ET_EXIT_INPUT;
    } else if (!c.found && et_pipe_stats(p)->inputs_failed > 0 && c.count == 0) {
        status = ET_EXIT_INPUT; /* the input's own message said why */
    } else if (!c.found) {
        if (c.count == 0)
            et_cli_err("show: no exchange %llu (the input holds none)",
                       (unsigned long long)c.want);
        else
            et_cli_err("show: no exchange %llu (the input holds %llu, numbered %llu to %llu)",
                       (unsigned long long)c.want, (unsigned long long)c.count,
                       (unsigned long long)c.lo, (unsigned long long)c.hi);
        status = ET_EXIT_INPUT;
    } else if (et_pipe_stats(p)->inputs_failed > 0) {
        status = ET_EXIT_INPUT;
    } else if (c.bad) {
        status = ET_EXIT_FINDINGS;
    }
    et_pipe_free(p);
    et_free(files);
    return status;
}
