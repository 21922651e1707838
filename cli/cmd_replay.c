/*
 * eastrace replay: the decoded timeline of one or more inputs (eastrace captures, .saz, HAR,
 * IIS logs, mailbox logs) merged by time, one line per exchange, then the analyzer's findings
 * with their next steps and a summary per device. --json prints JSON Lines (docs/json.md).
 *
 * Exit status (scripts rely on it): 0 nothing at or above --fail-on (default: error) was found,
 * 1 something was, 2 an input could not be read.
 *
 * One timeline: when the inputs hold more than one kind of source (a client-side recording:
 * capture, .saz or HAR; an IIS log; a mailbox log), exchanges of different kinds that are the
 * same request are merged into one line with a "seen by" column:
 *
 *   merged stream --> correlate(): match against the held groups (same device, command,
 *                     HTTP status when both have one, start or end within --match-tolerance)
 *                     or start a new group
 *                 --> held groups, arrival order; a group is flushed once the stream's clock
 *                     (newest start time seen) is WINDOW past the group's latest end time
 *                 --> one(): the richest member (bodies) is decoded, analyzed and printed
 *
 * IIS lines carry the completion time (one-second resolution) and time-taken, mailbox logs
 * RequestTime/ResponseTime, captures both, so start and end both serve for matching. Memory
 * is bounded: a group lives for WINDOW of stream time past its end (long-polls in flight stay
 * longer), and at most MAX_HELD groups are held.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eastrace/analyzer.h"
#include "eastrace/capfile.h"
#include "eastrace/eas.h"
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
            "troubleshooting step, then a summary per device. Given more than one kind of\n"
            "source (capture/.saz/HAR, IIS log, mailbox log), the same request seen by several\n"
            "is one line, and a first column says which sources saw it (cap iis mbx).\n"
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
    /* correlation (see the top of the file) */
    unsigned kinds;         /* KIND_* bits present in the inputs; correlate when >= 2 bits */
    int64_t tolerance;      /* us */
    int64_t clock;          /* newest start time seen in the merged stream */
    int64_t iis_first, iis_last; /* times the IIS lines seen so far cover */
    unsigned long long cap_iis_matched; /* groups with both: the clocks agree */
    struct group *held, **held_tail;
    size_t nheld;
    unsigned long long seen_count[8]; /* groups per seen-by mask */
};

enum { KIND_CAP = 0, KIND_IIS = 1, KIND_MBX = 2, KIND_N = 3 };
static const char *const kind_text[KIND_N] = {"cap", "iis", "mbx"};
static const char *const kind_json[KIND_N] = {"capture", "iis", "mailboxlog"};

/* Stream time a group stays held past its end, and the cap on held groups. */
#define WINDOW_US ((int64_t)5 * 1000000)
#define MAX_HELD 65536

/* One request as seen by up to one exchange of each kind of source. */
struct group {
    struct et_exchange *x[KIND_N];
    const char *dev, *cmd; /* match keys, in the first member's arena */
    int status;            /* HTTP status, 0 when none */
    int64_t start, end;    /* of the first member (0 unknown) */
    int64_t last_end;      /* latest end (or start) of any member */
    unsigned eas : 1;
    struct group *next;
};

static int kind_of(enum et_source_kind s)
{
    return s == ET_SRC_IIS ? KIND_IIS : s == ET_SRC_MAILBOX ? KIND_MBX : KIND_CAP;
}

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

/* The seen-by cell: a slot per kind present in the inputs. */
static void seen_cell(const struct replay *r, unsigned seen, struct et_buf *out)
{
    int first = 1;
    for (int k = 0; k < KIND_N; k++) {
        if (!(r->kinds & (1u << k)))
            continue;
        et_buf_printf(out, "%s%s", first ? "" : " ", seen & (1u << k) ? kind_text[k] : "-  ");
        first = 0;
    }
    et_buf_putc(out, ' ');
}

/* Judges and prints one exchange. Takes ownership of x. seen: KIND_* bits of the sources
 * that saw it (0: no correlation, no column); note: a finding to add (in x's arena). */
static void one(struct replay *r, struct et_exchange *x, int live, unsigned seen,
                struct et_finding *note)
{
    struct et_view v;
    struct et_finding *f = NULL;

    r->n++;
    if (seen)
        x->id = r->n; /* merged sources: number the timeline's lines, not each source's */
    if (et_view_build(x, x->arena, &v) != 0 || et_analyzer_feed(r->an, x, &v, x->arena, &f) != 0) {
        et_cli_err("out of memory");
        exit(ET_EXIT_INPUT);
    }
    if (note != NULL) {
        struct et_finding **pp = &f;
        while (*pp != NULL)
            pp = &(*pp)->next;
        note->device = v.device;
        *pp = note;
    }
    if (seen)
        r->seen_count[seen & 7]++;
    if (et_cli_filter_match(&r->flt, x, &v, f)) {
        r->shown++;
        count(r, f);
        et_buf_reset(&r->out);
        if (r->json) {
            et_exchange_json(x, &v, r->no_findings ? NULL : f, r->n, &r->out);
            if (seen && r->out.len > 0 && r->out.data[r->out.len - 1] == '}') {
                r->out.len--;
                et_buf_puts(&r->out, ",\"seen_by\":[");
                for (int k = 0, n = 0; k < KIND_N; k++)
                    if (seen & (1u << k))
                        et_buf_printf(&r->out, "%s\"%s\"", n++ ? "," : "", kind_json[k]);
                et_buf_puts(&r->out, "]}");
            }
            et_buf_putc(&r->out, '\n');
        } else {
            if (seen)
                seen_cell(r, seen, &r->out);
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

static int64_t start_of(const struct et_exchange *x)
{
    return x->t.req_begin ? x->t.req_begin : x->t.connect ? x->t.connect : x->t.resp_end;
}

static int64_t end_of(const struct et_exchange *x)
{
    return x->t.resp_end ? x->t.resp_end : start_of(x);
}

static int64_t absdiff(int64_t a, int64_t b)
{
    return a > b ? a - b : b - a;
}

/* The member whose decoding tells most: bodies first, then a capture over a mailbox log
 * over an IIS line. */
static int richest(const struct group *g)
{
    int best = -1, best_score = -1;
    for (int k = 0; k < KIND_N; k++) {
        const struct et_exchange *x = g->x[k];
        if (x == NULL)
            continue;
        int bodies = (!x->req.body.absent && x->req.body.len > 0) ||
                     (!x->resp.body.absent && x->resp.body.len > 0);
        int score = bodies * 4 + (k == KIND_CAP ? 2 : k == KIND_MBX ? 1 : 0);
        if (score > best_score) {
            best = k;
            best_score = score;
        }
    }
    return best;
}

/* A client-side exchange the IIS logs should hold but do not. Only once one request was seen
 * in both (so the clocks agree), only inside the period the IIS lines cover, and only for EAS
 * requests. */
static struct et_finding *not_in_server_log(struct replay *r, const struct group *g,
                                            unsigned seen, struct et_exchange *x)
{
    struct et_finding *f;
    char t1[40], t2[40];

    if (!(r->kinds & (1u << KIND_IIS)) || seen != (1u << KIND_CAP) || !g->eas ||
        r->cap_iis_matched == 0 || g->start == 0 || g->start < r->iis_first - r->tolerance ||
        g->last_end > r->iis_last - r->tolerance)
        return NULL;
    f = et_arena_alloc(x->arena, sizeof(*f));
    if (f == NULL)
        return NULL;
    memset(f, 0, sizeof(*f));
    f->rule = "not-in-server-log";
    f->severity = ET_SEV_INFO;
    f->exchange_id = x->id;
    f->time = g->start;
    f->message = et_arena_printf(
        x->arena,
        "this %s request is not in the IIS logs given, though they cover %s to %s: it did not "
        "reach that Exchange server (a reverse proxy, load balancer or firewall answered or "
        "dropped it, or it went to another Client Access server)",
        g->cmd ? g->cmd : "EAS", et_time_iso8601(r->iis_first, t1, sizeof(t1)),
        et_time_iso8601(r->iis_last, t2, sizeof(t2)));
    f->next_step = "Collect the IIS logs of every Client Access / front-end server behind the "
                   "load balancer for this time; if the request is in none of them, look for it "
                   "in the reverse proxy, firewall or load balancer logs.";
    return f->message ? f : NULL;
}

static void flush_group(struct replay *r, struct group *g)
{
    int k = richest(g);
    unsigned seen = 0;
    for (int i = 0; i < KIND_N; i++)
        if (g->x[i] != NULL)
            seen |= 1u << i;
    if ((seen & 3u) == 3u)
        r->cap_iis_matched++;
    for (int i = 0; i < KIND_N; i++)
        if (i != k)
            et_exchange_free(g->x[i]);
    one(r, g->x[k], 0, seen, not_in_server_log(r, g, seen, g->x[k]));
    et_free(g);
}

/* Flushes the held groups whose time is past (all of them when all is set), in arrival
 * order. */
static void flush_held(struct replay *r, int all)
{
    struct group **pp = &r->held;
    while (*pp != NULL) {
        struct group *g = *pp;
        if (all || g->last_end == 0 || g->last_end + WINDOW_US + r->tolerance < r->clock ||
            (r->nheld > MAX_HELD && pp == &r->held)) {
            *pp = g->next;
            r->nheld--;
            flush_group(r, g);
        } else {
            pp = &g->next;
        }
    }
    r->held_tail = pp;
}

static int same_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && et_strcaseeq(a, b));
}

/* Takes ownership of x: joins it to the held group of the same request seen by another kind
 * of source, or holds it as a new group. */
static void correlate(struct replay *r, struct et_exchange *x)
{
    struct et_eas_request q;
    struct et_error e;
    struct group *g, *best = NULL;
    int k = kind_of(x->source);
    int64_t st = start_of(x), en = end_of(x), best_d = 0;
    int status = x->has_response ? x->resp.status : 0;
    const char *dev = NULL, *cmd = NULL;
    int eas = 0;

    et_error_clear(&e);
    memset(&q, 0, sizeof(q));
    if (x->req.target != NULL && et_eas_query_parse(x->req.target, x->arena, &q, &e) == 0 &&
        q.is_eas) {
        eas = 1;
        dev = q.device_id ? q.device_id : q.user;
        cmd = q.cmd ? q.cmd : x->req.method;
    }
    if (st > r->clock)
        r->clock = st;
    if (k == KIND_IIS && en > 0) {
        if (r->iis_first == 0 || start_of(x) < r->iis_first)
            r->iis_first = start_of(x);
        if (en > r->iis_last)
            r->iis_last = en;
    }
    if (eas && dev != NULL && st != 0) {
        for (g = r->held; g != NULL; g = g->next) {
            if (g->x[k] != NULL || !g->eas || g->dev == NULL || !et_strcaseeq(g->dev, dev) ||
                !same_text(g->cmd, cmd) || (status && g->status && status != g->status))
                continue;
            int64_t ds = absdiff(g->start, st);
            int64_t de = g->end && en ? absdiff(g->end, en) : ds;
            int64_t d = ds < de ? ds : de;
            if (d <= r->tolerance && (best == NULL || d < best_d)) {
                best = g;
                best_d = d;
            }
        }
    }
    if (best != NULL) {
        best->x[k] = x;
        if (!best->status)
            best->status = status;
        if (en > best->last_end)
            best->last_end = en;
    } else {
        g = et_calloc(1, sizeof(*g));
        if (g == NULL) {
            et_cli_err("out of memory");
            exit(ET_EXIT_INPUT);
        }
        g->x[k] = x;
        g->dev = dev;
        g->cmd = cmd;
        g->status = status;
        g->start = st;
        g->end = x->t.resp_end;
        g->last_end = en;
        g->eas = (unsigned)eas;
        *r->held_tail = g;
        r->held_tail = &g->next;
        r->nheld++;
    }
    flush_held(r, 0);
}

/* Which kinds of source the inputs hold, from each one's first exchange. */
static unsigned input_kinds(char **files, size_t nfiles, const char *format)
{
    unsigned kinds = 0;
    for (size_t i = 0; i < nfiles; i++) {
        struct et_source *s = NULL;
        struct et_exchange *x = NULL;
        struct et_error e;
        et_error_clear(&e);
        if (et_cli_open_source(files[i], format, &s, &e) != 0)
            continue; /* the merge reports it */
        for (int tries = 0; tries < 16; tries++) {
            int rc = et_source_next(s, &x, &e);
            if (rc == 1) {
                kinds |= 1u << kind_of(x->source);
                et_exchange_free(x);
                break;
            }
            if (rc != ET_EPARSE)
                break;
            et_error_clear(&e);
        }
        et_source_close(s);
    }
    return kinds;
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
        et_buf_putc(&r->out, ']');
        if (r->kinds & (r->kinds - 1)) {
            int first = 1;
            et_buf_puts(&r->out, ",\"seen_by\":{");
            for (unsigned m = 1; m < 8; m++) {
                if (r->seen_count[m] == 0)
                    continue;
                et_buf_printf(&r->out, "%s\"", first ? "" : ",");
                for (int k = 0, n = 0; k < KIND_N; k++)
                    if (m & (1u << k))
                        et_buf_printf(&r->out, "%s%s", n++ ? "+" : "", kind_json[k]);
                et_buf_printf(&r->out, "\":%llu", r->seen_count[m]);
                first = 0;
            }
            et_buf_putc(&r->out, '}');
        }
        et_buf_puts(&r->out, "}\n");
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
        et_str_printable(dev);
        et_str_printable(user);
        et_str_printable(type);
        printf("  %-24s %-20s %-14s %8llu %6llu %6llu %7u\n", dev, user, type,
               (unsigned long long)ds[i].requests, (unsigned long long)ds[i].errors,
               (unsigned long long)ds[i].warnings, ds[i].max_per_minute);
    }
    if (r->kinds & (r->kinds - 1)) {
        fputs("\nSeen by\n", stdout);
        for (unsigned m = 7; m >= 1; m--) {
            char who[32] = "";
            if (r->seen_count[m] == 0)
                continue;
            for (int k = 0; k < KIND_N; k++)
                if (m & (1u << k)) {
                    size_t l = strlen(who);
                    snprintf(who + l, sizeof(who) - l, "%s%s", l ? " " : "", kind_text[k]);
                }
            printf("  %-12s %llu%s\n", who, r->seen_count[m], (m & (m - 1)) ? "" : " (only)");
        }
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
            one(r, x, 1, 0, NULL);
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
    int do_follow = 0, no_color = 0, status, no_correlate = 0;
    struct et_cli_merge *m;
    struct et_exchange *x;

    memset(&r, 0, sizeof(r));
    r.fail_on = ET_SEV_ERROR;
    r.max_sev = -1;
    r.tolerance = 3 * 1000000;
    r.held_tail = &r.held;
    et_analyzer_opts_default(&ao);
    files = et_calloc((size_t)argc, sizeof(*files));
    if (files == NULL)
        return ET_EXIT_INPUT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int fr;
        /* The analyzer's own thresholds (--slow-ms, --longpoll-cut, --foldersync-grace). */
        if ((fr = et_analyzer_opt_parse(&ao, a, i + 1 < argc ? argv[i + 1] : NULL)) != 0) {
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
            r.json = 1;
        } else if (strcmp(a, "--follow") == 0 || strcmp(a, "-f") == 0) {
            do_follow = 1;
        } else if (strcmp(a, "--no-findings") == 0) {
            r.no_findings = 1;
        } else if (strcmp(a, "--no-color") == 0) {
            no_color = 1;
        } else if (strcmp(a, "--no-correlate") == 0) {
            no_correlate = 1;
        } else if (strcmp(a, "--match-tolerance") == 0 && i + 1 < argc) {
            char *end;
            double t = strtod(argv[++i], &end);
            if (*end != '\0' || !(t >= 0 && t <= 3600)) {
                et_cli_err("--match-tolerance takes seconds (0 to 3600)");
                et_free(files);
                return ET_EXIT_INPUT;
            }
            r.tolerance = (int64_t)(t * 1e6);
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
    if (!no_correlate && nfiles > 1)
        r.kinds = input_kinds(files, nfiles, format);
    if (!(r.kinds & (r.kinds - 1)))
        r.kinds = 0; /* one kind of source: nothing to correlate */
    if (!r.json) {
        et_buf_reset(&r.out);
        if (r.kinds) {
            et_buf_printf(&r.out, "%-*s", (int)(4 * (__builtin_popcount(r.kinds))), "seen by");
        }
        et_timeline_header(0, &r.out);
        fwrite(r.out.data, 1, r.out.len, stdout);
    }
    while ((x = et_cli_merge_next(m)) != NULL) {
        if (r.kinds)
            correlate(&r, x);
        else
            one(&r, x, 0, 0, NULL);
    }
    flush_held(&r, 1);
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
