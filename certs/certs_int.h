/* certs/ internals shared by ca.c, leaf.c and install.c. */
#ifndef ET_CERTS_CERTS_INT_H
#define ET_CERTS_CERTS_INT_H

#include "eastrace/certs.h"
#include "eastrace/map.h"

#include <pthread.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/*
 * One cached leaf. Entries are found by host through the common hash table (map.h) and sit
 * in the LRU list:
 *
 *   lru_head (most recent) <-> ... <-> lru_tail (evicted first)
 */
struct et__leaf {
    struct et__leaf *prev, *next;       /* LRU list */
    uint64_t hash;                      /* et_hash(host) */
    time_t not_after;                   /* re-minted when close to expiry */
    SSL_CTX *ctx;                       /* the cache's own reference */
    char host[];                        /* normalised: lower case, IPv6 without brackets */
};

struct et_certs {
    X509 *ca;
    EVP_PKEY *ca_key;
    EVP_PKEY *leaf_key;                 /* the one leaf key pair, made at open */
    enum et_certs_key_type leaf_type;
    X509_NAME *ca_name;                 /* borrowed from ca */
    time_t ca_not_after;
    X509_EXTENSION *ext_aki;            /* precomputed leaf extensions, copied per leaf */
    X509_EXTENSION *ext_ku;
    X509_EXTENSION *ext_eku;
    X509_EXTENSION *ext_bc;
    X509_EXTENSION *ext_ski;
    unsigned validity_days;

    char *ca_path;
    char ca_cn[128];
    char fingerprint[ET_CERTS_FINGERPRINT_LEN];
    uint8_t fp_raw[32];
    struct et_buf warnings;
    int created;

    pthread_mutex_t lock;               /* guards everything below */
    struct et_map table;                /* host -> struct et__leaf */
    struct et__leaf *lru_head, *lru_tail;
    size_t count, capacity;
    uint64_t minted, hits;
};

/* Fills e with what, plus OpenSSL's queued errors, and clears the queue. Returns ET_ETLS. */
int et__certs_tls_error(struct et_error *e, const char *what);

/* Leaf side (leaf.c): builds the precomputed extensions; frees the cache. */
int et__certs_leaf_init(struct et_certs *c, struct et_error *e);
void et__certs_leaf_free(struct et_certs *c);

/* A fresh key pair of the given type; NULL with the OpenSSL queue set. */
EVP_PKEY *et__certs_keygen(enum et_certs_key_type t);
/* 16 random bytes as a positive serial into x. Returns 0 or -1. */
int et__certs_set_serial(X509 *x);

#endif
