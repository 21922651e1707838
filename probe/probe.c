/*
 * The probe's run, in the order of the Remote Connectivity Analyzer's EAS test. Each step
 * fills its struct et_probe_step; a failure skips the steps that need it:
 *
 *   [1 Autodiscover] -> 2 DNS+TCP -> 3 TLS -> 4 OPTIONS -> 5 Provision -> 6 FolderSync
 *                                      |                                     |-> [7 Sync]
 *                                      +-- --insecure goes on after a failure |-> [8 Ping]
 *
 * Here: the run itself (et_probe_run), the step bookkeeping, the URL and the credentials.
 * Step 1 is in autodiscover.c, steps 2 to 8 in steps.c. Every HTTP exchange goes through
 * exchange.c's et__probe_record(): numbered and reported to opts.on_exchange (the caller
 * records and judges it, as it does for the proxy's exchanges), then freed by the step.
 */

#include "eastrace/probe.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe_int.h"

#include "eastrace/eas.h"

#define DEFAULT_DEVICE_ID "EASTRACEPROBE0001"
#define DEFAULT_DEVICE_TYPE "eastrace"
#define EAS_PATH "/Microsoft-Server-ActiveSync"
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

/* ---- Steps ---------------------------------------------------------------------------- */

static void skip_rest(struct probe *pr, int from, const char *why)
{
    for (int i = from; i < ET_PROBE_NSTEPS; i++) {
        struct et_probe_step *s = &pr->r->steps[i];
        if (s->result == ET_PROBE_SKIPPED && s->reason == NULL)
            s->reason = why;
    }
}

void et__probe_step_done(struct probe *pr, struct et_probe_step *s, int64_t t0)
{
    if (s->result == ET_PROBE_SKIPPED && s->reason == NULL)
        s->result = ET_PROBE_PASSED;
    s->elapsed_us = et_now_us() - t0;
    if (pr->o->on_step != NULL)
        pr->o->on_step(pr->r, s, pr->o->cb_arg);
}

/* ---- URL ------------------------------------------------------------------------------ */

int et__probe_parse_url(const char *url, char *host, size_t hostlen, int *port, int *tls,
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
        if (et__probe_parse_url(o->url, h, sizeof(h), &port, &tls, p, sizeof(p)) != 0) {
            et_error_set(e, ET_EINVAL, "%s: not an http(s) URL", o->url);
            return ET_EINVAL;
        }
    }
    if ((rc = set_auth(&pr)) != 0)
        return rc;

    url = o->url;
    if (o->autodiscover != NULL) {
        const char *ad = et__probe_step_autodiscover(&pr);
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
    if (et__probe_parse_url(url, pr.host, sizeof(pr.host), &pr.port, &pr.tls, pr.path,
                            sizeof(pr.path)) != 0) {
        skip_rest(&pr, ET_PROBE_STEP_CONNECT,
                  et_arena_printf(a, "Autodiscover's URL %s cannot be used", url));
        goto done;
    }
    et__probe_conn_init(&pr.conn, pr.host, pr.port, pr.tls, o->proxy, o->ca_file, o->timeout_ms);

    if (et__probe_step_connect_tls(&pr) != 0) {
        skip_rest(&pr, ET_PROBE_STEP_TLS,
                  r->steps[ET_PROBE_STEP_CONNECT].result == ET_PROBE_FAILED
                      ? "DNS and TCP failed"
                      : "TLS failed (--insecure goes on after a certificate failure)");
        goto done;
    }
    if (et__probe_step_options(&pr) != 0) {
        skip_rest(&pr, ET_PROBE_STEP_PROVISION, "OPTIONS failed");
        goto done;
    }
    if (et__probe_step_provision(&pr) != 0) {
        skip_rest(&pr, ET_PROBE_STEP_FOLDERSYNC, "Provision failed");
        goto done;
    }
    if (et__probe_step_foldersync(&pr) != 0 || !pr.inbox_id[0]) {
        skip_rest(&pr, ET_PROBE_STEP_SYNC, "no Inbox from FolderSync");
        goto done;
    }
    if (o->do_sync)
        et__probe_step_sync(&pr);
    else
        r->steps[ET_PROBE_STEP_SYNC].reason = "not asked for (--sync)";
    if (o->do_ping)
        et__probe_step_ping(&pr);
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
