/*
 * net/'s blocking TLS client (eastrace/tls.h) against a real OpenSSL server on 127.0.0.1 (a
 * thread, one connection, the test fixtures' certificates): a verified handshake by name and
 * by address with ALPN and an echo both ways, a wrong host name and an untrusted CA refused
 * with OpenSSL's reason, the same chain accepted with verify off and its result reported, no
 * ALPN, a minimum version the server does not reach, a missing CA file, a peer that says
 * nothing (handshake and read timeouts) and one that drops the connection without
 * close_notify (a read says so; writes fail with ET_ECONNRESET, SIGPIPE neither ignored nor
 * fatal here).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "et_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "eastrace/net.h"
#include "eastrace/tls.h"

#define FIX ET_FIXTURES_DIR "/proxy/"

enum srv_mode {
    SRV_ECHO = 0,   /* handshake, read a line, answer "pong <line>", close_notify */
    SRV_SILENT_TCP, /* accept and say nothing (no handshake) until the client goes */
    SRV_SILENT_TLS, /* handshake, then say nothing until the client goes */
    SRV_DROP,       /* handshake, then close the socket without close_notify */
};

struct srv {
    enum srv_mode mode;
    const char *cert;    /* fixture name, "origin-localhost" */
    int alpn;            /* select http/1.1 when offered */
    int max_version;     /* 0 or TLS1_2_VERSION */
    int lfd, port;
    pthread_t th;
};

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned i = 0; i < inlen; i += 1u + in[i]) {
        if (in[i] == 8 && i + 9 <= inlen && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    char path[512], line[256];
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    sigset_t pipe;
    int fd = accept(s->lfd, NULL, NULL);

    /* The server's own writes to a client that left must not end the test binary. */
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    if (fd < 0)
        return NULL;
    if (s->mode == SRV_SILENT_TCP) {
        while (read(fd, line, sizeof(line)) > 0)
            ;
        goto out;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    snprintf(path, sizeof(path), FIX "%s.pem", s->cert);
    if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, path) != 1)
        goto out;
    snprintf(path, sizeof(path), FIX "%s.key", s->cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM) != 1)
        goto out;
    if (s->max_version != 0)
        SSL_CTX_set_max_proto_version(ctx, s->max_version);
    if (s->alpn)
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_accept(ssl) != 1)
        goto out;
    if (s->mode == SRV_SILENT_TLS) {
        while (SSL_read(ssl, line, sizeof(line)) > 0)
            ;
    } else if (s->mode == SRV_DROP) {
        /* nothing: the socket closes below without close_notify */
    } else {
        int n = SSL_read(ssl, line, sizeof(line) - 1);
        if (n > 0) {
            char reply[300];
            int k = snprintf(reply, sizeof(reply), "pong %.*s", n, line);
            SSL_write(ssl, reply, k);
        }
        SSL_shutdown(ssl);
    }
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return NULL;
}

static void srv_start(struct srv *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 4), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_stop(struct srv *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
}

/* Connects over TCP (net.h) and hands back the fd. */
static int tcp_to(const struct srv *s)
{
    struct et_error e;
    int fd;
    et_error_clear(&e);
    fd = et_net_connect("127.0.0.1", s->port, 5000, "test", NULL, 0, &e);
    if (fd < 0)
        print_error("%s\n", e.msg);
    assert_true(fd >= 0);
    return fd;
}

/* One handshake with o against a server in mode/cert; returns the rc, e filled. When it
 * succeeds, *out keeps the connection and *fdp its descriptor (the caller frees both). */
static int try_connect(struct srv *s, struct et_tls_opts *o, struct et_tls **out, int *fdp,
                       struct et_error *e)
{
    int fd, rc;
    srv_start(s);
    fd = tcp_to(s);
    et_error_clear(e);
    rc = et_tls_connect(fd, o, out, e);
    if (rc != 0) {
        assert_null(*out);
        close(fd);
        srv_stop(s);
        fd = -1;
    }
    *fdp = fd;
    return rc;
}

/* Verified against the test CA as localhost, 5 s for each wait. */
static const struct et_tls_opts LOCALHOST = {.host = "localhost", .verify = 1,
                                             .ca_file = FIX "origin-ca.pem",
                                             .timeout_ms = 5000};

/* Ends a connection try_connect made: the client goes, then the server thread. */
static void finish(struct srv *s, struct et_tls *t, int fd)
{
    et_tls_free(t);
    close(fd);
    srv_stop(s);
}

static void test_verified_by_name_with_alpn(void **state)
{
    (void)state;
    struct srv s = {.mode = SRV_ECHO, .cert = "origin-localhost", .alpn = 1};
    struct et_tls_opts o = {.host = "localhost", .verify = 1, .ca_file = FIX "origin-ca.pem",
                            .alpn = "http/1.1", .timeout_ms = 5000};
    struct et_tls *t = NULL;
    struct et_error e;
    char buf[64];
    const char *why = NULL;
    int fd;
    long n;

    assert_int_equal(try_connect(&s, &o, &t, &fd, &e), 0);
    assert_string_equal(et_tls_alpn(t), "http/1.1");
    assert_true(et_tls_version_id(t) >= ET_TLS_1_2);
    assert_non_null(strstr(et_tls_version(t), "TLSv1."));
    assert_true(strlen(et_tls_cipher(t)) > 0);
    assert_int_equal(et_tls_verify_result(t, &why), 0);
    assert_string_equal(why, "ok");
    assert_int_equal(sk_X509_num(et_tls_peer_chain(t)), 1);
    assert_int_equal(et_tls_write_all(t, "ping", 4, &e), 0);
    n = et_tls_read(t, buf, sizeof(buf), &e);
    assert_int_equal(n, 9);
    assert_memory_equal(buf, "pong ping", 9);
    assert_int_equal(et_tls_read(t, buf, sizeof(buf), &e), 0); /* close_notify */
    assert_int_equal(e.code, 0);
    finish(&s, t, fd);
}

static void test_verified_by_address(void **state)
{
    (void)state;
    struct srv s = {.mode = SRV_ECHO, .cert = "origin-localhost"};
    struct et_tls_opts o = {.host = "127.0.0.1", .verify = 1, .ca_file = FIX "origin-ca.pem",
                            .alpn = "http/1.1"};
    struct et_tls *t = NULL;
    struct et_error e;
    int fd;

    assert_int_equal(try_connect(&s, &o, &t, &fd, &e), 0);
    assert_string_equal(et_tls_alpn(t), ""); /* the server selects none */
    assert_int_equal(et_tls_write_all(t, "x", 1, &e), 0);
    et_tls_shutdown(t);
    finish(&s, t, fd);
}

static void test_wrong_host_refused(void **state)
{
    (void)state;
    struct srv s = {.mode = SRV_ECHO, .cert = "origin-wrong-name"};
    struct et_tls_opts o = {.host = "localhost", .what = "SMTP", .verify = 1,
                            .ca_file = FIX "origin-ca.pem"};
    struct et_tls *t = NULL;
    struct et_error e;
    int fd;

    assert_int_equal(try_connect(&s, &o, &t, &fd, &e), ET_ECERT);
    assert_int_equal(e.code, ET_ECERT);
    assert_string_equal(e.msg, "SMTP: the certificate of localhost is not trusted: hostname "
                               "mismatch");
}

static void test_untrusted_ca_refused(void **state)
{
    (void)state;
    struct srv s = {.mode = SRV_ECHO, .cert = "origin-localhost"};
    struct et_tls_opts o = {.host = "localhost", .verify = 1, .ca_file = FIX "mitm-ca.pem"};
    struct et_tls *t = NULL;
    struct et_error e;
    int fd;

    assert_int_equal(try_connect(&s, &o, &t, &fd, &e), ET_ECERT);
    assert_string_equal(e.msg, "the certificate of localhost is not trusted: unable to get "
                               "local issuer certificate");
}

static void test_verify_off_reports_the_result(void **state)
{
    (void)state;
    struct srv s = {.mode = SRV_ECHO, .cert = "origin-wrong-name"};
    struct et_tls_opts o = {.host = "localhost", .verify = 0, .ca_file = FIX "origin-ca.pem",
                            .min_version = ET_TLS_1_0, .alpn = "http/1.1"};
    struct et_tls *t = NULL;
    struct et_error e;
    const char *why = NULL;
    char buf[64];
    int fd;

    assert_int_equal(try_connect(&s, &o, &t, &fd, &e), 0);
    assert_int_equal(et_tls_verify_result(t, &why), X509_V_ERR_HOSTNAME_MISMATCH);
    assert_string_equal(why, "hostname mismatch");
    {
        X509 *leaf = sk_X509_value(et_tls_peer_chain(t), 0);
        char cn[64] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn));
        assert_string_equal(cn, "wrong.example");
    }
    assert_int_equal(et_tls_write_all(t, "hi", 2, &e), 0);
    assert_int_equal(et_tls_read(t, buf, sizeof(buf), &e), 7);
    finish(&s, t, fd);
}

static void test_min_version_not_reached(void **state)
{
    (void)state;
    struct srv s = {.mode = SRV_ECHO, .cert = "origin-localhost", .max_version = TLS1_2_VERSION};
    struct et_tls_opts o = {.host = "localhost", .name = "localhost:1234", .verify = 1,
                            .ca_file = FIX "origin-ca.pem", .min_version = ET_TLS_1_3};
    struct et_tls *t = NULL;
    struct et_error e;
    int fd;

    assert_int_equal(try_connect(&s, &o, &t, &fd, &e), ET_ETLS);
    assert_non_null(strstr(e.msg, "TLS handshake with localhost:1234 failed: "));
    assert_non_null(strstr(e.msg, "alert protocol version"));
}

static void test_missing_ca_file(void **state)
{
    (void)state;
    struct et_tls_opts o = {.host = "localhost", .what = "SMTP", .verify = 1,
                            .ca_file = FIX "no-such-ca.pem"};
    struct et_tls *t = (struct et_tls *)&o; /* must come back NULL */
    struct et_error e;
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    et_error_clear(&e);
    assert_int_equal(et_tls_connect(sv[0], &o, &t, &e), ET_ETLS);
    assert_null(t);
    assert_non_null(strstr(e.msg, "SMTP: cannot load the CA file " FIX "no-such-ca.pem: "));
    close(sv[0]);
    close(sv[1]);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_silent_peer_handshake_times_out(void **state)
{
    (void)state;
    struct srv s = {.mode = SRV_SILENT_TCP};
    struct et_tls_opts o = {.host = "localhost", .verify = 1, .ca_file = FIX "origin-ca.pem",
                            .timeout_ms = 300};
    struct et_tls *t = NULL;
    struct et_error e;
    double t0 = now_s();
    int fd;

    assert_int_equal(try_connect(&s, &o, &t, &fd, &e), ET_ETIMEDOUT);
    assert_true(now_s() - t0 < 3.0);
    assert_string_equal(e.msg, "TLS handshake with localhost failed: timed out");
}

static void test_silent_peer_read_times_out(void **state)
{
    (void)state;
    struct srv s = {.mode = SRV_SILENT_TLS, .cert = "origin-localhost"};
    struct et_tls_opts o = {.host = "localhost", .what = "SMTP", .verify = 1,
                            .ca_file = FIX "origin-ca.pem", .timeout_ms = 5000};
    struct et_tls *t = NULL;
    struct et_error e;
    char buf[16];
    double t0;
    int fd;

    assert_int_equal(try_connect(&s, &o, &t, &fd, &e), 0);
    et_tls_set_timeout(t, 300);
    t0 = now_s();
    assert_int_equal(et_tls_read(t, buf, sizeof(buf), &e), ET_ETIMEDOUT);
    assert_true(now_s() - t0 < 3.0);
    assert_string_equal(e.msg, "SMTP: TLS read from localhost: timed out");
    finish(&s, t, fd);
}

static void test_drop_without_close_notify(void **state)
{
    (void)state;
    struct srv s = {.mode = SRV_DROP, .cert = "origin-localhost"};
    struct et_tls_opts o = LOCALHOST;
    struct et_tls *t = NULL;
    struct et_error e;
    char buf[16];
    int fd;

    assert_int_equal(try_connect(&s, &o, &t, &fd, &e), 0);
    assert_int_equal(et_tls_read(t, buf, sizeof(buf), &e), ET_ECONNRESET);
    assert_non_null(strstr(e.msg, "TLS read from localhost: the connection was closed"));
    finish(&s, t, fd);
}

static void test_write_to_a_gone_peer(void **state)
{
    (void)state;
    struct srv s = {.mode = SRV_DROP, .cert = "origin-localhost"};
    struct et_tls_opts o = LOCALHOST;
    struct et_tls *t = NULL;
    struct et_error e;
    static char block[65536];
    int fd, rc = 0;

    assert_int_equal(try_connect(&s, &o, &t, &fd, &e), 0);
    srv_stop(&s); /* the server closed its end */
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = et_tls_write_all(t, block, sizeof(block), &e);
    assert_int_equal(rc, ET_ECONNRESET);
    assert_string_equal(e.msg, "TLS write to localhost: the connection was closed");
    (void)et_tls_shutdown(t); /* no SIGPIPE either */
    et_tls_free(t);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verified_by_name_with_alpn),
        cmocka_unit_test(test_verified_by_address),
        cmocka_unit_test(test_wrong_host_refused),
        cmocka_unit_test(test_untrusted_ca_refused),
        cmocka_unit_test(test_verify_off_reports_the_result),
        cmocka_unit_test(test_min_version_not_reached),
        cmocka_unit_test(test_missing_ca_file),
        cmocka_unit_test(test_silent_peer_handshake_times_out),
        cmocka_unit_test(test_silent_peer_read_times_out),
        cmocka_unit_test(test_drop_without_close_notify),
        cmocka_unit_test(test_write_to_a_gone_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
