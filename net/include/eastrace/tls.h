/*
 * The blocking TLS client of the command-line clients (the SMTP client's STARTTLS, the
 * probe): a handshake over a connected descriptor (eastrace/net.h), then read/write with the
 * descriptor's timeouts. Same error convention as net.h: a negative ET_E* code with e saying
 * what failed, where. Never used on an event loop (the proxy has its own TLS, proxy/).
 *
 *   et_net_connect() -> fd -> [plain talk: STARTTLS, CONNECT] -> et_tls_connect(fd, opts)
 *     -> et_tls_read / et_tls_write_all ... -> et_tls_shutdown -> et_tls_free -> close(fd)
 *
 * Verification: with verify set the handshake itself fails (ET_ECERT, OpenSSL's reason in e)
 * unless the chain leads to ca_file (or the system store) and names host. With verify unset
 * the handshake completes whatever the server sends, so a caller (the probe) can show the
 * very chain that is wrong: et_tls_verify_result() gives what the check would have said and
 * et_tls_peer_chain() the certificates. No OpenSSL header is included here.
 *
 * A peer that has gone never raises SIGPIPE: calls that may write block it in the calling
 * thread for their duration and take back the one they caused (ET_ECONNRESET instead).
 */
#ifndef ET_NET_TLS_H
#define ET_NET_TLS_H

#include <stddef.h>

#include "eastrace/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct et_tls;
struct stack_st_X509; /* OpenSSL's STACK_OF(X509), for callers that link OpenSSL */

/* Protocol versions, oldest first (a minimum to accept; et_tls_version_id()). */
enum et_tls_version {
    ET_TLS_DEFAULT = 0, /* as a minimum: TLS 1.2 */
    ET_TLS_1_0,         /* TLS 1.0 */
    ET_TLS_1_1,         /* TLS 1.1 */
    ET_TLS_1_2,         /* TLS 1.2 */
    ET_TLS_1_3,         /* TLS 1.3 */
};

struct et_tls_opts {
    const char *host;      /* required: SNI when a name (never for an address); the name or
                              address the certificate must match */
    const char *name;      /* the peer in messages ("mail.example.com:587"); NULL: host */
    const char *what;      /* prefix of messages ("SMTP"); NULL: none */
    int verify;            /* 1: refuse an untrusted or misnamed certificate (ET_ECERT) */
    const char *ca_file;   /* PEM trust store; NULL: the system's default paths */
    enum et_tls_version min_version;
    const char *alpn;      /* one protocol to offer ("http/1.1"); NULL: no ALPN */
    int timeout_ms;        /* > 0: SO_RCVTIMEO/SO_SNDTIMEO of fd from now on; 0: keep */
};

/*
 * Handshake as a client over fd (borrowed: et_tls_free() does not close it). Returns 0 with
 * *out set, or ET_ECERT (verify set and the certificate fails: e names host and OpenSSL's
 * reason), ET_ETIMEDOUT, ET_ETLS (setup, CA file, or the handshake failed), ET_EINVAL (no
 * host), ET_ENOMEM; *out is NULL then.
 */
int et_tls_connect(int fd, const struct et_tls_opts *o, struct et_tls **out,
                   struct et_error *e);
/* One read into p (at most n). Returns the count (0: the peer closed with close_notify),
 * or ET_ETIMEDOUT / ET_ECONNRESET (closed without close_notify) / ET_ETLS / ET_EIO (e
 * set). */
long et_tls_read(struct et_tls *t, void *p, size_t n, struct et_error *e);
/* Writes all n bytes. Returns 0, ET_ETIMEDOUT, ET_ECONNRESET, ET_ETLS or ET_EIO (e set). */
int et_tls_write_all(struct et_tls *t, const void *p, size_t n, struct et_error *e);
/* Sets the descriptor's SO_RCVTIMEO/SO_SNDTIMEO to ms (one request's own timeout). */
void et_tls_set_timeout(struct et_tls *t, int ms);
/* Sends close_notify (does not wait for the peer's). Returns 0 or ET_EIO. */
int et_tls_shutdown(struct et_tls *t);
/* Frees t (NULL: nothing); the descriptor stays open. */
void et_tls_free(struct et_tls *t);

/* What was negotiated (valid until et_tls_free): "TLSv1.3", its id, the cipher's name,
 * the ALPN protocol ("" when none was selected). */
const char *et_tls_version(const struct et_tls *t);
enum et_tls_version et_tls_version_id(const struct et_tls *t);
const char *et_tls_cipher(const struct et_tls *t);
const char *et_tls_alpn(const struct et_tls *t);
/* The result of checking the chain against the trust store and host (also with verify
 * unset): 0 when trusted, else OpenSSL's X509_V_ERR_* with *reason (when not NULL) its
 * text. */
long et_tls_verify_result(const struct et_tls *t, const char **reason);
/* The chain the peer sent, leaf first (borrowed, valid until et_tls_free). */
struct stack_st_X509 *et_tls_peer_chain(const struct et_tls *t);

#ifdef __cplusplus
}
#endif
#endif
