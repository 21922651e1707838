/*
 * The interception root CA: where it lives, how it is created (fresh key, atomic writes with
 * the final modes from the start) and loaded (ownership and mode checks, repairs reported).
 *
 * Data directory layout (mode 0700):
 *
 *   $XDG_DATA_HOME/eastrace/      (else ~/.local/share/eastrace/)
 *     ca.pem    the CA certificate, 0644: safe to hand to phones
 *     ca.key    its private key (PKCS#8 PEM, unencrypted), 0600: never leaves this file
 *     .lock     flock()ed while a first run creates the pair, so two starts agree on one CA
 */
#include "eastrace/certs.h"

#include "certs_int.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define CA_VALIDITY_DAYS 3650
#define DAY_SECONDS 86400L

int et__certs_tls_error(struct et_error *e, const char *what)
{
    char detail[160] = "";
    unsigned long err, last = 0;
    const char *data = NULL;
    int flags = 0;

    /* The queue is oldest first; the oldest error usually names the root cause. */
    while ((err = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        if (last == 0) {
            ERR_error_string_n(err, detail, sizeof(detail));
            if (data != NULL && (flags & ERR_TXT_STRING) && data[0] != '\0') {
                size_t n = strlen(detail);
                snprintf(detail + n, sizeof(detail) - n, " (%s)", data);
            }
        }
        last = err;
    }
    if (detail[0] != '\0')
        et_error_set(e, ET_ETLS, "%s: %s", what, detail);
    else
        et_error_set(e, ET_ETLS, "%s", what);
    return ET_ETLS;
}

EVP_PKEY *et__certs_keygen(enum et_certs_key_type t)
{
    if (t == ET_CERTS_RSA2048)
        return EVP_RSA_gen(2048);
    return EVP_EC_gen("P-256");
}

int et__certs_set_serial(X509 *x)
{
    unsigned char raw[16];
    BIGNUM *bn = NULL;
    int rc = -1;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    /* Positive, and a high bit set so the encoding keeps all 16 bytes of entropy. */
    raw[0] = (unsigned char)((raw[0] & 0x7f) | 0x40);
    if ((bn = BN_bin2bn(raw, sizeof(raw), NULL)) == NULL)
        goto fail;
    if (BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto fail;
    rc = 0;
fail:
    BN_free(bn);
    return rc;
}

static void warn(struct et_certs *c, const char *fmt, ...) ET_PRINTF(2, 3);
static void warn(struct et_certs *c, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = et_buf_vprintf(&c->warnings, fmt, ap);
    va_end(ap);
    /* A warning that cannot be stored is not worth failing the open for. */
    if (rc == 0)
        et_buf_putc(&c->warnings, '\n');
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = et_malloc(a + b + 2);
    if (p == NULL)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* The default data directory, freshly allocated, or NULL (ET_ENOMEM / ET_EINVAL in e). */
static char *default_dir(struct et_error *e)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    char *p = NULL;
    struct et_buf b;

    et_buf_init(&b, 4096);
    /* The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored. */
    if (xdg != NULL && xdg[0] == '/') {
        if (et_buf_printf(&b, "%s/eastrace", xdg) != 0)
            goto nomem;
    } else if (home != NULL && home[0] == '/') {
        if (et_buf_printf(&b, "%s/.local/share/eastrace", home) != 0)
            goto nomem;
    } else {
        et_error_set(e, ET_EINVAL, "no data directory: set XDG_DATA_HOME or HOME, or give one");
        return NULL;
    }
    p = (char *)et_buf_detach(&b, NULL);
    return p;
nomem:
    et_buf_free(&b);
    et_error_set(e, ET_ENOMEM, "out of memory");
    return NULL;
}

/*
 * Makes dir and its missing parents. Parents we create get 0700 (as the XDG spec asks); the
 * final directory is forced to exactly 0700, and an existing looser one is repaired.
 */
static int ensure_dir(struct et_certs *c, const char *dir, struct et_error *e)
{
    char *p = et_strdup(dir);
    struct stat st;
    int rc = 0;

    if (p == NULL) {
        et_error_set(e, ET_ENOMEM, "out of memory");
        return ET_ENOMEM;
    }
    for (char *s = p + 1; *s != '\0'; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0700) == 0) {
            /* A parent we create gets 0700 whatever the umask, or we could not enter it. */
            if (chmod(p, 0700) != 0) {
                et_error_set(e, ET_EIO, "cannot chmod %s: %s", p, strerror(errno));
                rc = ET_EIO;
                goto out;
            }
        } else if (errno != EEXIST) {
            et_error_set(e, ET_EIO, "cannot create %s: %s", p, strerror(errno));
            rc = ET_EIO;
            goto out;
        }
        *s = '/';
    }
    if (mkdir(p, 0700) == 0) {
        /* mkdir honours the umask, which may have taken owner bits away. */
        if (chmod(p, 0700) != 0) {
            et_error_set(e, ET_EIO, "cannot chmod %s: %s", p, strerror(errno));
            rc = ET_EIO;
            goto out;
        }
    } else if (errno != EEXIST) {
        et_error_set(e, ET_EIO, "cannot create %s: %s", p, strerror(errno));
        rc = ET_EIO;
        goto out;
    }
    if (lstat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
        et_error_set(e, ET_EIO, "%s is not a directory", p);
        rc = ET_EIO;
        goto out;
    }
    if (st.st_uid != geteuid()) {
        et_error_set(e, ET_EPERM, "%s belongs to another user (uid %u): refusing to keep a CA key there",
                     p, (unsigned)st.st_uid);
        rc = ET_EPERM;
        goto out;
    }
    if ((st.st_mode & 07777) != 0700) {
        if (chmod(p, 0700) != 0) {
            et_error_set(e, ET_EIO, "cannot chmod %s: %s", p, strerror(errno));
            rc = ET_EIO;
            goto out;
        }
        warn(c, "directory %s had mode %04o; set to 0700", p, (unsigned)(st.st_mode & 07777));
    }
out:
    et_free(p);
    return rc;
}

/*
 * Writes data to path atomically: a new temporary file next to it (O_CREAT|O_EXCL, created
 * with `mode`, then fchmod()ed in case the umask took bits away), fsync, rename over path.
 */
static int write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                        struct et_error *e)
{
    unsigned char rnd[6];
    char tmp[4096];
    const unsigned char *p = data;
    int fd = -1, rc = ET_EIO;
    size_t off = 0;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return et__certs_tls_error(e, "random bytes for a temporary name");
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-%02x%02x%02x%02x%02x%02x", path, rnd[0],
                         rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]) >= sizeof(tmp)) {
        et_error_set(e, ET_EINVAL, "path too long: %s", path);
        return ET_EINVAL;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        et_error_set(e, ET_EIO, "cannot create %s: %s", tmp, strerror(errno));
        return ET_EIO;
    }
    if (fchmod(fd, mode) != 0) {
        et_error_set(e, ET_EIO, "cannot chmod %s: %s", tmp, strerror(errno));
        goto fail;
    }
    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            et_error_set(e, ET_EIO, "cannot write %s: %s", tmp, strerror(errno));
            goto fail;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0) {
        et_error_set(e, ET_EIO, "cannot sync %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        et_error_set(e, ET_EIO, "cannot close %s: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        et_error_set(e, ET_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ex;
    int ok;

    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    ex = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ex == NULL)
        return -1;
    ok = X509_add_ext(x, ex, -1);
    X509_EXTENSION_free(ex);
    return ok ? 0 : -1;
}

/* A new self-signed CA for this install: CN "eastrace CA (<host> <date>)", 10 years. */
static int make_ca(struct et_certs *c, enum et_certs_key_type type, struct et_error *e)
{
    char host[40] = "localhost", cn[80], date[16];
    time_t now = time(NULL);
    struct tm tm;
    X509_NAME *name;
    X509 *x = NULL;
    EVP_PKEY *key = NULL;

    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d", &tm);
    /* At most 64 characters, the X.520 limit of a CN. */
    snprintf(cn, sizeof(cn), "eastrace CA (%.39s %.10s)", host, date);

    if ((key = et__certs_keygen(type)) == NULL)
        goto fail;
    if ((x = X509_new()) == NULL)
        goto fail;
    if (!X509_set_version(x, X509_VERSION_3) || et__certs_set_serial(x) != 0)
        goto fail;
    if (X509_gmtime_adj(X509_getm_notBefore(x), -DAY_SECONDS) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), CA_VALIDITY_DAYS, 0, NULL) == NULL)
        goto fail;
    name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"eastrace",
                                    -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                    -1, 0))
        goto fail;
    if (!X509_set_issuer_name(x, name) || !X509_set_pubkey(x, key))
        goto fail;
    if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") != 0 ||
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") != 0 ||
        add_ext(x, x, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, x, NID_authority_key_identifier, "keyid:always") != 0)
        goto fail;
    if (X509_sign(x, key, EVP_sha256()) == 0)
        goto fail;
    c->ca = x;
    c->ca_key = key;
    return 0;
fail:
    X509_free(x);
    EVP_PKEY_free(key);
    return et__certs_tls_error(e, "creating the CA");
}

/* Writes c->ca_key then c->ca: a crash in between leaves a key without a certificate,
 * which the next open treats as "not created yet". */
static int save_ca(struct et_certs *c, const char *cert_path, const char *key_path,
                   struct et_error *e)
{
    BIO *kb = NULL, *cb = NULL;
    char *kdata, *cdata;
    long klen, clen;
    int rc;

    if ((kb = BIO_new(BIO_s_secmem())) == NULL || (cb = BIO_new(BIO_s_mem())) == NULL ||
        !PEM_write_bio_PrivateKey(kb, c->ca_key, NULL, NULL, 0, NULL, NULL) ||
        !PEM_write_bio_X509(cb, c->ca)) {
        rc = et__certs_tls_error(e, "encoding the CA");
        goto out;
    }
    klen = BIO_get_mem_data(kb, &kdata);
    clen = BIO_get_mem_data(cb, &cdata);
    if ((rc = write_atomic(key_path, kdata, (size_t)klen, 0600, e)) != 0)
        goto out;
    rc = write_atomic(cert_path, cdata, (size_t)clen, 0644, e);
out:
    BIO_free(kb);
    BIO_free(cb);
    return rc;
}

static int load_cert(struct et_certs *c, const char *path, struct et_error *e)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        et_error_set(e, errno == ENOENT ? ET_ENOTFOUND : ET_EIO, "cannot open %s: %s", path,
                     strerror(errno));
        return errno == ENOENT ? ET_ENOTFOUND : ET_EIO;
    }
    c->ca = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (c->ca == NULL) {
        char what[512];
        snprintf(what, sizeof(what), "reading the CA certificate %s", path);
        return et__certs_tls_error(e, what);
    }
    return 0;
}

/*
 * Loads the private key after checking the file: it must belong to us (else ET_EPERM), and
 * modes looser than 0600 are repaired with fchmod and reported.
 */
static int load_key(struct et_certs *c, const char *path, int nofollow, struct et_error *e)
{
    struct stat st;
    FILE *f;
    int fd = open(path, O_RDONLY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));

    if (fd < 0) {
        int rc = errno == ENOENT ? ET_ENOTFOUND : ET_EIO;
        et_error_set(e, rc, "cannot open the CA key %s: %s", path, strerror(errno));
        return rc;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        et_error_set(e, ET_EIO, "the CA key %s is not a regular file", path);
        close(fd);
        return ET_EIO;
    }
    if (st.st_uid != geteuid()) {
        et_error_set(e, ET_EPERM, "the CA key %s belongs to another user (uid %u): refusing it",
                     path, (unsigned)st.st_uid);
        close(fd);
        return ET_EPERM;
    }
    if ((st.st_mode & 07777) != 0600) {
        if (fchmod(fd, 0600) != 0) {
            et_error_set(e, ET_EIO, "cannot chmod %s: %s", path, strerror(errno));
            close(fd);
            return ET_EIO;
        }
        warn(c, "CA key %s had mode %04o; set to 0600", path, (unsigned)(st.st_mode & 07777));
    }
    if ((f = fdopen(fd, "r")) == NULL) {
        et_error_set(e, ET_EIO, "cannot read %s: %s", path, strerror(errno));
        close(fd);
        return ET_EIO;
    }
    c->ca_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (c->ca_key == NULL) {
        char what[512];
        snprintf(what, sizeof(what), "reading the CA key %s", path);
        return et__certs_tls_error(e, what);
    }
    return 0;
}

/* Creates the CA in dir unless another process did so meanwhile (both under the lock). */
static int create_or_load(struct et_certs *c, const char *dir, const char *cert_path,
                          const char *key_path, enum et_certs_key_type type, struct et_error *e)
{
    char *lock_path = path_join(dir, ".lock");
    struct stat st;
    int lfd = -1, rc;

    if (lock_path == NULL) {
        et_error_set(e, ET_ENOMEM, "out of memory");
        return ET_ENOMEM;
    }
    lfd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lfd < 0 || flock(lfd, LOCK_EX) != 0) {
        et_error_set(e, ET_EIO, "cannot lock %s: %s", lock_path, strerror(errno));
        rc = ET_EIO;
        goto out;
    }
    if (stat(cert_path, &st) == 0) {
        /* Somebody else finished first: use theirs. */
        if ((rc = load_cert(c, cert_path, e)) == 0)
            rc = load_key(c, key_path, 1, e);
        goto out;
    }
    if ((rc = make_ca(c, type, e)) != 0)
        goto out;
    if ((rc = save_ca(c, cert_path, key_path, e)) != 0)
        goto out;
    c->created = 1;
out:
    if (lfd >= 0)
        close(lfd);
    et_free(lock_path);
    return rc;
}

static time_t asn1_to_time(const ASN1_TIME *t)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return timegm(&tm);
}

/* Fills the derived facts: name, fingerprint, expiry; and checks cert and key belong. */
static int inspect_ca(struct et_certs *c, struct et_error *e)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned int len = 0;
    int n;

    if (X509_check_ca(c->ca) < 1) {
        et_error_set(e, ET_EINVAL, "%s is not a CA certificate (no basicConstraints CA:TRUE)",
                     c->ca_path);
        return ET_EINVAL;
    }
    if (X509_check_private_key(c->ca, c->ca_key) != 1) {
        ERR_clear_error();
        et_error_set(e, ET_EINVAL, "the CA key does not match the certificate %s", c->ca_path);
        return ET_EINVAL;
    }
    if (X509_digest(c->ca, EVP_sha256(), c->fp_raw, &len) != 1 || len != 32)
        return et__certs_tls_error(e, "fingerprint of the CA");
    for (unsigned i = 0; i < 32; i++) {
        c->fingerprint[i * 3] = hex[c->fp_raw[i] >> 4];
        c->fingerprint[i * 3 + 1] = hex[c->fp_raw[i] & 15];
        c->fingerprint[i * 3 + 2] = i == 31 ? '\0' : ':';
    }
    c->ca_name = X509_get_subject_name(c->ca);
    n = X509_NAME_get_text_by_NID(c->ca_name, NID_commonName, c->ca_cn, sizeof(c->ca_cn));
    if (n <= 0)
        snprintf(c->ca_cn, sizeof(c->ca_cn), "eastrace CA");
    ERR_clear_error();
    c->ca_not_after = asn1_to_time(X509_get0_notAfter(c->ca));
    if (c->ca_not_after != 0 && c->ca_not_after < time(NULL))
        warn(c, "the CA certificate %s has expired: phones will reject every leaf", c->ca_path);
    return 0;
}

int et_certs_open(const struct et_certs_opts *o, struct et_certs **out, struct et_error *e)
{
    struct et_certs *c = NULL;
    char *dir = NULL, *key_path = NULL;
    int rc;

    *out = NULL;
    if ((o->ca_cert_file == NULL) != (o->ca_key_file == NULL)) {
        et_error_set(e, ET_EINVAL, "give both the CA certificate and its key, or neither");
        return ET_EINVAL;
    }
    if (o->validity_days > ET_CERTS_MAX_VALIDITY_DAYS || o->validity_days == 1) {
        et_error_set(e, ET_EINVAL, "leaf validity %u days is not within 2..%u days",
                     o->validity_days, ET_CERTS_MAX_VALIDITY_DAYS);
        return ET_EINVAL;
    }
    if (o->leaf_key != ET_CERTS_ECDSA_P256 && o->leaf_key != ET_CERTS_RSA2048) {
        et_error_set(e, ET_EINVAL, "unknown leaf key type %d", (int)o->leaf_key);
        return ET_EINVAL;
    }
    if ((c = et_calloc(1, sizeof(*c))) == NULL)
        goto nomem;
    et_buf_init(&c->warnings, 8192);
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        et_free(c);
        goto nomem;
    }
    c->leaf_type = o->leaf_key;
    c->validity_days = o->validity_days ? o->validity_days : ET_CERTS_MAX_VALIDITY_DAYS;
    c->capacity = o->cache_size ? o->cache_size : 1024;

    if (o->ca_cert_file != NULL) {
        if ((c->ca_path = et_strdup(o->ca_cert_file)) == NULL)
            goto nomem_c;
        if ((rc = load_cert(c, o->ca_cert_file, e)) != 0 ||
            (rc = load_key(c, o->ca_key_file, 0, e)) != 0)
            goto fail;
    } else {
        struct stat st;
        dir = o->dir != NULL ? et_strdup(o->dir) : default_dir(e);
        if (dir == NULL) {
            if (o->dir != NULL)
                goto nomem_c;
            rc = e != NULL && e->code ? e->code : ET_ENOMEM;
            goto fail;
        }
        if ((rc = ensure_dir(c, dir, e)) != 0)
            goto fail;
        if ((c->ca_path = path_join(dir, ET_CERTS_CA_CERT_NAME)) == NULL ||
            (key_path = path_join(dir, ET_CERTS_CA_KEY_NAME)) == NULL)
            goto nomem_c;
        if (lstat(c->ca_path, &st) == 0) {
            if ((rc = load_cert(c, c->ca_path, e)) != 0)
                goto fail;
            if ((rc = load_key(c, key_path, 1, e)) != 0) {
                /* Never replace a CA that phones may trust just because its key is gone. */
                goto fail;
            }
        } else if (errno == ENOENT) {
            if ((rc = create_or_load(c, dir, c->ca_path, key_path, o->leaf_key, e)) != 0)
                goto fail;
        } else {
            et_error_set(e, ET_EIO, "cannot stat %s: %s", c->ca_path, strerror(errno));
            rc = ET_EIO;
            goto fail;
        }
    }
    if ((rc = inspect_ca(c, e)) != 0)
        goto fail;
    if ((c->leaf_key = et__certs_keygen(c->leaf_type)) == NULL) {
        rc = et__certs_tls_error(e, "making the leaf key pair");
        goto fail;
    }
    if ((rc = et__certs_leaf_init(c, e)) != 0)
        goto fail;
    et_free(dir);
    et_free(key_path);
    *out = c;
    return 0;

nomem_c:
    rc = ET_ENOMEM;
    et_error_set(e, ET_ENOMEM, "out of memory");
fail:
    et_free(dir);
    et_free(key_path);
    et_certs_free(c);
    return rc;
nomem:
    et_error_set(e, ET_ENOMEM, "out of memory");
    return ET_ENOMEM;
}

void et_certs_free(struct et_certs *c)
{
    if (c == NULL)
        return;
    et__certs_leaf_free(c);
    X509_free(c->ca);
    c->ca = NULL;
    EVP_PKEY_free(c->ca_key);
    c->ca_key = NULL;
    EVP_PKEY_free(c->leaf_key);
    c->leaf_key = NULL;
    et_free(c->ca_path);
    c->ca_path = NULL;
    et_buf_free(&c->warnings);
    pthread_mutex_destroy(&c->lock);
    et_free(c);
}

const char *et_certs_warnings(const struct et_certs *c)
{
    return c->warnings.len ? (const char *)c->warnings.data : NULL;
}

int et_certs_created(const struct et_certs *c)
{
    return c->created;
}

const char *et_certs_ca_path(const struct et_certs *c)
{
    return c->ca_path;
}

const char *et_certs_ca_name(const struct et_certs *c)
{
    return c->ca_cn;
}

int et_certs_ca_fingerprint(const struct et_certs *c, char *out, size_t outlen)
{
    if (outlen < ET_CERTS_FINGERPRINT_LEN)
        return ET_ETOOBIG;
    memcpy(out, c->fingerprint, ET_CERTS_FINGERPRINT_LEN);
    return 0;
}
