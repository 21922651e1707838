/*
 * Private declarations shared inside proxy/: the strict HTTP/1.1 head scanner and chunked
 * decoder (http1.c) and the access policy helpers (policy.c). Tests include this header.
 */
#ifndef ET_PROXY_PROXY_INT_H
#define ET_PROXY_PROXY_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "eastrace/common.h"

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

/* Case-insensitive comparison of a field name with a NUL-terminated lower-case name. */
int et__field_is(const struct et__field *f, const char *lname);

/* Strict chunked-body decoder. */
struct et__chunked {
    int state;
    uint64_t remaining;  /* data bytes left in the current chunk */
    unsigned ndigits;
    size_t trailer_bytes;
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

/* Access policy. */
struct et__cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned bits;
};

/* Parses "10.0.0.0/8", "::1", "192.0.2.7" (a host route). 0 or ET_EINVAL. */
int et__cidr_parse(const char *s, struct et__cidr *out);
/* 1 when sa (IPv4, IPv6 or IPv4-mapped IPv6) lies inside c. */
int et__cidr_match(const struct et__cidr *c, const struct sockaddr *sa);
/* 1 for loopback, link-local, unspecified (also IPv4-mapped), multicast. */
int et__addr_is_special(const struct sockaddr *sa);
/* 1 when two addresses are the same IP (ports ignored; IPv4-mapped equal to IPv4). */
int et__addr_same_ip(const struct sockaddr *a, const struct sockaddr *b);
/* Glob match with '*' and '?', ASCII case-insensitive. */
int et__glob_match(const char *pat, const char *s);
/* 1 when s holds only host name characters [A-Za-z0-9.-_] or is an IP literal. */
int et__host_valid(const char *s);
/* "ip:port" or "[ip6]:port" into out. */
void et__addr_format(const struct sockaddr *sa, char *out, size_t outlen);

#endif
