/*
 * Tests of certs/: CA creation and loading on real files, leaf minting checked with
 * OpenSSL's own verifier, the LRU cache, the exports, and real TLS handshakes between a
 * client that trusts the CA and the minted server contexts (memory BIO pairs, in-process).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eastrace/certs.h"
#include "et_test.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* ---- OpenSSL allocation failure injection (set before OpenSSL allocates anything) ---- */

static long ossl_fail_countdown = -1; /* < 0: never fail; else fail the nth call and after */

static int ossl_should_fail(void)
{
    if (ossl_fail_countdown < 0)
        return 0;
    if (ossl_fail_countdown <= 1) {
        ossl_fail_countdown = 0;
        return 1;
    }
    ossl_fail_countdown--;
    return 0;
}

static void *t_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return ossl_should_fail() ? NULL : malloc(n);
}

static void *t_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return ossl_should_fail() ? NULL : realloc(p, n);
}

static void t_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    free(p);
}

/* ---- helpers ---- */

struct fixture {
    char tmp[256];
    char dir[512];  /* tmp/eastrace: the default data directory under XDG_DATA_HOME */
    char cert[600];
    char key[600];
};

static int setup_tmp(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || et_test_tmpdir(f->tmp, sizeof(f->tmp)) == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/xdg/eastrace", f->tmp);
    snprintf(f->cert, sizeof(f->cert), "%s/%s", f->dir, ET_CERTS_CA_CERT_NAME);
    snprintf(f->key, sizeof(f->key), "%s/%s", f->dir, ET_CERTS_CA_KEY_NAME);
    {
        char xdg[300];
        snprintf(xdg, sizeof(xdg), "%s/xdg", f->tmp);
        setenv("XDG_DATA_HOME", xdg, 1);
    }
    *state = f;
    return 0;
}

static int teardown_tmp(void **state)
{
    struct fixture *f = *state;
    et_test_rmtree(f->tmp);
    free(f);
    unsetenv("XDG_DATA_HOME");
    et_alloc_fail_after(-1);
    ossl_fail_countdown = -1;
    return 0;
}

static struct et_certs *open_ok(const struct et_certs_opts *o)
{
    struct et_certs *c = NULL;
    struct et_error e;
    int rc;

    et_error_clear(&e);
    rc = et_certs_open(o, &c, &e);
    if (rc != 0)
        print_error("et_certs_open: %d %s\n", rc, e.msg);
    assert_int_equal(rc, 0);
    assert_non_null(c);
    return c;
}

static X509 *ca_of(const struct et_certs *c)
{
    struct et_buf b;
    BIO *bio;
    X509 *x;

    et_buf_init(&b, 0);
    assert_int_equal(et_certs_ca_pem(c, &b), 0);
    bio = BIO_new_mem_buf(b.data, (int)b.len);
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    et_buf_free(&b);
    assert_non_null(x);
    return x;
}

static SSL_CTX *leaf_ok(struct et_certs *c, const char *host)
{
    SSL_CTX *ctx = NULL;
    struct et_error e;
    int rc;

    et_error_clear(&e);
    rc = et_certs_leaf_ctx(c, host, &ctx, &e);
    if (rc != 0)
        print_error("et_certs_leaf_ctx(%s): %d %s\n", host, rc, e.msg);
    assert_int_equal(rc, 0);
    assert_non_null(ctx);
    return ctx;
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

/* Verifies ctx's leaf (with its chain) against ca as a TLS server certificate for the name
 * (host != NULL) or address (ip != NULL). Returns X509_verify_cert's verdict. */
static int verify_leaf(X509 *ca, SSL_CTX *ctx, const char *host, const char *ip)
{
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    STACK_OF(X509) *chain = NULL;
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *sc = X509_STORE_CTX_new();
    X509_VERIFY_PARAM *vp;
    int ok;

    assert_non_null(leaf);
    assert_int_equal(SSL_CTX_get0_chain_certs(ctx, &chain), 1);
    assert_non_null(chain);
    assert_int_equal(sk_X509_num(chain), 1); /* leaf, then the CA */
    assert_int_equal(X509_cmp(sk_X509_value(chain, 0), ca), 0);
    assert_int_equal(X509_STORE_add_cert(st, ca), 1);
    assert_int_equal(X509_STORE_CTX_init(sc, st, leaf, chain), 1);
    vp = X509_STORE_CTX_get0_param(sc);
    X509_VERIFY_PARAM_set_purpose(vp, X509_PURPOSE_SSL_SERVER);
    if (host != NULL)
        X509_VERIFY_PARAM_set1_host(vp, host, 0);
    if (ip != NULL)
        X509_VERIFY_PARAM_set1_ip_asc(vp, ip);
    ok = X509_verify_cert(sc);
    if (ok != 1)
        print_error("verify: %s\n",
                    X509_verify_cert_error_string(X509_STORE_CTX_get_error(sc)));
    X509_STORE_CTX_free(sc);
    X509_STORE_free(st);
    return ok;
}

/* Checks the fixed properties of every leaf: EKU, validity, serial, AKI, key usage. */
static void check_leaf_profile(X509 *ca, X509 *leaf, int rsa)
{
    int days = 0, secs = 0;
    const ASN1_INTEGER *serial = X509_get0_serialNumber(leaf);
    time_t now = time(NULL);
    EVP_PKEY *pk = X509_get0_pubkey(leaf);

    assert_true(X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE);
    assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER);
    assert_true(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE);
    assert_int_equal(!!(X509_get_key_usage(leaf) & KU_KEY_ENCIPHERMENT), rsa);
    assert_false(X509_get_key_usage(leaf) & KU_KEY_CERT_SIGN);
    assert_int_equal(X509_check_ca(leaf), 0);
    /* At most 397 days from notBefore to notAfter, starting about a day ago. */
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf),
                                    X509_get0_notAfter(leaf)), 1);
    assert_true(days * 86400L + secs <= 397L * 86400L);
    assert_true(days >= 396);
    assert_true(X509_cmp_time(X509_get0_notBefore(leaf), &(time_t){now - 23 * 3600}) < 0);
    assert_true(X509_cmp_time(X509_get0_notBefore(leaf), &(time_t){now - 25 * 3600}) > 0);
    /* A random 16-byte serial. */
    assert_int_equal(serial->length, 16);
    /* AKI names the CA's SKI. */
    assert_non_null(X509_get0_authority_key_id(leaf));
    if (X509_get0_subject_key_id(ca) != NULL)
        assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf),
                                               X509_get0_subject_key_id(ca)), 0);
    assert_int_equal(X509_check_issued(ca, leaf), X509_V_OK);
    assert_int_equal(X509_get_signature_nid(leaf),
                     EVP_PKEY_get_base_id(X509_get0_pubkey(ca)) == EVP_PKEY_RSA
                         ? NID_sha256WithRSAEncryption
                         : NID_ecdsa_with_SHA256);
    if (rsa) {
        assert_int_equal(EVP_PKEY_get_base_id(pk), EVP_PKEY_RSA);
        assert_int_equal(EVP_PKEY_get_bits(pk), 2048);
    } else {
        char group[32];
        assert_int_equal(EVP_PKEY_get_base_id(pk), EVP_PKEY_EC);
        assert_int_equal(EVP_PKEY_get_utf8_string_param(pk, "group", group, sizeof(group),
                                                        NULL), 1);
        assert_string_equal(group, "prime256v1");
    }
}

/* Writes a CA made here with OpenSSL (as the bench's `openssl req -x509` does): RSA-2048,
 * key 0600. is_ca = 0 writes a plain end-entity certificate instead. */
static void write_test_ca(const char *cert_path, const char *key_path, int is_ca, int with_ski)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    X509 *x = X509_new();
    X509_NAME *n;
    FILE *fc, *fk;
    X509V3_CTX v3;
    X509_EXTENSION *ex;

    assert_non_null(key);
    assert_non_null(x);
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 86400);
    n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"test MITM CA", -1,
                               -1, 0);
    X509_set_issuer_name(x, n);
    X509_set_pubkey(x, key);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ex = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                             is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    X509_add_ext(x, ex, -1);
    X509_EXTENSION_free(ex);
    if (with_ski) {
        ex = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier, "hash");
        X509_add_ext(x, ex, -1);
        X509_EXTENSION_free(ex);
    }
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    fc = fopen(cert_path, "w");
    assert_non_null(fc);
    PEM_write_X509(fc, x);
    fclose(fc);
    fk = fopen(key_path, "w");
    assert_non_null(fk);
    chmod(key_path, 0600);
    PEM_write_PrivateKey(fk, key, NULL, NULL, 0, NULL, NULL);
    fclose(fk);
    X509_free(x);
    EVP_PKEY_free(key);
}

/* ---- CA creation and loading ---- */

static void test_ca_created_on_first_use_with_private_modes(void **state)
{
    struct fixture *f = *state;
    struct et_certs_opts o = {0};
    struct et_certs *c;
    char fp[ET_CERTS_FINGERPRINT_LEN];
    X509 *ca;
    BASIC_CONSTRAINTS *bc;
    int crit = -1;
    mode_t old = umask(0); /* creation must not depend on the umask */

    c = open_ok(&o);
    umask(old);
    assert_true(et_certs_created(c));
    assert_null(et_certs_warnings(c));
    assert_string_equal(et_certs_ca_path(c), f->cert);
    assert_int_equal(mode_of(f->dir), 0700);
    assert_int_equal(mode_of(f->key), 0600);
    assert_int_equal(mode_of(f->cert), 0644);
    assert_int_equal(et_certs_ca_fingerprint(c, fp, sizeof(fp)), 0);
    assert_int_equal(strlen(fp), 95);
    assert_int_equal(fp[2], ':');
    assert_int_equal(et_certs_ca_fingerprint(c, fp, 95), ET_ETOOBIG);
    assert_non_null(strstr(et_certs_ca_name(c), "eastrace CA ("));

    ca = ca_of(c);
    assert_int_equal(X509_check_ca(ca), 1);
    assert_true(X509_get_key_usage(ca) & KU_KEY_CERT_SIGN);
    assert_true(X509_get_key_usage(ca) & KU_CRL_SIGN);
    bc = X509_get_ext_d2i(ca, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_int_equal(crit, 1);
    assert_true(bc->ca);
    assert_non_null(bc->pathlen);
    assert_int_equal(ASN1_INTEGER_get(bc->pathlen), 0);
    BASIC_CONSTRAINTS_free(bc);
    assert_non_null(X509_get0_subject_key_id(ca));
    assert_int_equal(X509_get_ext_by_NID(ca, NID_key_usage, -1) >= 0, 1);
    assert_int_equal(X509_EXTENSION_get_critical(
                         X509_get_ext(ca, X509_get_ext_by_NID(ca, NID_key_usage, -1))), 1);
    /* About ten years, self-signed, and no temporary files left behind. */
    {
        int days = 0, secs = 0;
        ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(ca), X509_get0_notAfter(ca));
        assert_true(days >= 3650 && days <= 3652);
        assert_int_equal(X509_check_issued(ca, ca), X509_V_OK);
    }
    {
        DIR *d = opendir(f->dir);
        struct dirent *de;
        int n = 0;
        while ((de = readdir(d)) != NULL)
            if (de->d_name[0] != '.')
                n++;
        closedir(d);
        assert_int_equal(n, 2);
    }
    X509_free(ca);
    et_certs_free(c);
}

static void test_ca_reused_on_second_open(void **state)
{
    struct et_certs_opts o = {0};
    struct et_certs *a, *b;
    char fa[ET_CERTS_FINGERPRINT_LEN], fb[ET_CERTS_FINGERPRINT_LEN];

    (void)state;
    a = open_ok(&o);
    b = open_ok(&o);
    assert_true(et_certs_created(a));
    assert_false(et_certs_created(b));
    et_certs_ca_fingerprint(a, fa, sizeof(fa));
    et_certs_ca_fingerprint(b, fb, sizeof(fb));
    assert_string_equal(fa, fb);
    et_certs_free(a);
    et_certs_free(b);
}

static void test_concurrent_first_runs_agree_on_one_ca(void **state)
{
    struct fixture *f = *state;
    struct et_certs_opts o = {0};
    struct et_certs *c;
    char fp[ET_CERTS_FINGERPRINT_LEN], got[4][ET_CERTS_FINGERPRINT_LEN];
    int fds[4][2];
    pid_t pid[4];

    /* Four processes start at once on an empty directory: the lock makes them share one CA
     * and no process keeps a CA that is not the one on disk. */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pipe(fds[i]), 0);
        pid[i] = fork();
        assert_true(pid[i] >= 0);
        if (pid[i] == 0) {
            struct et_certs *cc = NULL;
            struct et_error e;
            char out[ET_CERTS_FINGERPRINT_LEN] = "";
            et_error_clear(&e);
            if (et_certs_open(&o, &cc, &e) == 0)
                et_certs_ca_fingerprint(cc, out, sizeof(out));
            if (write(fds[i][1], out, sizeof(out)) != (ssize_t)sizeof(out))
                _exit(2);
            _exit(0);
        }
        close(fds[i][1]);
    }
    for (int i = 0; i < 4; i++) {
        int status;
        assert_int_equal(read(fds[i][0], got[i], sizeof(got[i])), (ssize_t)sizeof(got[i]));
        close(fds[i][0]);
        assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
        assert_int_equal(status, 0);
    }
    c = open_ok(&o);
    et_certs_ca_fingerprint(c, fp, sizeof(fp));
    for (int i = 0; i < 4; i++)
        assert_string_equal(got[i], fp);
    assert_int_equal(mode_of(f->key), 0600);
    et_certs_free(c);
}

static void test_ca_explicit_dir_created(void **state)
{
    struct fixture *f = *state;
    char dir[700];
    struct et_certs_opts o = {0};
    struct et_certs *c;

    snprintf(dir, sizeof(dir), "%s/given/deeper", f->tmp);
    o.dir = dir;
    {
        /* Even a umask that takes the owner's bits away gives exactly 0700 / 0600. */
        mode_t old = umask(0777);
        c = open_ok(&o);
        umask(old);
    }
    assert_int_equal(mode_of(dir), 0700);
    {
        char parent[700];
        snprintf(parent, sizeof(parent), "%s/given", f->tmp);
        assert_int_equal(mode_of(parent), 0700);
    }
    {
        char key[760];
        snprintf(key, sizeof(key), "%s/%s", dir, ET_CERTS_CA_KEY_NAME);
        assert_int_equal(mode_of(key), 0600);
    }
    assert_non_null(strstr(et_certs_ca_path(c), "/given/deeper/ca.pem"));
    et_certs_free(c);
}

static void test_loose_modes_repaired_and_reported(void **state)
{
    struct fixture *f = *state;
    struct et_certs_opts o = {0};
    struct et_certs *c;
    const char *w;

    et_certs_free(open_ok(&o));
    assert_int_equal(chmod(f->dir, 0755), 0);
    assert_int_equal(chmod(f->key, 0644), 0);
    c = open_ok(&o);
    assert_false(et_certs_created(c));
    assert_int_equal(mode_of(f->dir), 0700);
    assert_int_equal(mode_of(f->key), 0600);
    w = et_certs_warnings(c);
    assert_non_null(w);
    assert_non_null(strstr(w, "0755"));
    assert_non_null(strstr(w, "0644"));
    assert_non_null(strstr(w, f->key));
    et_certs_free(c);
    /* Once repaired there is nothing more to say. */
    c = open_ok(&o);
    assert_null(et_certs_warnings(c));
    et_certs_free(c);
}

static void test_key_owned_by_another_user_refused(void **state)
{
    struct fixture *f = *state;
    struct et_certs_opts o = {0};
    struct et_certs *c = NULL;
    struct et_error e;

    if (geteuid() != 0) {
        print_message("needs root to chown: skipped\n");
        skip();
    }
    et_certs_free(open_ok(&o));
    assert_int_equal(chown(f->key, 65534, 65534), 0);
    et_error_clear(&e);
    assert_int_equal(et_certs_open(&o, &c, &e), ET_EPERM);
    assert_null(c);
    assert_non_null(strstr(e.msg, "another user"));
    /* The same for the directory holding it. */
    assert_int_equal(chown(f->key, 0, 0), 0);
    assert_int_equal(chown(f->dir, 65534, 65534), 0);
    et_error_clear(&e);
    assert_int_equal(et_certs_open(&o, &c, &e), ET_EPERM);
    assert_int_equal(chown(f->dir, 0, 0), 0);
}

static void test_certificate_without_key_is_not_replaced(void **state)
{
    struct fixture *f = *state;
    struct et_certs_opts o = {0};
    struct et_certs *c = NULL;
    struct et_error e;

    et_certs_free(open_ok(&o));
    assert_int_equal(unlink(f->key), 0);
    et_error_clear(&e);
    assert_int_equal(et_certs_open(&o, &c, &e), ET_ENOTFOUND);
    assert_null(c);
    assert_non_null(strstr(e.msg, "ca.key"));
}

static void test_corrupt_certificate_reports_openssl_error(void **state)
{
    struct fixture *f = *state;
    struct et_certs_opts o = {0};
    struct et_certs *c = NULL;
    struct et_error e;
    FILE *fp;

    et_certs_free(open_ok(&o));
    fp = fopen(f->cert, "w");
    assert_non_null(fp);
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", fp);
    fclose(fp);
    et_error_clear(&e);
    assert_int_equal(et_certs_open(&o, &c, &e), ET_ETLS);
    assert_non_null(strstr(e.msg, "reading the CA certificate"));
    assert_int_equal(ERR_peek_error(), 0); /* the queue was drained into e */
}

static void test_bad_options_rejected(void **state)
{
    struct fixture *f = *state;
    struct et_certs_opts o = {0};
    struct et_certs *c = NULL;
    struct et_error e;

    o.ca_cert_file = f->cert;
    et_error_clear(&e);
    assert_int_equal(et_certs_open(&o, &c, &e), ET_EINVAL);
    o.ca_cert_file = NULL;
    o.validity_days = 398;
    et_error_clear(&e);
    assert_int_equal(et_certs_open(&o, &c, &e), ET_EINVAL);
    o.validity_days = 0;
    o.leaf_key = (enum et_certs_key_type)7;
    et_error_clear(&e);
    assert_int_equal(et_certs_open(&o, &c, &e), ET_EINVAL);
    assert_null(c);
}

/* ---- given CA ---- */

static void test_given_ca_loaded_and_used(void **state)
{
    struct fixture *f = *state;
    char cert[600], key[600];
    struct et_certs_opts o = {0};
    struct et_certs *c;
    SSL_CTX *ctx;
    X509 *ca;
    struct stat st;

    snprintf(cert, sizeof(cert), "%s/mitm-ca.pem", f->tmp);
    snprintf(key, sizeof(key), "%s/mitm-ca.key", f->tmp);
    write_test_ca(cert, key, 1, 1);
    o.ca_cert_file = cert;
    o.ca_key_file = key;
    c = open_ok(&o);
    assert_false(et_certs_created(c));
    assert_string_equal(et_certs_ca_path(c), cert);
    assert_string_equal(et_certs_ca_name(c), "test MITM CA");
    /* The data directory is not touched when a CA is given. */
    assert_int_equal(stat(f->dir, &st), -1);
    ca = ca_of(c);
    ctx = leaf_ok(c, "h17.eas.test");
    assert_int_equal(verify_leaf(ca, ctx, "h17.eas.test", NULL), 1);
    check_leaf_profile(ca, SSL_CTX_get0_certificate(ctx), 0);
    SSL_CTX_free(ctx);
    X509_free(ca);
    et_certs_free(c);
}

static void test_given_ca_without_ski_still_chains(void **state)
{
    struct fixture *f = *state;
    char cert[600], key[600];
    struct et_certs_opts o = {0};
    struct et_certs *c;
    SSL_CTX *ctx;
    X509 *ca;

    snprintf(cert, sizeof(cert), "%s/noski.pem", f->tmp);
    snprintf(key, sizeof(key), "%s/noski.key", f->tmp);
    write_test_ca(cert, key, 1, 0);
    o.ca_cert_file = cert;
    o.ca_key_file = key;
    c = open_ok(&o);
    ca = ca_of(c);
    ctx = leaf_ok(c, "mail.contoso.com");
    assert_int_equal(verify_leaf(ca, ctx, "mail.contoso.com", NULL), 1);
    SSL_CTX_free(ctx);
    X509_free(ca);
    et_certs_free(c);
}

static void test_given_ca_rejected_when_wrong(void **state)
{
    struct fixture *f = *state;
    char cert[600], key[600], cert2[600], key2[600];
    struct et_certs_opts o = {0};
    struct et_certs *c = NULL;
    struct et_error e;

    snprintf(cert, sizeof(cert), "%s/a.pem", f->tmp);
    snprintf(key, sizeof(key), "%s/a.key", f->tmp);
    snprintf(cert2, sizeof(cert2), "%s/b.pem", f->tmp);
    snprintf(key2, sizeof(key2), "%s/b.key", f->tmp);
    write_test_ca(cert, key, 1, 1);
    write_test_ca(cert2, key2, 0, 1);
    /* A key of another pair. */
    o.ca_cert_file = cert;
    o.ca_key_file = key2;
    et_error_clear(&e);
    assert_int_equal(et_certs_open(&o, &c, &e), ET_EINVAL);
    assert_non_null(strstr(e.msg, "does not match"));
    /* A certificate that is no CA. */
    o.ca_cert_file = cert2;
    o.ca_key_file = key2;
    et_error_clear(&e);
    assert_int_equal(et_certs_open(&o, &c, &e), ET_EINVAL);
    assert_non_null(strstr(e.msg, "not a CA"));
    /* Missing files. */
    o.ca_key_file = "/nonexistent/x.key";
    et_error_clear(&e);
    assert_int_equal(et_certs_open(&o, &c, &e), ET_ENOTFOUND);
    assert_null(c);
}

/* ---- leaves ---- */

static void test_leaf_for_dns_name_verifies(void **state)
{
    struct et_certs_opts o = {0};
    struct et_certs *c;
    SSL_CTX *ctx;
    X509 *ca, *leaf;

    (void)state;
    c = open_ok(&o);
    ca = ca_of(c);
    ctx = leaf_ok(c, "Mail.Contoso.COM");
    leaf = SSL_CTX_get0_certificate(ctx);
    assert_int_equal(verify_leaf(ca, ctx, "mail.contoso.com", NULL), 1);
    assert_int_equal(X509_check_host(leaf, "mail.contoso.com", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(leaf, "other.contoso.com", 0, 0, NULL), 0);
    assert_int_equal(verify_leaf(ca, ctx, "other.contoso.com", NULL), 0);
    assert_int_equal(X509_check_ip_asc(leaf, "192.0.2.1", 0), 0);
    check_leaf_profile(ca, leaf, 0);
    SSL_CTX_free(ctx);
    X509_free(ca);
    et_certs_free(c);
}

static void test_leaf_for_ip_literals_has_ip_san(void **state)
{
    struct et_certs_opts o = {0};
    struct et_certs *c;
    SSL_CTX *ctx;
    X509 *ca, *leaf;

    (void)state;
    c = open_ok(&o);
    ca = ca_of(c);
    ctx = leaf_ok(c, "192.0.2.7");
    leaf = SSL_CTX_get0_certificate(ctx);
    assert_int_equal(X509_check_ip_asc(leaf, "192.0.2.7", 0), 1);
    assert_int_equal(X509_check_ip_asc(leaf, "192.0.2.8", 0), 0);
    assert_int_equal(X509_check_host(leaf, "192.0.2.7", 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
                                     NULL), 0); /* no DNS SAN, only the CN says it */
    assert_int_equal(verify_leaf(ca, ctx, NULL, "192.0.2.7"), 1);
    check_leaf_profile(ca, leaf, 0);
    SSL_CTX_free(ctx);

    ctx = leaf_ok(c, "[2001:DB8::1]");
    leaf = SSL_CTX_get0_certificate(ctx);
    assert_int_equal(X509_check_ip_asc(leaf, "2001:db8::1", 0), 1);
    assert_int_equal(verify_leaf(ca, ctx, NULL, "2001:db8:0::1"), 1);
    SSL_CTX_free(ctx);
    /* The same address spelled another way is the same cache entry. */
    ctx = leaf_ok(c, "2001:db8:0:0::1");
    SSL_CTX_free(ctx);
    {
        uint64_t minted, hits;
        et_certs_stats(c, &minted, &hits);
        assert_int_equal(minted, 2);
        assert_int_equal(hits, 1);
    }
    X509_free(ca);
    et_certs_free(c);
}

static void test_leaf_key_types_ecdsa_and_rsa(void **state)
{
    struct fixture *f = *state;
    struct et_certs_opts o = {0};
    struct et_certs *c;
    SSL_CTX *a, *b;
    X509 *ca;
    char dir2[700];

    /* ECDSA by default: every leaf shares the one key made at open. */
    c = open_ok(&o);
    ca = ca_of(c);
    a = leaf_ok(c, "a.example");
    b = leaf_ok(c, "b.example");
    assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(ca)), EVP_PKEY_EC);
    check_leaf_profile(ca, SSL_CTX_get0_certificate(a), 0);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(SSL_CTX_get0_certificate(a)),
                                 X509_get0_pubkey(SSL_CTX_get0_certificate(b))), 1);
    assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(SSL_CTX_get0_certificate(a)),
                                          X509_get0_serialNumber(SSL_CTX_get0_certificate(b))),
                         0);
    SSL_CTX_free(a);
    SSL_CTX_free(b);
    X509_free(ca);
    et_certs_free(c);

    /* RSA on request, also with the existing (ECDSA) CA ... */
    o.leaf_key = ET_CERTS_RSA2048;
    c = open_ok(&o);
    ca = ca_of(c);
    a = leaf_ok(c, "old-phone.example");
    assert_int_equal(verify_leaf(ca, a, "old-phone.example", NULL), 1);
    check_leaf_profile(ca, SSL_CTX_get0_certificate(a), 1);
    SSL_CTX_free(a);
    X509_free(ca);
    et_certs_free(c);

    /* ... and a CA created with RSA leaves requested is RSA too. */
    snprintf(dir2, sizeof(dir2), "%s/rsa", f->tmp);
    o.dir = dir2;
    c = open_ok(&o);
    ca = ca_of(c);
    assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(ca)), EVP_PKEY_RSA);
    a = leaf_ok(c, "old-phone.example");
    assert_int_equal(verify_leaf(ca, a, "old-phone.example", NULL), 1);
    check_leaf_profile(ca, SSL_CTX_get0_certificate(a), 1);
    SSL_CTX_free(a);
    X509_free(ca);
    et_certs_free(c);
}

static void test_lru_evicts_least_recent_and_counts_hits(void **state)
{
    struct et_certs_opts o = {0};
    struct et_certs *c;
    SSL_CTX *a1, *a2, *x;
    uint64_t minted, hits;

    (void)state;
    o.cache_size = 3;
    c = open_ok(&o);
    a1 = leaf_ok(c, "a.test");
    SSL_CTX_free(leaf_ok(c, "b.test"));
    SSL_CTX_free(leaf_ok(c, "c.test"));
    a2 = leaf_ok(c, "A.TEST."); /* hit: same host; order now a, c, b */
    assert_ptr_equal(a1, a2);
    et_certs_stats(c, &minted, &hits);
    assert_int_equal(minted, 3);
    assert_int_equal(hits, 1);
    SSL_CTX_free(leaf_ok(c, "d.test")); /* evicts b */
    SSL_CTX_free(leaf_ok(c, "b.test")); /* minted again, evicts c */
    x = leaf_ok(c, "a.test");           /* still cached */
    assert_ptr_equal(x, a1);
    SSL_CTX_free(x);
    SSL_CTX_free(leaf_ok(c, "c.test")); /* minted again */
    et_certs_stats(c, &minted, &hits);
    assert_int_equal(minted, 6);
    assert_int_equal(hits, 2);
    /* A reference the caller holds outlives eviction and et_certs_free. */
    et_certs_free(c);
    assert_non_null(SSL_CTX_get0_certificate(a1));
    SSL_CTX_free(a1);
    SSL_CTX_free(a2);
}

static void test_invalid_host_names_rejected(void **state)
{
    static const char *bad[] = {
        "", "a b", "evil.com/x", "a\nb", "x:y", "[::1", "[example.com]", "ex;ample",
        "mail.contoso.com,DNS:evil", "caf\xc3\xa9.example", ".leading", "a\"b", "a%00b",
        "1.2.3.4:443", "[]",
    };
    struct et_certs_opts o = {0};
    struct et_certs *c;
    char longname[300];
    SSL_CTX *ctx = (SSL_CTX *)(uintptr_t)1;
    struct et_error e;
    uint64_t minted;

    (void)state;
    c = open_ok(&o);
    for (size_t i = 0; i < ET_ARRAY_SIZE(bad); i++) {
        et_error_clear(&e);
        assert_int_equal(et_certs_leaf_ctx(c, bad[i], &ctx, &e), ET_EINVAL);
        assert_null(ctx);
        assert_non_null(strstr(e.msg, "not a host name"));
    }
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    et_error_clear(&e);
    assert_int_equal(et_certs_leaf_ctx(c, longname, &ctx, &e), ET_EINVAL);
    et_error_clear(&e);
    assert_int_equal(et_certs_leaf_ctx(c, NULL, &ctx, &e), ET_EINVAL);
    /* Accepted: underscores, wildcards, long names (no CN then, SAN only). */
    SSL_CTX_free(leaf_ok(c, "_dmarc.example"));
    ctx = leaf_ok(c, "*.eas.test");
    assert_int_equal(X509_check_host(SSL_CTX_get0_certificate(ctx), "h1.eas.test", 0, 0, NULL),
                     1);
    SSL_CTX_free(ctx);
    memset(longname, 'a', 200);
    longname[60] = '.';
    longname[120] = '.';
    longname[200] = '\0';
    ctx = leaf_ok(c, longname);
    assert_int_equal(X509_check_host(SSL_CTX_get0_certificate(ctx), longname, 0, 0, NULL), 1);
    SSL_CTX_free(ctx);
    et_certs_stats(c, &minted, NULL);
    assert_int_equal(minted, 3);
    et_certs_free(c);
}

/* ---- TLS handshakes ---- */

/* Runs a handshake between client and server over a BIO pair, then sends "ping" one way.
 * Returns 1 when both sides completed. */
static int handshake(SSL *cl, SSL *sv)
{
    BIO *b1 = NULL, *b2 = NULL;
    int cdone = 0, sdone = 0;
    char buf[8];

    assert_int_equal(BIO_new_bio_pair(&b1, 0, &b2, 0), 1);
    SSL_set_bio(cl, b1, b1);
    SSL_set_bio(sv, b2, b2);
    for (int i = 0; i < 50 && !(cdone && sdone); i++) {
        if (!cdone) {
            int r = SSL_do_handshake(cl);
            if (r == 1)
                cdone = 1;
            else if (SSL_get_error(cl, r) != SSL_ERROR_WANT_READ)
                return 0;
        }
        if (!sdone) {
            int r = SSL_do_handshake(sv);
            if (r == 1)
                sdone = 1;
            else if (SSL_get_error(sv, r) != SSL_ERROR_WANT_READ)
                return 0;
        }
    }
    if (!(cdone && sdone))
        return 0;
    assert_int_equal(SSL_write(cl, "ping", 4), 4);
    assert_int_equal(SSL_read(sv, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "ping", 4);
    return 1;
}

static SSL_CTX *client_ctx(X509 *ca)
{
    SSL_CTX *cc = SSL_CTX_new(TLS_client_method());
    assert_non_null(cc);
    assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(cc), ca), 1);
    SSL_CTX_set_verify(cc, SSL_VERIFY_PEER, NULL);
    return cc;
}

static void test_tls_handshake_with_alpn_http11(void **state)
{
    struct et_certs_opts o = {0};
    struct et_certs *c;
    SSL_CTX *sctx, *cc;
    SSL *cl, *sv;
    X509 *ca;
    const unsigned char *proto = NULL;
    unsigned int plen = 0;
    static const unsigned char h2_and_h11[] = "\x02h2\x08http/1.1";
    static const unsigned char h2_only[] = "\x02h2";
    char sni_mail[] = "mail.contoso.com"; /* writable: SSL_set_tlsext_host_name casts it */

    (void)state;
    c = open_ok(&o);
    ca = ca_of(c);
    cc = client_ctx(ca);
    sctx = leaf_ok(c, "mail.contoso.com");

    /* A phone offering h2 and http/1.1 gets http/1.1, and the chain verifies by name. */
    cl = SSL_new(cc);
    sv = SSL_new(sctx);
    SSL_set_tlsext_host_name(cl, sni_mail);
    SSL_set1_host(cl, "mail.contoso.com");
    assert_int_equal(SSL_set_alpn_protos(cl, h2_and_h11, sizeof(h2_and_h11) - 1), 0);
    SSL_set_accept_state(sv);
    SSL_set_connect_state(cl);
    assert_int_equal(handshake(cl, sv), 1);
    assert_int_equal(SSL_get_verify_result(cl), X509_V_OK);
    SSL_get0_alpn_selected(cl, &proto, &plen);
    assert_int_equal(plen, 8);
    assert_memory_equal(proto, "http/1.1", 8);
    assert_true(SSL_version(cl) >= TLS1_2_VERSION);
    SSL_free(cl);
    SSL_free(sv);

    /* h2 only: no ALPN at all rather than a failed handshake. */
    cl = SSL_new(cc);
    sv = SSL_new(sctx);
    SSL_set_tlsext_host_name(cl, sni_mail);
    SSL_set1_host(cl, "mail.contoso.com");
    SSL_set_alpn_protos(cl, h2_only, sizeof(h2_only) - 1);
    SSL_set_accept_state(sv);
    SSL_set_connect_state(cl);
    assert_int_equal(handshake(cl, sv), 1);
    SSL_get0_alpn_selected(cl, &proto, &plen);
    assert_int_equal(plen, 0);
    SSL_free(cl);
    SSL_free(sv);

    /* The wrong name fails verification on the client. */
    cl = SSL_new(cc);
    sv = SSL_new(sctx);
    SSL_set1_host(cl, "other.example");
    SSL_set_accept_state(sv);
    SSL_set_connect_state(cl);
    assert_int_equal(handshake(cl, sv), 0);
    assert_int_equal(SSL_get_verify_result(cl), X509_V_ERR_HOSTNAME_MISMATCH);
    SSL_free(cl);
    SSL_free(sv);
    ERR_clear_error();

    /* TLS 1.1 is refused. */
    cl = SSL_new(cc);
    sv = SSL_new(sctx);
    SSL_set_min_proto_version(cl, TLS1_VERSION);
    SSL_set_max_proto_version(cl, TLS1_1_VERSION);
    SSL_set_security_level(cl, 0);
    SSL_set_accept_state(sv);
    SSL_set_connect_state(cl);
    assert_int_equal(handshake(cl, sv), 0);
    SSL_free(cl);
    SSL_free(sv);
    ERR_clear_error();

    SSL_CTX_free(sctx);
    SSL_CTX_free(cc);
    X509_free(ca);
    et_certs_free(c);
}

/* The way a proxy may use it: one default context whose servername callback swaps in the
 * leaf context for the SNI the phone sent (SSL_set_SSL_CTX); ALPN must still be http/1.1. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    struct et_certs *c = arg;
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    SSL_CTX *leaf = NULL;
    struct et_error e;

    (void)alert;
    et_error_clear(&e);
    if (sni == NULL || et_certs_leaf_ctx(c, sni, &leaf, &e) != 0)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    SSL_set_SSL_CTX(ssl, leaf); /* takes its own reference */
    SSL_CTX_free(leaf);
    return SSL_TLSEXT_ERR_OK;
}

static void test_tls_sni_callback_switches_to_leaf_ctx(void **state)
{
    struct et_certs_opts o = {0};
    struct et_certs *c;
    SSL_CTX *deflt, *cc;
    X509 *ca;
    const unsigned char *proto = NULL;
    unsigned int plen = 0;
    static const unsigned char alpn[] = "\x08http/1.1";
    uint64_t minted, hits;

    (void)state;
    c = open_ok(&o);
    ca = ca_of(c);
    cc = client_ctx(ca);
    deflt = leaf_ok(c, "proxy.invalid");
    SSL_CTX_set_tlsext_servername_callback(deflt, on_servername);
    SSL_CTX_set_tlsext_servername_arg(deflt, c);
    for (int i = 0; i < 3; i++) {
        /* Writable: SSL_set_tlsext_host_name casts its name to void * (-Wcast-qual). */
        char name[16];
        snprintf(name, sizeof(name), "%s", i == 1 ? "h2.eas.test" : "h1.eas.test");
        SSL *cl = SSL_new(cc), *sv = SSL_new(deflt);
        SSL_set_tlsext_host_name(cl, name);
        SSL_set1_host(cl, name);
        SSL_set_alpn_protos(cl, alpn, sizeof(alpn) - 1);
        SSL_set_accept_state(sv);
        SSL_set_connect_state(cl);
        assert_int_equal(handshake(cl, sv), 1);
        assert_int_equal(SSL_get_verify_result(cl), X509_V_OK);
        SSL_get0_alpn_selected(cl, &proto, &plen);
        assert_int_equal(plen, 8);
        assert_memory_equal(proto, "http/1.1", 8);
        SSL_free(cl);
        SSL_free(sv);
    }
    et_certs_stats(c, &minted, &hits);
    assert_int_equal(minted, 3); /* proxy.invalid, h1, h2 */
    assert_int_equal(hits, 1);   /* h1 the second time */
    SSL_CTX_free(deflt);
    SSL_CTX_free(cc);
    X509_free(ca);
    et_certs_free(c);
}

static void test_tls_handshake_rsa_leaf_tls12(void **state)
{
    struct et_certs_opts o = {0};
    struct et_certs *c;
    SSL_CTX *sctx, *cc;
    SSL *cl, *sv;
    X509 *ca;

    (void)state;
    o.leaf_key = ET_CERTS_RSA2048;
    c = open_ok(&o);
    ca = ca_of(c);
    cc = client_ctx(ca);
    sctx = leaf_ok(c, "10.1.2.3");
    cl = SSL_new(cc);
    sv = SSL_new(sctx);
    SSL_set_max_proto_version(cl, TLS1_2_VERSION);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(cl), "10.1.2.3");
    SSL_set_accept_state(sv);
    SSL_set_connect_state(cl);
    assert_int_equal(handshake(cl, sv), 1);
    assert_int_equal(SSL_get_verify_result(cl), X509_V_OK);
    assert_int_equal(SSL_version(cl), TLS1_2_VERSION);
    SSL_free(cl);
    SSL_free(sv);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cc);
    X509_free(ca);
    et_certs_free(c);
}

/* ---- exports ---- */

static void test_exports_pem_der_mobileconfig_page(void **state)
{
    struct et_certs_opts o = {0};
    struct et_certs *c;
    struct et_buf pem, der, mc, mc2, page, r;
    X509 *ca, *fromder;
    const unsigned char *p;
    const char *ct = NULL;
    char fp[ET_CERTS_FINGERPRINT_LEN];
    struct et_buf b64;

    (void)state;
    c = open_ok(&o);
    ca = ca_of(c);
    et_buf_init(&pem, 0);
    et_buf_init(&der, 0);
    et_buf_init(&mc, 0);
    et_buf_init(&mc2, 0);
    et_buf_init(&page, 0);
    et_buf_init(&r, 0);
    et_buf_init(&b64, 0);

    assert_int_equal(et_certs_ca_pem(c, &pem), 0);
    assert_non_null(strstr((char *)pem.data, "-----BEGIN CERTIFICATE-----"));
    assert_null(strstr((char *)pem.data, "PRIVATE"));
    {
        size_t n;
        unsigned char *file = et_test_read_file(et_certs_ca_path(c), &n);
        assert_non_null(file);
        assert_int_equal(n, pem.len);
        assert_memory_equal(file, pem.data, n);
        free(file);
    }
    assert_int_equal(et_certs_ca_der(c, &der), 0);
    p = der.data;
    fromder = d2i_X509(NULL, &p, (long)der.len);
    assert_non_null(fromder);
    assert_int_equal(X509_cmp(fromder, ca), 0);
    X509_free(fromder);

    assert_int_equal(et_certs_mobileconfig(c, &mc), 0);
    assert_int_equal(et_certs_mobileconfig(c, &mc2), 0);
    assert_int_equal(mc.len, mc2.len);
    assert_memory_equal(mc.data, mc2.data, mc.len); /* stable UUIDs */
    assert_non_null(strstr((char *)mc.data, "<string>com.apple.security.root</string>"));
    assert_non_null(strstr((char *)mc.data, "<string>Configuration</string>"));
    assert_non_null(strstr((char *)mc.data, "<!DOCTYPE plist"));
    /* The first base64 line of the DER is in the <data> element. */
    assert_int_equal(et_base64_encode(&b64, der.data, 39), 0);
    assert_non_null(strstr((char *)mc.data, (char *)b64.data));
    {
        const char *u = strstr((char *)mc.data, "<key>PayloadUUID</key>\n\t\t\t<string>");
        assert_non_null(u);
        u += strlen("<key>PayloadUUID</key>\n\t\t\t<string>");
        assert_int_equal(strcspn(u, "<"), 36);
        assert_int_equal(u[8], '-');
        assert_int_equal(u[14], '5');
    }

    assert_int_equal(et_certs_install_page(c, "<script>1.2.3.4:8888", &page), 0);
    assert_null(strstr((char *)page.data, "<script>"));
    assert_non_null(strstr((char *)page.data, "&lt;script&gt;1.2.3.4:8888"));
    assert_non_null(strstr((char *)page.data, "href=\"/eastrace-ca.mobileconfig\""));
    assert_non_null(strstr((char *)page.data, "href=\"/eastrace-ca.crt\""));
    assert_non_null(strstr((char *)page.data, "href=\"/eastrace-ca.pem\""));
    assert_non_null(strstr((char *)page.data, "Certificate Trust Settings"));
    assert_non_null(strstr((char *)page.data, "Install a certificate &gt; CA certificate"));
    et_certs_ca_fingerprint(c, fp, sizeof(fp));
    assert_non_null(strstr((char *)page.data, fp));

    assert_int_equal(et_certs_http_resource(c, "/?x=1", NULL, &r, &ct), 0);
    assert_string_equal(ct, "text/html; charset=utf-8");
    et_buf_reset(&r);
    assert_int_equal(et_certs_http_resource(c, "/eastrace-ca.crt", NULL, &r, &ct), 0);
    assert_string_equal(ct, "application/x-x509-ca-cert");
    assert_int_equal(r.len, der.len);
    assert_memory_equal(r.data, der.data, der.len);
    et_buf_reset(&r);
    assert_int_equal(et_certs_http_resource(c, "/eastrace-ca.mobileconfig", NULL, &r, &ct), 0);
    assert_string_equal(ct, "application/x-apple-aspen-config");
    et_buf_reset(&r);
    assert_int_equal(et_certs_http_resource(c, "/eastrace-ca.pem", NULL, &r, &ct), 0);
    assert_string_equal(ct, "application/x-pem-file");
    et_buf_reset(&r);
    assert_int_equal(et_certs_http_resource(c, "/ca.key", NULL, &r, &ct), ET_ENOTFOUND);
    assert_int_equal(et_certs_http_resource(c, "/../ca.key", NULL, &r, &ct), ET_ENOTFOUND);
    /* Capped buffers are honoured. */
    {
        struct et_buf small;
        et_buf_init(&small, 100);
        assert_int_equal(et_certs_mobileconfig(c, &small), ET_ETOOBIG);
        et_buf_free(&small);
    }

    et_buf_free(&pem);
    et_buf_free(&der);
    et_buf_free(&mc);
    et_buf_free(&mc2);
    et_buf_free(&page);
    et_buf_free(&r);
    et_buf_free(&b64);
    X509_free(ca);
    et_certs_free(c);
}

/* ---- threads and failures ---- */

struct worker {
    struct et_certs *c;
    int id;
    int failures;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char host[64];
    for (int i = 0; i < 150; i++) {
        SSL_CTX *ctx = NULL;
        struct et_error e;
        et_error_clear(&e);
        snprintf(host, sizeof(host), "h%d.eas.test", (i * 7 + w->id) % 20);
        if (et_certs_leaf_ctx(w->c, host, &ctx, &e) != 0 ||
            X509_check_host(SSL_CTX_get0_certificate(ctx), host, 0, 0, NULL) != 1)
            w->failures++;
        SSL_CTX_free(ctx);
    }
    return NULL;
}

static void test_concurrent_lookups_from_threads(void **state)
{
    struct et_certs_opts o = {0};
    struct et_certs *c;
    pthread_t t[4];
    struct worker w[4];
    uint64_t minted, hits;

    (void)state;
    o.cache_size = 8; /* smaller than the 20 hosts: evictions race with lookups */
    c = open_ok(&o);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){c, i, 0};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    et_certs_stats(c, &minted, &hits);
    /* Every lookup either hit or minted (two threads may both mint one host). */
    assert_true(minted + hits >= 600);
    assert_true(minted >= 20);
    et_certs_free(c);
}

/* Fails the nth et_malloc (our allocations), then the nth OpenSSL allocation, through open,
 * minting and the exports: every call must fail cleanly or succeed, never crash or leak. */
static void test_allocation_failure_does_not_crash(void **state)
{
    struct et_certs_opts o = {0};
    struct et_certs *c;
    int our_failures = 0, ossl_failures = 0;

    (void)state;
    et_certs_free(open_ok(&o)); /* create the CA once; the loop loads it */
    for (int pass = 0; pass < 2; pass++) {
        /* Every call early on, then a stride, to keep the sanitizer run short. */
        for (long n = 1; n < 1000000; n += n < 400 ? 1 : 7) {
            struct et_error e;
            SSL_CTX *ctx = NULL;
            struct et_buf b;
            int rc, done = 0;

            c = NULL;
            et_error_clear(&e);
            if (pass == 0)
                et_alloc_fail_after(n);
            else
                ossl_fail_countdown = n;
            rc = et_certs_open(&o, &c, &e);
            if (rc == 0) {
                et_error_clear(&e);
                rc = et_certs_leaf_ctx(c, "mail.contoso.com", &ctx, &e);
                if (rc == 0) {
                    assert_non_null(ctx);
                    SSL_CTX_free(ctx);
                    et_buf_init(&b, 0);
                    rc = et_certs_mobileconfig(c, &b);
                    et_buf_free(&b);
                }
            }
            /* Failing the nth call fails all later ones too, so the first n that passes
             * is past the last allocation of ours; OpenSSL tolerates some failures, so
             * there we stop once the injected failure no longer fires. */
            done = pass == 0 ? rc == 0 : ossl_fail_countdown != 0;
            et_alloc_fail_after(-1);
            ossl_fail_countdown = -1;
            if (rc != 0) {
                assert_true(rc == ET_ENOMEM || rc == ET_ETLS || rc == ET_EIO ||
                            rc == ET_EINVAL || rc == ET_ENOTFOUND);
                assert_int_equal(e.code != 0 || rc == ET_ENOMEM, 1);
                if (pass == 0)
                    our_failures++;
                else
                    ossl_failures++;
            }
            et_certs_free(c);
            ERR_clear_error();
            if (done)
                break;
        }
    }
    print_message("injected failures handled: %d of ours, %d in OpenSSL\n", our_failures,
                  ossl_failures);
    assert_true(our_failures > 0);
    assert_true(ossl_failures > 0);
}

int main(void)
{
    /* Before anything allocates through OpenSSL. */
    if (!CRYPTO_set_mem_functions(t_malloc, t_realloc, t_free))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ca_created_on_first_use_with_private_modes,
                                        setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_ca_reused_on_second_open, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_concurrent_first_runs_agree_on_one_ca, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_ca_explicit_dir_created, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_loose_modes_repaired_and_reported, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_key_owned_by_another_user_refused, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_certificate_without_key_is_not_replaced, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_corrupt_certificate_reports_openssl_error,
                                        setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_bad_options_rejected, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_given_ca_loaded_and_used, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_given_ca_without_ski_still_chains, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_given_ca_rejected_when_wrong, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_leaf_for_dns_name_verifies, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_leaf_for_ip_literals_has_ip_san, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_leaf_key_types_ecdsa_and_rsa, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_lru_evicts_least_recent_and_counts_hits, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_invalid_host_names_rejected, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_tls_handshake_with_alpn_http11, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_tls_sni_callback_switches_to_leaf_ctx, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_tls_handshake_rsa_leaf_tls12, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_exports_pem_der_mobileconfig_page, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_concurrent_lookups_from_threads, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_allocation_failure_does_not_crash, setup_tmp,
                                        teardown_tmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
