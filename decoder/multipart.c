/*
 * MS-ASCMD 2.2.1.10.1.1 MultiPartResponse (application/vnd.ms-sync.multipart), and the body
 * view that ties content decoding, classification and the part table together.
 */
#include "eastrace/http.h"
#include "http_int.h"

#include <string.h>

static int32_t le32s(const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    /* Two's complement without implementation-defined conversion. */
    return v <= INT32_MAX ? (int32_t)v : -(int32_t)(~v) - 1;
}

int et_multipart_parse(const uint8_t *p, size_t n, struct et_multipart_part *parts,
                       size_t max_parts, size_t *nparts, struct et_error *e)
{
    int32_t count, off, len;
    uint64_t table_end;
    size_t i;

    if (nparts == NULL || (p == NULL && n > 0) || (parts == NULL && max_parts > 0))
        return ET_EINVAL;
    *nparts = 0;
    if (n < 4) {
        et_error_set_at(e, ET_ETRUNC, n,
                        "multipart body of %zu bytes is shorter than its 4-byte part count", n);
        return ET_ETRUNC;
    }
    count = le32s(p);
    if (count <= 0) {
        et_error_set_at(e, ET_EPARSE, 0,
                        "multipart part count is %ld; at least 1 is needed (part 0 holds the "
                        "WBXML response)",
                        (long)count);
        return ET_EPARSE;
    }
    if ((uint64_t)count > max_parts) {
        et_error_set_at(e, ET_ETOOBIG, 0, "multipart response has %ld parts; at most %zu taken",
                        (long)count, max_parts);
        return ET_ETOOBIG;
    }
    table_end = 4 + 8 * (uint64_t)count;
    if (table_end > n) {
        et_error_set_at(e, ET_ETRUNC, n,
                        "multipart part table of %ld entries needs %llu bytes, body has %zu",
                        (long)count, (unsigned long long)table_end, n);
        return ET_ETRUNC;
    }
    for (i = 0; i < (size_t)count; i++) {
        size_t at = 4 + 8 * i;
        off = le32s(p + at);
        len = le32s(p + at + 4);
        if (off < 0 || (uint64_t)off < table_end || (uint64_t)off > n) {
            et_error_set_at(e, ET_EPARSE, at,
                            "multipart part %zu offset %ld lies outside the data area "
                            "(%llu..%zu)",
                            i, (long)off, (unsigned long long)table_end, n);
            return ET_EPARSE;
        }
        if (len < 0 || (uint64_t)len > n - (uint64_t)off) {
            et_error_set_at(e, ET_EPARSE, at + 4,
                            "multipart part %zu (offset %ld, length %ld) runs past the end of "
                            "the %zu-byte body",
                            i, (long)off, (long)len, n);
            return ET_EPARSE;
        }
        parts[i].offset = (size_t)off;
        parts[i].len = (size_t)len;
        *nparts = i + 1;
    }
    return 0;
}

/* Sets the view's multipart table; problems land in multipart_status. */
static int view_parts(struct et_http_view *v, struct et_arena *a, struct et_error *e)
{
    uint32_t count;
    size_t np = 0, max;
    int rc;

    if (v->len >= 4) {
        count = (uint32_t)v->data[0] | (uint32_t)v->data[1] << 8 |
                (uint32_t)v->data[2] << 16 | (uint32_t)v->data[3] << 24;
        max = ET_MIN((size_t)count, (size_t)ET_MULTIPART_MAX_PARTS);
        if (max == 0)
            max = 1;
    } else {
        max = 1;
    }
    v->parts = et_arena_alloc(a, max * sizeof(*v->parts));
    if (v->parts == NULL)
        return ET_ENOMEM;
    rc = et_multipart_parse(v->data, v->len, v->parts, max, &np, e);
    if (rc != 0) {
        v->multipart_status = rc;
        v->parts = NULL;
        v->nparts = 0;
        return rc;
    }
    v->nparts = np;
    return 0;
}

int et_http_body_view(const struct et_headers *h, const struct et_body *b, size_t cap,
                      struct et_http_view *out, struct et_arena *a, struct et_error *e)
{
    struct et_buf buf;
    const char *enc;
    int rc = 0, drc;

    if (out == NULL)
        return ET_EINVAL;
    memset(out, 0, sizeof(*out));
    if (b == NULL || a == NULL)
        return ET_EINVAL;
    out->data = b->data;
    out->len = b->data ? b->len : 0;
    out->truncated = b->truncated;
    enc = h ? et_headers_get(h, "Content-Encoding") : NULL;
    out->encoding = enc;
    if (out->len == 0) {
        out->kind = ET_BODY_EMPTY;
        return 0;
    }
    if (enc != NULL && b->content_decoded &&
        !(out->len >= 3 && b->data[0] == 0x1f && b->data[1] == 0x8b && b->data[2] == 0x08)) {
        /* The recorder (a HAR writer) stored the decoded body and kept the header: decoding
         * it again would fail on bytes that are not gzip. (A writer that broke the rule and
         * kept the gzip stream is still decoded: its magic bytes start no decoded EAS body.) */
        out->decoded = 1;
    } else if (enc != NULL) {
        et_buf_init(&buf, 0);
        drc = et_http_content_decode(h, b->data, b->len, cap, &buf, e);
        if (drc == ET_ENOMEM) {
            et_buf_free(&buf);
            out->kind = ET_BODY_OTHER;
            out->decode_status = drc;
            return drc;
        }
        if (drc == 0 || (drc == ET_ETRUNC && buf.len > 0)) {
            /* A cut stream still gives its first bytes, which is what a reader wants. */
            uint8_t *d = buf.len ? et_arena_memdup(a, buf.data, buf.len) : NULL;
            if (buf.len && d == NULL) {
                et_buf_free(&buf);
                out->kind = ET_BODY_OTHER;
                return ET_ENOMEM;
            }
            out->data = d;
            out->len = buf.len;
            out->decoded = 1;
            if (drc != 0)
                out->truncated = 1;
        }
        et_buf_free(&buf);
        out->decode_status = drc;
        rc = drc;
        if (drc != 0 && !out->decoded) {
            /* The bytes are still encoded: whatever Content-Type says, they are opaque. */
            out->kind = ET_BODY_OTHER;
            return rc;
        }
    }
    out->kind = et_http_body_kind(h, out->data, out->len);
    if (out->kind == ET_BODY_MULTIPART) {
        int mrc = view_parts(out, a, e);
        if (mrc == ET_ENOMEM)
            return mrc;
        if (rc == 0)
            rc = mrc;
    }
    return rc;
}
