/*
 * eastrace mailboxlog: EAS mailbox logs (GetMailboxLog output) as MailboxLogParser shows them:
 * a per-entry table, the Ping report, --find, --json. The entries go through the same
 * pipeline as replay (numbering, view, analyzer), so an entry's number, command and Status are
 * the ones `eastrace replay` prints for it: the Status column is the view's (et_view_status),
 * not a scan of the text for the first <Status>.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "eastrace/analyzer.h"
#include "eastrace/pipeline.h"
#include "eastrace/table.h"

static void mbx_usage(FILE *f)
{
    fputs("usage: eastrace mailboxlog [--ping] [--find TEXT] [--json] FILE...\n"
          "\n"
          "Reads EAS mailbox logs (Get-MobileDeviceStatistics -GetMailboxLog output).\n"
          "\n"
          "  (default)      one line per entry: number (as in `eastrace replay`), log entry,\n"
          "                 time, command, HTTP, EAS Status, SyncKey 0, round trip\n"
          "  --ping         Ping report: HeartbeatInterval and folders over time\n"
          "  --find TEXT    only entries whose headers, bodies or fields contain TEXT\n"
          "                 (case-insensitive)\n"
          "  --json         entries as JSON lines\n"
          "\n"
          "The number is the entry's position in the file (several files: in the merged\n"
          "timeline), the one `eastrace replay` and `eastrace show FILE N` use.\n"
          "Exit status: 0 done, 2 a file is not a mailbox log or no entry of it was usable.\n",
          f);
}

enum mode { MODE_TABLE = 0, MODE_PING = 1, MODE_JSON = 2 };

struct mbx_ctx {
    enum mode mode;
    struct et_buf out;
    int header_done;
};

static int synckey0(const struct et_view *v)
{
    for (size_t i = 0; i < v->ncolls; i++)
        if (v->colls[i].sync_key != NULL && strcmp(v->colls[i].sync_key, "0") == 0)
            return 1;
    return 0;
}

static void jstr(struct et_buf *b, const char *s, size_t n)
{
    if (s == NULL)
        et_buf_puts(b, "null");
    else
        et_buf_put_json_string(b, s, n);
}

static void put_json(struct mbx_ctx *c, const struct et_pipe_item *it, long st)
{
    const struct et_exchange *x = it->x;
    struct et_buf *b = &c->out;
    char t[40];
    int64_t rtt = et_exchange_duration_us(x);

    et_buf_printf(b, "{\"n\":%llu,\"request_time\":", (unsigned long long)it->n);
    if (et_exchange_time(x) > 0) {
        et_time_iso8601(et_exchange_time(x), t, sizeof(t));
        jstr(b, t, strlen(t));
    } else {
        jstr(b, NULL, 0);
    }
    et_buf_puts(b, ",\"cmd\":");
    jstr(b, it->v->cmd, it->v->cmd ? strlen(it->v->cmd) : 0);
    et_buf_puts(b, ",\"method\":");
    jstr(b, x->req.method, x->req.method ? strlen(x->req.method) : 0);
    et_buf_puts(b, ",\"target\":");
    jstr(b, x->req.target, x->req.target ? strlen(x->req.target) : 0);
    et_buf_printf(b, ",\"http_status\":%d,\"eas_status\":%ld,\"synckey0\":%s,\"rtt_ms\":%lld",
                  x->has_response ? x->resp.status : 0, st, synckey0(it->v) ? "true" : "false",
                  (long long)(rtt >= 0 ? rtt / 1000 : -1));
    et_buf_puts(b, ",\"exception\":");
    jstr(b, x->facts.exception, x->facts.exception ? strlen(x->facts.exception) : 0);
    et_buf_puts(b, ",\"meta\":{");
    for (size_t i = 0; i < x->meta.n; i++) {
        if (i)
            et_buf_putc(b, ',');
        jstr(b, x->meta.v[i].name, strlen(x->meta.v[i].name));
        et_buf_putc(b, ':');
        jstr(b, x->meta.v[i].value, strlen(x->meta.v[i].value));
    }
    et_buf_puts(b, "},\"request_body\":");
    jstr(b, x->req.body.data ? (const char *)x->req.body.data : "", x->req.body.len);
    et_buf_puts(b, ",\"response_body\":");
    jstr(b, x->resp.body.data ? (const char *)x->resp.body.data : "", x->resp.body.len);
    et_buf_puts(b, ",\"error\":");
    jstr(b, x->err.code ? (x->err.message ? x->err.message : et_strerror(x->err.code)) : NULL,
         x->err.message ? strlen(x->err.message) : strlen(et_strerror(x->err.code)));
    et_buf_puts(b, ",\"findings\":");
    et_findings_json(it->findings, b);
    et_buf_puts(b, "}\n");
}

/* MailboxLogParser's two tables, streamed one row per entry through the common renderer
 * (eastrace/table.h) with fixed widths. */
static const char *const entry_cols[] = {"#",      "Entry", "RequestTime", "Cmd",
                                         "HTTP",   "Status", "SK0",        "RTT(s)"};
static const int entry_width[] = {-6, 6, 24, 18, -4, -6, -3, -9};
static const char *const ping_cols[] = {"#", "RequestTime", "Heartbeat", "Folders", "Status",
                                        "RTT(s)"};
static const int ping_width[] = {-6, 24, -9, -7, -6, -9};

static int on_entry(void *arg, const struct et_pipe_item *it)
{
    struct mbx_ctx *c = arg;
    const struct et_exchange *x = it->x;
    const struct et_view *v = it->v;
    const char *root, *parent;
    long st = et_view_status(v, &root, &parent);
    int64_t rtt = et_exchange_duration_us(x);
    char t[40], n[24], stc[24] = "-", rt[24] = "-";
    struct et_table tb = {"entries", entry_cols, 8, NULL, 0};
    struct et_table_text lay = {entry_width, NULL, "  "};

    et_buf_reset(&c->out);
    if (c->mode == MODE_JSON) {
        put_json(c, it, st);
        return et_cli_write_safe(stdout, c->out.data, c->out.len) == 0 ? 0 : ET_EIO;
    }
    if (c->mode == MODE_PING) {
        tb.cols = ping_cols;
        tb.ncols = 6;
        tb.name = "ping";
        lay.width = ping_width;
    }
    if (c->header_done == 0) {
        et_table_text_header(&tb, &lay, &c->out);
        c->header_done = 1;
    }
    snprintf(n, sizeof(n), "%llu", (unsigned long long)it->n);
    if (st >= 0)
        snprintf(stc, sizeof(stc), "%ld", st);
    et_time_iso8601(et_exchange_time(x), t, sizeof(t));
    if (c->mode == MODE_PING) {
        char hb[24] = "-", fo[24] = "-";
        if (v->cmd == NULL || strcmp(v->cmd, "Ping") != 0)
            goto write;
        if (v->heartbeat_req >= 0)
            snprintf(hb, sizeof(hb), "%ld", v->heartbeat_req);
        if (v->ping_folders >= 0)
            snprintf(fo, sizeof(fo), "%ld", v->ping_folders);
        if (rtt >= 0)
            snprintf(rt, sizeof(rt), "%.1f", (double)rtt / 1e6);
        const char *row[] = {n, t, hb, fo, stc, rt};
        et_table_text_row(&tb, &lay, row, &c->out);
    } else {
        const char *no = et_headers_get(&x->meta, "Log Entry");
        const char *cmd = v->cmd ? v->cmd : (x->req.method ? x->req.method : "-");
        char http[16];
        snprintf(http, sizeof(http), "%d", x->has_response ? x->resp.status : 0);
        if (rtt >= 0)
            snprintf(rt, sizeof(rt), "%.3f", (double)rtt / 1e6);
        const char *row[] = {n, no, t, cmd, http, stc, synckey0(v) ? "yes" : "", rt};
        et_table_text_row(&tb, &lay, row, &c->out);
    }
write:
    return fwrite(c->out.data, 1, c->out.len, stdout) == c->out.len ? 0 : ET_EIO;
}

int et_cmd_mailboxlog(int argc, char **argv)
{
    struct et_pipe_opts po;
    struct mbx_ctx c;
    struct et_pipe_sink sink;
    struct et_pipe *p;
    int rc = ET_EXIT_OK, nfiles = 0;

    memset(&c, 0, sizeof(c));
    et_pipe_opts_default(&po);
    po.format = "mailboxlog";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            mbx_usage(stdout);
            return ET_EXIT_OK;
        }
        if (strcmp(argv[i], "--ping") == 0) {
            c.mode = MODE_PING;
        } else if (strcmp(argv[i], "--json") == 0) {
            c.mode = MODE_JSON;
        } else if (strcmp(argv[i], "--find") == 0 && i + 1 < argc) {
            po.filter.find = argv[++i];
        } else if (argv[i][0] == '-') {
            et_cli_err("mailboxlog: unknown option '%s' (see eastrace mailboxlog --help)",
                       argv[i]);
            return ET_EXIT_INPUT;
        } else {
            nfiles++;
        }
    }
    if (nfiles == 0) {
        mbx_usage(stderr);
        return ET_EXIT_INPUT;
    }
    et_buf_init(&c.out, 0);
    sink.on_exchange = on_entry;
    sink.on_finish = NULL;
    sink.arg = &c;
    p = et_pipe_new(&po, &sink);
    if (p == NULL) {
        et_cli_err("out of memory");
        exit(ET_EXIT_INPUT);
    }
    for (int i = 1; i < argc; i++) {
        struct et_error e;
        char msg[400];
        if (argv[i][0] == '-') {
            if (strcmp(argv[i], "--find") == 0)
                i++;
            continue;
        }
        et_error_clear(&e);
        if (et_pipe_check_format(argv[i], "mailboxlog", &e) != 0) {
            et_cli_err("%s", et_error_format(&e, msg, sizeof(msg)));
            rc = ET_EXIT_INPUT;
            continue;
        }
        if (et_pipe_open(p, argv[i]) != 0)
            rc = ET_EXIT_INPUT;
    }
    if (et_pipe_run(p) != 0) {
        et_cli_err("mailboxlog: out of memory or output failed");
        rc = ET_EXIT_INPUT;
    }
    if (et_pipe_stats(p)->inputs_failed > 0)
        rc = ET_EXIT_INPUT;
    et_pipe_free(p);
    et_buf_free(&c.out);
    return rc;
}
