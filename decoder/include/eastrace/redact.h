/*
 * The redaction policy: one place that says which recorded values are credentials, used by
 * every output (show, show --json, decode, replay --json, export --saz/--har); each output
 * offers --include-secrets to opt out. docs/security.md states the policy and its reasons.
 *
 *   redacted                                   kept (and why)
 *   Authorization, Proxy-Authorization: the    X-MS-PolicyKey: a policy acknowledgement the
 *     scheme kept, Basic keeps its user name     server hands out after Provision (MS-ASPROV),
 *   Cookie, Set-Cookie, IIS cs(Cookie),          no credential for the mailbox; Provision
 *     any header or field named *password*,      loops (449) cannot be diagnosed without it
 *     *secret*, *token*                        User, DeviceId: identity, not credentials
 *   query values of Password, Pwd, Token,        (the EAS query helper can drop them too)
 *     access_token, jwt, auth, Key, Secret
 *   user:password@ in a URL
 *   XML elements named Password (any namespace: Settings DevicePassword/Password,
 *     ItemOperations and Search Password for document libraries, plain-XML bodies such as
 *     Autodiscover variants that carry one)
 */
#ifndef ET_DECODER_REDACT_H
#define ET_DECODER_REDACT_H

#include <stddef.h>

#include "eastrace/arena.h"
#include "eastrace/common.h"
#include "eastrace/exchange.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ET_REDACTED "[redacted]"

/* True when a header (or an IIS/metadata field) named name holds a credential. */
int et_redact_is_secret_name(const char *name);
/* True when an XML element with this local name holds a credential ("Password"). */
int et_redact_is_secret_element(const char *local_name);
/*
 * The value to print for header name: value itself when it is no secret, else a string in a
 * ("Basic [redacted] user=bob", "Bearer [redacted]", "[redacted]"). NULL on ENOMEM.
 */
const char *et_redact_header(struct et_arena *a, const char *name, const char *value);
/*
 * A request target or URL to print: credential-like query values replaced (see
 * et_eas_query_redact) and "user:password@" userinfo replaced by "[redacted]@"; target
 * itself when nothing is secret. NULL on ENOMEM.
 */
const char *et_redact_target(struct et_arena *a, const char *target);
/* The same for a bare query string ("User=u&Password=p", IIS cs-uri-query). */
const char *et_redact_query(struct et_arena *a, const char *query);
/*
 * Appends plain XML text s[0..n) to out with the content of every element named Password
 * (any prefix) replaced by "[redacted]". Returns 0 or an et_buf error.
 */
int et_redact_xml(struct et_buf *out, const char *s, size_t n);
/*
 * A body to export: p itself when it holds no secret, else a copy in a whose Password
 * elements have their text overwritten with '*' of the same length, so the bytes keep their
 * framing (Content-Length, WBXML string lengths) and stay decodable. Handles WBXML (inline
 * strings, string-table strings, OPAQUE) and plain XML; a body still under its
 * Content-Encoding (not content_decoded), or one that does not decode, is returned as it is.
 * h (may be NULL) gives the Content-Type. Returns body->data or the copy; NULL on ENOMEM.
 */
const uint8_t *et_redact_body(struct et_arena *a, const struct et_headers *h,
                              const struct et_body *body);
/* The same for bytes whose Content-Encoding in h was already undone. */
const uint8_t *et_redact_decoded_body(struct et_arena *a, const struct et_headers *h,
                                      const uint8_t *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif
