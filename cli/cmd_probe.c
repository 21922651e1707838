/*
 * eastrace probe: the EAS connectivity test (see probe/include/eastrace/probe.h). This file
 * parses arguments, gets the password without exposing it, prints the report as the steps
 * end, and takes the exchanges the probe reports (as the proxy's live view does): each is
 * appended to the capture file (-w) and judged by the pipeline (view, analyzer); the findings
 * go back to the step that made the exchange.
 *
 * Exit status: 0 every step passed (warnings allowed), 1 a step failed, 2 bad usage or the
 * capture file could not be opened.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "eastrace/capfile.h"
#include "eastrace/common.h"
#include "eastrace/pipeline.h"
#include "eastrace/probe.h"

#define PASSWORD_MAX 1024

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eastrace probe [OPTIONS] URL -u DOMAIN\\user\n"
            "       eastrace probe [OPTIONS] --autodiscover EMAIL -u DOMAIN\\user\n"
            "\n"
            "Tests an Exchange ActiveSync server the way a device uses it, step by step, and\n"
            "says for each step passed / warned / failed with the reason and the next step:\n"
            "  1 Autodiscover (--autodiscover)   2 DNS and TCP   3 TLS (chain, name, expiry)\n"
            "  4 OPTIONS (versions, commands)    5 Provision (both phases)   6 FolderSync\n"
            "  7 Sync of the Inbox (--sync)      8 Ping of the Inbox (--ping)\n"
            "URL is https://host[:port][/path]; the path defaults to /Microsoft-Server-ActiveSync.\n"
            "\n"
            "Credentials (never on the command line unless you insist):\n"
            "  -u, --user USER           DOMAIN\\user, user@domain or user (Basic)\n"
            "  --password-file FILE      first line of FILE is the password\n"
            "  EASTRACE_PASSWORD         environment variable with the password\n"
            "  --password-insecure PASS  the password itself (visible to other users in ps)\n"
            "  (otherwise the password is asked on the terminal, without echo)\n"
            "\n"
            "Options:\n"
            "  --autodiscover EMAIL      run Autodiscover for EMAIL first (its URL is used when\n"
            "                            no URL is given)\n"
            "  --autodiscover-url URL    try only this Autodiscover URL\n"
            "  --ca FILE                 trust these CA certificates (PEM) instead of the system\n"
            "                            store (through --proxy: the proxy's CA)\n"
            "  --insecure                go on after a certificate failure (step 3 stays failed)\n"
            "  --protocol VERSION        use this EAS version (2.5 .. 16.1) instead of the highest\n"
            "  --device-id ID            DeviceId to send (default EASTRACEPROBE0001)\n"
            "  --device-type TYPE        DeviceType to send (default eastrace)\n"
            "  --user-agent UA           User-Agent to send\n"
            "  --sync                    also Sync the Inbox (small window) and count items\n"
            "  --ping                    also Ping the Inbox\n"
            "  --ping-seconds N          Ping HeartbeatInterval (default 60)\n"
            "  --timeout SECONDS         connect and read timeout (default 15)\n"
            "  -x, --proxy HOST:PORT     go through an HTTP proxy (CONNECT)\n"
            "  -w FILE                   append every exchange to the capture FILE\n"
            "                            (eastrace replay / show read it)\n"
            "  --include-secrets         keep the Authorization header in the capture\n"
            "  --json                    print one JSON object at the end\n"
            "  -h, --help                show this help\n"
            "\n"
            "Exit status: 0 every step passed (warnings allowed), 1 a step failed, 2 bad usage.\n");
}

/* Reads a password from the terminal with echo off. Returns 0 or -1. */
static int prompt_password(const char *user, char *out, size_t outlen)
{
    FILE *tty = fopen("/dev/tty", "r+");
    struct termios old, noecho;
    int rc = -1;

    if (tty == NULL)
        return -1;
    fprintf(tty, "Password for %s: ", user);
    fflush(tty);
    if (tcgetattr(fileno(tty), &old) == 0) {
        noecho = old;
        noecho.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fileno(tty), TCSAFLUSH, &noecho);
        if (fgets(out, (int)outlen, tty) != NULL)
            rc = 0;
        tcsetattr(fileno(tty), TCSAFLUSH, &old);
        fputc('\n', tty);
    }
    fclose(tty);
    if (rc == 0)
        out[strcspn(out, "\r\n")] = '\0';
    return rc;
}

static int read_password_file(const char *path, char *out, size_t outlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        et_cli_err("%s: %s", path, strerror(errno));
        return -1;
    }
    if (fgets(out, (int)outlen, f) == NULL)
        out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/* Live output: each step as it ends, preceded by the earlier steps that were skipped (they
 * never end, so they are printed when a later one does, keeping the numbered order). */
struct live {
    unsigned flags;
    unsigned printed; /* bit i: step i was printed */
};

/* Where the probe's exchanges go: the capture file, then the pipeline. */
struct probe_sink {
    struct et_capfile_writer *cap;
    struct et_pipe *pipe;
    struct et_probe_report *r; /* during on_probe_exchange */
    struct et_probe_step *s;
};

/* The pipeline's sink: the findings of the exchange go to its step. */
static int on_judged(void *arg, const struct et_pipe_item *it)
{
    struct probe_sink *ps = arg;
    for (const struct et_finding *f = it->findings; f != NULL; f = f->next)
        if (et_probe_step_add_finding(ps->r, ps->s, f->rule, (int)f->severity, f->message,
                                      f->next_step, it->n) != 0)
            return ET_ENOMEM;
    return 0;
}

static void on_probe_exchange(struct et_exchange *x, struct et_probe_report *r,
                              struct et_probe_step *s, void *arg)
{
    struct probe_sink *ps = arg;
    struct et_error e;

    if (ps->cap != NULL) {
        et_error_clear(&e);
        if (et_capfile_write(ps->cap, x, &e) == 0)
            r->captured++;
        else if (r->capture_error == NULL)
            r->capture_error = et_arena_strdup(r->arena, e.msg);
    }
    ps->r = r;
    ps->s = s;
    et_pipe_judge(ps->pipe, x); /* out of memory: the step just has no findings */
}

static void print_step(struct live *l, const struct et_probe_step *s)
{
    struct et_buf b;
    et_buf_init(&b, 0);
    if (et_probe_step_text(s, l->flags, &b) == 0 && b.len > 0)
        fwrite(b.data, 1, b.len, stdout);
    fflush(stdout);
    et_buf_free(&b);
    l->printed |= 1u << s->id;
}

static void on_step(const struct et_probe_report *r, const struct et_probe_step *s, void *arg)
{
    struct live *l = arg;
    for (int i = 0; i < (int)s->id; i++)
        if (!(l->printed & (1u << i)))
            print_step(l, &r->steps[i]);
    print_step(l, s);
}

enum {
    OPT_PASSWORD_FILE = 256,
    OPT_PASSWORD_INSECURE,
    OPT_AUTODISCOVER,
    OPT_AUTODISCOVER_URL,
    OPT_CA,
    OPT_INSECURE,
    OPT_PROTOCOL,
    OPT_DEVICE_ID,
    OPT_DEVICE_TYPE,
    OPT_USER_AGENT,
    OPT_SYNC,
    OPT_PING,
    OPT_PING_SECONDS,
    OPT_TIMEOUT,
    OPT_INCLUDE_SECRETS,
    OPT_JSON
};

static const struct option long_opts[] = {
    {"user", required_argument, NULL, 'u'},
    {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"password-insecure", required_argument, NULL, OPT_PASSWORD_INSECURE},
    {"autodiscover", required_argument, NULL, OPT_AUTODISCOVER},
    {"autodiscover-url", required_argument, NULL, OPT_AUTODISCOVER_URL},
    {"ca", required_argument, NULL, OPT_CA},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"protocol", required_argument, NULL, OPT_PROTOCOL},
    {"device-id", required_argument, NULL, OPT_DEVICE_ID},
    {"device-type", required_argument, NULL, OPT_DEVICE_TYPE},
    {"user-agent", required_argument, NULL, OPT_USER_AGENT},
    {"sync", no_argument, NULL, OPT_SYNC},
    {"ping", no_argument, NULL, OPT_PING},
    {"ping-seconds", required_argument, NULL, OPT_PING_SECONDS},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"proxy", required_argument, NULL, 'x'},
    {"include-secrets", no_argument, NULL, OPT_INCLUDE_SECRETS},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end = NULL;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int et_cmd_probe(int argc, char **argv)
{
    struct et_probe_opts o;
    struct et_probe_report *r = NULL;
    struct et_error e;
    char password[PASSWORD_MAX];
    const char *password_file = NULL, *password_arg = NULL;
    int json = 0, c, rc, secs;
    struct live live = {0, 0};
    const char *capture_path = NULL;
    struct probe_sink ps;
    struct et_pipe_opts po;
    struct et_pipe_sink judged = {on_judged, NULL, NULL};

    et_probe_opts_init(&o);
    password[0] = '\0';
    optind = 1;
    while ((c = getopt_long(argc, argv, "u:x:w:h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'u': o.user = optarg; break;
        case 'x': o.proxy = optarg; break;
        case 'w': capture_path = optarg; break;
        case 'h': usage(stdout); return ET_EXIT_OK;
        case OPT_PASSWORD_FILE: password_file = optarg; break;
        case OPT_PASSWORD_INSECURE: password_arg = optarg; break;
        case OPT_AUTODISCOVER: o.autodiscover = optarg; break;
        case OPT_AUTODISCOVER_URL: o.autodiscover_url = optarg; break;
        case OPT_CA: o.ca_file = optarg; break;
        case OPT_INSECURE: o.insecure = 1; break;
        case OPT_PROTOCOL: o.protocol = optarg; break;
        case OPT_DEVICE_ID: o.device_id = optarg; break;
        case OPT_DEVICE_TYPE: o.device_type = optarg; break;
        case OPT_USER_AGENT: o.user_agent = optarg; break;
        case OPT_SYNC: o.do_sync = 1; break;
        case OPT_PING: o.do_ping = 1; break;
        case OPT_PING_SECONDS:
            if (parse_int(optarg, 1, 3540, &o.ping_seconds) != 0) {
                et_cli_err("--ping-seconds: expected 1..3540 seconds");
                return ET_EXIT_INPUT;
            }
            break;
        case OPT_TIMEOUT:
            if (parse_int(optarg, 1, 3600, &secs) != 0) {
                et_cli_err("--timeout: expected 1..3600 seconds");
                return ET_EXIT_INPUT;
            }
            o.timeout_ms = secs * 1000;
            break;
        case OPT_INCLUDE_SECRETS: o.include_secrets = 1; break;
        case OPT_JSON: json = 1; break;
        default: usage(stderr); return ET_EXIT_INPUT;
        }
    }
    if (optind < argc)
        o.url = argv[optind++];
    if (optind < argc) {
        et_cli_err("unexpected argument: %s", argv[optind]);
        return ET_EXIT_INPUT;
    }
    if (o.url == NULL && o.autodiscover == NULL) {
        et_cli_err("probe: a URL (or --autodiscover EMAIL) is needed; see eastrace probe --help");
        return ET_EXIT_INPUT;
    }
    if (o.user == NULL) {
        et_cli_err("probe: -u DOMAIN\\user is needed");
        return ET_EXIT_INPUT;
    }
    if (o.protocol != NULL) {
        int known = 0;
        for (size_t i = 0; i < et_probe_our_versions_count; i++)
            known |= strcmp(o.protocol, et_probe_our_versions[i]) == 0;
        if (!known) {
            et_cli_err("--protocol: %s is not an EAS version (2.5, 12.0, 12.1, 14.0, 14.1, "
                       "16.0, 16.1)",
                       o.protocol);
            return ET_EXIT_INPUT;
        }
    }

    /* The password: file, then environment, then the insecure argument, then a prompt. */
    if (password_file != NULL) {
        if (read_password_file(password_file, password, sizeof(password)) != 0)
            return ET_EXIT_INPUT;
    } else if (getenv("EASTRACE_PASSWORD") != NULL) {
        snprintf(password, sizeof(password), "%s", getenv("EASTRACE_PASSWORD"));
    } else if (password_arg != NULL) {
        snprintf(password, sizeof(password), "%s", password_arg);
    } else if (prompt_password(o.user, password, sizeof(password)) != 0) {
        et_cli_err("probe: no password: no terminal to ask on; use --password-file FILE or "
                   "EASTRACE_PASSWORD");
        return ET_EXIT_INPUT;
    }
    o.password = password;

    /* A capture file that hits a size limit should give an error, not kill the probe. */
    signal(SIGXFSZ, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    live.flags = et_cli_use_color(stdout) ? ET_PROBE_TEXT_COLOR : 0;
    if (!json) {
        printf("eastrace probe %s as %s%s%s\n", o.url ? o.url : "(from Autodiscover)", o.user,
               o.proxy ? " through " : "", o.proxy ? o.proxy : "");
        o.on_step = on_step;
        o.cb_arg = &live;
    }
    memset(&ps, 0, sizeof(ps));
    et_error_clear(&e);
    if (capture_path != NULL && et_capfile_open_append(capture_path, NULL, &ps.cap, &e) != 0) {
        et_cli_err("probe: %s", e.msg);
        memset(password, 0, sizeof(password));
        return ET_EXIT_INPUT;
    }
    /* Judged one at a time as they are made; summary findings (usage per day, loops still
     * going) say nothing about a handful of exchanges made in a few seconds. */
    et_pipe_opts_default(&po);
    po.window_us = 0;
    po.correlate = 0;
    judged.arg = &ps;
    ps.pipe = et_pipe_new(&po, &judged);
    if (ps.pipe == NULL) {
        et_cli_err("out of memory");
        exit(ET_EXIT_INPUT);
    }
    o.on_exchange = on_probe_exchange;
    o.exchange_arg = &ps;
    et_error_clear(&e);
    rc = et_probe_run(&o, &r, &e);
    memset(password, 0, sizeof(password));
    et_pipe_free(ps.pipe);
    if (ps.cap != NULL) {
        struct et_error ce;
        et_error_clear(&ce);
        if (et_capfile_close(ps.cap, &ce) != 0 && r != NULL && r->capture_error == NULL)
            r->capture_error = et_arena_strdup(r->arena, ce.msg);
    }
    if (rc != 0) {
        et_cli_err("probe: %s", e.code ? e.msg : et_strerror(rc));
        et_probe_report_free(r);
        return ET_EXIT_INPUT;
    }
    if (json) {
        struct et_buf b;
        et_buf_init(&b, 0);
        if (et_probe_report_json(r, &b) == 0 && et_buf_putc(&b, '\n') == 0)
            fwrite(b.data, 1, b.len, stdout);
        et_buf_free(&b);
    } else {
        struct et_buf b;
        for (int i = 0; i < ET_PROBE_NSTEPS; i++)
            if (!(live.printed & (1u << i)))
                print_step(&live, &r->steps[i]);
        et_buf_init(&b, 0);
        if (et_probe_report_summary(r, &b) == 0)
            fwrite(b.data, 1, b.len, stdout);
        et_buf_free(&b);
    }
    rc = et_probe_report_worst(r) == ET_PROBE_FAILED ? ET_EXIT_FINDINGS : ET_EXIT_OK;
    et_probe_report_free(r);
    return rc;
}
