/*
 * Step 3's certificate checks: the chain the server sent is verified with OpenSSL against the
 * trust store, then examined certificate by certificate (dates, key, signature) and for the
 * host name (SAN and wildcards through X509_check_host). The handshake itself never verifies,
 * so that the probe always sees the chain and can say what exactly is wrong with it.
 */
#include "probe_int.h"

#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* Certificates that expire sooner than this give a warning. */
#define EXPIRY_WARN_DAYS 30

X509_STORE *et__probe_store_new(const char *ca_file)
{
    X509_STORE *st = X509_STORE_new();
    if (st == NULL)
        return NULL;
    if (ca_file != NULL) {
        if (X509_STORE_load_file(st, ca_file) != 1)
            goto fail;
    } else if (X509_STORE_set_default_paths(st) != 1) {
        goto fail;
    }
    return st;
fail:
    X509_STORE_free(st);
    ERR_clear_error();
    return NULL;
}

static void name_oneline(const X509_NAME *n, char *out, size_t outlen)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p = NULL;
    long len;

    out[0] = '\0';
    if (b == NULL)
        return;
    /* RFC 2253 order reversed ("CN=..., O=...") reads best; keep UTF-8 as is. */
    X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    len = BIO_get_mem_data(b, &p);
    if (len > 0 && p != NULL)
        snprintf(out, outlen, "%.*s", (int)ET_MIN((size_t)len, outlen - 1), p);
    BIO_free(b);
}

static void time_text(const ASN1_TIME *t, char *out, size_t outlen)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        snprintf(out, outlen, "?");
        return;
    }
    strftime(out, outlen, "%Y-%m-%d %H:%M:%SZ", &tm);
}

/* Whole days from now to t (negative when t is past); *ok = 0 when unknown. */
static int days_until(const ASN1_TIME *t, time_t now, int *ok)
{
    ASN1_TIME *n = ASN1_TIME_set(NULL, now);
    int days = 0, secs = 0;
    *ok = 0;
    if (n != NULL && t != NULL && ASN1_TIME_diff(&days, &secs, n, t) == 1) {
        *ok = 1;
        if (secs < 0 && days <= 0)
            days -= 1; /* "expired 3 hours ago" is -1 day, not 0 */
    }
    ASN1_TIME_free(n);
    return days;
}

static const char *key_type(const EVP_PKEY *pk)
{
    switch (EVP_PKEY_get_base_id(pk)) {
    case EVP_PKEY_RSA: return "RSA";
    case EVP_PKEY_RSA_PSS: return "RSA-PSS";
    case EVP_PKEY_DSA: return "DSA";
    case EVP_PKEY_EC: return "EC";
    case EVP_PKEY_ED25519: return "Ed25519";
    case EVP_PKEY_ED448: return "Ed448";
    default: return "unknown";
    }
}

/* Issued by itself with its own key (key usage ignored: a self-signed leaf has no
 * keyCertSign, and X509_check_issued would say "not issued"). */
static int is_self_signed(X509 *c)
{
    int r = X509_self_signed(c, 1);
    ERR_clear_error();
    return r == 1;
}

/* The DNS and IP names of the leaf's SAN, comma-separated, into out. */
static void san_list(X509 *leaf, char *out, size_t outlen)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    size_t used = 0;
    out[0] = '\0';
    if (gens == NULL)
        return;
    for (int i = 0; i < sk_GENERAL_NAME_num(gens) && used + 1 < outlen; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char one[128] = "";
        if (g->type == GEN_DNS) {
            const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
            int l = ASN1_STRING_length(g->d.dNSName);
            snprintf(one, sizeof(one), "DNS:%.*s", ET_MIN(l, 100), (const char *)d);
        } else if (g->type == GEN_IPADD) {
            const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
            int l = ASN1_STRING_length(g->d.iPAddress);
            if (l == 4)
                snprintf(one, sizeof(one), "IP:%u.%u.%u.%u", d[0], d[1], d[2], d[3]);
            else
                snprintf(one, sizeof(one), "IP:(IPv6)");
        } else {
            continue;
        }
        int w = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", one);
        if (w < 0)
            break;
        used += (size_t)w;
        if (used >= outlen)
            used = outlen - 1;
    }
    GENERAL_NAMES_free(gens);
}

static int host_is_ip(const char *host)
{
    ASN1_OCTET_STRING *o = a2i_IPADDRESS(host);
    if (o == NULL) {
        ERR_clear_error();
        return 0;
    }
    ASN1_OCTET_STRING_free(o);
    return 1;
}

/* One certificate: a detail line, and its own date/key/signature verdicts. */
static int check_one(X509 *c, int idx, time_t now, struct et_arena *a, struct et_probe_step *s)
{
    char subj[512], iss[512], nb[40], na[40];
    EVP_PKEY *pk = X509_get0_pubkey(c);
    int bits = pk != NULL ? EVP_PKEY_get_bits(pk) : 0;
    const char *kt = pk != NULL ? key_type(pk) : "none";
    int signid = X509_get_signature_nid(c), mdnid = NID_undef, pknid = NID_undef;
    const char *sig = signid != NID_undef ? OBJ_nid2ln(signid) : "unknown";
    int ok, days, self = is_self_signed(c);
    int rc;

    name_oneline(X509_get_subject_name(c), subj, sizeof(subj));
    name_oneline(X509_get_issuer_name(c), iss, sizeof(iss));
    time_text(X509_get0_notBefore(c), nb, sizeof(nb));
    time_text(X509_get0_notAfter(c), na, sizeof(na));
    OBJ_find_sigid_algs(signid, &mdnid, &pknid);

    rc = et__probe_line(s, a, "certificate %d: subject %s; issuer %s; valid %s to %s; %s %d bits; "
                              "signature %s%s",
                        idx, subj, iss, nb, na, kt, bits, sig, self ? "; self-signed" : "");
    if (rc != 0)
        return rc;

    if (X509_cmp_time(X509_get0_notBefore(c), &now) > 0) {
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "certificate %d (%s) is not valid before %s", idx, subj,
                                      nb),
                      "Check the clocks of the server and the device; reissue the certificate "
                      "if its start date is wrong.");
    }
    days = days_until(X509_get0_notAfter(c), now, &ok);
    if (ok && days < 0) {
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "certificate %d (%s) expired on %s", idx, subj, na),
                      "Renew the certificate and bind the new one to the site that serves "
                      "/Microsoft-Server-ActiveSync (IIS: Default Web Site, https binding); "
                      "devices refuse an expired certificate.");
    } else if (ok && days < EXPIRY_WARN_DAYS) {
        et__probe_set(s, a, ET_PROBE_WARNED,
                      et_arena_printf(a, "certificate %d (%s) expires in %d day%s (%s)", idx,
                                      subj, days, days == 1 ? "" : "s", na),
                      "Renew the certificate before it expires and bind the new one; devices "
                      "stop syncing the moment it does.");
    }
    if ((EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA || EVP_PKEY_get_base_id(pk) == EVP_PKEY_DSA)
        && bits < 2048) {
        et__probe_set(s, a, ET_PROBE_WARNED,
                      et_arena_printf(a, "certificate %d (%s) has a weak %s key of %d bits", idx,
                                      subj, kt, bits),
                      "Reissue the certificate with an RSA key of at least 2048 bits (or ECDSA "
                      "P-256); current devices and TLS libraries reject short keys.");
    }
    /* A root's own signature is never checked by anyone, so SHA-1 there is harmless. */
    if (!self && (mdnid == NID_sha1 || mdnid == NID_md5)) {
        et__probe_set(s, a, ET_PROBE_WARNED,
                      et_arena_printf(a, "certificate %d (%s) is signed with %s", idx, subj,
                                      sig),
                      "Reissue the certificate with a SHA-256 signature; SHA-1 and MD5 "
                      "signatures are refused by current iOS and Android releases.");
    }
    return 0;
}

int et__probe_check_chain(STACK_OF(X509) *sent, X509_STORE *store, const char *host,
                          time_t now, struct et_arena *a, struct et_probe_step *s)
{
    X509_STORE_CTX *ctx = NULL;
    X509 *leaf;
    int n = sk_X509_num(sent), verr = X509_V_OK, rc = 0;
    char subj[512], iss[512], sans[512];

    if (n <= 0) {
        et__probe_set(s, a, ET_PROBE_FAILED, "the server sent no certificate",
                      "Check the TLS binding of the site (IIS: https binding with a "
                      "certificate).");
        return 0;
    }
    leaf = sk_X509_value(sent, 0);
    if (now == 0)
        now = time(NULL);
    et__probe_line(s, a, "chain sent by the server: %d certificate%s", n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        if ((rc = check_one(sk_X509_value(sent, i), i, now, a, s)) != 0)
            return rc;
    }

    /* Verification against the trust store, with the sent certificates as untrusted help. */
    if (store != NULL) {
        ctx = X509_STORE_CTX_new();
        if (ctx == NULL || X509_STORE_CTX_init(ctx, store, leaf, sent) != 1) {
            X509_STORE_CTX_free(ctx);
            ERR_clear_error();
            return ET_ENOMEM;
        }
        X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), now);
        if (X509_verify_cert(ctx) != 1)
            verr = X509_STORE_CTX_get_error(ctx);
        else {
            STACK_OF(X509) *built = X509_STORE_CTX_get0_chain(ctx);
            et__probe_line(s, a, "verified: chain of %d up to a trusted root",
                           sk_X509_num(built));
        }
        X509_STORE_CTX_free(ctx);
        ERR_clear_error();
    } else {
        verr = X509_V_ERR_UNSPECIFIED;
    }

    name_oneline(X509_get_subject_name(leaf), subj, sizeof(subj));
    name_oneline(X509_get_issuer_name(leaf), iss, sizeof(iss));
    switch (verr) {
    case X509_V_OK:
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        if (n == 1 && !is_self_signed(leaf)) {
            et__probe_set(s, a, ET_PROBE_FAILED,
                          et_arena_printf(a, "incomplete chain: the server sent only its own "
                                             "certificate, and its issuer (%s) is neither sent "
                                             "nor trusted: the intermediate CA certificate is "
                                             "missing, or the CA is not trusted here (OpenSSL: "
                                             "%s)",
                                          iss, X509_verify_cert_error_string(verr)),
                          "Install the intermediate certificate(s) on the server so that it "
                          "sends the whole chain (IIS: import them into the computer's "
                          "Intermediate Certification Authorities store; nginx: append them to "
                          "the certificate file). Browsers hide this by fetching intermediates "
                          "themselves; phones do not. If the issuer is a private root CA instead, "
                          "install it on the devices and pass it to eastrace with --ca FILE.");
        } else {
            et__probe_set(s, a, ET_PROBE_FAILED,
                          et_arena_printf(a, "the chain does not lead to a trusted root "
                                             "(issuer %s; OpenSSL: %s)",
                                          iss, X509_verify_cert_error_string(verr)),
                          "If the server's CA is private, install its root certificate on the "
                          "devices (and give it to eastrace with --ca FILE); otherwise make the "
                          "server send a chain that ends at a public root.");
        }
        break;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "the certificate is self-signed or its root is not "
                                         "trusted (OpenSSL: %s)",
                                      X509_verify_cert_error_string(verr)),
                      "Use a certificate from a CA the devices trust, or install this root on "
                      "every device (and pass it to eastrace with --ca FILE).");
        break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        /* Already reported per certificate with its dates. */
        et__probe_set(s, a, ET_PROBE_FAILED, NULL, NULL);
        break;
    case X509_V_ERR_UNSPECIFIED:
        et__probe_set(s, a, ET_PROBE_FAILED, "no trust store could be loaded",
                      "Give the CA certificate with --ca FILE, or install ca-certificates.");
        break;
    default:
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "certificate verification failed: %s",
                                      X509_verify_cert_error_string(verr)),
                      "Check the certificate chain the server sends (openssl s_client "
                      "-showcerts) and reissue what is broken.");
        break;
    }

    /* The name: X509_check_host handles SAN, wildcards and the CN fallback rules. */
    if (host != NULL && host[0] != '\0') {
        int match;
        if (host_is_ip(host))
            match = X509_check_ip_asc(leaf, host, 0) == 1;
        else
            match = X509_check_host(leaf, host, strlen(host), 0, NULL) == 1;
        san_list(leaf, sans, sizeof(sans));
        if (match) {
            et__probe_line(s, a, "name: %s matches the certificate (SAN %s)", host,
                           sans[0] ? sans : "none; subject CN");
        } else {
            et__probe_set(s, a, ET_PROBE_FAILED,
                          et_arena_printf(a, "name mismatch: the certificate (subject %s; SAN "
                                             "%s) does not cover %s",
                                          subj, sans[0] ? sans : "none", host),
                          et_arena_printf(a, "Use a certificate whose Subject Alternative "
                                             "Names include %s (the name devices connect "
                                             "to), or point the devices at a name the "
                                             "certificate covers.",
                                          host));
        }
    }
    if (s->result == ET_PROBE_SKIPPED)
        s->result = ET_PROBE_PASSED;
    return 0;
}

int et_probe_check_chain_pem(const char *chain_pem, size_t len, const char *ca_file,
                             const char *host, int64_t now, struct et_arena *a,
                             struct et_probe_step *s)
{
    BIO *b = BIO_new_mem_buf(chain_pem, (int)len);
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509_STORE *store = NULL;
    X509 *c;
    int rc = 0;

    if (b == NULL || sk == NULL) {
        rc = ET_ENOMEM;
        goto out;
    }
    while ((c = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(sk, c)) {
            X509_free(c);
            rc = ET_ENOMEM;
            goto out;
        }
    }
    ERR_clear_error();
    if (sk_X509_num(sk) == 0) {
        rc = ET_EPARSE;
        goto out;
    }
    store = et__probe_store_new(ca_file);
    if (store == NULL) {
        rc = ET_EIO;
        goto out;
    }
    rc = et__probe_check_chain(sk, store, host, (time_t)now, a, s);
out:
    X509_STORE_free(store);
    sk_X509_pop_free(sk, X509_free);
    BIO_free(b);
    return rc;
}
