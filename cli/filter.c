/*
 * Exchange filters shared by replay, show and export: --device, --user, --cmd, --host,
 * --since/--until, --errors and --find (Fiddler's Find Sessions: searches the decoded XML,
 * the headers, the target and the decoded EAS request line).
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eastrace/analyzer.h"

static int parse_time(const char *s, int64_t *out)
{
    if (et_time_parse_iso8601(s, out) == 0)
        return 0;
    et_cli_err("bad time '%s': use ISO 8601, e.g. 2024-05-01T10:00:00Z", s);
    return -1;
}

int et_cli_filter_arg(struct et_cli_filter *f, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char **slot = NULL;

    if (strcmp(a, "--errors") == 0) {
        f->errors_only = 1;
        return 1;
    }
    if (strcmp(a, "--device") == 0)
        slot = &f->device;
    else if (strcmp(a, "--user") == 0)
        slot = &f->user;
    else if (strcmp(a, "--cmd") == 0)
        slot = &f->cmd;
    else if (strcmp(a, "--host") == 0)
        slot = &f->host;
    else if (strcmp(a, "--find") == 0)
        slot = &f->find;
    else if (strcmp(a, "--since") != 0 && strcmp(a, "--until") != 0)
        return 0;
    if (*i + 1 >= argc) {
        et_cli_err("%s needs a value", a);
        return -1;
    }
    (*i)++;
    if (slot != NULL) {
        *slot = argv[*i];
        return 1;
    }
    if (strcmp(a, "--since") == 0)
        return parse_time(argv[*i], &f->since) == 0 ? 1 : -1;
    return parse_time(argv[*i], &f->until) == 0 ? 1 : -1;
}

const char *et_cli_filter_help =
    "Filters:\n"
    "  --device ID        only this device (DeviceId; else user or client address)\n"
    "  --user NAME        only this user (User parameter or Basic user name)\n"
    "  --cmd CMD          only this EAS command (Sync, Ping, ...; OPTIONS for OPTIONS)\n"
    "  --host NAME        only requests to this host\n"
    "  --since TIME       only exchanges at or after TIME (ISO 8601, UTC unless an offset)\n"
    "  --until TIME       only exchanges before TIME\n"
    "  --errors           only exchanges with a finding (warning or error)\n"
    "  --find TEXT        only exchanges whose decoded XML, headers, target or EAS request\n"
    "                     contain TEXT (case-insensitive)\n";

static int contains(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    if (hay == NULL || m == 0 || n < m)
        return m == 0;
    for (size_t i = 0; i + m <= n; i++)
        if (et_strncaseeq(hay + i, needle, m))
            return 1;
    return 0;
}

static int headers_contain(const struct et_headers *h, const char *t)
{
    for (size_t i = 0; i < h->n; i++)
        if (contains(h->v[i].name, strlen(h->v[i].name), t) ||
            contains(h->v[i].value, strlen(h->v[i].value), t))
            return 1;
    return 0;
}

static int doc_contains(const struct et_wbxml_doc *doc, const char *t)
{
    struct et_buf b;
    struct et_wbxml_render_opts ro = {0};
    int hit;
    if (doc == NULL)
        return 0;
    et_buf_init(&b, 64 * 1024 * 1024);
    ro.compact = 1;
    et_wbxml_to_xml(doc, &ro, &b);
    hit = contains((const char *)b.data, b.len, t);
    et_buf_free(&b);
    return hit;
}

static int find_text(const struct et_exchange *x, const struct et_view *v, const char *t)
{
    struct et_buf line;
    int hit = 0;

    if (x->req.target && contains(x->req.target, strlen(x->req.target), t))
        return 1;
    if (x->host && contains(x->host, strlen(x->host), t))
        return 1;
    if (headers_contain(&x->req.headers, t) || headers_contain(&x->resp.headers, t) ||
        headers_contain(&x->meta, t))
        return 1;
    if (v->is_eas) {
        et_buf_init(&line, 0);
        et_eas_request_line(&v->req, &line);
        hit = line.len && contains((const char *)line.data, line.len, t);
        et_buf_free(&line);
        if (hit)
            return 1;
    }
    if (doc_contains(v->req_doc, t) || doc_contains(v->resp_doc, t))
        return 1;
    /* Bodies that are text (XML of mailbox logs, Autodiscover, MIME). */
    if (x->req.body.len && et_utf8_valid(x->req.body.data, x->req.body.len) &&
        contains((const char *)x->req.body.data, x->req.body.len, t))
        return 1;
    if (x->resp.body.len && et_utf8_valid(x->resp.body.data, x->resp.body.len) &&
        contains((const char *)x->resp.body.data, x->resp.body.len, t))
        return 1;
    return 0;
}

static int eq_or_null(const char *want, const char *have)
{
    return want == NULL || (have != NULL && et_strcaseeq(want, have));
}

int et_cli_filter_match(const struct et_cli_filter *f, const struct et_exchange *x,
                        const struct et_view *v, const struct et_finding *findings)
{
    int64_t t = x->t.req_begin ? x->t.req_begin : (x->t.connect ? x->t.connect : x->t.resp_end);

    if (f->device != NULL && !eq_or_null(f->device, v->device) &&
        !eq_or_null(f->device, v->req.device_id))
        return 0;
    if (f->user != NULL && !eq_or_null(f->user, v->user) &&
        !eq_or_null(f->user, v->req.auth_user))
        return 0;
    if (f->cmd != NULL) {
        const char *cmd = v->cmd;
        if (cmd == NULL && x->req.method != NULL && et_strcaseeq(x->req.method, "OPTIONS"))
            cmd = "OPTIONS";
        if (!eq_or_null(f->cmd, cmd))
            return 0;
    }
    if (f->host != NULL && !eq_or_null(f->host, x->host))
        return 0;
    if (f->since && (t == 0 || t < f->since))
        return 0;
    if (f->until && (t == 0 || t >= f->until))
        return 0;
    if (f->errors_only && et_findings_max_severity(findings) < ET_SEV_WARNING)
        return 0;
    if (f->find != NULL && !find_text(x, v, f->find))
        return 0;
    return 1;
}

int et_cli_write_safe(FILE *f, const unsigned char *p, size_t n)
{
    /* On a terminal, recorded traffic must not drive it: escape C0 controls but newline and
     * tab, and DEL. ANSI colours we add ourselves are written with fputs, not through here. */
    size_t run = 0;
    if (!isatty(fileno(f)))
        return fwrite(p, 1, n, f) == n ? 0 : -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
            fwrite(p + run, 1, i - run, f);
            fprintf(f, "\\x%02X", c);
            run = i + 1;
        }
    }
    fwrite(p + run, 1, n - run, f);
    return ferror(f) ? -1 : 0;
}
