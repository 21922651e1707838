/*
 * SMTP client and MIME builder (see smtp.h). One connection through net/'s blocking clients
 * (eastrace/net.h, eastrace/tls.h): SO_RCVTIMEO/SO_SNDTIMEO and a poll()ed connect, so no
 * step can hang longer than the timeout. After STARTTLS every byte goes through TLS on the
 * same socket.
 *
 *   struct conn: fd --(tls == NULL)--> et_net_read() / et_net_write_all()
 *                  \-(tls != NULL)--> et_tls_read() / et_tls_write_all()
 *   replies: lines "CODE-text" ... "CODE text" (RFC 5321 4.2.1), read into rbuf, text kept
 *            (capped) for the error message.
 */
#include "eastrace/smtp.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eastrace/net.h"
#include "eastrace/tls.h"

#define REPLY_MAX 4096 /* server text kept per reply */

struct conn {
    int fd;
    struct et_tls *tls;      /* after STARTTLS */
    int timeout_ms;
    char rbuf[8192];
    size_t rstart, rend;
    int code;                /* last reply code */
    char text[REPLY_MAX];    /* last reply text, lines joined with " / " */
    unsigned ext_starttls : 1, ext_auth_plain : 1, ext_auth_login : 1;
};

static int conn_write(struct conn *c, const char *p, size_t n, struct et_error *e)
{
    return c->tls != NULL ? et_tls_write_all(c->tls, p, n, e)
                          : et_net_write_all(c->fd, p, n, "SMTP", e);
}

static int conn_fill(struct conn *c, struct et_error *e)
{
    long r;
    if (c->rstart > 0) {
        memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
        c->rend -= c->rstart;
        c->rstart = 0;
    }
    if (c->rend == sizeof(c->rbuf)) {
        et_error_set(e, ET_EPARSE, "SMTP: reply line longer than %zu bytes", sizeof(c->rbuf));
        return ET_EPARSE;
    }
    r = c->tls != NULL ? et_tls_read(c->tls, c->rbuf + c->rend, sizeof(c->rbuf) - c->rend, e)
                       : et_net_read(c->fd, c->rbuf + c->rend, sizeof(c->rbuf) - c->rend,
                                     "SMTP", e);
    if (r < 0)
        return (int)r;
    if (r == 0) {
        et_error_set(e, ET_ECONNRESET, "SMTP: the server closed the connection");
        return ET_ECONNRESET;
    }
    c->rend += (size_t)r;
    return 0;
}

/* Reads one reply (all its lines) into c->code and c->text, noting EHLO extensions. */
static int read_reply(struct conn *c, struct et_error *e)
{
    size_t tl = 0;
    int rc;

    c->text[0] = '\0';
    c->code = 0;
    for (;;) {
        char *nl;
        while ((nl = memchr(c->rbuf + c->rstart, '\n', c->rend - c->rstart)) == NULL)
            if ((rc = conn_fill(c, e)) < 0)
                return rc;
        char *line = c->rbuf + c->rstart;
        size_t n = (size_t)(nl - line);
        c->rstart += n + 1;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
            line[2] < '0' || line[2] > '9' || (n > 3 && line[3] != ' ' && line[3] != '-')) {
            et_error_set(e, ET_EPARSE, "SMTP: not an SMTP reply: '%.*s'", (int)ET_MIN(n, 80),
                         line);
            return ET_EPARSE;
        }
        int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        if (c->code != 0 && code != c->code) {
            et_error_set(e, ET_EPARSE, "SMTP: reply lines with different codes (%d, %d)",
                         c->code, code);
            return ET_EPARSE;
        }
        c->code = code;
        const char *t = n > 4 ? line + 4 : "";
        size_t tn = n > 4 ? n - 4 : 0;
        if (code == 250 && tn >= 8 && et_strncaseeq(t, "STARTTLS", 8))
            c->ext_starttls = 1;
        if (code == 250 && tn >= 5 && et_strncaseeq(t, "AUTH", 4) && (t[4] == ' ' || t[4] == '=')) {
            for (size_t i = 5; i + 5 <= tn; i++) {
                if (et_strncaseeq(t + i, "PLAIN", 5) && (i + 5 == tn || t[i + 5] == ' '))
                    c->ext_auth_plain = 1;
                if (et_strncaseeq(t + i, "LOGIN", 5) && (i + 5 == tn || t[i + 5] == ' '))
                    c->ext_auth_login = 1;
            }
        }
        if (tl + tn + 4 < sizeof(c->text)) {
            if (tl > 0) {
                memcpy(c->text + tl, " / ", 3);
                tl += 3;
            }
            for (size_t i = 0; i < tn; i++) /* server text must not drive the terminal */
                c->text[tl + i] = (unsigned char)t[i] < 0x20 || t[i] == 0x7f ? '?' : t[i];
            tl += tn;
            c->text[tl] = '\0';
        }
        if (n <= 3 || line[3] == ' ')
            return 0;
    }
}

/* Sends a command line (without CRLF; NULL sends nothing) and checks the reply code's class
 * against want (2 = 2xx, 3 = 3xx). what names the step in errors (never the secret). */
static int step(struct conn *c, const char *cmd, const char *what, int want, struct et_error *e)
{
    int rc;
    if (cmd != NULL) {
        if ((rc = conn_write(c, cmd, strlen(cmd), e)) < 0 || (rc = conn_write(c, "\r\n", 2, e)) < 0)
            return rc;
    }
    if ((rc = read_reply(c, e)) < 0) {
        char m[300];
        snprintf(m, sizeof(m), "%s", e->msg);
        e->code = 0;
        et_error_set(e, rc, "%s (after %s)", m, what);
        return rc;
    }
    if (c->code / 100 != want) {
        et_error_set(e, ET_EDENIED, "SMTP server refused %s: %d %s", what, c->code, c->text);
        return ET_EDENIED;
    }
    return 0;
}

/* STARTTLS's handshake (net/tls.c): the certificate verified against --smtp-ca or the
 * system store, for the name or address given, TLS 1.2 or later. */
static int start_tls(struct conn *c, const struct et_smtp_opts *o, struct et_error *e)
{
    char name[300];
    struct et_tls_opts to = {.host = o->host, .name = name, .what = "SMTP", .verify = 1,
                             .ca_file = o->ca_file, .min_version = ET_TLS_1_2};
    int rc;

    snprintf(name, sizeof(name), "%s:%d", o->host, o->port > 0 ? o->port : 25);
    rc = et_tls_connect(c->fd, &to, &c->tls, e);
    if (rc == ET_ECERT && o->ca_file == NULL && strlen(e->msg) + 40 < sizeof(e->msg))
        strcat(e->msg, " (give its CA with --smtp-ca FILE)");
    return rc;
}

/* An address for MAIL FROM / RCPT TO: printable ASCII without '<', '>' or spaces, so it can
 * neither break the command line nor smuggle another command in. */
static int addr_ok(const char *a)
{
    if (a == NULL || *a == '\0' || strlen(a) > 254)
        return 0;
    for (const char *p = a; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '<' || *p == '>')
            return 0;
    return 1;
}

static int do_auth(struct conn *c, const struct et_smtp_opts *o, struct et_error *e)
{
    struct et_buf b, enc;
    int rc = ET_ENOMEM;
    size_t ul = strlen(o->user), pl = o->password ? strlen(o->password) : 0;

    et_buf_init(&b, 4096);
    et_buf_init(&enc, 8192);
    if (c->ext_auth_plain) {
        /* RFC 4616: authzid NUL authcid NUL passwd, base64. */
        if (et_buf_putc(&b, 0) < 0 || et_buf_append(&b, o->user, ul) < 0 ||
            et_buf_putc(&b, 0) < 0 || et_buf_append(&b, o->password ? o->password : "", pl) < 0 ||
            et_buf_puts(&enc, "AUTH PLAIN ") < 0 || et_base64_encode(&enc, b.data, b.len) < 0)
            goto out;
        rc = step(c, (const char *)enc.data, "AUTH PLAIN", 2, e);
    } else if (c->ext_auth_login) {
        if ((rc = step(c, "AUTH LOGIN", "AUTH LOGIN", 3, e)) < 0)
            goto out;
        rc = ET_ENOMEM;
        if (et_base64_encode(&enc, (const uint8_t *)o->user, ul) < 0)
            goto out;
        if ((rc = step(c, (const char *)enc.data, "AUTH LOGIN (user name)", 3, e)) < 0)
            goto out;
        et_buf_reset(&enc);
        rc = ET_ENOMEM;
        if (et_base64_encode(&enc, (const uint8_t *)(o->password ? o->password : ""), pl) < 0)
            goto out;
        rc = step(c, (const char *)enc.data, "AUTH LOGIN (password)", 2, e);
    } else {
        et_error_set(e, ET_EDENIED, "SMTP: the server offers no AUTH PLAIN or LOGIN");
        rc = ET_EDENIED;
    }
out:
    /* The buffers held the password: wipe them before they go back to the allocator. */
    if (b.data != NULL)
        memset(b.data, 0, b.cap);
    if (enc.data != NULL)
        memset(enc.data, 0, enc.cap);
    et_buf_free(&b);
    et_buf_free(&enc);
    if (rc == ET_ENOMEM)
        et_error_set(e, ET_ENOMEM, "SMTP: out of memory");
    return rc;
}

/* Sends the message body: CRLF line ends, dot-stuffing, then the final ".". */
static int send_data(struct conn *c, const char *msg, size_t len, struct et_error *e)
{
    char out[16384];
    size_t k = 0;
    int bol = 1, rc;

    for (size_t i = 0; i < len; i++) {
        if (k + 4 > sizeof(out)) {
            if ((rc = conn_write(c, out, k, e)) < 0)
                return rc;
            k = 0;
        }
        char ch = msg[i];
        if (bol && ch == '.')
            out[k++] = '.';
        if (ch == '\n' && (i == 0 || msg[i - 1] != '\r'))
            out[k++] = '\r';
        out[k++] = ch;
        bol = ch == '\n';
    }
    if (!bol) {
        out[k++] = '\r';
        out[k++] = '\n';
    }
    if ((rc = conn_write(c, out, k, e)) < 0)
        return rc;
    return conn_write(c, ".\r\n", 3, e);
}

static int ehlo(struct conn *c, const char *name, struct et_error *e)
{
    char cmd[300];
    c->ext_starttls = c->ext_auth_plain = c->ext_auth_login = 0;
    snprintf(cmd, sizeof(cmd), "EHLO %s", name);
    return step(c, cmd, "EHLO", 2, e);
}

int et_smtp_send(const struct et_smtp_opts *o, const char *msg, size_t len, struct et_error *e)
{
    struct conn *c;
    char helo[256], cmd[600];
    int rc;

    if (o == NULL || o->host == NULL || o->nto == 0 || !addr_ok(o->from)) {
        et_error_set(e, ET_EINVAL, "SMTP: %s", o == NULL || o->host == NULL ? "no server"
                                               : o->nto == 0 ? "no recipient"
                                                             : "bad sender address");
        return ET_EINVAL;
    }
    for (size_t i = 0; i < o->nto; i++) {
        if (!addr_ok(o->to[i])) {
            et_error_set(e, ET_EINVAL, "SMTP: bad recipient address '%.80s'", o->to[i]);
            return ET_EINVAL;
        }
    }
    if (o->helo_name != NULL) {
        snprintf(helo, sizeof(helo), "%s", o->helo_name);
    } else if (gethostname(helo, sizeof(helo)) != 0 || helo[0] == '\0') {
        snprintf(helo, sizeof(helo), "localhost");
    }
    helo[sizeof(helo) - 1] = '\0';
    for (char *p = helo; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            *p = '-';
    c = et_calloc(1, sizeof(*c));
    if (c == NULL) {
        et_error_set(e, ET_ENOMEM, "SMTP: out of memory");
        return ET_ENOMEM;
    }
    c->fd = -1;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    c->fd = et_net_connect(o->host, o->port > 0 ? o->port : 25, c->timeout_ms, "SMTP", NULL, 0,
                           e);
    if (c->fd < 0) {
        rc = c->fd;
        goto out;
    }
    if ((rc = step(c, NULL, "the greeting", 2, e)) < 0 || (rc = ehlo(c, helo, e)) < 0)
        goto out;
    if (o->starttls != ET_SMTP_TLS_NEVER && c->ext_starttls) {
        if ((rc = step(c, "STARTTLS", "STARTTLS", 2, e)) < 0)
            goto out;
        if (c->rstart != c->rend) {
            /* Bytes after the 220 were sent in plain text before TLS: an injection attempt
             * (CVE-2011-0411 class). */
            et_error_set(e, ET_ETLS, "SMTP: the server sent data after its STARTTLS reply");
            rc = ET_ETLS;
            goto out;
        }
        if ((rc = start_tls(c, o, e)) < 0 || (rc = ehlo(c, helo, e)) < 0)
            goto out;
    } else if (o->starttls == ET_SMTP_TLS_REQUIRED) {
        et_error_set(e, ET_ETLS, "SMTP: %s:%d does not offer STARTTLS (required)", o->host,
                     o->port > 0 ? o->port : 25);
        rc = ET_ETLS;
        goto out;
    }
    if (o->user != NULL) {
        if (c->tls == NULL && !o->allow_plain_auth) {
            et_error_set(e, ET_ETLS, "SMTP: refusing to send the password without TLS (the "
                                     "server did not offer STARTTLS)");
            rc = ET_ETLS;
            goto out;
        }
        if ((rc = do_auth(c, o, e)) < 0)
            goto out;
    }
    snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>", o->from);
    if ((rc = step(c, cmd, cmd, 2, e)) < 0)
        goto out;
    for (size_t i = 0; i < o->nto; i++) {
        snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>", o->to[i]);
        if ((rc = step(c, cmd, cmd, 2, e)) < 0)
            goto out;
    }
    if ((rc = step(c, "DATA", "DATA", 3, e)) < 0)
        goto out;
    if ((rc = send_data(c, msg, len, e)) < 0 ||
        (rc = step(c, NULL, "the message (end of DATA)", 2, e)) < 0)
        goto out;
    /* The message is accepted; a failed QUIT changes nothing for the caller. */
    {
        struct et_error qe;
        et_error_clear(&qe);
        (void)step(c, "QUIT", "QUIT", 2, &qe);
    }
    rc = 0;
out:
    if (rc < 0 && c->fd >= 0 && c->code > 0 && rc == ET_EDENIED) {
        struct et_error qe;
        et_error_clear(&qe);
        (void)step(c, "QUIT", "QUIT", 2, &qe);
    }
    if (c->tls != NULL)
        (void)et_tls_shutdown(c->tls);
    et_tls_free(c->tls);
    if (c->fd >= 0)
        close(c->fd);
    et_free(c);
    return rc;
}

/* ---- MIME ------------------------------------------------------------------------------ */

static int put_ascii(struct et_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (et_buf_putc(b, ch < 0x20 || ch >= 0x7f ? '?' : ch) < 0)
            return ET_ENOMEM;
    }
    return 0;
}

static int put_base64_lines(struct et_buf *out, const void *data, size_t len)
{
    const uint8_t *p = data;
    /* 57 input bytes are 76 output characters, the RFC 2045 line limit. */
    for (size_t off = 0; off < len; off += 57) {
        size_t n = ET_MIN(57, len - off);
        if (et_base64_encode(out, p + off, n) < 0 || et_buf_puts(out, "\r\n") < 0)
            return ET_ENOMEM;
    }
    return 0;
}

int et_mime_build(struct et_buf *out, const char *from, const char *const *to, size_t nto,
                  const char *subject, const struct et_mime_part *parts, size_t nparts)
{
    char date[64], boundary[64], host[128];
    time_t now = time(NULL);
    struct tm tm;
    int rc = ET_ENOMEM;

    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    snprintf(boundary, sizeof(boundary), "=_eastrace_%lx_%lx", (unsigned long)now,
             (unsigned long)getpid());
    if (et_buf_puts(out, "From: ") < 0 || put_ascii(out, from) < 0 || et_buf_puts(out, "\r\nTo: ") < 0)
        goto out;
    for (size_t i = 0; i < nto; i++)
        if ((i && et_buf_puts(out, ", ") < 0) || put_ascii(out, to[i]) < 0)
            goto out;
    if (et_buf_puts(out, "\r\nSubject: ") < 0 || put_ascii(out, subject) < 0 ||
        et_buf_printf(out, "\r\nDate: %s\r\nMessage-ID: <%lx.%lx.eastrace@", date,
                      (unsigned long)now, (unsigned long)getpid()) < 0 ||
        put_ascii(out, host) < 0 ||
        et_buf_printf(out, ">\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
                           "boundary=\"%s\"\r\n\r\nThis is a MIME message.\r\n",
                      boundary) < 0)
        goto out;
    for (size_t i = 0; i < nparts; i++) {
        if (et_buf_printf(out, "\r\n--%s\r\nContent-Type: ", boundary) < 0 ||
            put_ascii(out, parts[i].content_type) < 0 ||
            et_buf_puts(out, "\r\nContent-Transfer-Encoding: base64\r\n") < 0)
            goto out;
        if (parts[i].filename != NULL) {
            if (et_buf_puts(out, "Content-Disposition: attachment; filename=\"") < 0)
                goto out;
            for (const char *p = parts[i].filename; *p; p++)
                if (et_buf_putc(out, (unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f ||
                                             *p == '"' || *p == '\\'
                                         ? '_'
                                         : *p) < 0)
                    goto out;
            if (et_buf_puts(out, "\"\r\n") < 0)
                goto out;
        } else if (et_buf_puts(out, "Content-Disposition: inline\r\n") < 0) {
            goto out;
        }
        if (et_buf_puts(out, "\r\n") < 0 || put_base64_lines(out, parts[i].data, parts[i].len) < 0)
            goto out;
    }
    if (et_buf_printf(out, "\r\n--%s--\r\n", boundary) < 0)
        goto out;
    rc = 0;
out:
    return rc;
}
