/*
 * The filter options shared by replay, show and export: --device, --user, --cmd, --host,
 * --since/--until, --errors and --find. The pipeline applies them (pipeline/filter.c).
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eastrace/pipeline.h"

static int parse_time(const char *s, int64_t *out)
{
    if (et_time_parse_iso8601(s, out) == 0)
        return 0;
    et_cli_err("bad time '%s': use ISO 8601, e.g. 2024-05-01T10:00:00Z", s);
    return -1;
}

int et_cli_filter_arg(struct et_pipe_filter *f, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char **slot = NULL;

    if (strcmp(a, "--errors") == 0) {
        f->errors_only = 1;
        return 1;
    }
    if (strcmp(a, "--device") == 0)
        slot = &f->device;
    else if (strcmp(a, "--user") == 0)
        slot = &f->user;
    else if (strcmp(a, "--cmd") == 0)
        slot = &f->cmd;
    else if (strcmp(a, "--host") == 0)
        slot = &f->host;
    else if (strcmp(a, "--find") == 0)
        slot = &f->find;
    else if (strcmp(a, "--since") != 0 && strcmp(a, "--until") != 0)
        return 0;
    if (*i + 1 >= argc) {
        et_cli_err("%s needs a value", a);
        return -1;
    }
    (*i)++;
    if (slot != NULL) {
        *slot = argv[*i];
        return 1;
    }
    if (strcmp(a, "--since") == 0)
        return parse_time(argv[*i], &f->since) == 0 ? 1 : -1;
    return parse_time(argv[*i], &f->until) == 0 ? 1 : -1;
}

const char *et_cli_filter_help =
    "Filters:\n"
    "  --device ID        only this device (DeviceId; else user or client address)\n"
    "  --user NAME        only this user (User parameter or Basic user name), named as\n"
    "                     proxy --only-user names it: case-insensitive, jdoe also\n"
    "                     CONTOSO\\jdoe and jdoe@contoso.com\n"
    "  --cmd CMD          only this EAS command (Sync, Ping, ...; OPTIONS for OPTIONS)\n"
    "  --host NAME        only requests to this host\n"
    "  --since TIME       only exchanges at or after TIME (ISO 8601, UTC unless an offset)\n"
    "  --until TIME       only exchanges before TIME\n"
    "  --errors           only exchanges with a finding (warning or error)\n"
    "  --find TEXT        only exchanges whose decoded XML, headers, target, EAS request\n"
    "                     line, source fields or server-log facts (\"Status 3\", an IIS\n"
    "                     Error:, a mailbox-log exception) contain TEXT (case-insensitive)\n";

int et_cli_write_safe(FILE *f, const unsigned char *p, size_t n)
{
    /* On a terminal, recorded traffic must not drive it: escape C0 controls but newline and
     * tab, and DEL. ANSI colours we add ourselves are written with fputs, not through here. */
    size_t run = 0;
    if (!isatty(fileno(f)))
        return fwrite(p, 1, n, f) == n ? 0 : -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
            fwrite(p + run, 1, i - run, f);
            fprintf(f, "\\x%02X", c);
            run = i + 1;
        }
    }
    fwrite(p + run, 1, n - run, f);
    return ferror(f) ? -1 : 0;
}
