/* eastrace mailboxlog: read EAS mailbox logs (GetMailboxLog output): per-entry table,
 * MailboxLogParser's Ping report, raw search, JSON. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "eastrace/mailboxlog.h"

static void mbx_usage(FILE *f)
{
    fputs("usage: eastrace mailboxlog [--ping] [--find TEXT] [--json] FILE...\n"
          "\n"
          "  (default)      one line per entry: time, command, HTTP, EAS Status, SyncKey 0, RTT\n"
          "  --ping         Ping report: HeartbeatInterval and folders over time\n"
          "  --find TEXT    only entries whose headers, bodies or fields contain TEXT\n"
          "  --json         entries as JSON lines\n",
          f);
}

static int contains(const struct et_exchange *x, const char *t)
{
    if ((x->req.target && strstr(x->req.target, t)) ||
        (x->req.body.data && memmem(x->req.body.data, x->req.body.len, t, strlen(t))) ||
        (x->resp.body.data && memmem(x->resp.body.data, x->resp.body.len, t, strlen(t))))
        return 1;
    const struct et_headers *hs[] = {&x->req.headers, &x->resp.headers, &x->meta};
    for (size_t k = 0; k < 3; k++)
        for (size_t i = 0; i < hs[k]->n; i++)
            if (strstr(hs[k]->v[i].value, t) || strstr(hs[k]->v[i].name, t))
                return 1;
    return 0;
}

/* Through the program's one JSON string writer (valid JSON and UTF-8 whatever the log holds). */
static void json_str(const char *s, size_t n)
{
    struct et_buf b;
    et_buf_init(&b, 0);
    if (et_buf_put_json_string(&b, s, n) == 0)
        fwrite(b.data, 1, b.len, stdout);
    et_buf_free(&b);
}

static void print_json(const struct et_exchange *x)
{
    char t[40];
    struct et_mailboxlog_info in;
    et_mailboxlog_info(x, &in);
    printf("{\"id\":%llu,\"request_time\":\"%s\"", (unsigned long long)x->id,
           et_time_iso8601(x->t.req_begin, t, sizeof(t)));
    printf(",\"method\":");
    json_str(x->req.method ? x->req.method : "", x->req.method ? strlen(x->req.method) : 0);
    printf(",\"target\":");
    json_str(x->req.target ? x->req.target : "", x->req.target ? strlen(x->req.target) : 0);
    printf(",\"http_status\":%d,\"eas_status\":%ld,\"synckey0\":%s,\"rtt_ms\":%lld",
           x->resp.status, in.status, in.synckey0 ? "true" : "false",
           (long long)(in.rtt_us >= 0 ? in.rtt_us / 1000 : -1));
    printf(",\"meta\":{");
    for (size_t i = 0; i < x->meta.n; i++) {
        if (i)
            putchar(',');
        json_str(x->meta.v[i].name, strlen(x->meta.v[i].name));
        putchar(':');
        json_str(x->meta.v[i].value, strlen(x->meta.v[i].value));
    }
    printf("},\"request_body\":");
    json_str(x->req.body.data ? (const char *)x->req.body.data : "", x->req.body.len);
    printf(",\"response_body\":");
    json_str(x->resp.body.data ? (const char *)x->resp.body.data : "", x->resp.body.len);
    if (x->err.code) {
        const char *m = x->err.message ? x->err.message : "";
        printf(",\"error\":");
        json_str(m, strlen(m));
    }
    printf("}\n");
}

int et_cmd_mailboxlog(int argc, char **argv)
{
    int ping = 0, json = 0, rc = ET_EXIT_OK;
    const char *find = NULL;
    struct et_exchange **xs = NULL;
    size_t n = 0, cap = 0;
    int nfiles = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            mbx_usage(stdout);
            return ET_EXIT_OK;
        }
        if (strcmp(argv[i], "--ping") == 0) {
            ping = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--find") == 0 && i + 1 < argc) {
            find = argv[++i];
        } else if (argv[i][0] == '-') {
            et_cli_err("mailboxlog: unknown option '%s'", argv[i]);
            return ET_EXIT_INPUT;
        } else {
            struct et_source *s;
            struct et_error e;
            char m[300];
            et_error_clear(&e);
            nfiles++;
            if (et_mailboxlog_open(argv[i], &s, &e) < 0) {
                et_cli_err("%s", et_error_format(&e, m, sizeof(m)));
                rc = ET_EXIT_INPUT;
                continue;
            }
            for (;;) {
                struct et_exchange *x = NULL;
                et_error_clear(&e);
                int r = et_source_next(s, &x, &e);
                if (r == 0)
                    break;
                if (r < 0) {
                    et_cli_err("%s", et_error_format(&e, m, sizeof(m)));
                    rc = ET_EXIT_FINDINGS;
                    if (r != ET_EPARSE)
                        break;
                    continue;
                }
                if (find != NULL && !contains(x, find)) {
                    et_exchange_free(x);
                    continue;
                }
                if (n == cap) {
                    cap = cap ? cap * 2 : 64;
                    struct et_exchange **nv = realloc(xs, cap * sizeof(*nv));
                    if (nv == NULL) {
                        et_cli_err("out of memory");
                        et_exchange_free(x);
                        break;
                    }
                    xs = nv;
                }
                xs[n++] = x;
            }
            et_source_close(s);
        }
    }
    if (nfiles == 0) {
        mbx_usage(stderr);
        return ET_EXIT_INPUT;
    }
    if (json) {
        for (size_t i = 0; i < n; i++)
            print_json(xs[i]);
    } else if (ping) {
        et_mailboxlog_ping_report(stdout, xs, n);
    } else {
        et_mailboxlog_entry_report(stdout, xs, n);
    }
    for (size_t i = 0; i < n; i++)
        et_exchange_free(xs[i]);
    free(xs);
    return rc;
}
