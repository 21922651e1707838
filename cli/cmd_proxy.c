/*
 * eastrace proxy: the live capture. Opens the interception CA, starts the proxy, tells the
 * user how to point a phone at it, prints one line per finished exchange and a summary on
 * exit, and (with -w) appends every exchange to a capture file.
 */
#include "cli.h"

#include "eastrace/capfile.h"
#include "eastrace/certs.h"
#include "eastrace/common.h"
#include "eastrace/exchange.h"
#include "eastrace/proxy.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct et_proxy *g_proxy;

static void on_signal(int sig)
{
    (void)sig;
    if (g_proxy != NULL)
        et_proxy_stop(g_proxy); /* uv_async_send: async-signal-safe */
}

struct run_ctx {
    FILE *out;
    int color;
    int quiet;
    int stop_on_capture_error;
    struct et_capfile_writer *cap;
    uint64_t cap_failures;
    int cap_error_reported;
};

/* "Cmd=Sync" from an EAS query string, else NULL. */
static const char *eas_cmd(const char *target, char *buf, size_t len)
{
    const char *q = target ? strchr(target, '?') : NULL;
    for (const char *p = q; p != NULL; p = strchr(p + 1, '&')) {
        if (strncmp(p + 1, "Cmd=", 4) == 0) {
            size_t n = strcspn(p + 5, "&");
            snprintf(buf, len, "%.*s", (int)(n < 40 ? n : 40), p + 5);
            return buf;
        }
    }
    return NULL;
}

/*
 * One line per exchange: time, client, host, method + path (or EAS command), status, sizes,
 * duration; errors in red with their stage. The integrator may swap this for the shared
 * timeline renderer: it is the only place that formats an exchange.
 */
static void print_exchange_line(FILE *f, const struct et_exchange *x, int color)
{
    char ts[32] = "--:--:--.---", cmd[64];
    int64_t t = x->t.req_begin ? x->t.req_begin : x->t.connect;
    if (t > 0) {
        time_t s = (time_t)(t / 1000000);
        struct tm tm;
        localtime_r(&s, &tm);
        snprintf(ts, sizeof(ts), "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)((t / 1000) % 1000));
    }
    const char *what = eas_cmd(x->req.target, cmd, sizeof(cmd));
    char path[96];
    if (what == NULL) {
        snprintf(path, sizeof(path), "%s", x->req.target ? x->req.target : "-");
        char *q = strchr(path, '?');
        if (q != NULL && strlen(path) > 60)
            *q = '\0';
        what = path;
    }
    int64_t dur = et_exchange_duration_us(x);
    char durs[32] = "-";
    if (dur >= 0)
        snprintf(durs, sizeof(durs), "%.1fms", (double)dur / 1000.0);
    const char *red = color ? "\033[31m" : "", *dim = color ? "\033[2m" : "",
               *off = color ? "\033[0m" : "";
    int bad = x->err.code != 0 || x->resp.status >= 400;
    char host[300];
    if (x->port != 0 && x->port != 443 && x->port != 80)
        snprintf(host, sizeof(host), "%s%s:%d", x->tls.present && !x->tls.intercepted
                 ? "(tunnel) " : "", x->host ? x->host : "-", x->port);
    else
        snprintf(host, sizeof(host), "%s%s", x->tls.present && !x->tls.intercepted
                 ? "(tunnel) " : "", x->host ? x->host : "-");
    fprintf(f, "%s %s%-21s%s %-28s %-7s %-24s %s%3d%s %7llu/%-8llu %s", ts, dim,
            x->client_addr ? x->client_addr : "-", off, host,
            x->req.method ? x->req.method : "-", what, bad ? red : "", x->resp.status, off,
            (unsigned long long)x->req.body.wire_len, (unsigned long long)x->resp.body.wire_len,
            durs);
    if (x->err.code != 0)
        fprintf(f, "  %sERROR %s: %s%s", red, et_stage_name(x->err.stage),
                x->err.message ? x->err.message : et_strerror(x->err.code), off);
    if (x->tls.insecure)
        fprintf(f, "  %s[upstream not verified]%s", red, off);
    fputc('\n', f);
}

static void on_exchange(struct et_exchange *x, void *ud)
{
    struct run_ctx *r = ud;
    if (r->cap != NULL) {
        struct et_error e;
        et_error_clear(&e);
        if (et_capfile_write(r->cap, x, &e) != 0) {
            r->cap_failures++;
            if (!r->cap_error_reported || r->stop_on_capture_error) {
                et_cli_err("capture write failed: %s%s", e.msg,
                           r->stop_on_capture_error ? " (stopping)"
                                                    : " (proxying goes on; see the summary)");
                r->cap_error_reported = 1;
            }
            if (r->stop_on_capture_error && g_proxy != NULL)
                et_proxy_stop(g_proxy);
        }
    }
    if (!r->quiet) {
        print_exchange_line(r->out, x, r->color);
        fflush(r->out);
    }
    et_exchange_free(x);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eastrace proxy [OPTIONS]\n"
            "\n"
            "Explicit HTTP proxy that intercepts the phone's TLS (CONNECT) with per-host\n"
            "certificates from the eastrace CA, checks the server's certificate, holds EAS long\n"
            "polls and records every exchange.\n"
            "\n"
            "  --listen ADDR:PORT        listen address (default 127.0.0.1:8888)\n"
            "  --allow CIDR              also accept clients from CIDR (repeatable)\n"
            "  --allow-target HOST|CIDR  allow this loopback/link-local/own target (repeatable)\n"
            "  --intercept PATTERN       intercept only matching hosts (glob; repeatable)\n"
            "  --insecure-upstream HOST  do not verify HOST's certificate (marked in every\n"
            "                            exchange; repeatable)\n"
            "  --upstream-ca FILE        verify servers against FILE instead of the system store\n"
            "  --ca-cert FILE --ca-key FILE   use this CA instead of the per-user one\n"
            "  --ca-dir DIR              where the per-user CA lives\n"
            "  --rsa                     RSA-2048 leaf certificates (old devices)\n"
            "  -w FILE                   append every exchange to the capture FILE\n"
            "  --on-capture-error continue|stop   what a capture write error does\n"
            "  --quiet                   no line per exchange\n");
}

/* Splits "ADDR:PORT" / "[v6]:PORT" / "PORT". */
static int parse_listen(char *s, const char **addr, int *port)
{
    char *colon = strrchr(s, ':');
    char *end = NULL;
    if (colon == NULL) {
        long v = strtol(s, &end, 10);
        if (*s == '\0' || *end != '\0' || v < 0 || v > 65535)
            return -1;
        *port = (int)v;
        return 0;
    }
    *colon = '\0';
    long v = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || v < 0 || v > 65535)
        return -1;
    if (s[0] == '[') {
        size_t n = strlen(s);
        if (n < 2 || s[n - 1] != ']')
            return -1;
        s[n - 1] = '\0';
        s++;
    }
    *addr = s;
    *port = (int)v;
    return 0;
}

int et_cmd_proxy(int argc, char **argv)
{
    struct et_proxy_opts po;
    struct et_certs_opts co;
    struct run_ctx r;
    struct et_error e;
    const char *capfile = NULL;
    int rc = ET_EXIT_INPUT;
    struct et_certs *certs = NULL;
    const char **allow = calloc((size_t)argc + 1, sizeof(char *));
    const char **allow_t = calloc((size_t)argc + 1, sizeof(char *));
    const char **icpt = calloc((size_t)argc + 1, sizeof(char *));
    const char **insec = calloc((size_t)argc + 1, sizeof(char *));
    memset(&po, 0, sizeof(po));
    memset(&co, 0, sizeof(co));
    memset(&r, 0, sizeof(r));
    et_error_clear(&e);
    po.listen_port = 8888;
    if (allow == NULL || allow_t == NULL || icpt == NULL || insec == NULL) {
        et_cli_err("out of memory");
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            rc = ET_EXIT_OK;
            goto out;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            r.quiet = 1;
            takes = 0;
        } else if (strcmp(a, "--rsa") == 0) {
            co.leaf_key = ET_CERTS_RSA2048;
            takes = 0;
        } else if (v == NULL) {
            et_cli_err("proxy: unknown option or missing value: %s (see --help)", a);
            goto out;
        } else if (strcmp(a, "--listen") == 0) {
            if (parse_listen(argv[i + 1], &po.listen_addr, &po.listen_port) != 0) {
                et_cli_err("proxy: bad --listen '%s' (ADDR:PORT)", v);
                goto out;
            }
        } else if (strcmp(a, "--allow") == 0) {
            allow[po.n_allow++] = v;
        } else if (strcmp(a, "--allow-target") == 0) {
            allow_t[po.n_allow_target++] = v;
        } else if (strcmp(a, "--intercept") == 0) {
            icpt[po.n_intercept++] = v;
        } else if (strcmp(a, "--insecure-upstream") == 0) {
            insec[po.n_insecure_upstream++] = v;
        } else if (strcmp(a, "--upstream-ca") == 0) {
            po.upstream_ca_file = v;
        } else if (strcmp(a, "--ca-cert") == 0) {
            co.ca_cert_file = v;
        } else if (strcmp(a, "--ca-key") == 0) {
            co.ca_key_file = v;
        } else if (strcmp(a, "--ca-dir") == 0) {
            co.dir = v;
        } else if (strcmp(a, "-w") == 0) {
            capfile = v;
        } else if (strcmp(a, "--on-capture-error") == 0) {
            if (strcmp(v, "stop") == 0)
                r.stop_on_capture_error = 1;
            else if (strcmp(v, "continue") != 0) {
                et_cli_err("proxy: --on-capture-error takes continue or stop");
                goto out;
            }
        } else {
            et_cli_err("proxy: unknown option %s (see --help)", a);
            goto out;
        }
        i += takes;
    }
    po.allow = allow;
    po.allow_target = allow_t;
    po.intercept = icpt;
    po.insecure_upstream = insec;
    if ((co.ca_cert_file == NULL) != (co.ca_key_file == NULL)) {
        et_cli_err("proxy: --ca-cert and --ca-key go together");
        goto out;
    }
    if (et_certs_open(&co, &certs, &e) != 0) {
        et_cli_err("cannot open the interception CA: %s", e.msg);
        goto out;
    }
    if (et_certs_warnings(certs) != NULL)
        fprintf(stderr, "%s", et_certs_warnings(certs));
    if (capfile != NULL) {
        struct et_capfile_opts cop;
        et_capfile_opts_init(&cop);
        if (et_capfile_open_append(capfile, &cop, &r.cap, &e) != 0) {
            et_cli_err("cannot open capture file %s: %s", capfile, e.msg);
            goto out;
        }
    }
    r.out = stdout;
    r.color = et_cli_use_color(stdout);
    po.certs = certs;
    po.on_exchange = on_exchange;
    po.ud = &r;
    if (et_proxy_new(&po, &g_proxy, &e) != 0) {
        et_cli_err("cannot start the proxy: %s", e.msg);
        goto out;
    }
    char fp[ET_CERTS_FINGERPRINT_LEN];
    if (et_certs_ca_fingerprint(certs, fp, sizeof(fp)) != 0)
        snprintf(fp, sizeof(fp), "?");
    const char *la = po.listen_addr ? po.listen_addr : "127.0.0.1";
    fprintf(stderr,
            "eastrace proxy listening on %s:%d\n"
            "  phone: Wi-Fi > HTTP proxy > manual: server %s, port %d%s\n"
            "  install the CA on the phone: browse to http://%s/ through the proxy\n"
            "    (or http://%s:%d/), then trust it (iOS: Settings > General > About >\n"
            "    Certificate Trust Settings)\n"
            "  CA %s%s\n  CA SHA-256 %s\n%s%s%s",
            la, et_proxy_port(g_proxy), la, et_proxy_port(g_proxy),
            strcmp(la, "127.0.0.1") == 0 ? " (loopback only: use --listen <LAN address>:8888)"
                                          : "",
            ET_CERTS_INSTALL_HOST, la, et_proxy_port(g_proxy), et_certs_ca_path(certs),
            et_certs_created(certs) ? " (new: install it on the phone)" : "", fp,
            capfile ? "  capturing to " : "", capfile ? capfile : "", capfile ? "\n" : "");
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    et_proxy_run(g_proxy);

    struct et_proxy_stats st;
    et_proxy_get_stats(g_proxy, &st);
    fprintf(stderr,
            "\neastrace proxy: %llu connections, %llu exchanges (%llu errors), %llu tunnelled, "
            "%llu refused by policy\n",
            (unsigned long long)st.connections, (unsigned long long)st.exchanges,
            (unsigned long long)st.errors, (unsigned long long)st.tunnels,
            (unsigned long long)st.denied);
    rc = ET_EXIT_OK;
    if (r.cap != NULL) {
        struct et_capfile_stats cs;
        et_capfile_writer_stats(r.cap, &cs);
        fprintf(stderr, "capture %s: %llu records, %llu bytes, %llu write failures\n", capfile,
                (unsigned long long)cs.records, (unsigned long long)cs.bytes,
                (unsigned long long)cs.failures);
        if (cs.failures > 0 || r.cap_failures > 0)
            rc = ET_EXIT_INPUT;
    }
out:
    if (r.cap != NULL && et_capfile_close(r.cap, &e) != 0) {
        et_cli_err("closing capture file: %s", e.msg);
        rc = ET_EXIT_INPUT;
    }
    if (g_proxy != NULL) {
        struct et_proxy *p = g_proxy;
        g_proxy = NULL;
        et_proxy_free(p);
    }
    et_certs_free(certs);
    free(allow);
    free(allow_t);
    free(icpt);
    free(insec);
    return rc;
}
