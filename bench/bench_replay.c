/*
 * bench_replay: writes an eastrace capture of realistic EAS traffic for the replay benchmark
 * (bench/bench_replay.sh) and the bounded-memory test (tests/cli/test_replay_memory.sh), and
 * measures a child process (wall time, CPU time, peak RSS) without /usr/bin/time.
 *
 *   bench_replay [--size N[K|M|G] | --count N] [--devices N] [--seed N] OUT.etcap
 *       Many devices doing Sync, Ping, FolderSync, SendMail and ItemOperations with real WBXML
 *       bodies (XML encoded by et_wbxml_encode) of 100 B to 100 KB, and some trouble: HTTP
 *       500s, Sync Status 3 followed by SyncKey 0, and devices stuck in SyncKey 0 loops.
 *       Stops once the file holds at least --size bytes (default 1 GiB), or after --count
 *       exchanges (the web page's load-time measurement, tests/web). Deterministic for a
 *       given seed.
 *   bench_replay --measure CMD [ARG...]
 *       Runs CMD (stdout to /dev/null) and prints "wall_s cpu_s maxrss_kib exit" on stdout.
 */
#include "eastrace/capfile.h"
#include "eastrace/wbxml.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEVICES 4096
#define NCOLL 4 /* collections each device syncs: Inbox, Sent, Calendar, Contacts */

static const char *const coll_ids[NCOLL] = {"5", "6", "3", "9"};

struct device {
    char id[40];
    char user[32];
    char type[16];
    const char *agent;
    const char *proto;
    unsigned long sync_key[NCOLL]; /* 0 after a reset */
    unsigned long folder_key;
    unsigned long policy;
    unsigned loops;      /* SyncKey 0 sends left in a reset loop */
    unsigned next_item;
};

struct gen {
    uint64_t rng;
    int64_t now;            /* microseconds since the epoch */
    struct device *dev;
    unsigned ndev;
    struct et_buf xml;
    struct et_buf req, resp; /* encoded bodies */
    struct et_error e;
    uint64_t counts[8];
};

static uint64_t rnd(struct gen *g)
{
    /* xorshift64*: cheap, deterministic, good enough for traffic shapes. */
    g->rng ^= g->rng >> 12;
    g->rng ^= g->rng << 25;
    g->rng ^= g->rng >> 27;
    return g->rng * 0x2545F4914F6CDD1DULL;
}

static unsigned below(struct gen *g, unsigned n)
{
    return (unsigned)(rnd(g) % n);
}

/* Roughly log-uniform size in [lo, hi]: a decade picked uniformly, then uniform inside it, so
 * there are many small bodies and a long tail of large ones. */
static size_t size_between(struct gen *g, size_t lo, size_t hi)
{
    unsigned decades = 0, k;
    size_t base = lo, top;

    for (size_t d = lo; d < hi; d *= 10)
        decades++;
    k = decades ? below(g, decades) : 0;
    for (unsigned i = 0; i < k; i++)
        base *= 10;
    top = base * 10 > hi ? hi : base * 10;
    return base + (size_t)((double)below(g, 1000000) / 1e6 * (double)(top - base));
}

static const char *const words[] = {
    "meeting", "budget", "quarterly", "review", "the", "and", "please", "find", "attached",
    "report", "Grüße", "schedule", "tomorrow", "update", "project", "server", "mailbox",
    "déjà", "vu", "thanks", "regards", "customer", "invoice", "deadline", "Friday", "agenda",
    "lunch", "team", "sync", "phone", "calendar", "✓", "office", "notes", "draft", "final",
};

static void put_words(struct gen *g, struct et_buf *b, size_t n)
{
    size_t start = b->len;
    while (b->len - start < n) {
        et_buf_puts(b, words[below(g, ET_ARRAY_SIZE(words))]);
        et_buf_putc(b, below(g, 12) == 0 ? '\n' : ' ');
    }
}

static void die(const char *what, const struct et_error *e)
{
    char msg[400];
    fprintf(stderr, "bench_replay: %s: %s\n", what,
            e ? et_error_format(e, msg, sizeof(msg)) : strerror(errno));
    exit(1);
}

static void encode(struct gen *g, struct et_buf *out)
{
    et_buf_reset(out);
    et_error_clear(&g->e);
    if (et_wbxml_encode((const char *)g->xml.data, g->xml.len, out, &g->e) != 0)
        die("encoding generated XML", &g->e);
}

static void add_hdr(struct et_exchange *x, struct et_headers *h, const char *n, const char *v)
{
    if (et_headers_add(h, x->arena, n, strlen(n), v, strlen(v)) != 0)
        die("out of memory", NULL);
}

/* ---- bodies --------------------------------------------------------------------------- */

static void email_items(struct gen *g, struct device *d, size_t target, int fetch)
{
    size_t start = g->xml.len;
    do {
        size_t body = size_between(g, 40, target > 200 ? target / 2 : 100);
        if (!fetch)
            et_buf_printf(&g->xml, "<Add><ServerId>5:%u</ServerId><ApplicationData>",
                          ++d->next_item);
        et_buf_printf(&g->xml,
                      "<email:To>\"%s\" &lt;%s@example.org&gt;</email:To>"
                      "<email:From>\"Sender %u\" &lt;s%u@example.com&gt;</email:From>"
                      "<email:Subject>",
                      d->user, d->user, below(g, 500), below(g, 500));
        put_words(g, &g->xml, 10 + below(g, 50));
        et_buf_printf(&g->xml,
                      "</email:Subject><email:DateReceived>2024-05-%02uT%02u:%02u:00.000Z"
                      "</email:DateReceived><email:Importance>1</email:Importance>"
                      "<email:Read>%u</email:Read><airsyncbase:Body><airsyncbase:Type>1"
                      "</airsyncbase:Type><airsyncbase:EstimatedDataSize>%zu"
                      "</airsyncbase:EstimatedDataSize><airsyncbase:Data>",
                      1 + below(g, 28), below(g, 24), below(g, 60), below(g, 2), body);
        put_words(g, &g->xml, body);
        et_buf_puts(&g->xml, "</airsyncbase:Data></airsyncbase:Body>"
                             "<email:MessageClass>IPM.Note</email:MessageClass>");
        if (!fetch)
            et_buf_puts(&g->xml, "</ApplicationData></Add>");
    } while (!fetch && g->xml.len - start < target);
}

/* One exchange of device d; fills method-independent parts of x. Returns the command. */
static const char *make(struct gen *g, struct device *d, struct et_exchange *x, int *status)
{
    unsigned pick = below(g, 100);
    const char *cmd;
    int c = (int)below(g, NCOLL);
    int http500 = below(g, 150) == 0;

    *status = 200;
    et_buf_reset(&g->req);
    et_buf_reset(&g->resp);
    if (d->loops > 0 || pick < 45) {
        /* Sync: a loop device keeps sending SyncKey 0 for collection 0. */
        unsigned long key;
        int bad = 0;
        if (d->loops > 0) {
            c = 0;
            d->loops--;
            d->sync_key[0] = 0;
        }
        key = d->sync_key[c];
        cmd = "Sync";
        et_buf_reset(&g->xml);
        et_buf_printf(&g->xml,
                      "<Sync xmlns=\"AirSync:\" xmlns:airsyncbase=\"AirSyncBase:\">"
                      "<Collections><Collection><SyncKey>%lu</SyncKey><CollectionId>%s"
                      "</CollectionId>",
                      key, coll_ids[c]);
        if (key != 0)
            et_buf_puts(&g->xml, "<DeletesAsMoves>1</DeletesAsMoves><GetChanges>1</GetChanges>"
                                 "<WindowSize>100</WindowSize><Options><FilterType>3"
                                 "</FilterType><airsyncbase:BodyPreference><airsyncbase:Type>1"
                                 "</airsyncbase:Type><airsyncbase:TruncationSize>200000"
                                 "</airsyncbase:TruncationSize></airsyncbase:BodyPreference>"
                                 "</Options>");
        et_buf_puts(&g->xml, "</Collection></Collections></Sync>");
        encode(g, &g->req);
        if (http500) {
            *status = 500;
            return cmd;
        }
        bad = key != 0 && below(g, 80) == 0;
        et_buf_reset(&g->xml);
        et_buf_printf(&g->xml,
                      "<Sync xmlns=\"AirSync:\" xmlns:email=\"Email:\" "
                      "xmlns:airsyncbase=\"AirSyncBase:\"><Collections><Collection>"
                      "<SyncKey>%lu</SyncKey><CollectionId>%s</CollectionId><Status>%d"
                      "</Status>",
                      bad ? 0 : key + 1, coll_ids[c], bad ? 3 : 1);
        if (!bad && key != 0 && below(g, 3) != 0) {
            et_buf_puts(&g->xml, "<Commands>");
            email_items(g, d, size_between(g, 100, 100000), 0);
            et_buf_puts(&g->xml, "</Commands>");
        }
        et_buf_puts(&g->xml, "</Collection></Collections></Sync>");
        encode(g, &g->resp);
        if (bad) {
            d->sync_key[c] = 0;
        } else {
            d->sync_key[c] = key + 1;
        }
        /* One device in twenty falls into a reset loop now and then. */
        if (d->loops == 0 && key == 0 && (d - g->dev) % 20 == 7 && below(g, 4) == 0)
            d->loops = 4 + below(g, 4);
        return cmd;
    }
    if (pick < 65) {
        unsigned hb = 480 + 60 * below(g, 50);
        cmd = "Ping";
        et_buf_reset(&g->xml);
        et_buf_printf(&g->xml, "<Ping xmlns=\"Ping:\"><HeartbeatInterval>%u</HeartbeatInterval>"
                               "<Folders>", hb);
        for (int i = 0; i < NCOLL; i++)
            et_buf_printf(&g->xml, "<Folder><Id>%s</Id><Class>%s</Class></Folder>", coll_ids[i],
                          i == 2 ? "Calendar" : i == 3 ? "Contacts" : "Email");
        et_buf_puts(&g->xml, "</Folders></Ping>");
        encode(g, &g->req);
        if (http500) {
            *status = 500;
            return cmd;
        }
        et_buf_reset(&g->xml);
        if (below(g, 3) == 0)
            et_buf_printf(&g->xml, "<Ping xmlns=\"Ping:\"><Status>2</Status><Folders><Folder>%s"
                                   "</Folder></Folders></Ping>", coll_ids[c]);
        else
            et_buf_puts(&g->xml, "<Ping xmlns=\"Ping:\"><Status>1</Status></Ping>");
        encode(g, &g->resp);
        return cmd;
    }
    if (pick < 72) {
        cmd = "FolderSync";
        et_buf_reset(&g->xml);
        et_buf_printf(&g->xml, "<FolderSync xmlns=\"FolderHierarchy:\"><SyncKey>%lu</SyncKey>"
                               "</FolderSync>", d->folder_key);
        encode(g, &g->req);
        et_buf_reset(&g->xml);
        et_buf_printf(&g->xml, "<FolderSync xmlns=\"FolderHierarchy:\"><Status>1</Status>"
                               "<SyncKey>%lu</SyncKey><Changes>", d->folder_key + 1);
        {
            unsigned n = d->folder_key == 0 ? 12 + below(g, 200) : below(g, 3);
            et_buf_printf(&g->xml, "<Count>%u</Count>", n);
            for (unsigned i = 0; i < n; i++) {
                et_buf_printf(&g->xml, "<Add><ServerId>%u</ServerId><ParentId>%u</ParentId>"
                                       "<DisplayName>", 10 + i, i < 12 ? 0 : 2);
                put_words(g, &g->xml, 6 + below(g, 20));
                et_buf_printf(&g->xml, "</DisplayName><Type>%u</Type></Add>",
                              i < 12 ? 2 + i % 10 : 12);
            }
        }
        et_buf_puts(&g->xml, "</Changes></FolderSync>");
        encode(g, &g->resp);
        d->folder_key++;
        return cmd;
    }
    if (pick < 80) {
        /* SendMail (EAS 14+): MIME as OPAQUE; the answer is 200 with an empty body. */
        size_t n = size_between(g, 300, 100000);
        cmd = "SendMail";
        et_buf_reset(&g->xml);
        et_buf_printf(&g->xml, "<SendMail xmlns=\"ComposeMail:\"><ClientId>SendMail-%" PRId64
                               "</ClientId><SaveInSentItems/><Mime><![CDATA[From: %s@example.org"
                               "\r\nTo: someone@example.com\r\nSubject: ",
                      g->now, d->user);
        put_words(g, &g->xml, 30);
        et_buf_puts(&g->xml, "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8"
                             "\r\n\r\n");
        put_words(g, &g->xml, n);
        et_buf_puts(&g->xml, "\r\n]]></Mime></SendMail>");
        encode(g, &g->req);
        if (http500)
            *status = 500;
        return cmd;
    }
    cmd = "ItemOperations";
    et_buf_reset(&g->xml);
    et_buf_printf(&g->xml,
                  "<ItemOperations xmlns=\"ItemOperations:\" xmlns:airsync=\"AirSync:\" "
                  "xmlns:airsyncbase=\"AirSyncBase:\"><Fetch><Store>Mailbox</Store>"
                  "<airsync:CollectionId>%s</airsync:CollectionId><airsync:ServerId>%s:%u"
                  "</airsync:ServerId><Options><airsyncbase:BodyPreference><airsyncbase:Type>1"
                  "</airsyncbase:Type></airsyncbase:BodyPreference></Options></Fetch>"
                  "</ItemOperations>",
                  coll_ids[c], coll_ids[c], 1 + below(g, d->next_item + 1));
    encode(g, &g->req);
    if (http500) {
        *status = 500;
        return cmd;
    }
    et_buf_reset(&g->xml);
    et_buf_printf(&g->xml,
                  "<ItemOperations xmlns=\"ItemOperations:\" xmlns:airsync=\"AirSync:\" "
                  "xmlns:email=\"Email:\" xmlns:airsyncbase=\"AirSyncBase:\"><Status>1</Status>"
                  "<Response><Fetch><Status>1</Status><airsync:CollectionId>%s"
                  "</airsync:CollectionId><airsync:ServerId>%s:1</airsync:ServerId>"
                  "<airsync:Class>Email</airsync:Class><Properties>",
                  coll_ids[c], coll_ids[c]);
    email_items(g, d, size_between(g, 100, 100000), 1);
    et_buf_puts(&g->xml, "</Properties></Fetch></Response></ItemOperations>");
    encode(g, &g->resp);
    return cmd;
}

static void fill(struct gen *g, struct device *d, uint64_t id, struct et_exchange *x)
{
    int status;
    const char *cmd = make(g, d, x, &status);
    char target[256], pk[24];
    int64_t dur = cmd[0] == 'P' ? (int64_t)(60 + below(g, 400)) * 1000000 : 20000 +
                  (int64_t)below(g, 900000);

    g->now += 1000 + (int64_t)below(g, 2000000);
    x->id = id;
    x->source = ET_SRC_PROXY;
    x->t.connect = g->now;
    x->t.req_begin = g->now + 200;
    x->t.req_end = g->now + 900;
    x->t.resp_begin = g->now + dur - 1000;
    x->t.resp_end = g->now + dur;
    x->client_addr = et_arena_printf(x->arena, "10.%u.%u.%u:%u", (unsigned)(d - g->dev) / 250,
                                     (unsigned)(d - g->dev) % 250, 7, 40000 + below(g, 20000));
    x->server_addr = "198.51.100.4:443";
    x->scheme = "https";
    x->host = "mail.example.com";
    x->port = 443;
    x->tls.present = 1;
    x->tls.intercepted = 1;
    x->tls.sni = "mail.example.com";
    x->tls.client_version = "TLSv1.2";
    x->tls.upstream_version = "TLSv1.3";
    x->has_request = 1;
    x->has_response = 1;
    x->req.method = "POST";
    snprintf(target, sizeof(target),
             "/Microsoft-Server-ActiveSync?Cmd=%s&User=%s&DeviceId=%s&DeviceType=%s%s", cmd,
             d->user, d->id, d->type, strcmp(cmd, "SendMail") == 0 ? "&SaveInSent=T" : "");
    x->req.target = et_arena_strdup(x->arena, target);
    x->req.http_major = x->req.http_minor = 1;
    snprintf(pk, sizeof(pk), "%lu", d->policy);
    add_hdr(x, &x->req.headers, "Host", "mail.example.com");
    add_hdr(x, &x->req.headers, "Content-Type", "application/vnd.ms-sync.wbxml");
    add_hdr(x, &x->req.headers, "MS-ASProtocolVersion", d->proto);
    add_hdr(x, &x->req.headers, "X-MS-PolicyKey", pk);
    add_hdr(x, &x->req.headers, "User-Agent", d->agent);
    add_hdr(x, &x->req.headers, "Authorization", "Basic dXNlcjpzZWNyZXQ=");
    if (et_body_set(&x->req.body, x->arena, g->req.data, g->req.len) != 0)
        die("out of memory", NULL);
    x->resp.status = status;
    x->resp.reason = status == 200 ? "OK" : "Internal Server Error";
    x->resp.http_major = x->resp.http_minor = 1;
    add_hdr(x, &x->resp.headers, "Server", "Microsoft-IIS/10.0");
    add_hdr(x, &x->resp.headers, "MS-Server-ActiveSync", "15.1");
    if (status == 200 && g->resp.len > 0) {
        add_hdr(x, &x->resp.headers, "Content-Type", "application/vnd.ms-sync.wbxml");
        if (et_body_set(&x->resp.body, x->arena, g->resp.data, g->resp.len) != 0)
            die("out of memory", NULL);
    } else if (status != 200) {
        static const char html[] = "<html><body><h1>500 - Internal server error.</h1></body>"
                                   "</html>";
        add_hdr(x, &x->resp.headers, "Content-Type", "text/html");
        if (et_body_set(&x->resp.body, x->arena, html, sizeof(html) - 1) != 0)
            die("out of memory", NULL);
    }
    for (unsigned k = 0; k < 8; k++)
        if (strcmp(cmd, (const char *[]){"Sync", "Ping", "FolderSync", "SendMail",
                                          "ItemOperations", "", "", ""}[k]) == 0)
            g->counts[k]++;
}

static uint64_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0)
        return 0;
    switch (*end) {
    case 'k': case 'K': v *= 1024; break;
    case 'm': case 'M': v *= 1024 * 1024; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
    case '\0': break;
    default: return 0;
    }
    return (uint64_t)v;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* --measure: fork/exec, wait4 for the child's own rusage. */
static int measure(char **argv)
{
    struct timespec t0, t1;
    struct rusage ru;
    int st = 0;
    pid_t pid;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid = fork();
    if (pid < 0)
        die("fork", NULL);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0)
            dup2(fd, 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (wait4(pid, &st, 0, &ru) < 0)
        die("wait4", NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.3f %.3f %ld %d\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
           tv_s(ru.ru_utime) + tv_s(ru.ru_stime), ru.ru_maxrss,
           WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return 0;
}

int main(int argc, char **argv)
{
    struct gen g;
    struct et_capfile_writer *w = NULL;
    struct et_capfile_stats st;
    struct et_capfile_opts o;
    uint64_t size = (uint64_t)1 << 30, id = 0, max_count = 0;
    unsigned seed = 1;
    const char *out = NULL;
    static const char *const agents[] = {"Apple-iPhone14C2/2006.100", "Android-SAMSUNG-SM-G991B/101.10",
                                         "Outlook-iOS-Android/1.0", "Nine/4.9.4b"};
    static const char *const protos[] = {"16.1", "14.1", "16.0", "14.0"};
    static const char *const types[] = {"iPhone", "SAMSUNGSMG991B", "Outlook", "Nine"};

    if (argc > 2 && strcmp(argv[1], "--measure") == 0)
        return measure(argv + 2);
    memset(&g, 0, sizeof(g));
    g.ndev = 400;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
            size = parse_size(argv[++i]);
        } else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            max_count = strtoull(argv[++i], NULL, 10);
            size = UINT64_MAX;
        } else if (strcmp(argv[i], "--devices") == 0 && i + 1 < argc) {
            g.ndev = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (argv[i][0] == '-') {
            size = 0;
            break;
        } else {
            out = argv[i];
        }
    }
    if (out == NULL || size == 0 || g.ndev == 0 || g.ndev > MAX_DEVICES) {
        fprintf(stderr, "usage: bench_replay [--size N[K|M|G] | --count N] [--devices N<=%d] [--seed N] "
                        "OUT\n       bench_replay --measure CMD [ARG...]\n", MAX_DEVICES);
        return 2;
    }
    g.rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)seed * 0x100000001B3ULL);
    g.now = (int64_t)1714550400 * 1000000; /* 2024-05-01T08:00:00Z */
    g.dev = calloc(g.ndev, sizeof(*g.dev));
    if (g.dev == NULL)
        die("out of memory", NULL);
    for (unsigned i = 0; i < g.ndev; i++) {
        struct device *d = &g.dev[i];
        unsigned k = i % 4;
        snprintf(d->id, sizeof(d->id), "%016" PRIX64, rnd(&g));
        snprintf(d->user, sizeof(d->user), "user%u", i);
        snprintf(d->type, sizeof(d->type), "%s", types[k]);
        d->agent = agents[k];
        d->proto = protos[k];
        d->policy = 1000000 + below(&g, 1000000);
        d->folder_key = 0;
    }
    et_buf_init(&g.xml, 8u << 20);
    et_buf_init(&g.req, 8u << 20);
    et_buf_init(&g.resp, 8u << 20);
    signal(SIGXFSZ, SIG_IGN);
    unlink(out);
    et_capfile_opts_init(&o);
    et_error_clear(&g.e);
    if (et_capfile_open_append(out, &o, &w, &g.e) != 0)
        die(out, &g.e);
    for (;;) {
        struct et_exchange *x;
        et_capfile_writer_stats(w, &st);
        if (st.bytes >= size || (max_count && id >= max_count))
            break;
        x = et_exchange_new();
        if (x == NULL)
            die("out of memory", NULL);
        fill(&g, &g.dev[below(&g, g.ndev)], ++id, x);
        if (et_capfile_write(w, x, &g.e) != 0)
            die(out, &g.e);
        et_exchange_free(x);
    }
    if (et_capfile_close(w, &g.e) != 0)
        die(out, &g.e);
    fprintf(stderr,
            "bench_replay: %s: %" PRIu64 " bytes, %" PRIu64 " exchanges (Sync %" PRIu64
            ", Ping %" PRIu64 ", FolderSync %" PRIu64 ", SendMail %" PRIu64
            ", ItemOperations %" PRIu64 "), %u devices\n",
            out, st.bytes, id, g.counts[0], g.counts[1], g.counts[2], g.counts[3], g.counts[4],
            g.ndev);
    et_buf_free(&g.xml);
    et_buf_free(&g.req);
    et_buf_free(&g.resp);
    free(g.dev);
    return 0;
}
