/*
 * eastrace certificates: the interception root CA (created on first use, or loaded from given
 * files) and the per-host leaf certificates the proxy presents to phones.
 *
 * Leaves are minted from ONE key pair made when the CA is opened (as haproxy's ssl_gencert
 * does): minting a leaf is one signature by the CA, never a key generation. Each leaf comes
 * as a ready server SSL_CTX, kept in an LRU cache keyed by the normalised host name.
 *
 * Thread safety: after et_certs_open() returns, every function here may be called from any
 * thread at the same time (the proxy mints from uv_queue_work). The cache and the counters
 * are guarded by one mutex; minting itself runs outside the lock, so two threads asking for
 * the same new host at once may both mint, and the second result is dropped in favour of
 * the first one cached. et_certs_free() must not race with any other call.
 *
 * No OpenSSL header is needed to use this one: SSL_CTX is only forward-declared.
 */
#ifndef ET_CERTS_CERTS_H
#define ET_CERTS_CERTS_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */
struct et_certs;

/* Key type of the leaf key pair (and of a CA that et_certs_open() creates). */
enum et_certs_key_type {
    ET_CERTS_ECDSA_P256 = 0, /* default: fast to sign, accepted by iOS and Android */
    ET_CERTS_RSA2048 = 1     /* for old devices that do not speak ECDSA */
};

/* File names inside the data directory. */
#define ET_CERTS_CA_CERT_NAME "ca.pem" /* the CA certificate (PEM), mode 0644 */
#define ET_CERTS_CA_KEY_NAME "ca.key"  /* the CA private key (PKCS#8 PEM), mode 0600 */

/* Upper bound of a leaf's validity (notAfter - notBefore), as Apple requires. */
#define ET_CERTS_MAX_VALIDITY_DAYS 397u

/* Length of a fingerprint string "AB:CD:...:EF" with its NUL (32 bytes, SHA-256). */
#define ET_CERTS_FINGERPRINT_LEN 96

/* The well-known host name under which the proxy serves the install page (like mitm.it). */
#define ET_CERTS_INSTALL_HOST "eastrace.cert"

struct et_certs_opts {
    /* Data directory; NULL: $XDG_DATA_HOME/eastrace, else ~/.local/share/eastrace. Created
     * with mode 0700 when missing. Ignored when ca_cert_file/ca_key_file are given. */
    const char *dir;
    /* Use this CA instead of the one in dir (both or neither). The key file must belong to
     * the current user; looser modes than 0600 are fixed and reported. */
    const char *ca_cert_file, *ca_key_file;
    enum et_certs_key_type leaf_key;
    size_t cache_size;      /* LRU capacity in hosts; 0: 1024 */
    unsigned validity_days; /* leaf validity from one day ago: 0 means 397, else 2..397 */
};

/*
 * Loads the CA, creating it (fresh key, directory 0700, key 0600) on first use, and makes the
 * leaf key pair. o borrows; nothing of it is kept. On success *out is a new object to free
 * with et_certs_free(). Errors: ET_EINVAL (bad options, or a certificate that is no CA),
 * ET_EPERM (key or directory owned by another user), ET_EIO (file system), ET_ETLS (OpenSSL,
 * with its error queue in e->msg), ET_ENOTFOUND (a CA certificate whose key is missing),
 * ET_ENOMEM.
 */
int et_certs_open(const struct et_certs_opts *o, struct et_certs **out, struct et_error *e);
/* Frees the cache (SSL_CTXs still referenced by callers stay valid) and the keys; NULL is ok. */
void et_certs_free(struct et_certs *c);

/*
 * Warnings from et_certs_open() for the user (loose modes that were repaired), one per line,
 * or NULL when there was nothing to say. Valid until et_certs_free().
 */
const char *et_certs_warnings(const struct et_certs *c);
/* 1 when et_certs_open() created a new CA (phones must install it), else 0. */
int et_certs_created(const struct et_certs *c);

/*
 * A server SSL_CTX for host: its leaf certificate (host as DNS SAN, or as IP SAN for an IPv4
 * or IPv6 literal, brackets allowed), the chain (leaf, CA), the leaf key, TLS 1.2 and up,
 * SSL_MODE_RELEASE_BUFFERS, and an ALPN callback that selects "http/1.1" when the client
 * offers it (and no ALPN otherwise). Host names are matched case-insensitively; they may hold
 * only [A-Za-z0-9.-_*] (up to 253 characters), else ET_EINVAL. Served from the LRU cache when
 * present, else minted and cached. On success *out is a NEW reference: release it with
 * SSL_CTX_free(). host borrows. Errors: ET_EINVAL, ET_ETLS, ET_ENOMEM.
 */
int et_certs_leaf_ctx(struct et_certs *c, const char *host, struct ssl_ctx_st **out,
                      struct et_error *e);

/* Counters for tests and benchmarks: leaves minted and lookups served from the cache. */
void et_certs_stats(struct et_certs *c, uint64_t *minted, uint64_t *cache_hits);

/* Appends the CA certificate as PEM / as DER to out. Returns 0, ET_ENOMEM or ET_ETOOBIG. */
int et_certs_ca_pem(const struct et_certs *c, struct et_buf *out);
int et_certs_ca_der(const struct et_certs *c, struct et_buf *out);
/* Path of the CA certificate file; valid until et_certs_free(). */
const char *et_certs_ca_path(const struct et_certs *c);
/* The CA's subject common name; valid until et_certs_free(). */
const char *et_certs_ca_name(const struct et_certs *c);
/* SHA-256 of the CA certificate as "AB:CD:...", outlen >= ET_CERTS_FINGERPRINT_LEN, else
 * ET_ETOOBIG. */
int et_certs_ca_fingerprint(const struct et_certs *c, char *out, size_t outlen);

/*
 * Appends an iOS configuration profile (plist XML) holding the CA as a
 * com.apple.security.root payload. Its UUIDs derive from the CA fingerprint, so the same CA
 * always gives the same profile. Returns 0, ET_ENOMEM or ET_ETOOBIG.
 */
int et_certs_mobileconfig(const struct et_certs *c, struct et_buf *out);

/*
 * Appends the install page: a small self-contained HTML page with the downloads (see
 * et_certs_http_resource() for their paths) and short install steps for iOS and Android.
 * proxy_addr ("192.168.1.5:8888", may be NULL) is shown as the proxy to configure; it is
 * escaped. Returns 0, ET_ENOMEM or ET_ETOOBIG.
 */
int et_certs_install_page(const struct et_certs *c, const char *proxy_addr, struct et_buf *out);

/*
 * What the proxy serves for a GET to http://eastrace.cert/<path> (or to its own address):
 * "/" or "/index.html" the install page, "/eastrace-ca.pem" PEM, "/eastrace-ca.crt" DER,
 * "/eastrace-ca.mobileconfig" the profile. A query string is ignored. Appends the body to out
 * and sets *content_type (a static string). Returns 0, ET_ENOTFOUND for other paths,
 * ET_ENOMEM or ET_ETOOBIG.
 */
int et_certs_http_resource(const struct et_certs *c, const char *path, const char *proxy_addr,
                           struct et_buf *out, const char **content_type);

#ifdef __cplusplus
}
#endif
#endif
