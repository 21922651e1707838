/*
 * Proxy tests: a real TLS origin (OpenSSL, a thread per connection) and a plain-HTTP origin
 * on 127.0.0.1, the proxy in a thread on port 0, and real curl (or raw sockets for the
 * malformed traffic curl will not send). Every case checks what the client got, what the
 * origin saw, and the exchange the proxy recorded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "et_test.h"

#include "eastrace/certs.h"
#include "eastrace/proxy.h"
#include "proxy_int.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <zlib.h>

/* ------------------------------------------------------------------ the test origin */

struct origin {
    int fd;
    int port;
    SSL_CTX *ctx; /* NULL: plain HTTP */
    pthread_t th;
    atomic_int heads;      /* request heads received */
    atomic_int requests;   /* requests read completely */
    atomic_int conns;      /* TCP connections accepted */
    atomic_int stop;
    atomic_int bad_response; /* answer /badresp with conflicting Content-Length */
};

struct oconn {
    struct origin *o;
    int fd;
    SSL *ssl;
    uint8_t buf[65536];
    size_t off, len;
};

static uint8_t gz_body[256];
static size_t gz_len;

static ssize_t oc_raw_read(struct oconn *c, void *p, size_t n)
{
    if (c->ssl != NULL) {
        int r = SSL_read(c->ssl, p, (int)n);
        return r > 0 ? r : -1;
    }
    return read(c->fd, p, n);
}

static int oc_write(struct oconn *c, const void *p, size_t n)
{
    const uint8_t *s = p;
    while (n > 0) {
        ssize_t r;
        if (c->ssl != NULL)
            r = SSL_write(c->ssl, s, (int)n);
        else
            r = write(c->fd, s, n);
        if (r <= 0)
            return -1;
        s += r;
        n -= (size_t)r;
    }
    return 0;
}

static int oc_fill(struct oconn *c)
{
    if (c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len);
        c->off = 0;
    }
    if (c->len == sizeof(c->buf))
        return -1;
    ssize_t r = oc_raw_read(c, c->buf + c->len, sizeof(c->buf) - c->len);
    if (r <= 0)
        return -1;
    c->len += (size_t)r;
    return 0;
}

/* Reads one CRLF line (without CRLF) into out. */
static int oc_line(struct oconn *c, char *out, size_t outlen)
{
    for (;;) {
        uint8_t *nl = memchr(c->buf + c->off, '\n', c->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - (c->buf + c->off));
            size_t k = n > 0 && nl[-1] == '\r' ? n - 1 : n;
            if (k >= outlen)
                k = outlen - 1;
            memcpy(out, c->buf + c->off, k);
            out[k] = '\0';
            c->off += n + 1;
            c->len -= n + 1;
            return 0;
        }
        if (oc_fill(c) != 0)
            return -1;
    }
}

/* Reads n body bytes, appending up to cap into body (may be NULL). */
static int oc_body(struct oconn *c, uint64_t n, char *body, size_t cap, size_t *blen)
{
    while (n > 0) {
        if (c->len == 0 && oc_fill(c) != 0)
            return -1;
        size_t k = c->len < n ? c->len : (size_t)n;
        if (body != NULL && *blen + k <= cap) {
            memcpy(body + *blen, c->buf + c->off, k);
            *blen += k;
        }
        c->off += k;
        c->len -= k;
        n -= k;
    }
    return 0;
}

static void *origin_conn_main(void *arg)
{
    struct oconn *c = arg;
    struct origin *o = c->o;
    static const size_t cap = 1 << 20;
    char *body = malloc(cap);
    if (o->ctx != NULL) {
        c->ssl = SSL_new(o->ctx);
        SSL_set_fd(c->ssl, c->fd);
        if (SSL_accept(c->ssl) != 1)
            goto out;
    }
    for (;;) {
        char line[8192], method[16] = "", path[4096] = "";
        if (oc_line(c, line, sizeof(line)) != 0)
            break;
        if (sscanf(line, "%15s %4095s", method, path) != 2)
            break;
        atomic_fetch_add(&o->heads, 1);
        int64_t cl = -1;
        int chunked = 0, expect = 0, close_after = 0;
        for (;;) {
            if (oc_line(c, line, sizeof(line)) != 0)
                goto out;
            if (line[0] == '\0')
                break;
            if (strncasecmp(line, "Content-Length:", 15) == 0)
                cl = strtoll(line + 15, NULL, 10);
            else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0)
                chunked = strstr(line, "chunked") != NULL;
            else if (strncasecmp(line, "Expect:", 7) == 0)
                expect = 1;
            else if (strncasecmp(line, "Connection:", 11) == 0 && strstr(line, "close"))
                close_after = 1;
        }
        if (expect)
            oc_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        size_t blen = 0;
        uint64_t total = 0;
        if (chunked) {
            for (;;) {
                if (oc_line(c, line, sizeof(line)) != 0)
                    goto out;
                uint64_t n = strtoull(line, NULL, 16);
                if (n == 0) {
                    oc_line(c, line, sizeof(line));
                    break;
                }
                if (oc_body(c, n, body, cap, &blen) != 0 || oc_line(c, line, sizeof(line)) != 0)
                    goto out;
                total += n;
            }
        } else if (cl > 0) {
            if (oc_body(c, (uint64_t)cl, body, cap, &blen) != 0)
                goto out;
            total = (uint64_t)cl;
        }
        atomic_fetch_add(&o->requests, 1);
        char hdr[512];
        if (strncmp(path, "/echo", 5) == 0) {
            snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.ms-sync.wbxml\r\n"
                     "X-Body-Total: %llu\r\nContent-Length: %zu\r\n\r\n",
                     (unsigned long long)total, blen);
            oc_write(c, hdr, strlen(hdr));
            oc_write(c, body, blen);
        } else if (strncmp(path, "/count", 6) == 0) {
            char b[64];
            int n = snprintf(b, sizeof(b), "%llu", (unsigned long long)total);
            snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", n);
            oc_write(c, hdr, strlen(hdr));
            oc_write(c, b, (size_t)n);
        } else if (strncmp(path, "/big?n=", 7) == 0) {
            size_t n = (size_t)atol(path + 7), sent = 0;
            char blk[16384];
            memset(blk, 'b', sizeof(blk));
            snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
            oc_write(c, hdr, strlen(hdr));
            while (sent < n) {
                size_t k = n - sent < 7000 ? n - sent : 7000; /* odd sizes: records split */
                oc_write(c, blk, k);
                sent += k;
            }
        } else if (strcmp(path, "/chunked") == 0) {
            static const char r[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    "6\r\nhello \r\n8\r\nchunked \r\n5\r\nworld\r\n0\r\n\r\n";
            oc_write(c, r, sizeof(r) - 1);
        } else if (strcmp(path, "/gzip") == 0) {
            snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n\r\n", gz_len);
            oc_write(c, hdr, strlen(hdr));
            oc_write(c, gz_body, gz_len);
        } else if (strncmp(path, "/hold", 5) == 0) {
            const char *ms = strstr(path, "ms=");
            usleep((useconds_t)(ms ? atol(ms + 3) : 100) * 1000u);
            static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nheld";
            oc_write(c, r, sizeof(r) - 1);
        } else if (strcmp(path, "/badchunk") == 0) {
            static const char r[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    "5\rhello\r\n0\r\n\r\n";
            oc_write(c, r, sizeof(r) - 1);
        } else if (strcmp(path, "/badresp") == 0) {
            static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                    "Content-Length: 6\r\n\r\nhello!";
            oc_write(c, r, sizeof(r) - 1);
        } else if (strcmp(path, "/eof") == 0) {
            static const char r[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close";
            oc_write(c, r, sizeof(r) - 1);
            break;
        } else {
            static const char r[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
            oc_write(c, r, sizeof(r) - 1);
        }
        if (close_after)
            break;
    }
out:
    if (c->ssl != NULL) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    close(c->fd);
    free(body);
    free(c);
    return NULL;
}

static void *origin_main(void *arg)
{
    struct origin *o = arg;
    while (!atomic_load(&o->stop)) {
        struct pollfd pfd = {.fd = o->fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        int fd = accept(o->fd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&o->conns, 1);
        /* Head and body leave in two writes: without this, Nagle and delayed ACKs hold each
         * keep-alive answer 40 ms. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct oconn *c = calloc(1, sizeof(*c));
        c->o = o;
        c->fd = fd;
        pthread_t th;
        pthread_create(&th, NULL, origin_conn_main, c);
        pthread_detach(th);
    }
    return NULL;
}

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 512) != 0)
        return -1;
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static struct origin *origin_start(const char *cert_name)
{
    struct origin *o = calloc(1, sizeof(*o));
    o->fd = listen_loopback(&o->port);
    assert_true(o->fd >= 0);
    if (cert_name != NULL) {
        char cert[512], key[512];
        snprintf(cert, sizeof(cert), "%s/proxy/%s.pem", ET_FIXTURES_DIR, cert_name);
        snprintf(key, sizeof(key), "%s/proxy/%s.key", ET_FIXTURES_DIR, cert_name);
        o->ctx = SSL_CTX_new(TLS_server_method());
        assert_int_equal(SSL_CTX_use_certificate_chain_file(o->ctx, cert), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(o->ctx, key, SSL_FILETYPE_PEM), 1);
    }
    pthread_create(&o->th, NULL, origin_main, o);
    return o;
}

static void origin_stop(struct origin *o)
{
    atomic_store(&o->stop, 1);
    pthread_join(o->th, NULL);
    close(o->fd);
    /* Detached connection threads keep their SSLs, which hold references to the context. */
    SSL_CTX_free(o->ctx);
    free(o);
}

/* ------------------------------------------------------------------ the proxy under test */

struct tproxy {
    struct et_proxy *p;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct et_exchange *x[256];
    size_t nx;
};

static void on_exchange(struct et_exchange *x, void *ud)
{
    struct tproxy *t = ud;
    pthread_mutex_lock(&t->mu);
    if (t->nx < ET_ARRAY_SIZE(t->x))
        t->x[t->nx++] = x;
    else
        et_exchange_free(x);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void *proxy_main(void *arg)
{
    struct tproxy *t = arg;
    et_proxy_run(t->p);
    return NULL;
}

static struct et_certs *g_certs;
static struct origin *g_tls, *g_plain, *g_plain2, *g_expired, *g_wrongname;
static const char *const g_allow_targets[] = {"localhost", "127.0.0.1"};

static uint64_t scale_1000(enum et_proxy_timer which, uint64_t ms, void *ud)
{
    (void)which;
    (void)ud;
    return ms / 1000;
}

static void default_opts(struct et_proxy_opts *o)
{
    static char ca[512];
    memset(o, 0, sizeof(*o));
    snprintf(ca, sizeof(ca), "%s/proxy/origin-ca.pem", ET_FIXTURES_DIR);
    o->listen_addr = "127.0.0.1";
    o->listen_port = 0;
    o->allow_target = g_allow_targets;
    o->n_allow_target = 2;
    o->upstream_ca_file = ca;
    o->certs = g_certs;
    o->on_exchange = on_exchange;
}

static struct tproxy *tproxy_start(struct et_proxy_opts *o)
{
    struct tproxy *t = calloc(1, sizeof(*t));
    struct et_error e;
    et_error_clear(&e);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    o->ud = t;
    int rc = et_proxy_new(o, &t->p, &e);
    if (rc != 0)
        print_message("et_proxy_new: %s\n", e.msg);
    assert_int_equal(rc, 0);
    pthread_create(&t->th, NULL, proxy_main, t);
    return t;
}

static void tproxy_stop(struct tproxy *t)
{
    et_proxy_stop(t->p);
    pthread_join(t->th, NULL);
    et_proxy_free(t->p);
    for (size_t i = 0; i < t->nx; i++)
        et_exchange_free(t->x[i]);
    free(t);
}

/* Waits until at least n exchanges were recorded; returns how many there are. */
static size_t wait_exchanges(struct tproxy *t, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&t->mu);
    while (t->nx < n)
        if (pthread_cond_timedwait(&t->cv, &t->mu, &ts) != 0)
            break;
    size_t got = t->nx;
    pthread_mutex_unlock(&t->mu);
    return got;
}

static struct et_exchange *last_exchange(struct tproxy *t)
{
    pthread_mutex_lock(&t->mu);
    struct et_exchange *x = t->nx ? t->x[t->nx - 1] : NULL;
    pthread_mutex_unlock(&t->mu);
    return x;
}

/* Runs a shell command and captures its stdout. */
static char *run(const char *fmt, ...) ET_PRINTF(1, 2);
static char *run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    size_t r;
    while ((r = fread(out + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            cap *= 2;
            out = realloc(out, cap);
        }
    }
    out[n] = '\0';
    pclose(f);
    return out;
}

static const char *fx(const char *name)
{
    static char path[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof(path[k]), "%s/proxy/%s", ET_FIXTURES_DIR, name);
    return path[k];
}

/* Sends raw bytes to the proxy and reads the answer until close (or 5 s). */
static char *raw_exchange(int port, const void *req, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(write(fd, req, len), (ssize_t)len);
    char *out = calloc(1, 1 << 16);
    size_t n = 0;
    ssize_t r;
    while (n < (1 << 16) - 1 && (r = read(fd, out + n, (1 << 16) - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    return out;
}

/* ------------------------------------------------------------------ group setup */

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    struct et_certs_opts co;
    struct et_error e;
    memset(&co, 0, sizeof(co));
    et_error_clear(&e);
    co.ca_cert_file = fx("mitm-ca.pem");
    co.ca_key_file = fx("mitm-ca.key");
    chmod(co.ca_key_file, 0600);
    if (et_certs_open(&co, &g_certs, &e) != 0) {
        print_message("et_certs_open: %s\n", e.msg);
        return -1;
    }
    /* A small gzip body for the passthrough test. */
    z_stream z;
    memset(&z, 0, sizeof(z));
    deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
    static const char txt[] = "compressed EAS body, compressed EAS body, compressed EAS body";
    z.next_in = (Bytef *)(uintptr_t)txt;
    z.avail_in = sizeof(txt) - 1;
    z.next_out = gz_body;
    z.avail_out = sizeof(gz_body);
    deflate(&z, Z_FINISH);
    gz_len = sizeof(gz_body) - z.avail_out;
    deflateEnd(&z);
    g_tls = origin_start("origin-localhost");
    g_plain = origin_start(NULL);
    g_plain2 = origin_start(NULL);
    g_expired = origin_start("origin-expired");
    g_wrongname = origin_start("origin-wrong-name");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    origin_stop(g_tls);
    origin_stop(g_plain);
    origin_stop(g_plain2);
    origin_stop(g_expired);
    origin_stop(g_wrongname);
    et_certs_free(g_certs);
    return 0;
}

static int setup_proxy(void **state)
{
    struct et_proxy_opts o;
    default_opts(&o);
    *state = tproxy_start(&o);
    return 0;
}

static int teardown_proxy(void **state)
{
    tproxy_stop(*state);
    return 0;
}

#define CURL "curl -sS --max-time 20 -x http://127.0.0.1:%d "

/* ------------------------------------------------------------------ unit: strict framing */

static int scan(const char *s, int req)
{
    struct et__head h;
    struct et_error e;
    et_error_clear(&e);
    int rc = et__head_scan((const uint8_t *)s, strlen(s), req, &h, &e);
    if (rc != 0 && rc != ET_EAGAIN)
        print_message("scan: %s\n", e.msg);
    return rc;
}

static void test_head_scan_accepts_plain_requests(void **state)
{
    (void)state;
    struct et__head h;
    struct et_error e;
    const char *r = "POST /Microsoft-Server-ActiveSync?Cmd=Sync HTTP/1.1\r\nHost: a\r\n"
                    "Content-Length: 12\r\nConnection: close\r\n\r\nbody";
    et_error_clear(&e);
    assert_int_equal(et__head_scan((const uint8_t *)r, strlen(r), 1, &h, &e), 0);
    assert_int_equal(h.content_length, 12);
    assert_true(h.conn_close);
    assert_int_equal(h.n, 3);
    assert_int_equal(h.head_len, strlen(r) - 4);
    assert_int_equal(scan("GET / HTTP/1.1\r\nHost: a\r\n", 1), ET_EAGAIN);
    assert_int_equal(scan("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0), 0);
}

static void test_head_scan_rejects_smuggling_payloads(void **state)
{
    (void)state;
    /* Each of these is let through (or framed differently) by some parser. */
    assert_int_equal(scan("GET / HTTP/1.1\r\nHost: a\r\n\rZGET /x HTTP/1.1\r\n\r\n", 1),
                     ET_EPARSE);
    assert_int_equal(scan("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 1), ET_EPARSE);
    assert_int_equal(scan("GET / HTTP/1.1\nHost: a\r\n\r\n", 1), ET_EPARSE);
    assert_int_equal(scan("GET / HTTP/1.1\r\n: empty\r\n\r\n", 1), ET_EPARSE);
    assert_int_equal(scan("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 1), ET_EPARSE);
    assert_int_equal(scan("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                          1), ET_EPARSE);
    assert_int_equal(scan("POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n", 1), ET_EPARSE);
    assert_int_equal(scan("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 1), ET_EPARSE);
    assert_int_equal(scan("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 1),
                     ET_EPARSE);
    assert_int_equal(scan("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n", 1), ET_EPARSE);
    assert_int_equal(scan("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                          "Content-Length: 3\r\n\r\n", 1), ET_EPARSE);
    assert_int_equal(scan("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", 1),
                     ET_EPARSE);
    assert_int_equal(scan("GET / HTTP/1.1\r\nHo st: a\r\n\r\n", 1), ET_EPARSE);
    assert_int_equal(scan("GET /  HTTP/1.1\r\n\r\n", 1), ET_EPARSE);
    assert_int_equal(scan("GET / HTTP/2.0\r\n\r\n", 1), ET_EPARSE);
    assert_int_equal(scan("HTTP/1.1 20 OK\r\n\r\n", 0), ET_EPARSE);
    /* Caps: 101 fields, 64 KiB. */
    struct et_buf b;
    et_buf_init(&b, 0);
    et_buf_puts(&b, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 101; i++)
        et_buf_printf(&b, "X-%d: v\r\n", i);
    et_buf_puts(&b, "\r\n");
    assert_int_equal(scan((const char *)b.data, 1), ET_ETOOBIG);
    et_buf_reset(&b);
    et_buf_puts(&b, "GET / HTTP/1.1\r\nX-Big: ");
    for (int i = 0; i < 70000; i++)
        et_buf_putc(&b, 'a');
    et_buf_puts(&b, "\r\n\r\n");
    assert_int_equal(scan((const char *)b.data, 1), ET_ETOOBIG);
    et_buf_free(&b);
}

static int chunked_all(const char *s, char *out, size_t *olen)
{
    struct et__chunked c;
    struct et_error e;
    et__chunked_init(&c);
    et_error_clear(&e);
    const uint8_t *p = (const uint8_t *)s;
    size_t len = strlen(s);
    *olen = 0;
    /* Feed one byte at a time: framing must not depend on how reads split. */
    for (size_t i = 0; i < len;) {
        size_t used = 0, dlen = 0;
        const uint8_t *d = NULL;
        int r = et__chunked_feed(&c, p + i, 1, &used, &d, &dlen, &e);
        if (r == 1) {
            memcpy(out + *olen, d, dlen);
            *olen += dlen;
        } else if (r == 0) {
            return (i + used == len) ? 0 : 1;
        } else if (r != ET_EAGAIN) {
            return r;
        }
        i += used;
    }
    return ET_EAGAIN;
}

static void test_chunked_decoder_strict(void **state)
{
    (void)state;
    char out[256];
    size_t n;
    assert_int_equal(chunked_all("5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n", out, &n),
                     0);
    assert_int_equal(n, 11);
    assert_memory_equal(out, "hello world", 11);
    assert_int_equal(chunked_all("5\rhello\r\n0\r\n\r\n", out, &n), ET_EPARSE);
    assert_int_equal(chunked_all("5\nhello\r\n0\r\n\r\n", out, &n), ET_EPARSE);
    assert_int_equal(chunked_all("5;a\rb\r\nhello\r\n0\r\n\r\n", out, &n), ET_EPARSE);
    assert_int_equal(chunked_all("5 \r\nhello\r\n0\r\n\r\n", out, &n), ET_EPARSE);
    assert_int_equal(chunked_all("5\r\nhelloX\r\n0\r\n\r\n", out, &n), ET_EPARSE);
    assert_int_equal(chunked_all("-5\r\nhello\r\n0\r\n\r\n", out, &n), ET_EPARSE);
    assert_int_equal(chunked_all("fffffffffffffffff\r\n", out, &n), ET_EPARSE);
    assert_int_equal(chunked_all("0\r\n\rZ\r\n", out, &n), ET_EPARSE);
}

static void test_policy_helpers(void **state)
{
    (void)state;
    struct et__cidr c;
    struct sockaddr_in a = {.sin_family = AF_INET};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    assert_int_equal(et__cidr_parse("10.0.0.0/8", &c), 0);
    inet_pton(AF_INET, "10.9.8.7", &a.sin_addr);
    assert_true(et__cidr_match(&c, (struct sockaddr *)&a));
    inet_pton(AF_INET, "11.0.0.1", &a.sin_addr);
    assert_false(et__cidr_match(&c, (struct sockaddr *)&a));
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &a6.sin6_addr);
    assert_true(et__cidr_match(&c, (struct sockaddr *)&a6));
    assert_int_equal(et__cidr_parse("10.0.0.0/33", &c), ET_EINVAL);
    assert_int_equal(et__cidr_parse("nope", &c), ET_EINVAL);
    inet_pton(AF_INET, "127.0.0.5", &a.sin_addr);
    assert_true(et__addr_is_special((struct sockaddr *)&a));
    inet_pton(AF_INET, "169.254.1.1", &a.sin_addr);
    assert_true(et__addr_is_special((struct sockaddr *)&a));
    inet_pton(AF_INET, "0.0.0.0", &a.sin_addr);
    assert_true(et__addr_is_special((struct sockaddr *)&a));
    inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
    assert_false(et__addr_is_special((struct sockaddr *)&a));
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &a6.sin6_addr);
    assert_true(et__addr_is_special((struct sockaddr *)&a6));
    inet_pton(AF_INET6, "fe80::1", &a6.sin6_addr);
    assert_true(et__addr_is_special((struct sockaddr *)&a6));
    assert_true(et__glob_match("*.contoso.com", "mail.CONTOSO.com"));
    assert_false(et__glob_match("*.contoso.com", "contoso.com.evil"));
    assert_true(et__glob_match("mail?.x", "mail1.x"));
    assert_true(et__host_valid("mail.contoso.com"));
    assert_false(et__host_valid("a b"));
    assert_false(et__host_valid("a/b"));
}

/* ------------------------------------------------------------------ end to end */

static void test_get_through_interception(void **state)
{
    struct tproxy *t = *state;
    char *out = run(CURL "--cacert %s -w '|%%{http_code}' https://localhost:%d/echo",
                    et_proxy_port(t->p), fx("mitm-ca.pem"), g_tls->port);
    assert_string_equal(out, "|200");
    free(out);
    assert_int_equal(wait_exchanges(t, 1), 1);
    struct et_exchange *x = last_exchange(t);
    assert_int_equal(x->err.code, 0);
    assert_string_equal(x->req.method, "GET");
    assert_string_equal(x->req.target, "/echo");
    assert_string_equal(x->host, "localhost");
    assert_int_equal(x->port, g_tls->port);
    assert_int_equal(x->resp.status, 200);
    assert_true(x->tls.present);
    assert_true(x->tls.intercepted);
    assert_false(x->tls.insecure);
    assert_string_equal(x->tls.sni, "localhost");
    assert_non_null(x->tls.upstream_subject);
    assert_non_null(strstr(x->tls.upstream_subject, "localhost"));
    assert_non_null(strstr(x->tls.upstream_issuer, "eastrace test origin CA"));
    assert_non_null(x->tls.upstream_sha256);
    assert_string_equal(x->tls.alpn, "http/1.1");
    assert_true(x->t.resp_end >= x->t.req_begin);
    assert_string_equal(et_headers_get(&x->resp.headers, "Content-Type"),
                        "application/vnd.ms-sync.wbxml");
}

static void test_post_wbxml_body(void **state)
{
    struct tproxy *t = *state;
    char dir[256], in[300], outp[300];
    assert_non_null(et_test_tmpdir(dir, sizeof(dir)));
    snprintf(in, sizeof(in), "%s/req.wbxml", dir);
    snprintf(outp, sizeof(outp), "%s/resp.wbxml", dir);
    /* A FolderSync request in WBXML: binary, with NUL bytes. */
    static const uint8_t wb[] = {0x03, 0x01, 0x6a, 0x00, 0x00, 0x07, 0x56, 0x52, 0x03, 0x30,
                                 0x00, 0x01, 0x01};
    FILE *f = fopen(in, "wb");
    fwrite(wb, 1, sizeof(wb), f);
    fclose(f);
    char *out = run(CURL "--cacert %s -o %s -w '%%{http_code}' -H 'Content-Type: "
                         "application/vnd.ms-sync.wbxml' -H 'MS-ASProtocolVersion: 16.1' "
                         "--data-binary @%s 'https://localhost:%d/echo?Cmd=FolderSync&User=u"
                         "&DeviceId=d&DeviceType=iPhone'",
                    et_proxy_port(t->p), fx("mitm-ca.pem"), outp, in, g_tls->port);
    assert_string_equal(out, "200");
    free(out);
    size_t n;
    unsigned char *got = et_test_read_file(outp, &n);
    assert_int_equal(n, sizeof(wb));
    assert_memory_equal(got, wb, sizeof(wb));
    free(got);
    assert_int_equal(wait_exchanges(t, 1), 1);
    struct et_exchange *x = last_exchange(t);
    assert_string_equal(x->req.method, "POST");
    assert_int_equal(x->req.body.len, sizeof(wb));
    assert_memory_equal(x->req.body.data, wb, sizeof(wb));
    assert_int_equal(x->resp.body.len, sizeof(wb));
    assert_false(x->req.body.truncated);
    assert_string_equal(et_headers_get(&x->req.headers, "MS-ASProtocolVersion"), "16.1");
    et_test_rmtree(dir);
}

static void test_chunked_both_ways(void **state)
{
    struct tproxy *t = *state;
    char *out = run("printf 'chunky request body' | " CURL "--cacert %s -H 'Transfer-Encoding: "
                    "chunked' --data-binary @- https://localhost:%d/echo",
                    et_proxy_port(t->p), fx("mitm-ca.pem"), g_tls->port);
    assert_string_equal(out, "chunky request body");
    free(out);
    out = run(CURL "--cacert %s https://localhost:%d/chunked", et_proxy_port(t->p),
              fx("mitm-ca.pem"), g_tls->port);
    assert_string_equal(out, "hello chunked world");
    free(out);
    assert_int_equal(wait_exchanges(t, 2), 2);
    struct et_exchange *a = t->x[0], *b = t->x[1];
    assert_int_equal(a->req.body.len, 19);
    assert_memory_equal(a->req.body.data, "chunky request body", 19);
    assert_int_equal(b->resp.body.len, 19);
    assert_memory_equal(b->resp.body.data, "hello chunked world", 19);
    assert_string_equal(et_headers_get(&b->resp.headers, "Transfer-Encoding"), "chunked");
}

static void test_gzip_passthrough(void **state)
{
    struct tproxy *t = *state;
    char dir[256], outp[300];
    assert_non_null(et_test_tmpdir(dir, sizeof(dir)));
    snprintf(outp, sizeof(outp), "%s/body.gz", dir);
    char *out = run(CURL "--cacert %s -o %s -w '%%{http_code}' https://localhost:%d/gzip",
                    et_proxy_port(t->p), fx("mitm-ca.pem"), outp, g_tls->port);
    assert_string_equal(out, "200");
    free(out);
    size_t n;
    unsigned char *got = et_test_read_file(outp, &n);
    assert_int_equal(n, gz_len);
    assert_memory_equal(got, gz_body, gz_len);
    free(got);
    assert_int_equal(wait_exchanges(t, 1), 1);
    struct et_exchange *x = last_exchange(t);
    assert_string_equal(et_headers_get(&x->resp.headers, "Content-Encoding"), "gzip");
    assert_int_equal(x->resp.body.len, gz_len);
    assert_memory_equal(x->resp.body.data, gz_body, gz_len);
    et_test_rmtree(dir);
}

static void test_keepalive_reuses_both_legs(void **state)
{
    struct tproxy *t = *state;
    int conns_before = atomic_load(&g_tls->conns);
    char *out = run(CURL "--cacert %s https://localhost:%d/echo -d one --next "
                         "-x http://127.0.0.1:%d --cacert %s https://localhost:%d/echo -d two",
                    et_proxy_port(t->p), fx("mitm-ca.pem"), g_tls->port, et_proxy_port(t->p),
                    fx("mitm-ca.pem"), g_tls->port);
    assert_string_equal(out, "onetwo");
    free(out);
    assert_int_equal(wait_exchanges(t, 2), 2);
    struct et_proxy_stats st;
    et_proxy_get_stats(t->p, &st);
    assert_int_equal(st.connections, 1); /* one client connection */
    assert_int_equal(atomic_load(&g_tls->conns) - conns_before, 1); /* one upstream */
    assert_int_equal(st.exchanges, 2);
}

static void test_expect_100_continue(void **state)
{
    struct tproxy *t = *state;
    char *out = run("head -c 3000 /dev/zero | tr '\\0' 'e' | " CURL "--cacert %s -H 'Expect: "
                    "100-continue' --data-binary @- -o /dev/null -w '%%{http_code}' "
                    "-D - https://localhost:%d/echo | grep -c '100 Continue'",
                    et_proxy_port(t->p), fx("mitm-ca.pem"), g_tls->port);
    assert_string_equal(out, "1\n");
    free(out);
    assert_int_equal(wait_exchanges(t, 1), 1);
    struct et_exchange *x = last_exchange(t);
    assert_int_equal(x->resp.status, 200);
    assert_int_equal(x->req.body.len, 3000);
    assert_int_equal(x->resp.body.len, 3000);
}

static void test_long_poll_held_past_idle_and_header_timeouts(void **state)
{
    (void)state;
    struct et_proxy_opts o;
    default_opts(&o);
    /* Scaled by 1/1000: idle 120 ms, header 30 ms, connect 30 ms, long-poll 3.66 s. */
    o.timeout_hook = scale_1000;
    struct tproxy *t = tproxy_start(&o);
    /* A Ping held 1.5 s ("1500 s" unscaled): far past the idle and header deadlines. */
    char *out = run(CURL "--cacert %s -w '|%%{http_code}' -d '' "
                         "'https://localhost:%d/hold?Cmd=Ping&ms=1500'",
                    et_proxy_port(t->p), fx("mitm-ca.pem"), g_tls->port);
    assert_string_equal(out, "held|200");
    free(out);
    assert_int_equal(wait_exchanges(t, 1), 1);
    struct et_exchange *x = last_exchange(t);
    assert_int_equal(x->err.code, 0);
    assert_true(et_exchange_duration_us(x) >= 1400000);
    /* Past the ceiling ("3660 s"): 504 and a timeout recorded. */
    out = run(CURL "--cacert %s -w '|%%{http_code}' -o /dev/null "
                   "'https://localhost:%d/hold?Cmd=Ping&ms=5000'",
              et_proxy_port(t->p), fx("mitm-ca.pem"), g_tls->port);
    assert_string_equal(out, "|504");
    free(out);
    assert_int_equal(wait_exchanges(t, 2), 2);
    x = last_exchange(t);
    assert_int_equal(x->err.code, ET_ETIMEDOUT);
    assert_int_equal(x->err.stage, ET_STAGE_RESPONSE);
    tproxy_stop(t);
}

static void test_slow_header_sender_is_cut(void **state)
{
    (void)state;
    struct et_proxy_opts o;
    default_opts(&o);
    o.timeout_hook = scale_1000;
    struct tproxy *t = tproxy_start(&o);
    static const char partial[] = "GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n";
    char *got = raw_exchange(et_proxy_port(t->p), partial, sizeof(partial) - 1);
    assert_memory_equal(got, "HTTP/1.1 408", 12);
    free(got);
    assert_int_equal(wait_exchanges(t, 1), 1);
    assert_int_equal(last_exchange(t)->err.code, ET_ETIMEDOUT);
    assert_int_equal(last_exchange(t)->err.stage, ET_STAGE_REQUEST);
    tproxy_stop(t);
}

static void check_upstream_cert_rejected(struct tproxy *t, int port, const char *why)
{
    char *out = run(CURL "--cacert %s -w '|%%{http_code}' -o /dev/null https://localhost:%d/echo",
                    et_proxy_port(t->p), fx("mitm-ca.pem"), port);
    assert_string_equal(out, "|502");
    free(out);
    assert_int_equal(wait_exchanges(t, 1), 1);
    struct et_exchange *x = last_exchange(t);
    assert_int_equal(x->err.code, ET_ECERT);
    assert_int_equal(x->err.stage, ET_STAGE_UPSTREAM_TLS);
    if (strstr(x->err.message, why) == NULL)
        fail_msg("message '%s' lacks '%s'", x->err.message, why);
    assert_int_equal(x->resp.status, 502);
}

static void test_upstream_expired_cert_gives_502(void **state)
{
    check_upstream_cert_rejected(*state, g_expired->port, "expired");
}

static void test_upstream_wrong_name_gives_502(void **state)
{
    check_upstream_cert_rejected(*state, g_wrongname->port, "mismatch");
}

/* --insecure-upstream PATTERN against the wrong-name origin: the exchange goes through and is
 * marked tls.insecure. */
static void check_insecure_marks(const char *pattern)
{
    struct et_proxy_opts o;
    const char *ins[] = {pattern};
    default_opts(&o);
    o.insecure_upstream = ins;
    o.n_insecure_upstream = 1;
    struct tproxy *t = tproxy_start(&o);
    char *out = run(CURL "--cacert %s -w '|%%{http_code}' -o /dev/null https://localhost:%d/echo",
                    et_proxy_port(t->p), fx("mitm-ca.pem"), g_wrongname->port);
    assert_string_equal(out, "|200");
    free(out);
    assert_int_equal(wait_exchanges(t, 1), 1);
    assert_int_equal(last_exchange(t)->err.code, 0);
    assert_true(last_exchange(t)->tls.insecure);
    tproxy_stop(t);
}

static void test_insecure_upstream_marks_sessions(void **state)
{
    (void)state;
    check_insecure_marks("localhost");
}

/* A glob switches verification off just as an exact name does, and the recorded fact says so
 * too (it used to be set on an exact match only). */
static void test_insecure_upstream_glob_marks_sessions(void **state)
{
    (void)state;
    check_insecure_marks("local*");
}

static void test_unreachable_origin_gives_502(void **state)
{
    struct tproxy *t = *state;
    int port;
    int fd = listen_loopback(&port);
    close(fd); /* nothing listens there now */
    char *out = run(CURL "--cacert %s -w '|%%{http_code}' -o /dev/null https://localhost:%d/",
                    et_proxy_port(t->p), fx("mitm-ca.pem"), port);
    assert_string_equal(out, "|502");
    free(out);
    assert_int_equal(wait_exchanges(t, 1), 1);
    struct et_exchange *x = last_exchange(t);
    assert_int_equal(x->err.code, ET_ECONNREFUSED);
    assert_int_equal(x->err.stage, ET_STAGE_UPSTREAM_CONNECT);
    /* Plain HTTP too. */
    out = run(CURL "-w '|%%{http_code}' -o /dev/null http://127.0.0.1:%d/", et_proxy_port(t->p),
              port);
    assert_string_equal(out, "|502");
    free(out);
    assert_int_equal(wait_exchanges(t, 2), 2);
    assert_int_equal(last_exchange(t)->err.code, ET_ECONNREFUSED);
}

static void test_unknown_host_gives_502_dns(void **state)
{
    struct tproxy *t = *state;
    char *out = run(CURL "-w '|%%{http_code}' -o /dev/null http://no-such-host.invalid/",
                    et_proxy_port(t->p));
    assert_string_equal(out, "|502");
    free(out);
    assert_int_equal(wait_exchanges(t, 1), 1);
    assert_int_equal(last_exchange(t)->err.code, ET_EDNS);
    assert_int_equal(last_exchange(t)->err.stage, ET_STAGE_DNS);
}

static void check_smuggling_refused(struct tproxy *t, const char *fmt)
{
    char req[70000 + 512];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    int n = snprintf(req, sizeof(req), fmt, g_plain->port, g_plain->port);
#pragma GCC diagnostic pop
    int heads = atomic_load(&g_plain->heads), reqs = atomic_load(&g_plain->requests);
    size_t before = wait_exchanges(t, 0);
    char *got = raw_exchange(et_proxy_port(t->p), req, (size_t)n);
    if (strncmp(got, "HTTP/1.1 400", 12) != 0)
        fail_msg("payload %s: got '%.60s'", fmt, got);
    free(got);
    assert_int_equal(wait_exchanges(t, before + 1), before + 1);
    struct et_exchange *x = last_exchange(t);
    assert_int_equal(x->err.stage, ET_STAGE_REQUEST);
    assert_true(x->err.code == ET_EPARSE || x->err.code == ET_ETOOBIG);
    usleep(50000);
    assert_int_equal(atomic_load(&g_plain->requests), reqs);
    if (strstr(fmt, "chunked\r\n\r\n") == NULL) /* body errors come after a valid head */
        assert_int_equal(atomic_load(&g_plain->heads), heads);
}

static void test_smuggling_payloads_get_400_and_reach_nobody(void **state)
{
    struct tproxy *t = *state;
    static const char *const payloads[] = {
        "GET http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\rZGET /x HTTP/1.1\r\n\r\n",
        "GET http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\rX: y\r\n\r\n",
        "GET http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n: empty\r\n\r\n",
        "GET http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX: a\r\n folded\r\n\r\n",
        "POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 3\r\n"
        "Content-Length: 3\r\n\r\nabc",
        "POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 3\r\n"
        "Content-Length: 4\r\n\r\nabcd",
        "POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 3\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        "Transfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3\rabc\r\n0\r\n\r\n",
        "POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3;x\ny\r\nabc\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < ET_ARRAY_SIZE(payloads); i++)
        check_smuggling_refused(t, payloads[i]);
    /* Too many fields and too large a section. */
    static char big[70000 + 256];
    int n = snprintf(big, sizeof(big), "GET http://127.0.0.1:%%d/echo HTTP/1.1\r\nHost: "
                     "127.0.0.1:%%d\r\n");
    for (int i = 0; i < 101; i++)
        n += snprintf(big + n, sizeof(big) - (size_t)n, "X-F%d: v\r\n", i);
    snprintf(big + n, sizeof(big) - (size_t)n, "\r\n");
    check_smuggling_refused(t, big);
    n = snprintf(big, sizeof(big), "GET http://127.0.0.1:%%d/echo HTTP/1.1\r\nHost: "
                 "127.0.0.1:%%d\r\nX-Big: ");
    memset(big + n, 'a', 66000);
    snprintf(big + n + 66000, sizeof(big) - (size_t)n - 66000, "\r\n\r\n");
    check_smuggling_refused(t, big);
}

static void test_malformed_response_gives_502(void **state)
{
    struct tproxy *t = *state;
    char *out = run(CURL "--cacert %s -w '|%%{http_code}' -o /dev/null https://localhost:%d/badresp",
                    et_proxy_port(t->p), fx("mitm-ca.pem"), g_tls->port);
    assert_string_equal(out, "|502");
    free(out);
    assert_int_equal(wait_exchanges(t, 1), 1);
    struct et_exchange *x = last_exchange(t);
    assert_int_equal(x->err.code, ET_EPARSE);
    assert_int_equal(x->err.stage, ET_STAGE_RESPONSE);
}

static void test_bad_chunk_framing_in_response_is_an_error(void **state)
{
    struct tproxy *t = *state;
    char *out = run(CURL "--cacert %s -o /dev/null https://localhost:%d/badchunk 2>&1; echo rc=$?",
                    et_proxy_port(t->p), fx("mitm-ca.pem"), g_tls->port);
    assert_null(strstr(out, "rc=0")); /* the phone sees a cut response, never a smuggled one */
    free(out);
    assert_int_equal(wait_exchanges(t, 1), 1);
    struct et_exchange *x = last_exchange(t);
    assert_int_equal(x->err.code, ET_EPARSE);
    assert_int_equal(x->err.stage, ET_STAGE_RESPONSE);
}

static void test_plain_keepalive_switches_upstream(void **state)
{
    struct tproxy *t = *state;
    int c1 = atomic_load(&g_plain->conns), c2 = atomic_load(&g_plain2->conns);
    char *out = run(CURL "http://127.0.0.1:%d/echo -d one --next -x http://127.0.0.1:%d "
                         "http://127.0.0.1:%d/echo -d two --next -x http://127.0.0.1:%d "
                         "http://127.0.0.1:%d/echo -d three",
                    et_proxy_port(t->p), g_plain->port, et_proxy_port(t->p), g_plain2->port,
                    et_proxy_port(t->p), g_plain2->port);
    assert_string_equal(out, "onetwothree");
    free(out);
    assert_int_equal(wait_exchanges(t, 3), 3);
    struct et_proxy_stats st;
    et_proxy_get_stats(t->p, &st);
    assert_int_equal(st.connections, 1);
    assert_int_equal(atomic_load(&g_plain->conns) - c1, 1);
    assert_int_equal(atomic_load(&g_plain2->conns) - c2, 1); /* reused for the third */
    char want[64];
    snprintf(want, sizeof(want), "http://127.0.0.1:%d/echo", g_plain2->port);
    assert_string_equal(t->x[2]->req.target, want);
    assert_string_equal(t->x[2]->scheme, "http");
}

static void test_close_delimited_response_is_rechunked(void **state)
{
    struct tproxy *t = *state;
    char *out = run(CURL "-w '|%%{http_code}' http://127.0.0.1:%d/eof", et_proxy_port(t->p),
                    g_plain->port);
    assert_string_equal(out, "until close|200");
    free(out);
    assert_int_equal(wait_exchanges(t, 1), 1);
    struct et_exchange *x = last_exchange(t);
    assert_int_equal(x->err.code, 0);
    assert_int_equal(x->resp.body.len, 11);
    assert_string_equal(x->scheme, "http");
}

static void test_open_proxy_refused(void **state)
{
    (void)state;
    struct et_proxy_opts o;
    default_opts(&o);
    o.allow_target = NULL;
    o.n_allow_target = 0;
    struct tproxy *t = tproxy_start(&o);
    int reqs = atomic_load(&g_plain->requests), conns = atomic_load(&g_tls->conns);
    char *out = run(CURL "-w '|%%{http_code}' -o /dev/null http://127.0.0.1:%d/echo",
                    et_proxy_port(t->p), g_plain->port);
    assert_string_equal(out, "|403");
    free(out);
    /* By name: localhost resolves to loopback, which is checked after resolution. */
    out = run(CURL "-w '|%%{http_code}' -o /dev/null --cacert %s https://localhost:%d/echo 2>&1",
              et_proxy_port(t->p), fx("mitm-ca.pem"), g_tls->port);
    assert_non_null(strstr(out, "403"));
    free(out);
    assert_int_equal(wait_exchanges(t, 2), 2);
    assert_int_equal(t->x[0]->err.code, ET_EDENIED);
    assert_int_equal(t->x[1]->err.code, ET_EDENIED);
    assert_string_equal(t->x[1]->req.method, "CONNECT");
    assert_int_equal(atomic_load(&g_plain->requests), reqs);
    assert_int_equal(atomic_load(&g_tls->conns), conns);
    tproxy_stop(t);
}

static long vm_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t fl = strlen(field);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, field, fl) == 0)
            v = strtol(line + fl + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static void test_large_body_streams_with_bounded_memory(void **state)
{
    struct tproxy *t = *state;
    char dir[256], in[300];
    assert_non_null(et_test_tmpdir(dir, sizeof(dir)));
    snprintf(in, sizeof(in), "%s/big.bin", dir);
    int fd = open(in, O_CREAT | O_WRONLY, 0600);
    assert_int_equal(ftruncate(fd, 100 << 20), 0);
    close(fd);
    long before = vm_kb("VmRSS:");
    char *out = run(CURL "--cacert %s -X POST -T %s -w '|%%{http_code}' "
                         "https://localhost:%d/count",
                    et_proxy_port(t->p), fx("mitm-ca.pem"), in, g_tls->port);
    assert_string_equal(out, "104857600|200");
    free(out);
    long peak = vm_kb("VmHWM:");
    print_message("RSS before %ld KiB, peak %ld KiB\n", before, peak);
    /* The origin thread and the proxy share this process: neither may hold the body.
     * (ASan's shadow memory and quarantine make RSS meaningless there.) */
#if !defined(__SANITIZE_ADDRESS__)
    assert_true(peak - before < 40 * 1024);
#endif
    assert_int_equal(wait_exchanges(t, 1), 1);
    struct et_exchange *x = last_exchange(t);
    assert_int_equal(x->err.code, 0);
    assert_true(x->req.body.truncated);
    assert_int_equal(x->req.body.len, 1 << 20);
    assert_int_equal(x->req.body.wire_len, 100 << 20);
    et_test_rmtree(dir);
}

static void test_large_response_through_interception(void **state)
{
    struct tproxy *t = *state;
    /* 3 MB in 7000-byte writes: decrypted records outgrow one input chunk many times. */
    char *out = run(CURL "--cacert %s -o /dev/null -w '%%{size_download}|%%{http_code}' "
                         "'https://localhost:%d/big?n=3000000'",
                    et_proxy_port(t->p), fx("mitm-ca.pem"), g_tls->port);
    assert_string_equal(out, "3000000|200");
    free(out);
    assert_int_equal(wait_exchanges(t, 1), 1);
    struct et_exchange *x = last_exchange(t);
    assert_int_equal(x->err.code, 0);
    assert_int_equal(x->resp.body.wire_len, 3000000);
    assert_int_equal(x->resp.body.len, 1 << 20);
    assert_true(x->resp.body.truncated);
}

static void test_install_page_and_ca_downloads(void **state)
{
    struct tproxy *t = *state;
    char *out = run(CURL "-w '|%%{http_code}|%%{content_type}' -o /dev/null http://eastrace.cert/",
                    et_proxy_port(t->p));
    assert_non_null(strstr(out, "|200|text/html"));
    free(out);
    out = run(CURL "http://eastrace.cert/ca.pem", et_proxy_port(t->p));
    size_t n;
    unsigned char *pem = et_test_read_file(fx("mitm-ca.pem"), &n);
    assert_non_null(strstr(out, "BEGIN CERTIFICATE"));
    assert_memory_equal(out, pem, 27);
    free(pem);
    free(out);
    out = run(CURL "-w '%%{content_type}' -o /dev/null http://eastrace.cert/eastrace.mobileconfig",
              et_proxy_port(t->p));
    assert_string_equal(out, "application/x-apple-aspen-config");
    free(out);
    /* Absolute-form to the proxy's own address (a phone with the proxy set browsing to it). */
    out = run(CURL "-w '|%%{http_code}' -o /dev/null http://127.0.0.1:%d/ca.crt",
              et_proxy_port(t->p), et_proxy_port(t->p));
    assert_string_equal(out, "|200");
    free(out);
    /* Origin-form to the proxy's own address. */
    out = run("curl -sS -w '|%%{http_code}' -o /dev/null http://127.0.0.1:%d/",
              et_proxy_port(t->p));
    assert_string_equal(out, "|200");
    free(out);
    assert_int_equal(wait_exchanges(t, 5), 5);
}

static void test_pinned_host_is_tunnelled_afterwards(void **state)
{
    struct tproxy *t = *state;
    /* The "phone" does not trust our CA: its handshake fails with an alert. */
    char *out = run(CURL "--cacert %s -o /dev/null https://localhost:%d/echo 2>&1; echo rc=$?",
                    et_proxy_port(t->p), fx("origin-ca.pem"), g_tls->port);
    assert_null(strstr(out, "rc=0"));
    free(out);
    assert_int_equal(wait_exchanges(t, 1), 1);
    struct et_exchange *x = last_exchange(t);
    assert_int_equal(x->err.stage, ET_STAGE_CLIENT_TLS);
    /* Now the same host passes untouched: the origin's own certificate reaches the client. */
    out = run(CURL "--cacert %s https://localhost:%d/echo -d pinned", et_proxy_port(t->p),
              fx("origin-ca.pem"), g_tls->port);
    assert_string_equal(out, "pinned");
    free(out);
    assert_int_equal(wait_exchanges(t, 2), 2);
    x = last_exchange(t);
    if (x->err.code != 0)
        print_message("tunnel: %s (%s)\n", x->err.message, et_stage_name(x->err.stage));
    assert_int_equal(x->err.code, 0);
    assert_string_equal(x->req.method, "CONNECT");
    assert_false(x->tls.intercepted);
    assert_true(x->req.body.wire_len > 100);
    assert_true(x->resp.body.wire_len > 100);
}

static void test_intercept_pattern_tunnels_other_hosts(void **state)
{
    (void)state;
    struct et_proxy_opts o;
    static const char *const pat[] = {"*.contoso.example"};
    default_opts(&o);
    o.intercept = pat;
    o.n_intercept = 1;
    struct tproxy *t = tproxy_start(&o);
    char *out = run(CURL "--cacert %s https://localhost:%d/echo -d tunnelled",
                    et_proxy_port(t->p), fx("origin-ca.pem"), g_tls->port);
    assert_string_equal(out, "tunnelled");
    free(out);
    assert_int_equal(wait_exchanges(t, 1), 1);
    struct et_exchange *x = last_exchange(t);
    assert_string_equal(x->req.method, "CONNECT");
    assert_false(x->tls.intercepted);
    struct et_proxy_stats st;
    et_proxy_get_stats(t->p, &st);
    assert_int_equal(st.tunnels, 1);
    tproxy_stop(t);
}

/* ------------------------------------------------------------------ the worker thread */

struct wstate {
    pthread_t loop_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int gate_open;          /* the worker blocks on its first exchange until this is set */
    atomic_int on_loop;     /* on_exchange calls, each on the loop thread */
    atomic_int loop_wrong;  /* on_exchange calls on another thread */
    atomic_int got;         /* exchanges the worker received */
    atomic_int idle;        /* x == NULL calls */
    atomic_int wrong;       /* worker calls on the loop thread, or out of order */
    uint64_t last_id;
};

static void w_on_exchange(struct et_exchange *x, void *ud)
{
    struct wstate *w = ud;
    (void)x; /* borrowed: the worker frees it */
    if (!pthread_equal(pthread_self(), w->loop_thread))
        atomic_fetch_add(&w->loop_wrong, 1);
    atomic_fetch_add(&w->on_loop, 1);
}

static void w_on_worker(struct et_exchange *x, void *ud)
{
    struct wstate *w = ud;
    if (pthread_equal(pthread_self(), w->loop_thread))
        atomic_fetch_add(&w->wrong, 1);
    if (x == NULL) {
        atomic_fetch_add(&w->idle, 1);
        return;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->gate_open)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    if (x->id <= w->last_id)
        atomic_fetch_add(&w->wrong, 1);
    w->last_id = x->id;
    atomic_fetch_add(&w->got, 1);
    et_exchange_free(x);
}

/* A worker that falls behind pauses new requests (nothing dropped, the loop never waits),
 * gets every exchange in order on its own thread, and et_proxy_run() returns only after it
 * has drained the queue. */
static void test_worker_gets_every_exchange_in_order_and_pauses_reads(void **state)
{
    (void)state;
    enum { N = 1100 };
    struct wstate w;
    struct et_proxy_opts o;
    struct et_proxy *p = NULL;
    struct et_error e;
    memset(&w, 0, sizeof(w));
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    default_opts(&o);
    o.on_exchange = w_on_exchange;
    o.ud = &w;
    o.on_exchange_worker = w_on_worker;
    o.worker_ud = &w;
    et_error_clear(&e);
    assert_int_equal(et_proxy_new(&o, &p, &e), 0);
    pthread_t th;
    struct tproxy t = {.p = p};
    pthread_create(&th, NULL, proxy_main, &t);
    w.loop_thread = th;
    /* One keep-alive connection, N requests (curl's URL globbing), in the background. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "curl -sS --max-time 60 -x http://127.0.0.1:%d 'http://127.0.0.1:%d/count?[1-%d]' "
             ">/dev/null 2>&1 &",
             et_proxy_port(p), g_plain->port, N);
    assert_int_equal(system(cmd), 0);
    /* The worker is blocked: the queue fills to its high mark, then reading stops. */
    int seen = -1;
    for (int i = 0; i < 200 && seen != atomic_load(&w.on_loop); i++) {
        seen = atomic_load(&w.on_loop);
        usleep(50 * 1000);
        if (seen < 1024)
            seen = -1; /* still filling */
    }
    struct et_proxy_stats st;
    et_proxy_get_stats(p, &st);
    if (st.worker_pauses != 1)
        print_message("on_exchange %d, exchanges %llu\n", atomic_load(&w.on_loop),
                      (unsigned long long)st.exchanges);
    assert_int_equal(st.worker_pauses, 1);
    int stalled = atomic_load(&w.on_loop);
    assert_true(stalled >= 1024 && stalled < N);
    usleep(300 * 1000);
    assert_int_equal(atomic_load(&w.on_loop), stalled); /* no new request while paused */
    assert_int_equal(atomic_load(&w.got), 0);
    /* Open the gate: the worker drains, reading resumes, every exchange arrives. */
    pthread_mutex_lock(&w.mu);
    w.gate_open = 1;
    pthread_cond_broadcast(&w.cv);
    pthread_mutex_unlock(&w.mu);
    for (int i = 0; i < 400 && atomic_load(&w.on_loop) < N; i++)
        usleep(50 * 1000);
    assert_int_equal(atomic_load(&w.on_loop), N);
    et_proxy_stop(p);
    pthread_join(th, NULL);
    /* et_proxy_run returned: the worker has had everything. */
    assert_int_equal(atomic_load(&w.got), N);
    assert_true(atomic_load(&w.idle) >= 1);
    assert_int_equal(atomic_load(&w.wrong), 0);
    assert_int_equal(atomic_load(&w.loop_wrong), 0);
    et_proxy_free(p);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_scan_accepts_plain_requests),
        cmocka_unit_test(test_head_scan_rejects_smuggling_payloads),
        cmocka_unit_test(test_chunked_decoder_strict),
        cmocka_unit_test(test_policy_helpers),
        cmocka_unit_test_setup_teardown(test_get_through_interception, setup_proxy, teardown_proxy),
        cmocka_unit_test_setup_teardown(test_post_wbxml_body, setup_proxy, teardown_proxy),
        cmocka_unit_test_setup_teardown(test_chunked_both_ways, setup_proxy, teardown_proxy),
        cmocka_unit_test_setup_teardown(test_gzip_passthrough, setup_proxy, teardown_proxy),
        cmocka_unit_test_setup_teardown(test_keepalive_reuses_both_legs, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test_setup_teardown(test_expect_100_continue, setup_proxy, teardown_proxy),
        cmocka_unit_test(test_long_poll_held_past_idle_and_header_timeouts),
        cmocka_unit_test(test_slow_header_sender_is_cut),
        cmocka_unit_test_setup_teardown(test_upstream_expired_cert_gives_502, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test_setup_teardown(test_upstream_wrong_name_gives_502, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test(test_insecure_upstream_marks_sessions),
        cmocka_unit_test(test_insecure_upstream_glob_marks_sessions),
        cmocka_unit_test_setup_teardown(test_unreachable_origin_gives_502, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test_setup_teardown(test_unknown_host_gives_502_dns, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test_setup_teardown(test_smuggling_payloads_get_400_and_reach_nobody,
                                        setup_proxy, teardown_proxy),
        cmocka_unit_test_setup_teardown(test_malformed_response_gives_502, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test_setup_teardown(test_bad_chunk_framing_in_response_is_an_error,
                                        setup_proxy, teardown_proxy),
        cmocka_unit_test_setup_teardown(test_plain_keepalive_switches_upstream, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test_setup_teardown(test_close_delimited_response_is_rechunked, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test(test_open_proxy_refused),
        cmocka_unit_test(test_worker_gets_every_exchange_in_order_and_pauses_reads),
        cmocka_unit_test_setup_teardown(test_large_body_streams_with_bounded_memory, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test_setup_teardown(test_large_response_through_interception, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test_setup_teardown(test_install_page_and_ca_downloads, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test_setup_teardown(test_pinned_host_is_tunnelled_afterwards, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test(test_intercept_pattern_tunnels_other_hosts),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
