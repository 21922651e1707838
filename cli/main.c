/* eastrace: entry point and subcommand dispatch. */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int et_cli_use_color(FILE *f)
{
    const char *nc = getenv("NO_COLOR");
    if (nc != NULL && nc[0] != '\0')
        return 0;
    return isatty(fileno(f));
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
