/*
 * Tests of the eastrace capture file (capture/capfile*.c): round trips of every exchange field,
 * appending after reopen, permissions, torn tails at every byte, bit flips, kill -9 during
 * writes, file size limits and allocation failures. Real files in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eastrace/capfile.h"
#include "../capture/capfile_int.h" /* layout constants for crafted records */
#include "et_test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct fixture {
    char dir[256];
    char path[512];
};

static int setup_tmpdir(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || et_test_tmpdir(f->dir, sizeof(f->dir)) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/test.etcap", f->dir);
    *state = f;
    return 0;
}

/* The test directory holds plain files only. (Not et_test_rmtree: gcc -O2 flags its
 * snprintf into a 4096-byte buffer as possibly truncating, which -Werror turns fatal.) */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char sub[4096 + 512];
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
        unlink(sub);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown_tmpdir(void **state)
{
    struct fixture *f = *state;
    et_alloc_fail_after(-1);
    remove_dir(f->dir);
    free(f);
    return 0;
}

/* --- building and comparing exchanges ------------------------------------------------------ */

static void add_header(struct et_headers *h, struct et_arena *a, const char *n, const char *v)
{
    assert_int_equal(et_headers_add(h, a, n, strlen(n), v, strlen(v)), 0);
}

/* Body bytes that include NULs, CR/LF and the capture sync marker itself. */
static void fill_body(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 131 + seed * 7) ^ (i >> 3));
    if (n >= 16)
        memcpy(p + n / 2, CAP_SYNC "\0\0\0\0", 8);
}

/* An exchange with every field set (seed varies the content). */
static struct et_exchange *make_full(uint64_t seed, size_t req_len, size_t resp_len)
{
    struct et_exchange *x = et_exchange_new();
    struct et_arena *a;
    uint8_t *buf;

    assert_non_null(x);
    a = x->arena;
    x->id = seed;
    x->source = ET_SRC_PROXY;
    x->source_name = "proxy";
    x->t.connect = 1714566896000000 + (int64_t)seed;
    x->t.req_begin = x->t.connect + 10;
    x->t.req_end = x->t.connect + 20;
    x->t.resp_begin = x->t.connect + 3000;
    x->t.resp_end = x->t.connect + 4500;
    x->client_addr = "192.0.2.7:51234";
    x->server_addr = "[2001:db8::1]:443";
    x->scheme = "https";
    x->host = "mail.example.com";
    x->port = 443;
    x->tls.present = 1;
    x->tls.intercepted = 1;
    x->tls.insecure = 0;
    x->tls.sni = "mail.example.com";
    x->tls.client_version = "TLSv1.2";
    x->tls.upstream_version = "TLSv1.3";
    x->tls.cipher = "TLS_AES_256_GCM_SHA384";
    x->tls.alpn = "http/1.1";
    x->tls.upstream_subject = "CN=mail.example.com";
    x->tls.upstream_issuer = "CN=Example CA, O=Example";
    x->tls.upstream_not_before = "2024-01-01T00:00:00Z";
    x->tls.upstream_not_after = "2025-01-31T00:00:00Z";
    x->tls.upstream_sha256 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    x->tls.verify_error = "";
    x->has_request = 1;
    x->has_response = 1;
    x->req.method = "POST";
    x->req.target = et_arena_printf(a, "/Microsoft-Server-ActiveSync?Cmd=Sync&User=u%llu"
                                       "&DeviceId=ABC&DeviceType=iPhone",
                                    (unsigned long long)seed);
    x->req.http_major = 1;
    x->req.http_minor = 1;
    add_header(&x->req.headers, a, "Host", "mail.example.com");
    add_header(&x->req.headers, a, "Content-Type", "application/vnd.ms-sync.wbxml");
    add_header(&x->req.headers, a, "MS-ASProtocolVersion", "16.1");
    add_header(&x->req.headers, a, "X-Empty", "");
    buf = et_arena_alloc(a, req_len + 1);
    fill_body(buf, req_len, seed);
    x->req.body.data = req_len ? buf : NULL;
    x->req.body.len = req_len;
    x->req.body.wire_len = req_len;
    x->resp.status = 200;
    x->resp.reason = "OK";
    x->resp.http_major = 1;
    x->resp.http_minor = 1;
    add_header(&x->resp.headers, a, "Content-Type", "application/vnd.ms-sync.wbxml");
    add_header(&x->resp.headers, a, "Set-Cookie", "a=b; path=/");
    buf = et_arena_alloc(a, resp_len + 1);
    fill_body(buf, resp_len, seed + 1);
    x->resp.body.data = resp_len ? buf : NULL;
    x->resp.body.len = resp_len;
    x->resp.body.wire_len = resp_len + 1000; /* as if a cap had cut it */
    x->resp.body.truncated = 1;
    add_header(&x->meta, a, "x-clientip", "192.0.2.7");
    add_header(&x->meta, a, "note", "multi word value");
    return x;
}

#define assert_str_same(a, b)                                                                  \
    do {                                                                                       \
        if ((a) == NULL || (b) == NULL)                                                        \
            assert_ptr_equal((a), (b));                                                        \
        else                                                                                   \
            assert_string_equal((a), (b));                                                     \
    } while (0)

static void assert_headers_same(const struct et_headers *w, const struct et_headers *r,
                                size_t extra)
{
    assert_int_equal(r->n, w->n + extra);
    for (size_t i = 0; i < w->n; i++) {
        assert_string_equal(r->v[i].name, w->v[i].name);
        assert_string_equal(r->v[i].value, w->v[i].value);
    }
}

static void assert_body_same(const struct et_body *w, const struct et_body *r)
{
    assert_int_equal(r->len, w->len);
    assert_int_equal(r->wire_len, w->wire_len > w->len ? w->wire_len : w->len);
    assert_int_equal(r->truncated, w->truncated);
    assert_int_equal(r->absent, w->absent);
    if (w->len)
        assert_memory_equal(r->data, w->data, w->len);
    else
        assert_null(r->data);
}

/* Every field of w (as written) equals r (as read back). */
static void assert_exchange_same(const struct et_exchange *w, const struct et_exchange *r)
{
    char idbuf[32];

    assert_int_equal(r->source, ET_SRC_CAPTURE);
    assert_non_null(r->source_name);
    assert_int_equal(r->t.connect, w->t.connect);
    assert_int_equal(r->t.req_begin, w->t.req_begin);
    assert_int_equal(r->t.req_end, w->t.req_end);
    assert_int_equal(r->t.resp_begin, w->t.resp_begin);
    assert_int_equal(r->t.resp_end, w->t.resp_end);
    assert_str_same(r->client_addr, w->client_addr);
    assert_str_same(r->server_addr, w->server_addr);
    assert_str_same(r->scheme, w->scheme);
    assert_str_same(r->host, w->host);
    assert_int_equal(r->port, w->port);
    assert_int_equal(r->tls.present, w->tls.present);
    assert_int_equal(r->tls.intercepted, w->tls.intercepted);
    assert_int_equal(r->tls.insecure, w->tls.insecure);
    assert_str_same(r->tls.sni, w->tls.sni);
    assert_str_same(r->tls.client_version, w->tls.client_version);
    assert_str_same(r->tls.upstream_version, w->tls.upstream_version);
    assert_str_same(r->tls.cipher, w->tls.cipher);
    assert_str_same(r->tls.alpn, w->tls.alpn);
    assert_str_same(r->tls.upstream_subject, w->tls.upstream_subject);
    assert_str_same(r->tls.upstream_issuer, w->tls.upstream_issuer);
    assert_str_same(r->tls.upstream_not_before, w->tls.upstream_not_before);
    assert_str_same(r->tls.upstream_not_after, w->tls.upstream_not_after);
    assert_str_same(r->tls.upstream_sha256, w->tls.upstream_sha256);
    assert_str_same(r->tls.verify_error, w->tls.verify_error);
    assert_int_equal(r->has_request, w->has_request);
    assert_int_equal(r->has_response, w->has_response);
    assert_str_same(r->req.method, w->req.method);
    assert_str_same(r->req.target, w->req.target);
    assert_int_equal(r->req.http_major, w->req.http_major);
    assert_int_equal(r->req.http_minor, w->req.http_minor);
    assert_headers_same(&w->req.headers, &r->req.headers, 0);
    assert_body_same(&w->req.body, &r->req.body);
    assert_int_equal(r->resp.status, w->resp.status);
    assert_str_same(r->resp.reason, w->resp.reason);
    assert_int_equal(r->resp.http_major, w->resp.http_major);
    assert_int_equal(r->resp.http_minor, w->resp.http_minor);
    assert_headers_same(&w->resp.headers, &r->resp.headers, 0);
    assert_body_same(&w->resp.body, &r->resp.body);
    assert_int_equal(r->err.code, w->err.code);
    assert_int_equal(r->err.stage, w->err.stage);
    assert_str_same(r->err.message, w->err.message);
    /* The producer's source and id come back as the last two meta entries. */
    assert_headers_same(&w->meta, &r->meta, 2);
    assert_string_equal(r->meta.v[w->meta.n].name, ET_CAPFILE_META_ORIGIN);
    assert_string_equal(r->meta.v[w->meta.n].value, et_source_name(w->source));
    assert_string_equal(r->meta.v[w->meta.n + 1].name, ET_CAPFILE_META_ORIGIN_ID);
    snprintf(idbuf, sizeof(idbuf), "%llu", (unsigned long long)w->id);
    assert_string_equal(r->meta.v[w->meta.n + 1].value, idbuf);
}

static uint64_t origin_id(const struct et_exchange *x)
{
    const char *v = et_headers_get(&x->meta, ET_CAPFILE_META_ORIGIN_ID);
    assert_non_null(v);
    return strtoull(v, NULL, 10);
}

static struct et_capfile_writer *open_writer(const char *path)
{
    struct et_capfile_writer *w = NULL;
    struct et_error e;
    int rc;
    et_error_clear(&e);
    rc = et_capfile_open_append(path, NULL, &w, &e);
    if (rc != 0)
        fail_msg("open_append %s: %s", path, e.msg);
    return w;
}

static void write_one(struct et_capfile_writer *w, const struct et_exchange *x)
{
    struct et_error e;
    int rc;
    et_error_clear(&e);
    rc = et_capfile_write(w, x, &e);
    if (rc != 0)
        fail_msg("write: %s", e.msg);
}

static void close_writer(struct et_capfile_writer *w)
{
    struct et_error e;
    et_error_clear(&e);
    assert_int_equal(et_capfile_close(w, &e), 0);
}

static struct et_source *open_reader(const char *path)
{
    struct et_source *s = NULL;
    struct et_error e;
    int rc;
    et_error_clear(&e);
    rc = et_capfile_open(path, &s, &e);
    if (rc != 0)
        fail_msg("open %s: %s", path, e.msg);
    return s;
}

/* Reads a whole source: counts exchanges and reported damage; ids[] gets the origin ids. */
struct readout {
    size_t n;
    size_t nerr;
    uint64_t ids[65536];
    uint64_t err_off[16];
    char first_err[256];
};

static void read_all(struct et_source *s, struct readout *ro)
{
    memset(ro, 0, sizeof(*ro));
    for (int guard = 0; guard < 100000; guard++) {
        struct et_exchange *x = NULL;
        struct et_error e;
        int rc;
        et_error_clear(&e);
        rc = et_source_next(s, &x, &e);
        if (rc == 0)
            return;
        if (rc == 1) {
            if (ro->n < ET_ARRAY_SIZE(ro->ids))
                ro->ids[ro->n] = origin_id(x);
            ro->n++;
            et_exchange_free(x);
            continue;
        }
        assert_int_equal(rc, ET_EPARSE);
        assert_int_equal(e.has_offset, 1);
        if (ro->nerr < ET_ARRAY_SIZE(ro->err_off))
            ro->err_off[ro->nerr] = e.offset;
        if (ro->nerr == 0)
            snprintf(ro->first_err, sizeof(ro->first_err), "%s", e.msg);
        ro->nerr++;
    }
    fail_msg("reader did not reach the end");
}

static void read_file(const char *path, struct readout *ro)
{
    struct et_source *s = open_reader(path);
    read_all(s, ro);
    et_source_close(s);
}

static void read_mem(const uint8_t *p, size_t n, struct readout *ro)
{
    struct et_source *s = NULL;
    struct et_error e;
    et_error_clear(&e);
    assert_int_equal(et_capfile_open_mem(p, n, "mem", NULL, &s, &e), 0);
    read_all(s, ro);
    et_source_close(s);
}

/* A whole file; fails the test when it cannot be read. */
static uint8_t *slurp(const char *path, size_t *n)
{
    uint8_t *p;
    *n = 0;
    p = et_test_read_file(path, n);
    assert_non_null(p);
    return p;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static void write_bytes(const char *path, const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

/* --- tests ------------------------------------------------------------------------------- */

static void test_capfile_round_trip_every_field(void **state)
{
    struct fixture *f = *state;
    struct et_exchange *w[5], *r;
    struct et_capfile_writer *cw;
    struct et_source *s;
    struct et_error e;
    struct stat st;

    w[0] = make_full(1, 3000, 5000);            /* binary bodies, sync bytes inside */
    w[1] = make_full(2, 0, 0);                  /* empty bodies */
    w[2] = make_full(3, 10, 0);
    w[2]->has_response = 0;                     /* an error exchange: no response */
    w[2]->resp.status = 0;
    w[2]->resp.reason = NULL;
    w[2]->resp.body.truncated = 0;
    w[2]->resp.body.wire_len = 0;
    w[2]->tls.verify_error = "certificate has expired";
    w[2]->tls.insecure = 1;
    et_exchange_fail(w[2], ET_ECERT, ET_STAGE_UPSTREAM_TLS,
                     "upstream certificate of mail.example.com: certificate has expired");
    w[3] = et_exchange_new();                   /* nearly empty: NULL strings stay NULL */
    w[3]->id = 4;
    w[3]->source = ET_SRC_PROBE;
    w[3]->req.body.absent = 1;
    w[4] = make_full(5, 1, 1);
    w[4]->port = 65535;
    w[4]->t.connect = -5;                       /* signed times survive */
    w[4]->resp.status = -1;

    cw = open_writer(f->path);
    for (size_t i = 0; i < ET_ARRAY_SIZE(w); i++)
        write_one(cw, w[i]);
    close_writer(cw);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    s = open_reader(f->path);
    assert_string_equal(s->ops->format, "capture");
    for (size_t i = 0; i < ET_ARRAY_SIZE(w); i++) {
        et_error_clear(&e);
        assert_int_equal(et_source_next(s, &r, &e), 1);
        assert_int_equal(r->id, i + 1);
        assert_string_equal(r->source_name, f->path);
        assert_exchange_same(w[i], r);
        et_exchange_free(r);
    }
    assert_int_equal(et_source_next(s, &r, &e), 0);
    assert_int_equal(et_source_next(s, &r, &e), 0); /* stays at the end */
    et_source_close(s);
    for (size_t i = 0; i < ET_ARRAY_SIZE(w); i++)
        et_exchange_free(w[i]);
}

static void test_capfile_body_cap_truncates_and_keeps_wire_len(void **state)
{
    struct fixture *f = *state;
    struct et_capfile_opts o;
    struct et_capfile_writer *cw = NULL;
    struct et_capfile_stats st;
    struct et_exchange *w = make_full(9, 5000, 100), *r;
    struct et_source *s;
    struct et_error e;

    w->resp.body.truncated = 0;
    w->resp.body.wire_len = 100;
    et_capfile_opts_init(&o);
    o.body_cap = 1024;
    o.fsync = ET_CAPFILE_FSYNC_EVERY;
    et_error_clear(&e);
    assert_int_equal(et_capfile_open_append(f->path, &o, &cw, &e), 0);
    write_one(cw, w);
    et_capfile_writer_stats(cw, &st);
    assert_int_equal(st.records, 1);
    assert_int_equal(st.truncated, 1);
    assert_int_equal(st.created, 1);
    assert_int_equal(st.bytes, file_size(f->path));
    close_writer(cw);

    s = open_reader(f->path);
    assert_int_equal(et_source_next(s, &r, &e), 1);
    assert_int_equal(r->req.body.len, 1024);
    assert_int_equal(r->req.body.wire_len, 5000);
    assert_int_equal(r->req.body.truncated, 1);
    assert_memory_equal(r->req.body.data, w->req.body.data, 1024);
    assert_int_equal(r->resp.body.len, 100);
    assert_int_equal(r->resp.body.truncated, 0);
    et_exchange_free(r);
    et_source_close(s);
    et_exchange_free(w);

    /* A cap above the maximum is a caller error. */
    o.body_cap = ET_CAPFILE_MAX_BODY_CAP + 1;
    et_error_clear(&e);
    assert_int_equal(et_capfile_open_append(f->path, &o, &cw, &e), ET_EINVAL);
    assert_null(cw);
}

static void test_capfile_many_records(void **state)
{
    struct fixture *f = *state;
    struct et_capfile_writer *cw = open_writer(f->path);
    static struct readout ro;

    for (uint64_t i = 1; i <= 3000; i++) {
        struct et_exchange *x = make_full(i, (size_t)(i % 700), (size_t)(i * 13 % 2000));
        write_one(cw, x);
        et_exchange_free(x);
    }
    close_writer(cw);
    read_file(f->path, &ro);
    assert_int_equal(ro.nerr, 0);
    assert_int_equal(ro.n, 3000);
    for (uint64_t i = 0; i < 3000; i++)
        assert_int_equal(ro.ids[i], i + 1);
}

/*
 * The proxy's drop-behind: every record still reads back, and the page cache behind the writer
 * is given back. The test syncs before each call (as writeback would have by then), so the
 * windows two behind are clean and must be dropped: of 20 MiB written, the first 8 MiB hold
 * (almost) no cached page afterwards. Skipped on tmpfs, whose pages cannot be dropped.
 */
static void test_capfile_drop_behind_keeps_records_and_frees_cache(void **state)
{
    struct fixture *f = *state;
    struct et_capfile_writer *cw = open_writer(f->path);
    static struct readout ro;
    struct statfs sf;
    struct stat st;
    enum { N = 200, BODY = 100 * 1024, PAGE = 4096 };
    int fd = open(f->path, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(fstatfs(fd, &sf), 0);
    if (sf.f_type == TMPFS_MAGIC) {
        close(fd);
        close_writer(cw);
        skip();
    }
    for (uint64_t i = 1; i <= N; i++) {
        struct et_exchange *x = make_full(i, 100, BODY);
        write_one(cw, x);
        et_exchange_free(x);
        assert_int_equal(fdatasync(fd), 0);
        et_capfile_writer_drop_behind(cw);
    }
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(st.st_size > (off_t)N * BODY);
    uint8_t *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(map != MAP_FAILED);
    size_t head = ((size_t)8 << 20) / PAGE, cached = 0;
    unsigned char *vec = calloc(((size_t)st.st_size + PAGE - 1) / PAGE, 1);
    assert_non_null(vec);
    assert_int_equal(mincore(map, (size_t)st.st_size, vec), 0);
    for (size_t i = 0; i < head; i++)
        cached += vec[i] & 1;
    print_message("drop-behind: %zu of the first %zu pages still cached\n", cached, head);
    assert_true(cached < head / 10);
    free(vec);
    munmap(map, (size_t)st.st_size);
    close(fd);
    close_writer(cw);
    read_file(f->path, &ro);
    assert_int_equal(ro.nerr, 0);
    assert_int_equal(ro.n, N);
    for (uint64_t i = 0; i < N; i++)
        assert_int_equal(ro.ids[i], i + 1);
}

static void test_capfile_reader_follows_writer(void **state)
{
    struct fixture *f = *state;
    struct et_capfile_read_opts ro = {.follow = 1, .max_record = 0};
    struct et_capfile_writer *cw = open_writer(f->path);
    struct et_source *s = NULL;
    struct et_exchange *x, *r;
    struct et_error e;
    char full[600];
    uint8_t *bytes;
    size_t n, cut;
    uint64_t before;

    et_error_clear(&e);
    assert_int_equal(et_capfile_open_ex(f->path, &ro, &s, &e), 0);
    assert_int_equal(et_source_next(s, &r, &e), 0); /* nothing yet */
    for (uint64_t i = 1; i <= 20; i++) {
        x = make_full(i, 100 * i, 50);
        write_one(cw, x);
        et_exchange_free(x);
        if (i % 3 == 0)
            continue; /* sometimes the reader lags behind by several records */
        for (;;) {
            int rc = et_source_next(s, &r, &e);
            assert_true(rc == 0 || rc == 1);
            if (rc == 0)
                break;
            et_exchange_free(r);
        }
    }
    /* A record half written (as seen mid-write): follow mode waits instead of reporting. */
    before = file_size(f->path);
    x = make_full(21, 4000, 10);
    write_one(cw, x);
    et_exchange_free(x);
    close_writer(cw);
    bytes = slurp(f->path, &n);
    assert_non_null(bytes);
    snprintf(full, sizeof(full), "%s.copy", f->path);
    cut = (size_t)before + (n - (size_t)before) / 2;
    write_bytes(full, bytes, cut);
    et_source_close(s);
    s = NULL;
    assert_int_equal(et_capfile_open_ex(full, &ro, &s, &e), 0);
    for (int i = 1; i <= 20; i++) {
        assert_int_equal(et_source_next(s, &r, &e), 1);
        assert_int_equal(origin_id(r), (uint64_t)i);
        et_exchange_free(r);
    }
    assert_int_equal(et_source_next(s, &r, &e), 0);
    assert_int_equal(e.code, 0);
    {
        /* The writer finishes the record: the follower now gets it. */
        int fd = open(full, O_WRONLY | O_APPEND);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, bytes + cut, n - cut), (ssize_t)(n - cut));
        close(fd);
    }
    assert_int_equal(et_source_next(s, &r, &e), 1);
    assert_int_equal(origin_id(r), 21);
    assert_int_equal(r->req.body.len, 4000);
    et_exchange_free(r);
    assert_int_equal(et_source_next(s, &r, &e), 0);
    et_source_close(s);
    free(bytes);
}

static void test_capfile_append_after_reopen(void **state)
{
    struct fixture *f = *state;
    struct et_capfile_writer *cw;
    struct et_capfile_stats st;
    static struct readout ro;

    for (int round = 0; round < 3; round++) {
        cw = open_writer(f->path);
        et_capfile_writer_stats(cw, &st);
        assert_int_equal(st.created, round == 0);
        assert_int_equal(st.tail_was_torn, 0);
        for (int i = 1; i <= 4; i++) {
            struct et_exchange *x = make_full((uint64_t)(round * 10 + i), 200, 300);
            write_one(cw, x);
            et_exchange_free(x);
        }
        close_writer(cw);
    }
    read_file(f->path, &ro);
    assert_int_equal(ro.nerr, 0);
    assert_int_equal(ro.n, 12);
    assert_int_equal(ro.ids[0], 1);
    assert_int_equal(ro.ids[4], 11);
    assert_int_equal(ro.ids[11], 24);
}

static void test_capfile_mode_0600_and_foreign_files(void **state)
{
    struct fixture *f = *state;
    struct et_capfile_writer *cw = NULL;
    struct et_error e;
    struct stat st;
    char other[600];
    const char *text = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    uint8_t *back;
    size_t n;
    mode_t old = umask(0);

    /* Created 0600 even with a permissive umask. */
    cw = open_writer(f->path);
    umask(old);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* A second writer on the same file is refused. */
    {
        struct et_capfile_writer *cw2 = NULL;
        et_error_clear(&e);
        assert_int_equal(et_capfile_open_append(f->path, NULL, &cw2, &e), ET_EEXIST);
        assert_null(cw2);
        assert_non_null(strstr(e.msg, "another process"));
    }
    close_writer(cw);
    /* An existing capture with loose modes is made private on reopen. */
    assert_int_equal(chmod(f->path, 0644), 0);
    cw = open_writer(f->path);
    close_writer(cw);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* Someone else's file is never appended to or changed. */
    snprintf(other, sizeof(other), "%s/notes.txt", f->dir);
    write_bytes(other, (const uint8_t *)text, strlen(text));
    et_error_clear(&e);
    assert_int_equal(et_capfile_open_append(other, NULL, &cw, &e), ET_EPARSE);
    assert_non_null(strstr(e.msg, "not an eastrace capture file"));
    back = slurp(other, &n);
    assert_int_equal(n, strlen(text));
    assert_memory_equal(back, text, n);
    free(back);
    /* Nor is a device. */
    et_error_clear(&e);
    assert_int_equal(et_capfile_open_append("/dev/full", NULL, &cw, &e), ET_EINVAL);
    /* A directory that does not exist: I/O error naming the path. */
    snprintf(other, sizeof(other), "%s/missing/x.etcap", f->dir);
    et_error_clear(&e);
    assert_int_equal(et_capfile_open_append(other, NULL, &cw, &e), ET_EIO);
    assert_non_null(strstr(e.msg, "No such file"));
}

/* A crash while the file header itself was being written leaves a prefix of it and nothing
 * recorded: the writer starts the file again; readers call it an incomplete header. */
static void test_capfile_torn_file_header_is_restarted(void **state)
{
    struct fixture *f = *state;
    struct et_capfile_writer *cw = open_writer(f->path);
    struct et_capfile_stats st;
    struct et_source *s = NULL;
    struct et_error e;
    struct et_exchange *x;
    static struct readout ro;
    uint8_t *bytes;
    size_t n;

    close_writer(cw);
    bytes = slurp(f->path, &n);
    for (size_t len = 1; len < CAP_FILE_HDR_LEN; len += 7) {
        write_bytes(f->path, bytes, len);
        et_error_clear(&e);
        assert_int_equal(et_capfile_open(f->path, &s, &e), ET_ETRUNC);
        cw = open_writer(f->path);
        et_capfile_writer_stats(cw, &st);
        assert_int_equal(st.created, 1);
        x = make_full(len, 10, 10);
        write_one(cw, x);
        et_exchange_free(x);
        close_writer(cw);
        read_file(f->path, &ro);
        assert_int_equal(ro.n, 1);
        assert_int_equal(ro.nerr, 0);
        assert_int_equal(ro.ids[0], len);
    }
    free(bytes);
}

static void test_capfile_reader_rejects_other_files(void **state)
{
    struct fixture *f = *state;
    struct et_source *s = NULL;
    struct et_error e;
    uint8_t hdr[CAP_FILE_HDR_LEN];
    struct et_capfile_writer *cw = open_writer(f->path);
    uint8_t *bytes;
    size_t n;

    close_writer(cw);
    bytes = slurp(f->path, &n);
    assert_int_equal(et_capfile_detect(bytes, n), 1);
    assert_int_equal(et_capfile_detect(bytes, 9), 0);
    assert_int_equal(et_capfile_detect((const uint8_t *)"PK\3\4xxxxxxxxxx", 14), 0);
    memcpy(hdr, bytes, sizeof(hdr));

    et_error_clear(&e);
    assert_int_equal(et_capfile_open_mem((const uint8_t *)"{\"log\":{}}", 10, "x.har", NULL,
                                         &s, &e), ET_EPARSE);
    assert_null(s);
    /* Header checksum. */
    hdr[30] ^= 1;
    et_error_clear(&e);
    assert_int_equal(et_capfile_open_mem(hdr, sizeof(hdr), "x", NULL, &s, &e), ET_EPARSE);
    assert_non_null(strstr(e.msg, "damaged"));
    /* A newer major version. */
    memcpy(hdr, bytes, sizeof(hdr));
    hdr[10] = 2;
    et_error_clear(&e);
    assert_int_equal(et_capfile_open_mem(hdr, sizeof(hdr), "x", NULL, &s, &e),
                     ET_EUNSUPPORTED);
    /* A header cut short. */
    et_error_clear(&e);
    assert_int_equal(et_capfile_open_mem(bytes, 20, "x", NULL, &s, &e), ET_ETRUNC);
    et_error_clear(&e);
    assert_int_equal(et_capfile_open("/nonexistent/x.etcap", &s, &e), ET_EIO);
    free(bytes);
}

/* Offsets where each record starts (file header excluded), found by walking the lengths. */
static size_t record_starts(const uint8_t *p, size_t n, uint64_t *starts, size_t max)
{
    size_t off = CAP_FILE_HDR_LEN, k = 0;
    while (off + CAP_REC_HDR_LEN <= n && k < max) {
        starts[k++] = off;
        off += CAP_REC_OVERHEAD + cap_get32(p + off + 16);
    }
    assert_int_equal(off, n);
    return k;
}

static void test_capfile_torn_tail_at_every_byte(void **state)
{
    struct fixture *f = *state;
    struct et_capfile_writer *cw = open_writer(f->path);
    uint64_t starts[16];
    uint8_t *bytes;
    size_t n, k;
    static struct readout ro;

    for (uint64_t i = 1; i <= 3; i++) {
        struct et_exchange *x = make_full(i, 300, 200);
        write_one(cw, x);
        et_exchange_free(x);
    }
    close_writer(cw);
    bytes = slurp(f->path, &n);
    k = record_starts(bytes, n, starts, ET_ARRAY_SIZE(starts));
    assert_int_equal(k, 4); /* open record + 3 exchanges */

    for (size_t len = (size_t)starts[3]; len < n; len++) {
        read_mem(bytes, len, &ro);
        assert_int_equal(ro.n, 2);
        if (len == starts[3]) {
            assert_int_equal(ro.nerr, 0);
        } else {
            assert_int_equal(ro.nerr, 1);
            assert_int_equal(ro.err_off[0], starts[3]);
            assert_non_null(strstr(ro.first_err, "torn record at byte"));
        }
    }
    /* The same through real files for a sample of cuts, plus appending after each. */
    for (size_t len = (size_t)starts[3]; len < n; len += 37) {
        struct et_capfile_stats st;
        struct et_exchange *x;
        write_bytes(f->path, bytes, len);
        read_file(f->path, &ro);
        assert_int_equal(ro.n, 2);
        assert_int_equal(ro.nerr, len == starts[3] ? 0 : 1);
        cw = open_writer(f->path);
        et_capfile_writer_stats(cw, &st);
        assert_int_equal(st.tail_was_torn, len != starts[3]);
        x = make_full(4, 100, 100);
        write_one(cw, x);
        et_exchange_free(x);
        close_writer(cw);
        /* Nothing destroyed: the torn bytes are still there, the new record after them. */
        assert_true(file_size(f->path) > len);
        read_file(f->path, &ro);
        assert_int_equal(ro.n, 3);
        assert_int_equal(ro.ids[2], 4);
        assert_int_equal(ro.nerr, len == starts[3] ? 0 : 1);
        if (ro.nerr)
            assert_int_equal(ro.err_off[0], starts[3]);
    }
    free(bytes);
}

static void test_capfile_damaged_middle_record_every_byte(void **state)
{
    struct fixture *f = *state;
    struct et_capfile_writer *cw = open_writer(f->path);
    uint64_t starts[16];
    uint8_t *bytes, *copy;
    size_t n;
    static struct readout ro;

    for (uint64_t i = 1; i <= 3; i++) {
        struct et_exchange *x = make_full(i, 200, 100);
        write_one(cw, x);
        et_exchange_free(x);
    }
    close_writer(cw);
    bytes = slurp(f->path, &n);
    record_starts(bytes, n, starts, ET_ARRAY_SIZE(starts));
    copy = malloc(n);
    assert_non_null(copy);
    for (size_t i = (size_t)starts[2]; i < starts[3]; i++) {
        memcpy(copy, bytes, n);
        copy[i] ^= (uint8_t)(1u << (i % 8));
        read_mem(copy, n, &ro);
        assert_int_equal(ro.n, 2);
        assert_int_equal(ro.ids[0], 1);
        assert_int_equal(ro.ids[1], 3);
        assert_int_equal(ro.nerr, 1);
        assert_int_equal(ro.err_off[0], starts[2]);
        assert_non_null(strstr(ro.first_err, "record at byte"));
    }
    /* A real file with a flipped bit in the middle of the payload. */
    memcpy(copy, bytes, n);
    copy[(starts[2] + starts[3]) / 2] ^= 0x10;
    write_bytes(f->path, copy, n);
    read_file(f->path, &ro);
    assert_int_equal(ro.n, 2);
    assert_int_equal(ro.nerr, 1);
    assert_non_null(strstr(ro.first_err, "checksum mismatch"));
    free(copy);
    free(bytes);
}

/* A bit flipped in the last record: reported once, and later calls stay at the end (the
 * fuzzer found a loop here: fuzz-damaged-record-at-tail-looped.bin). */
static void test_capfile_damaged_last_record_reported_once(void **state)
{
    struct fixture *f = *state;
    struct et_capfile_writer *cw = open_writer(f->path);
    uint64_t starts[16];
    struct et_source *s = NULL;
    struct et_exchange *r;
    struct et_error e;
    uint8_t *bytes;
    size_t n, k;

    for (uint64_t i = 1; i <= 2; i++) {
        struct et_exchange *x = make_full(i, 100, 100);
        write_one(cw, x);
        et_exchange_free(x);
    }
    close_writer(cw);
    bytes = slurp(f->path, &n);
    k = record_starts(bytes, n, starts, ET_ARRAY_SIZE(starts));
    bytes[(starts[k - 1] + n) / 2] ^= 4;
    et_error_clear(&e);
    assert_int_equal(et_capfile_open_mem(bytes, n, "flip", NULL, &s, &e), 0);
    assert_int_equal(et_source_next(s, &r, &e), 1);
    et_exchange_free(r);
    et_error_clear(&e);
    assert_int_equal(et_source_next(s, &r, &e), ET_EPARSE);
    assert_int_equal(e.offset, starts[k - 1]);
    for (int i = 0; i < 3; i++) {
        et_error_clear(&e);
        assert_int_equal(et_source_next(s, &r, &e), 0);
    }
    et_source_close(s);
    free(bytes);
}

/* Inputs the fuzzer found (tests/fixtures/capture/fuzz-*.bin, first byte is the fuzz mode,
 * 0 = raw file): each reads to the end in a bounded number of calls. */
static void test_capfile_fuzz_regressions(void **state)
{
    DIR *d = opendir(et_fixture("capture"));
    struct dirent *de;
    int seen = 0;
    (void)state;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        char path[4096 + 512];
        struct et_source *s = NULL;
        struct et_error e;
        uint8_t *bytes;
        size_t n, calls;

        if (strncmp(de->d_name, "fuzz-", 5) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", et_fixture("capture"), de->d_name);
        bytes = slurp(path, &n);
        assert_true(n >= 1);
        et_error_clear(&e);
        if (et_capfile_open_mem(bytes + 1, n - 1, de->d_name, NULL, &s, &e) == 0) {
            for (calls = 0; calls < n + 16; calls++) {
                struct et_exchange *r = NULL;
                int rc;
                et_error_clear(&e);
                rc = et_source_next(s, &r, &e);
                if (rc == 0)
                    break;
                if (rc == 1)
                    et_exchange_free(r);
                else
                    assert_int_equal(rc, ET_EPARSE);
            }
            assert_true(calls < n + 16);
            et_source_close(s);
        }
        free(bytes);
        seen++;
    }
    closedir(d);
    assert_true(seen >= 1);
}

static void test_capfile_crc32c_known_values(void **state)
{
    uint8_t buf[1000];
    (void)state;
    /* The CRC-32C check value (RFC 3720 appendix B.4 lists more). */
    assert_int_equal(et__cap_crc(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(et__cap_crc_sw(0, "123456789", 9), 0xE3069283u);
    memset(buf, 0, 32);
    assert_int_equal(et__cap_crc(0, buf, 32), 0x8A9136AAu);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    /* CPU path, portable path and chained pieces agree at every length and split. */
    for (size_t n = 0; n < 200; n++) {
        uint32_t whole = et__cap_crc(0, buf + 1, n);
        assert_int_equal(whole, et__cap_crc_sw(0, buf + 1, n));
        assert_int_equal(whole, et__cap_crc(et__cap_crc(0, buf + 1, n / 3), buf + 1 + n / 3,
                                            n - n / 3));
    }
    /* Long inputs run as three lanes of 1 KiB joined by a shift table: lengths around the
     * lane rounds (3 KiB each), odd alignments, chained at odd places. */
    static uint8_t big[3 * 3 * 1024 + 64];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 131 + (i >> 7));
    static const size_t lens[] = {3071, 3072, 3073, 3079, 6143, 6144, 6151, 9216, 9216 + 63};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
        for (size_t a = 0; a < 2; a++) {
            size_t n = lens[k];
            uint32_t whole = et__cap_crc(0, big + a, n);
            assert_int_equal(whole, et__cap_crc_sw(0, big + a, n));
            assert_int_equal(whole, et__cap_crc(et__cap_crc(0, big + a, 5), big + a + 5, n - 5));
        }
}

/* Builds a record of the given type around a payload, as the writer would for this file. */
static size_t craft_record(uint8_t *out, const uint8_t *nonce, unsigned type, const uint8_t *pl,
                           size_t n)
{
    memcpy(out, CAP_SYNC, CAP_SYNC_LEN);
    memcpy(out + 4, nonce, CAP_NONCE_LEN);
    out[12] = (uint8_t)type;
    out[13] = 0;
    cap_put16(out + 14, 0);
    cap_put32(out + 16, (uint32_t)n);
    cap_put32(out + 20, et__cap_crc(0, out, 20));
    memcpy(out + CAP_REC_HDR_LEN, pl, n);
    cap_put32(out + CAP_REC_HDR_LEN + n, (uint32_t)n);
    cap_put32(out + CAP_REC_HDR_LEN + n + 4, et__cap_crc(0, out, CAP_REC_HDR_LEN + n + 4));
    return CAP_REC_OVERHEAD + n;
}

static size_t put_tlv(uint8_t *p, unsigned tag, const void *v, size_t n)
{
    cap_put16(p, (uint16_t)tag);
    cap_put32(p + 2, (uint32_t)n);
    memcpy(p + CAP_TLV_HDR, v, n);
    return CAP_TLV_HDR + n;
}

static void test_capfile_unknown_types_skipped_and_bad_payload_reported(void **state)
{
    struct fixture *f = *state;
    struct et_capfile_writer *cw = open_writer(f->path);
    struct et_exchange *x = make_full(1, 10, 10), *r;
    struct et_source *s;
    struct et_error e;
    uint8_t *bytes, *buf, pl[256];
    size_t n, len, p;

    write_one(cw, x);
    close_writer(cw);
    bytes = slurp(f->path, &n);
    buf = malloc(n + 4096);
    memcpy(buf, bytes, n);
    len = n;
    /* A record type from a later version: skipped silently. */
    len += craft_record(buf + len, bytes + 16, 77, (const uint8_t *)"future", 6);
    /* An exchange with a field from a later version: the field is skipped. */
    p = put_tlv(pl, 0x7ff0, "ignored", 7);
    p += put_tlv(pl + p, TX_HOST, "future.example.com", 18);
    len += craft_record(buf + len, bytes + 16, CAP_REC_EXCHANGE, pl, p);
    /* An exchange whose field overruns the payload (checksums fine): reported, skipped. */
    p = put_tlv(pl, TX_HOST, "x", 1);
    cap_put16(pl + p, TX_SCHEME);
    cap_put32(pl + p + 2, 1000);
    p += CAP_TLV_HDR;
    len += craft_record(buf + len, bytes + 16, CAP_REC_EXCHANGE, pl, p);
    /* A header pair whose name length passes its field. */
    cap_put32(pl + CAP_TLV_HDR, 99);
    p = CAP_TLV_HDR + 4 + 2;
    cap_put16(pl, TX_META);
    cap_put32(pl + 2, 6);
    memcpy(pl + CAP_TLV_HDR + 4, "ab", 2);
    len += craft_record(buf + len, bytes + 16, CAP_REC_EXCHANGE, pl, p);
    /* A 3-byte integer is fine; a 9-byte one is not. */
    p = put_tlv(pl, TX_PORT, "\x50\x00\x00", 3);
    len += craft_record(buf + len, bytes + 16, CAP_REC_EXCHANGE, pl, p);
    p = put_tlv(pl, TX_PORT, "\x50\x00\x00\x00\x00\x00\x00\x00\x00", 9);
    len += craft_record(buf + len, bytes + 16, CAP_REC_EXCHANGE, pl, p);
    /* Followed by a normal one again. */
    len += craft_record(buf + len, bytes + 16, CAP_REC_EXCHANGE, pl, 0);

    et_error_clear(&e);
    assert_int_equal(et_capfile_open_mem(buf, len, "crafted", NULL, &s, &e), 0);
    assert_int_equal(et_source_next(s, &r, &e), 1);
    assert_exchange_same(x, r);
    et_exchange_free(r);
    assert_int_equal(et_source_next(s, &r, &e), 1);
    assert_string_equal(r->host, "future.example.com");
    assert_int_equal(r->id, 2);
    et_exchange_free(r);
    et_error_clear(&e);
    assert_int_equal(et_source_next(s, &r, &e), ET_EPARSE);
    assert_non_null(strstr(e.msg, "malformed exchange record"));
    assert_true(e.offset > n);
    et_error_clear(&e);
    assert_int_equal(et_source_next(s, &r, &e), ET_EPARSE);
    assert_non_null(strstr(e.msg, "header name"));
    assert_int_equal(et_source_next(s, &r, &e), 1);
    assert_int_equal(r->port, 0x50);
    et_exchange_free(r);
    et_error_clear(&e);
    assert_int_equal(et_source_next(s, &r, &e), ET_EPARSE);
    assert_non_null(strstr(e.msg, "integer"));
    assert_int_equal(et_source_next(s, &r, &e), 1);
    assert_int_equal(r->id, 7); /* the malformed ones used up ids 3, 4 and 6 */
    assert_null(r->host);
    et_exchange_free(r);
    assert_int_equal(et_source_next(s, &r, &e), 0);
    et_source_close(s);

    /* A reader limit below a record's size reports it and goes on. */
    {
        struct et_capfile_read_opts o = {.follow = 0, .max_record = 100};
        et_error_clear(&e);
        assert_int_equal(et_capfile_open_mem(buf, len, "crafted", &o, &s, &e), 0);
        assert_int_equal(et_source_next(s, &r, &e), ET_EPARSE);
        assert_non_null(strstr(e.msg, "oversized"));
        et_error_clear(&e);
        assert_int_equal(et_source_next(s, &r, &e), 1); /* the future.example.com one */
        et_exchange_free(r);
        et_source_close(s);
    }
    free(buf);
    free(bytes);
    et_exchange_free(x);
}

/* The child writes exchanges forever and reports each completed id on a pipe. */
static void crash_child(const char *path, int wfd, unsigned seed)
{
    struct et_capfile_writer *cw = NULL;
    struct et_error e;
    et_error_clear(&e);
    if (et_capfile_open_append(path, NULL, &cw, &e) != 0)
        _exit(3);
    for (uint64_t i = 1;; i++) {
        struct et_exchange *x = make_full(i, (size_t)((i * seed) % 20000), 100 + i % 3000);
        if (et_capfile_write(cw, x, &e) != 0)
            _exit(4);
        et_exchange_free(x);
        if (write(wfd, &i, sizeof(i)) != (ssize_t)sizeof(i))
            _exit(5);
    }
}

static void test_capfile_kill9_loses_only_the_record_in_flight(void **state)
{
    struct fixture *f = *state;
    unsigned seed = (unsigned)time(NULL);
    struct readout *ro = malloc(sizeof(*ro));

    srand(seed);
    print_message("kill -9 test seed %u\n", seed);
    for (int round = 0; round < 5; round++) {
        int pfd[2], status;
        uint64_t id, last = 0, had = 0;
        pid_t pid;

        /* Every round appends to the same file: recovery after each crash is tested too. */
        if (round > 0) {
            static struct readout tmp;
            read_file(f->path, &tmp);
            had = tmp.n;
        }
        assert_int_equal(pipe(pfd), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            crash_child(f->path, pfd[1], seed + (unsigned)round);
        }
        close(pfd[1]);
        usleep((useconds_t)(5000 + rand() % 60000));
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        while (read(pfd[0], &id, sizeof(id)) == (ssize_t)sizeof(id)) {
            assert_int_equal(id, last + 1);
            last = id;
        }
        close(pfd[0]);
        assert_true(last > 0);

        read_file(f->path, ro);
        /* Every reported record is there, in order; the one in flight may be too. */
        assert_true(ro->n >= had + last);
        assert_true(ro->n <= had + last + 1);
        for (uint64_t i = 0; i < last; i++)
            assert_int_equal(ro->ids[had + i], i + 1);
        assert_true(ro->nerr <= (size_t)round + 1);
        print_message("round %d: %llu reported, %zu read, %zu torn\n", round,
                      (unsigned long long)last, ro->n, ro->nerr);
    }
    free(ro);
}

/* Disk full, simulated by a file size limit: errors are reported, the writer goes on. */
static void test_capfile_write_error_reported_and_writer_survives(void **state)
{
    struct fixture *f = *state;
    int status;
    pid_t pid = fork();
    static struct readout ro;

    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {.rlim_cur = 64 * 1024, .rlim_max = 64 * 1024};
        struct et_capfile_writer *cw = NULL;
        struct et_capfile_stats st;
        struct et_error e;
        int rc = 0, ok = 0;

        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(10);
        et_error_clear(&e);
        if (et_capfile_open_append(f->path, NULL, &cw, &e) != 0)
            _exit(11);
        for (uint64_t i = 1; i < 100; i++) {
            struct et_exchange *x = make_full(i, 9000, 1000);
            et_error_clear(&e);
            rc = et_capfile_write(cw, x, &e);
            et_exchange_free(x);
            if (rc != 0)
                break;
            ok++;
        }
        if (rc != ET_EIO || strstr(e.msg, strerror(EFBIG)) == NULL || ok < 3)
            _exit(12);
        /* Still usable: a small record fits in what is left. */
        {
            struct et_exchange *x = make_full(500, 10, 10);
            et_error_clear(&e);
            rc = et_capfile_write(cw, x, &e);
            et_exchange_free(x);
            if (rc != 0)
                _exit(13);
        }
        et_capfile_writer_stats(cw, &st);
        if (st.failures != 1 || st.last_error != ET_EIO || st.records != (uint64_t)ok + 1)
            _exit(14);
        et_capfile_close(cw, NULL);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The failed record was cut off again: the file reads cleanly. */
    read_file(f->path, &ro);
    assert_int_equal(ro.nerr, 0);
    assert_true(ro.n >= 4);
    assert_int_equal(ro.ids[ro.n - 1], 500);
    assert_true(file_size(f->path) <= 64 * 1024);
}

/* A real full disk: a 64 KiB tmpfs (needs root and mount permission, else skipped). */
static void test_capfile_disk_full_reported_and_writer_survives(void **state)
{
    struct fixture *f = *state;
    char mnt[600], path[700];
    struct et_capfile_writer *cw;
    struct et_capfile_stats st;
    struct et_error e;
    int rc = 0, ok = 0;
    static struct readout ro;

    snprintf(mnt, sizeof(mnt), "%s/small", f->dir);
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k") != 0) {
        print_message("cannot mount a small tmpfs (%s): skipped\n", strerror(errno));
        rmdir(mnt);
        skip();
    }
    snprintf(path, sizeof(path), "%s/full.etcap", mnt);
    cw = open_writer(path);
    for (uint64_t i = 1; i < 100; i++) {
        struct et_exchange *x = make_full(i, 9000, 1000);
        et_error_clear(&e);
        rc = et_capfile_write(cw, x, &e);
        et_exchange_free(x);
        if (rc != 0)
            break;
        ok++;
    }
    assert_int_equal(rc, ET_EIO);
    assert_non_null(strstr(e.msg, strerror(ENOSPC)));
    assert_non_null(strstr(e.msg, path));
    assert_true(ok >= 2);
    /* The partial record was cut off, which freed its space: a small record fits again. */
    {
        struct et_exchange *x = make_full(500, 10, 10);
        et_error_clear(&e);
        rc = et_capfile_write(cw, x, &e);
        et_exchange_free(x);
        if (rc != 0)
            print_message("small record after ENOSPC: %s\n", e.msg);
    }
    et_capfile_writer_stats(cw, &st);
    assert_int_equal(st.failures, rc == 0 ? 1 : 2);
    et_capfile_close(cw, NULL);
    read_file(path, &ro);
    assert_int_equal(ro.nerr, 0);
    assert_int_equal(ro.n, (size_t)ok + (rc == 0));
    unlink(path);
    assert_int_equal(umount(mnt), 0);
    rmdir(mnt);
}

/* A reader in follow mode beside a writer in another process: every record, no reports. */
static void test_capfile_follow_concurrent_writer(void **state)
{
    struct fixture *f = *state;
    struct et_capfile_read_opts o = {.follow = 1, .max_record = 0};
    struct et_capfile_writer *cw = open_writer(f->path);
    struct et_source *s = NULL;
    struct et_error e;
    uint64_t expect = 1;
    int status;
    pid_t pid;

    et_error_clear(&e);
    assert_int_equal(et_capfile_open_ex(f->path, &o, &s, &e), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (uint64_t i = 1; i <= 400; i++) {
            struct et_exchange *x = make_full(i, (size_t)(i * 397 % 150000), 64);
            if (et_capfile_write(cw, x, &e) != 0)
                _exit(1);
            et_exchange_free(x);
            if (i % 50 == 0)
                usleep(1000);
        }
        _exit(0);
    }
    et_capfile_close(cw, NULL); /* the child holds its own copy */
    for (int spins = 0; expect <= 400 && spins < 100000; spins++) {
        struct et_exchange *r = NULL;
        int rc;
        et_error_clear(&e);
        rc = et_source_next(s, &r, &e);
        if (rc == 0) {
            usleep(100); /* nothing new yet */
            continue;
        }
        if (rc != 1)
            fail_msg("follower got %d: %s", rc, e.msg);
        assert_int_equal(origin_id(r), expect);
        assert_int_equal(r->req.body.len, expect * 397 % 150000);
        expect++;
        et_exchange_free(r);
    }
    assert_int_equal(expect, 401);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    et_source_close(s);
}

static void test_capfile_allocation_failures(void **state)
{
    struct fixture *f = *state;
    struct et_exchange *x = make_full(1, 500, 500);
    int completed = 0;

    for (long nth = 1; nth < 500 && !completed; nth++) {
        struct et_capfile_writer *cw = NULL;
        struct et_source *s = NULL;
        struct et_exchange *r = NULL;
        struct et_error e;
        int rc;

        unlink(f->path);
        et_error_clear(&e);
        et_alloc_fail_after(nth);
        rc = et_capfile_open_append(f->path, NULL, &cw, &e);
        if (rc == 0) {
            rc = et_capfile_write(cw, x, &e);
            et_capfile_close(cw, NULL);
        }
        if (rc == 0)
            rc = et_capfile_open(f->path, &s, &e);
        if (rc == 0) {
            rc = et_source_next(s, &r, &e);
            if (rc == 1) {
                et_alloc_fail_after(-1);
                assert_exchange_same(x, r);
                et_exchange_free(r);
                rc = 0;
                completed = 1;
            }
            et_source_close(s);
        }
        et_alloc_fail_after(-1);
        if (!completed)
            assert_int_equal(rc, ET_ENOMEM);
    }
    assert_true(completed);
    et_exchange_free(x);
}

/* A capture written by format version 1.0, kept to catch accidental format changes. */
static void test_capfile_reads_committed_v1_fixture(void **state)
{
    struct fixture *f = *state;
    const char *fx = et_fixture("capture/capfile-v1-sync-and-cert-error.etcap");
    struct et_source *s;
    struct et_exchange *r;
    struct et_error e;
    (void)f;

    if (getenv("ET_REGEN_FIXTURES") != NULL) {
        struct et_capfile_writer *cw;
        struct et_exchange *x = make_full(1, 40, 60);
        unlink(fx);
        cw = open_writer(fx);
        write_one(cw, x);
        et_exchange_free(x);
        x = make_full(2, 0, 0);
        x->has_response = 0;
        et_exchange_fail(x, ET_ECERT, ET_STAGE_UPSTREAM_TLS, "certificate has expired");
        write_one(cw, x);
        et_exchange_free(x);
        close_writer(cw);
    }
    s = open_reader(fx);
    et_error_clear(&e);
    assert_int_equal(et_source_next(s, &r, &e), 1);
    {
        struct et_exchange *x = make_full(1, 40, 60);
        assert_exchange_same(x, r);
        et_exchange_free(x);
    }
    et_exchange_free(r);
    assert_int_equal(et_source_next(s, &r, &e), 1);
    assert_int_equal(r->err.code, ET_ECERT);
    assert_int_equal(r->err.stage, ET_STAGE_UPSTREAM_TLS);
    assert_string_equal(r->err.message, "certificate has expired");
    assert_int_equal(r->has_response, 0);
    et_exchange_free(r);
    assert_int_equal(et_source_next(s, &r, &e), 0);
    et_source_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_tmpdir, teardown_tmpdir)
        T(test_capfile_crc32c_known_values),
        T(test_capfile_round_trip_every_field),
        T(test_capfile_body_cap_truncates_and_keeps_wire_len),
        T(test_capfile_many_records),
        T(test_capfile_drop_behind_keeps_records_and_frees_cache),
        T(test_capfile_reader_follows_writer),
        T(test_capfile_append_after_reopen),
        T(test_capfile_mode_0600_and_foreign_files),
        T(test_capfile_torn_file_header_is_restarted),
        T(test_capfile_reader_rejects_other_files),
        T(test_capfile_torn_tail_at_every_byte),
        T(test_capfile_damaged_middle_record_every_byte),
        T(test_capfile_damaged_last_record_reported_once),
        T(test_capfile_fuzz_regressions),
        T(test_capfile_unknown_types_skipped_and_bad_payload_reported),
        T(test_capfile_kill9_loses_only_the_record_in_flight),
        T(test_capfile_write_error_reported_and_writer_survives),
        T(test_capfile_disk_full_reported_and_writer_survives),
        T(test_capfile_follow_concurrent_writer),
        T(test_capfile_allocation_failures),
        T(test_capfile_reads_committed_v1_fixture),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
