/*
 * HTTP/1.x messages from raw bytes (a Fiddler raw/NN_c.txt or NN_s.txt, bytes given to
 * `eastrace decode`, a proxy capture), and their bodies: content decoding (gzip, deflate),
 * body kind classification and the EAS multipart response layout.
 *
 * Data path:
 *
 *   raw bytes --et_http_parse_request/response--> struct et_exchange (req / resp, arena)
 *   et_body + headers --et_http_body_view--> struct et_http_view
 *       (content-decoded bytes, kind: WBXML / MULTIPART / RFC822 / XML / TEXT ..., parts)
 *
 * Parsing is lenient where real captures need it (see docs/http.md) and strict about bounds:
 * every length, count and offset is checked against the buffer, every output has a cap.
 */
#ifndef ET_DECODER_HTTP_H
#define ET_DECODER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/arena.h"
#include "eastrace/common.h"
#include "eastrace/exchange.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What et_http_detect() found. */
enum et_http_kind {
    ET_HTTP_NONE = 0,     /* not an HTTP/1.x message (e.g. raw WBXML) */
    ET_HTTP_REQUEST = 1,  /* starts with a request line "METHOD target HTTP/1.x" */
    ET_HTTP_RESPONSE = 2  /* starts with a status line "HTTP/1.x NNN ..." */
};

/*
 * Names of the notes the parser adds to x->meta (name/value pairs, values human readable)
 * when it had to be lenient or saw something worth showing: Transfer-Encoding: chunked with a
 * body that was already de-chunked, skipped 100 Continue responses, trailers, a request body
 * without Content-Length, bytes after the end of the message.
 */
#define ET_HTTP_NOTE_REQUEST "http-request-note"
#define ET_HTTP_NOTE_RESPONSE "http-response-note"

/*
 * Looks at the start of p (leading CR/LF skipped) and says whether it is an HTTP request, an
 * HTTP response or neither. Only the first line is examined; the message may still be
 * malformed further on. Borrows p.
 */
int et_http_detect(const uint8_t *p, size_t n);

/*
 * Parses one complete HTTP/1.x request from p[0..n) into x->req and sets x->has_request.
 * Method, target, headers (original order and case; trailers appended) and the body with
 * chunked framing removed are copied into x->arena; p is only borrowed. Fills x->host,
 * x->port and x->scheme from an absolute-form or authority-form (CONNECT) target, else from
 * the Host header, but only those still unset (NULL / 0) so a source that knows better wins.
 *
 * Returns 0 (possibly with notes in x->meta, see ET_HTTP_NOTE_REQUEST), or
 *   ET_EPARSE   malformed; e has llhttp's reason and the byte offset,
 *   ET_ETRUNC   the bytes end inside the headers or the body; e has the offset (n),
 *   ET_ENOMEM, ET_EINVAL (NULL arguments).
 * On ET_EPARSE / ET_ETRUNC everything parsed so far is kept: has_request is set as soon as
 * the request line was read, a partial body is kept with body.truncated = 1 and
 * body.wire_len = the declared length when known; the failure is also recorded in x->err
 * (stage ET_STAGE_REQUEST) so renderers show it. e may be NULL.
 */
int et_http_parse_request(const uint8_t *p, size_t n, struct et_exchange *x,
                          struct et_error *e);

/*
 * Parses one complete HTTP/1.x response from p[0..n) into x->resp and sets x->has_response.
 * Interim 1xx responses (100 Continue, 102 Processing) before the final one are skipped and
 * noted. A response to HEAD (when x->has_request and x->req.method is "HEAD"), a 1xx, 204 or
 * 304 has no body; a response with neither Content-Length nor chunked runs to the end of p.
 * Same ownership, notes (ET_HTTP_NOTE_RESPONSE), return values and partial results as
 * et_http_parse_request(), with stage ET_STAGE_RESPONSE in x->err.
 */
int et_http_parse_response(const uint8_t *p, size_t n, struct et_exchange *x,
                           struct et_error *e);

/* Default output cap for content decoding: 64 MiB (a zip-bomb defence). */
#define ET_HTTP_DECODE_CAP ((size_t)64 * 1024 * 1024)

/*
 * Undoes the Content-Encoding of h on p[0..n) and appends the result to out: gzip / x-gzip
 * (several members), deflate (zlib-wrapped or raw, both are seen), identity, and stacked
 * encodings ("gzip, deflate" is undone right to left). No Content-Encoding copies p.
 * At most cap bytes are produced (0 means ET_HTTP_DECODE_CAP); out->max, when smaller, wins.
 *
 * Returns 0, or
 *   ET_ETOOBIG       the decoded size would pass the cap (possible zip bomb),
 *   ET_EPARSE        corrupt compressed data; e->offset is the byte offset in that layer's input,
 *   ET_ETRUNC        the compressed stream ends early; e->offset = that layer's input length,
 *   ET_EUNSUPPORTED  an encoding we cannot undo ("br", "zstd", "compress"), named in e,
 *   ET_ENOMEM.
 * On an error out holds what was decoded before it (for a single layer). Borrows h and p.
 */
int et_http_content_decode(const struct et_headers *h, const uint8_t *p, size_t n, size_t cap,
                           struct et_buf *out, struct et_error *e);

/* What a body holds, from Content-Type or, without one, from its first bytes. */
enum et_body_kind {
    ET_BODY_EMPTY = 0,     /* no bytes */
    ET_BODY_WBXML = 1,     /* application/vnd.ms-sync.wbxml or application/vnd.ms-sync */
    ET_BODY_MULTIPART = 2, /* application/vnd.ms-sync.multipart (MS-ASCMD MultiPartResponse) */
    ET_BODY_RFC822 = 3,    /* message/rfc822: SendMail/SmartReply/SmartForward up to EAS 12.1 */
    ET_BODY_XML = 4,       /* text/xml, application/xml, *+xml (Autodiscover) */
    ET_BODY_TEXT = 5,      /* other text/ *, JSON, form data */
    ET_BODY_OTHER = 6      /* anything else: binary, shown as hex or base64 */
};

/* "empty", "wbxml", "multipart", "rfc822", "xml", "text", "other"; never NULL. */
const char *et_body_kind_name(enum et_body_kind k);

/*
 * Classifies a (content-decoded) body by the Content-Type in h (h may be NULL). Without a
 * Content-Type, or with application/octet-stream, the bytes are sniffed: WBXML 1.x header,
 * a well-formed multipart table, '<' (XML), MIME headers (RFC822), valid UTF-8 text.
 * Borrows h and p.
 */
enum et_body_kind et_http_body_kind(const struct et_headers *h, const uint8_t *p, size_t n);

/* One part of a multipart response: a span of the body the parts were parsed from. */
struct et_multipart_part {
    size_t offset; /* from the start of the body */
    size_t len;
};

/* Parts beyond this are refused by et_http_body_view() with ET_ETOOBIG. */
#define ET_MULTIPART_MAX_PARTS 4096

/*
 * Parses the MS-ASCMD 2.2.1.10.1.1 MultiPartResponse layout of p[0..n):
 *
 *   +------------+-----------------+-----------------+-----+------------------------+
 *   | PartsCount | Offset0 | Len0  | Offset1 | Len1  | ... | part data (any order)  |
 *   +------------+-----------------+-----------------+-----+------------------------+
 *     int32 LE     int32 LE pairs, offsets from the start of the structure
 *
 * Part 0 is the WBXML ItemOperations response; the others are item bodies that its Part
 * elements index. Every count, offset and length is checked against n (overflow safe):
 * a negative count or a part outside the buffer gives ET_EPARSE with the offset of the
 * offending field; a table that does not fit gives ET_ETRUNC; more than max_parts parts gives
 * ET_ETOOBIG. On success writes *nparts entries to parts (borrows p; offsets index into it).
 * *nparts holds the number of parts validated so far on failure.
 */
int et_multipart_parse(const uint8_t *p, size_t n, struct et_multipart_part *parts,
                       size_t max_parts, size_t *nparts, struct et_error *e);

/*
 * A body prepared for display: what the CLI, the analyzer and renderers show.
 * data points either into the et_body given (when no decoding was needed or possible) or into
 * the arena given to et_http_body_view(); parts are in that arena. Valid until the body's
 * owner or the arena is freed, whichever comes first.
 */
struct et_http_view {
    enum et_body_kind kind;
    const uint8_t *data;     /* decoded bytes (or the raw bytes when decoding failed) */
    size_t len;
    const char *encoding;    /* Content-Encoding as sent, NULL when none */
    unsigned decoded : 1;    /* data is the result of content decoding */
    unsigned truncated : 1;  /* the body was cut (capture cap or early end), data is partial */
    int decode_status;       /* 0 or the ET_E* content decoding gave (data is then raw or partial) */
    struct et_multipart_part *parts; /* kind MULTIPART: the parts, in the arena; else NULL */
    size_t nparts;
    int multipart_status;    /* 0 or the ET_E* et_multipart_parse() gave */
};

/*
 * Prepares body b (sent with headers h) for display: undoes the Content-Encoding (output at
 * most cap bytes, 0 for ET_HTTP_DECODE_CAP; not when b->content_decoded says the recorder
 * already did), classifies the result and, for multipart, parses
 * the part table. Decoded bytes and parts go into arena a; b and h are borrowed.
 *
 * out is always filled, even on failure: when content decoding fails the view holds the raw
 * bytes (kind ET_BODY_OTHER, since they are still encoded), or the partial decoded bytes of a
 * truncated stream, and
 * decode_status says why; a broken multipart table leaves kind MULTIPART with no parts and
 * multipart_status set. Returns 0 when everything was understood, else the first ET_E* met
 * (also in e): ET_EUNSUPPORTED, ET_EPARSE, ET_ETRUNC, ET_ETOOBIG, ET_ENOMEM, ET_EINVAL.
 */
int et_http_body_view(const struct et_headers *h, const struct et_body *b, size_t cap,
                      struct et_http_view *out, struct et_arena *a, struct et_error *e);

#ifdef __cplusplus
}
#endif
#endif
