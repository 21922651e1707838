/*
 * The SMTP client's STARTTLS (logs/smtp.c over net/'s TLS client) against a real SMTP server
 * on 127.0.0.1 that upgrades with OpenSSL (a thread, one session, the fixtures'
 * certificates; Python's stdlib smtpd used by tests/cli/test_smtp.sh has no STARTTLS): a
 * message delivered with AUTH over the verified session, an untrusted CA and a wrong host
 * name refused with OpenSSL's reason, and plain-text bytes after the 220 refused.
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
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "eastrace/smtp.h"

#define FIX ET_FIXTURES_DIR "/proxy/"

struct srv {
    const char *cert;     /* fixture name */
    int inject;           /* send a line after the STARTTLS 220 */
    int lfd, port, fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char in[8192];
    size_t inlen;
    char log[8192];       /* commands received, "|"-separated; DATA as "<msg>" */
    int tls_cmds;         /* commands read over TLS */
    pthread_t th;
};

static void say(struct srv *s, const char *text)
{
    if (s->ssl != NULL)
        SSL_write(s->ssl, text, (int)strlen(text));
    else
        (void)send(s->fd, text, strlen(text), MSG_NOSIGNAL);
}

/* One line (CRLF stripped) into out; 0, or -1 when the client went away. */
static int hear(struct srv *s, char *out, size_t outlen)
{
    for (;;) {
        char *nl = memchr(s->in, '\n', s->inlen);
        if (nl != NULL) {
            size_t n = (size_t)(nl - s->in);
            snprintf(out, outlen, "%.*s", (int)(n > 0 && s->in[n - 1] == '\r' ? n - 1 : n),
                     s->in);
            memmove(s->in, nl + 1, s->inlen - n - 1);
            s->inlen -= n + 1;
            return 0;
        }
        int r = s->ssl != NULL ? SSL_read(s->ssl, s->in + s->inlen, (int)(sizeof(s->in) - s->inlen))
                               : (int)recv(s->fd, s->in + s->inlen, sizeof(s->in) - s->inlen, 0);
        if (r <= 0)
            return -1;
        s->inlen += (size_t)r;
    }
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    char line[1024];
    int in_data = 0;

    s->fd = accept(s->lfd, NULL, NULL);
    if (s->fd < 0)
        return NULL;
    say(s, "220 test.example ESMTP\r\n");
    while (hear(s, line, sizeof(line)) == 0) {
        if (in_data) {
            if (strcmp(line, ".") == 0) {
                in_data = 0;
                strcat(s->log, ">|");
                say(s, "250 queued\r\n");
            } else if (strlen(s->log) + strlen(line) + 4 < sizeof(s->log)) {
                strcat(s->log, line);
                strcat(s->log, "\n");
            }
            continue;
        }
        if (strlen(s->log) + strlen(line) + 2 < sizeof(s->log)) {
            strcat(s->log, strncmp(line, "AUTH PLAIN ", 11) == 0 ? "AUTH PLAIN" : line);
            strcat(s->log, "|");
        }
        s->tls_cmds += s->ssl != NULL;
        if (strncmp(line, "EHLO", 4) == 0) {
            say(s, s->ssl ? "250-test.example\r\n250 AUTH PLAIN\r\n"
                          : "250-test.example\r\n250-STARTTLS\r\n250 SIZE 1000000\r\n");
        } else if (strcmp(line, "STARTTLS") == 0) {
            char path[512];
            say(s, s->inject ? "220 go ahead\r\n250 injected\r\n" : "220 go ahead\r\n");
            s->ctx = SSL_CTX_new(TLS_server_method());
            snprintf(path, sizeof(path), FIX "%s.pem", s->cert);
            SSL_CTX_use_certificate_chain_file(s->ctx, path);
            snprintf(path, sizeof(path), FIX "%s.key", s->cert);
            SSL_CTX_use_PrivateKey_file(s->ctx, path, SSL_FILETYPE_PEM);
            s->ssl = SSL_new(s->ctx);
            SSL_set_fd(s->ssl, s->fd);
            if (SSL_accept(s->ssl) != 1)
                break;
        } else if (strncmp(line, "AUTH PLAIN ", 11) == 0) {
            say(s, "235 2.7.0 authenticated\r\n");
        } else if (strcmp(line, "DATA") == 0) {
            in_data = 1;
            strcat(s->log, "<");
            say(s, "354 go on\r\n");
        } else if (strcmp(line, "QUIT") == 0) {
            say(s, "221 bye\r\n");
            break;
        } else {
            say(s, "250 ok\r\n");
        }
    }
    if (s->ssl != NULL)
        SSL_shutdown(s->ssl);
    SSL_free(s->ssl);
    SSL_CTX_free(s->ctx);
    close(s->fd);
    return NULL;
}

static void srv_run(struct srv *s, struct et_smtp_opts *o, const char *msg, int want,
                    struct et_error *e)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 1), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
    o->port = s->port;
    et_error_clear(e);
    int rc = et_smtp_send(o, msg, strlen(msg), e);
    if (rc != want)
        print_error("rc %d: %s\n", rc, e->msg);
    assert_int_equal(rc, want);
    pthread_join(s->th, NULL);
    close(s->lfd);
}

static const char *const TO[] = {"ops@example.com"};

static void test_delivered_over_verified_starttls(void **state)
{
    (void)state;
    struct srv s = {.cert = "origin-localhost"};
    struct et_smtp_opts o = {.host = "localhost", .starttls = ET_SMTP_TLS_REQUIRED,
                             .ca_file = FIX "origin-ca.pem", .user = "alice",
                             .password = "s3cret", .from = "reports@example.org", .to = TO,
                             .nto = 1, .helo_name = "client.example", .timeout_ms = 5000};
    struct et_error e;

    srv_run(&s, &o, "Subject: hi\n\n.dot line\nbody\n", 0, &e);
    /* AUTH is refused without TLS (allow_plain_auth unset): it went over the session. */
    assert_string_equal(s.log, "EHLO client.example|STARTTLS|EHLO client.example|AUTH PLAIN|"
                               "MAIL FROM:<reports@example.org>|RCPT TO:<ops@example.com>|"
                               "DATA|<Subject: hi\n\n..dot line\nbody\n>|QUIT|");
    assert_int_equal(s.tls_cmds, 6);
}

/* One session that fails before the message: server certificate cert (and inject), client
 * to host trusting ca; the result must be want with message msg. No command went over
 * TLS. */
static void refused(const char *cert, int inject, const char *host, const char *ca, int want,
                    const char *msg)
{
    struct srv s = {.cert = cert, .inject = inject};
    struct et_smtp_opts o = {.host = host, .ca_file = ca, .from = "a@example.org", .to = TO,
                             .nto = 1, .timeout_ms = 5000};
    struct et_error e;

    srv_run(&s, &o, "x\n", want, &e);
    assert_string_equal(e.msg, msg);
    assert_int_equal(s.tls_cmds, 0);
}

static void test_untrusted_ca_refused(void **state)
{
    (void)state;
    refused("origin-localhost", 0, "127.0.0.1", FIX "mitm-ca.pem", ET_ECERT,
            "SMTP: the certificate of 127.0.0.1 is not trusted: unable to get local issuer "
            "certificate");
}

static void test_wrong_name_refused(void **state)
{
    (void)state;
    refused("origin-wrong-name", 0, "localhost", FIX "origin-ca.pem", ET_ECERT,
            "SMTP: the certificate of localhost is not trusted: hostname mismatch");
}

static void test_system_store_refusal_has_the_hint(void **state)
{
    (void)state;
    struct srv s = {.cert = "origin-localhost"};
    struct et_smtp_opts o = {.host = "localhost", .from = "a@example.org", .to = TO, .nto = 1,
                             .timeout_ms = 5000};
    struct et_error e;
    const char *hint = " (give its CA with --smtp-ca FILE)";

    /* The system store does not know the test CA. */
    srv_run(&s, &o, "x\n", ET_ECERT, &e);
    assert_int_equal(strncmp(e.msg, "SMTP: the certificate of localhost is not trusted: ", 51),
                     0);
    assert_string_equal(e.msg + strlen(e.msg) - strlen(hint), hint);
}

static void test_plain_bytes_after_starttls_refused(void **state)
{
    (void)state;
    refused("origin-localhost", 1, "localhost", FIX "origin-ca.pem", ET_ETLS,
            "SMTP: the server sent data after its STARTTLS reply");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delivered_over_verified_starttls),
        cmocka_unit_test(test_untrusted_ca_refused),
        cmocka_unit_test(test_system_store_refusal_has_the_hint),
        cmocka_unit_test(test_wrong_name_refused),
        cmocka_unit_test(test_plain_bytes_after_starttls_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
