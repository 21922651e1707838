/*
 * The exchange model: one HTTP request and its response (or the failure that prevented it), as
 * every source produces it: the live proxy, eastrace capture files, Fiddler .saz, HAR, IIS log
 * lines and mailbox log entries. The decoder and analyzer only read it.
 *
 * Ownership: an exchange owns an arena; every string, header array and body the exchange points
 * to lives in that arena (or is borrowed from something that outlives the exchange, which the
 * producer must document). et_exchange_free() releases all of it.
 *
 *   source --(struct et_exchange)--> decoder --> analyzer --> renderer
 */
#ifndef ET_COMMON_EXCHANGE_H
#define ET_COMMON_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/arena.h"
#include "eastrace/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where an exchange came from. */
enum et_source_kind {
    ET_SRC_UNKNOWN = 0,  /* not set */
    ET_SRC_PROXY = 1,    /* recorded live by eastrace proxy */
    ET_SRC_CAPTURE = 2,  /* read back from an eastrace capture file */
    ET_SRC_SAZ = 3,      /* Fiddler session archive */
    ET_SRC_HAR = 4,      /* HAR 1.2 */
    ET_SRC_IIS = 5,      /* Exchange IIS W3C log line: no headers or bodies */
    ET_SRC_MAILBOX = 6,  /* EAS mailbox log entry */
    ET_SRC_PROBE = 7,    /* made by eastrace probe */
    ET_SRC_RAW = 8       /* raw HTTP bytes given to eastrace decode */
};
const char *et_source_name(enum et_source_kind s);

/* Which step an exchange failed at, when it failed. */
enum et_stage {
    ET_STAGE_NONE = 0,             /* no failure */
    ET_STAGE_CLIENT = 1,           /* reading the client's connection (not TLS) */
    ET_STAGE_CLIENT_TLS = 2,       /* TLS handshake with the client (pinning, CA not trusted) */
    ET_STAGE_REQUEST = 3,          /* the client's request was malformed or refused */
    ET_STAGE_DNS = 4,              /* resolving the upstream name */
    ET_STAGE_UPSTREAM_CONNECT = 5, /* TCP connect to the upstream */
    ET_STAGE_UPSTREAM_TLS = 6,     /* TLS with the upstream, incl. certificate verification */
    ET_STAGE_RESPONSE = 7,         /* the upstream's response was malformed, late or cut */
    ET_STAGE_DECODE = 8,           /* a reader could not decode a stored record */
    ET_STAGE_CAPTURE = 9           /* writing the capture failed */
};
const char *et_stage_name(enum et_stage s);

struct et_header {
    const char *name;  /* NUL-terminated, original case */
    const char *value; /* NUL-terminated, leading/trailing blanks removed */
};

struct et_headers {
    struct et_header *v;
    size_t n;
    size_t cap;
};

/* A body as recorded: possibly truncated by a capture cap; the bytes on the wire (before
 * content decoding; chunked framing removed), unless content_decoded says otherwise. */
struct et_body {
    const uint8_t *data; /* NULL when len == 0 */
    size_t len;          /* bytes held */
    uint64_t wire_len;   /* bytes seen on the wire (>= len; > len when truncated) */
    unsigned truncated : 1; /* len < wire_len because of a cap */
    unsigned absent : 1;    /* the source does not record bodies (IIS) or omitted this one */
    unsigned content_decoded : 1; /* the recorder already undid the Content-Encoding (HAR
                                     content.text): the headers describe the wire, these
                                     bytes are the decoded body */
};

struct et_request {
    const char *method;  /* "POST"; NULL when unknown */
    const char *target;  /* as sent: origin-form "/Microsoft-Server-ActiveSync?..." or absolute */
    uint8_t http_major, http_minor;
    struct et_headers headers;
    struct et_body body;
};

struct et_response {
    int status;          /* 0 when there was no response */
    const char *reason;  /* may be NULL */
    uint8_t http_major, http_minor;
    struct et_headers headers;
    struct et_body body;
};

/* Microseconds since the Unix epoch (UTC); 0 means unknown. */
struct et_timings {
    int64_t connect;     /* client connection accepted / TCP connect began */
    int64_t req_begin;   /* first byte of the request */
    int64_t req_end;     /* last byte of the request */
    int64_t resp_begin;  /* first byte of the response */
    int64_t resp_end;    /* last byte of the response */
};

/* TLS facts, when the exchange crossed TLS. Strings are NULL when unknown. */
struct et_tls_info {
    unsigned present : 1;      /* the exchange was inside TLS */
    unsigned intercepted : 1;  /* decrypted by the proxy (else tunnelled or not a proxy) */
    unsigned insecure : 1;     /* upstream verification was switched off for this host */
    const char *sni;           /* server name the client sent */
    const char *client_version;   /* "TLSv1.3" on the client leg */
    const char *upstream_version; /* on the upstream leg */
    const char *cipher;           /* upstream leg cipher suite */
    const char *alpn;             /* negotiated ALPN, e.g. "http/1.1" */
    const char *upstream_subject; /* leaf certificate subject (one line) */
    const char *upstream_issuer;
    const char *upstream_not_before; /* ISO 8601 */
    const char *upstream_not_after;
    const char *upstream_sha256;     /* hex fingerprint of the leaf */
    const char *verify_error;        /* NULL when verification passed or was not done */
};

/* A failure that stopped or spoiled an exchange. code == 0 means none. */
struct et_exchange_error {
    int code;             /* ET_E* */
    enum et_stage stage;
    const char *message;  /* what failed and where, human readable */
};

/*
 * What a server-side log states about an exchange, typed, so that every reader sets the same
 * fields and the view (analyzer/view.c) reads them one way: an IIS line's Log= items
 * (S:, Error:, Hb, Sk, As:), a mailbox log's exception and AccessState. Statuses per
 * collection come from the logged bodies, which the view decodes like any other body.
 * Strings live in the exchange's arena.
 */
struct et_server_facts {
    unsigned present : 1;     /* a reader set at least one fact */
    long status;              /* the command's Status as logged (IIS S:); -1 unknown */
    const char *error;        /* the logged EAS error name (IIS Error:); NULL none */
    long heartbeat;           /* the Ping heartbeat as logged (IIS Hb), seconds; -1 unknown */
    const char *sync_key;     /* the client's SyncKey as logged (IIS Sk); NULL unknown */
    const char *exception;    /* the server's exception, first line "<Type>: <message>"
                                 (mailbox log "<Type>_Exception" field); NULL none */
    const char *access_state; /* the device's access state (IIS As:, mailbox-log
                                 AccessState: Allowed, Blocked, Quarantined...); NULL unknown */
};

struct et_exchange {
    uint64_t id;              /* position in its source, from 1 */
    enum et_source_kind source;
    const char *source_name;  /* file it came from, "proxy", ...; may be NULL */
    struct et_timings t;
    const char *client_addr;  /* "192.0.2.7:51234" or "[2001:db8::1]:443"; may be NULL */
    const char *via_addr;     /* the TCP peer that relayed the client (a load balancer whose
                                 PROXY protocol header named client_addr); NULL when
                                 client_addr is the peer itself */
    const char *server_addr;  /* upstream address actually used; may be NULL */
    const char *scheme;       /* "https" or "http"; may be NULL */
    const char *host;         /* target host name (no port) */
    int port;                 /* target port, 0 when unknown */
    struct et_tls_info tls;
    unsigned has_request : 1;
    unsigned has_response : 1;
    unsigned reverse : 1;     /* recorded by eastrace proxy --reverse (in front of the server,
                                 not configured on the client) */
    struct et_request req;
    struct et_response resp;
    struct et_exchange_error err;
    /* Source-specific facts as name/value pairs: IIS fields (cs-username, time-taken, ...),
     * mailbox log fields (AccessState, ...), Fiddler session flags (x-clientip, ...). */
    struct et_headers meta;
    struct et_server_facts facts; /* typed facts of a server-side log (IIS, mailbox log) */
    struct et_arena *arena;   /* owns everything above */
};

/* A new empty exchange with its own arena (facts unknown: status and heartbeat -1); NULL on
 * ENOMEM. */
struct et_exchange *et_exchange_new(void);
/* Frees the exchange and its arena. NULL does nothing. */
void et_exchange_free(struct et_exchange *x);

/* Appends a header, copying name and value into the arena. Returns 0 or ET_ENOMEM. */
int et_headers_add(struct et_headers *h, struct et_arena *a, const char *name, size_t nlen,
                   const char *value, size_t vlen);
/* First value of a header by case-insensitive name, or NULL. */
const char *et_headers_get(const struct et_headers *h, const char *name);
/* Copies data into the arena as the body (sets len and wire_len). Returns 0 or ET_ENOMEM. */
int et_body_set(struct et_body *b, struct et_arena *a, const void *data, size_t len);
/* Records a failure; the message is copied into the arena. Keeps the first failure. */
void et_exchange_fail(struct et_exchange *x, int code, enum et_stage stage, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Duration from request start to response end in microseconds, or -1 when unknown. */
int64_t et_exchange_duration_us(const struct et_exchange *x);
/* When the exchange began, the one order every command sorts and prints by: the request's
 * first byte, else the connection, else the first and then the last byte of the response
 * (IIS lines without time-taken know only their end). 0 when unknown. */
int64_t et_exchange_time(const struct et_exchange *x);
/* When it ended: the response's last byte, else its first, else et_exchange_time(). */
int64_t et_exchange_end_time(const struct et_exchange *x);

#ifdef __cplusplus
}
#endif
#endif
