/*
 * eastrace replay: the decoded timeline of one or more inputs (eastrace captures, .saz, HAR,
 * IIS logs, mailbox logs) merged by time, one line per exchange, then the analyzer's findings
 * with their next steps and a summary per device. --json prints JSON Lines (docs/json.md).
 *
 * Exit status (scripts rely on it): 0 nothing at or above --fail-on (default: error) was found,
 * 1 something was, 2 an input could not be read.
 *
 * Everything between reading and printing is the pipeline's (eastrace/pipeline.h): merge by
 * time, correlation of one request seen by several kinds of source (one line with a "seen by"
 * column), the reordering window, numbering, the view and the analyzer, the filters. This file
 * parses options and picks the timeline sink.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eastrace/analyzer.h"
#include "eastrace/capfile.h"
#include "eastrace/eas.h"
#include "eastrace/exchange.h"
#include "eastrace/pipeline.h"
#include "eastrace/source.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eastrace replay [OPTIONS] FILE...\n"
            "\n"
            "Reads eastrace captures, Fiddler .saz, HAR files, Exchange IIS logs (files or\n"
            "directories) and EAS mailbox logs, merges them by time, and prints one line per\n"
            "exchange (number, time, device or client, command, HTTP status, EAS Status with\n"
            "its name, request/response sizes, duration), then the findings with the next\n"
            "troubleshooting step, then a summary per device. Given more than one kind of\n"
            "source (capture/.saz/HAR, IIS log, mailbox log), the same request seen by several\n"
            "is one line, and a first column says which sources saw it (cap iis mbx).\n"
            "\n"
            "Numbers (the # column, JSON \"n\", `eastrace show FILE... N`): with one input,\n"
            "the record's own number in it (capture record, .saz session, HAR entry, log\n"
            "line, mailbox-log entry; the proxy's live view prints the same); with several,\n"
            "the position in the merged timeline. Filters never renumber. Lines come in start\n"
            "time order within a 5 s window (60 s at most). See docs/json.md.\n"
            "\n"
            "Options:\n"
            "  --json               JSON Lines: one object per exchange, then a summary object\n"
            "  --fail-on SEVERITY   exit 1 when a finding at or above it exists: error\n"
            "                       (default), warning, info, or never\n"
            "  --format FMT         read every FILE as FMT (capture, saz, har, iis, mailboxlog)\n"
            "  --follow             follow one capture file as it grows (eastrace proxy -w)\n"
            "  --no-findings        timeline only\n"
            "  --storm-per-minute N requests per device in 60 s that make a storm (60)\n"
            "  --high-usage N       requests per device per day that are high usage (1000)\n"
            "%s"
            "  --no-color           no colours (also when NO_COLOR is set or not a terminal)\n"
            "  --match-tolerance S  seconds two sources' times of one request may differ (3)\n"
            "  --no-correlate       list every source's exchanges separately\n"
            "%s"
            "  -h, --help           show this help\n"
            "\n"
            "Exit status: 0 nothing at or above --fail-on, 1 findings at or above it,\n"
            "2 an input could not be read.\n",
            et_analyzer_opts_help(), et_cli_filter_help);
}

/* --follow: one capture file read as it grows; lines and findings printed as they come. */
static int follow(struct et_pipe *p, const char *path)
{
    struct et_capfile_read_opts o = {.follow = 1, .max_record = 0};
    struct et_source *s = NULL;
    struct et_error e;
    char msg[400];

    et_error_clear(&e);
    if (et_capfile_open_ex(path, &o, &s, &e) != 0) {
        et_cli_err("%s", et_error_format(&e, msg, sizeof(msg)));
        return ET_EXIT_INPUT;
    }
    for (;;) {
        struct et_exchange *x = NULL;
        int rc;
        et_error_clear(&e);
        rc = et_source_next(s, &x, &e);
        if (rc == 1) {
            if (et_pipe_push(p, x) != 0)
                break;
        } else if (rc == ET_EPARSE) {
            et_cli_err("%s: %s (skipped)", path, et_error_format(&e, msg, sizeof(msg)));
        } else if (rc == 0) {
            usleep(200 * 1000);
        } else {
            et_cli_err("%s: %s", path, et_error_format(&e, msg, sizeof(msg)));
            break;
        }
    }
    et_source_close(s);
    return ET_EXIT_INPUT;
}

int et_cmd_replay(int argc, char **argv)
{
    struct et_pipe_opts po;
    struct et_pipe_timeline_opts to;
    struct et_pipe *p = NULL;
    struct et_pipe_timeline *tl = NULL;
    struct et_pipe_sink sink;
    char **files;
    size_t nfiles = 0;
    int do_follow = 0, no_color = 0, status, fail_on = ET_SEV_ERROR;

    et_pipe_opts_default(&po);
    memset(&to, 0, sizeof(to));
    files = et_calloc((size_t)argc, sizeof(*files));
    if (files == NULL)
        return ET_EXIT_INPUT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int fr;
        /* The analyzer's own thresholds (--slow-ms, --longpoll-cut, --foldersync-grace). */
        fr = et_analyzer_opt_parse(&po.analyzer, a, i + 1 < argc ? argv[i + 1] : NULL);
        if (fr != 0) {
            if (fr < 0) {
                et_cli_err("%s takes a positive number", a);
                et_free(files);
                return ET_EXIT_INPUT;
            }
            i++;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            et_free(files);
            return ET_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            to.json = 1;
        } else if (strcmp(a, "--follow") == 0 || strcmp(a, "-f") == 0) {
            do_follow = 1;
        } else if (strcmp(a, "--no-findings") == 0) {
            to.no_findings = 1;
        } else if (strcmp(a, "--no-color") == 0) {
            no_color = 1;
        } else if (strcmp(a, "--no-correlate") == 0) {
            po.correlate = 0;
        } else if (strcmp(a, "--match-tolerance") == 0 && i + 1 < argc) {
            char *end;
            double t = strtod(argv[++i], &end);
            if (*end != '\0' || !(t >= 0 && t <= 3600)) {
                et_cli_err("--match-tolerance takes seconds (0 to 3600)");
                et_free(files);
                return ET_EXIT_INPUT;
            }
            po.tolerance_us = (int64_t)(t * 1e6);
        } else if ((strcmp(a, "--fail-on") == 0 || strcmp(a, "--format") == 0 ||
                    strcmp(a, "--storm-per-minute") == 0 || strcmp(a, "--high-usage") == 0) &&
                   i + 1 < argc) {
            const char *val = argv[++i];
            if (strcmp(a, "--format") == 0) {
                po.format = val;
            } else if (strcmp(a, "--fail-on") == 0) {
                enum et_severity s;
                if (strcmp(val, "never") == 0) {
                    fail_on = 3;
                } else if (et_severity_parse(val, &s) == 0) {
                    fail_on = (int)s;
                } else {
                    et_cli_err("--fail-on takes error, warning, info or never");
                    et_free(files);
                    return ET_EXIT_INPUT;
                }
            } else {
                char *end;
                unsigned long v = strtoul(val, &end, 10);
                if (*end != '\0' || v == 0 || v > 1000000) {
                    et_cli_err("%s takes a positive number", a);
                    et_free(files);
                    return ET_EXIT_INPUT;
                }
                if (strcmp(a, "--storm-per-minute") == 0)
                    po.analyzer.storm_per_minute = (unsigned)v;
                else
                    po.analyzer.high_usage_per_day = (unsigned)v;
                if (po.analyzer.very_high_per_day < po.analyzer.high_usage_per_day)
                    po.analyzer.very_high_per_day =
                        po.analyzer.high_usage_per_day + po.analyzer.high_usage_per_day / 2;
            }
        } else if ((fr = et_cli_filter_arg(&po.filter, argc, argv, &i)) != 0) {
            if (fr < 0) {
                et_free(files);
                return ET_EXIT_INPUT;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            et_cli_err("replay: unknown option '%s' (see eastrace replay --help)", a);
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
    to.out = stdout;
    to.flags = !no_color && !to.json && et_cli_use_color(stdout) ? ET_RENDER_COLOR : 0;
    to.device = po.filter.device;
    if (do_follow) {
        po.window_us = 0; /* print each exchange as it is written */
        to.live = 1;
    }
    p = et_pipe_new(&po, NULL);
    tl = p ? et_pipe_timeline_new(p, &to) : NULL;
    if (tl == NULL) {
        et_cli_err("out of memory");
        exit(ET_EXIT_INPUT);
    }
    sink = et_pipe_timeline_sink(tl);
    et_pipe_set_sink(p, &sink);
    if (do_follow) {
        if (nfiles != 1) {
            et_cli_err("--follow reads one capture file");
            status = ET_EXIT_INPUT;
        } else {
            status = follow(p, files[0]);
        }
        goto out;
    }
    for (size_t i = 0; i < nfiles; i++)
        et_pipe_open(p, files[i]);
    if (et_pipe_stats(p)->inputs == 0) {
        /* Nothing could be opened: the errors are said; an empty timeline would look like an
         * answer. */
        status = ET_EXIT_INPUT;
    } else if (et_pipe_run(p) != 0) {
        et_cli_err("replay: out of memory or output failed");
        status = ET_EXIT_INPUT;
    } else if (et_pipe_stats(p)->inputs_failed > 0) {
        status = ET_EXIT_INPUT;
    } else if (et_pipe_stats(p)->max_severity >= fail_on) {
        status = ET_EXIT_FINDINGS;
    } else {
        status = ET_EXIT_OK;
    }
out:
    et_pipe_timeline_free(tl);
    et_pipe_free(p);
    et_free(files);
    return status;
}
