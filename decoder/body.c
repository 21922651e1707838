/*
 * HTTP bodies: undoing Content-Encoding with zlib under an output cap, and telling what a body
 * holds (WBXML, multipart, MIME, XML, text) from Content-Type or its first bytes.
 */
#include "eastrace/http.h"
#include "http_int.h"

#include <limits.h>
#include <string.h>
#include <zlib.h>

#define MAX_LAYERS 8
#define OUT_STEP 65536

enum coding {
    CODING_IDENTITY = 0, /* nothing to undo */
    CODING_GZIP = 1,     /* gzip, x-gzip: RFC 1952, possibly several members */
    CODING_DEFLATE = 2   /* deflate: RFC 1950 zlib, or raw RFC 1951 as some servers send */
};

/* zlib allocates through et_malloc so allocation-failure tests reach it too. */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    if (size != 0 && items > SIZE_MAX / size)
        return Z_NULL;
    return et_malloc((size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    et_free(p);
}

static int looks_zlib(const uint8_t *p, size_t n)
{
    return n >= 2 && (p[0] & 0x0f) == 8 && (p[0] >> 4) <= 7 &&
           (((unsigned)p[0] << 8) | p[1]) % 31 == 0;
}

/*
 * Inflates p[0..n) into out (appending) with at most cap bytes of output in total.
 * layer and name only make error messages precise.
 */
static int inflate_layer(const uint8_t *p, size_t n, enum coding c, size_t cap,
                         struct et_buf *out, struct et_error *e, unsigned layer)
{
    z_stream z;
    int zr, rc = 0;
    int raw = c == CODING_DEFLATE && !looks_zlib(p, n);
    const char *name = c == CODING_GZIP ? "gzip" : raw ? "raw deflate" : "zlib deflate";
    size_t in_off = 0; /* input bytes handed to zlib so far */
    uint8_t probe;

    memset(&z, 0, sizeof(z));
    z.zalloc = z_alloc;
    z.zfree = z_free;
    zr = inflateInit2(&z, c == CODING_GZIP ? 15 + 16 : raw ? -15 : 15);
    if (zr != Z_OK)
        return zr == Z_MEM_ERROR ? ET_ENOMEM : ET_EINVAL;

    for (;;) {
        size_t room = cap > out->len ? cap - out->len : 0;
        size_t step = ET_MIN(room, (size_t)OUT_STEP);
        size_t before_in, before_out;

        if (z.avail_in == 0 && in_off < n) {
            size_t give = ET_MIN(n - in_off, (size_t)UINT_MAX / 2);
            z.next_in = (Bytef *)(uintptr_t)(p + in_off);
            z.avail_in = (uInt)give;
            in_off += give;
        }
        if (step == 0) {
            /* At the cap: one more byte of output means the body is too big. */
            z.next_out = &probe;
            z.avail_out = 1;
        } else {
            rc = et_buf_reserve(out, step);
            if (rc == ET_ETOOBIG) {
                et_error_set(e, ET_ETOOBIG, "decoded body passes the buffer limit of %zu bytes",
                             out->max);
                goto out;
            }
            if (rc != 0)
                goto out;
            z.next_out = out->data + out->len;
            z.avail_out = (uInt)step;
        }
        before_in = z.avail_in;
        before_out = z.avail_out;
        zr = inflate(&z, Z_NO_FLUSH);
        if (step == 0 && z.avail_out == 0) {
            rc = ET_ETOOBIG;
            et_error_set_at(e, rc, z.total_in,
                            "%s (layer %u) expands past the cap of %zu bytes from %zu "
                            "compressed bytes: refused as a possible zip bomb",
                            name, layer, cap, n);
            goto out;
        }
        if (step != 0) {
            out->len += step - z.avail_out;
            out->data[out->len] = '\0';
        }
        if (zr == Z_STREAM_END) {
            size_t consumed = (size_t)(in_off - z.avail_in);
            /* gzip allows several members one after the other. */
            if (c == CODING_GZIP && n - consumed >= 2 && p[consumed] == 0x1f &&
                p[consumed + 1] == 0x8b) {
                zr = inflateReset(&z);
                if (zr != Z_OK) {
                    rc = ET_EINVAL;
                    goto out;
                }
                continue;
            }
            rc = 0; /* trailing bytes after the stream are ignored, as browsers do */
            goto out;
        }
        if (zr == Z_NEED_DICT) {
            rc = ET_EUNSUPPORTED;
            et_error_set_at(e, rc, z.total_in, "%s (layer %u) needs a preset dictionary",
                            name, layer);
            goto out;
        }
        if (zr == Z_DATA_ERROR) {
            rc = ET_EPARSE;
            et_error_set_at(e, rc, z.total_in, "corrupt %s data (layer %u): %s", name, layer,
                            z.msg ? z.msg : "invalid stream");
            goto out;
        }
        if (zr == Z_MEM_ERROR) {
            rc = ET_ENOMEM;
            goto out;
        }
        if (zr == Z_BUF_ERROR || (zr == Z_OK && z.avail_in == before_in &&
                                  z.avail_out == before_out)) {
            if (z.avail_in == 0 && in_off == n) {
                rc = ET_ETRUNC;
                et_error_set_at(e, rc, n,
                                "%s data (layer %u) ends early after %zu bytes; %zu bytes "
                                "decoded so far",
                                name, layer, n, out->len);
                goto out;
            }
        }
    }
out:
    inflateEnd(&z);
    return rc;
}

/* Splits Content-Encoding (every such header, comma separated) into codings, in order. */
static int parse_codings(const struct et_headers *h, enum coding *v, size_t *nv,
                         struct et_error *e)
{
    size_t i;

    *nv = 0;
    if (h == NULL)
        return 0;
    for (i = 0; i < h->n; i++) {
        const char *s = h->v[i].value;
        if (!et_strcaseeq(h->v[i].name, "Content-Encoding"))
            continue;
        while (*s) {
            size_t len;
            const char *tok;
            enum coding c;
            while (*s == ' ' || *s == '\t' || *s == ',')
                s++;
            tok = s;
            while (*s && *s != ',')
                s++;
            len = (size_t)(s - tok);
            while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
                len--;
            if (len == 0)
                continue;
            if ((len == 4 && et_strncaseeq(tok, "gzip", 4)) ||
                (len == 6 && et_strncaseeq(tok, "x-gzip", 6)))
                c = CODING_GZIP;
            else if (len == 7 && et_strncaseeq(tok, "deflate", 7))
                c = CODING_DEFLATE;
            else if (len == 8 && et_strncaseeq(tok, "identity", 8))
                continue;
            else if (len == 2 && et_strncaseeq(tok, "br", 2)) {
                et_error_set(e, ET_EUNSUPPORTED,
                             "Content-Encoding br (Brotli) is not supported: eastrace has no "
                             "Brotli decoder; the body is shown still encoded");
                return ET_EUNSUPPORTED;
            } else {
                et_error_set(e, ET_EUNSUPPORTED,
                             "Content-Encoding \"%.*s\" is not supported (gzip, x-gzip, deflate "
                             "and identity are)",
                             (int)ET_MIN(len, (size_t)40), tok);
                return ET_EUNSUPPORTED;
            }
            if (*nv == MAX_LAYERS) {
                et_error_set(e, ET_ETOOBIG, "more than %d stacked content codings", MAX_LAYERS);
                return ET_ETOOBIG;
            }
            v[(*nv)++] = c;
        }
    }
    return 0;
}

int et_http_content_decode(const struct et_headers *h, const uint8_t *p, size_t n, size_t cap,
                           struct et_buf *out, struct et_error *e)
{
    enum coding v[MAX_LAYERS];
    size_t nv, i;
    struct et_buf tmp[2];
    const uint8_t *in = p;
    size_t in_len = n;
    int rc;

    if (out == NULL || (p == NULL && n > 0))
        return ET_EINVAL;
    if (cap == 0)
        cap = ET_HTTP_DECODE_CAP;
    rc = parse_codings(h, v, &nv, e);
    if (rc != 0)
        return rc;
    if (nv == 0) {
        if (n > cap) {
            et_error_set(e, ET_ETOOBIG, "body of %zu bytes passes the cap of %zu bytes", n, cap);
            return ET_ETOOBIG;
        }
        rc = et_buf_append(out, p, n);
        if (rc == ET_ETOOBIG)
            et_error_set(e, rc, "body of %zu bytes passes the buffer limit", n);
        return rc;
    }
    if (nv == 1) {
        size_t base = out->len;
        /* The cap counts this call's output only. */
        return inflate_layer(p, n, v[0], cap > SIZE_MAX - base ? SIZE_MAX : base + cap, out,
                             e, 1);
    }
    /* Stacked: the last coding listed was applied last, so it is undone first. */
    et_buf_init(&tmp[0], 0);
    et_buf_init(&tmp[1], 0);
    for (i = nv; i-- > 1;) {
        struct et_buf *t = &tmp[(nv - 1 - i) & 1];
        et_buf_reset(t);
        rc = inflate_layer(in, in_len, v[i], cap, t, e, (unsigned)(nv - i));
        if (rc != 0)
            goto out;
        in = t->data;
        in_len = t->len;
    }
    {
        size_t base = out->len;
        rc = inflate_layer(in, in_len, v[0], cap > SIZE_MAX - base ? SIZE_MAX : base + cap, out,
                           e, (unsigned)nv);
    }
out:
    et_buf_free(&tmp[0]);
    et_buf_free(&tmp[1]);
    return rc;
}

const char *et_body_kind_name(enum et_body_kind k)
{
    switch (k) {
    case ET_BODY_EMPTY: return "empty";
    case ET_BODY_WBXML: return "wbxml";
    case ET_BODY_MULTIPART: return "multipart";
    case ET_BODY_RFC822: return "rfc822";
    case ET_BODY_XML: return "xml";
    case ET_BODY_TEXT: return "text";
    case ET_BODY_OTHER: break;
    }
    return "other";
}

/* Case-insensitive equality of the media type t[0..n) with s. */
static int media_is(const char *t, size_t n, const char *s)
{
    return strlen(s) == n && et_strncaseeq(t, s, n);
}

static int media_suffix(const char *t, size_t n, const char *suffix)
{
    size_t sl = strlen(suffix);
    return n > sl && et_strncaseeq(t + n - sl, suffix, sl);
}

static int looks_wbxml(const uint8_t *p, size_t n)
{
    /* Version 1.1 to 1.3 (EAS sends 0x03), a single-byte public id (0x01 "unknown", as EAS
     * sends, or a small registered id), charset UTF-8 (0x6A), US-ASCII, Latin-1 or "unknown". */
    return n >= 4 && p[0] >= 0x01 && p[0] <= 0x03 && p[1] >= 0x01 && p[1] <= 0x0F &&
           (p[2] == 0x6A || p[2] == 0x03 || p[2] == 0x04 || p[2] == 0x00);
}

static int looks_multipart(const uint8_t *p, size_t n)
{
    struct et_multipart_part parts[4];
    size_t np = 0;
    uint32_t count;

    if (n < 12)
        return 0;
    count = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    if (count == 0 || count > ET_ARRAY_SIZE(parts))
        return 0;
    /* The first part starts right after the table in every response seen. */
    if (((uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24) !=
        4 + 8 * count)
        return 0;
    return et_multipart_parse(p, n, parts, ET_ARRAY_SIZE(parts), &np, NULL) == 0;
}

static int looks_mime(const uint8_t *p, size_t n)
{
    static const char *const names[] = {"From:", "To:", "Subject:", "MIME-Version:", "Date:",
                                        "Received:", "Message-ID:", "Content-Type:", "Cc:",
                                        "Return-Path:", "X-"};
    size_t i;
    for (i = 0; i < ET_ARRAY_SIZE(names); i++) {
        size_t l = strlen(names[i]);
        if (n >= l && et_strncaseeq((const char *)p, names[i], l))
            return 1;
    }
    return 0;
}

static int looks_text(const uint8_t *p, size_t n)
{
    size_t i, m = ET_MIN(n, (size_t)4096);
    for (i = 0; i < m; i++)
        if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return 0;
    /* Judge UTF-8 on the sampled prefix, minus a possibly cut final character. */
    while (m < n && m > 0 && (p[m] & 0xC0) == 0x80)
        m--;
    return et_utf8_valid(p, m);
}

static enum et_body_kind sniff(const uint8_t *p, size_t n)
{
    size_t i = 0;

    if (looks_wbxml(p, n))
        return ET_BODY_WBXML;
    if (looks_multipart(p, n))
        return ET_BODY_MULTIPART;
    if (n >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF)
        i = 3;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    if (i < n && p[i] == '<' && looks_text(p + i, n - i))
        return ET_BODY_XML;
    if (looks_mime(p, n) && looks_text(p, n))
        return ET_BODY_RFC822;
    if (looks_text(p, n))
        return ET_BODY_TEXT;
    return ET_BODY_OTHER;
}

enum et_body_kind et_http_body_kind(const struct et_headers *h, const uint8_t *p, size_t n)
{
    const char *ct = h ? et_headers_get(h, "Content-Type") : NULL;
    size_t len;

    if (n == 0 || p == NULL)
        return ET_BODY_EMPTY;
    if (ct == NULL)
        return sniff(p, n);
    len = strcspn(ct, "; \t");
    if (media_is(ct, len, "application/vnd.ms-sync.wbxml") ||
        media_is(ct, len, "application/vnd.ms-sync"))
        return ET_BODY_WBXML;
    if (media_is(ct, len, "application/vnd.ms-sync.multipart"))
        return ET_BODY_MULTIPART;
    if (media_is(ct, len, "message/rfc822"))
        return ET_BODY_RFC822;
    if (media_is(ct, len, "text/xml") || media_is(ct, len, "application/xml") ||
        media_suffix(ct, len, "+xml"))
        return ET_BODY_XML;
    if ((len > 5 && et_strncaseeq(ct, "text/", 5)) || media_is(ct, len, "application/json") ||
        media_suffix(ct, len, "+json") ||
        media_is(ct, len, "application/x-www-form-urlencoded") ||
        media_is(ct, len, "application/javascript"))
        return ET_BODY_TEXT;
    if (len == 0 || media_is(ct, len, "application/octet-stream"))
        return sniff(p, n);
    return ET_BODY_OTHER;
}
