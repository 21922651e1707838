/* Growable, capped byte buffers and the escaping helpers that append to them. */
#include "eastrace/common.h"
#include "plainrun.h"

#include <stdio.h>
#include <string.h>

#define BUF_DEFAULT_MAX ((size_t)-1 / 2)

void et_buf_init(struct et_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : BUF_DEFAULT_MAX;
}

int et_buf_reserve(struct et_buf *b, size_t extra)
{
    size_t max = b->max ? b->max : BUF_DEFAULT_MAX;
    size_t need, ncap;
    uint8_t *nd;

    if (extra > max || b->len > max - extra)
        return ET_ETOOBIG;
    need = b->len + extra + 1; /* room for the NUL */
    if (need <= b->cap)
        return 0;
    ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap = ncap > BUF_DEFAULT_MAX ? need : ncap * 2;
    nd = et_realloc(b->data, ncap);
    if (nd == NULL)
        return ET_ENOMEM;
    b->data = nd;
    b->cap = ncap;
    return 0;
}

int et_buf_append(struct et_buf *b, const void *p, size_t n)
{
    int rc = et_buf_reserve(b, n);
    if (rc != 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int et_buf_putc(struct et_buf *b, int c)
{
    uint8_t ch = (uint8_t)c;
    return et_buf_append(b, &ch, 1);
}

int et_buf_puts(struct et_buf *b, const char *s)
{
    return et_buf_append(b, s, strlen(s));
}

int et_buf_vprintf(struct et_buf *b, const char *fmt, va_list ap)
{
    char small[256];
    va_list ap2;
    int n, rc;

    va_copy(ap2, ap);
    n = vsnprintf(small, sizeof(small), fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return ET_EINVAL;
    if ((size_t)n < sizeof(small))
        return et_buf_append(b, small, (size_t)n);
    rc = et_buf_reserve(b, (size_t)n);
    if (rc != 0)
        return rc;
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int et_buf_printf(struct et_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = et_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void et_buf_consume(struct et_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void et_buf_reset(struct et_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void et_buf_free(struct et_buf *b)
{
    et_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

uint8_t *et_buf_detach(struct et_buf *b, size_t *len)
{
    uint8_t *d = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return d;
}

int et_buf_put_xml_escaped(struct et_buf *b, const char *s, size_t n)
{
    size_t i, run = 0, next = 0;
    int rc;

    for (i = 0; i < n; i++) {
        if (i >= next) { /* skip plain blocks; after a block that is not, 16 bytes one by one */
            i += et__plain_run(s + i, n - i, "&<>\"'", 5, 1);
            if (i >= n)
                break;
            next = i + 16;
        }
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;
        char num[8];
        switch (c) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&apos;"; break;
        default:
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
                /* Not representable in XML 1.0: show it as a visible escape. */
                snprintf(num, sizeof(num), "\\x%02X", c);
                rep = num;
            }
        }
        if (rep == NULL)
            continue;
        if ((rc = et_buf_append(b, s + run, i - run)) != 0)
            return rc;
        if ((rc = et_buf_puts(b, rep)) != 0)
            return rc;
        run = i + 1;
    }
    return et_buf_append(b, s + run, n - run);
}

/* Length of the well-formed UTF-8 sequence at s (n bytes left), or 0 when it is not one
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    if (n < len)
        return 0;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if (s[k] < 0x80 || s[k] > 0xbf)
            return 0;
    return len;
}

/* The program's one JSON string writer: every JSON output calls it (directly or through
 * et_table_render), so every string is valid JSON and valid UTF-8: quotes, backslashes and
 * control characters escaped, a byte that is not part of well-formed UTF-8 written as
 * U+FFFD. */
int et_buf_put_json_string(struct et_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0, next = 0;
    int rc;

    if ((rc = et_buf_putc(b, '"')) != 0)
        return rc;
    for (i = 0; i < n; i++) {
        if (i >= next) { /* skip plain blocks; after a block that is not, 16 bytes one by one */
            i += et__plain_run(s + i, n - i, "\"\\", 2, 0);
            if (i >= n)
                break;
            next = i + 16;
        }
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        const char *rep = NULL;
        size_t skip = 0;
        if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
            (unsigned char)s[i + 1] <= 0x9F) {
            /* C1 controls (U+0080..U+009F) are legal raw in JSON but drive terminals (CSI is
             * U+009B): escaped like C0, so JSON printed on a terminal stays inert. */
            c = (unsigned char)s[i + 1];
            skip = 1;
        } else if (c >= 0x80) {
            size_t l = utf8_len((const unsigned char *)s + i, n - i);
            if (l > 0) {
                i += l - 1;
                continue;
            }
            rep = "\\ufffd";
        } else if (c == '"')
            rep = "\\\"";
        else if (c == '\\')
            rep = "\\\\";
        else if (c == '\n')
            rep = "\\n";
        else if (c == '\r')
            rep = "\\r";
        else if (c == '\t')
            rep = "\\t";
        if (skip || (rep == NULL && (c < 0x20 || c == 0x7f))) {
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            esc[6] = '\0';
            rep = esc;
        }
        if (rep == NULL)
            continue;
        if ((rc = et_buf_append(b, s + run, i - run)) != 0)
            return rc;
        if ((rc = et_buf_puts(b, rep)) != 0)
            return rc;
        i += skip;
        run = i + 1;
    }
    if ((rc = et_buf_append(b, s + run, n - run)) != 0)
        return rc;
    return et_buf_putc(b, '"');
}

int et_buf_put_hex(struct et_buf *b, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;
    int rc = et_buf_reserve(b, n * 2);
    if (rc != 0)
        return rc;
    for (i = 0; i < n; i++) {
        b->data[b->len++] = (uint8_t)hex[p[i] >> 4];
        b->data[b->len++] = (uint8_t)hex[p[i] & 15];
    }
    b->data[b->len] = '\0';
    return 0;
}
