/*
 * The probe's steps, in the order of the Remote Connectivity Analyzer's EAS test. Each step
 * fills its struct et_probe_step; a failure skips the steps that need it:
 *
 *   [1 Autodiscover] -> 2 DNS+TCP -> 3 TLS -> 4 OPTIONS -> 5 Provision -> 6 FolderSync
 *                                      |                                     |-> [7 Sync]
 *                                      +-- --insecure goes on after a failure |-> [8 Ping]
 *
 * Every HTTP exchange goes through record(): numbered and reported to opts.on_exchange (the
 * caller records and judges it, as it does for the proxy's exchanges), then freed here.
 */
#include "eastrace/probe.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/nameser.h>
#include <netdb.h>
#include <resolv.h>
#include <arpa/inet.h>

#include "probe_int.h"

#include "eastrace/eas.h"
#include "eastrace/http.h"
#include "eastrace/tls.h"
#include "eastrace/wbxml.h"

#define DEFAULT_DEVICE_ID "EASTRACEPROBE0001"
#define DEFAULT_DEVICE_TYPE "eastrace"
#define EAS_PATH "/Microsoft-Server-ActiveSync"
#define SYNC_WINDOW 5

struct probe {
    const struct et_probe_opts *o;
    struct et_probe_report *r;
    struct et_arena *a;
    struct et_probe_conn conn;
    int conn_ready;
    char host[256];
    int port;
    int tls;
    char path[1024];
    char user_param[256];
    char *auth_wire;  /* "Authorization: Basic ...\r\n" */
    char *auth_rec;   /* the same, redacted unless include_secrets */
    const char *device_id, *device_type, *user_agent;
    const char *version;  /* negotiated; NULL before OPTIONS */
    char policy_key[64];
    char inbox_id[256];
    char inbox_key[256];
};

const char *et_probe_result_name(enum et_probe_result r)
{
    switch (r) {
    case ET_PROBE_PASSED: return "passed";
    case ET_PROBE_WARNED: return "warned";
    case ET_PROBE_FAILED: return "failed";
    default: return "skipped";
    }
}

const char *et_probe_step_name(enum et_probe_step_id id)
{
    static const char *const names[ET_PROBE_NSTEPS] = {
        "Autodiscover", "DNS and TCP", "TLS", "OPTIONS", "Provision", "FolderSync", "Sync",
        "Ping"};
    return (unsigned)id < ET_PROBE_NSTEPS ? names[id] : "?";
}

void et_probe_opts_init(struct et_probe_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->ping_seconds = 60;
    o->timeout_ms = 15000;
}

int et__probe_line(struct et_probe_step *s, struct et_arena *a, const char *fmt, ...)
{
    struct et_probe_line *l = et_arena_alloc(a, sizeof(*l));
    struct et_buf b;
    va_list ap;
    int rc;

    if (l == NULL)
        return ET_ENOMEM;
    et_buf_init(&b, 1 << 20);
    va_start(ap, fmt);
    rc = et_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    l->text = rc == 0 ? et_arena_strndup(a, (const char *)b.data, b.len) : "";
    et_buf_free(&b);
    if (l->text == NULL)
        return ET_ENOMEM;
    if (s->details_tail != NULL)
        s->details_tail->next = l;
    else
        s->details = l;
    s->details_tail = l;
    return 0;
}

void et__probe_set(struct et_probe_step *s, struct et_arena *a, enum et_probe_result r,
                   const char *reason, const char *next_step)
{
    (void)a;
    if (r < s->result)
        return;
    /* The first reason of the worst kind stays: it is usually the cause of the others. */
    if (r > s->result || s->reason == NULL) {
        if (reason != NULL)
            s->reason = reason;
        if (next_step != NULL)
            s->next_step = next_step;
    }
    s->result = r;
}

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
static void record(struct probe *pr, struct et_probe_step *s, struct et_exchange *x)
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
static int eas_exchange(struct probe *pr, struct et_probe_step *s, const char *method,
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
        record(pr, s, *out);
    et_buf_free(&body);
    return rc;
}

/* The response body decoded as WBXML, or NULL (empty or not WBXML). */
static struct et_wbxml_doc *response_doc(struct et_exchange *x)
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

static const char *doc_xml(struct probe *pr, const struct et_wbxml_doc *doc)
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
static int explain_http(struct probe *pr, struct et_probe_step *s, const struct et_exchange *x,
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

static void skip_rest(struct probe *pr, int from, const char *why)
{
    for (int i = from; i < ET_PROBE_NSTEPS; i++) {
        struct et_probe_step *s = &pr->r->steps[i];
        if (s->result == ET_PROBE_SKIPPED && s->reason == NULL)
            s->reason = why;
    }
}

static void step_done(struct probe *pr, struct et_probe_step *s, int64_t t0)
{
    if (s->result == ET_PROBE_SKIPPED && s->reason == NULL)
        s->result = ET_PROBE_PASSED;
    s->elapsed_us = et_now_us() - t0;
    if (pr->o->on_step != NULL)
        pr->o->on_step(pr->r, s, pr->o->cb_arg);
}

/* ---- URL ------------------------------------------------------------------------------ */

static int parse_url(const char *url, char *host, size_t hostlen, int *port, int *tls,
                     char *path, size_t pathlen)
{
    const char *p = url, *h, *he, *ps;
    if (strncmp(p, "https://", 8) == 0) {
        *tls = 1;
        *port = 443;
        p += 8;
    } else if (strncmp(p, "http://", 7) == 0) {
        *tls = 0;
        *port = 80;
        p += 7;
    } else if (strstr(p, "://") != NULL) {
        return ET_EINVAL;
    } else {
        *tls = 1; /* a bare host name: what a user types into a phone */
        *port = 443;
    }
    h = p;
    ps = p + strcspn(p, "/?#");
    if (*h == '[') {
        he = memchr(h, ']', (size_t)(ps - h));
        if (he == NULL)
            return ET_EINVAL;
        snprintf(host, hostlen, "%.*s", (int)(he - h - 1), h + 1);
        he++;
    } else {
        he = h;
        while (he < ps && *he != ':')
            he++;
        snprintf(host, hostlen, "%.*s", (int)(he - h), h);
    }
    if (host[0] == '\0' || strchr(host, '@') != NULL)
        return ET_EINVAL;
    if (he < ps && *he == ':') {
        char *end = NULL;
        long v = strtol(he + 1, &end, 10);
        if (end != ps || v <= 0 || v > 65535)
            return ET_EINVAL;
        *port = (int)v;
    }
    if (*ps == '/' && ps[1] != '\0' && ps[1] != '?')
        snprintf(path, pathlen, "%.*s", (int)strcspn(ps, "?#"), ps);
    else
        snprintf(path, pathlen, "%s", EAS_PATH);
    return 0;
}

/* ---- Step 1: Autodiscover ------------------------------------------------------------- */

/* One POX POST to url. Returns 1 when it gave an EAS URL (*eas_url set), 0 otherwise; sets
 * *redirect_email when the server redirected to another address. */
static int ad_try(struct probe *pr, struct et_probe_step *s, const char *label, const char *url,
                  const char *email, const char **eas_url, const char **redirect_email,
                  int depth)
{
    struct et_probe_conn c;
    char host[256], path[1024], err[512];
    int port, tls, rc, found = 0;
    enum et_stage stage = ET_STAGE_NONE;
    struct et_buf body;
    struct et_probe_req req;
    struct et_exchange *x = NULL;
    struct et_arena *a = pr->a;

    if (parse_url(url, host, sizeof(host), &port, &tls, path, sizeof(path)) != 0) {
        et__probe_line(s, a, "%s %s: not a URL", label, url);
        return 0;
    }
    et__probe_conn_init(&c, host, port, tls, pr->o->proxy, pr->o->ca_file,
                        ET_MIN(pr->o->timeout_ms, 10000));
    rc = et__probe_conn_open(&c, err, sizeof(err), &stage);
    if (rc != 0) {
        et__probe_line(s, a, "%s %s: %s", label, url, err);
        et__probe_conn_close(&c);
        et_buf_free(&c.in);
        return 0;
    }
    if (tls) {
        X509_STORE *st = et__probe_store_new(pr->o->ca_file);
        struct et_probe_step tmp;
        memset(&tmp, 0, sizeof(tmp));
        if (st != NULL)
            et__probe_check_chain(et_tls_peer_chain(c.tls_conn), st, host, 0, a, &tmp);
        X509_STORE_free(st);
        if (st == NULL || tmp.result == ET_PROBE_FAILED) {
            et__probe_line(s, a, "%s %s: certificate problem: %s%s", label, url,
                           tmp.reason ? tmp.reason : "no trust store",
                           pr->o->insecure ? " (going on: --insecure)" : "");
            if (!pr->o->insecure) {
                et__probe_conn_close(&c);
                et_buf_free(&c.in);
                return 0;
            }
        }
    }
    et_buf_init(&body, 1 << 16);
    et_probe_autodiscover_request(email, &body);
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.target = path;
    req.headers = et_arena_printf(a, "%sUser-Agent: %s\r\nContent-Type: text/xml\r\n",
                                  pr->auth_wire, pr->user_agent);
    req.headers_rec = et_arena_printf(a, "%sUser-Agent: %s\r\nContent-Type: text/xml\r\n",
                                      pr->auth_rec, pr->user_agent);
    req.body = body.data;
    req.body_len = body.len;
    rc = et__probe_conn_exchange(&c, &req, &x);
    if (x != NULL)
        record(pr, s, x);
    if (rc != 0 || x == NULL) {
        et__probe_line(s, a, "%s %s: %s", label, url,
                       x && x->err.message ? x->err.message : "no response");
    } else if (x->resp.status != 200) {
        const char *loc = et_headers_get(&x->resp.headers, "Location");
        et__probe_line(s, a, "%s %s: HTTP %d%s%s", label, url, x->resp.status,
                       loc ? " to " : "", loc ? loc : "");
        if (x->resp.status == 401)
            et__probe_line(s, a, "  %s", et_probe_auth_explain(et_probe_auth_schemes(
                                             &x->resp.headers)));
        /* POX on a 302 is not the redirect method; the method's GET handles those. */
    } else {
        struct et_probe_autodiscover ad;
        struct et_http_view v;
        struct et_error e;
        et_error_clear(&e);
        et_http_body_view(&x->resp.headers, &x->resp.body, 0, &v, x->arena, NULL);
        if (et_probe_autodiscover_parse(v.data, v.len, a, &ad, &e) != 0) {
            et__probe_line(s, a, "%s %s: HTTP 200 but %s", label, url, e.msg);
        } else if (ad.eas_url != NULL) {
            et__probe_line(s, a, "%s %s answered: EAS URL %s%s%s", label, url, ad.eas_url,
                           ad.display_name ? " for " : "",
                           ad.display_name ? ad.display_name : "");
            *eas_url = ad.eas_url;
            found = 1;
        } else if (ad.redirect != NULL && depth == 0) {
            et__probe_line(s, a, "%s %s: redirect to the address %s", label, url, ad.redirect);
            *redirect_email = ad.redirect;
        } else if (ad.error_code != NULL) {
            et__probe_line(s, a, "%s %s: Autodiscover error %s%s%s", label, url, ad.error_code,
                           ad.error_message ? ": " : "",
                           ad.error_message ? ad.error_message : "");
        } else {
            et__probe_line(s, a, "%s %s: answered without a MobileSync server", label, url);
        }
    }
    et_exchange_free(x);
    et_buf_free(&body);
    et__probe_conn_close(&c);
    et_buf_free(&c.in);
    return found;
}

/* The HTTP redirect method: GET over plain HTTP, follow one redirect to https. */
static int ad_redirect_method(struct probe *pr, struct et_probe_step *s, const char *domain,
                              const char *email, const char **eas_url,
                              const char **redirect_email, int depth)
{
    struct et_probe_conn c;
    struct et_probe_req req;
    struct et_exchange *x = NULL;
    char host[300], err[512];
    enum et_stage stage;
    const char *url;
    int found = 0;
    struct et_arena *a = pr->a;

    snprintf(host, sizeof(host), "autodiscover.%s", domain);
    url = et_arena_printf(a, "http://%s/autodiscover/autodiscover.xml", host);
    et__probe_conn_init(&c, host, 80, 0, pr->o->proxy, NULL, ET_MIN(pr->o->timeout_ms, 10000));
    if (et__probe_conn_open(&c, err, sizeof(err), &stage) != 0) {
        et__probe_line(s, a, "redirect method: GET %s: %s", url, err);
        goto out;
    }
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.target = "/autodiscover/autodiscover.xml";
    req.headers = et_arena_printf(a, "User-Agent: %s\r\n", pr->user_agent);
    if (et__probe_conn_exchange(&c, &req, &x) == 0 && x != NULL) {
        const char *loc = et_headers_get(&x->resp.headers, "Location");
        record(pr, s, x);
        if ((x->resp.status == 301 || x->resp.status == 302) && loc != NULL &&
            strncmp(loc, "https://", 8) == 0) {
            et__probe_line(s, a, "redirect method: GET %s: HTTP %d to %s", url, x->resp.status,
                           loc);
            found = ad_try(pr, s, "redirect method: POST", et_arena_strdup(a, loc), email,
                           eas_url, redirect_email, depth);
        } else {
            et__probe_line(s, a, "redirect method: GET %s: HTTP %d%s%s (not a redirect to "
                                 "https)",
                           url, x->resp.status, loc ? " to " : "", loc ? loc : "");
        }
    } else {
        if (x != NULL)
            record(pr, s, x);
        et__probe_line(s, a, "redirect method: GET %s: %s", url,
                       x && x->err.message ? x->err.message : "no response");
    }
out:
    et_exchange_free(x);
    et__probe_conn_close(&c);
    et_buf_free(&c.in);
    return found;
}

/* The SRV record _autodiscover._tcp.domain: target host and port, or 0. */
static int ad_srv(const char *domain, char *target, size_t tlen, int *port, char *err,
                  size_t errlen)
{
    unsigned char ans[4096];
    char name[300];
    ns_msg msg;
    int len, best_prio = 1 << 30, found = 0;

    snprintf(name, sizeof(name), "_autodiscover._tcp.%s", domain);
    len = res_query(name, ns_c_in, ns_t_srv, ans, sizeof(ans));
    if (len < 0) {
        snprintf(err, errlen, "no SRV record %s (%s)", name, hstrerror(h_errno));
        return 0;
    }
    if (ns_initparse(ans, len, &msg) != 0) {
        snprintf(err, errlen, "malformed DNS answer for %s", name);
        return 0;
    }
    for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
        ns_rr rr;
        const unsigned char *rd;
        char t[NS_MAXDNAME];
        int prio;
        if (ns_parserr(&msg, ns_s_an, i, &rr) != 0 || ns_rr_type(rr) != ns_t_srv ||
            ns_rr_rdlen(rr) < 7)
            continue;
        rd = ns_rr_rdata(rr);
        prio = (rd[0] << 8) | rd[1];
        if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 6, t, sizeof(t)) < 0)
            continue;
        if (prio < best_prio) {
            best_prio = prio;
            *port = (rd[4] << 8) | rd[5];
            snprintf(target, tlen, "%s", t);
            found = 1;
        }
    }
    if (!found)
        snprintf(err, errlen, "SRV answer for %s holds no usable record", name);
    return found;
}

static const char *step_autodiscover(struct probe *pr)
{
    struct et_probe_step *s = &pr->r->steps[ET_PROBE_STEP_AUTODISCOVER];
    struct et_arena *a = pr->a;
    const char *email = pr->o->autodiscover, *eas_url = NULL;
    int64_t t0 = et_now_us();

    for (int depth = 0; depth < 2 && eas_url == NULL; depth++) {
        const char *at = strrchr(email, '@'), *redirect = NULL;
        const char *domain;
        char srv_host[NS_MAXDNAME], err[700];
        int srv_port = 443;

        if (at == NULL || at[1] == '\0') {
            et__probe_set(s, a, ET_PROBE_FAILED,
                          et_arena_printf(a, "%s is not an e-mail address", email),
                          "Give --autodiscover the user's primary SMTP address.");
            break;
        }
        domain = at + 1;
        et__probe_line(s, a, "Autodiscover for %s", email);
        if (pr->o->autodiscover_url != NULL) {
            ad_try(pr, s, "POST", pr->o->autodiscover_url, email, &eas_url, &redirect, depth);
        } else if (!ad_try(pr, s, "POST",
                           et_arena_printf(a, "https://%s/autodiscover/autodiscover.xml", domain),
                           email, &eas_url, &redirect, depth) &&
                   redirect == NULL &&
                   !ad_try(pr, s, "POST",
                           et_arena_printf(a,
                                           "https://autodiscover.%s/autodiscover/autodiscover.xml",
                                           domain),
                           email, &eas_url, &redirect, depth) &&
                   redirect == NULL &&
                   !ad_redirect_method(pr, s, domain, email, &eas_url, &redirect, depth) &&
                   redirect == NULL) {
            if (ad_srv(domain, srv_host, sizeof(srv_host), &srv_port, err, sizeof(err))) {
                et__probe_line(s, a, "SRV _autodiscover._tcp.%s: %s port %d", domain, srv_host,
                               srv_port);
                ad_try(pr, s, "SRV: POST",
                       et_arena_printf(a, "https://%s:%d/autodiscover/autodiscover.xml",
                                       srv_host, srv_port),
                       email, &eas_url, &redirect, depth);
            } else {
                et__probe_line(s, a, "SRV: %s", err);
            }
        }
        if (redirect == NULL)
            break;
        email = redirect;
    }
    if (eas_url != NULL) {
        et__probe_line(s, a, "EAS URL: %s", eas_url);
    } else if (s->result != ET_PROBE_FAILED) {
        et__probe_set(s, a, ET_PROBE_FAILED, "no Autodiscover endpoint gave an EAS URL",
                      "Publish Autodiscover for the domain (an autodiscover.DOMAIN A record or "
                      "an _autodiscover._tcp SRV record pointing at the CAS, with a certificate "
                      "that covers the name); until then users must type the server name.");
    }
    step_done(pr, s, t0);
    return eas_url;
}

/* ---- Step 2 and 3: DNS, TCP, TLS ------------------------------------------------------ */

static int step_connect_tls(struct probe *pr)
{
    struct et_probe_step *s2 = &pr->r->steps[ET_PROBE_STEP_CONNECT];
    struct et_probe_step *s3 = &pr->r->steps[ET_PROBE_STEP_TLS];
    struct et_arena *a = pr->a;
    struct addrinfo hints, *res = NULL;
    char err[512];
    enum et_stage stage = ET_STAGE_NONE;
    int64_t t0 = et_now_us(), t1;
    int gai, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    gai = getaddrinfo(pr->host, NULL, &hints, &res);
    if (gai == 0) {
        struct et_buf b;
        et_buf_init(&b, 4096);
        for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
            char ip[INET6_ADDRSTRLEN];
            const void *src = ai->ai_family == AF_INET
                                  ? (const void *)&((const struct sockaddr_in *)(const void *)
                                                        ai->ai_addr)->sin_addr
                                  : (const void *)&((const struct sockaddr_in6 *)(const void *)
                                                        ai->ai_addr)->sin6_addr;
            if (inet_ntop(ai->ai_family, src, ip, sizeof(ip)) != NULL)
                et_buf_printf(&b, "%s%s", b.len ? ", " : "", ip);
        }
        et__probe_line(s2, a, "%s resolves to %s", pr->host, b.data ? (char *)b.data : "?");
        et_buf_free(&b);
        freeaddrinfo(res);
    } else if (pr->o->proxy == NULL) {
        et__probe_set(s2, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "cannot resolve %s: %s", pr->host, gai_strerror(gai)),
                      "Check the DNS record of the server name (the external A record, and "
                      "split DNS inside), and that devices use a DNS server that knows it.");
        step_done(pr, s2, t0);
        return -1;
    } else {
        et__probe_line(s2, a, "%s does not resolve here (%s); the proxy resolves it", pr->host,
                       gai_strerror(gai));
    }
    if (pr->o->proxy != NULL)
        et__probe_line(s2, a, "through the HTTP proxy %s (CONNECT %s:%d)", pr->o->proxy,
                       pr->host, pr->port);

    rc = et__probe_conn_open(&pr->conn, err, sizeof(err), &stage);
    t1 = et_now_us();
    if (rc != 0 && stage != ET_STAGE_UPSTREAM_TLS) {
        et__probe_set(s2, a, ET_PROBE_FAILED, et_arena_strdup(a, err),
                      stage == ET_STAGE_DNS
                          ? "Check the DNS record of the server name and the DNS server in use."
                      : pr->o->proxy != NULL
                          ? "Check the proxy address and that it allows CONNECT to this host "
                            "and port."
                          : "Check that the port is open through every firewall, reverse proxy "
                            "and load balancer on the way to the server, and that the server "
                            "listens on it (IIS: an https binding on the Default Web Site).");
        step_done(pr, s2, t0);
        return -1;
    }
    et__probe_line(s2, a, "connected to %s%s", pr->conn.peer,
                   pr->o->proxy ? " (the proxy), tunnel established" : "");
    step_done(pr, s2, t0);

    /* Step 3 */
    if (!pr->tls) {
        et__probe_set(s3, a, ET_PROBE_WARNED, "plain HTTP: passwords travel in clear text",
                      "Publish EAS over https only; devices should never be set up without "
                      "TLS.");
        step_done(pr, s3, t1);
        pr->conn_ready = 1;
        return 0;
    }
    if (rc != 0) {
        et__probe_set(s3, a, ET_PROBE_FAILED, et_arena_strdup(a, err),
                      "Check that the port speaks TLS (not plain HTTP) and that the server "
                      "allows TLS 1.2 or later with current ciphers (IIS Crypto, SChannel "
                      "registry settings).");
        step_done(pr, s3, t1);
        return -1;
    }
    {
        struct et_tls *tls = pr->conn.tls_conn;
        const char *alpn = et_tls_alpn(tls);
        X509_STORE *st = et__probe_store_new(pr->o->ca_file);

        et__probe_line(s3, a, "%s, cipher %s%s%s", et_tls_version(tls), et_tls_cipher(tls),
                       alpn[0] ? ", ALPN " : "", alpn);
        if (et_tls_version_id(tls) < ET_TLS_1_2)
            et__probe_set(s3, a, ET_PROBE_WARNED,
                          et_arena_printf(a, "the server negotiated %s", et_tls_version(tls)),
                          "Enable TLS 1.2 (or later) on the server; current devices refuse "
                          "TLS 1.0 and 1.1.");
        et__probe_line(s3, a, "trust: %s", pr->o->ca_file ? pr->o->ca_file : "system store");
        if (st == NULL) {
            et__probe_set(s3, a, ET_PROBE_FAILED,
                          et_arena_printf(a, "cannot load the trust store %s",
                                          pr->o->ca_file ? pr->o->ca_file : "(system)"),
                          "Give a readable PEM file of CA certificates with --ca.");
        } else {
            et__probe_check_chain(et_tls_peer_chain(tls), st, pr->host, 0, a, s3);
            X509_STORE_free(st);
        }
    }
    if (s3->result == ET_PROBE_FAILED && pr->o->insecure)
        et__probe_line(s3, a, "going on despite the failure (--insecure): later results are "
                              "not what a device would see");
    step_done(pr, s3, t1);
    pr->conn_ready = 1;
    return s3->result == ET_PROBE_FAILED && !pr->o->insecure ? -1 : 0;
}

/* ---- Step 4: OPTIONS ------------------------------------------------------------------ */

static int step_options(struct probe *pr)
{
    struct et_probe_step *s = &pr->r->steps[ET_PROBE_STEP_OPTIONS];
    struct et_arena *a = pr->a;
    struct et_exchange *x = NULL;
    int64_t t0 = et_now_us();
    int ok = -1;

    eas_exchange(pr, s, "OPTIONS", NULL, NULL, NULL, 0, &x);
    if (x == NULL) {
        et__probe_set(s, a, ET_PROBE_FAILED, "out of memory", NULL);
    } else if (!explain_http(pr, s, x, "OPTIONS")) {
        struct et_eas_response_info ri;
        const char *chosen = NULL;
        int rc, has_prov = 0, has_fs = 0, has_sync = 0, has_ping = 0;
        size_t ncmd;

        et_eas_response_info(x, &ri);
        et__probe_line(s, a, "HTTP 200%s%s", ri.server_version ? ", MS-Server-ActiveSync " : "",
                       ri.server_version ? ri.server_version : "");
        if (ri.protocol_versions == NULL) {
            et__probe_set(s, a, ET_PROBE_FAILED,
                          "HTTP 200 without MS-ASProtocolVersions: this is not an Exchange "
                          "ActiveSync endpoint",
                          "Something else answers on this URL (a reverse proxy's page, a web "
                          "site): check the URL path and the publishing rule to the CAS.");
            goto out;
        }
        et__probe_line(s, a, "MS-ASProtocolVersions: %s", ri.protocol_versions);
        ncmd = et_probe_list_count(ri.protocol_commands, "Provision", &has_prov);
        et_probe_list_count(ri.protocol_commands, "FolderSync", &has_fs);
        et_probe_list_count(ri.protocol_commands, "Sync", &has_sync);
        et_probe_list_count(ri.protocol_commands, "Ping", &has_ping);
        et__probe_line(s, a, "MS-ASProtocolCommands: %zu commands: %s", ncmd,
                       ri.protocol_commands ? ri.protocol_commands : "(none)");
        rc = et_probe_negotiate_version(ri.protocol_versions, pr->o->protocol, &chosen);
        if (rc == ET_ENOTFOUND && pr->o->protocol != NULL) {
            et__probe_set(s, a, ET_PROBE_FAILED,
                          et_arena_printf(a, "the server does not offer version %s "
                                             "(--protocol)",
                                          pr->o->protocol),
                          "Use a version from the server's list, or check why the server "
                          "no longer offers it (Exchange 2013+ dropped 2.5).");
            goto out;
        } else if (rc != 0) {
            et__probe_set(s, a, ET_PROBE_FAILED,
                          et_arena_printf(a, "no EAS version in common (server: %s)",
                                          ri.protocol_versions),
                          "The server offers no version eastrace speaks (2.5 to 16.1).");
            goto out;
        }
        pr->version = chosen;
        pr->r->protocol = chosen;
        et__probe_line(s, a, "version used: %s (%s)", chosen,
                       pr->o->protocol ? "forced with --protocol" : "highest both speak");
        if (ri.protocol_commands != NULL && (!has_fs || !has_sync))
            et__probe_set(s, a, ET_PROBE_WARNED,
                          "the server does not list FolderSync and Sync among its commands",
                          "Check the server's EAS configuration; devices cannot sync without "
                          "them.");
        if (ri.protocol_commands != NULL && !has_prov)
            et__probe_line(s, a, "Provision is not offered: the server has no device policy");
        ok = 0;
    }
out:
    et_exchange_free(x);
    step_done(pr, s, t0);
    return ok;
}

/* ---- Step 5: Provision ---------------------------------------------------------------- */

static int version_at_least(const char *v, int major, int minor)
{
    int M = 0, m = 0;
    if (v == NULL || sscanf(v, "%d.%d", &M, &m) < 1)
        return 0;
    return M > major || (M == major && m >= minor);
}

/* Both phases of Provision. Returns 0 when a final policy key (or no policy) came. */
static int provision(struct probe *pr, struct et_probe_step *s, int show_policy)
{
    struct et_arena *a = pr->a;
    struct et_exchange *x = NULL;
    struct et_wbxml_doc *doc = NULL;
    struct et_buf xml;
    const char *pt = version_at_least(pr->version, 12, 0) ? "MS-EAS-Provisioning-WBXML"
                                                            : "MS-WAP-Provisioning-XML";
    long long st = -1, pst = -1;
    const struct et_wbxml_node *pol;
    const char *temp_key;
    int ok = -1;

    et_buf_init(&xml, 1 << 16);
    et_buf_puts(&xml, "<Provision xmlns=\"Provision:\">");
    if (version_at_least(pr->version, 14, 1))
        et_buf_printf(&xml,
                      "<DeviceInformation xmlns=\"Settings:\"><Set><Model>eastrace probe</Model>"
                      "<FriendlyName>eastrace probe</FriendlyName><OS>eastrace</OS>"
                      "<UserAgent>%s</UserAgent></Set></DeviceInformation>",
                      pr->user_agent);
    et_buf_printf(&xml, "<Policies><Policy><PolicyType>%s</PolicyType></Policy></Policies>"
                        "</Provision>",
                  pt);
    eas_exchange(pr, s, "POST", "Provision", (const char *)xml.data, "0", 0, &x);
    et_buf_reset(&xml);
    if (x == NULL || explain_http(pr, s, x, "Provision (phase 1)"))
        goto out;
    doc = response_doc(x);
    if (doc == NULL || doc->root == NULL) {
        et__probe_set(s, a, ET_PROBE_FAILED, "Provision (phase 1): the response is not WBXML",
                      "Capture the exchange (-w) and look at the body: something other than "
                      "EAS answered.");
        goto out;
    }
    if (show_policy)
        s->xml = doc_xml(pr, doc);
    et_wbxml_find_int(doc->root, "Status", &st);
    if (st != 1) {
        const struct et_eas_status *es = et_eas_status_lookup("Provision", NULL, (int)st);
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "Provision Status %lld%s%s", st, es ? " " : "",
                                      es ? es->meaning : ""),
                      "Check the device's mailbox policy and the server's Provision handling "
                      "(IIS log: the Provision request and its error).");
        goto out;
    }
    if (et_wbxml_find(doc->root, "//RemoteWipe") != NULL) {
        et__probe_set(s, a, ET_PROBE_FAILED,
                      "the server asks this device ID to wipe itself (RemoteWipe); the probe "
                      "does not acknowledge it",
                      "Remove the pending wipe for this device (Clear-MobileDevice -Cancel) or "
                      "probe with another --device-id.");
        goto out;
    }
    pol = et_wbxml_find(doc->root, "Policies/Policy");
    et_wbxml_find_int(pol, "Status", &pst);
    if (pst == 2) {
        et__probe_line(s, a, "the server has no policy for this device (Policy Status 2)");
        ok = 0;
        goto out;
    }
    if (pst != 1) {
        const struct et_eas_status *es = et_eas_status_lookup("Provision", "Policy", (int)pst);
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "Policy Status %lld%s%s", pst, es ? " " : "",
                                      es ? es->meaning : ""),
                      "Check the policy type the server expects and the mailbox policy "
                      "assigned to the user.");
        goto out;
    }
    temp_key = et_wbxml_node_text(et_wbxml_find(pol, "PolicyKey"), NULL);
    if (temp_key == NULL || temp_key[0] == '\0') {
        et__probe_set(s, a, ET_PROBE_FAILED, "Provision (phase 1): no PolicyKey in the answer",
                      "The server's Provision answer is malformed; look at it with -w.");
        goto out;
    }
    et__probe_line(s, a, "phase 1: policy %s received, temporary key %s%s", pt, temp_key,
                   et_wbxml_find(pol, "Data/EASProvisionDoc") ? " (EASProvisionDoc)" : "");
    temp_key = et_arena_strdup(a, temp_key);

    /* Phase 2: acknowledge with the temporary key, as a device that applied the policy. */
    et_buf_printf(&xml,
                  "<Provision xmlns=\"Provision:\"><Policies><Policy><PolicyType>%s</PolicyType>"
                  "<PolicyKey>%s</PolicyKey><Status>1</Status></Policy></Policies></Provision>",
                  pt, temp_key);
    et_exchange_free(x);
    x = NULL;
    et_wbxml_doc_free(doc);
    doc = NULL;
    eas_exchange(pr, s, "POST", "Provision", (const char *)xml.data, temp_key, 0, &x);
    if (x == NULL || explain_http(pr, s, x, "Provision (phase 2)"))
        goto out;
    doc = response_doc(x);
    st = pst = -1;
    if (doc != NULL && doc->root != NULL) {
        et_wbxml_find_int(doc->root, "Status", &st);
        pol = et_wbxml_find(doc->root, "Policies/Policy");
        et_wbxml_find_int(pol, "Status", &pst);
    } else {
        pol = NULL;
    }
    if (st != 1 || pst != 1) {
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "Provision (phase 2): Status %lld, Policy Status %lld",
                                      st, pst),
                      "The server did not accept the acknowledgement: check the mailbox policy "
                      "(AllowNonProvisionableDevices, required settings the device cannot "
                      "meet).");
        goto out;
    }
    {
        const char *fk = et_wbxml_node_text(et_wbxml_find(pol, "PolicyKey"), NULL);
        if (fk == NULL || fk[0] == '\0') {
            et__probe_set(s, a, ET_PROBE_FAILED, "Provision (phase 2): no final PolicyKey",
                          "The server's answer is malformed; look at it with -w.");
            goto out;
        }
        snprintf(pr->policy_key, sizeof(pr->policy_key), "%s", fk);
        pr->r->policy_key = et_arena_strdup(a, fk);
        et__probe_line(s, a, "phase 2: acknowledged, final policy key %s", fk);
    }
    ok = 0;
out:
    et_wbxml_doc_free(doc);
    et_exchange_free(x);
    et_buf_free(&xml);
    return ok;
}

static int step_provision(struct probe *pr)
{
    struct et_probe_step *s = &pr->r->steps[ET_PROBE_STEP_PROVISION];
    int64_t t0 = et_now_us();
    int rc = provision(pr, s, 1);
    step_done(pr, s, t0);
    return rc;
}

/*
 * A command that may be answered with "provision first" (HTTP 449, Status 142-144): as a
 * device does, provision and retry once. *xo / *doc receive the final exchange and document.
 */
static int command(struct probe *pr, struct et_probe_step *s, const char *cmd, const char *xml,
                   int timeout_ms, struct et_exchange **xo, struct et_wbxml_doc **doc)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        long long st = -1;
        int again = 0;
        *xo = NULL;
        *doc = NULL;
        eas_exchange(pr, s, "POST", cmd, xml, pr->policy_key[0] ? pr->policy_key : "0",
                     timeout_ms, xo);
        if (*xo == NULL)
            return -1;
        if ((*xo)->has_response && (*xo)->resp.status == 449) {
            again = 1;
        } else if ((*xo)->has_response && (*xo)->resp.status == 200) {
            *doc = response_doc(*xo);
            if (*doc != NULL && (*doc)->root != NULL &&
                et_wbxml_find_int((*doc)->root, "Status", &st) == 0 && st >= 142 && st <= 144)
                again = 1;
        }
        if (!again || attempt == 1)
            return 0;
        et__probe_line(s, pr->a, "%s: the server asks to provision (%s): provisioning and "
                                 "retrying, as a device does",
                       cmd,
                       (*xo)->resp.status == 449 ? "HTTP 449"
                                                 : et_arena_printf(pr->a, "Status %lld", st));
        et_wbxml_doc_free(*doc);
        et_exchange_free(*xo);
        *doc = NULL;
        *xo = NULL;
        if (provision(pr, s, 0) != 0)
            return -1;
    }
    return 0;
}

static void status_fail(struct probe *pr, struct et_probe_step *s, const char *cmd,
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

/* ---- Step 6: FolderSync --------------------------------------------------------------- */

static int step_foldersync(struct probe *pr)
{
    struct et_probe_step *s = &pr->r->steps[ET_PROBE_STEP_FOLDERSYNC];
    struct et_exchange *x = NULL;
    struct et_wbxml_doc *doc = NULL;
    struct et_arena *a = pr->a;
    int64_t t0 = et_now_us();
    long long st = -1;
    int ok = -1;

    command(pr, s, "FolderSync",
            "<FolderSync xmlns=\"FolderHierarchy:\"><SyncKey>0</SyncKey></FolderSync>", 0, &x,
            &doc);
    if (x == NULL || explain_http(pr, s, x, "FolderSync"))
        goto out;
    if (doc == NULL || doc->root == NULL) {
        et__probe_set(s, a, ET_PROBE_FAILED, "FolderSync: the response is not WBXML",
                      "Look at the exchange (-w): something other than EAS answered.");
        goto out;
    }
    et_wbxml_find_int(doc->root, "Status", &st);
    if (st != 1) {
        status_fail(pr, s, "FolderSync", NULL, st);
        goto out;
    }
    {
        struct et_wbxml_iter it;
        const struct et_wbxml_node *add;
        size_t n = 0;
        et_wbxml_iter_init(&it, doc->root, "Changes/Add");
        while ((add = et_wbxml_iter_next(&it)) != NULL) {
            long long type = 0;
            n++;
            if (et_wbxml_find_int(add, "Type", &type) == 0 && type == 2 && !pr->inbox_id[0]) {
                snprintf(pr->inbox_id, sizeof(pr->inbox_id), "%s",
                         et_wbxml_node_text(et_wbxml_find(add, "ServerId"), NULL));
                et__probe_line(s, a, "Inbox: \"%s\" (ServerId %s)",
                               et_wbxml_node_text(et_wbxml_find(add, "DisplayName"), NULL),
                               pr->inbox_id);
            }
        }
        et__probe_line(s, a, "%zu folder%s, SyncKey %s", n, n == 1 ? "" : "s",
                       et_wbxml_node_text(et_wbxml_find(doc->root, "SyncKey"), NULL));
        if (!pr->inbox_id[0])
            et__probe_set(s, a, ET_PROBE_WARNED, "no Inbox (folder Type 2) in the hierarchy",
                          "Check the mailbox (it may not be provisioned, or the hierarchy is "
                          "damaged): sign in to OWA and look for the Inbox.");
    }
    ok = 0;
out:
    et_wbxml_doc_free(doc);
    et_exchange_free(x);
    step_done(pr, s, t0);
    return ok;
}

/* ---- Step 7: Sync --------------------------------------------------------------------- */

/* Sync of the Inbox from SyncKey 0: sets pr->inbox_key. Returns 0 when it worked. */
static int sync_initial(struct probe *pr, struct et_probe_step *s)
{
    struct et_exchange *x = NULL;
    struct et_wbxml_doc *doc = NULL;
    long long st = -1;
    int ok = -1;
    const char *xml = et_arena_printf(pr->a,
                                      "<Sync xmlns=\"AirSync:\"><Collections><Collection>"
                                      "<SyncKey>0</SyncKey><CollectionId>%s</CollectionId>"
                                      "</Collection></Collections></Sync>",
                                      pr->inbox_id);
    command(pr, s, "Sync", xml, 0, &x, &doc);
    if (x == NULL || explain_http(pr, s, x, "Sync (SyncKey 0)"))
        goto out;
    if (doc == NULL || doc->root == NULL) {
        et__probe_set(s, pr->a, ET_PROBE_FAILED, "Sync (SyncKey 0): empty or non-WBXML answer",
                      "The server must answer the first Sync with a new SyncKey; look at the "
                      "exchange (-w).");
        goto out;
    }
    {
        const struct et_wbxml_node *c = et_wbxml_find(doc->root, "Collections/Collection");
        if (et_wbxml_find_int(c, "Status", &st) != 0)
            et_wbxml_find_int(doc->root, "Status", &st);
        if (st != 1) {
            status_fail(pr, s, "Sync", c ? "Collection" : NULL, st);
            goto out;
        }
        snprintf(pr->inbox_key, sizeof(pr->inbox_key), "%s",
                 et_wbxml_node_text(et_wbxml_find(c, "SyncKey"), NULL));
        et__probe_line(s, pr->a, "SyncKey 0 -> %s", pr->inbox_key);
    }
    ok = 0;
out:
    et_wbxml_doc_free(doc);
    et_exchange_free(x);
    return ok;
}

static int step_sync(struct probe *pr)
{
    struct et_probe_step *s = &pr->r->steps[ET_PROBE_STEP_SYNC];
    struct et_exchange *x = NULL;
    struct et_wbxml_doc *doc = NULL;
    int64_t t0 = et_now_us();
    long long st = -1;
    int ok = -1;
    const char *xml;

    if (sync_initial(pr, s) != 0)
        goto out;
    xml = et_arena_printf(pr->a,
                          "<Sync xmlns=\"AirSync:\" xmlns:airsyncbase=\"AirSyncBase:\">"
                          "<Collections><Collection><SyncKey>%s</SyncKey>"
                          "<CollectionId>%s</CollectionId><DeletesAsMoves>1</DeletesAsMoves>"
                          "<GetChanges>1</GetChanges><WindowSize>%d</WindowSize><Options>"
                          "<FilterType>0</FilterType><airsyncbase:BodyPreference><airsyncbase:Type>1</airsyncbase:Type>"
                          "<airsyncbase:TruncationSize>1024</airsyncbase:TruncationSize>"
                          "</airsyncbase:BodyPreference></Options></Collection></Collections>"
                          "</Sync>",
                          pr->inbox_key, pr->inbox_id, SYNC_WINDOW);
    command(pr, s, "Sync", xml, 0, &x, &doc);
    if (x == NULL || explain_http(pr, s, x, "Sync"))
        goto out;
    if (doc == NULL || doc->root == NULL) {
        /* An empty 200 answers a Sync with nothing new. */
        et__probe_line(s, pr->a, "no changes (empty response)");
        ok = 0;
        goto out;
    }
    {
        const struct et_wbxml_node *c = et_wbxml_find(doc->root, "Collections/Collection");
        struct et_wbxml_iter it;
        size_t adds = 0, others = 0;
        const struct et_wbxml_node *n;
        if (et_wbxml_find_int(c, "Status", &st) != 0)
            et_wbxml_find_int(doc->root, "Status", &st);
        if (st != 1) {
            status_fail(pr, s, "Sync", c ? "Collection" : NULL, st);
            goto out;
        }
        et_wbxml_iter_init(&it, c, "Commands/*");
        while ((n = et_wbxml_iter_next(&it)) != NULL) {
            if (et_wbxml_node_is(n, NULL, "Add"))
                adds++;
            else
                others++;
        }
        et__probe_line(s, pr->a, "WindowSize %d: %zu item%s added, %zu other change%s%s; "
                                 "SyncKey %s",
                       SYNC_WINDOW, adds, adds == 1 ? "" : "s", others, others == 1 ? "" : "s",
                       et_wbxml_find(c, "MoreAvailable") ? " (MoreAvailable)" : "",
                       et_wbxml_node_text(et_wbxml_find(c, "SyncKey"), NULL));
        {
            const char *k = et_wbxml_node_text(et_wbxml_find(c, "SyncKey"), NULL);
            if (k != NULL && k[0] != '\0')
                snprintf(pr->inbox_key, sizeof(pr->inbox_key), "%s", k);
        }
    }
    ok = 0;
out:
    et_wbxml_doc_free(doc);
    et_exchange_free(x);
    step_done(pr, s, t0);
    return ok;
}

/* ---- Step 8: Ping --------------------------------------------------------------------- */

static int step_ping(struct probe *pr)
{
    struct et_probe_step *s = &pr->r->steps[ET_PROBE_STEP_PING];
    struct et_exchange *x = NULL;
    struct et_wbxml_doc *doc = NULL;
    int64_t t0 = et_now_us();
    int hb = pr->o->ping_seconds > 0 ? pr->o->ping_seconds : 60;
    int ok = -1;

    /* Exchange refuses a Ping on a folder that was never synced; a device syncs first. */
    if (!pr->inbox_key[0] && sync_initial(pr, s) != 0)
        goto out;
    for (int attempt = 0; attempt < 2; attempt++) {
        long long st = -1, shb = -1;
        const char *xml = et_arena_printf(
            pr->a,
            "<Ping xmlns=\"Ping:\"><HeartbeatInterval>%d</HeartbeatInterval><Folders><Folder>"
            "<Id>%s</Id><Class>Email</Class></Folder></Folders></Ping>",
            hb, pr->inbox_id);
        int64_t ts = et_now_us();
        command(pr, s, "Ping", xml, hb * 1000 + 30000, &x, &doc);
        if (x == NULL || explain_http(pr, s, x, "Ping"))
            goto out;
        if (doc == NULL || doc->root == NULL) {
            et__probe_set(s, pr->a, ET_PROBE_FAILED, "Ping: empty or non-WBXML answer",
                          "Look at the exchange (-w).");
            goto out;
        }
        et_wbxml_find_int(doc->root, "Status", &st);
        et__probe_line(s, pr->a, "HeartbeatInterval %d s: Status %lld after %.1f s", hb, st,
                       (double)(et_now_us() - ts) / 1e6);
        if (st == 1 || st == 2) {
            et__probe_line(s, pr->a, "%s", st == 1 ? "no changes during the heartbeat (Status 1)"
                                                   : "changes in the Inbox (Status 2)");
            ok = 0;
            goto out;
        }
        if (st == 5 && attempt == 0 &&
            et_wbxml_find_int(doc->root, "HeartbeatInterval", &shb) == 0 && shb > 0 &&
            shb <= 3540) {
            et__probe_line(s, pr->a, "the server wants a heartbeat of %lld s: retrying with it",
                           shb);
            hb = (int)shb;
            et_wbxml_doc_free(doc);
            et_exchange_free(x);
            doc = NULL;
            x = NULL;
            continue;
        }
        status_fail(pr, s, "Ping", NULL, st);
        goto out;
    }
out:
    et_wbxml_doc_free(doc);
    et_exchange_free(x);
    step_done(pr, s, t0);
    return ok;
}

/* ---- The run -------------------------------------------------------------------------- */

static int set_auth(struct probe *pr)
{
    struct et_buf cred, b64, red;
    const char *user = pr->o->user ? pr->o->user : "";
    const char *bs = strrchr(user, '\\');
    int rc;

    snprintf(pr->user_param, sizeof(pr->user_param), "%s", bs ? bs + 1 : user);
    et_buf_init(&cred, 4096);
    et_buf_init(&b64, 8192);
    et_buf_init(&red, 4096);
    rc = et_buf_printf(&cred, "%s:%s", user, pr->o->password ? pr->o->password : "");
    if (rc == 0)
        rc = et_buf_puts(&b64, "Basic ");
    if (rc == 0)
        rc = et_base64_encode(&b64, cred.data, cred.len);
    if (rc == 0) {
        pr->auth_wire = et_arena_printf(pr->a, "Authorization: %s\r\n", (char *)b64.data);
        if (pr->o->include_secrets)
            pr->auth_rec = pr->auth_wire;
        else if ((rc = et_eas_auth_redact((char *)b64.data, &red)) == 0)
            pr->auth_rec = et_arena_printf(pr->a, "Authorization: %s\r\n", (char *)red.data);
    }
    /* The password's copies are wiped, not just freed. */
    if (cred.data != NULL)
        memset(cred.data, 0, cred.cap);
    if (b64.data != NULL)
        memset(b64.data, 0, b64.cap);
    et_buf_free(&cred);
    et_buf_free(&b64);
    et_buf_free(&red);
    if (rc == 0 && (pr->auth_wire == NULL || pr->auth_rec == NULL))
        rc = ET_ENOMEM;
    return rc;
}

int et_probe_run(const struct et_probe_opts *o, struct et_probe_report **out,
                 struct et_error *e)
{
    struct probe pr;
    struct et_probe_report *r;
    struct et_arena *a;
    const char *url;
    int rc = 0;

    *out = NULL;
    memset(&pr, 0, sizeof(pr));
    pr.conn.fd = -1;
    a = et_arena_new(0);
    if (a == NULL)
        return ET_ENOMEM;
    r = et_arena_alloc(a, sizeof(*r));
    if (r == NULL) {
        et_arena_free(a);
        return ET_ENOMEM;
    }
    r->arena = a;
    for (int i = 0; i < ET_PROBE_NSTEPS; i++)
        r->steps[i].id = (enum et_probe_step_id)i;
    *out = r;
    pr.o = o;
    pr.r = r;
    pr.a = a;
    pr.device_id = o->device_id ? o->device_id : DEFAULT_DEVICE_ID;
    pr.device_type = o->device_type ? o->device_type : DEFAULT_DEVICE_TYPE;
    pr.user_agent = o->user_agent ? o->user_agent : "eastrace-probe/" ET_VERSION;
    r->user = o->user ? et_arena_strdup(a, o->user) : NULL;
    if (o->url == NULL && o->autodiscover == NULL) {
        et_error_set(e, ET_EINVAL, "a URL or --autodiscover EMAIL is needed");
        return ET_EINVAL;
    }
    if (o->url != NULL) {
        char h[256], p[1024];
        int port, tls;
        if (parse_url(o->url, h, sizeof(h), &port, &tls, p, sizeof(p)) != 0) {
            et_error_set(e, ET_EINVAL, "%s: not an http(s) URL", o->url);
            return ET_EINVAL;
        }
    }
    if ((rc = set_auth(&pr)) != 0)
        return rc;

    url = o->url;
    if (o->autodiscover != NULL) {
        const char *ad = step_autodiscover(&pr);
        if (url == NULL)
            url = ad;
    } else {
        r->steps[ET_PROBE_STEP_AUTODISCOVER].reason = "not asked for (--autodiscover EMAIL)";
    }
    if (url == NULL) {
        skip_rest(&pr, ET_PROBE_STEP_CONNECT, "no EAS URL: Autodiscover gave none");
        goto done;
    }
    r->url = et_arena_strdup(a, url);
    if (parse_url(url, pr.host, sizeof(pr.host), &pr.port, &pr.tls, pr.path, sizeof(pr.path)) !=
        0) {
        skip_rest(&pr, ET_PROBE_STEP_CONNECT,
                  et_arena_printf(a, "Autodiscover's URL %s cannot be used", url));
        goto done;
    }
    et__probe_conn_init(&pr.conn, pr.host, pr.port, pr.tls, o->proxy, o->ca_file, o->timeout_ms);

    if (step_connect_tls(&pr) != 0) {
        skip_rest(&pr, ET_PROBE_STEP_TLS,
                  r->steps[ET_PROBE_STEP_CONNECT].result == ET_PROBE_FAILED
                      ? "DNS and TCP failed"
                      : "TLS failed (--insecure goes on after a certificate failure)");
        goto done;
    }
    if (step_options(&pr) != 0) {
        skip_rest(&pr, ET_PROBE_STEP_PROVISION, "OPTIONS failed");
        goto done;
    }
    if (step_provision(&pr) != 0) {
        skip_rest(&pr, ET_PROBE_STEP_FOLDERSYNC, "Provision failed");
        goto done;
    }
    if (step_foldersync(&pr) != 0 || !pr.inbox_id[0]) {
        skip_rest(&pr, ET_PROBE_STEP_SYNC, "no Inbox from FolderSync");
        goto done;
    }
    if (o->do_sync)
        step_sync(&pr);
    else
        r->steps[ET_PROBE_STEP_SYNC].reason = "not asked for (--sync)";
    if (o->do_ping)
        step_ping(&pr);
    else
        r->steps[ET_PROBE_STEP_PING].reason = "not asked for (--ping)";

done:
    et__probe_conn_close(&pr.conn);
    et_buf_free(&pr.conn.in);
    if (pr.auth_wire != NULL) /* wipe the credentials before the arena goes */
        memset(pr.auth_wire, 0, strlen(pr.auth_wire));
    return 0;
}

void et_probe_report_free(struct et_probe_report *r)
{
    if (r != NULL)
        et_arena_free(r->arena);
}

enum et_probe_result et_probe_report_worst(const struct et_probe_report *r)
{
    enum et_probe_result w = ET_PROBE_SKIPPED;
    for (int i = 0; i < ET_PROBE_NSTEPS; i++)
        if (r->steps[i].result > w)
            w = r->steps[i].result;
    return w;
}
