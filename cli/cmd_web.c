/*
 * eastrace web: the session browser over captures, .saz, HAR, IIS and mailbox logs. Reads the
 * inputs (merged by time, numbered as replay numbers them, judged by the same analyzer) into
 * a web store, then serves the page on 127.0.0.1 with a random access token until
 * interrupted. The URL (with the token) is the first line of standard output.
 */
#include "cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "eastrace/analyzer.h"
#include "eastrace/exchange.h"
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

/* Reads every input into the store: one exchange at a time, numbered in timeline order. */
static int load(char **files, size_t nfiles, const char *format, struct et_web_store *st)
{
    struct et_cli_merge *m = et_cli_merge_open(files, nfiles, format);
    struct et_analyzer *an = et_analyzer_new(NULL);
    struct et_finding *summary = NULL;
    struct et_exchange *x;
    unsigned long long n = 0;
    int rc = 0;

    if (m == NULL || an == NULL) {
        et_cli_err("out of memory");
        exit(ET_EXIT_INPUT);
    }
    while ((x = et_cli_merge_next(m)) != NULL) {
        struct et_view v;
        struct et_finding *f = NULL;
        n++;
        if (et_view_build(x, x->arena, &v) != 0 ||
            et_analyzer_feed(an, x, &v, x->arena, &f) != 0) {
            et_cli_err("out of memory");
            exit(ET_EXIT_INPUT);
        }
        rc = et_web_store_add(st, n, x, &v, f, 0);
        et_view_reset(&v);
        et_exchange_free(x);
        if (rc != 0) {
            et_cli_err("web store: %s", et_strerror(rc));
            break;
        }
    }
    if (rc == 0 && et_analyzer_finish(an, &summary) == 0)
        rc = et_web_store_finish(st, summary, an);
    if (et_cli_merge_failed(m))
        rc = rc ? rc : ET_EIO;
    et_cli_merge_close(m);
    et_analyzer_free(an);
    return rc;
}

int et_cmd_web(int argc, char **argv)
{
    struct et_web_store_opts so = {0};
    struct et_web_server_opts wo = {0};
    struct et_web_store *st;
    struct et_web_server *srv = NULL;
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
    if (load(files, nfiles, format, st) != 0) {
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
    fprintf(stderr, "eastrace web: %zu exchange(s); open the URL above; Ctrl-C stops\n",
            et_web_store_count(st));
    if (!et_web_server_loopback(srv))
        fprintf(stderr, "eastrace web: %s is not a loopback address: anyone who can reach it "
                        "can try; every request needs the token in the URL (or its cookie), and "
                        "the traffic is plain HTTP\n", wo.listen);
    sigwait(&set, &sig);
out:
    et_web_server_stop(srv);
    et_web_store_free(st);
    et_free(files);
    return status;
}

/* ---- export --html ---------------------------------------------------------------------- */

struct et_cli_html {
    struct et_web_store *st;
};

struct et_cli_html *et_cli_html_open(int include_secrets)
{
    struct et_web_store_opts so = {0};
    struct et_cli_html *h = et_calloc(1, sizeof(*h));
    struct et_error e;
    char msg[400];

    if (h == NULL) {
        et_cli_err("out of memory");
        return NULL;
    }
    so.include_secrets = include_secrets;
    so.redact_search = 1; /* the file leaves the machine: its search text is redacted too */
    et_error_clear(&e);
    if ((h->st = et_web_store_new(&so, &e)) == NULL) {
        et_cli_err("%s", et_error_format(&e, msg, sizeof(msg)));
        et_free(h);
        return NULL;
    }
    return h;
}

int et_cli_html_add(struct et_cli_html *h, unsigned long long n, const struct et_exchange *x,
                    const struct et_view *v, const struct et_finding *f, struct et_error *e)
{
    int rc = et_web_store_add(h->st, n, x, v, f, 0);
    if (rc != 0)
        et_error_set(e, rc, "%s", et_strerror(rc));
    return rc;
}

int et_cli_html_close(struct et_cli_html *h, struct et_analyzer *an, const char *path,
                      struct et_error *e)
{
    struct et_finding *summary = NULL;
    const char *base = strrchr(path, '/');
    int rc;

    if (et_analyzer_finish(an, &summary) != 0)
        summary = NULL;
    rc = et_web_store_finish(h->st, summary, an);
    if (rc == 0)
        rc = et_web_export_html(h->st, path, base ? base + 1 : path, e);
    else
        et_error_set(e, rc, "%s", et_strerror(rc));
    et_web_store_free(h->st);
    et_free(h);
    return rc;
}
