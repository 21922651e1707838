/*
 * Step 1 of the probe, Autodiscover: the POX request to the addresses a device tries
 * (https://DOMAIN, https://autodiscover.DOMAIN, the HTTP redirect method, the SRV record),
 * following a redirect to another address; gives the EAS URL to the later steps.
 */
#include "probe_int.h"

#include <stdio.h>
#include <string.h>

#include <arpa/nameser.h>
#include <netdb.h>
#include <resolv.h>

#include "eastrace/http.h"
#include "eastrace/tls.h"

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

    if (et__probe_parse_url(url, host, sizeof(host), &port, &tls, path, sizeof(path)) != 0) {
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
        et__probe_record(pr, s, x);
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
        et__probe_record(pr, s, x);
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
            et__probe_record(pr, s, x);
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

const char *et__probe_step_autodiscover(struct probe *pr)
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
    et__probe_step_done(pr, s, t0);
    return eas_url;
}
