/*
 * Per-host leaf certificates: host validation, minting (one signature by the CA over a
 * certificate for the shared leaf key), the server SSL_CTX around it, and the LRU cache.
 *
 * Lookup path (the lock is never held while signing):
 *
 *   lock -> hash lookup -> hit, fresh?  -> move to LRU head, up_ref, unlock -> done
 *                       -> miss/stale   -> unlock -> mint + SSL_CTX -> lock
 *                                          -> cached meanwhile? use that one, drop ours
 *                                          -> else insert at head, evict the tail if full
 */
#include "eastrace/certs.h"

#include "certs_int.h"

#include <arpa/inet.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define DAY_SECONDS 86400L
#define MAX_HOST 253
/* A cached leaf this close to its notAfter is minted again (short validities: none). */
#define REMINT_MARGIN(c) ((c)->validity_days > 4 ? 2 * DAY_SECONDS : 0)

enum host_kind {
    HOST_DNS = 0, /* a DNS name (lower-cased) */
    HOST_IPV4 = 1,
    HOST_IPV6 = 2
};

/*
 * Normalises host into out (lower case; IP literals in canonical form, without brackets).
 * Returns the kind, or -1 when host is not an acceptable name. ip receives the raw address.
 */
static int normalize_host(const char *host, char *out, size_t outlen, uint8_t ip[16])
{
    size_t n = strlen(host);
    char tmp[MAX_HOST + 1];

    if (n == 0 || n > MAX_HOST)
        return -1;
    if (host[0] == '[') {
        if (n < 3 || host[n - 1] != ']' || n - 2 >= sizeof(tmp))
            return -1;
        memcpy(tmp, host + 1, n - 2);
        tmp[n - 2] = '\0';
        if (inet_pton(AF_INET6, tmp, ip) != 1 || inet_ntop(AF_INET6, ip, out, outlen) == NULL)
            return -1;
        return HOST_IPV6;
    }
    if (strchr(host, ':') != NULL) {
        if (inet_pton(AF_INET6, host, ip) != 1 || inet_ntop(AF_INET6, ip, out, outlen) == NULL)
            return -1;
        return HOST_IPV6;
    }
    if (inet_pton(AF_INET, host, ip) == 1) {
        if (inet_ntop(AF_INET, ip, out, outlen) == NULL)
            return -1;
        return HOST_IPV4;
    }
    if (n >= outlen)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = host[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                   ch == '-' || ch == '_' || ch == '*'))
            return -1;
        out[i] = ch;
    }
    /* "example.com." names the same host as "example.com". */
    if (n > 1 && out[n - 1] == '.')
        n--;
    out[n] = '\0';
    if (out[0] == '.')
        return -1;
    return HOST_DNS;
}

static uint64_t hash_host(const char *s)
{
    return et_hash(s, strlen(s), 0);
}

static int on_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned int i = 0;

    (void)ssl;
    (void)arg;
    /* Only HTTP/1.1 is relayed: pick it when offered, else go on without ALPN (clients then
     * fall back to HTTP/1.1) rather than failing the handshake. */
    while (i < inlen) {
        unsigned int len = in[i];
        if (len > inlen - i - 1)
            break;
        if (len == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static X509_EXTENSION *conf_ext(int nid, const char *value)
{
    return X509V3_EXT_conf_nid(NULL, NULL, nid, (char *)(uintptr_t)value);
}

/* SHA-1 of a public key's BIT STRING, as RFC 5280 4.2.1.2 method (1) describes. */
static ASN1_OCTET_STRING *key_id(EVP_PKEY *key)
{
    X509_PUBKEY *xpk = NULL;
    const unsigned char *pk;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int pklen;
    ASN1_OCTET_STRING *id = NULL;

    if (X509_PUBKEY_set(&xpk, key) != 1)
        goto fail;
    if (X509_PUBKEY_get0_param(NULL, &pk, &pklen, NULL, xpk) != 1)
        goto fail;
    if (EVP_Digest(pk, (size_t)pklen, md, &mdlen, EVP_sha1(), NULL) != 1)
        goto fail;
    if ((id = ASN1_OCTET_STRING_new()) == NULL || !ASN1_OCTET_STRING_set(id, md, (int)mdlen)) {
        ASN1_OCTET_STRING_free(id);
        id = NULL;
    }
fail:
    X509_PUBKEY_free(xpk);
    return id;
}

int et__certs_leaf_init(struct et_certs *c, struct et_error *e)
{
    ASN1_OCTET_STRING *ski = NULL;
    AUTHORITY_KEYID *akid = NULL;
    const ASN1_OCTET_STRING *ca_ski;

    /* Room for the whole cache up front: minting never waits for the table to grow. */
    et_map_init(&c->table);
    if (et_map_reserve(&c->table, ET_MIN(c->capacity + 1, (size_t)1 << 24)) != 0) {
        et_error_set(e, ET_ENOMEM, "out of memory");
        return ET_ENOMEM;
    }
    c->ext_bc = conf_ext(NID_basic_constraints, "critical,CA:FALSE");
    /* keyEncipherment only means something for RSA key transport (TLS 1.2 RSA kex). */
    c->ext_ku = conf_ext(NID_key_usage, c->leaf_type == ET_CERTS_RSA2048
                                            ? "critical,digitalSignature,keyEncipherment"
                                            : "critical,digitalSignature");
    c->ext_eku = conf_ext(NID_ext_key_usage, "serverAuth");
    if (c->ext_bc == NULL || c->ext_ku == NULL || c->ext_eku == NULL)
        goto fail;
    if ((ski = key_id(c->leaf_key)) == NULL)
        goto fail;
    if ((c->ext_ski = X509V3_EXT_i2d(NID_subject_key_identifier, 0, ski)) == NULL)
        goto fail;
    /* The AKI must equal the CA's SKI; a given CA without one gets the computed hash. */
    if ((akid = AUTHORITY_KEYID_new()) == NULL)
        goto fail;
    ca_ski = X509_get0_subject_key_id(c->ca);
    akid->keyid = ca_ski != NULL ? ASN1_OCTET_STRING_dup(ca_ski) : key_id(c->ca_key);
    if (akid->keyid == NULL)
        goto fail;
    if ((c->ext_aki = X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid)) == NULL)
        goto fail;
    ASN1_OCTET_STRING_free(ski);
    AUTHORITY_KEYID_free(akid);
    return 0;
fail:
    ASN1_OCTET_STRING_free(ski);
    AUTHORITY_KEYID_free(akid);
    return et__certs_tls_error(e, "preparing the leaf extensions");
}

void et__certs_leaf_free(struct et_certs *c)
{
    struct et__leaf *l = c->lru_head;
    while (l != NULL) {
        struct et__leaf *next = l->next;
        SSL_CTX_free(l->ctx);
        et_free(l);
        l = next;
    }
    c->lru_head = c->lru_tail = NULL;
    c->count = 0;
    et_map_free(&c->table);
    X509_EXTENSION_free(c->ext_bc);
    X509_EXTENSION_free(c->ext_ku);
    X509_EXTENSION_free(c->ext_eku);
    X509_EXTENSION_free(c->ext_ski);
    X509_EXTENSION_free(c->ext_aki);
    c->ext_bc = c->ext_ku = c->ext_eku = c->ext_ski = c->ext_aki = NULL;
}

static GENERAL_NAMES *make_san(int kind, const char *host, const uint8_t ip[16])
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_STRING *s = NULL;

    if (gens == NULL || gn == NULL)
        goto fail;
    if (kind == HOST_DNS) {
        if ((s = ASN1_IA5STRING_new()) == NULL || !ASN1_STRING_set(s, host, -1))
            goto fail;
        GENERAL_NAME_set0_value(gn, GEN_DNS, s);
    } else {
        if ((s = ASN1_OCTET_STRING_new()) == NULL ||
            !ASN1_OCTET_STRING_set(s, ip, kind == HOST_IPV4 ? 4 : 16))
            goto fail;
        GENERAL_NAME_set0_value(gn, GEN_IPADD, s);
    }
    s = NULL;
    if (!sk_GENERAL_NAME_push(gens, gn))
        goto fail;
    return gens;
fail:
    ASN1_STRING_free(s);
    GENERAL_NAME_free(gn);
    GENERAL_NAMES_free(gens);
    return NULL;
}

/* Mints the leaf for a normalised host and wraps it in a server SSL_CTX. */
static SSL_CTX *mint(struct et_certs *c, int kind, const char *host, const uint8_t ip[16],
                     time_t *not_after, struct et_error *e)
{
    time_t now = time(NULL);
    time_t end = now - DAY_SECONDS + (time_t)c->validity_days * DAY_SECONDS;
    GENERAL_NAMES *san = NULL;
    X509 *x = NULL;
    SSL_CTX *ctx = NULL;
    X509_NAME *name;

    if ((x = X509_new()) == NULL)
        goto fail;
    if (!X509_set_version(x, X509_VERSION_3) || et__certs_set_serial(x) != 0)
        goto fail;
    if (!X509_set_issuer_name(x, c->ca_name))
        goto fail;
    /* The CN is informational (clients match the SAN); it is limited to 64 characters. */
    name = X509_get_subject_name(x);
    if (strlen(host) <= 64 &&
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)host, -1,
                                    -1, 0))
        goto fail;
    /* Start a day early for phones whose clock runs behind. */
    if (X509_gmtime_adj(X509_getm_notBefore(x), -DAY_SECONDS) == NULL)
        goto fail;
    if (c->ca_not_after != 0 && end > c->ca_not_after) {
        end = c->ca_not_after;
        if (!X509_set1_notAfter(x, X509_get0_notAfter(c->ca)))
            goto fail;
    } else if (X509_time_adj_ex(X509_getm_notAfter(x), (int)c->validity_days, -DAY_SECONDS,
                                &now) == NULL) {
        goto fail;
    }
    if (!X509_set_pubkey(x, c->leaf_key))
        goto fail;
    if (!X509_add_ext(x, c->ext_bc, -1) || !X509_add_ext(x, c->ext_ku, -1) ||
        !X509_add_ext(x, c->ext_eku, -1) || !X509_add_ext(x, c->ext_ski, -1) ||
        !X509_add_ext(x, c->ext_aki, -1))
        goto fail;
    if ((san = make_san(kind, host, ip)) == NULL ||
        X509_add1_ext_i2d(x, NID_subject_alt_name, san, 0, X509V3_ADD_DEFAULT) != 1)
        goto fail;
    if (X509_sign(x, c->ca_key, EVP_sha256()) == 0)
        goto fail;

    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
        goto fail;
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
        goto fail;
    /* Idle phones hold connections for an hour: give the record buffers back meanwhile. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* One stateful session cache per host would grow without bound; tickets still resume. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, c->leaf_key) != 1 ||
        SSL_CTX_add1_chain_cert(ctx, c->ca) != 1)
        goto fail;
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn_select, NULL);
    GENERAL_NAMES_free(san);
    X509_free(x);
    *not_after = end;
    return ctx;
fail:
    SSL_CTX_free(ctx);
    GENERAL_NAMES_free(san);
    X509_free(x);
    {
        char what[MAX_HOST + 32];
        snprintf(what, sizeof(what), "minting a certificate for %s", host);
        et__certs_tls_error(e, what);
    }
    return NULL;
}

static void lru_unlink(struct et_certs *c, struct et__leaf *l)
{
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        c->lru_head = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    else
        c->lru_tail = l->prev;
    l->prev = l->next = NULL;
}

static void lru_push_head(struct et_certs *c, struct et__leaf *l)
{
    l->prev = NULL;
    l->next = c->lru_head;
    if (c->lru_head != NULL)
        c->lru_head->prev = l;
    c->lru_head = l;
    if (c->lru_tail == NULL)
        c->lru_tail = l;
}

/* Removes l from the hash chain and the list and frees it. Called with the lock held. */
static void cache_remove(struct et_certs *c, struct et__leaf *l)
{
    (void)et_map_remove(&c->table, l->hash, l);
    lru_unlink(c, l);
    c->count--;
    SSL_CTX_free(l->ctx);
    et_free(l);
}

static int leaf_eq(const void *val, const void *key)
{
    return strcmp(((const struct et__leaf *)val)->host, key) == 0;
}

static struct et__leaf *cache_find(struct et_certs *c, const char *host, uint64_t h)
{
    return et_map_get(&c->table, h, leaf_eq, host);
}

int et_certs_leaf_ctx(struct et_certs *c, const char *host, struct ssl_ctx_st **out,
                      struct et_error *e)
{
    char norm[MAX_HOST + 1];
    uint8_t ip[16];
    int kind;
    uint64_t h;
    struct et__leaf *l, *fresh = NULL;
    SSL_CTX *ctx;
    time_t not_after = 0;
    size_t hlen;

    *out = NULL;
    if (host == NULL || (kind = normalize_host(host, norm, sizeof(norm), ip)) < 0) {
        et_error_set(e, ET_EINVAL, "not a host name or IP address: '%.64s'",
                     host != NULL ? host : "(null)");
        return ET_EINVAL;
    }
    h = hash_host(norm);

    pthread_mutex_lock(&c->lock);
    l = cache_find(c, norm, h);
    if (l != NULL && l->not_after > time(NULL) + REMINT_MARGIN(c)) {
        lru_unlink(c, l);
        lru_push_head(c, l);
        c->hits++;
        SSL_CTX_up_ref(l->ctx);
        *out = l->ctx;
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    pthread_mutex_unlock(&c->lock);

    /* Allocate the entry first: nothing to undo in OpenSSL if memory is short. */
    hlen = strlen(norm);
    if ((fresh = et_malloc(sizeof(*fresh) + hlen + 1)) == NULL) {
        et_error_set(e, ET_ENOMEM, "out of memory");
        return ET_ENOMEM;
    }
    if ((ctx = mint(c, kind, norm, ip, &not_after, e)) == NULL) {
        et_free(fresh);
        return ET_ETLS;
    }
    memset(fresh, 0, sizeof(*fresh));
    memcpy(fresh->host, norm, hlen + 1);
    fresh->hash = h;
    fresh->ctx = ctx;
    fresh->not_after = not_after;

    pthread_mutex_lock(&c->lock);
    c->minted++;
    l = cache_find(c, norm, h);
    if (l != NULL && l->not_after > time(NULL) + REMINT_MARGIN(c)) {
        /* Another thread minted this host meanwhile: keep one certificate per host. */
        lru_unlink(c, l);
        lru_push_head(c, l);
        SSL_CTX_up_ref(l->ctx);
        *out = l->ctx;
        pthread_mutex_unlock(&c->lock);
        SSL_CTX_free(fresh->ctx);
        et_free(fresh);
        return 0;
    }
    if (l != NULL)
        cache_remove(c, l); /* the stale one */
    if (et_map_put(&c->table, h, fresh) != 0) {
        pthread_mutex_unlock(&c->lock);
        SSL_CTX_free(fresh->ctx);
        et_free(fresh);
        et_error_set(e, ET_ENOMEM, "out of memory");
        return ET_ENOMEM;
    }
    lru_push_head(c, fresh);
    c->count++;
    while (c->count > c->capacity && c->lru_tail != NULL)
        cache_remove(c, c->lru_tail);
    SSL_CTX_up_ref(ctx);
    *out = ctx;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void et_certs_stats(struct et_certs *c, uint64_t *minted, uint64_t *cache_hits)
{
    pthread_mutex_lock(&c->lock);
    if (minted != NULL)
        *minted = c->minted;
    if (cache_hits != NULL)
        *cache_hits = c->hits;
    pthread_mutex_unlock(&c->lock);
}
