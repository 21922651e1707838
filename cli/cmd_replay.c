/*
 * eastrace replay: lists what an eastrace capture file holds, one line per exchange. Damaged or
 * torn records are reported on stderr with their byte offset and skipped. (A first version: the
 * decoded timeline and the analyzer take this command over later.)
 */
#include "cli.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "eastrace/capfile.h"

static void replay_usage(FILE *f)
{
    fputs("usage: eastrace replay [--follow] FILE\n"
          "\n"
          "Lists the exchanges an eastrace capture file (eastrace proxy -w FILE) holds:\n"
          "number, time, client, method, host, path, HTTP status, request/response body\n"
          "sizes (+ when the capture cut the body), duration and error.\n"
          "\n"
          "  --follow   keep reading as the file grows (a capture being written); Ctrl-C ends\n",
          f);
}

/* Prints s with anything but printable ASCII replaced, so recorded traffic cannot drive the
 * terminal; spaces only in free text. NULL prints as "-". */
static void put_text(FILE *f, const char *s, int spaces)
{
    if (s == NULL || s[0] == '\0') {
        fputc('-', f);
        return;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        fputc((c >= 0x21 && c < 0x7f) || (spaces && c == ' ') ? c : '?', f);
    }
}

static void put_safe(FILE *f, const char *s)
{
    put_text(f, s, 0);
}

static void put_size(FILE *f, const struct et_body *b)
{
    if (b->absent)
        fputc('-', f);
    else
        fprintf(f, "%" PRIu64 "%s", b->wire_len > b->len ? b->wire_len : (uint64_t)b->len,
                b->truncated ? "+" : "");
}

static void print_line(FILE *f, const struct et_exchange *x)
{
    char t[40];
    int64_t d = et_exchange_duration_us(x);
    int64_t when = x->t.req_begin ? x->t.req_begin : x->t.connect;

    fprintf(f, "%5" PRIu64 " %s ", x->id, et_time_iso8601(when, t, sizeof(t)));
    put_safe(f, x->client_addr);
    fputc(' ', f);
    put_safe(f, x->req.method);
    fputc(' ', f);
    put_safe(f, x->host);
    if (x->port > 0 && x->port != 443 && x->port != 80)
        fprintf(f, ":%d", x->port);
    fputc(' ', f);
    put_safe(f, x->req.target);
    if (x->has_response)
        fprintf(f, " %d ", x->resp.status);
    else
        fputs(" --- ", f);
    put_size(f, &x->req.body);
    fputc('/', f);
    put_size(f, &x->resp.body);
    if (d >= 0)
        fprintf(f, " %" PRId64 "ms", d / 1000);
    else
        fputs(" -", f);
    if (x->err.code != 0) {
        fprintf(f, " ERROR %s: ", et_stage_name(x->err.stage));
        put_text(f, x->err.message ? x->err.message : et_strerror(x->err.code), 1);
    }
    fputc('\n', f);
}

int et_cmd_replay(int argc, char **argv)
{
    struct et_capfile_read_opts o = {.follow = 0, .max_record = 0};
    const char *path = NULL;
    struct et_source *s = NULL;
    struct et_error e;
    uint64_t nx = 0, ndamaged = 0;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            replay_usage(stdout);
            return ET_EXIT_OK;
        } else if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0) {
            o.follow = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            et_cli_err("replay: unknown option '%s'", argv[i]);
            replay_usage(stderr);
            return ET_EXIT_INPUT;
        } else if (path == NULL) {
            path = argv[i];
        } else {
            et_cli_err("replay: one capture file at a time");
            return ET_EXIT_INPUT;
        }
    }
    if (path == NULL) {
        replay_usage(stderr);
        return ET_EXIT_INPUT;
    }
    et_error_clear(&e);
    if (et_capfile_open_ex(path, &o, &s, &e) != 0) {
        char msg[400];
        et_cli_err("%s", et_error_format(&e, msg, sizeof(msg)));
        return ET_EXIT_INPUT;
    }
    for (;;) {
        struct et_exchange *x = NULL;
        et_error_clear(&e);
        rc = et_source_next(s, &x, &e);
        if (rc == 1) {
            print_line(stdout, x);
            et_exchange_free(x);
            nx++;
            continue;
        }
        if (rc == ET_EPARSE) {
            et_cli_err("%s: %s", path, e.msg);
            ndamaged++;
            continue;
        }
        if (rc == 0 && o.follow) {
            fflush(stdout);
            usleep(200 * 1000);
            continue;
        }
        break;
    }
    et_source_close(s);
    if (rc < 0) {
        char msg[400];
        et_cli_err("%s", et_error_format(&e, msg, sizeof(msg)));
        return ET_EXIT_INPUT;
    }
    fprintf(stderr, "%" PRIu64 " exchange%s", nx, nx == 1 ? "" : "s");
    if (ndamaged)
        fprintf(stderr, ", %" PRIu64 " damaged record%s skipped", ndamaged,
                ndamaged == 1 ? "" : "s");
    fputc('\n', stderr);
    return ndamaged ? ET_EXIT_FINDINGS : ET_EXIT_OK;
}
