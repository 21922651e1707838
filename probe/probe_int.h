/*
 * Private to probe/: step bookkeeping, the certificate checks over OpenSSL types, the small
 * blocking HTTP/1.1 client the probe talks through, and the state of one run that its files
 * share (struct probe):
 *
 *   probe.c         the run (et_probe_run), step bookkeeping, the URL, the credentials
 *   exchange.c      one EAS exchange: request, numbering and reporting, answer, explanations
 *   autodiscover.c  step 1
 *   steps.c         steps 2 to 8 (DNS+TCP, TLS, OPTIONS, Provision, FolderSync, Sync, Ping)
 *   conn.c          the HTTP/1.1 client;  tls.c the certificate checks
 *   pieces.c        version negotiation, authentication schemes, Autodiscover XML
 *   report.c        the text and JSON renderings
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

/* ---- One run (probe.c, exchange.c, autodiscover.c, steps.c) --------------------------- */

/* The state of one run, from et_probe_run(): the options, the report, the main connection
 * and what the steps learn for the later ones. */
struct probe {
    const struct et_probe_opts *o;
    struct et_probe_report *r;
    struct et_arena *a;
    struct et_probe_conn conn;
    int conn_ready;
    char host[256];
    int port;
    int tls;
    char path[1024];
    char user_param[256];
    char *auth_wire;  /* "Authorization: Basic ...\r\n" */
    char *auth_rec;   /* the same, redacted unless include_secrets */
    const char *device_id, *device_type, *user_agent;
    const char *version;  /* negotiated; NULL before OPTIONS */
    char policy_key[64];
    char inbox_id[256];
    char inbox_key[256];
};

/* Passes a step nothing failed or warned, times it from t0 and reports it (opts.on_step). */
void et__probe_step_done(struct probe *pr, struct et_probe_step *s, int64_t t0);
/* Splits an http(s) URL (or a bare host: https) into host, port, TLS and path (the EAS path
 * when it has none). Returns 0 or ET_EINVAL. */
int et__probe_parse_url(const char *url, char *host, size_t hostlen, int *port, int *tls,
                        char *path, size_t pathlen);

/* Numbers x and reports it to the caller (which records and judges it); x stays ours. */
void et__probe_record(struct probe *pr, struct et_probe_step *s, struct et_exchange *x);
/* One EAS exchange on the main connection (exchange.c says more). */
int et__probe_eas_exchange(struct probe *pr, struct et_probe_step *s, const char *method,
                           const char *cmd, const char *xml, const char *policy_key,
                           int timeout_ms, struct et_exchange **out);
/* The response body decoded as WBXML, or NULL (empty or not WBXML). */
struct et_wbxml_doc *et__probe_response_doc(struct et_exchange *x);
/* doc as XML in the run's arena, or NULL. */
const char *et__probe_doc_xml(struct probe *pr, const struct et_wbxml_doc *doc);
/* Fails s with the reason and next step of a response that is not 200 (or none). Returns 1
 * when it did, 0 for a 200. */
int et__probe_explain_http(struct probe *pr, struct et_probe_step *s,
                           const struct et_exchange *x, const char *what);
/* Fails s with cmd's Status st (in parent, may be NULL) and its meaning. */
void et__probe_status_fail(struct probe *pr, struct et_probe_step *s, const char *cmd,
                           const char *parent, long long st);

/* Step 1: the EAS URL Autodiscover gave, or NULL. */
const char *et__probe_step_autodiscover(struct probe *pr);
/* Steps 2 to 8: each returns 0 when the run may go on to the next. */
int et__probe_step_connect_tls(struct probe *pr);
int et__probe_step_options(struct probe *pr);
int et__probe_step_provision(struct probe *pr);
int et__probe_step_foldersync(struct probe *pr);
int et__probe_step_sync(struct probe *pr);
int et__probe_step_ping(struct probe *pr);

#endif
