/*
 * libFuzzer target: the merged source iteration as every command runs it. The input is split
 * into one to three files, each sniffed and opened like a file given on the command line
 * (capture, .saz, HAR, IIS log, mailbox log), merged, correlated, reordered, viewed, analyzed
 * and rendered (timeline line and JSON), and its --find text built (plain and redacted, as the
 * session browser stores it) and searched. It must end (libFuzzer's -timeout catches a reader
 * that loops), and its output is bounded by its input: no more exchanges, skipped-record
 * messages or errors than the bytes given (issue 10: a reader error once printed forever).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "eastrace/pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct count {
    uint64_t items, messages;
    struct et_buf out;
};

static int on_item(void *arg, const struct et_pipe_item *it)
{
    struct count *c = arg;
    c->items++;
    et_buf_reset(&c->out);
    et_timeline_line(it->x, it->v, it->findings, ET_RENDER_FINDINGS | ET_RENDER_ADDRS, &c->out);
    et_exchange_json(it->x, it->v, it->findings, it->n, &c->out);
    et_buf_reset(&c->out);
    et_pipe_find_text(it->x, it->v, (int)(it->n & 1), &c->out);
    (void)et_pipe_find_match(c->out.data, c->out.len, "status 1");
    return 0;
}

static int on_finish(void *arg, const struct et_finding *f, const struct et_analyzer *an)
{
    struct count *c = arg;
    (void)an;
    et_buf_reset(&c->out);
    et_findings_json(f, &c->out);
    return 0;
}

static void on_error(void *arg, const char *input, const struct et_error *e, int skipped)
{
    struct count *c = arg;
    (void)input;
    (void)e;
    (void)skipped;
    c->messages++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const suffix[4] = {"", ".log", ".har", ".saz"};
    struct count c = {0, 0, {0}};
    struct et_pipe_opts o;
    struct et_pipe_sink sink = {on_item, on_finish, &c};
    struct et_pipe *p;
    size_t n, part, off;

    if (size == 0)
        return 0;
    n = (size_t)(data[0] % 3) + 1;
    et_pipe_opts_default(&o);
    o.on_error = on_error;
    o.error_arg = &c;
    et_buf_init(&c.out, 1 << 20);
    p = et_pipe_new(&o, &sink);
    if (p == NULL)
        abort();
    part = (size - 1) / n;
    off = 1;
    for (size_t i = 0; i < n; i++) {
        char name[32];
        size_t len = i + 1 == n ? size - off : part;
        snprintf(name, sizeof(name), "fuzz%zu%s", i, suffix[(data[0] >> (2 + 2 * i)) & 3]);
        et_pipe_open_mem(p, data + off, len, name);
        off += len;
    }
    et_pipe_run(p);
    /* Bounded by the input: each exchange and each message needs bytes of its own. */
    if (c.items > size + n || c.messages > size + 2 * n)
        abort();
    et_pipe_free(p);
    et_buf_free(&c.out);
    return 0;
}
