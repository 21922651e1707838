/*
 * Private to probe/: step bookkeeping, the certificate checks over OpenSSL types and the small
 * blocking HTTP/1.1 client the probe talks through.
 */
#ifndef ET_PROBE_PROBE_INT_H
#define ET_PROBE_PROBE_INT_H

#include "eastrace/probe.h"
#include "probe_pieces.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

struct et_tls; /* net/'s TLS client (eastrace/tls.h) */

/* ---- Steps ---------------------------------------------------------------------------- */

/* Appends a detail line (printf-style) to s; lines go to arena a. Returns 0 or ET_ENOMEM. */
int et__probe_line(struct et_probe_step *s, struct et_arena *a, const char *fmt, ...)
    ET_PRINTF(3, 4);
/* Raises s->result to r (never lowers it) and, when r is at least as bad as what set the
 * current reason, replaces reason and next step (either may be NULL to keep the old one). */
void et__probe_set(struct et_probe_step *s, struct et_arena *a, enum et_probe_result r,
                   const char *reason, const char *next_step);

/* ---- Certificates --------------------------------------------------------------------- */

/*
 * The checks of step 3 over the chain the server sent (leaf first, borrowed) against store.
 * See et_probe_check_chain_pem().
 */
int et__probe_check_chain(STACK_OF(X509) *sent, X509_STORE *store, const char *host,
                          time_t now, struct et_arena *a, struct et_probe_step *s);
/* A trust store from ca_file, or the system default paths when NULL. NULL on failure. */
X509_STORE *et__probe_store_new(const char *ca_file);

/* ---- HTTP client ---------------------------------------------------------------------- */

struct et_probe_conn {
    int fd;
    struct et_tls *tls_conn;  /* after the handshake (https) */
    int tls;                  /* https */
    char host[256];
    int port;
    char peer[80];            /* "127.0.0.1:8443" actually connected to */
    int timeout_ms;
    const char *proxy;        /* host:port or NULL */
    const char *ca_file;
    int reused;               /* a request already went over this connection */
    int closed;               /* the server said Connection: close or closed */
    struct et_buf in;         /* bytes read past the last response */
};

/* A request to make. headers: "Name: value\r\n" lines, without Host/Content-Length. */
struct et_probe_req {
    const char *method;
    const char *target;       /* origin-form */
    const char *headers;      /* wire headers (real Authorization) */
    const char *headers_rec;  /* recorded headers (redacted); NULL means same as headers */
    const uint8_t *body;
    size_t body_len;
    int timeout_ms;           /* read timeout for this response; 0 means the connection's */
};

void et__probe_conn_init(struct et_probe_conn *c, const char *host, int port, int tls,
                         const char *proxy, const char *ca_file, int timeout_ms);
/* Resolves and connects (through the proxy's CONNECT when set); TLS handshake without
 * verification (the caller checks the chain). err receives the reason. stage gets the
 * et_stage that failed. Returns 0 or ET_EDNS / ET_ECONNREFUSED / ET_ETIMEDOUT / ET_ETLS /
 * ET_EIO. */
int et__probe_conn_open(struct et_probe_conn *c, char *err, size_t errlen,
                        enum et_stage *stage);
void et__probe_conn_close(struct et_probe_conn *c);
/*
 * Sends req and reads its response into a new exchange *out (request and response parsed,
 * timings, TLS facts, source ET_SRC_PROBE). Reopens a connection the server closed. Returns
 * 0 with a response, or an ET_E* with *out still set when the failure is recorded in it
 * (x->err). */
int et__probe_conn_exchange(struct et_probe_conn *c, const struct et_probe_req *req,
                            struct et_exchange **out);

#endif
