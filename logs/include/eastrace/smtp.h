/*
 * A small SMTP client (RFC 5321) for mailing reports, as ActiveSyncReport.ps1 could, and the
 * MIME message it sends (RFC 2045/2046: an HTML part and attachments, base64 bodies).
 *
 *   connect (timeout) -> 220 -> EHLO -> [STARTTLS -> 220 -> TLS handshake, certificate and
 *   host name verified -> EHLO] -> [AUTH PLAIN | LOGIN] -> MAIL FROM -> RCPT TO (each)
 *   -> DATA -> 354 -> message, dot-stuffed, "." -> 250 -> QUIT
 *
 * Every reply is checked; a failure is reported in e with the step, the SMTP code and the
 * server's text ("RCPT TO:<x@y>: 550 5.1.1 unknown user"). Blocking I/O with a timeout on
 * every step: this runs from the command line after a report is done, never on an event loop.
 */
#ifndef ET_LOGS_SMTP_H
#define ET_LOGS_SMTP_H

#include <stddef.h>

#include "eastrace/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum et_smtp_starttls {
    ET_SMTP_TLS_IF_OFFERED = 0, /* upgrade when the server offers STARTTLS (default) */
    ET_SMTP_TLS_REQUIRED = 1,   /* fail unless the session is upgraded to TLS */
    ET_SMTP_TLS_NEVER = 2       /* plain text only */
};

struct et_smtp_opts {
    const char *host;       /* server name or address (required) */
    int port;               /* 0: 25 */
    enum et_smtp_starttls starttls;
    const char *ca_file;    /* PEM trust anchors; NULL: the system store */
    const char *user;       /* AUTH user; NULL: no AUTH */
    const char *password;   /* AUTH password (borrowed; never logged) */
    const char *from;       /* envelope sender (MAIL FROM), required */
    const char *const *to;  /* envelope recipients (RCPT TO), at least one */
    size_t nto;
    const char *helo_name;  /* EHLO argument; NULL: this host's name */
    int timeout_ms;         /* per step; 0: 30000 */
    int allow_plain_auth;   /* allow AUTH without TLS (only sensible on loopback) */
};

/*
 * Sends msg (a complete RFC 5322 message, CRLF or LF line ends) to o->to through o->host.
 * Bare LF is sent as CRLF, lines starting with '.' are dot-stuffed. Borrows everything.
 * Returns 0; ET_EINVAL (bad options, or an address with CR, LF, '<', '>' or a space),
 * ET_EDNS, ET_ECONNREFUSED, ET_ETIMEDOUT, ET_EIO (connection), ET_ECONNRESET (server closed),
 * ET_ETLS (STARTTLS not offered when required, handshake failed, AUTH refused without TLS),
 * ET_ECERT (server certificate not trusted or not for host), ET_EDENIED (the server refused a
 * step: e names step, code and text), ET_EPARSE (a reply that is not SMTP), ET_ENOMEM.
 */
int et_smtp_send(const struct et_smtp_opts *o, const char *msg, size_t len, struct et_error *e);

/* One attachment of et_mime_build (borrowed). */
struct et_mime_part {
    const char *content_type; /* "text/csv; charset=utf-8" */
    const char *filename;     /* NULL: inline body part */
    const void *data;
    size_t len;
};

/*
 * Builds a multipart/mixed message: headers (From, To, Subject, Date, Message-ID,
 * MIME-Version), then the parts in order, each base64-encoded in 76-column lines. Subject
 * and addresses must be printable ASCII (anything else is replaced by '?'). Appends to out.
 * Returns 0 or ET_ENOMEM / ET_ETOOBIG (out's cap).
 */
int et_mime_build(struct et_buf *out, const char *from, const char *const *to, size_t nto,
                  const char *subject, const struct et_mime_part *parts, size_t nparts);

#ifdef __cplusplus
}
#endif
#endif
