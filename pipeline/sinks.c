/*
 * The timeline sink shared by `eastrace replay`, `replay --follow` and the proxy's live view:
 *
 *   item --> one timeline line (a seen-by column first when the pipeline correlates)
 *            or one JSON Lines object (docs/json.md), written at once
 *        --> its findings: under the line (live), or grouped by exchange after the timeline
 *            (kept in memory up to FINDINGS_MEM, then in a temporary file)
 *   finish --> grouped findings, findings across the whole input, devices, seen-by counts,
 *              the totals line; or the JSON summary object
 */
#include "eastrace/pipeline.h"

#include <string.h>

#include "eastrace/table.h"

/* Findings text kept in memory before it moves to a temporary file: a capture with many
 * findings must not make replay's memory grow with its size. */
#define FINDINGS_MEM ((size_t)256 * 1024)

static const char *const kind_text[3] = {"cap", "iis", "mbx"};
static const char *const kind_json[3] = {"capture", "iis", "mailboxlog"};

struct et_pipe_timeline {
    struct et_pipe_timeline_opts o;
    struct et_pipe *p;
    struct et_buf out;
    struct et_buf findings;
    FILE *spill;
    int header_done;
};

static void jstr(struct et_buf *b, const char *s)
{
    if (s == NULL)
        et_buf_puts(b, "null");
    else
        et_buf_put_json_string(b, s, strlen(s));
}

static void header(struct et_pipe_timeline *t)
{
    const struct et_pipe_stats *st = et_pipe_stats(t->p);
    if (t->header_done || t->o.json)
        return;
    t->header_done = 1;
    et_buf_reset(&t->out);
    if (st->correlating)
        et_buf_printf(&t->out, "%-*s", 4 * __builtin_popcount(st->kinds), "seen by");
    et_timeline_header(t->o.live ? (t->o.flags & ET_RENDER_ADDRS) : 0, &t->out);
    fwrite(t->out.data, 1, t->out.len, t->o.out);
}

struct et_pipe_timeline *et_pipe_timeline_new(struct et_pipe *p,
                                              const struct et_pipe_timeline_opts *o)
{
    struct et_pipe_timeline *t = et_calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->o = *o;
    if (t->o.out == NULL)
        t->o.out = stdout;
    t->p = p;
    et_buf_init(&t->out, 0);
    et_buf_init(&t->findings, 0);
    return t;
}

void et_pipe_timeline_free(struct et_pipe_timeline *t)
{
    if (t == NULL)
        return;
    et_buf_free(&t->out);
    et_buf_free(&t->findings);
    if (t->spill != NULL)
        fclose(t->spill);
    et_free(t);
}

static void spill_findings(struct et_pipe_timeline *t)
{
    if (t->spill == NULL && (t->spill = tmpfile()) == NULL)
        return; /* no temporary file: keep the text in memory */
    if (fwrite(t->findings.data, 1, t->findings.len, t->spill) == t->findings.len)
        et_buf_reset(&t->findings);
}

static void seen_cell(unsigned kinds, unsigned seen, struct et_buf *out)
{
    int first = 1;
    for (int k = 0; k < 3; k++) {
        if (!(kinds & (1u << k)))
            continue;
        et_buf_printf(out, "%s%s", first ? "" : " ", seen & (1u << k) ? kind_text[k] : "-  ");
        first = 0;
    }
    et_buf_putc(out, ' ');
}

static int on_item(void *arg, const struct et_pipe_item *it)
{
    struct et_pipe_timeline *t = arg;
    const struct et_pipe_stats *st = et_pipe_stats(t->p);
    const struct et_finding *f = t->o.no_findings ? NULL : it->findings;
    unsigned seen = st->correlating ? it->seen_by : 0;

    header(t);
    et_buf_reset(&t->out);
    if (t->o.json) {
        et_exchange_json(it->x, it->v, f, it->n, &t->out);
        if (seen && t->out.len > 0 && t->out.data[t->out.len - 1] == '}') {
            t->out.len--;
            et_buf_puts(&t->out, ",\"seen_by\":[");
            for (int k = 0, n = 0; k < 3; k++)
                if (seen & (1u << k))
                    et_buf_printf(&t->out, "%s\"%s\"", n++ ? "," : "", kind_json[k]);
            et_buf_puts(&t->out, "]}");
        }
        et_buf_putc(&t->out, '\n');
    } else {
        if (seen)
            seen_cell(st->kinds, seen, &t->out);
        et_timeline_line(it->x, it->v, f, t->o.flags | (t->o.live ? ET_RENDER_FINDINGS : 0),
                         &t->out);
        if (!t->o.live && f != NULL) {
            et_buf_printf(&t->findings, "#%llu %s\n", (unsigned long long)it->n,
                          it->v->cmd ? it->v->cmd : "");
            for (const struct et_finding *g = f; g != NULL; g = g->next)
                et_finding_text(g, t->o.flags & ET_RENDER_COLOR, "  ", &t->findings);
            if (t->findings.len > FINDINGS_MEM)
                spill_findings(t);
        }
    }
    if (fwrite(t->out.data, 1, t->out.len, t->o.out) != t->out.len)
        return ET_EIO;
    if (t->o.live)
        fflush(t->o.out);
    return 0;
}

static void json_devices(struct et_pipe_timeline *t, const struct et_device_stats *ds, size_t nd)
{
    struct et_buf *b = &t->out;
    et_buf_puts(b, ",\"devices\":[");
    for (size_t i = 0, n = 0; i < nd; i++) {
        char t1[40], t2[40];
        if (t->o.device != NULL && !et_strcaseeq(ds[i].device, t->o.device))
            continue;
        if (n++)
            et_buf_putc(b, ',');
        et_buf_puts(b, "{\"device\":");
        jstr(b, ds[i].device);
        et_buf_puts(b, ",\"user\":");
        jstr(b, ds[i].user);
        et_buf_puts(b, ",\"device_type\":");
        jstr(b, ds[i].device_type);
        et_buf_puts(b, ",\"user_agent\":");
        jstr(b, ds[i].user_agent);
        et_buf_printf(b,
                      ",\"requests\":%llu,\"errors\":%llu,\"warnings\":%llu,"
                      "\"http_errors\":%llu,\"max_per_minute\":%u,\"first\":",
                      (unsigned long long)ds[i].requests, (unsigned long long)ds[i].errors,
                      (unsigned long long)ds[i].warnings, (unsigned long long)ds[i].http_errors,
                      ds[i].max_per_minute);
        jstr(b, ds[i].first > 0 ? et_time_iso8601(ds[i].first, t1, sizeof(t1)) : NULL);
        et_buf_puts(b, ",\"last\":");
        jstr(b, ds[i].last > 0 ? et_time_iso8601(ds[i].last, t2, sizeof(t2)) : NULL);
        et_buf_puts(b, ",\"commands\":{");
        for (unsigned k = 0; k < 8; k++)
            et_buf_printf(b, "%s\"%s\":%llu", k ? "," : "", et_analyzer_cmd_slot_name(k),
                          (unsigned long long)ds[i].cmd_counts[k]);
        et_buf_puts(b, "}}");
    }
    et_buf_putc(b, ']');
}

/* Replay's device summary, a table of the common renderer (eastrace/table.h) with the widths
 * it has always had. */
static void text_devices(struct et_pipe_timeline *t, const struct et_device_stats *ds,
                         size_t nd)
{
    static const char *const cols[] = {"device/client", "user",  "type",   "requests",
                                       "errors",        "warns", "max/min"};
    static const int width[] = {24, 20, 14, -8, -6, -6, -7};
    enum { NC = sizeof(cols) / sizeof(cols[0]) };
    static const struct et_table tb = {"Devices", cols, NC, NULL, 0};
    static const struct et_table_text lay = {width, "  ", " "};
    char num[4][24];
    const char *c[NC];

    et_buf_reset(&t->out);
    et_buf_puts(&t->out, "\nDevices\n");
    et_table_text_header(&tb, &lay, &t->out);
    for (size_t i = 0; i < nd; i++) {
        if (t->o.device != NULL && !et_strcaseeq(ds[i].device, t->o.device))
            continue;
        snprintf(num[0], sizeof(num[0]), "%llu", (unsigned long long)ds[i].requests);
        snprintf(num[1], sizeof(num[1]), "%llu", (unsigned long long)ds[i].errors);
        snprintf(num[2], sizeof(num[2]), "%llu", (unsigned long long)ds[i].warnings);
        snprintf(num[3], sizeof(num[3]), "%u", ds[i].max_per_minute);
        c[0] = ds[i].device ? ds[i].device : "-";
        c[1] = ds[i].user ? ds[i].user : "-";
        c[2] = ds[i].device_type ? ds[i].device_type : "-";
        for (int k = 0; k < 4; k++)
            c[3 + k] = num[k];
        et_table_text_row(&tb, &lay, c, &t->out);
    }
    fwrite(t->out.data, 1, t->out.len, t->o.out);
}

static int on_finish(void *arg, const struct et_finding *sf, const struct et_analyzer *an)
{
    struct et_pipe_timeline *t = arg;
    const struct et_pipe_stats *st = et_pipe_stats(t->p);
    const struct et_device_stats *ds;
    size_t nd = et_analyzer_devices(an, &ds);
    FILE *out = t->o.out;

    header(t);
    if (t->o.live)
        return 0; /* the proxy prints its own session summary */
    et_buf_reset(&t->out);
    if (t->o.json) {
        et_buf_printf(&t->out,
                      "{\"summary\":true,\"exchanges\":%llu,\"shown\":%llu,"
                      "\"damaged_records\":%llu,\"errors\":%llu,\"warnings\":%llu,"
                      "\"infos\":%llu,\"findings\":",
                      (unsigned long long)st->exchanges, (unsigned long long)st->shown,
                      (unsigned long long)st->damaged, (unsigned long long)st->errors,
                      (unsigned long long)st->warnings, (unsigned long long)st->infos);
        et_findings_json(t->o.no_findings ? NULL : sf, &t->out);
        json_devices(t, ds, nd);
        if (st->correlating) {
            int first = 1;
            et_buf_puts(&t->out, ",\"seen_by\":{");
            for (unsigned m = 1; m < 8; m++) {
                if (st->seen_count[m] == 0)
                    continue;
                et_buf_printf(&t->out, "%s\"", first ? "" : ",");
                for (int k = 0, n = 0; k < 3; k++)
                    if (m & (1u << k))
                        et_buf_printf(&t->out, "%s%s", n++ ? "+" : "", kind_json[k]);
                et_buf_printf(&t->out, "\":%llu", (unsigned long long)st->seen_count[m]);
                first = 0;
            }
            et_buf_putc(&t->out, '}');
        }
        et_buf_puts(&t->out, "}\n");
        fwrite(t->out.data, 1, t->out.len, out);
        return ferror(out) ? ET_EIO : 0;
    }
    if (t->findings.len > 0 || t->spill != NULL) {
        fputs("\nFindings\n", out);
        if (t->spill != NULL) {
            char chunk[65536];
            size_t got;
            rewind(t->spill);
            while ((got = fread(chunk, 1, sizeof(chunk), t->spill)) > 0)
                fwrite(chunk, 1, got, out);
        }
        fwrite(t->findings.data, 1, t->findings.len, out);
    }
    if (sf != NULL && !t->o.no_findings) {
        fputs("\nAcross the whole input\n", out);
        for (const struct et_finding *g = sf; g != NULL; g = g->next) {
            et_buf_reset(&t->out);
            et_finding_text(g, t->o.flags & ET_RENDER_COLOR, "  ", &t->out);
            fwrite(t->out.data, 1, t->out.len, out);
        }
    }
    text_devices(t, ds, nd);
    if (st->correlating) {
        fputs("\nSeen by\n", out);
        for (unsigned m = 7; m >= 1; m--) {
            char who[32] = "";
            if (st->seen_count[m] == 0)
                continue;
            for (int k = 0; k < 3; k++)
                if (m & (1u << k)) {
                    size_t l = strlen(who);
                    snprintf(who + l, sizeof(who) - l, "%s%s", l ? " " : "", kind_text[k]);
                }
            fprintf(out, "  %-12s %llu%s\n", who, (unsigned long long)st->seen_count[m],
                    (m & (m - 1)) ? "" : " (only)");
        }
    }
    fprintf(out, "\n%llu exchange(s)", (unsigned long long)st->exchanges);
    if (st->shown != st->exchanges)
        fprintf(out, ", %llu shown", (unsigned long long)st->shown);
    fprintf(out, "; %llu error(s), %llu warning(s), %llu note(s)",
            (unsigned long long)st->errors, (unsigned long long)st->warnings,
            (unsigned long long)st->infos);
    if (st->damaged)
        fprintf(out, "; %llu damaged record(s) skipped", (unsigned long long)st->damaged);
    fputc('\n', out);
    return ferror(out) ? ET_EIO : 0;
}

struct et_pipe_sink et_pipe_timeline_sink(struct et_pipe_timeline *t)
{
    struct et_pipe_sink s = {on_item, on_finish, t};
    return s;
}
