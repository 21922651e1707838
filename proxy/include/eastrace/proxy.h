/*
 * eastrace live capture proxy: an explicit HTTP/1.1 proxy (absolute-form requests and
 * CONNECT) that intercepts TLS with per-host leaf certificates from certs/, forwards to the
 * real server with certificate checks, holds EAS long polls, and hands every finished or
 * failed exchange to a callback; or, in reverse mode (et_proxy_opts.reverse_host), stands in
 * front of one server with the operator's certificate. One libuv loop, one thread; see
 * docs/proxy.md.
 *
 * The types are opaque: no libuv or OpenSSL header leaks out of this one.
 */
#ifndef ET_PROXY_PROXY_H
#define ET_PROXY_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/common.h"
#include "eastrace/exchange.h"

#ifdef __cplusplus
extern "C" {
#endif

struct et_proxy;
struct et_certs;

/* Which deadline a timeout value belongs to (for et_proxy_opts.timeout_hook). */
enum et_proxy_timer {
    ET_PROXY_T_IDLE = 0,      /* keep-alive connection with no request in progress */
    ET_PROXY_T_HEADER = 1,    /* whole request header section / client TLS handshake */
    ET_PROXY_T_CONNECT = 2,   /* upstream DNS + TCP connect + TLS handshake */
    ET_PROXY_T_LONGPOLL = 3,  /* request outstanding (or tunnel) with no progress */
    ET_PROXY_T_PIN = 4        /* how long a host a client refused stays tunnelled for it */
};

/*
 * Called on the loop thread for every finished or failed exchange (and every tunnel).
 * Takes ownership of x: free it with et_exchange_free(), now or later. With
 * et_proxy_opts.on_exchange_worker set, on_exchange borrows x instead (see there).
 */
typedef void (*et_proxy_exchange_cb)(struct et_exchange *x, void *ud);

/*
 * Called on the loop thread when a request has been read whole and its response is awaited
 * (a held long poll starts here). x is borrowed for the call only: the request line, headers
 * and the body recorded so far, and in x->id the proxy's number that the finished exchange
 * given to on_exchange carries too.
 */
typedef void (*et_proxy_request_cb)(const struct et_exchange *x, void *ud);

/*
 * Replaces a configured timeout (milliseconds) just before it is armed; tests use it to scale
 * time so a held long poll does not take an hour. Returns the value to use.
 */
typedef uint64_t (*et_proxy_timeout_cb)(enum et_proxy_timer which, uint64_t ms, void *ud);

/*
 * One line for the operator (no newline), on the loop thread: refusals by policy, clients
 * not admitted (once a minute per address), pins that expire or are cleared. The line is
 * plain ASCII (host names and addresses pass et__host_valid or are formatted by us); valid
 * only during the call.
 */
typedef void (*et_proxy_log_cb)(const char *line, void *ud);

/*
 * Called on the loop thread once a request head has been read (x borrowed for the call: the
 * request line and headers). Returns 1 to record the exchange, 0 to forward it unrecorded
 * (not given to on_request, on_exchange or the worker; counted in stats.unrecorded). With a
 * select callback set, exchanges without a request (a malformed head, a failed handshake, a
 * tunnel) are not recorded either: they cannot be attributed.
 */
typedef int (*et_proxy_select_cb)(const struct et_exchange *x, void *ud);

struct et_proxy_opts {
    const char *listen_addr;   /* IPv4/IPv6 literal; NULL: "127.0.0.1" */
    int listen_port;           /* 0 picks a free port (see et_proxy_port); -1: 8888 */
    /* Client CIDRs admitted besides loopback ("192.168.1.0/24"); nobody else is. */
    const char *const *allow;
    size_t n_allow;
    /* Targets allowed although their port is not 80/443 or their address is loopback,
     * link-local, private, unspecified or our own: host names (exact, case-insensitive), IP
     * literals or CIDRs. A host matching an intercept pattern is allowed the same way. */
    const char *const *allow_target;
    size_t n_allow_target;
    /* Glob patterns on the CONNECT host ("*.contoso.com"); none: intercept every host. */
    const char *const *intercept;
    size_t n_intercept;
    /* Hosts whose upstream certificate is not verified (every such exchange has
     * tls.insecure = 1). */
    const char *const *insecure_upstream;
    size_t n_insecure_upstream;
    const char *upstream_ca_file; /* PEM bundle for upstream checks; NULL: system store */
    size_t body_cap;              /* bytes of each body recorded; 0: 1 MiB */
    uint64_t idle_timeout_ms;     /* 0: 120 s */
    uint64_t header_timeout_ms;   /* 0: 10 s; also a new connection's first byte */
    uint64_t connect_timeout_ms;  /* 0: 30 s */
    uint64_t longpoll_timeout_ms; /* 0: 3660 s; values below 3660 s are raised to it */
    struct et_certs *certs;       /* borrowed; NULL: CONNECT is tunnelled, never intercepted */
    et_proxy_exchange_cb on_exchange; /* may be NULL (exchanges are then freed) */
    void *ud;
    et_proxy_request_cb on_request;   /* may be NULL; gets ud too */
    /*
     * Optional: slow work off the loop. When set, every exchange goes first to on_exchange
     * on the loop thread, which then only borrows x (do there what must happen before the
     * next exchange, such as writing the capture record), then through a bounded queue to
     * on_exchange_worker on the proxy's one worker thread, in the order they finished, which
     * takes ownership of x. Decoding, analysis and rendering belong here: they no longer hold
     * up the relay. While the queue is full (1024 exchanges or 64 MiB of their arenas) the
     * proxy reads no new requests, so nothing is dropped; et_proxy_run() returns once the
     * worker has drained the queue. x == NULL means the queue is empty for now (a good moment
     * to flush buffered output).
     */
    et_proxy_exchange_cb on_exchange_worker;
    void *worker_ud;
    et_proxy_timeout_cb timeout_hook; /* may be NULL */
    void *timeout_ud;
    et_proxy_log_cb on_log;       /* may be NULL */
    void *log_ud;
    size_t max_conns;             /* client connections at once; 0: from RLIMIT_NOFILE */
    size_t max_conns_per_client;  /* per client address; 0: 64 (loopback: no per-client cap) */
    uint64_t pin_ms;              /* a refused host stays tunnelled for that client; 0: 10 min;
                                   * 1: never pinned */
    et_proxy_select_cb select;    /* may be NULL: every exchange is recorded */
    void *select_ud;
    /*
     * Reverse mode (docs/proxy.md "Reverse mode"): with reverse_host set the proxy stands in
     * front of that one server (an Exchange Client Access server): origin-form requests only
     * (CONNECT and absolute-form are refused), every request goes to reverse_host:reverse_port,
     * X-Forwarded-For appended. allow, when given, limits the clients (else everyone is
     * admitted: the only target is the one server); allow_target, intercept and certs are
     * not used. Host name or IP literal; verified like any upstream (upstream_ca_file,
     * insecure_upstream).
     */
    const char *reverse_host;
    int reverse_port;             /* 0: 443 (reverse_tls) or 80 */
    int reverse_tls;              /* 1: TLS to the server */
    /* The certificate chain (PEM, leaf first) and private key (PEM, mode 0600 or stricter)
     * the clients see; both NULL: a plain HTTP listener (behind a TLS-terminating balancer). */
    const char *reverse_cert_file;
    const char *reverse_key_file;
    /* Every connection begins with a PROXY protocol v1/v2 header naming the client, and must
     * come from a trusted_proxy CIDR (others are closed, logged); needs trusted_proxy. */
    int accept_proxy_protocol;
    const char *const *trusted_proxy;
    size_t n_trusted_proxy;
};

struct et_proxy_stats {
    uint64_t connections;       /* client connections accepted */
    uint64_t active;            /* client connections open now */
    uint64_t exchanges;         /* exchanges handed to on_exchange */
    uint64_t errors;            /* of those, with err.code != 0 */
    uint64_t tunnels;           /* CONNECTs relayed without interception */
    uint64_t denied;            /* clients or targets refused by policy */
    uint64_t refused;           /* connections closed at accept (not admitted, over a cap) */
    uint64_t timed_out;         /* connections closed having sent nothing (counted only) */
    uint64_t shed;              /* idle connections closed to make room at a cap */
    uint64_t worker_pauses;     /* times new requests waited for on_exchange_worker */
    uint64_t unrecorded;        /* exchanges forwarded unrecorded (select returned 0) */
    uint64_t proxy_headers;     /* reverse: PROXY headers accepted */
    uint64_t proxy_header_errors; /* reverse: connections closed for a missing or bad one */
};

/*
 * Creates the proxy and binds its listening socket (so a port-0 listener has its port at
 * once). Borrows o and the strings and certs it points to until et_proxy_free(). Returns 0,
 * or ET_EINVAL (bad option, e is set), ET_EIO (bind/listen failed), ET_ETLS, ET_ENOMEM.
 */
int et_proxy_new(const struct et_proxy_opts *o, struct et_proxy **out, struct et_error *e);

/* Port actually bound (useful after listen_port = 0). */
int et_proxy_port(const struct et_proxy *p);

/* Runs the loop on the calling thread until et_proxy_stop(). Returns 0 or ET_EIO. */
int et_proxy_run(struct et_proxy *p);

/* Asks a running proxy to stop: closes every connection and makes et_proxy_run() return.
 * Safe from any thread and from a signal handler (uv_async_send). */
void et_proxy_stop(struct et_proxy *p);

/* Counters; safe on the loop thread, approximate from another thread. */
void et_proxy_get_stats(const struct et_proxy *p, struct et_proxy_stats *out);

/* Frees a proxy that is not running. NULL does nothing. */
void et_proxy_free(struct et_proxy *p);

#ifdef __cplusplus
}
#endif
#endif
