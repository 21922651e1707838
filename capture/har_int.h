/* Helpers shared by the .saz and HAR readers and writers (private to capture/). */
#ifndef ET_CAPTURE_HAR_INT_H
#define ET_CAPTURE_HAR_INT_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/common.h"
#include "eastrace/exchange.h"

/* The replacement text for a secret. */
#define ET__REDACTED "[redacted]"

/*
 * Splits an absolute URL "scheme://[user@]host[:port]/path?q" (or an authority "host:port",
 * as CONNECT targets are) into parts copied into a. Missing parts stay NULL / 0; the port
 * defaults from the scheme (80, 443). target gets "/path?q" ("/" when empty; the authority
 * for a bare authority). Returns 0, ET_EPARSE (not a URL) or ET_ENOMEM.
 */
int et__url_split(struct et_arena *a, const char *url, size_t len, const char **scheme,
                  const char **host, int *port, const char **target);

/* Parses "HTTP/1.1", "HTTP/2.0", "HTTP/2", "h2", "h3" (any case). Unknown gives 1.1 and -1. */
int et__http_version(const char *s, uint8_t *major, uint8_t *minor);

/*
 * Redaction for exports. Returns the value to write for header name/value: value itself when
 * nothing is secret, else a string in a ("Basic [redacted] user=bob", "Bearer [redacted]",
 * "[redacted]"). NULL on ENOMEM.
 */
const char *et__redact_header(struct et_arena *a, const char *name, const char *value);
/* Returns url with any "user:password@" userinfo replaced by "[redacted]@"; url itself when
 * there is none; NULL on ENOMEM. */
const char *et__redact_url(struct et_arena *a, const char *url);

/* Appends s as a JSON string, replacing invalid UTF-8 bytes by U+FFFD so output stays JSON. */
int et__json_put_text(struct et_buf *b, const char *s, size_t n);

/* Formats us (UTC) as "2024-05-01T12:34:56.123456Z" (digits = 6) or, for Fiddler,
 * "2024-05-01T12:34:56.1234560+00:00" (digits = 7). us <= 0 gives Fiddler's empty
 * DateTime "0001-01-01T00:00:00" (digits = 7) or the epoch (digits = 6). out needs 40 bytes. */
const char *et__time_format(int64_t us, int digits, char *out, size_t outlen);

/* Writes the target to export: credential-like query values replaced (see
 * et_eas_query_redact) unless include_secrets. Returns a string in a, NULL on ENOMEM. */
const char *et__export_target(struct et_arena *a, const char *target, int include_secrets);

/*
 * The step a HAR "_error" text (Chrome's "net::ERR_NAME_NOT_RESOLVED", mitmproxy's "Connect
 * call failed", ...) names: DNS, upstream connect, upstream TLS, or, when a response had
 * started (has_response), the response; an error without a response that names no step is a
 * failed connection to the server. *code gets the matching ET_E*.
 */
enum et_stage et__har_error_stage(const char *s, size_t n, int has_response, int *code);

#endif
