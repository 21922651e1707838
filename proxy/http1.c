/*
 * Strict HTTP/1.1 framing for the proxy: a header-section scanner that runs before llhttp and
 * a chunked-body decoder. Both reject what Debian's llhttp 8.1.0 lets through (a section
 * ended by "\r\n\rZ", bare CR in chunk lines, empty field names, obs-fold), because a proxy
 * that frames a message differently from the server behind it can be used to smuggle
 * requests. Nothing here allocates.
 */
#include "proxy_int.h"

#include <llhttp.h>
#include <string.h>

static const uint8_t tchar_tab[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

int et__field_eq(const struct et__field *f, const char *lname, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)f->name[i]) != lname[i])
            return 0;
    return 1;
}

/* Case-insensitive compare of a span with a lower-case word. */
static int span_is(const char *p, size_t n, const char *lw)
{
    size_t m = strlen(lw);
    if (n != m)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != lw[i])
            return 0;
    return 1;
}

/* Walks a comma-separated token list (Connection) and sets flags. */
static void scan_connection(struct et__head *h, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t t = i;
        while (t > s && (v[t - 1] == ' ' || v[t - 1] == '\t'))
            t--;
        if (span_is(v + s, t - s, "close"))
            h->conn_close = 1;
        else if (span_is(v + s, t - s, "keep-alive"))
            h->conn_keep_alive = 1;
    }
}

static int on_headers_complete_pause(llhttp_t *p)
{
    *(int *)p->data = 1;
    return HPE_PAUSED;
}

/* llhttp as a second opinion on a section that already passed our scan. */
static int llhttp_agrees(const uint8_t *p, size_t len, int is_request, struct et_error *e)
{
    static llhttp_settings_t settings;
    static int settings_ready;
    llhttp_t parser;
    int complete = 0;
    if (!settings_ready) {
        llhttp_settings_init(&settings);
        settings.on_headers_complete = on_headers_complete_pause;
        settings_ready = 1;
    }
    llhttp_init(&parser, is_request ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
    parser.data = &complete;
    llhttp_errno_t rc = llhttp_execute(&parser, (const char *)p, len);
    if (complete && (rc == HPE_OK || rc == HPE_PAUSED || rc == HPE_PAUSED_UPGRADE))
        return 0;
    const char *pos = llhttp_get_error_pos(&parser);
    et_error_set_at(e, ET_EPARSE, pos ? (uint64_t)(pos - (const char *)p) : 0,
                    "llhttp rejects the header section: %s",
                    llhttp_get_error_reason(&parser) ? llhttp_get_error_reason(&parser)
                                                     : llhttp_errno_name(rc));
    return ET_EPARSE;
}

static int parse_version(const uint8_t *p, size_t n, struct et__head *h)
{
    if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' ||
        p[7] < '0' || p[7] > '9')
        return -1;
    h->major = (uint8_t)(p[5] - '0');
    h->minor = (uint8_t)(p[7] - '0');
    return h->major == 1 ? 0 : -1;
}

static int scan_start_line(const uint8_t *p, size_t n, int is_request, struct et__head *h,
                           struct et_error *e)
{
    size_t i = 0;
    if (is_request) {
        while (i < n && tchar_tab[p[i]])
            i++;
        if (i == 0 || i >= n || p[i] != ' ')
            goto bad;
        h->method = (const char *)p;
        h->method_len = (uint32_t)i;
        size_t ts = ++i;
        while (i < n && p[i] > 0x20 && p[i] < 0x7f)
            i++;
        if (i == ts || i >= n || p[i] != ' ')
            goto bad;
        h->target = (const char *)p + ts;
        h->target_len = (uint32_t)(i - ts);
        i++;
        if (parse_version(p + i, n - i, h) != 0)
            goto bad;
        return 0;
    }
    if (n < 12 || parse_version(p, 8, h) != 0 || p[8] != ' ')
        goto bad;
    int st = 0;
    for (i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            goto bad;
        st = st * 10 + (p[i] - '0');
    }
    if (st < 100)
        goto bad;
    h->status = st;
    if (n > 12) {
        if (p[12] != ' ')
            goto bad;
        for (i = 13; i < n; i++)
            if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
                goto bad;
        h->reason = (const char *)p + 13;
        h->reason_len = (uint32_t)(n - 13);
    } else {
        h->reason = "";
    }
    return 0;
bad:
    et_error_set_at(e, ET_EPARSE, i, "malformed %s line", is_request ? "request" : "status");
    return ET_EPARSE;
}

int et__head_scan(const uint8_t *p, size_t len, int is_request, struct et__head *h,
                  struct et_error *e)
{
    size_t line = 0, lineno = 0;
    int seen_te = 0, hosts = 0;
    /* The field array is filled as it goes; everything else starts clean. */
    memset(h, 0, offsetof(struct et__head, f));
    h->content_length = -1;
    h->chunked = h->conn_close = h->conn_keep_alive = h->expect_continue = h->has_host = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        if (i >= ET__MAX_HEAD) {
            et_error_set_at(e, ET_ETOOBIG, i, "header section over %d bytes", ET__MAX_HEAD);
            return ET_ETOOBIG;
        }
        if (c == '\r') {
            if (i + 1 >= len)
                return ET_EAGAIN;
            if (p[i + 1] != '\n') {
                et_error_set_at(e, ET_EPARSE, i, "bare CR in the header section");
                return ET_EPARSE;
            }
            continue;
        }
        if (c == '\n') {
            if (i == 0 || p[i - 1] != '\r') {
                et_error_set_at(e, ET_EPARSE, i, "bare LF in the header section");
                return ET_EPARSE;
            }
            const uint8_t *l = p + line;
            size_t ln = i - 1 - line;
            if (lineno == 0) {
                if (scan_start_line(l, ln, is_request, h, e) != 0) {
                    e->offset += line;
                    return ET_EPARSE;
                }
            } else if (ln == 0) {
                h->head_len = i + 1;
                if (h->chunked && h->content_length >= 0) {
                    et_error_set_at(e, ET_EPARSE, 0,
                                    "both Transfer-Encoding and Content-Length");
                    return ET_EPARSE;
                }
                if (seen_te && !h->chunked) {
                    et_error_set_at(e, ET_EPARSE, 0, "unsupported Transfer-Encoding");
                    return ET_EPARSE;
                }
                /* RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty
                 * framing (a 1.0 recipient would read the body differently). */
                if (seen_te && h->minor == 0) {
                    et_error_set_at(e, ET_EPARSE, 0, "Transfer-Encoding in an HTTP/1.0 message");
                    return ET_EPARSE;
                }
                /* RFC 9112 3.2: an HTTP/1.1 request without Host is answered 400 (CONNECT
                 * names its authority in the target and is let through without one). */
                if (is_request && h->minor >= 1 && hosts == 0 &&
                    !(h->method_len == 7 && memcmp(h->method, "CONNECT", 7) == 0)) {
                    et_error_set_at(e, ET_EPARSE, 0, "HTTP/1.1 request without Host");
                    return ET_EPARSE;
                }
                return llhttp_agrees(p, h->head_len, is_request, e);
            } else {
                if (l[0] == ' ' || l[0] == '\t') {
                    et_error_set_at(e, ET_EPARSE, line, "obs-fold header continuation");
                    return ET_EPARSE;
                }
                size_t k = 0;
                while (k < ln && tchar_tab[l[k]])
                    k++;
                if (k == 0 || k >= ln || l[k] != ':') {
                    et_error_set_at(e, ET_EPARSE, line + k, "%s header field name",
                                    k == 0 ? "empty" : "invalid");
                    return ET_EPARSE;
                }
                if (h->n >= ET__MAX_FIELDS) {
                    et_error_set_at(e, ET_ETOOBIG, line, "more than %d header fields",
                                    ET__MAX_FIELDS);
                    return ET_ETOOBIG;
                }
                size_t vs = k + 1, ve = ln;
                for (size_t j = vs; j < ln; j++) {
                    if ((l[j] < 0x20 && l[j] != '\t') || l[j] == 0x7f) {
                        et_error_set_at(e, ET_EPARSE, line + j,
                                        "control character in a header value");
                        return ET_EPARSE;
                    }
                }
                while (vs < ve && (l[vs] == ' ' || l[vs] == '\t'))
                    vs++;
                while (ve > vs && (l[ve - 1] == ' ' || l[ve - 1] == '\t'))
                    ve--;
                struct et__field *f = &h->f[h->n++];
                f->name = (const char *)l;
                f->nlen = (uint32_t)k;
                f->value = (const char *)l + vs;
                f->vlen = (uint32_t)(ve - vs);
                if (et__field_is(f, "content-length")) {
                    if (h->content_length >= 0) {
                        et_error_set_at(e, ET_EPARSE, line, "duplicate Content-Length");
                        return ET_EPARSE;
                    }
                    if (f->vlen == 0 || f->vlen > 15) {
                        et_error_set_at(e, ET_EPARSE, line, "bad Content-Length");
                        return ET_EPARSE;
                    }
                    int64_t v = 0;
                    for (uint32_t j = 0; j < f->vlen; j++) {
                        if (f->value[j] < '0' || f->value[j] > '9') {
                            et_error_set_at(e, ET_EPARSE, line, "bad Content-Length");
                            return ET_EPARSE;
                        }
                        v = v * 10 + (f->value[j] - '0');
                    }
                    h->content_length = v;
                } else if (et__field_is(f, "transfer-encoding")) {
                    if (seen_te || !span_is(f->value, f->vlen, "chunked")) {
                        et_error_set_at(e, ET_EPARSE, line,
                                        "Transfer-Encoding other than one final chunked");
                        return ET_EPARSE;
                    }
                    seen_te = 1;
                    h->chunked = 1;
                } else if (et__field_is(f, "connection") ||
                           et__field_is(f, "proxy-connection")) {
                    scan_connection(h, f->value, f->vlen);
                } else if (et__field_is(f, "expect")) {
                    if (span_is(f->value, f->vlen, "100-continue"))
                        h->expect_continue = 1;
                } else if (is_request && et__field_is(f, "host")) {
                    /* RFC 9112 3.2: more than one Host, or an invalid one, is a 400. */
                    if (++hosts > 1) {
                        et_error_set_at(e, ET_EPARSE, line, "more than one Host field");
                        return ET_EPARSE;
                    }
                    if (!et__authority_valid(f->value, f->vlen)) {
                        et_error_set_at(e, ET_EPARSE, line, "invalid Host value");
                        return ET_EPARSE;
                    }
                    h->has_host = 1;
                }
            }
            lineno++;
            line = i + 1;
        }
    }
    if (len >= ET__MAX_HEAD) {
        et_error_set_at(e, ET_ETOOBIG, len, "header section over %d bytes", ET__MAX_HEAD);
        return ET_ETOOBIG;
    }
    return ET_EAGAIN;
}

/* Chunked decoder states. */
enum {
    CK_SIZE = 0,     /* hex digits of the chunk size */
    CK_EXT = 1,      /* chunk extension after ';' up to CR */
    CK_SIZE_LF = 2,  /* LF after the size line's CR */
    CK_DATA = 3,     /* chunk data */
    CK_DATA_CR = 4,  /* CR after data */
    CK_DATA_LF = 5,  /* LF after data */
    CK_TRAILER = 6,  /* start of a trailer line (or the final CRLF) */
    CK_TLINE = 7,    /* inside a trailer line */
    CK_TLINE_LF = 8, /* LF after a trailer line's CR */
    CK_END_LF = 9,   /* LF of the final CRLF */
    CK_DONE = 10     /* message complete */
};

void et__chunked_init(struct et__chunked *c)
{
    memset(c, 0, sizeof(*c));
}


int et__chunked_feed(struct et__chunked *c, const uint8_t *p, size_t len, size_t *consumed,
                     const uint8_t **data, size_t *dlen, struct et_error *e)
{
    size_t i = 0;
    while (i < len) {
        uint8_t b = p[i];
        switch (c->state) {
        case CK_SIZE: {
            int v = et_hex_digit(b);
            if (v >= 0) {
                if (c->ndigits >= 15)
                    goto bad_size;
                c->remaining = c->remaining * 16 + (uint64_t)v;
                c->ndigits++;
                i++;
                break;
            }
            if (c->ndigits == 0)
                goto bad_size;
            if (b == ';') {
                c->state = CK_EXT;
            } else if (b == '\r') {
                c->state = CK_SIZE_LF;
            } else {
                goto bad_size;
            }
            i++;
            break;
        }
        case CK_EXT:
            if (b == '\r')
                c->state = CK_SIZE_LF;
            else if (b == '\n' || (b < 0x20 && b != '\t') || b == 0x7f)
                goto bad_line;
            i++;
            break;
        case CK_SIZE_LF:
            if (b != '\n')
                goto bad_line;
            i++;
            c->state = c->remaining ? CK_DATA : CK_TRAILER;
            break;
        case CK_DATA: {
            size_t n = len - i;
            if (n > c->remaining)
                n = (size_t)c->remaining;
            *data = p + i;
            *dlen = n;
            c->remaining -= n;
            i += n;
            if (c->remaining == 0)
                c->state = CK_DATA_CR;
            c->offset += i;
            *consumed = i;
            return 1;
        }
        case CK_DATA_CR:
            if (b != '\r')
                goto bad_line;
            c->state = CK_DATA_LF;
            i++;
            break;
        case CK_DATA_LF:
            if (b != '\n')
                goto bad_line;
            c->state = CK_SIZE;
            c->ndigits = 0;
            c->remaining = 0;
            i++;
            break;
        case CK_TRAILER:
            /* A trailer line is a field line (RFC 9112 7.1.2): token ":" value. */
            if (b == '\r') {
                c->state = CK_END_LF;
            } else if (!tchar_tab[b]) {
                goto bad_trailer;
            } else {
                c->state = CK_TLINE;
                c->trailer_name = 1;
            }
            i++;
            break;
        case CK_TLINE:
            if (++c->trailer_bytes > ET__MAX_HEAD) {
                et_error_set_at(e, ET_ETOOBIG, c->offset + i, "trailer section too large");
                *consumed = i;
                return ET_ETOOBIG;
            }
            if (c->trailer_name) {
                if (b == ':')
                    c->trailer_name = 0;
                else if (!tchar_tab[b])
                    goto bad_trailer;
            } else if (b == '\r') {
                c->state = CK_TLINE_LF;
            } else if (b == '\n' || (b < 0x20 && b != '\t') || b == 0x7f) {
                goto bad_line;
            }
            i++;
            break;
        case CK_TLINE_LF:
            if (b != '\n')
                goto bad_line;
            c->state = CK_TRAILER;
            i++;
            break;
        case CK_END_LF:
            if (b != '\n')
                goto bad_line;
            i++;
            c->state = CK_DONE;
            c->offset += i;
            *consumed = i;
            return 0;
        case CK_DONE:
        default:
            *consumed = i;
            return 0;
        }
    }
    c->offset += i;
    *consumed = i;
    return c->state == CK_DONE ? 0 : ET_EAGAIN;
bad_size:
    et_error_set_at(e, ET_EPARSE, c->offset + i, "bad chunk size line");
    *consumed = i;
    return ET_EPARSE;
bad_trailer:
    et_error_set_at(e, ET_EPARSE, c->offset + i, "trailer line is not a valid field line");
    *consumed = i;
    return ET_EPARSE;
bad_line:
    et_error_set_at(e, ET_EPARSE, c->offset + i, "bare CR/LF or bad byte in chunk framing");
    *consumed = i;
    return ET_EPARSE;
}
