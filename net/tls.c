/*
 * The blocking TLS client (see tls.h). One SSL_CTX per connection: the callers open a
 * handful of connections per run, and a context of their own keeps the options (trust store,
 * minimum version) from leaking between them.
 *
 *   et_tls_connect: ctx (min version, verify mode, trust store) -> SSL on fd (SNI, host or
 *                   IP check, ALPN) -> SSL_connect -> ECERT / ETLS / ETIMEDOUT, or 0
 *   read / write:   SSL_read / SSL_write over the blocking fd; SO_RCVTIMEO ends a wait
 *
 * OpenSSL writes with write(2), not send(MSG_NOSIGNAL): a peer that has gone raises SIGPIPE,
 * which would end a command that does not ignore it. Every call that may write blocks SIGPIPE
 * in the calling thread and takes back one it caused (sigpipe_block / sigpipe_restore).
 */
#include "eastrace/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "eastrace/net.h"

struct et_tls {
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
    char what[48];  /* "SMTP: " or "" */
    char name[280]; /* the peer in messages */
    char alpn[256]; /* the protocol the server selected, "" when none */
};

struct sigpipe_guard {
    sigset_t old;
    int was_pending; /* a SIGPIPE was already pending: not ours to take */
};

static void sigpipe_block(struct sigpipe_guard *g)
{
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pend);
    (void)sigpending(&pend);
    g->was_pending = sigismember(&pend, SIGPIPE) == 1;
    (void)pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void sigpipe_restore(struct sigpipe_guard *g)
{
    int err = errno;
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pend);
    if (!g->was_pending && sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE) == 1) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    (void)pthread_sigmask(SIG_SETMASK, &g->old, NULL);
    errno = err;
}

/* OpenSSL's last queued reason (or "" when none), and the queue emptied. */
static const char *ossl_reason(char *buf, size_t len)
{
    unsigned long l = ERR_peek_last_error();
    buf[0] = '\0';
    if (l != 0)
        ERR_error_string_n(l, buf, len);
    ERR_clear_error();
    return buf;
}

static int is_address(const char *host)
{
    unsigned char tmp[16];
    return inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1;
}

static int proto_version(enum et_tls_version v)
{
    switch (v) {
    case ET_TLS_1_0:
        return TLS1_VERSION;
    case ET_TLS_1_1:
        return TLS1_1_VERSION;
    case ET_TLS_1_3:
        return TLS1_3_VERSION;
    case ET_TLS_1_2:
    case ET_TLS_DEFAULT:
        break;
    }
    return TLS1_2_VERSION;
}

/*
 * The failure of an SSL_* I/O call that returned k: ET_ETIMEDOUT (the socket's timeout),
 * ET_ECONNRESET (the peer went away), ET_ETLS (a protocol error, OpenSSL's reason), ET_EIO.
 * Sets e with "<what><verb> <name>: <reason>".
 */
static int io_error(struct et_tls *t, int k, const char *verb, struct et_error *e)
{
    int se = SSL_get_error(t->ssl, k), err = errno, rc;
    char buf[256];
    const char *why;

    ossl_reason(buf, sizeof(buf));
    if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE ||
        (se == SSL_ERROR_SYSCALL && (err == EAGAIN || err == EWOULDBLOCK))) {
        rc = ET_ETIMEDOUT;
        why = "timed out";
    } else if (se == SSL_ERROR_ZERO_RETURN ||
               (se == SSL_ERROR_SYSCALL && (err == 0 || err == EPIPE || err == ECONNRESET))) {
        rc = ET_ECONNRESET;
        why = "the connection was closed";
    } else if (se == SSL_ERROR_SSL) {
        rc = strstr(buf, "unexpected eof") != NULL ? ET_ECONNRESET : ET_ETLS;
        why = rc == ET_ECONNRESET ? "the connection was closed without a TLS close_notify"
                                  : buf[0] ? buf : "TLS protocol error";
    } else {
        rc = ET_EIO;
        why = strerror(err ? err : EIO);
    }
    et_error_set(e, rc, "%s%s %s: %s", t->what, verb, t->name, why);
    return rc;
}

/* Trust store and verification mode of the context. Returns 0 or ET_ETLS. */
static int set_trust(struct et_tls *t, const struct et_tls_opts *o, struct et_error *e)
{
    char buf[256];
    SSL_CTX_set_verify(t->ctx, o->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (o->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(t->ctx, o->ca_file, NULL) != 1) {
            et_error_set(e, ET_ETLS, "%scannot load the CA file %s: %s", t->what, o->ca_file,
                         ossl_reason(buf, sizeof(buf)));
            return ET_ETLS;
        }
    } else if (SSL_CTX_set_default_verify_paths(t->ctx) != 1 && o->verify) {
        et_error_set(e, ET_ETLS, "%scannot load the system trust store: %s", t->what,
                     ossl_reason(buf, sizeof(buf)));
        return ET_ETLS;
    }
    ERR_clear_error();
    return 0;
}

/* SNI and the name check only for names; an address is checked as an IP SAN. ALPN. */
static int set_peer(struct et_tls *t, const struct et_tls_opts *o)
{
    /* SSL_set_tlsext_host_name is a macro that casts its name to void * (OpenSSL copies it):
     * a writable copy keeps -Wcast-qual quiet under clang. An SNI name has 255 bytes at most
     * (RFC 6066). */
    char sni[256];
    if (is_address(o->host)) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), o->host) != 1)
            return -1;
    } else if ((size_t)snprintf(sni, sizeof(sni), "%s", o->host) >= sizeof(sni) ||
               SSL_set_tlsext_host_name(t->ssl, sni) != 1 ||
               SSL_set1_host(t->ssl, o->host) != 1) {
        return -1;
    }
    if (o->alpn != NULL) {
        unsigned char wire[256];
        size_t n = strlen(o->alpn);
        if (n == 0 || n > 255)
            return -1;
        wire[0] = (unsigned char)n;
        memcpy(wire + 1, o->alpn, n);
        if (SSL_set_alpn_protos(t->ssl, wire, (unsigned)n + 1) != 0) /* 0 is success */
            return -1;
    }
    return 0;
}

int et_tls_connect(int fd, const struct et_tls_opts *o, struct et_tls **out,
                   struct et_error *e)
{
    struct et_tls *t;
    struct sigpipe_guard g;
    char buf[256];
    int rc = ET_ETLS, k;

    *out = NULL;
    if (o->host == NULL || o->host[0] == '\0') {
        et_error_set(e, ET_EINVAL, "%s%sTLS: no host name to check", o->what ? o->what : "",
                     o->what ? ": " : "");
        return ET_EINVAL;
    }
    t = et_calloc(1, sizeof(*t));
    if (t == NULL) {
        et_error_set(e, ET_ENOMEM, "%s%sout of memory", o->what ? o->what : "",
                     o->what ? ": " : "");
        return ET_ENOMEM;
    }
    t->fd = fd;
    snprintf(t->what, sizeof(t->what), "%s%s", o->what ? o->what : "", o->what ? ": " : "");
    snprintf(t->name, sizeof(t->name), "%s", o->name ? o->name : o->host);
    if (o->timeout_ms > 0)
        et_net_set_timeout(fd, o->timeout_ms);
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (t->ctx == NULL ||
        SSL_CTX_set_min_proto_version(t->ctx, proto_version(o->min_version)) != 1)
        goto setup_fail;
    if ((rc = set_trust(t, o, e)) < 0)
        goto fail;
    t->ssl = SSL_new(t->ctx);
    if (t->ssl == NULL || SSL_set_fd(t->ssl, fd) != 1 || set_peer(t, o) != 0)
        goto setup_fail;
    errno = 0;
    sigpipe_block(&g);
    k = SSL_connect(t->ssl);
    sigpipe_restore(&g);
    if (k != 1) {
        long vr = SSL_get_verify_result(t->ssl);
        int err = errno;
        if (o->verify && vr != X509_V_OK) {
            ERR_clear_error();
            et_error_set(e, ET_ECERT, "%sthe certificate of %s is not trusted: %s", t->what,
                         o->host, X509_verify_cert_error_string(vr));
            rc = ET_ECERT;
            goto fail;
        }
        ossl_reason(buf, sizeof(buf));
        rc = buf[0] == '\0' && (err == EAGAIN || err == EWOULDBLOCK) ? ET_ETIMEDOUT : ET_ETLS;
        et_error_set(e, rc, "%sTLS handshake with %s failed: %s", t->what, t->name,
                     buf[0] ? buf
                     : rc == ET_ETIMEDOUT ? "timed out"
                     : err != 0 ? strerror(err)
                                : "connection closed");
        goto fail;
    }
    {
        const unsigned char *a = NULL;
        unsigned an = 0;
        SSL_get0_alpn_selected(t->ssl, &a, &an);
        snprintf(t->alpn, sizeof(t->alpn), "%.*s", (int)an, an ? (const char *)a : "");
    }
    *out = t;
    return 0;
setup_fail:
    et_error_set(e, ET_ETLS, "%sTLS setup failed: %s", t->what, ossl_reason(buf, sizeof(buf)));
    rc = ET_ETLS;
fail:
    et_tls_free(t);
    return rc;
}

long et_tls_read(struct et_tls *t, void *p, size_t n, struct et_error *e)
{
    struct sigpipe_guard g;
    int k;
    errno = 0;
    sigpipe_block(&g); /* a read may answer a key update or renegotiation */
    k = SSL_read(t->ssl, p, (int)ET_MIN(n, (size_t)1 << 30));
    sigpipe_restore(&g);
    if (k > 0)
        return k;
    if (SSL_get_error(t->ssl, k) == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        return 0;
    }
    return io_error(t, k, "TLS read from", e);
}

int et_tls_write_all(struct et_tls *t, const void *p, size_t n, struct et_error *e)
{
    const char *s = p;
    struct sigpipe_guard g;
    int rc = 0;

    sigpipe_block(&g);
    while (n > 0) {
        int k;
        errno = 0;
        k = SSL_write(t->ssl, s, (int)ET_MIN(n, (size_t)1 << 30));
        if (k <= 0) {
            rc = io_error(t, k, "TLS write to", e);
            break;
        }
        s += k;
        n -= (size_t)k;
    }
    sigpipe_restore(&g);
    return rc;
}

void et_tls_set_timeout(struct et_tls *t, int ms)
{
    et_net_set_timeout(t->fd, ms);
}

int et_tls_shutdown(struct et_tls *t)
{
    struct sigpipe_guard g;
    int rc;
    sigpipe_block(&g);
    rc = SSL_shutdown(t->ssl) < 0 ? ET_EIO : 0;
    sigpipe_restore(&g);
    ERR_clear_error();
    return rc;
}

void et_tls_free(struct et_tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    et_free(t);
}

const char *et_tls_version(const struct et_tls *t)
{
    return SSL_get_version(t->ssl);
}

enum et_tls_version et_tls_version_id(const struct et_tls *t)
{
    switch (SSL_version(t->ssl)) {
    case TLS1_VERSION:
        return ET_TLS_1_0;
    case TLS1_1_VERSION:
        return ET_TLS_1_1;
    case TLS1_2_VERSION:
        return ET_TLS_1_2;
    default:
        return ET_TLS_1_3;
    }
}

const char *et_tls_cipher(const struct et_tls *t)
{
    return SSL_CIPHER_get_name(SSL_get_current_cipher(t->ssl));
}

const char *et_tls_alpn(const struct et_tls *t)
{
    return t->alpn;
}

long et_tls_verify_result(const struct et_tls *t, const char **reason)
{
    long vr = SSL_get_verify_result(t->ssl);
    if (reason != NULL)
        *reason = X509_verify_cert_error_string(vr);
    return vr;
}

struct stack_st_X509 *et_tls_peer_chain(const struct et_tls *t)
{
    return SSL_get_peer_cert_chain(t->ssl);
}
