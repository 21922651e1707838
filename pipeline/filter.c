/*
 * The filters of replay, show and export: --device, --user, --cmd, --host, --since/--until,
 * --errors and --find (Fiddler's Find Sessions: searches the decoded XML, the headers, the
 * target and the decoded EAS request line). They judge a delivered item, after numbering
 * and the analyzer, so a filter never changes a number or a pattern finding.
 */
#include "eastrace/pipeline.h"

#include <string.h>

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

static int facts_contain(const struct et_server_facts *f, const char *t)
{
    const char *s[] = {f->error, f->sync_key, f->exception, f->access_state};
    for (size_t i = 0; i < ET_ARRAY_SIZE(s); i++)
        if (s[i] != NULL && contains(s[i], strlen(s[i]), t))
            return 1;
    return 0;
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
        headers_contain(&x->meta, t) || facts_contain(&x->facts, t))
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
    /* Bodies that are text (XML of mailbox logs, Autodiscover, MIME); not a body the view
     * decoded, whose XML was searched above (its raw WBXML is often valid UTF-8 too, and tag
     * bytes such as 0x4F 0x4B would match "OK"). */
    if (x->req.body.len && v->req_doc == NULL &&
        et_utf8_valid(x->req.body.data, x->req.body.len) &&
        contains((const char *)x->req.body.data, x->req.body.len, t))
        return 1;
    if (x->resp.body.len && v->resp_doc == NULL &&
        et_utf8_valid(x->resp.body.data, x->resp.body.len) &&
        contains((const char *)x->resp.body.data, x->resp.body.len, t))
        return 1;
    return 0;
}

static int eq_or_null(const char *want, const char *have)
{
    return want == NULL || (have != NULL && et_strcaseeq(want, have));
}

int et_pipe_filter_match(const struct et_pipe_filter *f, const struct et_pipe_item *it)
{
    const struct et_exchange *x = it->x;
    const struct et_view *v = it->v;
    int64_t t = et_exchange_time(x);

    if (f->device != NULL && !eq_or_null(f->device, v->device) &&
        !eq_or_null(f->device, v->req.device_id))
        return 0;
    /* The User parameter or the Basic user name, as the proxy's --only-user names an account
     * (case-insensitive; "jdoe", "CONTOSO\jdoe" and "jdoe@contoso.com" are one user). */
    if (f->user != NULL && !et_eas_user_match(f->user, v->user) &&
        !et_eas_user_match(f->user, v->req.auth_user))
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
    if (f->errors_only && et_findings_max_severity(it->findings) < ET_SEV_WARNING)
        return 0;
    if (f->find != NULL && !find_text(x, v, f->find))
        return 0;
    return 1;
}
