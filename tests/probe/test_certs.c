/*
 * Step 3's certificate checks against chains made here with OpenSSL: a good chain, SAN and
 * wildcard names, IP literals, a wrong name, expired and soon-expiring leaves, a missing
 * intermediate, an untrusted root, a self-signed leaf, a weak RSA key and a SHA-1 signature.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "et_test.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "eastrace/probe.h"
#include "probe_pieces.h"

#define DAY (24L * 3600L)

struct cert {
    X509 *x;
    EVP_PKEY *k;
};

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/*
 * A certificate for cn with key k (made here: RSA of rsa_bits, or EC P-256 when 0), valid
 * from now+nb to now+na seconds, signed by issuer (self-signed when NULL) with md.
 */
static struct cert mk(const char *cn, int rsa_bits, const struct cert *issuer, long nb, long na,
                      const char *san, int ca, const EVP_MD *md)
{
    struct cert c;
    X509_NAME *name;
    unsigned char serial[8];
    BIGNUM *bn;

    c.k = rsa_bits ? EVP_RSA_gen((unsigned)rsa_bits) : EVP_EC_gen("P-256");
    assert_non_null(c.k);
    c.x = X509_new();
    assert_non_null(c.x);
    X509_set_version(c.x, 2);
    RAND_bytes(serial, sizeof(serial));
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c.x));
    BN_free(bn);
    name = X509_get_subject_name(c.x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(c.x, issuer ? X509_get_subject_name(issuer->x) : name);
    X509_gmtime_adj(X509_getm_notBefore(c.x), nb);
    X509_gmtime_adj(X509_getm_notAfter(c.x), na);
    X509_set_pubkey(c.x, c.k);
    add_ext(c.x, issuer ? issuer->x : c.x, NID_basic_constraints,
            ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add_ext(c.x, issuer ? issuer->x : c.x, NID_key_usage,
            ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment");
    add_ext(c.x, issuer ? issuer->x : c.x, NID_subject_key_identifier, "hash");
    if (san != NULL)
        add_ext(c.x, issuer ? issuer->x : c.x, NID_subject_alt_name, san);
    assert_true(X509_sign(c.x, issuer ? issuer->k : c.k, md) > 0);
    return c;
}

static void cert_free(struct cert *c)
{
    X509_free(c->x);
    EVP_PKEY_free(c->k);
}

/* PEM of certificates a, b (b may be NULL) appended to out. */
static void pem(struct et_buf *out, X509 *a, X509 *b)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *p;
    long n;
    PEM_write_bio_X509(bio, a);
    if (b != NULL)
        PEM_write_bio_X509(bio, b);
    n = BIO_get_mem_data(bio, &p);
    assert_int_equal(et_buf_append(out, p, (size_t)n), 0);
    BIO_free(bio);
}

struct pki {
    char dir[512];
    char ca_file[600];
    char other_ca_file[600];
    struct cert root, inter, other_root;
};

static int setup_pki(void **state)
{
    struct pki *p = calloc(1, sizeof(*p));
    struct et_buf b;
    FILE *f;

    assert_non_null(et_test_tmpdir(p->dir, sizeof(p->dir)));
    p->root = mk("eastrace test root", 0, NULL, -DAY, 3650 * DAY, NULL, 1, EVP_sha256());
    p->inter = mk("eastrace test intermediate", 0, &p->root, -DAY, 1000 * DAY, NULL, 1,
                  EVP_sha256());
    p->other_root = mk("another root", 0, NULL, -DAY, 3650 * DAY, NULL, 1, EVP_sha256());
    snprintf(p->ca_file, sizeof(p->ca_file), "%s/root.pem", p->dir);
    snprintf(p->other_ca_file, sizeof(p->other_ca_file), "%s/other.pem", p->dir);
    et_buf_init(&b, 0);
    pem(&b, p->root.x, NULL);
    f = fopen(p->ca_file, "w");
    assert_non_null(f);
    fwrite(b.data, 1, b.len, f);
    fclose(f);
    et_buf_reset(&b);
    pem(&b, p->other_root.x, NULL);
    f = fopen(p->other_ca_file, "w");
    assert_non_null(f);
    fwrite(b.data, 1, b.len, f);
    fclose(f);
    et_buf_free(&b);
    *state = p;
    return 0;
}

static int teardown_pki(void **state)
{
    struct pki *p = *state;
    cert_free(&p->root);
    cert_free(&p->inter);
    cert_free(&p->other_root);
    et_test_rmtree(p->dir);
    free(p);
    return 0;
}

/* Runs the checks on leaf (+ the intermediate when send_inter) for host. */
static enum et_probe_result check(struct pki *p, struct cert *leaf, int send_inter,
                                  const char *ca_file, const char *host,
                                  struct et_probe_step *s, struct et_arena **a)
{
    struct et_buf b;
    int rc;
    memset(s, 0, sizeof(*s));
    *a = et_arena_new(0);
    et_buf_init(&b, 0);
    pem(&b, leaf->x, send_inter ? p->inter.x : NULL);
    rc = et_probe_check_chain_pem((const char *)b.data, b.len, ca_file, host, 0, *a, s);
    assert_int_equal(rc, 0);
    et_buf_free(&b);
    return s->result;
}

static int has_line(const struct et_probe_step *s, const char *text)
{
    for (const struct et_probe_line *l = s->details; l != NULL; l = l->next)
        if (strstr(l->text, text) != NULL)
            return 1;
    return 0;
}

static void test_certs_good_chain_passes(void **state)
{
    struct pki *p = *state;
    struct cert leaf = mk("mail.example.test", 2048, &p->inter, -DAY, 90 * DAY,
                          "DNS:mail.example.test,DNS:autodiscover.example.test", 0, EVP_sha256());
    struct et_probe_step s;
    struct et_arena *a;
    assert_int_equal(check(p, &leaf, 1, p->ca_file, "mail.example.test", &s, &a),
                     ET_PROBE_PASSED);
    assert_null(s.reason);
    assert_true(has_line(&s, "chain sent by the server: 2 certificates"));
    assert_true(has_line(&s, "certificate 0: subject CN=mail.example.test; issuer CN=eastrace "
                             "test intermediate"));
    assert_true(has_line(&s, "RSA 2048 bits; signature sha256WithRSAEncryption") ||
                has_line(&s, "RSA 2048 bits; signature ecdsa-with-SHA256"));
    assert_true(has_line(&s, "certificate 1: subject CN=eastrace test intermediate"));
    assert_true(has_line(&s, "verified: chain of 3 up to a trusted root"));
    assert_true(has_line(&s, "name: mail.example.test matches"));
    et_arena_free(a);
    /* The second SAN entry matches too. */
    assert_int_equal(check(p, &leaf, 1, p->ca_file, "autodiscover.example.test", &s, &a),
                     ET_PROBE_PASSED);
    et_arena_free(a);
    cert_free(&leaf);
}

static void test_certs_wrong_name_fails(void **state)
{
    struct pki *p = *state;
    struct cert leaf = mk("mail.example.test", 2048, &p->inter, -DAY, 90 * DAY,
                          "DNS:mail.example.test", 0, EVP_sha256());
    struct et_probe_step s;
    struct et_arena *a;
    assert_int_equal(check(p, &leaf, 1, p->ca_file, "eas.example.org", &s, &a), ET_PROBE_FAILED);
    assert_non_null(strstr(s.reason, "name mismatch"));
    assert_non_null(strstr(s.reason, "DNS:mail.example.test"));
    assert_non_null(strstr(s.next_step, "eas.example.org"));
    et_arena_free(a);
    cert_free(&leaf);
}

static void test_certs_wildcard_covers_one_label(void **state)
{
    struct pki *p = *state;
    struct cert leaf = mk("*.example.test", 2048, &p->inter, -DAY, 90 * DAY, "DNS:*.example.test",
                          0, EVP_sha256());
    struct et_probe_step s;
    struct et_arena *a;
    assert_int_equal(check(p, &leaf, 1, p->ca_file, "mail.example.test", &s, &a),
                     ET_PROBE_PASSED);
    et_arena_free(a);
    assert_int_equal(check(p, &leaf, 1, p->ca_file, "a.b.example.test", &s, &a),
                     ET_PROBE_FAILED);
    assert_non_null(strstr(s.reason, "name mismatch"));
    et_arena_free(a);
    assert_int_equal(check(p, &leaf, 1, p->ca_file, "example.test", &s, &a), ET_PROBE_FAILED);
    et_arena_free(a);
    cert_free(&leaf);
}

static void test_certs_ip_literal_matches_ip_san(void **state)
{
    struct pki *p = *state;
    struct cert leaf = mk("localhost", 2048, &p->inter, -DAY, 90 * DAY,
                          "DNS:localhost,IP:127.0.0.1", 0, EVP_sha256());
    struct et_probe_step s;
    struct et_arena *a;
    assert_int_equal(check(p, &leaf, 1, p->ca_file, "127.0.0.1", &s, &a), ET_PROBE_PASSED);
    et_arena_free(a);
    assert_int_equal(check(p, &leaf, 1, p->ca_file, "127.0.0.2", &s, &a), ET_PROBE_FAILED);
    et_arena_free(a);
    cert_free(&leaf);
}

static void test_certs_expired_leaf_fails(void **state)
{
    struct pki *p = *state;
    struct cert leaf = mk("mail.example.test", 2048, &p->inter, -400 * DAY, -2 * DAY,
                          "DNS:mail.example.test", 0, EVP_sha256());
    struct et_probe_step s;
    struct et_arena *a;
    assert_int_equal(check(p, &leaf, 1, p->ca_file, "mail.example.test", &s, &a),
                     ET_PROBE_FAILED);
    assert_non_null(strstr(s.reason, "expired on"));
    assert_non_null(strstr(s.next_step, "Renew"));
    et_arena_free(a);
    cert_free(&leaf);
}

static void test_certs_expiring_soon_warns(void **state)
{
    struct pki *p = *state;
    struct cert leaf = mk("mail.example.test", 2048, &p->inter, -300 * DAY, 10 * DAY + 3600,
                          "DNS:mail.example.test", 0, EVP_sha256());
    struct et_probe_step s;
    struct et_arena *a;
    assert_int_equal(check(p, &leaf, 1, p->ca_file, "mail.example.test", &s, &a),
                     ET_PROBE_WARNED);
    assert_non_null(strstr(s.reason, "expires in 10 days"));
    et_arena_free(a);
    cert_free(&leaf);
}

static void test_certs_not_yet_valid_fails(void **state)
{
    struct pki *p = *state;
    struct cert leaf = mk("mail.example.test", 2048, &p->inter, 5 * DAY, 90 * DAY,
                          "DNS:mail.example.test", 0, EVP_sha256());
    struct et_probe_step s;
    struct et_arena *a;
    assert_int_equal(check(p, &leaf, 1, p->ca_file, "mail.example.test", &s, &a),
                     ET_PROBE_FAILED);
    assert_non_null(strstr(s.reason, "not valid before"));
    et_arena_free(a);
    cert_free(&leaf);
}

static void test_certs_missing_intermediate_is_incomplete_chain(void **state)
{
    struct pki *p = *state;
    struct cert leaf = mk("mail.example.test", 2048, &p->inter, -DAY, 90 * DAY,
                          "DNS:mail.example.test", 0, EVP_sha256());
    struct et_probe_step s;
    struct et_arena *a;
    assert_int_equal(check(p, &leaf, 0, p->ca_file, "mail.example.test", &s, &a),
                     ET_PROBE_FAILED);
    assert_true(has_line(&s, "chain sent by the server: 1 certificate"));
    assert_non_null(strstr(s.reason, "incomplete chain"));
    assert_non_null(strstr(s.reason, "eastrace test intermediate"));
    assert_non_null(strstr(s.next_step, "intermediate"));
    et_arena_free(a);
    cert_free(&leaf);
}

static void test_certs_untrusted_root_fails(void **state)
{
    struct pki *p = *state;
    struct cert leaf = mk("mail.example.test", 2048, &p->inter, -DAY, 90 * DAY,
                          "DNS:mail.example.test", 0, EVP_sha256());
    struct et_probe_step s;
    struct et_arena *a;
    assert_int_equal(check(p, &leaf, 1, p->other_ca_file, "mail.example.test", &s, &a),
                     ET_PROBE_FAILED);
    assert_non_null(strstr(s.reason, "does not lead to a trusted root"));
    assert_non_null(strstr(s.next_step, "--ca"));
    et_arena_free(a);
    cert_free(&leaf);
}

static void test_certs_self_signed_leaf_fails(void **state)
{
    struct pki *p = *state;
    struct cert leaf = mk("mail.example.test", 2048, NULL, -DAY, 90 * DAY,
                          "DNS:mail.example.test", 0, EVP_sha256());
    struct et_probe_step s;
    struct et_arena *a;
    assert_int_equal(check(p, &leaf, 0, p->ca_file, "mail.example.test", &s, &a),
                     ET_PROBE_FAILED);
    assert_non_null(strstr(s.reason, "self-signed"));
    assert_true(has_line(&s, "; self-signed"));
    et_arena_free(a);
    cert_free(&leaf);
}

static void test_certs_weak_rsa_key_warns(void **state)
{
    struct pki *p = *state;
    struct cert leaf = mk("mail.example.test", 1024, &p->inter, -DAY, 90 * DAY,
                          "DNS:mail.example.test", 0, EVP_sha256());
    struct et_probe_step s;
    struct et_arena *a;
    assert_int_equal(check(p, &leaf, 1, p->ca_file, "mail.example.test", &s, &a),
                     ET_PROBE_WARNED);
    assert_non_null(strstr(s.reason, "weak RSA key of 1024 bits"));
    assert_non_null(strstr(s.next_step, "2048"));
    et_arena_free(a);
    cert_free(&leaf);
}

static void test_certs_sha1_signature_warns(void **state)
{
    struct pki *p = *state;
    struct cert leaf = mk("mail.example.test", 2048, &p->inter, -DAY, 90 * DAY,
                          "DNS:mail.example.test", 0, EVP_sha1());
    struct et_probe_step s;
    struct et_arena *a;
    assert_int_equal(check(p, &leaf, 1, p->ca_file, "mail.example.test", &s, &a),
                     ET_PROBE_WARNED);
    assert_non_null(strstr(s.reason, "signed with ecdsa-with-SHA1"));
    assert_non_null(strstr(s.next_step, "SHA-256"));
    et_arena_free(a);
    cert_free(&leaf);
}

static void test_certs_not_pem_is_parse_error(void **state)
{
    struct pki *p = *state;
    struct et_probe_step s;
    struct et_arena *a = et_arena_new(0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(et_probe_check_chain_pem("hello", 5, p->ca_file, "x", 0, a, &s),
                     ET_EPARSE);
    assert_int_equal(et_probe_check_chain_pem("", 0, p->ca_file, "x", 0, a, &s), ET_EPARSE);
    et_arena_free(a);
}

static void test_certs_unreadable_ca_file_is_io_error(void **state)
{
    struct pki *p = *state;
    struct cert leaf = mk("mail.example.test", 2048, &p->inter, -DAY, 90 * DAY,
                          "DNS:mail.example.test", 0, EVP_sha256());
    struct et_probe_step s;
    struct et_arena *a = et_arena_new(0);
    struct et_buf b;
    et_buf_init(&b, 0);
    pem(&b, leaf.x, NULL);
    memset(&s, 0, sizeof(s));
    assert_int_equal(et_probe_check_chain_pem((const char *)b.data, b.len, "/nonexistent/ca.pem",
                                              "mail.example.test", 0, a, &s),
                     ET_EIO);
    et_buf_free(&b);
    et_arena_free(a);
    cert_free(&leaf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_certs_good_chain_passes),
        cmocka_unit_test(test_certs_wrong_name_fails),
        cmocka_unit_test(test_certs_wildcard_covers_one_label),
        cmocka_unit_test(test_certs_ip_literal_matches_ip_san),
        cmocka_unit_test(test_certs_expired_leaf_fails),
        cmocka_unit_test(test_certs_expiring_soon_warns),
        cmocka_unit_test(test_certs_not_yet_valid_fails),
        cmocka_unit_test(test_certs_missing_intermediate_is_incomplete_chain),
        cmocka_unit_test(test_certs_untrusted_root_fails),
        cmocka_unit_test(test_certs_self_signed_leaf_fails),
        cmocka_unit_test(test_certs_weak_rsa_key_warns),
        cmocka_unit_test(test_certs_sha1_signature_warns),
        cmocka_unit_test(test_certs_not_pem_is_parse_error),
        cmocka_unit_test(test_certs_unreadable_ca_file_is_io_error),
    };
    return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
