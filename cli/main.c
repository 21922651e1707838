/* eastrace: entry point and subcommand dispatch. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eastrace/common.h"

struct command {
    const char *name;
    et_cmd_fn fn;
    const char *summary;
};

/* Subcommands in the order `eastrace --help` lists them. */
static const struct command commands[] = {
    {"proxy", et_cmd_proxy, "capture a phone's EAS traffic: intercepting HTTPS proxy"},
    {"decode", et_cmd_decode, "decode WBXML bodies or raw HTTP messages to XML/JSON"},
    {"encode", et_cmd_encode, "encode EAS XML to WBXML (test bodies, replays)"},
    {"ca", et_cmd_ca, "show the interception CA (path, fingerprint) and export it for phones"},
    {"iis", et_cmd_iis, "reports over Exchange IIS logs (hits per device, errors, SyncKey 0, ...)"},
    {"mailboxlog", et_cmd_mailboxlog, "read EAS mailbox logs (GetMailboxLog): entries, Ping report"},
    {"probe", et_cmd_probe, "test an EAS server step by step (DNS, TLS, OPTIONS, Provision, FolderSync)"},
    {"replay", et_cmd_replay, "timeline and findings of captures, .saz, HAR, IIS and mailbox logs"},
    {"show", et_cmd_show, "one exchange in full: headers, EAS request, XML bodies, findings"},
    {"export", et_cmd_export, "write exchanges as a Fiddler .saz or a HAR 1.2 file"},
    {"web", et_cmd_web, "the session browser: grid, XML, findings and devices in a web page"},
};

void et_cli_err(const char *fmt, ...)
{
    va_list ap;
    fputs("eastrace: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* The guarded streams have no descriptor of their own: name the one they write to. */
static int stream_fd(FILE *f)
{
    return f == stdout ? 1 : f == stderr ? 2 : fileno(f);
}

int et_cli_use_color(FILE *f)
{
    const char *nc = getenv("NO_COLOR");
    if (nc != NULL && nc[0] != '\0')
        return 0;
    return isatty(stream_fd(f));
}

/* ---- the terminal guard ----------------------------------------------------------------- */

struct guard {
    int fd;
    unsigned flags;        /* ET_SCRUB_* */
    uint8_t carry[40];     /* an incomplete sequence held from the previous write */
    size_t ncarry;
};

static struct guard guards[2];

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static ssize_t guard_write(void *cookie, const char *buf, size_t size)
{
    struct guard *g = cookie;
    uint8_t work[16384 + sizeof(g->carry)];
    size_t done = 0;

    while (done < size) {
        size_t take = ET_MIN(size - done, (size_t)16384), n, keep;
        memcpy(work, g->carry, g->ncarry);
        memcpy(work + g->ncarry, buf + done, take);
        n = g->ncarry + take;
        et_scrub(work, n, g->flags, &keep);
        if (keep > sizeof(g->carry)) /* cannot happen: sequences are short */
            keep = 0;
        if (write_all(g->fd, work, n - keep) != 0)
            return -1;
        memcpy(g->carry, work + n - keep, keep);
        g->ncarry = keep;
        done += take;
    }
    return (ssize_t)size;
}

static int guard_close(void *cookie)
{
    struct guard *g = cookie;
    if (g->ncarry > 0) {
        et_scrub(g->carry, g->ncarry, g->flags, NULL);
        write_all(g->fd, g->carry, g->ncarry);
        g->ncarry = 0;
    }
    return 0;
}

void et_cli_guard_terminal(void)
{
    static const cookie_io_functions_t io = {NULL, guard_write, NULL, guard_close};
    FILE **streams[2] = {&stdout, &stderr};
    for (int i = 0; i < 2; i++) {
        FILE *f;
        guards[i].fd = i + 1;
        guards[i].flags = ET_SCRUB_LINES;
        if (et_cli_use_color(*streams[i]))
            guards[i].flags |= ET_SCRUB_SGR;
        if ((f = fopencookie(&guards[i], "w", io)) == NULL)
            continue; /* keep the plain stream: fields are still scrubbed where formatted */
        if (i == 1)
            setvbuf(f, NULL, _IONBF, 0);
        else if (isatty(1))
            setvbuf(f, NULL, _IOLBF, 0);
        *streams[i] = f;
    }
}

FILE *et_cli_raw_stdout(void)
{
    static FILE *raw;
    fflush(stdout);
    if (raw == NULL && (raw = fdopen(dup(1), "wb")) == NULL)
        return stdout;
    return raw;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eastrace COMMAND [OPTIONS] [ARGS]\n"
            "\n"
            "Exchange ActiveSync troubleshooting: capture, decode and diagnose EAS traffic.\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n"
               "Options:\n"
               "  -h, --help     show this help (eastrace COMMAND --help for a command)\n"
               "  -V, --version  show the version\n");
}

int main(int argc, char **argv)
{
    et_cli_guard_terminal();
    if (argc < 2) {
        usage(stderr);
        return ET_EXIT_INPUT;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return ET_EXIT_OK;
    }
    if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("eastrace %s\n", ET_VERSION);
        return ET_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    et_cli_err("unknown command '%s' (see eastrace --help)", argv[1]);
    return ET_EXIT_INPUT;
}
