/*
 * bench_certs: how fast certs/ mints per-host leaves and serves them from its cache.
 *
 * Prints leaves minted per second (each a new host: certificate signed by the CA plus its
 * server SSL_CTX) for ECDSA P-256 and RSA-2048 leaves, under an ECDSA CA (what eastrace
 * creates) and an RSA-2048 CA (what the proxy bench gives, certs/mitm-ca.pem), with one and
 * two threads; cache-hit lookups per second; and, as the peer in the same run, a naive minter
 * that makes a fresh key pair per leaf (what a proxy without a startup key pays). The
 * budget line is the proxy bench's uniqsni figure for squid (387 new SNIs/s): minting must
 * cost a small part of it.
 *
 * Usage: bench_certs [SECONDS_PER_POINT]   (default 1)
 */
#include "eastrace/certs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const struct et_error *e)
{
    fprintf(stderr, "bench_certs: %s: %s\n", what, e != NULL ? e->msg : "");
    exit(1);
}

/* Writes an RSA-2048 CA like the proxy bench's `openssl req -x509 -newkey rsa:2048`. */
static void write_rsa_ca(const char *cert, const char *key)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ex;
    FILE *f;

    if (k == NULL || x == NULL)
        die("rsa ca", NULL);
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 86400);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"bench MITM CA", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, k);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ex = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, ex, -1);
    X509_EXTENSION_free(ex);
    ex = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier, "hash");
    X509_add_ext(x, ex, -1);
    X509_EXTENSION_free(ex);
    X509_sign(x, k, EVP_sha256());
    if ((f = fopen(cert, "w")) == NULL)
        die("write ca", NULL);
    PEM_write_X509(f, x);
    fclose(f);
    if ((f = fopen(key, "w")) == NULL)
        die("write key", NULL);
    chmod(key, 0600);
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
}

struct mint_job {
    struct et_certs *c;
    int id;
    double secs;
    long count;
};

static void *mint_loop(void *arg)
{
    struct mint_job *j = arg;
    double end = now_s() + j->secs;
    char host[64];
    struct et_error e;

    for (j->count = 0; now_s() < end; j->count++) {
        SSL_CTX *ctx;
        snprintf(host, sizeof(host), "h%d-%ld.eas.test", j->id, j->count);
        et_error_clear(&e);
        if (et_certs_leaf_ctx(j->c, host, &ctx, &e) != 0)
            die("mint", &e);
        SSL_CTX_free(ctx);
    }
    return NULL;
}

/* New hosts per second with nthreads minting at once. */
static double mint_rate(struct et_certs *c, int nthreads, double secs, double *cpu_us)
{
    pthread_t t[4];
    struct mint_job j[4];
    long total = 0;
    double t0 = now_s(), c0 = cpu_s(), el;

    for (int i = 0; i < nthreads; i++) {
        j[i] = (struct mint_job){c, i, secs, 0};
        pthread_create(&t[i], NULL, mint_loop, &j[i]);
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        total += j[i].count;
    }
    el = now_s() - t0;
    *cpu_us = (cpu_s() - c0) * 1e6 / (double)total;
    return (double)total / el;
}

static double hit_rate(struct et_certs *c, double secs)
{
    char hosts[256][32];
    struct et_error e;
    long n = 0;
    double t0, end;

    for (int i = 0; i < 256; i++) {
        SSL_CTX *ctx;
        snprintf(hosts[i], sizeof(hosts[i]), "cached%d.eas.test", i);
        if (et_certs_leaf_ctx(c, hosts[i], &ctx, &e) != 0)
            die("warm", &e);
        SSL_CTX_free(ctx);
    }
    t0 = now_s();
    end = t0 + secs;
    while (now_s() < end) {
        for (int i = 0; i < 256; i++) {
            SSL_CTX *ctx;
            if (et_certs_leaf_ctx(c, hosts[i], &ctx, &e) != 0)
                die("hit", &e);
            SSL_CTX_free(ctx);
        }
        n += 256;
    }
    return (double)n / (now_s() - t0);
}

/* The peer: a fresh key pair per leaf, then the same certificate and SSL_CTX work. */
static double naive_rate(EVP_PKEY *ca_key, X509 *ca, int rsa, double secs)
{
    double t0 = now_s(), end = t0 + secs;
    long n = 0;

    while (now_s() < end) {
        EVP_PKEY *k = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
        X509 *x = X509_new();
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        char host[64];
        snprintf(host, sizeof(host), "n%ld.eas.test", n);
        X509_set_version(x, X509_VERSION_3);
        ASN1_INTEGER_set(X509_get_serialNumber(x), n + 1);
        X509_gmtime_adj(X509_getm_notBefore(x), -86400);
        X509_gmtime_adj(X509_getm_notAfter(x), 396L * 86400);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                   (const unsigned char *)host, -1, -1, 0);
        X509_set_issuer_name(x, X509_get_subject_name(ca));
        X509_set_pubkey(x, k);
        X509_sign(x, ca_key, EVP_sha256());
        SSL_CTX_use_certificate(ctx, x);
        SSL_CTX_use_PrivateKey(ctx, k);
        SSL_CTX_free(ctx);
        X509_free(x);
        EVP_PKEY_free(k);
        n++;
    }
    return (double)n / (now_s() - t0);
}

static double ctx_new_rate(double secs)
{
    double t0 = now_s(), end = t0 + secs;
    long n = 0;
    while (now_s() < end) {
        SSL_CTX_free(SSL_CTX_new(TLS_server_method()));
        n++;
    }
    return (double)n / (now_s() - t0);
}

static EVP_PKEY *read_key(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    return k;
}

static X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    return x;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? strtod(argv[1], NULL) : 1.0;
    char tmp[] = "/tmp/bench-certs-XXXXXX";
    char dir[64], rsa_cert[64], rsa_key[64], ec_cert[80], ec_key[80];
    static const char *ca_names[2] = {"ECDSA P-256 CA (eastrace's own)",
                                      "RSA-2048 CA (the proxy bench's)"};
    double best_ec_rsa_ca = 0, best_cpu_us = 0, naive[2];

    if (secs <= 0 || mkdtemp(tmp) == NULL)
        return 1;
    snprintf(dir, sizeof(dir), "%s/data", tmp);
    snprintf(rsa_cert, sizeof(rsa_cert), "%s/mitm-ca.pem", tmp);
    snprintf(rsa_key, sizeof(rsa_key), "%s/mitm-ca.key", tmp);
    snprintf(ec_cert, sizeof(ec_cert), "%s/ca.pem", dir);
    snprintf(ec_key, sizeof(ec_key), "%s/ca.key", dir);
    write_rsa_ca(rsa_cert, rsa_key);

    printf("bench_certs: %.1f s per point, OpenSSL %s, %ld CPUs online\n", secs,
           OpenSSL_version(OPENSSL_VERSION_STRING), sysconf(_SC_NPROCESSORS_ONLN));
    printf("%-34s %-10s %7s %12s %11s\n", "CA", "leaf key", "threads", "leaves/s", "CPU us/leaf");
    for (int ca = 0; ca < 2; ca++) {
        for (int lk = 0; lk < 2; lk++) {
            for (int th = 1; th <= 2; th++) {
                struct et_certs_opts o = {0};
                struct et_certs *c;
                struct et_error e;
                double rate, cpu;

                o.leaf_key = lk ? ET_CERTS_RSA2048 : ET_CERTS_ECDSA_P256;
                o.cache_size = 1u << 20; /* no evictions in the measured loop */
                if (ca == 0)
                    o.dir = dir;
                else {
                    o.ca_cert_file = rsa_cert;
                    o.ca_key_file = rsa_key;
                }
                et_error_clear(&e);
                if (et_certs_open(&o, &c, &e) != 0)
                    die("open", &e);
                rate = mint_rate(c, th, secs, &cpu);
                printf("%-34s %-10s %7d %12.0f %11.0f\n", ca_names[ca],
                       lk ? "RSA-2048" : "ECDSA", th, rate, cpu);
                if (ca == 1 && lk == 0 && th == 1) {
                    best_ec_rsa_ca = rate;
                    best_cpu_us = cpu;
                }
                et_certs_free(c);
            }
        }
    }
    {
        struct et_certs_opts o = {0};
        struct et_certs *c;
        struct et_error e;
        o.dir = dir;
        et_error_clear(&e);
        if (et_certs_open(&o, &c, &e) != 0)
            die("open", &e);
        printf("cache-hit lookups/s (256 hosts cached, 1 thread): %.0f\n", hit_rate(c, secs));
        et_certs_free(c);
    }
    printf("SSL_CTX_new+free alone, per second: %.0f\n", ctx_new_rate(secs));
    {
        EVP_PKEY *k = read_key(rsa_key);
        X509 *x = read_cert(rsa_cert);
        if (k == NULL || x == NULL)
            die("reread ca", NULL);
        naive[0] = naive_rate(k, x, 0, secs);
        naive[1] = naive_rate(k, x, 1, secs);
        printf("peer, fresh key per leaf, RSA-2048 CA: ECDSA %.0f leaves/s, RSA-2048 %.0f "
               "leaves/s\n",
               naive[0], naive[1]);
        EVP_PKEY_free(k);
        X509_free(x);
    }
    printf("ratio, startup key vs fresh RSA key per leaf (RSA-2048 CA, 1 thread): %.1fx\n",
           best_ec_rsa_ca / naive[1]);
    /* CPU time per leaf is steadier than wall-clock rates on a shared machine. */
    printf("budget: at squid's uniqsni rate (387 new SNIs/s) minting would take %.1f%% of one "
           "core (bench's RSA CA, ECDSA leaves, %.0f us CPU per leaf)\n",
           387.0 * best_cpu_us / 1e4, best_cpu_us);
    unlink(rsa_cert);
    unlink(rsa_key);
    unlink(ec_cert);
    unlink(ec_key);
    {
        char lock[80];
        snprintf(lock, sizeof(lock), "%s/.lock", dir);
        unlink(lock);
    }
    rmdir(dir);
    rmdir(tmp);
    return 0;
}
