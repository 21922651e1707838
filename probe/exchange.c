/*
 * The probe's EAS exchange helper: builds a request (the EAS query and headers, the XML
 * encoded to WBXML), sends it on the main connection, numbers the exchange and reports it to
 * opts.on_exchange; decodes the answer's WBXML; explains a failed HTTP answer or Status for
 * a step, with the next step from the guides.
 */
#include "probe_int.h"

#include <stdio.h>
#include <string.h>

#include "eastrace/eas.h"
#include "eastrace/http.h"
#include "eastrace/wbxml.h"

/* ---- Exchanges ------------------------------------------------------------------------- */

int et_probe_step_add_finding(struct et_probe_report *r, struct et_probe_step *s,
                              const char *rule, int severity, const char *message,
                              const char *next_step, uint64_t exchange)
{
    struct et_probe_finding *pf = et_arena_alloc(r->arena, sizeof(*pf));
    if (pf == NULL)
        return ET_ENOMEM;
    memset(pf, 0, sizeof(*pf));
    pf->rule = et_arena_strdup(r->arena, rule ? rule : "?");
    pf->severity = severity;
    pf->message = et_arena_strdup(r->arena, message ? message : "");
    pf->next_step = next_step ? et_arena_strdup(r->arena, next_step) : NULL;
    pf->exchange = exchange;
    if (pf->rule == NULL || pf->message == NULL)
        return ET_ENOMEM;
    if (s->findings_tail != NULL)
        s->findings_tail->next = pf;
    else
        s->findings = pf;
    s->findings_tail = pf;
    return 0;
}

/* Numbers x and reports it to the caller (which records and judges it); x stays ours. */
void et__probe_record(struct probe *pr, struct et_probe_step *s, struct et_exchange *x)
{
    x->id = ++pr->r->exchanges;
    if (pr->o->on_exchange != NULL)
        pr->o->on_exchange(x, pr->r, s, pr->o->exchange_arg);
}

/* The EAS headers of a request, wire or recorded form. */
static char *eas_headers(struct probe *pr, int rec, const char *content_type,
                         const char *policy_key)
{
    struct et_buf b;
    char *out;
    et_buf_init(&b, 1 << 16);
    et_buf_puts(&b, rec ? pr->auth_rec : pr->auth_wire);
    et_buf_printf(&b, "User-Agent: %s\r\n", pr->user_agent);
    if (pr->version != NULL)
        et_buf_printf(&b, "MS-ASProtocolVersion: %s\r\n", pr->version);
    if (policy_key != NULL)
        et_buf_printf(&b, "X-MS-PolicyKey: %s\r\n", policy_key);
    if (content_type != NULL)
        et_buf_printf(&b, "Content-Type: %s\r\n", content_type);
    et_buf_puts(&b, "Accept: */*\r\nAccept-Language: en-us\r\n");
    out = et_arena_strndup(pr->a, b.data ? (const char *)b.data : "", b.len);
    et_buf_free(&b);
    return out;
}

static void url_escape(struct et_buf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || c == '@')
            et_buf_putc(b, c);
        else
            et_buf_printf(b, "%%%02X", c);
    }
}

static const char *eas_target(struct probe *pr, const char *cmd)
{
    struct et_buf b;
    const char *out;
    et_buf_init(&b, 1 << 16);
    et_buf_printf(&b, "%s?", pr->path);
    if (cmd != NULL)
        et_buf_printf(&b, "Cmd=%s&", cmd);
    et_buf_puts(&b, "User=");
    url_escape(&b, pr->user_param);
    et_buf_puts(&b, "&DeviceId=");
    url_escape(&b, pr->device_id);
    et_buf_puts(&b, "&DeviceType=");
    url_escape(&b, pr->device_type);
    out = et_arena_strndup(pr->a, b.data ? (const char *)b.data : "", b.len);
    et_buf_free(&b);
    return out;
}

/*
 * One EAS exchange on the main connection. xml (may be NULL) is encoded to WBXML. *out gets
 * the exchange (the caller frees it). Returns 0 when a response came, else the failure,
 * which is also recorded in (*out)->err.
 */
int et__probe_eas_exchange(struct probe *pr, struct et_probe_step *s, const char *method,
                           const char *cmd, const char *xml, const char *policy_key,
                           int timeout_ms, struct et_exchange **out)
{
    struct et_buf body;
    struct et_error e;
    struct et_probe_req req;
    int rc;

    *out = NULL;
    et_buf_init(&body, 1 << 20);
    et_error_clear(&e);
    if (xml != NULL && (rc = et_wbxml_encode(xml, strlen(xml), &body, &e)) != 0) {
        et__probe_set(s, pr->a, ET_PROBE_FAILED,
                      et_arena_printf(pr->a, "internal error: cannot encode the %s request: %s",
                                      cmd, e.msg),
                      NULL);
        et_buf_free(&body);
        return rc;
    }
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.target = eas_target(pr, cmd);
    req.headers = eas_headers(pr, 0, xml ? "application/vnd.ms-sync.wbxml" : NULL, policy_key);
    req.headers_rec = eas_headers(pr, 1, xml ? "application/vnd.ms-sync.wbxml" : NULL,
                                  policy_key);
    req.body = body.data;
    req.body_len = body.len;
    req.timeout_ms = timeout_ms;
    rc = et__probe_conn_exchange(&pr->conn, &req, out);
    if (*out != NULL)
        et__probe_record(pr, s, *out);
    et_buf_free(&body);
    return rc;
}

/* The response body decoded as WBXML, or NULL (empty or not WBXML). */
struct et_wbxml_doc *et__probe_response_doc(struct et_exchange *x)
{
    struct et_http_view v;
    struct et_wbxml_doc *doc = NULL;
    if (!x->has_response || x->resp.body.len == 0)
        return NULL;
    if (et_http_body_view(&x->resp.headers, &x->resp.body, 0, &v, x->arena, NULL) != 0 &&
        v.len == 0)
        return NULL;
    if (v.kind != ET_BODY_WBXML && v.kind != ET_BODY_OTHER)
        return NULL;
    if (et_wbxml_decode(v.data, v.len, NULL, &doc, NULL) != 0) {
        et_wbxml_doc_free(doc);
        return NULL;
    }
    return doc;
}

const char *et__probe_doc_xml(struct probe *pr, const struct et_wbxml_doc *doc)
{
    struct et_buf b;
    struct et_wbxml_render_opts ro = {.no_declaration = 1};
    const char *out = NULL;
    et_buf_init(&b, 1 << 20);
    if (et_wbxml_to_xml(doc, &ro, &b) == 0 || b.len > 0)
        out = et_arena_strndup(pr->a, (const char *)b.data, b.len);
    et_buf_free(&b);
    return out;
}

/*
 * Explains a response that is not 200 (or no response) for step s: failed, with the
 * reason and next step from the guides. Returns 1 when it did (not a 200).
 */
int et__probe_explain_http(struct probe *pr, struct et_probe_step *s, const struct et_exchange *x,
                           const char *what)
{
    int st = x->has_response ? x->resp.status : 0;
    const char *meaning = et_eas_http_status_meaning(st);
    struct et_arena *a = pr->a;

    if (st == 200)
        return 0;
    if (st == 0) {
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "%s: no response: %s", what,
                                      x->err.message ? x->err.message : "connection failed"),
                      "Check that the server (IIS, MSExchangeSyncAppPool) is up and that no "
                      "firewall or reverse proxy drops long requests; retry with a longer "
                      "timeout.");
        return 1;
    }
    if (st == 401) {
        unsigned sch = et_probe_auth_schemes(&x->resp.headers);
        const char *wa = et_headers_get(&x->resp.headers, "WWW-Authenticate");
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "%s: HTTP 401 Unauthorized (WWW-Authenticate: %s): %s",
                                      what, wa ? wa : "none", et_probe_auth_explain(sch)),
                      "Sign in to OWA with the same user name and password to rule out the "
                      "account (locked, expired password); try the other user name form "
                      "(DOMAIN\\user or user@domain); on the Microsoft-Server-ActiveSync "
                      "virtual directory enable Basic authentication and set its default "
                      "domain (IIS Manager > Authentication > Basic > Edit).");
        return 1;
    }
    if (st == 403) {
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "%s: HTTP 403 Forbidden: %s", what,
                                      meaning ? meaning : "the server refuses this request"),
                      "Check that the user is enabled for ActiveSync (Get-CASMailbox "
                      "-ActiveSyncEnabled), device access rules (blocked or quarantined "
                      "device), and on the virtual directory that SSL Settings > Client "
                      "certificates is Ignore and Require SSL matches how devices connect.");
        return 1;
    }
    if (st == 404) {
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "%s: HTTP 404 Not Found: nothing serves %s here", what,
                                      pr->path),
                      "Check the URL path (/Microsoft-Server-ActiveSync), that the virtual "
                      "directory exists (Get-ActiveSyncVirtualDirectory) and that no HTTP "
                      "Redirect is configured on it or on the Default Web Site.");
        return 1;
    }
    if (st >= 300 && st < 400) {
        const char *loc = et_headers_get(&x->resp.headers, "Location");
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "%s: HTTP %d redirect to %s", what, st,
                                      loc ? loc : "(no Location)"),
                      "Devices do not follow HTTP redirects for EAS: turn off HTTP Redirect on "
                      "the Microsoft-Server-ActiveSync virtual directory (it is inherited from "
                      "the Default Web Site), or configure devices with the final URL.");
        return 1;
    }
    if (st == 449) {
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "%s: HTTP 449: the server wants the device to "
                                         "provision (again) and it did not accept the key",
                                      what),
                      "Check the device's mailbox policy (Get-MobileDeviceMailboxPolicy) and "
                      "that the device can meet it; look for a provisioning loop in the IIS "
                      "logs.");
        return 1;
    }
    if (st >= 500) {
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "%s: HTTP %d %s%s%s", what, st,
                                      x->resp.reason ? x->resp.reason : "",
                                      meaning ? ": " : "", meaning ? meaning : ""),
                      "Check that MSExchangeSyncAppPool is started and runs as LocalSystem "
                      "(restart it: Restart-WebAppPool MSExchangeSyncAppPool), the Application "
                      "event log (MSExchange ActiveSync) and the IIS log for this request; a "
                      "reverse proxy or load balancer in front may be the one answering.");
        return 1;
    }
    et__probe_set(s, a, ET_PROBE_FAILED,
                  et_arena_printf(a, "%s: HTTP %d%s%s", what, st, meaning ? ": " : "",
                                  meaning ? meaning : ""),
                  "Look up the status in the IIS log of the server for this request.");
    return 1;
}

void et__probe_status_fail(struct probe *pr, struct et_probe_step *s, const char *cmd,
                           const char *parent, long long st)
{
    const struct et_eas_status *es = et_eas_status_lookup(cmd, parent, (int)st);
    et__probe_set(s, pr->a, ET_PROBE_FAILED,
                  et_arena_printf(pr->a, "%s Status %lld%s%s%s", cmd, st, es ? " (" : "",
                                  es ? es->name : "", es ? ")" : ""),
                  es ? et_arena_printf(pr->a, "%s. Look for the same Status in the server's "
                                              "logs for this device.",
                                       es->meaning)
                     : "Look up the Status in MS-ASCMD and the server's logs.");
}
