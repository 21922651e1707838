/*
 * Getting the CA onto phones: PEM and DER exports, the iOS configuration profile, and the
 * install page the proxy serves at http://eastrace.cert/ (and at its own address).
 *
 *   GET /                          install page (text/html)
 *   GET /eastrace-ca.pem           PEM        (application/x-pem-file)
 *   GET /eastrace-ca.crt           DER        (application/x-x509-ca-cert: Android installs it)
 *   GET /eastrace-ca.mobileconfig  profile    (application/x-apple-aspen-config: iOS offers it)
 */
#include "eastrace/certs.h"

#include "certs_int.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

int et_certs_ca_pem(const struct et_certs *c, struct et_buf *out)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data;
    long len;
    int rc;

    if (b == NULL)
        return ET_ENOMEM;
    if (!PEM_write_bio_X509(b, c->ca)) {
        BIO_free(b);
        ERR_clear_error();
        return ET_ENOMEM;
    }
    len = BIO_get_mem_data(b, &data);
    rc = et_buf_append(out, data, (size_t)len);
    BIO_free(b);
    return rc;
}

int et_certs_ca_der(const struct et_certs *c, struct et_buf *out)
{
    int len = i2d_X509(c->ca, NULL), rc;
    unsigned char *p;

    if (len <= 0)
        return ET_ENOMEM;
    if ((rc = et_buf_reserve(out, (size_t)len)) != 0)
        return rc;
    p = out->data + out->len;
    if (i2d_X509(c->ca, &p) != len)
        return ET_ENOMEM;
    out->len += (size_t)len;
    out->data[out->len] = '\0';
    return 0;
}

/* A UUID (version 5 layout) derived from the CA fingerprint and a label, upper case. */
static int put_uuid(const struct et_certs *c, const char *label, struct et_buf *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok;

    ok = m != NULL && EVP_DigestInit_ex(m, EVP_sha256(), NULL) == 1 &&
         EVP_DigestUpdate(m, c->fp_raw, sizeof(c->fp_raw)) == 1 &&
         EVP_DigestUpdate(m, label, strlen(label)) == 1 &&
         EVP_DigestFinal_ex(m, md, &len) == 1;
    EVP_MD_CTX_free(m);
    if (!ok) {
        ERR_clear_error();
        return ET_ENOMEM;
    }
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    return et_buf_printf(out,
                         "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-"
                         "%02X%02X%02X%02X%02X%02X",
                         md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9],
                         md[10], md[11], md[12], md[13], md[14], md[15]);
}

/* Appends base64 in lines of 52 characters, as plist <data> elements usually are. */
static int put_base64_lines(struct et_buf *out, const uint8_t *p, size_t n, const char *indent)
{
    int rc;
    for (size_t i = 0; i < n; i += 39) {
        size_t k = n - i < 39 ? n - i : 39;
        if ((rc = et_buf_puts(out, indent)) != 0 || (rc = et_base64_encode(out, p + i, k)) != 0 ||
            (rc = et_buf_putc(out, '\n')) != 0)
            return rc;
    }
    return 0;
}

int et_certs_mobileconfig(const struct et_certs *c, struct et_buf *out)
{
    struct et_buf der;
    int rc;

    et_buf_init(&der, 0);
    if ((rc = et_certs_ca_der(c, &der)) != 0)
        goto out;
    if ((rc = et_buf_puts(out,
                          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                          "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
                          "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
                          "<plist version=\"1.0\">\n<dict>\n"
                          "\t<key>PayloadContent</key>\n\t<array>\n\t\t<dict>\n"
                          "\t\t\t<key>PayloadCertificateFileName</key>\n"
                          "\t\t\t<string>eastrace-ca.crt</string>\n"
                          "\t\t\t<key>PayloadContent</key>\n\t\t\t<data>\n")) != 0)
        goto out;
    if ((rc = put_base64_lines(out, der.data, der.len, "\t\t\t")) != 0)
        goto out;
    if ((rc = et_buf_puts(out, "\t\t\t</data>\n"
                               "\t\t\t<key>PayloadDescription</key>\n"
                               "\t\t\t<string>Adds the eastrace capture CA root certificate"
                               "</string>\n"
                               "\t\t\t<key>PayloadDisplayName</key>\n\t\t\t<string>")) != 0 ||
        (rc = et_buf_put_xml_escaped(out, c->ca_cn, strlen(c->ca_cn))) != 0 ||
        (rc = et_buf_puts(out, "</string>\n"
                               "\t\t\t<key>PayloadIdentifier</key>\n"
                               "\t\t\t<string>org.eastrace.ca.")) != 0 ||
        (rc = put_uuid(c, "payload", out)) != 0 ||
        (rc = et_buf_puts(out, "</string>\n"
                               "\t\t\t<key>PayloadType</key>\n"
                               "\t\t\t<string>com.apple.security.root</string>\n"
                               "\t\t\t<key>PayloadUUID</key>\n\t\t\t<string>")) != 0 ||
        (rc = put_uuid(c, "payload", out)) != 0 ||
        (rc = et_buf_puts(out, "</string>\n"
                               "\t\t\t<key>PayloadVersion</key>\n\t\t\t<integer>1</integer>\n"
                               "\t\t</dict>\n\t</array>\n"
                               "\t<key>PayloadDescription</key>\n"
                               "\t<string>Lets eastrace decrypt this device's Exchange "
                               "ActiveSync traffic while it uses the eastrace proxy. Remove "
                               "the profile when the capture is over.</string>\n"
                               "\t<key>PayloadDisplayName</key>\n"
                               "\t<string>eastrace capture CA</string>\n"
                               "\t<key>PayloadIdentifier</key>\n"
                               "\t<string>org.eastrace.profile.")) != 0 ||
        (rc = put_uuid(c, "profile", out)) != 0 ||
        (rc = et_buf_puts(out, "</string>\n"
                               "\t<key>PayloadRemovalDisallowed</key>\n\t<false/>\n"
                               "\t<key>PayloadType</key>\n\t<string>Configuration</string>\n"
                               "\t<key>PayloadUUID</key>\n\t<string>")) != 0 ||
        (rc = put_uuid(c, "profile", out)) != 0 ||
        (rc = et_buf_puts(out, "</string>\n"
                               "\t<key>PayloadVersion</key>\n\t<integer>1</integer>\n"
                               "</dict>\n</plist>\n")) != 0)
        goto out;
out:
    et_buf_free(&der);
    return rc;
}

static int put_esc(struct et_buf *out, const char *s)
{
    return et_buf_put_xml_escaped(out, s, strlen(s));
}

int et_certs_install_page(const struct et_certs *c, const char *proxy_addr, struct et_buf *out)
{
    int rc;

    if ((rc = et_buf_puts(out,
                          "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                          "<meta name=\"viewport\" content=\"width=device-width, "
                          "initial-scale=1\">\n<title>eastrace CA</title>\n<style>\n"
                          "body{font-family:-apple-system,system-ui,sans-serif;max-width:40em;"
                          "margin:1em auto;padding:0 1em;line-height:1.4}\n"
                          "a.dl{display:block;margin:.4em 0;padding:.7em;border:1px solid #888;"
                          "border-radius:6px;text-decoration:none}\n"
                          "code{word-break:break-all;font-size:.85em}\n"
                          "</style>\n</head>\n<body>\n<h1>eastrace capture CA</h1>\n"
                          "<p>This device talks through the eastrace proxy")) != 0)
        return rc;
    if (proxy_addr != NULL && proxy_addr[0] != '\0') {
        if ((rc = et_buf_puts(out, " at <b>")) != 0 || (rc = put_esc(out, proxy_addr)) != 0 ||
            (rc = et_buf_puts(out, "</b>")) != 0)
            return rc;
    }
    if ((rc = et_buf_puts(out, ". To let it decrypt Exchange ActiveSync traffic, install and "
                               "trust this certificate authority:</p>\n<p><b>")) != 0 ||
        (rc = put_esc(out, c->ca_cn)) != 0 ||
        (rc = et_buf_puts(out, "</b><br>SHA-256 <code>")) != 0 ||
        (rc = put_esc(out, c->fingerprint)) != 0 ||
        (rc = et_buf_puts(
             out,
             "</code></p>\n"
             "<a class=\"dl\" href=\"/eastrace-ca.mobileconfig\">iPhone / iPad: "
             "configuration profile</a>\n"
             "<a class=\"dl\" href=\"/eastrace-ca.crt\">Android / Windows: certificate "
             "(DER, .crt)</a>\n"
             "<a class=\"dl\" href=\"/eastrace-ca.pem\">Other: certificate (PEM)</a>\n"
             "<h2>iOS</h2>\n<ol>\n"
             "<li>Open this page in Safari and tap the profile link, then Allow.</li>\n"
             "<li>Settings &gt; General &gt; VPN &amp; Device Management (or Profile "
             "Downloaded): install the profile.</li>\n"
             "<li>Settings &gt; General &gt; About &gt; Certificate Trust Settings: turn on "
             "full trust for the eastrace CA.</li>\n</ol>\n"
             "<h2>Android</h2>\n<ol>\n"
             "<li>Download the .crt certificate.</li>\n"
             "<li>Settings &gt; Security &gt; Encryption &amp; credentials &gt; Install a "
             "certificate &gt; CA certificate, and pick the file.</li>\n"
             "<li>Apps that trust only system CAs (Android 7 and later) may still refuse "
             "it; the built-in mail app of most devices uses the user store.</li>\n</ol>\n"
             "<p>Compare the fingerprint above with <code>eastrace ca</code> on the capture "
             "machine. Remove the certificate when the capture is over.</p>\n"
             "</body>\n</html>\n")) != 0)
        return rc;
    return 0;
}

int et_certs_http_resource(const struct et_certs *c, const char *path, const char *proxy_addr,
                           struct et_buf *out, const char **content_type)
{
    size_t n = strcspn(path, "?#");

#define IS(lit) (n == sizeof(lit) - 1 && memcmp(path, lit, n) == 0)
    if (IS("/") || IS("") || IS("/index.html")) {
        *content_type = "text/html; charset=utf-8";
        return et_certs_install_page(c, proxy_addr, out);
    }
    if (IS("/eastrace-ca.pem")) {
        *content_type = "application/x-pem-file";
        return et_certs_ca_pem(c, out);
    }
    if (IS("/eastrace-ca.crt") || IS("/eastrace-ca.cer") || IS("/eastrace-ca.der")) {
        *content_type = "application/x-x509-ca-cert";
        return et_certs_ca_der(c, out);
    }
    if (IS("/eastrace-ca.mobileconfig")) {
        *content_type = "application/x-apple-aspen-config";
        return et_certs_mobileconfig(c, out);
    }
#undef IS
    return ET_ENOTFOUND;
}
