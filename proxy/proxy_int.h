/*
 * Private declarations shared by the files of proxy/ (docs/proxy.md has the file map):
 *
 *   http1.c     strict HTTP/1.1 head scanner and chunked decoder (pure; tests and fuzz use it)
 *   policy.c    CIDRs, special addresses, globbing, host names; who may connect, which targets
 *               are allowed, what is intercepted, pinned and verified
 *   leg.c       buffers and TLS legs: chunks, the custom BIO, reads, writes, the TLS pump, the
 *               SSL_CTXs and the client-side SNI/ALPN callbacks
 *   upstream.c  DNS (cache, literals, getaddrinfo), connect with fallback, upstream TLS and the
 *               facts about it
 *   record.c    the only code that builds a struct et_exchange and hands it to on_exchange
 *   forward.c   routing of a request, head rewriting, body framing, the answers we make
 *   conn.c      the connection state machine (et__conn_set_mode is the one place a mode
 *               changes), et__conn_advance, timers, closing
 *   listener.c  the public API: listening socket, accept, stop, the malloc trimmer
 *   reverse.c   reverse mode (--reverse): admission, the PROXY header step, the operator's
 *               certificate, routing to the one upstream, X-Forwarded-For
 *   proxyproto.c the PROXY protocol v1/v2 header parser (pure; tests and fuzz use it)
 *
 * Tests and the fuzz targets include this header too (for the http1.c and policy.c helpers).
 */
#ifndef ET_PROXY_PROXY_INT_H
#define ET_PROXY_PROXY_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <string.h>

#include "eastrace/common.h"
#include "eastrace/exchange.h"
#include "eastrace/proxy.h"

#include <openssl/ssl.h>
#include <uv.h>

#define ET__MAX_HEAD 65536   /* header section cap, start line included */
#define ET__MAX_FIELDS 100   /* header field cap */

struct et__field {
    const char *name;  /* points into the scanned bytes; not NUL-terminated */
    const char *value; /* trimmed */
    uint32_t nlen, vlen;
};

/* Framing a message body uses. */
enum et__framing {
    ET__BODY_NONE = 0,    /* no body */
    ET__BODY_LENGTH = 1,  /* Content-Length bytes */
    ET__BODY_CHUNKED = 2, /* Transfer-Encoding: chunked */
    ET__BODY_EOF = 3      /* response delimited by the connection closing */
};

/*
 * A scanned header section. Every pointer borrows the scanned bytes: valid as long as they
 * are. Filled by et__head_scan().
 */
struct et__head {
    size_t head_len;             /* bytes of the section, final CRLF CRLF included */
    const char *method;          /* request: method */
    uint32_t method_len;
    const char *target;          /* request: request-target */
    uint32_t target_len;
    int status;                  /* response: status code */
    const char *reason;
    uint32_t reason_len;
    uint8_t major, minor;
    size_t n;
    struct et__field f[ET__MAX_FIELDS];
    int64_t content_length;      /* -1 when absent */
    unsigned chunked : 1;        /* Transfer-Encoding: chunked */
    unsigned conn_close : 1;     /* Connection: close */
    unsigned conn_keep_alive : 1;/* Connection: keep-alive */
    unsigned expect_continue : 1;
    unsigned has_host : 1;
};

/*
 * Scans a request (is_request = 1) or response header section at p[0..len), stricter than
 * llhttp 8.1.0: CRLF line ends only (a bare CR or LF anywhere is rejected), no obs-fold, no
 * empty or non-token field names, no control characters in values, at most one
 * Content-Length (digits only), Transfer-Encoding only exactly "chunked" and never together
 * with Content-Length, at most ET__MAX_FIELDS fields and ET__MAX_HEAD bytes; the start line
 * is checked too, and the section is then given to llhttp as a second opinion.
 * Returns 0 (h is filled), ET_EAGAIN (no complete section yet, nothing wrong so far),
 * ET_EPARSE or ET_ETOOBIG (e says what and at which offset).
 */
int et__head_scan(const uint8_t *p, size_t len, int is_request, struct et__head *h,
                  struct et_error *e);

/* Case-insensitive comparison of a field name with a NUL-terminated lower-case name. Inline so
 * that the length of a literal name is known at compile time and most names are told apart by
 * their length alone (strlen per call was 4% of the proxy's CPU at 2 KB exchanges). */
int et__field_eq(const struct et__field *f, const char *lname, size_t n);
static inline int et__field_is(const struct et__field *f, const char *lname)
{
    size_t n = strlen(lname);
    return f->nlen == n && et__field_eq(f, lname, n);
}

/* Strict chunked-body decoder. */
struct et__chunked {
    int state;
    uint64_t remaining;  /* data bytes left in the current chunk */
    unsigned ndigits;
    size_t trailer_bytes;
    unsigned trailer_name; /* inside a trailer field name (before its colon) */
    uint64_t offset;     /* bytes consumed so far (for error offsets) */
};

void et__chunked_init(struct et__chunked *c);
/*
 * Consumes framing from p[0..len). Returns 1 with *data and *dlen set to a span of chunk data
 * (which is consumed too), ET_EAGAIN when all of p was consumed without data, 0 when the
 * message ended (the last CRLF consumed), ET_EPARSE on bad framing (bare CR/LF in a chunk
 * line, a bad size, a missing CRLF after data). *consumed is always set.
 */
int et__chunked_feed(struct et__chunked *c, const uint8_t *p, size_t len, size_t *consumed,
                     const uint8_t **data, size_t *dlen, struct et_error *e);

/* A PROXY protocol header (proxyproto.c). */
#define ET__PP_MAX 4096 /* longest v2 header accepted (16 + address block and TLVs) */
struct et__pp {
    int version;                  /* 1 or 2 */
    unsigned local : 1;           /* LOCAL, UNKNOWN or a non-TCP family: no client address;
                                   * the connection's own peer is the client */
    size_t len;                   /* bytes of the header, to consume */
    struct sockaddr_storage src;  /* the client (port set), unless local */
    struct sockaddr_storage dst;  /* the address the client connected to, unless local */
};

/*
 * Parses a PROXY protocol v1 or v2 header at p[0..n). Returns 0 (*out filled), ET_EAGAIN (no
 * complete header yet, nothing wrong so far) or ET_EPARSE (not exactly the format: e says
 * why and at which offset; the connection must be closed). Decides as soon as the first
 * bytes match neither signature. Pure; never reads past n.
 */
int et__pp_parse(const uint8_t *p, size_t n, struct et__pp *out, struct et_error *e);

/* Access policy. */
struct et__cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned bits;
};

/* Parses "10.0.0.0/8", "::1", "192.0.2.7" (a host route). 0 or ET_EINVAL. */
int et__cidr_parse(const char *s, struct et__cidr *out);
/* Appends c to the growable array *v of *n entries. 0 or ET_ENOMEM. */
int et__cidr_add(struct et__cidr **v, size_t *n, const struct et__cidr *c);
/* 1 when sa (IPv4, IPv6 or IPv4-mapped IPv6) lies inside c. */
int et__cidr_match(const struct et__cidr *c, const struct sockaddr *sa);
/* 1 for loopback, link-local, unspecified (also IPv4-mapped), multicast. */
int et__addr_is_special(const struct sockaddr *sa);
/* 1 for private and shared ranges: 10/8, 172.16/12, 192.168/16, 100.64/10, 192.0.0/24,
 * fc00::/7, fec0::/10, and NAT64 / IPv4-compatible IPv6 embedding a special or private
 * IPv4 address. */
int et__addr_is_private(const struct sockaddr *sa);
/* 1 for the ports a phone's ordinary traffic uses (80, 443). */
int et__port_allowed(int port);
/* 1 when s[0..n) is a valid Host value: host name or IPv4 (et__host_valid) or [IPv6],
 * optionally ":port" with 1..65535. No userinfo, spaces, commas or slashes. */
int et__authority_valid(const char *s, size_t n);
/* 1 when two addresses are the same IP (ports ignored; IPv4-mapped equal to IPv4). */
int et__addr_same_ip(const struct sockaddr *a, const struct sockaddr *b);
/* Glob match with '*' and '?', ASCII case-insensitive. */
int et__glob_match(const char *pat, const char *s);
/* 1 when s holds only host name characters [A-Za-z0-9.-_] or is an IP literal. */
int et__host_valid(const char *s);
/* Socket addresses as text: et_sockaddr_format() (common.h). */

/* ================================================================ the proxy's own types */

#define ET__CHUNK_DATA (16384 + 512) /* one full TLS record fits */
#define ET__TLS_PLAIN_MAX 16384      /* plaintext of one full TLS record */
#define ET__HIGH_WATER (256 * 1024)  /* stop reading the other side above this */
#define ET__DNS_CACHE_SIZE 64
#define ET__MAX_ADDRS 4
#define ET__HOLD_MAX (64 * 1024) /* request bytes held back until the request is complete */
#define ET__MAX_KNOWN 256        /* client addresses that completed an exchange */
#define ET__MAX_NOTED 64         /* refused client addresses, for the once-a-minute line */

#define et__container_of(ptr, type, member)                                                      \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* A buffer of the per-proxy pool (ET__CHUNK_DATA bytes) or a one-off big one (long heads). */
struct et__chunk {
    struct et__chunk *next;
    uint32_t off, len, cap;
    uint8_t data[];
};

/* A write request: owns its chunks until on_write gives them back; recycled per proxy. */
struct et__wreq {
    uv_write_t req;
    struct et__leg *leg;
    struct et__wreq *next_free;
    unsigned n;
    size_t bytes;
    struct et__chunk *c[8];
    uv_buf_t b[8];
};

/* Facts about an upstream TLS session, computed once per connection (upstream.c). */
struct et__upinfo {
    char *version, *cipher, *alpn, *subject, *issuer, *not_before, *not_after, *sha256;
    char *verify; /* "verify code N: reason" when the certificate was rejected */
};

struct et__conn;

/* One side of a connection: a TCP socket, optional TLS, its input and output chunks. */
struct et__leg {
    uv_tcp_t tcp;
    struct et_proxy *p;
    struct et__conn *conn;   /* NULL once an upstream leg is detached (closing) */
    SSL *ssl;                /* NULL: plaintext */
    struct et__chunk *cin;   /* TLS ciphertext received, not yet read by OpenSSL */
    struct et__chunk *in;    /* plaintext received, not yet processed */
    struct et__chunk *out_head, *out_tail; /* plaintext queued (before SSL_write on TLS legs) */
    struct et__chunk *w_head, *w_tail;     /* bytes ready for uv_write */
    size_t queued;           /* bytes in out + w + in flight */
    unsigned handle_open : 1, reading : 1, eof : 1, closing : 1, connected : 1, hs_done : 1,
        is_up : 1, tls : 1, close_after_flush : 1, failed : 1,
        cert_asked : 1; /* upstream: the server sent a CertificateRequest */
    /* Upstream identity (for reuse): host, port, tls, sni. */
    char *host;
    char *sni;
    int port;
    struct et__upinfo *info;
    uv_connect_t creq;
    struct sockaddr_storage peer;
};

/*
 * Connection mode: what the client connection is. et__conn_set_mode() (conn.c) is the only
 * code that changes it, and it asserts that the change is one of these arrows:
 *
 *                 accept (calloc: ET__M_HTTP)
 *                   |
 *                   v
 *              ET__M_HTTP ---- absolute-form requests, install page: [exchange loop]
 *                   | CONNECT host:port (forward.c)
 *                   v
 *            ET__M_RESOLVING -- DNS / cache / literal; every address checked (upstream.c)
 *            intercept |     \ tunnel (--intercept miss, pinned host, no certs)
 *          "200", TLS  v      v
 *            ET__M_TLS_HS   ET__M_TUNNEL_WAIT -- upstream TCP up, "200" --> ET__M_TUNNEL
 *                   | client handshake done
 *                   v
 *              ET__M_MITM ---- HTTP/1.1 inside the client TLS: [exchange loop]
 *
 *   reverse mode (--reverse, reverse.c): at accept the connection leaves ET__M_HTTP at once,
 *   and never enters the forward modes above (nor a forward proxy these):
 *
 *              ET__M_HTTP --accept, --accept-proxy-protocol--> ET__M_PROXYHDR
 *                 |   \                                         |  header read (peer trusted)
 *                 |    \--accept, --cert--> ET__M_REV_TLS <-----+ (--cert)
 *                 |                            | handshake done  |
 *                 |                            v                 v (plain listener)
 *                 +----accept, plain-------> ET__M_REVERSE <-----+
 *                                             HTTP/1.1 to the one upstream: [exchange loop]
 *
 *   every mode --(error, deadline, end of stream, Connection: close)--> ET__M_CLOSING
 *   ET__M_CLOSING --> ET__M_CLOSING (closing again is harmless)
 *
 * The exchange loop (ET__M_HTTP, ET__M_MITM and ET__M_REVERSE) runs two direction states, rq and rs:
 *   rq: ET__RQ_HEAD --head scanned--> ET__RQ_BODY --body framed--> ET__RQ_DONE
 *   rs: ET__RS_NONE --request sent--> ET__RS_HEAD --head forwarded--> ET__RS_BODY --> ET__RS_DONE
 *   both done: the exchange is recorded, back to HEAD/NONE (keep-alive) or ET__M_CLOSING.
 */
enum et__mode {
    ET__M_HTTP = 0,        /* plain explicit-proxy HTTP from the client */
    ET__M_RESOLVING = 1,   /* CONNECT received, resolving/checking the target */
    ET__M_TLS_HS = 2,      /* CONNECT accepted, TLS handshake with the client */
    ET__M_MITM = 3,        /* HTTP inside the intercepted TLS */
    ET__M_TUNNEL_WAIT = 4, /* CONNECT to be tunnelled, connecting upstream */
    ET__M_TUNNEL = 5,      /* blind relay */
    ET__M_CLOSING = 6,     /* flushing what is queued, then closing */
    ET__M_PROXYHDR = 7,    /* reverse: waiting for the load balancer's PROXY header */
    ET__M_REV_TLS = 8,     /* reverse: TLS handshake with the client (operator's certificate) */
    ET__M_REVERSE = 9      /* reverse: HTTP from the client, to the one upstream */
};

/* 1 for the modes that run the exchange loop (requests and responses). */
static inline int et__mode_http(enum et__mode m)
{
    return m == ET__M_HTTP || m == ET__M_MITM || m == ET__M_REVERSE;
}

/* Request direction. */
enum et__rq {
    ET__RQ_HEAD = 0,  /* waiting for a request head */
    ET__RQ_BODY = 1,  /* streaming the request body upstream */
    ET__RQ_DONE = 2   /* request complete */
};

/* Response direction. */
enum et__rs {
    ET__RS_NONE = 0,  /* no request sent */
    ET__RS_HEAD = 1,  /* waiting for the response head */
    ET__RS_BODY = 2,  /* streaming the response body to the client */
    ET__RS_DONE = 3   /* response complete */
};

/* How a body is framed on the way in and on the way out. */
struct et__bodyframe {
    enum et__framing kind;
    enum et__framing out_kind; /* how we frame it towards the other side */
    uint64_t remaining;
    struct et__chunked ck;
};

/* A body being recorded (record.c): in the exchange's arena when its length is known. */
struct et__capbuf {
    uint8_t *data;
    size_t len, cap;
    uint64_t wire;
    unsigned in_arena : 1, truncated : 1;
};

/* A pending getaddrinfo; conn is NULL when the connection went away meanwhile. */
struct et__resolve {
    uv_getaddrinfo_t req;
    struct et__conn *conn;
};

/* A client connection: the client leg, the current upstream leg, mode and exchange. */
struct et__conn {
    struct et__leg cl;
    struct et__leg *up;
    struct et_proxy *p;
    struct et__conn *prev, *next;
    struct et__conn *flush_next; /* in p->flush_head while flush_pending */
    uv_timer_t timer;
    int handles;              /* open handles (client tcp, timer); freed at 0 */
    enum et__mode mode;       /* written by et__conn_set_mode() only */
    enum et__rq rq;
    enum et__rs rs;
    struct et__bodyframe reqf, respf;
    struct et_exchange *x;    /* the exchange being recorded (record.c) */
    struct et__capbuf reqbody, respbody;
    struct et__resolve *res;
    char client_addr[56];
    char *connect_host;       /* CONNECT target host, or NULL */
    int connect_port;
    char *sni;                /* SNI the client sent in the intercepted handshake */
    char *target_host;        /* current request's target */
    int target_port;
    unsigned target_tls : 1, req_is_head : 1, client_close : 1, resp_started : 1,
        local : 1, up_ready : 1, resolved : 1, intercept : 1, tunnel : 1, flush_pending : 1,
        advance_pending : 1,
        quiet : 1,    /* nothing received since accept or since the mode began */
        hold_req : 1, /* the request is held back from upstream until complete */
        named : 1,    /* the target is named by --allow-target or --intercept */
        norec : 1,    /* this exchange is forwarded unrecorded (et_proxy_opts.select) */
        proxied : 1;  /* reverse: a PROXY header named the client; `via` is the peer */
    struct sockaddr_storage peer; /* the client's address (reverse: from a PROXY header) */
    struct sockaddr_storage via;  /* the load balancer that sent the PROXY header */
    uint64_t nreq;            /* requests handled on this connection (CONNECT excluded) */
    int naddr;
    struct sockaddr_storage addrs[ET__MAX_ADDRS];
    int addr_i;
    int64_t t_accept, t_req_begin;
    uint64_t deadline;
    uint64_t timer_due;
    enum et_proxy_timer tkind;
    int tkind_set;
    uint64_t tun_up, tun_down;
    int64_t tun_begin;
};

/* A host a client refused our certificate for: tunnelled for that client until `until`. */
struct et__pin {
    char *host;
    struct sockaddr_storage client;
    uint64_t until; /* uv_now() milliseconds */
};

/* A refused client address and when it was last logged. */
struct et__note {
    struct sockaddr_storage a;
    uint64_t at;
};

struct et__dns_entry {
    char host[256];
    int naddr;
    struct sockaddr_storage a[ET__MAX_ADDRS];
    uint64_t expires;
};

/* One queued exchange and the bytes it holds (worker.c). */
struct et__wq_item {
    struct et_exchange *x;
    size_t bytes;
};

/* The worker thread and its queue; mu guards every field below it. */
struct et__worker {
    uv_thread_t thread;
    uv_async_t resume;       /* worker -> loop: the queue drained below the low mark */
    uv_mutex_t mu;
    uv_cond_t cv;
    struct et__wq_item *q;   /* ring of cap items, n of them from head */
    size_t cap, head, n, bytes;
    unsigned started : 1, stop : 1, async_open : 1;
    unsigned busy : 1;       /* the worker took an exchange since it last waited */
    unsigned sleeping : 1;   /* the worker waits untimed: a push must wake it */
    unsigned paused : 1;     /* written on the loop (under mu); read there without it */
};

struct et_proxy {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t async;
    uv_timer_t trim;      /* gives freed heap back after connection churn */
    uv_check_t flusher;   /* after each poll phase: flushes the connections that advanced */
    uv_prepare_t flusher_pre; /* and before it: what timers and write callbacks staged */
    struct et__conn *flush_head;
    uint64_t trim_seen;   /* st.connections at the last trim */
    struct et_proxy_opts o;
    SSL_CTX *sctx, *cctx, *cctx_insecure;
    BIO_METHOD *biometh;
    struct et__chunk *free_chunks;
    unsigned n_free;
    struct et__wreq *free_wreqs;
    struct et__conn *conns;
    struct et_proxy_stats st;
    uint64_t next_id;
    struct et__head head; /* scratch, one thread */
    struct et__cidr *allow_clients;
    size_t n_allow_clients;
    struct et__cidr *allow_targets;
    size_t n_allow_targets;
    struct sockaddr_storage *own;
    size_t n_own;
    struct et__pin *pins;
    size_t n_pins;
    struct sockaddr_storage known[ET__MAX_KNOWN]; /* clients that completed an exchange */
    size_t n_known, known_next;
    struct et__note noted[ET__MAX_NOTED];
    size_t noted_next;
    size_t max_conns;     /* o.max_conns, or from RLIMIT_NOFILE */
    struct et__dns_entry dns[ET__DNS_CACHE_SIZE];
    unsigned dns_next;
    char listen_str[64];
    int port;
    struct et__worker worker; /* used when o.on_exchange_worker is set */
    SSL_CTX *rsctx;       /* reverse: the client-facing context with --cert/--key */
    struct et__cidr *trusted; /* reverse: --trusted-proxy peers (PROXY headers) */
    size_t n_trusted;
    int rev_port;         /* reverse: the upstream's port (o.reverse_port or its default) */
    unsigned stopping : 1, running : 1, handles_closed : 1;
};

/* ---------------------------------------------------------------- policy.c (decisions) */

/* Parses o->allow and o->allow_target into p. 0, ET_EINVAL (e set) or ET_ENOMEM. */
int et__policy_init(struct et_proxy *p, const struct et_proxy_opts *o, struct et_error *e);
/* Our own addresses (targets refused unless named). Clients are admitted by --allow only. */
void et__policy_load_interfaces(struct et_proxy *p);
/* Frees what et__policy_init, et__policy_load_interfaces and et__policy_pin allocated. */
void et__policy_free(struct et_proxy *p);
/* A notice for the operator (et_proxy_opts.on_log), one line. */
void et__plog(struct et_proxy *p, const char *fmt, ...) ET_PRINTF(2, 3);
/* The IP of sa without the port ("10.0.0.1", "fd00::1"). */
void et__ip_format(const struct sockaddr *sa, char *out, size_t outlen);
/* 1 when a client at sa may use the proxy (loopback, --allow). */
int et__client_allowed(struct et_proxy *p, const struct sockaddr *sa);
/* Connection caps for a new connection c (counted in st.active already): sheds the oldest
 * idle connection at a cap (an unknown client's first), 0 when c must be refused. */
int et__caps_admit(struct et_proxy *p, struct et__conn *c);
/* A log line about a refused client, at most once a minute per address. */
void et__note_refused(struct et_proxy *p, const struct sockaddr *sa, const char *fmt, ...)
    ET_PRINTF(3, 4);
/* A client that completed an exchange (known clients win at the connection cap). */
void et__remember_client(struct et_proxy *p, const struct sockaddr *sa);
/* 1 when the operator named host (--allow-target name or CIDR of an IP literal, or an
 * --intercept pattern): any port and any address is then allowed. */
int et__target_named(struct et_proxy *p, const char *host);
/* Why the resolved address sa of an unnamed target is refused, or NULL when allowed. */
const char *et__target_refusal(struct et_proxy *p, const struct sockaddr *sa);
/* Refuses the current request's target: 403, recorded, a log line. addr may be NULL. */
void et__deny_target(struct et__conn *c, const char *method, const char *host, int port,
                     const char *addr, const char *why);
/* 1 when c's CONNECT to host is intercepted (certs loaded, not pinned for this client,
 * --intercept match). */
int et__should_intercept(struct et_proxy *p, const struct et__conn *c, const char *host);
/* 1 when host's upstream certificate is not verified (--insecure-upstream, exact or glob). */
int et__host_insecure(struct et_proxy *p, const char *host);
/* Pins host for c's client (tunnelled untouched for the pin time); a full set is ignored. */
void et__policy_pin(struct et_proxy *p, const struct et__conn *c, const char *host);
/* Drops every pin of c's client (it fetched the install page). Returns how many. */
size_t et__policy_unpin_client(struct et_proxy *p, const struct et__conn *c);
/* The configured pin time as text ("10 min", "90 s"). */
void et__pin_time_text(const struct et_proxy *p, char *out, size_t outlen);

/* ---------------------------------------------------------------- leg.c */

struct et__chunk *et__chunk_get(struct et_proxy *p);
/* Returns a chunk to the pool (or frees it); NULL does nothing. */
void et__chunk_put(struct et_proxy *p, struct et__chunk *c);
void et__chunk_list_put(struct et_proxy *p, struct et__chunk *c);
/* Creates the BIO method and the three SSL_CTXs (client-facing, verifying, insecure). */
int et__tls_setup(struct et_proxy *p, struct et_error *e);
void et__tls_free(struct et_proxy *p);
/* Puts TLS on leg l with a new SSL from ctx over the leg's BIO (SSL_MODE_RELEASE_BUFFERS).
 * The caller sets accept or connect state. 0 or ET_ETLS. */
int et__leg_tls_new(struct et__leg *l, SSL_CTX *ctx);
/* Frees a leg's chunks, SSL, upstream facts and names (not the leg itself). */
void et__leg_free_bufs(struct et_proxy *p, struct et__leg *l);
/* uv_close callback of a heap-allocated (upstream) leg: frees it. */
void et__leg_on_closed(uv_handle_t *h);
void et__leg_read_start(struct et__leg *l);
void et__leg_read_stop(struct et__leg *l);
/* Encrypts staged plaintext (TLS legs) and starts writes. */
void et__leg_flush(struct et__leg *l);
/* Queues plaintext bytes for a leg (copied). 0 or ET_ENOMEM. */
int et__leg_write(struct et__leg *l, const void *d, size_t n);
int et__leg_printf(struct et__leg *l, const char *fmt, ...) ET_PRINTF(2, 3);
/* Drops n processed bytes from the front of l->in (an emptied chunk goes back). */
void et__leg_in_consume(struct et__leg *l, size_t n);
/* Moves l->in into a one-off chunk big enough for a whole header section. */
int et__leg_in_grow(struct et__leg *l);
/* Runs the handshake and decrypts into `in`. 0, 1 (handshake just completed), or ET_ETLS /
 * ET_ENOMEM (a handshake failure has the SSL error code in *sslerr). */
int et__leg_tls_pump(struct et__leg *l, unsigned long *sslerr);
/* 1 when a TLS leg holds ciphertext or decrypted bytes that did not fit into `in`. */
int et__leg_tls_has_more(const struct et__leg *l);

/* ---------------------------------------------------------------- upstream.c */

/* Resolves c->target_host (literal, cache or uv_getaddrinfo), then et__target_resolved(). */
void et__resolve_target(struct et__conn *c);
/* Abandons a pending lookup (its callback then only frees it). */
void et__resolve_cancel(struct et__conn *c);
/* c->addrs holds the target's addresses: checks each against the policy (DNS rebinding),
 * then hands over to et__conn_on_target(). */
void et__target_resolved(struct et__conn *c);
/* Starts a new upstream leg for the current target (adopting the old leg's staged bytes). */
void et__up_start(struct et__conn *c);
/* Detaches and closes the upstream leg; its close callback frees it. */
void et__up_close(struct et__conn *c);
/* Upstream TLS: handshake, verification result, decryption; on completion collects the TLS
 * facts and calls et__conn_up_ready(). Failures go to et__conn_fail() (a rejected
 * certificate with its SHA-256, subject, issuer and OpenSSL verify code). */
void et__up_pump(struct et__conn *c);
/* SSL_CTX client-certificate callback of the upstream contexts: notes the request. */
int et__on_client_cert_request(SSL *ssl, X509 **x509, EVP_PKEY **pkey);
/* The server asked for a client certificate and refused us: says so, pins the host for
 * this client, fails the exchange with 502. */
void et__up_wants_client_cert(struct et__conn *c);

/* ---------------------------------------------------------------- record.c */

/* The current exchange, made on first use (NULL: no memory). */
struct et_exchange *et__rec_exchange(struct et__conn *c);
/* Starts recording a body of known length (> 0 and within body_cap: straight in the arena). */
void et__cap_init(struct et__conn *c, struct et__capbuf *b, int64_t known);
/* Records n body bytes (up to body_cap, wire length always). */
void et__cap_add(struct et__conn *c, struct et__capbuf *b, const uint8_t *d, size_t n);
void et__cap_drop(struct et__capbuf *b);
/* The request line and header fields of h. */
void et__rec_request(struct et__conn *c, const struct et__head *h);
/* Where the request goes; https also marks TLS present. */
void et__rec_target(struct et__conn *c, const char *scheme, const char *host, int port);
void et__rec_intercepted(struct et__conn *c, int yes);
/* The request ended now. */
void et__rec_req_end(struct et__conn *c);
/* The response status line and header fields of h. */
void et__rec_response(struct et__conn *c, const struct et__head *h);
/* A response the proxy made itself (error page, install page), unless one is recorded. */
void et__rec_local_response(struct et__conn *c, int status, const char *reason,
                            const char *ctype, const void *body, size_t blen);
/* A client handshake failed before any request: record it as the CONNECT it was. */
void et__rec_connect_attempt(struct et__conn *c);
/* Marks the exchange (made when needed) failed with msg. */
void et__rec_fail(struct et__conn *c, int code, enum et_stage stage, const char *msg);
/* The client's stream ended: a started exchange is marked reset by the client. */
void et__rec_client_eof(struct et__conn *c);
/* Drops the current exchange unrecorded (an intercepted CONNECT: the requests inside count). */
void et__rec_discard(struct et__conn *c);
/* Hands the current exchange to on_exchange (bodies, upstream facts, end times). */
void et__rec_finish(struct et__conn *c);
/* The connection closes: a tunnel's exchange is completed and handed over, a started
 * exchange is marked reset (unless already failed) and handed over. */
void et__rec_close(struct et__conn *c);
/* Frees what is still being recorded (the connection is freed). */
void et__rec_free(struct et__conn *c);

/* ---------------------------------------------------------------- forward.c */

/* A complete request head h is at the front of cl.in: record it, route it, forward it. */
void et__handle_request(struct et__conn *c, const struct et__head *h);
/* The response head h is at the front of up->in. */
void et__handle_response(struct et__conn *c, const struct et__head *h);
/* Moves body bytes from src->in to dst (re-framed; dst NULL drops them), recording them.
 * 1 when the body is complete, 0 when more is needed, negative on a framing error (e set). */
int et__pump_body(struct et__conn *c, struct et__leg *src, struct et__leg *dst,
                  struct et__bodyframe *f, struct et__capbuf *cap, struct et_error *e);
/* 1 when f is hop-by-hop (the fixed list, or named by a Connection field of h). */
int et__field_hop(const struct et__head *h, const struct et__field *f);
/* Splits "host[:port]" / "[v6][:port]" (defport when absent; 0: required). 0, ET_EPARSE or
 * ET_ENOMEM; *host is allocated. */
int et__split_authority(const char *s, size_t n, int defport, char **host, int *port);
/* Writes a complete small response to the client (and records it). */
void et__send_simple(struct et__conn *c, int status, const char *ctype, const void *body,
                     size_t blen, int close);
const char *et__reason_of(int status);

/* ---------------------------------------------------------------- reverse.c */

/* Checks the reverse options, parses --trusted-proxy, loads --cert/--key (a key file readable
 * by group or others is refused with ET_EPERM). Does nothing for a forward proxy. 0 or ET_E*. */
int et__rev_init(struct et_proxy *p, struct et_error *e);
void et__rev_free(struct et_proxy *p);
/* A reverse connection was accepted: admits it (--trusted-proxy with PROXY headers, --allow
 * otherwise) and sets its first mode. 0, or -1 when refused (c is closing or closed). */
int et__rev_accept(struct et__conn *c);
/* ET__M_PROXYHDR: reads the PROXY header from cl.in; then the client's own mode. */
void et__rev_on_header(struct et__conn *c);
/* A request head in ET__M_REVERSE: refuses CONNECT, absolute-form and other targets that are
 * not origin-form (answered, recorded, logged: -1); else records the target and gives the
 * upstream in *host (allocated) and *port: 0. */
int et__rev_route(struct et__conn *c, const struct et__head *h, char **host, int *port);
/* Writes the request head for the upstream: request line and end-to-end field lines as the
 * client sent them, X-Forwarded-For appended, X-Forwarded-Proto when absent. */
void et__rev_write_head(struct et__conn *c, struct et__leg *w, const struct et__head *h);
/* A new exchange of a reverse connection: marks it reverse, the client leg's TLS, the load
 * balancer it came through. */
void et__rev_rec_init(struct et__conn *c, struct et_exchange *x);

/* ---------------------------------------------------------------- worker.c */

/* Starts the worker thread when o.on_exchange_worker is set (else does nothing). 0 or ET_E*. */
int et__worker_start(struct et_proxy *p);
/* Queues x for the worker (takes it); pauses new requests above the high mark. */
void et__worker_push(struct et_proxy *p, struct et_exchange *x);
/* Closes the worker's loop handle (the proxy is stopping). */
void et__worker_close(struct et_proxy *p);
/* Lets the worker drain the queue, then joins it. Idempotent. */
void et__worker_stop(struct et_proxy *p);
/* Stops the worker and frees the queue. */
void et__worker_free(struct et_proxy *p);

/* ---------------------------------------------------------------- conn.c */

/* The one place the mode changes (asserts the arrow is in the diagram above). */
void et__conn_set_mode(struct et__conn *c, enum et__mode to);
/* Runs TLS, the HTTP machine, flushes both legs, then decides reads and deadlines. */
void et__conn_advance(struct et__conn *c);
/* Decides what to read next and arms the deadline that applies. */
void et__conn_update_io(struct et__conn *c);
/* Writes what the connections that advanced since the last call staged, one write per leg
 * however many reads it took (conn.c). Runs after the poll phase (uv_check) and before it
 * (uv_prepare: what timers and write callbacks staged must not wait for the poll). */
void et__conn_flush_all(struct et_proxy *p);
/* Puts c on the flush list (advance: et__conn_advance it first, as a write completion
 * would have: a write finished at once, or failed). */
void et__conn_want_flush(struct et__conn *c, int advance);
/* Arms (or extends) the connection's deadline of the given kind. */
void et__conn_deadline(struct et__conn *c, enum et_proxy_timer kind);
/* Records a failure (answering status when possible, 0: no answer), finishes the exchange,
 * closes the upstream and moves to ET__M_CLOSING. */
void et__conn_fail(struct et__conn *c, int code, enum et_stage stage, int status,
                   const char *fmt, ...) ET_PRINTF(5, 6);
/* Closes the connection and everything it owns (freed in the close callbacks). */
void et__conn_close(struct et__conn *c);
/* The target's addresses passed the policy: continue by mode (intercept, tunnel, connect). */
void et__conn_on_target(struct et__conn *c);
/* The upstream leg is connected (and its TLS done): flush the request or start the tunnel. */
void et__conn_up_ready(struct et__conn *c);
/* A leg read nread bytes (or an error): the connection reacts. */
void et__conn_on_read(struct et__leg *l, ssize_t nread);

#endif
