/*
 * Renderings of a probe report: text for people (one block per step, the way the Remote
 * Connectivity Analyzer lists its tests) and one JSON object for scripts.
 */
#include "eastrace/probe.h"

#include <string.h>

static const char *color_of(enum et_probe_result r)
{
    switch (r) {
    case ET_PROBE_PASSED: return "\033[32m";
    case ET_PROBE_WARNED: return "\033[33m";
    case ET_PROBE_FAILED: return "\033[31m";
    default: return "\033[2m";
    }
}

static const char *sev_name(int s)
{
    return s >= 2 ? "error" : s == 1 ? "warning" : "info";
}

/* Appends text with every line after the first indented by ind. */
static int put_indented(struct et_buf *out, const char *ind, const char *text)
{
    int rc = 0;
    for (const char *p = text; rc == 0 && *p != '\0'; p++) {
        rc = et_buf_putc(out, *p);
        if (rc == 0 && *p == '\n' && p[1] != '\0')
            rc = et_buf_puts(out, ind);
    }
    return rc;
}

int et_probe_step_text(const struct et_probe_step *s, unsigned flags, struct et_buf *out)
{
    int color = (flags & ET_PROBE_TEXT_COLOR) != 0;
    int rc;

    rc = et_buf_printf(out, "[%d] %-13s %s%s%s", (int)s->id + 1, et_probe_step_name(s->id),
                       color ? color_of(s->result) : "", et_probe_result_name(s->result),
                       color ? "\033[0m" : "");
    if (rc == 0 && s->result != ET_PROBE_SKIPPED && s->elapsed_us > 0)
        rc = et_buf_printf(out, " (%.0f ms)", (double)s->elapsed_us / 1000.0);
    if (rc == 0 && s->result == ET_PROBE_SKIPPED && s->reason != NULL)
        rc = et_buf_printf(out, ": %s", s->reason);
    if (rc == 0)
        rc = et_buf_putc(out, '\n');
    for (const struct et_probe_line *l = s->details; rc == 0 && l != NULL; l = l->next)
        rc = et_buf_printf(out, "      %s\n", l->text);
    if (rc == 0 && s->result >= ET_PROBE_WARNED && s->reason != NULL)
        rc = et_buf_printf(out, "      reason: %s\n", s->reason);
    if (rc == 0 && s->result >= ET_PROBE_WARNED && s->next_step != NULL)
        rc = et_buf_printf(out, "      next step: %s\n", s->next_step);
    if (rc == 0 && s->xml != NULL) {
        rc = et_buf_puts(out, "      policy received:\n        ");
        if (rc == 0)
            rc = put_indented(out, "        ", s->xml);
        if (rc == 0 && (out->len == 0 || out->data[out->len - 1] != '\n'))
            rc = et_buf_putc(out, '\n');
    }
    for (const struct et_probe_finding *f = s->findings; rc == 0 && f != NULL; f = f->next) {
        rc = et_buf_printf(out, "      finding (exchange %llu) %s %s: %s\n",
                           (unsigned long long)f->exchange, sev_name(f->severity), f->rule,
                           f->message);
        if (rc == 0 && f->next_step != NULL)
            rc = et_buf_printf(out, "        next step: %s\n", f->next_step);
    }
    return rc;
}

int et_probe_report_text(const struct et_probe_report *r, unsigned flags, struct et_buf *out)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < ET_PROBE_NSTEPS; i++)
        rc = et_probe_step_text(&r->steps[i], flags, out);
    if (rc == 0)
        rc = et_probe_report_summary(r, out);
    return rc;
}

int et_probe_report_summary(const struct et_probe_report *r, struct et_buf *out)
{
    int rc;
    enum et_probe_result w = et_probe_report_worst(r);
    rc = et_buf_printf(out, "result: %s", w == ET_PROBE_FAILED ? "a step failed"
                                          : w == ET_PROBE_WARNED ? "passed with warnings"
                                                                 : "every step passed");
    if (rc == 0 && r->protocol != NULL)
        rc = et_buf_printf(out, "; EAS %s", r->protocol);
    if (rc == 0)
        rc = et_buf_printf(out, "; %llu exchange%s", (unsigned long long)r->exchanges,
                           r->exchanges == 1 ? "" : "s");
    if (rc == 0 && r->captured > 0)
        rc = et_buf_printf(out, " (%llu captured)", (unsigned long long)r->captured);
    if (rc == 0)
        rc = et_buf_putc(out, '\n');
    if (rc == 0 && r->capture_error != NULL)
        rc = et_buf_printf(out, "capture error: %s\n", r->capture_error);
    return rc;
}

static int json_str(struct et_buf *out, const char *s)
{
    if (s == NULL)
        return et_buf_puts(out, "null");
    return et_buf_put_json_string(out, s, strlen(s));
}

int et_probe_report_json(const struct et_probe_report *r, struct et_buf *out)
{
    int rc = et_buf_puts(out, "{\"url\":");
    if (rc == 0)
        rc = json_str(out, r->url);
    if (rc == 0)
        rc = et_buf_puts(out, ",\"user\":");
    if (rc == 0)
        rc = json_str(out, r->user);
    if (rc == 0)
        rc = et_buf_puts(out, ",\"result\":");
    if (rc == 0)
        rc = json_str(out, et_probe_result_name(et_probe_report_worst(r)));
    if (rc == 0)
        rc = et_buf_puts(out, ",\"protocol\":");
    if (rc == 0)
        rc = json_str(out, r->protocol);
    if (rc == 0)
        rc = et_buf_puts(out, ",\"policy_key\":");
    if (rc == 0)
        rc = json_str(out, r->policy_key);
    if (rc == 0)
        rc = et_buf_printf(out, ",\"exchanges\":%llu,\"captured\":%llu,\"capture_error\":",
                           (unsigned long long)r->exchanges, (unsigned long long)r->captured);
    if (rc == 0)
        rc = json_str(out, r->capture_error);
    if (rc == 0)
        rc = et_buf_puts(out, ",\"steps\":[");
    for (int i = 0; rc == 0 && i < ET_PROBE_NSTEPS; i++) {
        const struct et_probe_step *s = &r->steps[i];
        rc = et_buf_printf(out, "%s{\"step\":%d,\"name\":", i ? "," : "", i + 1);
        if (rc == 0)
            rc = json_str(out, et_probe_step_name(s->id));
        if (rc == 0)
            rc = et_buf_puts(out, ",\"result\":");
        if (rc == 0)
            rc = json_str(out, et_probe_result_name(s->result));
        if (rc == 0)
            rc = et_buf_printf(out, ",\"elapsed_ms\":%.1f,\"reason\":",
                               (double)s->elapsed_us / 1000.0);
        if (rc == 0)
            rc = json_str(out, s->reason);
        if (rc == 0)
            rc = et_buf_puts(out, ",\"next_step\":");
        if (rc == 0)
            rc = json_str(out, s->next_step);
        if (rc == 0)
            rc = et_buf_puts(out, ",\"details\":[");
        for (const struct et_probe_line *l = s->details; rc == 0 && l != NULL; l = l->next) {
            rc = json_str(out, l->text);
            if (rc == 0 && l->next != NULL)
                rc = et_buf_putc(out, ',');
        }
        if (rc == 0)
            rc = et_buf_puts(out, "],\"xml\":");
        if (rc == 0)
            rc = json_str(out, s->xml);
        if (rc == 0)
            rc = et_buf_puts(out, ",\"findings\":[");
        for (const struct et_probe_finding *f = s->findings; rc == 0 && f != NULL;
             f = f->next) {
            rc = et_buf_printf(out, "{\"exchange\":%llu,\"severity\":",
                               (unsigned long long)f->exchange);
            if (rc == 0)
                rc = json_str(out, sev_name(f->severity));
            if (rc == 0)
                rc = et_buf_puts(out, ",\"rule\":");
            if (rc == 0)
                rc = json_str(out, f->rule);
            if (rc == 0)
                rc = et_buf_puts(out, ",\"message\":");
            if (rc == 0)
                rc = json_str(out, f->message);
            if (rc == 0)
                rc = et_buf_puts(out, ",\"next_step\":");
            if (rc == 0)
                rc = json_str(out, f->next_step);
            if (rc == 0)
                rc = et_buf_puts(out, f->next ? "}," : "}");
        }
        if (rc == 0)
            rc = et_buf_puts(out, "]}");
    }
    if (rc == 0)
        rc = et_buf_puts(out, "]}");
    return rc;
}
