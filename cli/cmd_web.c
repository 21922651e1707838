/*
 * eastrace web: the session browser over captures, .saz, HAR, IIS and mailbox logs. Reads the
 * inputs (merged by time, numbered as replay numbers them, judged by the same analyzer) into
 * a web store through the pipeline (so numbers, correlation, findings and filters are
 * replay's) while it serves the page on 127.0.0.1 with a random access token, until
 * interrupted. The URL (with the token) is the first line of standard output, printed once
 * every input is open; rows appear in the page as they are read.
 */
#include "cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "eastrace/analyzer.h"
#include "eastrace/exchange.h"
#include "eastrace/pipeline.h"
#include "eastrace/web.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eastrace web [OPTIONS] FILE...\n"
            "\n"
            "Serves the session browser for eastrace captures, Fiddler .saz, HAR files,\n"
            "Exchange IIS logs and EAS mailbox logs (merged by time as replay merges them):\n"
            "a grid of every exchange (sort, filter with replay's filters), the detail of\n"
            "each (timings, TLS, headers, EAS request line, request and response XML,\n"
            "findings with next steps), devices and findings by rule. Prints the URL to open,\n"
            "with a random access token, as the first line of output; runs until interrupted.\n"
            "\n"
            "Options:\n"
            "  --listen ADDR:PORT   where to listen (127.0.0.1:0: loopback, a free port); any\n"
            "                       other address is reachable from the network, and every\n"
            "                       request there needs the token too\n"
            "  --format FMT         read every FILE as FMT (capture, saz, har, iis, mailboxlog)\n"
            "  --include-secrets    show Authorization and Cookie values (redacted by default)\n"
            "  -h, --help           show this help\n"
            "\n"
            "Exit status: 0 after an interrupt, 2 an input could not be read or the address\n"
            "could not be used.\n");
}

int et_cmd_web(int argc, char **argv)
{
    struct et_web_store_opts so = {0};
    struct et_web_server_opts wo = {0};
    struct et_web_store *st;
    struct et_web_server *srv = NULL;
    struct et_pipe_opts po;
    struct et_pipe_sink sink;
    struct et_pipe *p = NULL;
    int failed = 0, rc;
    struct et_error e;
    const char *format = NULL;
    char **files, msg[400];
    size_t nfiles = 0;
    sigset_t set;
    int sig, status = ET_EXIT_OK;

    files = et_calloc((size_t)argc, sizeof(*files));
    if (files == NULL)
        return ET_EXIT_INPUT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            et_free(files);
            return ET_EXIT_OK;
        } else if (strcmp(a, "--listen") == 0 && i + 1 < argc) {
            wo.listen = argv[++i];
        } else if (strcmp(a, "--format") == 0 && i + 1 < argc) {
            format = argv[++i];
        } else if (strcmp(a, "--include-secrets") == 0) {
            so.include_secrets = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            et_cli_err("web: unknown option '%s' (see eastrace web --help)", a);
            et_free(files);
            return ET_EXIT_INPUT;
        } else {
            files[nfiles++] = argv[i];
        }
    }
    if (nfiles == 0) {
        usage(stderr);
        et_free(files);
        return ET_EXIT_INPUT;
    }
    et_error_clear(&e);
    st = et_web_store_new(&so, &e);
    if (st == NULL) {
        et_cli_err("%s", et_error_format(&e, msg, sizeof(msg)));
        et_free(files);
        return ET_EXIT_INPUT;
    }
    /* Every input opened first: one that cannot be read ends here, before any URL. */
    et_pipe_opts_default(&po);
    po.format = format;
    sink = et_web_store_sink(st);
    if ((p = et_pipe_new(&po, &sink)) == NULL) {
        et_cli_err("out of memory");
        exit(ET_EXIT_INPUT);
    }
    for (size_t i = 0; i < nfiles; i++)
        if (et_pipe_open(p, files[i]) != 0)
            failed = 1;
    if (failed) {
        status = ET_EXIT_INPUT;
        goto out;
    }
    /* The server's thread inherits this mask, so the signals come to sigwait() below. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (et_web_server_start(st, &wo, &srv, &e) != 0) {
        et_cli_err("web: %s", et_error_format(&e, msg, sizeof(msg)));
        status = ET_EXIT_INPUT;
        goto out;
    }
    printf("%s\n", et_web_server_url(srv));
    fflush(stdout);
    if (!et_web_server_loopback(srv))
        fprintf(stderr, "eastrace web: %s is not a loopback address: anyone who can reach it "
                        "can try; every request needs the token in the URL (or its cookie), and "
                        "the traffic is plain HTTP\n", wo.listen);
    rc = et_pipe_run(p);
    if (rc != 0)
        et_cli_err("web: %s (the page shows what was read)", et_strerror(rc));
    else if (et_pipe_stats(p)->inputs_failed > 0)
        et_cli_err("web: an input ended with an error (the page shows what was read)");
    fprintf(stderr, "eastrace web: %zu exchange(s); open the URL above; Ctrl-C stops\n",
            et_web_store_count(st));
    sigwait(&set, &sig);
out:
    et_web_server_stop(srv);
    et_pipe_free(p);
    et_web_store_free(st);
    et_free(files);
    return status;
}


/* ---- proxy --web ------------------------------------------------------------------------- */

struct et_cli_live_web {
    struct et_web_store *st;
    struct et_web_server *srv;
};

/* Rows kept in a live session: the oldest go first beyond this. */
#define LIVE_MAX_ROWS ((size_t)100000)

struct et_cli_live_web *et_cli_live_web_start(const char *listen)
{
    struct et_web_store_opts so = {0};
    struct et_web_server_opts wo = {0};
    struct et_cli_live_web *w = et_calloc(1, sizeof(*w));
    struct et_error e;
    char msg[400];

    if (w == NULL) {
        et_cli_err("out of memory");
        return NULL;
    }
    so.max_rows = LIVE_MAX_ROWS;
    wo.listen = listen;
    et_error_clear(&e);
    if ((w->st = et_web_store_new(&so, &e)) == NULL ||
        et_web_server_start(w->st, &wo, &w->srv, &e) != 0) {
        et_cli_err("proxy --web: %s", et_error_format(&e, msg, sizeof(msg)));
        et_web_store_free(w->st);
        et_free(w);
        return NULL;
    }
    et_web_store_set_live(w->st, 1);
    printf("%s\n", et_web_server_url(w->srv));
    fflush(stdout);
    fprintf(stderr, "eastrace proxy: the session browser is at the URL above%s\n",
            et_web_server_loopback(w->srv)
                ? ""
                : " (not a loopback address: every request there needs the token too)");
    return w;
}

void et_cli_live_web_request(struct et_cli_live_web *w, const struct et_exchange *x)
{
    struct et_arena *a = et_arena_new(0);
    struct et_view v;
    if (a == NULL)
        return;
    /* The view of the request alone: device, command, and the heartbeat it asked for. */
    if (et_view_build(x, a, &v) == 0) {
        if (v.is_eas)
            et_web_store_begin_pending(w->st, x->id, x->t.req_begin, v.device, v.cmd, x->host,
                                       v.heartbeat_req);
        et_view_reset(&v);
    }
    et_arena_free(a);
}

void et_cli_live_web_done(struct et_cli_live_web *w, uint64_t id)
{
    et_web_store_end_pending(w->st, id);
}

void et_cli_live_web_add(struct et_cli_live_web *w, const struct et_pipe_item *it)
{
    et_web_store_add(w->st, it->n, it->x, it->v, it->findings, it->seen_by);
}

void et_cli_live_web_stop(struct et_cli_live_web *w)
{
    if (w == NULL)
        return;
    et_web_server_stop(w->srv);
    et_web_store_free(w->st);
    et_free(w);
}
