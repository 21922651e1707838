/* eastrace ca: shows the interception CA (path, name, fingerprint), creating it on first use,
 * and exports its certificate for phones. No option touches or prints the private key. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "eastrace/certs.h"

static void ca_usage(FILE *f)
{
    fputs("usage: eastrace ca [OPTIONS]\n"
          "\n"
          "Shows the root CA eastrace intercepts TLS with (made on first use in\n"
          "$XDG_DATA_HOME/eastrace, else ~/.local/share/eastrace) and exports its certificate.\n"
          "The private key never leaves its file.\n"
          "\n"
          "  --dir DIR             use the CA in DIR (created there when missing)\n"
          "  --ca-cert FILE --ca-key FILE   show this CA instead (both or neither)\n"
          "  --rsa                 a CA made now gets an RSA-2048 key (default ECDSA P-256)\n"
          "  --export-pem FILE     write the certificate as PEM ('-': stdout)\n"
          "  --export-der FILE     write it as DER (.crt/.cer, what Android installs)\n"
          "  --mobileconfig FILE   write an iOS configuration profile holding it\n"
          "  --install-page FILE   write the HTML install page the proxy serves at\n"
          "                        http://" ET_CERTS_INSTALL_HOST "/\n"
          "  -h, --help            show this help\n",
          f);
}

/* Writes a public export; "-" is stdout. Returns 0 or -1 (reported). */
static int write_out(const char *path, const struct et_buf *b)
{
    size_t off = 0;
    int fd;

    if (strcmp(path, "-") == 0) {
        FILE *raw = et_cli_raw_stdout(); /* DER is binary: not through the terminal guard */
        if (fwrite(b->data, 1, b->len, raw) != b->len || fflush(raw) != 0) {
            et_cli_err("ca: cannot write to stdout: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        et_cli_err("ca: cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    while (off < b->len) {
        ssize_t n = write(fd, b->data + off, b->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            et_cli_err("ca: cannot write %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    if (close(fd) != 0) {
        et_cli_err("ca: cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

enum export_kind {
    EXPORT_PEM = 0,
    EXPORT_DER = 1,
    EXPORT_MOBILECONFIG = 2,
    EXPORT_PAGE = 3
};

static int export_one(struct et_certs *c, enum export_kind k, const char *path)
{
    struct et_buf b;
    int rc;

    et_buf_init(&b, 1 << 20);
    switch (k) {
    case EXPORT_PEM: rc = et_certs_ca_pem(c, &b); break;
    case EXPORT_DER: rc = et_certs_ca_der(c, &b); break;
    case EXPORT_MOBILECONFIG: rc = et_certs_mobileconfig(c, &b); break;
    default: rc = et_certs_install_page(c, NULL, &b); break;
    }
    if (rc != 0) {
        et_cli_err("ca: export: %s", et_strerror(rc));
        et_buf_free(&b);
        return -1;
    }
    rc = write_out(path, &b);
    et_buf_free(&b);
    return rc;
}

int et_cmd_ca(int argc, char **argv)
{
    struct et_certs_opts o;
    const char *exports[4] = {NULL, NULL, NULL, NULL};
    struct et_certs *c = NULL;
    struct et_error e;
    char fp[ET_CERTS_FINGERPRINT_LEN], msg[320];
    const char *w;
    FILE *info;
    int rc = ET_EXIT_INPUT, to_stdout = 0;

    memset(&o, 0, sizeof(o));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **dst = NULL;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            ca_usage(stdout);
            return ET_EXIT_OK;
        } else if (strcmp(a, "--rsa") == 0) {
            o.leaf_key = ET_CERTS_RSA2048;
            continue;
        } else if (strcmp(a, "--dir") == 0) {
            dst = &o.dir;
        } else if (strcmp(a, "--ca-cert") == 0) {
            dst = &o.ca_cert_file;
        } else if (strcmp(a, "--ca-key") == 0) {
            dst = &o.ca_key_file;
        } else if (strcmp(a, "--export-pem") == 0) {
            dst = &exports[EXPORT_PEM];
        } else if (strcmp(a, "--export-der") == 0) {
            dst = &exports[EXPORT_DER];
        } else if (strcmp(a, "--mobileconfig") == 0) {
            dst = &exports[EXPORT_MOBILECONFIG];
        } else if (strcmp(a, "--install-page") == 0) {
            dst = &exports[EXPORT_PAGE];
        } else {
            et_cli_err("ca: unknown option '%s' (see eastrace ca --help)", a);
            return ET_EXIT_INPUT;
        }
        if (v == NULL) {
            et_cli_err("ca: %s needs a value", a);
            return ET_EXIT_INPUT;
        }
        *dst = v;
        i++;
    }
    for (int k = 0; k < 4; k++)
        if (exports[k] != NULL && strcmp(exports[k], "-") == 0)
            to_stdout++;
    if (to_stdout > 1) {
        et_cli_err("ca: only one export can go to stdout");
        return ET_EXIT_INPUT;
    }

    et_error_clear(&e);
    if (et_certs_open(&o, &c, &e) != 0) {
        et_cli_err("ca: %s", et_error_format(&e, msg, sizeof(msg)));
        return ET_EXIT_INPUT;
    }
    /* The facts go to stderr when an export owns stdout, so pipes get only the export. */
    info = to_stdout ? stderr : stdout;
    for (w = et_certs_warnings(c); w != NULL && *w != '\0';) {
        size_t n = strcspn(w, "\n");
        fprintf(stderr, "eastrace: warning: %.*s\n", (int)n, w);
        w += n + (w[n] == '\n');
    }
    et_certs_ca_fingerprint(c, fp, sizeof(fp));
    fprintf(info, "CA certificate: %s\n", et_certs_ca_path(c));
    fprintf(info, "Name:           %s\n", et_certs_ca_name(c));
    fprintf(info, "SHA-256:        %s\n", fp);
    if (et_certs_created(c))
        fprintf(info, "A new CA was created: install it on each phone (browse to http://"
                      ET_CERTS_INSTALL_HOST "/ through the proxy).\n");
    for (int k = 0; k < 4; k++)
        if (exports[k] != NULL && export_one(c, (enum export_kind)k, exports[k]) != 0)
            goto out;
    rc = ET_EXIT_OK;
out:
    et_certs_free(c);
    return rc;
}
