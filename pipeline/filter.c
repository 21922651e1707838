/*
 * The filters of replay, show and export: --device, --user, --cmd, --host, --since/--until,
 * --errors and --find (Fiddler's Find Sessions: searches the decoded XML, the headers, the
 * target, the decoded EAS request line and a server log's facts). They judge a delivered
 * item, after numbering and the analyzer, so a filter never changes a number or a pattern
 * finding. The text --find searches is et_pipe_find_text(), which the session browser
 * stores for its find box, so both find the same exchanges.
 */
#include "eastrace/pipeline.h"

#include <stdio.h>
#include <string.h>

#include "eastrace/redact.h"

/* ---- the find text: one definition for --find and the session browser's find box ------- */

static int piece(struct et_buf *out, const char *s, size_t n)
{
    int rc = et_buf_append(out, s, n);
    return rc != 0 ? rc : et_buf_putc(out, '\0');
}

static int cpiece(struct et_buf *out, const char *s)
{
    return s != NULL ? piece(out, s, strlen(s)) : 0;
}

/* Names and values; with redact, credentials as the exports write them. */
static int headers_text(const struct et_headers *h, struct et_arena *a, int redact,
                        struct et_buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < h->n && rc == 0; i++) {
        const char *val = redact ? et_redact_header(a, h->v[i].name, h->v[i].value)
                                 : h->v[i].value;
        if (val == NULL)
            return ET_ENOMEM;
        if ((rc = cpiece(out, h->v[i].name)) == 0)
            rc = cpiece(out, val);
    }
    return rc;
}

static int doc_text(const struct et_wbxml_doc *doc, struct et_buf *out)
{
    struct et_buf b;
    struct et_wbxml_render_opts ro = {0};
    int rc;
    if (doc == NULL)
        return 0;
    et_buf_init(&b, 64 * 1024 * 1024);
    ro.compact = 1;
    et_wbxml_to_xml(doc, &ro, &b); /* an XML cut at the cap is searched as far as it goes */
    rc = piece(out, b.data ? (const char *)b.data : "", b.len);
    et_buf_free(&b);
    return rc;
}

/* The server-log facts as show's "Server log" section names them ("Status 3"). */
static int facts_text(const struct et_server_facts *f, struct et_buf *out)
{
    char num[32];
    int rc = 0;
    if (!f->present)
        return 0;
    if (f->status >= 0) {
        snprintf(num, sizeof(num), "Status %ld", f->status);
        rc = cpiece(out, num);
    }
    if (rc == 0 && f->heartbeat >= 0) {
        snprintf(num, sizeof(num), "heartbeat %ld", f->heartbeat);
        rc = cpiece(out, num);
    }
    const char *s[] = {f->error, f->sync_key, f->exception, f->access_state};
    for (size_t i = 0; i < ET_ARRAY_SIZE(s) && rc == 0; i++)
        rc = cpiece(out, s[i]);
    return rc;
}

int et_pipe_find_text(const struct et_exchange *x, const struct et_view *v, int redact,
                      struct et_buf *out)
{
    struct et_arena *a = x->arena;
    int rc = 0;

    if (x->req.target != NULL) {
        const char *t = redact ? et_redact_target(a, x->req.target) : x->req.target;
        if (t == NULL)
            return ET_ENOMEM;
        rc = cpiece(out, t);
    }
    if (rc == 0)
        rc = cpiece(out, x->host);
    if (rc == 0)
        rc = headers_text(&x->req.headers, a, redact, out);
    if (rc == 0)
        rc = headers_text(&x->resp.headers, a, redact, out);
    if (rc == 0)
        rc = headers_text(&x->meta, a, redact, out);
    if (rc == 0)
        rc = facts_text(&x->facts, out);
    if (rc == 0 && v->is_eas) {
        struct et_buf line;
        et_buf_init(&line, 0);
        rc = et_eas_request_line(&v->req, &line);
        if (rc == 0)
            rc = piece(out, line.data ? (const char *)line.data : "", line.len);
        et_buf_free(&line);
    }
    if (rc == 0)
        rc = doc_text(v->req_doc, out);
    if (rc == 0)
        rc = doc_text(v->resp_doc, out);
    /* Bodies that are text (XML of mailbox logs, Autodiscover, MIME); not a body the view
     * decoded, whose XML is there already (its raw WBXML is often valid UTF-8 too, and tag
     * bytes such as 0x4F 0x4B would match "OK"). */
    if (rc == 0 && x->req.body.len && v->req_doc == NULL &&
        et_utf8_valid(x->req.body.data, x->req.body.len))
        rc = piece(out, (const char *)x->req.body.data, x->req.body.len);
    if (rc == 0 && x->resp.body.len && v->resp_doc == NULL &&
        et_utf8_valid(x->resp.body.data, x->resp.body.len))
        rc = piece(out, (const char *)x->resp.body.data, x->resp.body.len);
    return rc;
}

int et_pipe_find_match(const void *text, size_t n, const char *needle)
{
    const char *hay = text;
    size_t m = strlen(needle);
    if (m == 0)
        return 1;
    /* et_strncaseeq stops at a NUL of the text, which the needle does not hold: no match
     * spans two pieces. */
    for (size_t i = 0; i + m <= n; i++)
        if (et_strncaseeq(hay + i, needle, m))
            return 1;
    return 0;
}

static int find_text(const struct et_exchange *x, const struct et_view *v, const char *t)
{
    struct et_buf text;
    int hit;
    et_buf_init(&text, 0);
    /* Out of memory: what was built is searched (a filter has no error to return). */
    et_pipe_find_text(x, v, 0, &text);
    hit = et_pipe_find_match(text.data, text.len, t);
    et_buf_free(&text);
    return hit;
}

static int eq_or_null(const char *want, const char *have)
{
    return want == NULL || (have != NULL && et_strcaseeq(want, have));
}

void et_pipe_filter_facts_of(const struct et_pipe_item *it, struct et_pipe_filter_facts *out)
{
    const struct et_exchange *x = it->x;
    const struct et_view *v = it->v;
    out->device = v->device;
    out->device_id = v->req.device_id;
    out->user = v->user;
    out->auth_user = v->req.auth_user;
    out->cmd = v->cmd;
    if (out->cmd == NULL && x->req.method != NULL && et_strcaseeq(x->req.method, "OPTIONS"))
        out->cmd = "OPTIONS";
    out->host = x->host;
    out->t = et_exchange_time(x);
    out->severity = et_findings_max_severity(it->findings);
}

int et_pipe_filter_match_facts(const struct et_pipe_filter *f,
                               const struct et_pipe_filter_facts *k)
{
    if (f->device != NULL && !eq_or_null(f->device, k->device) &&
        !eq_or_null(f->device, k->device_id))
        return 0;
    /* The User parameter or the Basic user name, as the proxy's --only-user names an account
     * (case-insensitive; "jdoe", "CONTOSO\jdoe" and "jdoe@contoso.com" are one user). */
    if (f->user != NULL && !et_eas_user_match(f->user, k->user) &&
        !et_eas_user_match(f->user, k->auth_user))
        return 0;
    if (f->cmd != NULL && !eq_or_null(f->cmd, k->cmd))
        return 0;
    if (f->host != NULL && !eq_or_null(f->host, k->host))
        return 0;
    if (f->since && (k->t == 0 || k->t < f->since))
        return 0;
    if (f->until && (k->t == 0 || k->t >= f->until))
        return 0;
    if (f->errors_only && k->severity < ET_SEV_WARNING)
        return 0;
    return 1;
}

int et_pipe_filter_match(const struct et_pipe_filter *f, const struct et_pipe_item *it)
{
    struct et_pipe_filter_facts k;
    et_pipe_filter_facts_of(it, &k);
    if (!et_pipe_filter_match_facts(f, &k))
        return 0;
    if (f->find != NULL && !find_text(it->x, it->v, f->find))
        return 0;
    return 1;
}
