/*
 * eastrace proxy: the live capture. Opens the interception CA, starts the proxy, tells the
 * user how to point a phone at it (the machine's real addresses when listening on all of
 * them, and which clients are admitted), prints one line per finished exchange and a summary
 * on exit, and appends every exchange to a capture file: -w FILE, else a new file under the
 * user's state directory ($XDG_STATE_HOME/eastrace/captures), unless --no-record.
 */
#include "cli.h"

#include "eastrace/analyzer.h"
#include "eastrace/capfile.h"
#include "eastrace/certs.h"
#include "eastrace/common.h"
#include "eastrace/eas.h"
#include "eastrace/exchange.h"
#include "eastrace/pipeline.h"
#include "eastrace/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    uint64_t cap_base;  /* exchange records already in the capture file we append to */
    uint64_t seq;       /* exchanges seen, the live number without a capture file */
    /* The live view: the same pipeline as `eastrace replay` (view, analyzer, timeline sink),
     * one exchange delivered as it finishes; findings under its line. */
    struct et_pipe *pipe;
    struct et_pipe_timeline *tl;
    struct et_pipe_sink tl_sink;
    struct et_cli_live_web *web; /* --web: the session browser, live */
    const char **only_user, **only_device; /* --only-user, --only-device */
    size_t n_only_user, n_only_device;
};

/* Loop thread, at each request head: --only-user / --only-device say which exchanges are
 * recorded (the rest is forwarded unrecorded). The EAS request as the decoder reads it: the
 * User parameter and the Basic user name (DOMAIN\user and UPN forms, et_eas_user_match), the
 * DeviceId, plain or base64 query; of any other request (Autodiscover) the Basic user. */
static int on_select(const struct et_exchange *x, void *ud)
{
    struct run_ctx *r = ud;
    struct et_eas_request q;
    struct et_error e;
    et_error_clear(&e);
    int rc = et_eas_request_parse(x, x->arena, &q, &e);
    if (rc == ET_EINVAL || rc == ET_ENOMEM)
        return 0;
    /* Not ActiveSync (Autodiscover): the Basic user alone names the account. */
    for (size_t i = 0; i < r->n_only_user; i++)
        if ((rc != ET_EUNSUPPORTED && et_eas_user_match(r->only_user[i], q.user)) ||
            et_eas_user_match(r->only_user[i], q.auth_user))
            return 1;
    if (rc == ET_EUNSUPPORTED)
        return 0; /* names no device */
    for (size_t i = 0; i < r->n_only_device; i++)
        if (q.device_id != NULL && et_strcaseeq(r->only_device[i], q.device_id))
            return 1;
    return 0;
}

/* "https://host[:port][/]" for --reverse: the scheme, host and port; -1 when not. */
static int parse_reverse_url(char *s, struct et_proxy_opts *po)
{
    char *h;
    if (strncmp(s, "https://", 8) == 0) {
        po->reverse_tls = 1;
        h = s + 8;
    } else if (strncmp(s, "http://", 7) == 0) {
        po->reverse_tls = 0;
        h = s + 7;
    } else {
        return -1;
    }
    size_t n = strlen(h);
    if (n > 0 && h[n - 1] == '/')
        h[--n] = '\0';
    if (n == 0 || strchr(h, '/') != NULL || strchr(h, '@') != NULL || strchr(h, '?') != NULL)
        return -1; /* paths go as the client sends them; no userinfo */
    char *port = NULL;
    if (h[0] == '[') {
        char *rb = strchr(h, ']');
        if (rb == NULL || (rb[1] != '\0' && rb[1] != ':'))
            return -1;
        *rb = '\0';
        port = rb[1] == ':' ? rb + 2 : NULL;
        h++;
    } else if ((port = strchr(h, ':')) != NULL) {
        *port++ = '\0';
    }
    if (port != NULL) {
        char *end = NULL;
        long v = strtol(port, &end, 10);
        if (*port == '\0' || *end != '\0' || v < 1 || v > 65535)
            return -1;
        po->reverse_port = (int)v;
    }
    po->reverse_host = h;
    return h[0] != '\0' ? 0 : -1;
}

/* The live view's sink: the timeline's line (unless --quiet), and at the end the session
 * summary on stderr. Runs on the proxy's worker thread (on_exchange_worker), off the relay. */
static int on_live(void *arg, const struct et_pipe_item *it)
{
    struct run_ctx *r = arg;
    if (r->web != NULL)
        et_cli_live_web_add(r->web, it);
    return r->quiet ? 0 : r->tl_sink.on_exchange(r->tl_sink.arg, it);
}

static int on_live_finish(void *arg, const struct et_finding *sf, const struct et_analyzer *an)
{
    struct run_ctx *r = arg;
    const struct et_pipe_stats *st = et_pipe_stats(r->pipe);
    const struct et_device_stats *ds;
    size_t nd = et_analyzer_devices(an, &ds);
    struct et_buf b;

    /* The analyzer's view of the whole session: findings across it, then per device. */
    et_buf_init(&b, 0);
    for (const struct et_finding *g = sf; g != NULL; g = g->next)
        et_finding_text(g, r->color ? ET_RENDER_COLOR : 0, "  ", &b);
    for (size_t i = 0; i < nd; i++)
        et_buf_printf(&b, "  device %-24s %-16s %6llu requests, %llu errors, %llu warnings\n",
                      ds[i].device, ds[i].device_type ? ds[i].device_type : "-",
                      (unsigned long long)ds[i].requests, (unsigned long long)ds[i].errors,
                      (unsigned long long)ds[i].warnings);
    et_buf_printf(&b, "findings: %llu error(s), %llu warning(s)\n",
                  (unsigned long long)st->errors, (unsigned long long)st->warnings);
    fwrite(b.data, 1, b.len, stderr);
    et_buf_free(&b);
    return 0;
}

/* Exchange records already in a capture file we append to, so the live numbers go on from
 * there and equal what `eastrace replay FILE` prints. */
static uint64_t count_records(const char *path)
{
    struct et_source *s = NULL;
    struct et_error e;
    uint64_t n = 0;
    et_error_clear(&e);
    if (et_capfile_open(path, &s, &e) != 0)
        return 0;
    for (;;) {
        struct et_exchange *x = NULL;
        int rc;
        et_error_clear(&e);
        rc = et_source_next(s, &x, &e);
        if (rc == 1) {
            n = x->id > n ? x->id : n;
            et_exchange_free(x);
        } else if (rc != ET_EPARSE) {
            break;
        }
    }
    et_source_close(s);
    return n;
}

static void on_request(const struct et_exchange *x, void *ud)
{
    struct run_ctx *r = ud;
    if (r->web != NULL)
        et_cli_live_web_request(r->web, x);
}

/* Loop thread, borrows x: the capture record is written before the next exchange. */
static void on_exchange(struct et_exchange *x, void *ud)
{
    struct run_ctx *r = ud;
    if (r->web != NULL)
        et_cli_live_web_done(r->web, x->id);
    /* One number per exchange (docs/json.md): with -w, the record number it gets in the
     * capture file, the number `eastrace replay FILE` gives it (an exchange that failed to be
     * written is not in the file; the next one gets its number); without, the count. */
    x->id = ++r->seq;
    if (r->cap != NULL) {
        struct et_error e;
        struct et_capfile_stats cs;
        et_capfile_writer_stats(r->cap, &cs);
        x->id = r->cap_base + cs.records + 1;
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
}

/* Worker thread, owns x (NULL: nothing queued for now). The pipeline runs here only. */
static void on_exchange_worker(struct et_exchange *x, void *ud)
{
    struct run_ctx *r = ud;
    if (x == NULL) {
        fflush(r->out);
        return;
    }
    et_pipe_push(r->pipe, x); /* takes x; out of memory: the exchange is still recorded */
    if (r->cap != NULL)
        et_capfile_writer_drop_behind(r->cap); /* off the loop: it starts disk writes */
}

/* Proxy notices (refusals, pins) on stderr, one line each, scrubbed. */
static void on_log(const char *line, void *ud)
{
    char buf[600];
    (void)ud;
    snprintf(buf, sizeof(buf), "%s", line);
    et_str_printable(buf);
    fprintf(stderr, "eastrace proxy: %s\n", buf);
}

/* Makes dir and its missing parents, each new one 0700. 0 or -1 (errno set). */
static int mkdirs(char *dir)
{
    for (char *s = dir + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            *s = c;
            return -1;
        }
        *s = c;
        if (c == '\0')
            return 0;
    }
}

/*
 * The default capture file: $XDG_STATE_HOME/eastrace/captures/proxy-YYYYMMDD-HHMMSS.etcap
 * (else ~/.local/state/...; the XDG base directory spec's place for data that should persist
 * between restarts but is not portable). Written into out; 0 or -1 with a message.
 */
static int default_capture_path(char *out, size_t outlen)
{
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    char dir[4096];
    if (xdg != NULL && xdg[0] == '/')
        snprintf(dir, sizeof(dir), "%s/eastrace/captures", xdg);
    else if (home != NULL && home[0] == '/')
        snprintf(dir, sizeof(dir), "%s/.local/state/eastrace/captures", home);
    else {
        et_cli_err("proxy: no state directory for the capture (set XDG_STATE_HOME or HOME, or "
                   "use -w FILE or --no-record)");
        return -1;
    }
    if (mkdirs(dir) != 0) {
        et_cli_err("proxy: cannot create %s: %s (use -w FILE or --no-record)", dir,
                   strerror(errno));
        return -1;
    }
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];
    localtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
    snprintf(out, outlen, "%s/proxy-%s.etcap", dir, stamp);
    return 0;
}

/* 1 for 127.0.0.0/8, ::1 and "localhost". */
static int is_loopback_literal(const char *a)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (strcmp(a, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, a, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, a, &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&v6);
    return 0;
}

/*
 * The addresses a phone can use: for 0.0.0.0 / :: every non-loopback address of the machine
 * (IPv4 for 0.0.0.0, both for ::), else the listening address; each with its install page
 * URL. Suggests the --allow CIDR of each interface when no client but loopback is admitted.
 */
static void print_addresses(FILE *f, const char *la, int port, int suggest)
{
    int any4 = strcmp(la, "0.0.0.0") == 0, any6 = strcmp(la, "::") == 0;
    struct ifaddrs *ifa = NULL;
    int n = 0;
    if ((any4 || any6 || suggest) && getifaddrs(&ifa) == 0) {
        for (struct ifaddrs *i = ifa; i != NULL; i = i->ifa_next) {
            char a[INET6_ADDRSTRLEN] = "";
            int fam = i->ifa_addr ? i->ifa_addr->sa_family : 0;
            if (fam != AF_INET && (fam != AF_INET6 || !any6))
                continue;
            const void *src = fam == AF_INET
                ? (const void *)&((const struct sockaddr_in *)(const void *)i->ifa_addr)->sin_addr
                : (const void *)&((const struct sockaddr_in6 *)(const void *)i->ifa_addr)->sin6_addr;
            inet_ntop(fam, src, a, sizeof(a));
            if (is_loopback_literal(a) || (fam == AF_INET6 && strncmp(a, "fe80", 4) == 0))
                continue;
            if (!(any4 || any6) && strcmp(a, la) != 0)
                continue;
            if (n++ == 0)
                fprintf(f, "  phone: Wi-Fi > HTTP proxy > manual, one of:\n");
            fprintf(f, "    server %s, port %d (%s); install page http://%s%s%s:%d/\n", a, port,
                    i->ifa_name, fam == AF_INET6 ? "[" : "", a, fam == AF_INET6 ? "]" : "",
                    port);
        }
        freeifaddrs(ifa);
    }
    if (n == 0)
        fprintf(f, "  phone: Wi-Fi > HTTP proxy > manual: server %s, port %d%s\n", la, port,
                is_loopback_literal(la) ? " (loopback only: use --listen <LAN address>:8888)"
                                        : "");
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eastrace proxy [OPTIONS]\n"
            "       eastrace proxy --reverse https://CAS[:PORT] --listen ADDR:PORT [--cert FILE\n"
            "                      --key FILE] [--upstream-ca FILE] [-w FILE] [OPTIONS]\n"
            "\n"
            "Explicit HTTP proxy that intercepts the phone's TLS (CONNECT) with per-host\n"
            "certificates from the eastrace CA, checks the server's certificate, holds EAS long\n"
            "polls and records every exchange.\n"
            "\n"
            "  --listen ADDR:PORT        listen address (default 127.0.0.1:8888; 0.0.0.0 for\n"
            "                            every interface: the real addresses are printed)\n"
            "  --allow CIDR              admit clients from CIDR (repeatable; loopback always;\n"
            "                            required with a non-loopback --listen)\n"
            "  --allow-target HOST|CIDR  allow a target on another port than 80/443 or on a\n"
            "                            loopback/link-local/private/own address (repeatable)\n"
            "  --intercept PATTERN       intercept only matching hosts (glob; repeatable); a\n"
            "                            matching host is an allowed target on any port\n"
            "  --insecure-upstream HOST  do not verify HOST's certificate (marked in every\n"
            "                            exchange; repeatable)\n"
            "  --upstream-ca FILE        verify servers against FILE instead of the system store\n"
            "  --ca-cert FILE --ca-key FILE   use this CA instead of the per-user one\n"
            "  --ca-dir DIR              where the per-user CA lives\n"
            "  --rsa                     RSA-2048 leaf certificates (old devices)\n"
            "  -w FILE                   append every exchange to the capture FILE (default: a\n"
            "                            new file in $XDG_STATE_HOME/eastrace/captures)\n"
            "  --no-record               do not write a capture file\n"
            "  --pin-time SECONDS        a host whose certificate the phone refused is tunnelled\n"
            "                            for that phone this long (default 600; 0: never pin);\n"
            "                            fetching the install page clears it\n"
            "  --max-conns N             client connections at once (default: from the open\n"
            "                            files limit); at the cap the oldest idle one is shed\n"
            "  --max-conns-per-client N  per client address (default 64; loopback: no cap)\n"
            "  --header-timeout SECONDS  for a request head or a silent new connection (10)\n"
            "  --on-capture-error continue|stop   what a capture write error does\n"
            "  --quiet                   no line per exchange\n"
            "  --web ADDR:PORT           also serve the session browser (eastrace web), live:\n"
            "                            exchanges appear as they complete, held long polls\n"
            "                            as pending; its URL with the token is the first line\n"
            "                            of output (127.0.0.1:0 picks a free port)\n"
            "  --only-user USER          record only this user's EAS exchanges (User parameter\n"
            "                            or Basic user name; jdoe also matches DOMAIN\\jdoe and\n"
            "                            jdoe@domain); the rest is forwarded unrecorded\n"
            "                            (repeatable, with --only-device too)\n"
            "  --only-device ID          record only this DeviceId (plain or base64 query)\n"
            "\n"
            "Reverse mode: in front of one Exchange Client Access server, for clients that\n"
            "cannot use a proxy (Outlook for iOS/Android from Microsoft's cloud, apps that\n"
            "ignore user CAs or pin); see docs/proxy.md \"Reverse mode\".\n"
            "\n"
            "  --reverse https://CAS[:PORT]   forward every request to CAS (verified like any\n"
            "                            server: --upstream-ca, --insecure-upstream); only\n"
            "                            origin-form requests (CONNECT and absolute-form are\n"
            "                            refused); the client's Host is kept; X-Forwarded-For\n"
            "                            gets the client appended, X-Forwarded-Proto added\n"
            "  --listen ADDR:PORT        required; any address (everyone is admitted unless\n"
            "                            --allow names the clients)\n"
            "  --cert FILE --key FILE    the certificate chain (PEM, leaf first) and its key\n"
            "                            (PEM, mode 0600: refused when group/others may read\n"
            "                            it) the clients see; without them the listener speaks\n"
            "                            plain HTTP (behind a TLS-terminating load balancer)\n"
            "  --accept-proxy-protocol   every connection begins with a PROXY v1/v2 header from\n"
            "                            the load balancer: the client address is taken from it\n"
            "  --trusted-proxy CIDR      the load balancers (required with the above;\n"
            "                            repeatable); other peers are closed, logged\n"
            "\n"
            "The live view numbers each exchange as its record in the capture FILE (appending\n"
            "goes on from the file's last record): the number `eastrace replay FILE` and\n"
            "`eastrace show FILE N` use.\n");
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
    const char *capfile = NULL, *web = NULL;
    char defcap[4200];
    int no_record = 0;
    int rc = ET_EXIT_INPUT;
    struct et_certs *certs = NULL;
    const char **allow = calloc((size_t)argc + 1, sizeof(char *));
    const char **allow_t = calloc((size_t)argc + 1, sizeof(char *));
    const char **icpt = calloc((size_t)argc + 1, sizeof(char *));
    const char **insec = calloc((size_t)argc + 1, sizeof(char *));
    const char **trusted = calloc((size_t)argc + 1, sizeof(char *));
    const char *fwd_only = NULL; /* a forward-proxy option, refused with --reverse */

    memset(&po, 0, sizeof(po));
    memset(&co, 0, sizeof(co));
    memset(&r, 0, sizeof(r));
    r.only_user = calloc((size_t)argc + 1, sizeof(char *));
    r.only_device = calloc((size_t)argc + 1, sizeof(char *));
    et_error_clear(&e);
    po.listen_port = 8888;
    int listen_given = 0;
    if (allow == NULL || allow_t == NULL || icpt == NULL || insec == NULL || trusted == NULL ||
        r.only_user == NULL || r.only_device == NULL) {
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
            fwd_only = a;
            takes = 0;
        } else if (strcmp(a, "--accept-proxy-protocol") == 0) {
            po.accept_proxy_protocol = 1;
            takes = 0;
        } else if (strcmp(a, "--no-record") == 0) {
            no_record = 1;
            takes = 0;
        } else if (v == NULL) {
            et_cli_err("proxy: unknown option or missing value: %s (see --help)", a);
            goto out;
        } else if (strcmp(a, "--listen") == 0) {
            if (parse_listen(argv[i + 1], &po.listen_addr, &po.listen_port) != 0) {
                et_cli_err("proxy: bad --listen '%s' (ADDR:PORT)", v);
                goto out;
            }
            listen_given = 1;
        } else if (strcmp(a, "--reverse") == 0) {
            if (parse_reverse_url(argv[i + 1], &po) != 0) {
                et_cli_err("proxy: bad --reverse '%s' (https://HOST[:PORT], no path)", v);
                goto out;
            }
        } else if (strcmp(a, "--cert") == 0) {
            po.reverse_cert_file = v;
        } else if (strcmp(a, "--key") == 0) {
            po.reverse_key_file = v;
        } else if (strcmp(a, "--trusted-proxy") == 0) {
            trusted[po.n_trusted_proxy++] = v;
        } else if (strcmp(a, "--only-user") == 0) {
            r.only_user[r.n_only_user++] = v;
        } else if (strcmp(a, "--only-device") == 0) {
            r.only_device[r.n_only_device++] = v;
        } else if (strcmp(a, "--allow") == 0) {
            allow[po.n_allow++] = v;
        } else if (strcmp(a, "--allow-target") == 0) {
            allow_t[po.n_allow_target++] = v;
            fwd_only = a;
        } else if (strcmp(a, "--intercept") == 0) {
            icpt[po.n_intercept++] = v;
            fwd_only = a;
        } else if (strcmp(a, "--insecure-upstream") == 0) {
            insec[po.n_insecure_upstream++] = v;
        } else if (strcmp(a, "--upstream-ca") == 0) {
            po.upstream_ca_file = v;
        } else if (strcmp(a, "--ca-cert") == 0) {
            co.ca_cert_file = v;
            fwd_only = a;
        } else if (strcmp(a, "--ca-key") == 0) {
            co.ca_key_file = v;
            fwd_only = a;
        } else if (strcmp(a, "--ca-dir") == 0) {
            co.dir = v;
            fwd_only = a;
        } else if (strcmp(a, "--web") == 0) {
            web = v;
        } else if (strcmp(a, "-w") == 0) {
            capfile = v;
        } else if (strcmp(a, "--pin-time") == 0 || strcmp(a, "--max-conns") == 0 ||
                   strcmp(a, "--max-conns-per-client") == 0 ||
                   strcmp(a, "--header-timeout") == 0) {
            char *end = NULL;
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (*v == '\0' || *v == '-' || *end != '\0' || errno != 0 || n > 100000000ULL) {
                et_cli_err("proxy: %s takes a number, not '%s'", a, v);
                goto out;
            }
            if (strcmp(a, "--pin-time") == 0)
                fwd_only = a;
            if (strcmp(a, "--pin-time") == 0)
                po.pin_ms = n == 0 ? 1 : n * 1000; /* 1 ms: never pinned (policy.c) */
            else if (strcmp(a, "--max-conns") == 0)
                po.max_conns = (size_t)n;
            else if (strcmp(a, "--max-conns-per-client") == 0)
                po.max_conns_per_client = (size_t)n;
            else if (n == 0) {
                et_cli_err("proxy: --header-timeout must be at least 1 second");
                goto out;
            } else
                po.header_timeout_ms = n * 1000;
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
    po.trusted_proxy = trusted;
    if (r.n_only_user > 0 || r.n_only_device > 0) {
        po.select = on_select;
        po.select_ud = &r;
    }
    if (po.reverse_host != NULL) {
        if (fwd_only != NULL) {
            et_cli_err("proxy: %s belongs to the forward proxy, not to --reverse (which has no "
                       "CA and one upstream)", fwd_only);
            goto out;
        }
        if (!listen_given) {
            et_cli_err("proxy: --reverse needs --listen ADDR:PORT (where the clients or the "
                       "load balancer connect, e.g. --listen 0.0.0.0:443)");
            goto out;
        }
        if ((po.reverse_cert_file == NULL) != (po.reverse_key_file == NULL)) {
            et_cli_err("proxy: --cert and --key go together");
            goto out;
        }
    } else if (po.reverse_cert_file != NULL || po.reverse_key_file != NULL ||
               po.accept_proxy_protocol || po.n_trusted_proxy > 0) {
        et_cli_err("proxy: --cert, --key, --accept-proxy-protocol and --trusted-proxy belong "
                   "to --reverse https://SERVER");
        goto out;
    }
    if (po.accept_proxy_protocol && po.n_trusted_proxy == 0) {
        et_cli_err("proxy: --accept-proxy-protocol needs --trusted-proxy CIDR: the load "
                   "balancers whose PROXY headers are believed");
        goto out;
    }
    if (po.n_trusted_proxy > 0 && !po.accept_proxy_protocol) {
        et_cli_err("proxy: --trusted-proxy goes with --accept-proxy-protocol");
        goto out;
    }
    if ((co.ca_cert_file == NULL) != (co.ca_key_file == NULL)) {
        et_cli_err("proxy: --ca-cert and --ca-key go together");
        goto out;
    }
    if (capfile != NULL && no_record) {
        et_cli_err("proxy: -w and --no-record contradict each other");
        goto out;
    }
    /* Which clients may use the proxy is said, never guessed from the interface. */
    if (po.reverse_host == NULL && po.listen_addr != NULL &&
        !is_loopback_literal(po.listen_addr) && po.n_allow == 0) {
        et_cli_err("proxy: --listen %s admits nobody but this machine: say which clients may use "
                   "the proxy with --allow (the phone's address, e.g. --allow 192.168.1.23, or "
                   "its Wi-Fi subnet, e.g. --allow 192.168.1.0/24)",
                   po.listen_addr);
        goto out;
    }
    if (capfile == NULL && !no_record) {
        if (default_capture_path(defcap, sizeof(defcap)) != 0)
            goto out;
        capfile = defcap;
    }
    if (po.reverse_host == NULL) {
        if (et_certs_open(&co, &certs, &e) != 0) {
            et_cli_err("cannot open the interception CA: %s", e.msg);
            goto out;
        }
        if (et_certs_warnings(certs) != NULL)
            fprintf(stderr, "%s", et_certs_warnings(certs));
    }
    if (capfile != NULL) {
        struct et_capfile_opts cop;
        et_capfile_opts_init(&cop);
        r.cap_base = count_records(capfile);
        if (et_capfile_open_append(capfile, &cop, &r.cap, &e) != 0) {
            et_cli_err("cannot open capture file %s: %s", capfile, e.msg);
            goto out;
        }
    }
    r.out = stdout;
    r.color = et_cli_use_color(stdout);
    {
        struct et_pipe_opts pio;
        struct et_pipe_timeline_opts to;
        struct et_pipe_sink live = {on_live, on_live_finish, &r};
        et_pipe_opts_default(&pio);
        pio.window_us = 0; /* each exchange as it finishes */
        pio.correlate = 0;
        memset(&to, 0, sizeof(to));
        to.out = stdout;
        to.live = 1;
        to.flags = ET_RENDER_ADDRS | (r.color ? ET_RENDER_COLOR : 0);
        r.pipe = et_pipe_new(&pio, &live);
        r.tl = r.pipe ? et_pipe_timeline_new(r.pipe, &to) : NULL;
        if (r.tl == NULL) {
            et_cli_err("out of memory");
            goto out;
        }
        r.tl_sink = et_pipe_timeline_sink(r.tl);
    }
    po.certs = certs;
    po.on_exchange = on_exchange;
    po.on_request = on_request;
    po.ud = &r;
    po.on_exchange_worker = on_exchange_worker;
    po.worker_ud = &r;
    po.on_log = on_log;
    if (web != NULL && (r.web = et_cli_live_web_start(web)) == NULL)
        goto out;
    if (et_proxy_new(&po, &g_proxy, &e) != 0) {
        et_cli_err("cannot start the proxy: %s", e.msg);
        goto out;
    }
    const char *la = po.listen_addr ? po.listen_addr : "127.0.0.1";
    int lport = et_proxy_port(g_proxy);
    int v6 = strchr(la, ':') != NULL;
    if (po.reverse_host != NULL) {
        int h6 = strchr(po.reverse_host, ':') != NULL;
        fprintf(stderr, "eastrace proxy (reverse) listening on %s%s%s:%d (%s), forwarding to "
                "%s://%s%s%s%s\n", v6 ? "[" : "", la, v6 ? "]" : "", lport,
                po.reverse_cert_file ? "TLS with --cert" : "plain HTTP: behind a TLS load balancer",
                po.reverse_tls ? "https" : "http", h6 ? "[" : "", po.reverse_host, h6 ? "]" : "",
                po.reverse_port > 0 ? "" : " (default port)");
        if (po.reverse_port > 0)
            fprintf(stderr, "  upstream port %d\n", po.reverse_port);
        fprintf(stderr, "  clients admitted: %s", po.n_allow ? "" : "anyone (the only target is "
                "that server; --allow CIDR to limit)");
        for (size_t i = 0; i < po.n_allow; i++)
            fprintf(stderr, "%s%s", i ? ", " : "", po.allow[i]);
        fprintf(stderr, "\n");
        if (po.accept_proxy_protocol) {
            fprintf(stderr, "  PROXY protocol v1/v2 required from:");
            for (size_t i = 0; i < po.n_trusted_proxy; i++)
                fprintf(stderr, " %s", po.trusted_proxy[i]);
            fprintf(stderr, " (other peers are closed)\n");
        }
        if (po.select != NULL)
            fprintf(stderr, "  recording only --only-user/--only-device matches; the rest is "
                    "forwarded unrecorded\n");
        goto banner_done;
    }
    char fp[ET_CERTS_FINGERPRINT_LEN];
    if (et_certs_ca_fingerprint(certs, fp, sizeof(fp)) != 0)
        snprintf(fp, sizeof(fp), "?");
    fprintf(stderr, "eastrace proxy listening on %s%s%s:%d\n", v6 ? "[" : "", la, v6 ? "]" : "",
            lport);
    print_addresses(stderr, la, lport, 0);
    fprintf(stderr, "  clients admitted: loopback");
    for (size_t i = 0; i < po.n_allow; i++)
        fprintf(stderr, ", %s", po.allow[i]);
    fprintf(stderr, " (others get 403, counted; --allow CIDR to admit)\n");
    fprintf(stderr,
            "  install the CA on the phone: browse to http://%s/ through the proxy (or the\n"
            "    install page above), then trust it (iOS: Settings > General > About >\n"
            "    Certificate Trust Settings)\n"
            "  CA %s%s\n  CA SHA-256 %s\n",
            ET_CERTS_INSTALL_HOST, et_certs_ca_path(certs),
            et_certs_created(certs) ? " (new: install it on the phone)" : "", fp);
    if (po.select != NULL)
        fprintf(stderr, "  recording only --only-user/--only-device matches; the rest is "
                "forwarded unrecorded\n");
banner_done:
    if (capfile != NULL)
        fprintf(stderr, "  recording to %s%s\n", capfile,
                capfile == defcap ? " (--no-record to turn off)" : "");
    else
        fprintf(stderr, "  not recording (--no-record): exchanges are only shown\n");
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A capture file that reaches a size limit must give a write error, not kill us. */
    signal(SIGXFSZ, SIG_IGN);

    et_proxy_run(g_proxy);

    struct et_proxy_stats st;
    et_proxy_get_stats(g_proxy, &st);
    fprintf(stderr,
            "\neastrace proxy: %llu connections, %llu exchanges (%llu errors), %llu tunnelled, "
            "%llu refused by policy, %llu connections refused at accept, %llu silent ones "
            "timed out, %llu idle ones shed at the cap, %llu forwarded unrecorded, %llu PROXY "
            "headers (%llu refused)\n",
            (unsigned long long)st.connections, (unsigned long long)st.exchanges,
            (unsigned long long)st.errors, (unsigned long long)st.tunnels,
            (unsigned long long)st.denied, (unsigned long long)st.refused,
            (unsigned long long)st.timed_out, (unsigned long long)st.shed,
            (unsigned long long)st.unrecorded, (unsigned long long)st.proxy_headers,
            (unsigned long long)st.proxy_header_errors);
    et_pipe_finish(r.pipe); /* the session summary (on_live_finish) */
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
    et_cli_live_web_stop(r.web);
    et_certs_free(certs);
    et_pipe_timeline_free(r.tl);
    et_pipe_free(r.pipe);
    free(allow);
    free(allow_t);
    free(icpt);
    free(insec);
    free(trusted);
    free(r.only_user);
    free(r.only_device);
    return rc;
}
