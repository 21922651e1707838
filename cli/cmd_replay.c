/*
 * eastrace replay: the decoded timeline of one or more inputs (eastrace captures, .saz, HAR,
 * IIS logs, mailbox logs) merged by time, one line per exchange, then the analyzer's findings
 * with their next steps and a summary per device. --json prints JSON Lines (docs/json.md).
 *
 * Exit status (scripts rely on it): 0 nothing at or above --fail-on (default: error) was found,
 * 1 something was, 2 an input could not be read.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eastrace/analyzer.h"
#include "eastrace/capfile.h"
#include "eastrace/exchange.h"
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
            "troubleshooting step, then a summary per device.\n"
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
            "  --no-color           no colours (also when NO_COLOR is set or not a terminal)\n"
            "%s"
            "  -h, --help           show this help\n"
            "\n"
            "Exit status: 0 nothing at or above --fail-on, 1 findings at or above it,\n"
            "2 an input could not be read.\n",
            et_cli_filter_help);
}

struct replay {
    struct et_cli_filter flt;
    struct et_analyzer *an;
    int json;
    int no_findings;
    unsigned flags;
    int fail_on; /* severity, or 3 for never */
    int max_sev; /* highest severity found among shown exchanges and the summary */
    unsigned long long n, shown;
    struct et_buf out;
    struct et_buf findings; /* text mode: findings, printed after the timeline */
    FILE *spill;            /* findings text beyond FINDINGS_MEM, so memory stays bounded */
    unsigned long long nerr, nwarn, ninfo;
};

static void count(struct replay *r, const struct et_finding *f)
{
    for (; f != NULL; f = f->next) {
        if (f->severity == ET_SEV_ERROR)
            r->nerr++;
        else if (f->severity == ET_SEV_WARNING)
            r->nwarn++;
        else
            r->ninfo++;
        if ((int)f->severity > r->max_sev)
            r->max_sev = (int)f->severity;
    }
}

/* Findings text kept in memory before it moves to a temporary file: a capture with many
 * findings must not make replay's memory grow with its size. */
#define FINDINGS_MEM ((size_t)256 * 1024)

static void spill_findings(struct replay *r)
{
    if (r->spill == NULL && (r->spill = tmpfile()) == NULL)
        return; /* no temporary file: keep the text in memory */
    if (fwrite(r->findings.data, 1, r->findings.len, r->spill) == r->findings.len)
        et_buf_reset(&r->findings);
}

/* Judges and prints one exchange. Takes ownership of x. */
static void one(struct replay *r, struct et_exchange *x, int live)
{
    struct et_view v;
    struct et_finding *f = NULL;

    r->n++;
    if (et_view_build(x, x->arena, &v) != 0 || et_analyzer_feed(r->an, x, &v, x->arena, &f) != 0) {
        et_cli_err("out of memory");
        exit(ET_EXIT_INPUT);
    }
    if (et_cli_filter_match(&r->flt, x, &v, f)) {
        r->shown++;
        count(r, f);
        et_buf_reset(&r->out);
        if (r->json) {
            et_exchange_json(x, &v, r->no_findings ? NULL : f, r->n, &r->out);
            et_buf_putc(&r->out, '\n');
        } else {
            et_timeline_line(x, &v, f, r->flags | (live ? ET_RENDER_FINDINGS : 0), &r->out);
            if (!live && f != NULL && !r->no_findings) {
                et_buf_printf(&r->findings, "#%llu %s\n", r->n, v.cmd ? v.cmd : "");
                for (const struct et_finding *g = f; g != NULL; g = g->next)
                    et_finding_text(g, r->flags, "  ", &r->findings);
                if (r->findings.len > FINDINGS_MEM)
                    spill_findings(r);
            }
        }
        fwrite(r->out.data, 1, r->out.len, stdout);
        if (live)
            fflush(stdout);
    }
    et_view_reset(&v);
    et_exchange_free(x);
}

static void summary(struct replay *r, unsigned long long damaged)
{
    struct et_finding *sf = NULL;
    const struct et_device_stats *ds;
    size_t nd;

    if (et_analyzer_finish(r->an, &sf) != 0) {
        et_cli_err("out of memory");
        exit(ET_EXIT_INPUT);
    }
    if (r->flt.device != NULL) {
        /* Summary findings of other devices do not belong to a filtered view. */
        struct et_finding **pp = &sf;
        while (*pp != NULL) {
            if ((*pp)->device != NULL && !et_strcaseeq((*pp)->device, r->flt.device))
                *pp = (*pp)->next;
            else
                pp = &(*pp)->next;
        }
    }
    count(r, sf);
    nd = et_analyzer_devices(r->an, &ds);
    et_buf_reset(&r->out);
    if (r->json) {
        et_buf_printf(&r->out, "{\"summary\":true,\"exchanges\":%llu,\"shown\":%llu,"
                               "\"damaged_records\":%llu,\"errors\":%llu,\"warnings\":%llu,"
                               "\"infos\":%llu,\"findings\":",
                      r->n, r->shown, damaged, r->nerr, r->nwarn, r->ninfo);
        et_findings_json(r->no_findings ? NULL : sf, &r->out);
        et_buf_puts(&r->out, ",\"devices\":[");
        for (size_t i = 0; i < nd; i++) {
            char t1[40], t2[40];
            if (r->flt.device != NULL && !et_strcaseeq(ds[i].device, r->flt.device))
                continue;
            if (r->out.data[r->out.len - 1] != '[')
                et_buf_putc(&r->out, ',');
            et_buf_puts(&r->out, "{\"device\":");
            et_cli_json_str(&r->out, ds[i].device);
            et_buf_puts(&r->out, ",\"user\":");
            et_cli_json_str(&r->out, ds[i].user);
            et_buf_puts(&r->out, ",\"device_type\":");
            et_cli_json_str(&r->out, ds[i].device_type);
            et_buf_puts(&r->out, ",\"user_agent\":");
            et_cli_json_str(&r->out, ds[i].user_agent);
            et_buf_printf(&r->out,
                          ",\"requests\":%llu,\"errors\":%llu,\"warnings\":%llu,"
                          "\"http_errors\":%llu,\"max_per_minute\":%u,\"first\":",
                          (unsigned long long)ds[i].requests, (unsigned long long)ds[i].errors,
                          (unsigned long long)ds[i].warnings,
                          (unsigned long long)ds[i].http_errors, ds[i].max_per_minute);
            et_cli_json_str(&r->out, ds[i].first > 0
                                         ? et_time_iso8601(ds[i].first, t1, sizeof(t1))
                                         : NULL);
            et_buf_puts(&r->out, ",\"last\":");
            et_cli_json_str(&r->out,
                            ds[i].last > 0 ? et_time_iso8601(ds[i].last, t2, sizeof(t2)) : NULL);
            et_buf_puts(&r->out, ",\"commands\":{");
            for (unsigned k = 0; k < 8; k++)
                et_buf_printf(&r->out, "%s\"%s\":%llu", k ? "," : "",
                              et_analyzer_cmd_slot_name(k),
                              (unsigned long long)ds[i].cmd_counts[k]);
            et_buf_puts(&r->out, "}}");
        }
        et_buf_puts(&r->out, "]}\n");
        fwrite(r->out.data, 1, r->out.len, stdout);
        return;
    }
    if (r->findings.len > 0 || r->spill != NULL) {
        fputs("\nFindings\n", stdout);
        if (r->spill != NULL) {
            char chunk[65536];
            size_t got;
            rewind(r->spill);
            while ((got = fread(chunk, 1, sizeof(chunk), r->spill)) > 0)
                fwrite(chunk, 1, got, stdout);
        }
        fwrite(r->findings.data, 1, r->findings.len, stdout);
    }
    if (sf != NULL && !r->no_findings) {
        fputs("\nAcross the whole input\n", stdout);
        for (const struct et_finding *g = sf; g != NULL; g = g->next) {
            et_buf_reset(&r->out);
            et_finding_text(g, r->flags, "  ", &r->out);
            fwrite(r->out.data, 1, r->out.len, stdout);
        }
    }
    printf("\nDevices\n  %-24s %-20s %-14s %8s %6s %6s %7s\n", "device/client", "user", "type",
           "requests", "errors", "warns", "max/min");
    for (size_t i = 0; i < nd; i++) {
        char dev[25], user[21], type[15];
        if (r->flt.device != NULL && !et_strcaseeq(ds[i].device, r->flt.device))
            continue;
        snprintf(dev, sizeof(dev), "%s", ds[i].device);
        snprintf(user, sizeof(user), "%s", ds[i].user ? ds[i].user : "-");
        snprintf(type, sizeof(type), "%s", ds[i].device_type ? ds[i].device_type : "-");
        for (char *c = dev; *c; c++)
            if ((unsigned char)*c < 0x20)
                *c = '?';
        for (char *c = user; *c; c++)
            if ((unsigned char)*c < 0x20)
                *c = '?';
        for (char *c = type; *c; c++)
            if ((unsigned char)*c < 0x20)
                *c = '?';
        printf("  %-24s %-20s %-14s %8llu %6llu %6llu %7u\n", dev, user, type,
               (unsigned long long)ds[i].requests, (unsigned long long)ds[i].errors,
               (unsigned long long)ds[i].warnings, ds[i].max_per_minute);
    }
    printf("\n%llu exchange(s)", r->n);
    if (r->shown != r->n)
        printf(", %llu shown", r->shown);
    printf("; %llu error(s), %llu warning(s), %llu note(s)", r->nerr, r->nwarn, r->ninfo);
    if (damaged)
        printf("; %llu damaged record(s) skipped", damaged);
    fputc('\n', stdout);
}

/* --follow: one capture file read as it grows; lines and findings printed as they come. */
static int follow(struct replay *r, const char *path)
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
    if (!r->json) {
        et_buf_reset(&r->out);
        et_timeline_header(0, &r->out);
        fwrite(r->out.data, 1, r->out.len, stdout);
    }
    for (;;) {
        struct et_exchange *x = NULL;
        int rc;
        et_error_clear(&e);
        rc = et_source_next(s, &x, &e);
        if (rc == 1) {
            one(r, x, 1);
        } else if (rc == ET_EPARSE) {
            et_cli_err("%s: %s (skipped)", path, et_error_format(&e, msg, sizeof(msg)));
        } else if (rc == 0) {
            usleep(200 * 1000);
        } else {
            et_cli_err("%s: %s", path, et_error_format(&e, msg, sizeof(msg)));
            et_source_close(s);
            return ET_EXIT_INPUT;
        }
    }
}

int et_cmd_replay(int argc, char **argv)
{
    struct replay r;
    struct et_analyzer_opts ao;
    const char *format = NULL;
    char **files;
    size_t nfiles = 0;
    int do_follow = 0, no_color = 0, status;
    struct et_cli_merge *m;
    struct et_exchange *x;

    memset(&r, 0, sizeof(r));
    r.fail_on = ET_SEV_ERROR;
    r.max_sev = -1;
    et_analyzer_opts_default(&ao);
    files = et_calloc((size_t)argc, sizeof(*files));
    if (files == NULL)
        return ET_EXIT_INPUT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int fr;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            et_free(files);
            return ET_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            r.json = 1;
        } else if (strcmp(a, "--follow") == 0 || strcmp(a, "-f") == 0) {
            do_follow = 1;
        } else if (strcmp(a, "--no-findings") == 0) {
            r.no_findings = 1;
        } else if (strcmp(a, "--no-color") == 0) {
            no_color = 1;
        } else if ((strcmp(a, "--fail-on") == 0 || strcmp(a, "--format") == 0 ||
                    strcmp(a, "--storm-per-minute") == 0 || strcmp(a, "--high-usage") == 0) &&
                   i + 1 < argc) {
            const char *val = argv[++i];
            if (strcmp(a, "--format") == 0) {
                format = val;
            } else if (strcmp(a, "--fail-on") == 0) {
                enum et_severity s;
                if (strcmp(val, "never") == 0) {
                    r.fail_on = 3;
                } else if (et_severity_parse(val, &s) == 0) {
                    r.fail_on = (int)s;
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
                    ao.storm_per_minute = (unsigned)v;
                else
                    ao.high_usage_per_day = (unsigned)v;
                if (ao.very_high_per_day < ao.high_usage_per_day)
                    ao.very_high_per_day = ao.high_usage_per_day + ao.high_usage_per_day / 2;
            }
        } else if ((fr = et_cli_filter_arg(&r.flt, argc, argv, &i)) != 0) {
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
    r.flags = !no_color && !r.json && et_cli_use_color(stdout) ? ET_RENDER_COLOR : 0;
    r.an = et_analyzer_new(&ao);
    et_buf_init(&r.out, 0);
    et_buf_init(&r.findings, 0);
    if (r.an == NULL) {
        et_cli_err("out of memory");
        exit(ET_EXIT_INPUT);
    }
    if (do_follow) {
        if (nfiles != 1) {
            et_cli_err("--follow reads one capture file");
            status = ET_EXIT_INPUT;
        } else {
            status = follow(&r, files[0]);
        }
        goto out;
    }
    m = et_cli_merge_open(files, nfiles, format);
    if (m == NULL) {
        et_cli_err("out of memory");
        exit(ET_EXIT_INPUT);
    }
    if (!r.json) {
        et_timeline_header(0, &r.out);
        fwrite(r.out.data, 1, r.out.len, stdout);
    }
    while ((x = et_cli_merge_next(m)) != NULL)
        one(&r, x, 0);
    summary(&r, et_cli_merge_damaged_count(m));
    if (et_cli_merge_failed(m))
        status = ET_EXIT_INPUT;
    else if (r.max_sev >= r.fail_on)
        status = ET_EXIT_FINDINGS;
    else
        status = ET_EXIT_OK;
    et_cli_merge_close(m);
out:
    et_buf_free(&r.out);
    et_buf_free(&r.findings);
    if (r.spill != NULL)
        fclose(r.spill);
    et_analyzer_free(r.an);
    et_free(files);
    return status;
}
