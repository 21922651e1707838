/*
 * Rendering shared by `eastrace replay`, the proxy's live view and `eastrace show`: one
 * timeline line per exchange, findings as text, and the JSON Lines object (docs/json.md).
 */
#include "eastrace/analyzer.h"

#include <stdio.h>
#include <string.h>

#define C_RESET "\033[0m"
#define C_RED "\033[31m"
#define C_YELLOW "\033[33m"
#define C_DIM "\033[2m"
#define C_BOLD "\033[1m"

static void human_size(uint64_t n, int absent, char *out, size_t len)
{
    if (absent)
        snprintf(out, len, "-");
    else if (n < 1000)
        snprintf(out, len, "%llu", (unsigned long long)n);
    else if (n < 1000 * 1000)
        snprintf(out, len, "%.1fK", (double)n / 1024.0);
    else
        snprintf(out, len, "%.1fM", (double)n / (1024.0 * 1024.0));
}

static void human_duration(int64_t us, char *out, size_t len)
{
    if (us < 0)
        snprintf(out, len, "-");
    else if (us < 1000)
        snprintf(out, len, "%lldus", (long long)us);
    else if (us < 10 * 1000 * 1000)
        snprintf(out, len, "%lldms", (long long)(us / 1000));
    else
        snprintf(out, len, "%.1fs", (double)us / 1e6);
}

/* "MM-DD HH:MM:SS.mmm" in UTC. */
static void short_time(int64_t us, char *out, size_t len)
{
    char iso[40];
    et_time_iso8601(us, iso, sizeof(iso));
    if (us <= 0 || strlen(iso) < 23) {
        snprintf(out, len, "%-18s", "-");
        return;
    }
    snprintf(out, len, "%.5s %.12s", iso + 5, iso + 11);
}

static int64_t exchange_time(const struct et_exchange *x)
{
    return et_exchange_time(x); /* the one order (exchange.h) */
}

/* The EAS Status shown on the line (et_view_status: the same in every command). */
static void status_cell(const struct et_view *v, char *out, size_t len)
{
    const char *root, *parent;
    long show = et_view_status(v, &root, &parent);

    if (show < 0) {
        snprintf(out, len, "-");
        return;
    }
    const struct et_eas_status *s = et_eas_status_lookup(root, parent, (int)show);
    snprintf(out, len, "%ld=%s", show, s ? s->name : "?");
}

/* "  Inbox (5), Sent Items (6)": the collections of the exchange with the names the trace's
 * FolderSync gave them, at the end of the line; empty when no name is known. */
static void folders_cell(const struct et_view *v, char *out, size_t len)
{
    size_t k = 0;
    int named = 0;

    out[0] = '\0';
    for (size_t i = 0; i < v->ncolls; i++)
        named |= v->colls[i].folder_name != NULL;
    if (!named)
        return;
    for (size_t i = 0; i < v->ncolls && k + 8 < len; i++) {
        const struct et_view_collection *c = &v->colls[i];
        int n;
        if (c->collection_id == NULL || strcmp(c->collection_id, "FolderSync") == 0)
            continue;
        if (c->folder_name != NULL)
            n = snprintf(out + k, len - k, "%s%s (%s)", k ? ", " : "  ", c->folder_name,
                         c->collection_id);
        else
            n = snprintf(out + k, len - k, "%s%s", k ? ", " : "  ", c->collection_id);
        if (n < 0 || (size_t)n >= len - k) {
            /* Cut: end with an ellipsis that fits. */
            if (len >= 4)
                memcpy(out + len - 4, "...", 4);
            k = len;
            break;
        }
        k += (size_t)n;
    }
    et_str_printable(out);
}

int et_view_exdiag_text(const struct et_view *v, const char *indent, struct et_buf *out)
{
    static const char *const names[] = {"X-CasErrorCode", "X-FailureContext", "X-DiagInfo",
                                        "X-FEServer",     "X-BEServer",
                                        "X-CalculatedBETarget", "request-id",
                                        "X-MS-Diagnostics"};
    const struct et_view_exdiag *d = &v->exdiag;
    const char *vals[8] = {d->cas_error, d->failure_context, d->diag_info, d->fe_server,
                           d->be_server, d->be_target, d->request_id, d->ms_diagnostics};
    int rc = 0;

    for (size_t i = 0; i < 8; i++) {
        char val[1024];
        if (vals[i] == NULL)
            continue;
        snprintf(val, sizeof(val), "%s", vals[i]);
        et_str_printable(val);
        rc = et_buf_printf(out, "%s%-22s %s\n", indent, names[i], val);
    }
    return rc;
}

int et_timeline_header(unsigned flags, struct et_buf *out)
{
    if (flags & ET_RENDER_ADDRS)
        et_buf_printf(out, "%-21s %-24s", "client", "host (~ tunnelled)");
    return et_buf_printf(out, "%6s %-18s %-16s %-16s %4s %-22s %15s %8s\n", "#", "time (UTC)",
                         "device/client", "command", "HTTP", "EAS status", "req/resp",
                         "time");
}

int et_timeline_line(const struct et_exchange *x, const struct et_view *v,
                     const struct et_finding *f, unsigned flags, struct et_buf *out)
{
    char tm[32], dev[17], cmd[64], st[48], rq[16], rs[16], dur[16], sizes[40], http[16];
    char fold[96];
    int sev = et_findings_max_severity(f);
    const int color = (flags & ET_RENDER_COLOR) != 0;
    const char *c_on = "", *c_off = "";
    int rc;

    short_time(exchange_time(x), tm, sizeof(tm));
    snprintf(dev, sizeof(dev), "%s", v->device ? v->device : "-");
    if (v->is_eas && v->cmd != NULL)
        snprintf(cmd, sizeof(cmd), "%s", v->cmd);
    else if (v->is_eas && x->req.method != NULL)
        snprintf(cmd, sizeof(cmd), "%s", x->req.method);
    else if (x->req.method != NULL)
        snprintf(cmd, sizeof(cmd), "%s %s", x->req.method, x->host ? x->host : "");
    else
        snprintf(cmd, sizeof(cmd), "-");
    if (strlen(cmd) > 16)
        memcpy(cmd + 13, "...", 4);
    /* Recorded values must not drive the terminal. */
    et_str_printable(dev);
    et_str_printable(cmd);
    status_cell(v, st, sizeof(st));
    if (strlen(st) > 22)
        memcpy(st + 19, "...", 4);
    human_size(x->req.body.wire_len, x->req.body.absent, rq, sizeof(rq));
    human_size(x->resp.body.wire_len, x->resp.body.absent || !x->has_response, rs, sizeof(rs));
    snprintf(sizes, sizeof(sizes), "%s/%s", rq, rs);
    human_duration(et_exchange_duration_us(x), dur, sizeof(dur));
    if (x->has_response && x->resp.status > 0)
        snprintf(http, sizeof(http), "%d", x->resp.status);
    else
        snprintf(http, sizeof(http), "%s", x->err.code ? "ERR" : "-");
    if (color) {
        if (sev == ET_SEV_ERROR) {
            c_on = C_RED;
            c_off = C_RESET;
        } else if (sev == ET_SEV_WARNING) {
            c_on = C_YELLOW;
            c_off = C_RESET;
        }
    }
    if (flags & ET_RENDER_ADDRS) {
        /* Live view: who asked which server, before the usual columns. */
        char client[48], host[48];
        snprintf(client, sizeof(client), "%s", x->client_addr ? x->client_addr : "-");
        snprintf(host, sizeof(host), "%s%s", x->tls.present && !x->tls.intercepted ? "~" : "",
                 x->host ? x->host : "-");
        et_str_printable(host);
        et_buf_printf(out, "%s%-21s %-24s%s", c_on, client, host, c_off);
    }
    folders_cell(v, fold, sizeof(fold));
    rc = et_buf_printf(out, "%s%6llu %-18s %-16s %-16s %4s %-22s %15s %8s%s%s%s%s\n", c_on,
                       (unsigned long long)x->id, tm, dev, cmd, http, st, sizes, dur,
                       sev == ET_SEV_ERROR ? "  !" : sev == ET_SEV_WARNING ? "  ?" : "",
                       x->tls.insecure ? "  [upstream not verified]" : "", fold, c_off);
    if (rc != 0 || !(flags & ET_RENDER_FINDINGS))
        return rc;
    for (; f != NULL; f = f->next)
        if ((rc = et_finding_text(f, flags, "         ", out)) != 0)
            return rc;
    return 0;
}

int et_finding_text(const struct et_finding *f, unsigned flags, const char *indent,
                    struct et_buf *out)
{
    const int color = (flags & ET_RENDER_COLOR) != 0;
    const char *c_on = "", *c_off = "";
    if (color) {
        c_on = f->severity == ET_SEV_ERROR     ? C_RED
               : f->severity == ET_SEV_WARNING ? C_YELLOW
                                               : C_DIM;
        c_off = C_RESET;
    }
    et_buf_printf(out, "%s%s%s [%s]%s %s\n", indent, c_on, et_severity_name(f->severity),
                  f->rule, c_off, f->message);
    if (f->next_step != NULL)
        return et_buf_printf(out, "%s  next: %s\n", indent, f->next_step);
    return 0;
}

/* ---- JSON ----------------------------------------------------------------------------- */

static void jstr(struct et_buf *out, const char *s)
{
    if (s == NULL)
        et_buf_puts(out, "null");
    else
        et_buf_put_json_string(out, s, strlen(s));
}

static void jkey(struct et_buf *out, const char *k, int first)
{
    if (!first)
        et_buf_putc(out, ',');
    et_buf_put_json_string(out, k, strlen(k));
    et_buf_putc(out, ':');
}

int et_findings_json(const struct et_finding *f, struct et_buf *out)
{
    int first = 1;
    et_buf_putc(out, '[');
    for (; f != NULL; f = f->next) {
        if (!first)
            et_buf_putc(out, ',');
        first = 0;
        et_buf_puts(out, "{\"rule\":");
        jstr(out, f->rule);
        et_buf_puts(out, ",\"severity\":");
        jstr(out, et_severity_name(f->severity));
        et_buf_puts(out, ",\"message\":");
        jstr(out, f->message);
        et_buf_puts(out, ",\"next_step\":");
        jstr(out, f->next_step);
        if (f->exchange_id)
            et_buf_printf(out, ",\"exchange\":%llu", (unsigned long long)f->exchange_id);
        et_buf_puts(out, ",\"device\":");
        jstr(out, f->device);
        et_buf_putc(out, '}');
    }
    return et_buf_putc(out, ']');
}

/* The path part of a request target (origin-form or absolute-form), without the query. */
static void target_path(const char *target, char *out, size_t len)
{
    const char *p = target, *q;
    size_t n;
    if (target == NULL) {
        snprintf(out, len, "%s", "");
        return;
    }
    if (strncmp(p, "http://", 7) == 0 || strncmp(p, "https://", 8) == 0) {
        p = strstr(p, "://") + 3;
        p = strchr(p, '/');
        if (p == NULL)
            p = "/";
    }
    q = strchr(p, '?');
    n = q ? (size_t)(q - p) : strlen(p);
    if (n >= len)
        n = len - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

int et_exchange_json(const struct et_exchange *x, const struct et_view *v,
                     const struct et_finding *f, uint64_t n, struct et_buf *out)
{
    char tm[40], path[2048];
    int64_t dur = et_exchange_duration_us(x);

    et_buf_printf(out, "{\"n\":%llu", (unsigned long long)n);
    jkey(out, "time", 0);
    if (exchange_time(x) > 0)
        jstr(out, et_time_iso8601(exchange_time(x), tm, sizeof(tm)));
    else
        et_buf_puts(out, "null");
    jkey(out, "source", 0);
    jstr(out, et_source_name(x->source));
    jkey(out, "id", 0);
    et_buf_printf(out, "%llu", (unsigned long long)x->id);
    jkey(out, "client", 0);
    jstr(out, x->client_addr);
    if (x->via_addr != NULL) {
        jkey(out, "via", 0);
        jstr(out, x->via_addr);
    }
    if (x->reverse)
        et_buf_puts(out, ",\"reverse\":true");
    jkey(out, "method", 0);
    jstr(out, x->req.method);
    jkey(out, "host", 0);
    jstr(out, x->host);
    jkey(out, "path", 0);
    target_path(x->req.target, path, sizeof(path));
    jstr(out, x->req.target ? path : NULL);
    jkey(out, "status", 0);
    if (x->has_response && x->resp.status > 0)
        et_buf_printf(out, "%d", x->resp.status);
    else
        et_buf_puts(out, "null");
    jkey(out, "duration_ms", 0);
    if (dur >= 0)
        et_buf_printf(out, "%.3f", (double)dur / 1000.0);
    else
        et_buf_puts(out, "null");
    jkey(out, "request_bytes", 0);
    if (x->req.body.absent)
        et_buf_puts(out, "null");
    else
        et_buf_printf(out, "%llu", (unsigned long long)x->req.body.wire_len);
    jkey(out, "response_bytes", 0);
    if (x->resp.body.absent || !x->has_response)
        et_buf_puts(out, "null");
    else
        et_buf_printf(out, "%llu", (unsigned long long)x->resp.body.wire_len);
    jkey(out, "eas", 0);
    if (v->is_eas) {
        et_buf_puts(out, "{\"cmd\":");
        jstr(out, v->cmd);
        et_buf_puts(out, ",\"user\":");
        jstr(out, v->user);
        et_buf_puts(out, ",\"device_id\":");
        jstr(out, v->req.device_id);
        et_buf_puts(out, ",\"device_type\":");
        jstr(out, v->req.device_type);
        et_buf_puts(out, ",\"protocol\":");
        jstr(out, v->req.protocol);
        et_buf_puts(out, ",\"policy_key\":");
        jstr(out, v->req.policy_key);
        et_buf_puts(out, ",\"status\":[");
        for (size_t i = 0; i < v->nstatus; i++)
            et_buf_printf(out, "%s%ld", i ? "," : "", v->statuses[i]);
        et_buf_puts(out, "],\"collections\":[");
        for (size_t i = 0, k = 0; i < v->ncolls; i++) {
            const struct et_view_collection *c = &v->colls[i];
            et_buf_puts(out, k++ ? ",{\"id\":" : "{\"id\":");
            jstr(out, c->collection_id);
            et_buf_puts(out, ",\"name\":");
            jstr(out, c->folder_name);
            et_buf_puts(out, ",\"sync_key\":");
            jstr(out, c->sync_key);
            et_buf_puts(out, ",\"new_sync_key\":");
            jstr(out, c->new_sync_key);
            if (c->status >= 0)
                et_buf_printf(out, ",\"status\":%ld}", c->status);
            else
                et_buf_puts(out, ",\"status\":null}");
        }
        et_buf_puts(out, "]}");
    } else {
        et_buf_puts(out, "null");
    }
    jkey(out, "error", 0);
    if (x->err.code != 0) {
        et_buf_puts(out, "{\"stage\":");
        jstr(out, et_stage_name(x->err.stage));
        et_buf_puts(out, ",\"message\":");
        jstr(out, x->err.message);
        et_buf_putc(out, '}');
    } else {
        et_buf_puts(out, "null");
    }
    jkey(out, "exchange_diagnostics", 0);
    if (v->exdiag.present) {
        const struct et_view_exdiag *d = &v->exdiag;
        et_buf_puts(out, "{\"cas_error\":");
        jstr(out, d->cas_error);
        et_buf_puts(out, ",\"failure_context\":");
        jstr(out, d->failure_context);
        et_buf_puts(out, ",\"diag_info\":");
        jstr(out, d->diag_info);
        et_buf_puts(out, ",\"fe_server\":");
        jstr(out, d->fe_server);
        et_buf_puts(out, ",\"be_server\":");
        jstr(out, d->be_server);
        et_buf_puts(out, ",\"calculated_be_target\":");
        jstr(out, d->be_target);
        et_buf_puts(out, ",\"request_id\":");
        jstr(out, d->request_id);
        et_buf_puts(out, ",\"ms_diagnostics\":");
        jstr(out, d->ms_diagnostics);
        et_buf_putc(out, '}');
    } else {
        et_buf_puts(out, "null");
    }
    jkey(out, "findings", 0);
    et_findings_json(f, out);
    return et_buf_putc(out, '}');
}
