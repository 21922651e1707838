/*
 * Capture file reader: a struct et_source over a capture file (or bytes in memory).
 *
 * The reader keeps one position, the offset where the next record should start, and reads
 * with pread(), so memory is one record (which lands directly in the exchange's arena, bodies
 * are used in place) plus a 64 KiB scan window. Per call:
 *
 *   pos --> header intact? --no--> scan for the next sync+nonce --found--> report, pos = there
 *             |yes                                 |none: torn tail, report once
 *             v
 *           whole record in the file? --no--> scan (a record appended after a torn one) / tail
 *             |yes
 *             v
 *           CRC ok? --no--> scan --> report "damaged record at byte N"
 *             |yes
 *             v
 *           pos += record; decode TLV payload --> exchange (or "malformed exchange" report)
 */
#include "eastrace/capfile.h"
#include "capfile_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCAN_CHUNK 65536
#define WIN_SIZE 65536
#define PAT_LEN (CAP_SYNC_LEN + CAP_NONCE_LEN)

struct reader {
    int fd;             /* -1 when reading memory */
    const uint8_t *mem; /* borrowed */
    uint64_t size;      /* bytes known to exist; refreshed from fstat when we reach it */
    uint64_t pos;       /* where the next record should start */
    uint8_t nonce[CAP_NONCE_LEN];
    uint8_t pat[PAT_LEN]; /* sync + nonce: what starts every record of this file */
    size_t max_record;
    int follow;
    uint64_t nexch;     /* exchange records seen, for ids */
    int tail_reported;  /* the torn tail at tail_pos (file size tail_size) was reported */
    uint64_t tail_pos, tail_size;
    char *name;
    uint8_t *scan;      /* SCAN_CHUNK bytes */
    uint8_t *win;       /* read-ahead window (files, not in follow mode); NULL otherwise */
    uint64_t win_off;   /* file offset of win[0] */
    size_t win_len;     /* valid bytes in win */
};

/* --- byte access --------------------------------------------------------------------------- */

static int refresh_size(struct reader *r, struct et_error *e)
{
    struct stat st;
    if (r->fd < 0)
        return 0;
    if (fstat(r->fd, &st) != 0) {
        et_error_set(e, ET_EIO, "cannot stat %s: %s", r->name, strerror(errno));
        return ET_EIO;
    }
    r->size = (uint64_t)st.st_size;
    return 0;
}

static int pread_full(struct reader *r, uint64_t off, uint8_t *p, size_t n,
                      struct et_error *e)
{
    while (n > 0) {
        ssize_t got = pread(r->fd, p, n, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0)
                et_error_set_at(e, ET_EIO, off, "cannot read %s: the file shrank", r->name);
            else
                et_error_set_at(e, ET_EIO, off, "cannot read %s: %s", r->name,
                                strerror(errno));
            return ET_EIO;
        }
        p += got;
        n -= (size_t)got;
        off += (uint64_t)got;
    }
    return 0;
}

/*
 * Reads n bytes at off; the caller has checked off + n <= r->size. Small reads are served
 * from a read-ahead window, so small records cost no syscall each (bench_capfile: 2 preads
 * per record were most of the read time). Not in follow mode: there a writer may cut a failed
 * partial record and write another over it, and the window could hold the old bytes.
 */
static int read_at(struct reader *r, uint64_t off, uint8_t *p, size_t n, struct et_error *e)
{
    if (r->fd < 0) {
        if (n > 0)
            memcpy(p, r->mem + off, n);
        return 0;
    }
    if (r->win != NULL && n <= WIN_SIZE / 2) {
        if (off < r->win_off || off + n > r->win_off + r->win_len) {
            size_t want = (size_t)ET_MIN((uint64_t)WIN_SIZE, r->size - off);
            int rc = pread_full(r, off, r->win, want, e);
            if (rc != 0) {
                r->win_len = 0;
                return rc;
            }
            r->win_off = off;
            r->win_len = want;
        }
        memcpy(p, r->win + (off - r->win_off), n);
        return 0;
    }
    return pread_full(r, off, p, n, e);
}

/*
 * Looks for the next record start at or after from: sync + nonce with an intact header, or
 * sync + nonce too close to the end for a whole header (a record being written or torn).
 * Returns 1 and sets *at, 0 when there is none before the end, or ET_EIO.
 */
static int find_sync(struct reader *r, uint64_t from, uint64_t *at, struct et_error *e)
{
    uint64_t off = from;

    while (off + PAT_LEN <= r->size) {
        size_t n = (size_t)ET_MIN((uint64_t)SCAN_CHUNK, r->size - off);
        const uint8_t *hit;
        int rc;

        if ((rc = read_at(r, off, r->scan, n, e)) != 0)
            return rc;
        hit = memmem(r->scan, n, r->pat, PAT_LEN);
        if (hit != NULL) {
            uint64_t cand = off + (uint64_t)(hit - r->scan);
            uint8_t h[CAP_REC_HDR_LEN];
            unsigned type;
            uint32_t len;

            if (cand + CAP_REC_HDR_LEN > r->size) {
                *at = cand;
                return 1;
            }
            if ((rc = read_at(r, cand, h, sizeof(h), e)) != 0)
                return rc;
            if (et__cap_check_rec_header(h, r->nonce, &type, &len)) {
                *at = cand;
                return 1;
            }
            off = cand + 1;
            continue;
        }
        if (off + n >= r->size)
            break;
        off += n - (PAT_LEN - 1); /* the pattern may straddle two windows */
    }
    return 0;
}

/* The bytes from pos to the end of the file are no whole record and nothing follows them. */
static int torn_tail(struct reader *r, struct et_error *e)
{
    if (r->follow)
        return 0; /* a record being written: try again later */
    if (r->tail_reported && r->tail_pos == r->pos && r->tail_size == r->size)
        return 0;
    r->tail_reported = 1;
    r->tail_pos = r->pos;
    r->tail_size = r->size;
    et_error_set_at(e, ET_EPARSE, r->pos,
                    "torn record at byte %" PRIu64 ": skipped (%" PRIu64
                    " bytes at the end of the file)",
                    r->pos, r->size - r->pos);
    return ET_EPARSE;
}

/* The record at pos is damaged (why) or torn: resume at the next record or report a tail. */
static int skip_damaged(struct reader *r, const char *kind, const char *why,
                        struct et_error *e)
{
    uint64_t at = 0, from = r->pos;
    int rc = find_sync(r, from + 1, &at, e);

    if (rc < 0)
        return rc;
    if (rc == 0)
        return torn_tail(r, e);
    r->pos = at;
    et_error_set_at(e, ET_EPARSE, from,
                    "%s record at byte %" PRIu64 ": skipped (%s; %" PRIu64
                    " bytes up to the next record)",
                    kind, from, why, at - from);
    return ET_EPARSE;
}

/* --- payload decoding ---------------------------------------------------------------------- */

struct pctx {
    struct et_exchange *x;
    const uint8_t *base; /* payload start */
    uint64_t base_off;   /* its file offset */
    struct et_error *e;
    uint64_t src_id;
    uint32_t src_kind;
    int rc;
};

struct cur {
    const uint8_t *p, *end;
};

/* Next TLV in c: 1 with tag/value set, 0 at the end, ET_EPARSE when it does not fit. */
static int tlv_next(struct pctx *c, struct cur *k, unsigned *tag, const uint8_t **v,
                    size_t *n)
{
    size_t left = (size_t)(k->end - k->p);
    uint32_t len;

    if (left == 0)
        return 0;
    if (left < CAP_TLV_HDR) {
        et_error_set_at(c->e, ET_EPARSE, c->base_off + (uint64_t)(k->p - c->base),
                        "malformed exchange record: %zu stray bytes at the end of a field list",
                        left);
        return ET_EPARSE;
    }
    *tag = cap_get16(k->p);
    len = cap_get32(k->p + 2);
    if (len > left - CAP_TLV_HDR) {
        et_error_set_at(c->e, ET_EPARSE, c->base_off + (uint64_t)(k->p - c->base),
                        "malformed exchange record: field 0x%04x claims %" PRIu32
                        " bytes, %zu left",
                        *tag, len, left - CAP_TLV_HDR);
        return ET_EPARSE;
    }
    *v = k->p + CAP_TLV_HDR;
    *n = len;
    k->p += CAP_TLV_HDR + len;
    return 1;
}

static int bad(struct pctx *c, const uint8_t *v, const char *what)
{
    et_error_set_at(c->e, ET_EPARSE, c->base_off + (uint64_t)(v - c->base),
                    "malformed exchange record: %s", what);
    return ET_EPARSE;
}

/* Integers are little-endian, 1 to 8 bytes, zero-extended. */
static int get_uint(struct pctx *c, const uint8_t *v, size_t n, uint64_t *out)
{
    uint64_t u = 0;
    if (n < 1 || n > 8)
        return bad(c, v, "integer field of bad length");
    for (size_t i = 0; i < n; i++)
        u |= (uint64_t)v[i] << (8 * i);
    *out = u;
    return 0;
}

static int get_str(struct pctx *c, const uint8_t *v, size_t n, const char **out)
{
    char *s = et_arena_strndup(c->x->arena, (const char *)v, n);
    if (s == NULL) {
        et_error_set(c->e, ET_ENOMEM, "out of memory decoding a capture record");
        return ET_ENOMEM;
    }
    *out = s;
    return 0;
}

static int get_pair(struct pctx *c, struct et_headers *h, const uint8_t *v, size_t n)
{
    uint32_t nl;
    if (n < 4)
        return bad(c, v, "header field too short");
    nl = cap_get32(v);
    if (nl > n - 4)
        return bad(c, v, "header name longer than its field");
    if (et_headers_add(h, c->x->arena, (const char *)v + 4, nl, (const char *)v + 4 + nl,
                       n - 4 - nl) != 0) {
        et_error_set(c->e, ET_ENOMEM, "out of memory decoding a capture record");
        return ET_ENOMEM;
    }
    return 0;
}

static int get_i32(struct pctx *c, const uint8_t *v, size_t n, int *out)
{
    uint64_t u;
    int rc = get_uint(c, v, n, &u);
    if (rc == 0)
        *out = (int)(int32_t)(uint32_t)u;
    return rc;
}

static int get_i64(struct pctx *c, const uint8_t *v, size_t n, int64_t *out)
{
    uint64_t u;
    int rc = get_uint(c, v, n, &u);
    if (rc == 0)
        *out = (int64_t)u;
    return rc;
}

static int parse_body(struct pctx *c, struct et_body *b, const uint8_t *p, size_t len)
{
    struct cur k = {p, p + len};
    const uint8_t *v;
    unsigned tag;
    size_t n;
    uint64_t u, wire = 0;
    int rc, have_wire = 0;

    memset(b, 0, sizeof(*b));
    while ((rc = tlv_next(c, &k, &tag, &v, &n)) == 1) {
        switch (tag) {
        case TB_FLAGS:
            if ((rc = get_uint(c, v, n, &u)) != 0)
                return rc;
            b->truncated = (u & 1) != 0;
            b->absent = (u & 2) != 0;
            break;
        case TB_WIRE_LEN:
            if ((rc = get_uint(c, v, n, &wire)) != 0)
                return rc;
            have_wire = 1;
            break;
        case TB_DATA:
            /* The payload lives in the exchange's arena: use the bytes in place. */
            b->data = n ? v : NULL;
            b->len = n;
            break;
        default:
            break;
        }
    }
    if (rc < 0)
        return rc;
    b->wire_len = have_wire && wire > b->len ? wire : b->len;
    return 0;
}

static int parse_message(struct pctx *c, int is_req, const uint8_t *p, size_t len)
{
    struct et_exchange *x = c->x;
    struct et_headers *h = is_req ? &x->req.headers : &x->resp.headers;
    struct cur k = {p, p + len};
    const uint8_t *v;
    unsigned tag;
    size_t n;
    int rc;

    while ((rc = tlv_next(c, &k, &tag, &v, &n)) == 1) {
        switch (tag) {
        case TM_METHOD:
            if (is_req && (rc = get_str(c, v, n, &x->req.method)) != 0)
                return rc;
            break;
        case TM_TARGET:
            if (is_req && (rc = get_str(c, v, n, &x->req.target)) != 0)
                return rc;
            break;
        case TM_VERSION:
            if (n != 2)
                return bad(c, v, "HTTP version field of bad length");
            if (is_req) {
                x->req.http_major = v[0];
                x->req.http_minor = v[1];
            } else {
                x->resp.http_major = v[0];
                x->resp.http_minor = v[1];
            }
            break;
        case TM_HEADER:
            if ((rc = get_pair(c, h, v, n)) != 0)
                return rc;
            break;
        case TM_BODY:
            if ((rc = parse_body(c, is_req ? &x->req.body : &x->resp.body, v, n)) != 0)
                return rc;
            break;
        case TM_STATUS:
            if (!is_req && (rc = get_i32(c, v, n, &x->resp.status)) != 0)
                return rc;
            break;
        case TM_REASON:
            if (!is_req && (rc = get_str(c, v, n, &x->resp.reason)) != 0)
                return rc;
            break;
        default:
            break;
        }
    }
    return rc;
}

static int parse_tls(struct pctx *c, const uint8_t *p, size_t len)
{
    struct et_tls_info *t = &c->x->tls;
    struct cur k = {p, p + len};
    const uint8_t *v;
    const char **dst;
    unsigned tag;
    size_t n;
    uint64_t u;
    int rc;

    while ((rc = tlv_next(c, &k, &tag, &v, &n)) == 1) {
        dst = NULL;
        switch (tag) {
        case TT_FLAGS:
            if ((rc = get_uint(c, v, n, &u)) != 0)
                return rc;
            t->present = (u & 1) != 0;
            t->intercepted = (u & 2) != 0;
            t->insecure = (u & 4) != 0;
            break;
        case TT_SNI: dst = &t->sni; break;
        case TT_CLIENT_VERSION: dst = &t->client_version; break;
        case TT_UPSTREAM_VERSION: dst = &t->upstream_version; break;
        case TT_CIPHER: dst = &t->cipher; break;
        case TT_ALPN: dst = &t->alpn; break;
        case TT_SUBJECT: dst = &t->upstream_subject; break;
        case TT_ISSUER: dst = &t->upstream_issuer; break;
        case TT_NOT_BEFORE: dst = &t->upstream_not_before; break;
        case TT_NOT_AFTER: dst = &t->upstream_not_after; break;
        case TT_SHA256: dst = &t->upstream_sha256; break;
        case TT_VERIFY_ERROR: dst = &t->verify_error; break;
        default: break;
        }
        if (dst != NULL && (rc = get_str(c, v, n, dst)) != 0)
            return rc;
    }
    return rc;
}

static int parse_error(struct pctx *c, const uint8_t *p, size_t len)
{
    struct et_exchange_error *er = &c->x->err;
    struct cur k = {p, p + len};
    const uint8_t *v;
    unsigned tag;
    size_t n;
    uint64_t u;
    int rc;

    while ((rc = tlv_next(c, &k, &tag, &v, &n)) == 1) {
        switch (tag) {
        case TE_CODE:
            if ((rc = get_i32(c, v, n, &er->code)) != 0)
                return rc;
            break;
        case TE_STAGE:
            if ((rc = get_uint(c, v, n, &u)) != 0)
                return rc;
            /* Stages this build does not know stay visible as "unknown". */
            er->stage = u <= ET_STAGE_CAPTURE ? (enum et_stage)u : (enum et_stage)99;
            break;
        case TE_MESSAGE:
            if ((rc = get_str(c, v, n, &er->message)) != 0)
                return rc;
            break;
        default:
            break;
        }
    }
    return rc;
}

static int parse_exchange(struct pctx *c, const uint8_t *p, size_t len)
{
    struct et_exchange *x = c->x;
    struct cur k = {p, p + len};
    const uint8_t *v;
    const char **dst;
    int64_t *tdst;
    unsigned tag;
    size_t n;
    uint64_t u;
    int rc;

    while ((rc = tlv_next(c, &k, &tag, &v, &n)) == 1) {
        dst = NULL;
        tdst = NULL;
        switch (tag) {
        case TX_ID:
            if ((rc = get_uint(c, v, n, &c->src_id)) != 0)
                return rc;
            break;
        case TX_SOURCE:
            if ((rc = get_uint(c, v, n, &u)) != 0)
                return rc;
            c->src_kind = (uint32_t)u;
            break;
        case TX_SOURCE_NAME:
            break; /* replaced by the capture's own name; see docs/capture-format.md */
        case TX_FLAGS:
            if ((rc = get_uint(c, v, n, &u)) != 0)
                return rc;
            x->has_request = (u & 1) != 0;
            x->has_response = (u & 2) != 0;
            x->reverse = (u & 4) != 0;
            break;
        case TX_T_CONNECT: tdst = &x->t.connect; break;
        case TX_T_REQ_BEGIN: tdst = &x->t.req_begin; break;
        case TX_T_REQ_END: tdst = &x->t.req_end; break;
        case TX_T_RESP_BEGIN: tdst = &x->t.resp_begin; break;
        case TX_T_RESP_END: tdst = &x->t.resp_end; break;
        case TX_CLIENT_ADDR: dst = &x->client_addr; break;
        case TX_SERVER_ADDR: dst = &x->server_addr; break;
        case TX_VIA_ADDR: dst = &x->via_addr; break;
        case TX_SCHEME: dst = &x->scheme; break;
        case TX_HOST: dst = &x->host; break;
        case TX_PORT:
            if ((rc = get_uint(c, v, n, &u)) != 0)
                return rc;
            x->port = u <= 65535 ? (int)u : 0;
            break;
        case TX_TLS:
            if ((rc = parse_tls(c, v, n)) != 0)
                return rc;
            break;
        case TX_REQUEST:
        case TX_RESPONSE:
            if ((rc = parse_message(c, tag == TX_REQUEST, v, n)) != 0)
                return rc;
            break;
        case TX_ERROR:
            if ((rc = parse_error(c, v, n)) != 0)
                return rc;
            break;
        case TX_META:
            if ((rc = get_pair(c, &x->meta, v, n)) != 0)
                return rc;
            break;
        default:
            break; /* a later version's field */
        }
        if (dst != NULL && (rc = get_str(c, v, n, dst)) != 0)
            return rc;
        if (tdst != NULL && (rc = get_i64(c, v, n, tdst)) != 0)
            return rc;
    }
    return rc;
}

/* Source bookkeeping: the capture becomes the source, the producer is kept in meta. */
static int finish_exchange(struct reader *r, struct pctx *c)
{
    struct et_exchange *x = c->x;
    char idbuf[24];
    int n;

    x->id = r->nexch;
    x->source = ET_SRC_CAPTURE;
    x->source_name = et_arena_strdup(x->arena, r->name);
    if (x->source_name == NULL)
        goto nomem;
    /* A re-written capture already carries its origin in meta. */
    if (c->src_kind != ET_SRC_CAPTURE) {
        const char *origin = et_source_name((enum et_source_kind)c->src_kind);
        n = snprintf(idbuf, sizeof(idbuf), "%" PRIu64, c->src_id);
        if (et_headers_add(&x->meta, x->arena, ET_CAPFILE_META_ORIGIN,
                           strlen(ET_CAPFILE_META_ORIGIN), origin, strlen(origin)) != 0 ||
            et_headers_add(&x->meta, x->arena, ET_CAPFILE_META_ORIGIN_ID,
                           strlen(ET_CAPFILE_META_ORIGIN_ID), idbuf, (size_t)n) != 0)
            goto nomem;
    }
    return 0;
nomem:
    et_error_set(c->e, ET_ENOMEM, "out of memory decoding a capture record");
    return ET_ENOMEM;
}

/* --- records ------------------------------------------------------------------------------- */

/* Reads and checks the record at r->pos whose header h announced plen payload bytes of type.
 * Returns 1 with *out set for an exchange, 2 for another intact record (skipped: go on), or
 * what skip_damaged() returns for a damaged one (0 at the end, or <0). */
static int take_record(struct reader *r, const uint8_t *h, unsigned type, uint32_t plen,
                       struct et_exchange **out, struct et_error *e)
{
    struct et_exchange *x;
    uint8_t *body;
    uint32_t crc;
    uint64_t start = r->pos, next = r->pos + CAP_REC_OVERHEAD + plen;
    struct pctx c;
    int rc;

    x = et_exchange_new();
    if (x == NULL)
        goto nomem;
    /* Payload and footer go straight into the arena the exchange keeps. */
    body = et_arena_alloc(x->arena, (size_t)plen + CAP_REC_FTR_LEN);
    if (body == NULL)
        goto nomem;
    rc = read_at(r, start + CAP_REC_HDR_LEN, body, (size_t)plen + CAP_REC_FTR_LEN, e);
    if (rc != 0) {
        et_exchange_free(x);
        return rc;
    }
    crc = et__cap_crc(0, h, CAP_REC_HDR_LEN);
    crc = et__cap_crc(crc, body, (size_t)plen + 4);
    if (cap_get32(body + plen) != plen || cap_get32(body + plen + 4) != crc) {
        et_exchange_free(x);
        return skip_damaged(r, "damaged", "checksum mismatch", e);
    }
    if (type != CAP_REC_EXCHANGE) {
        et_exchange_free(x);
        r->pos = next;
        return 2;
    }
    memset(&c, 0, sizeof(c));
    c.x = x;
    c.base = body;
    c.base_off = start + CAP_REC_HDR_LEN;
    c.e = e;
    c.src_kind = ET_SRC_UNKNOWN;
    rc = parse_exchange(&c, body, plen);
    if (rc == ET_ENOMEM) {
        et_exchange_free(x);
        return rc; /* pos unchanged: the caller may try again */
    }
    r->pos = next;
    r->nexch++;
    if (rc == 0)
        rc = finish_exchange(r, &c);
    if (rc != 0) {
        et_exchange_free(x);
        return rc;
    }
    *out = x;
    return 1;
nomem:
    et_exchange_free(x);
    et_error_set(e, ET_ENOMEM, "out of memory reading a capture record");
    return ET_ENOMEM;
}

static int rd_next(void *impl, struct et_exchange **out, struct et_error *e)
{
    struct reader *r = impl;
    uint8_t h[CAP_REC_HDR_LEN];
    unsigned type;
    uint32_t plen;
    int rc;

    *out = NULL;
    for (;;) {
        uint64_t need;

        if (r->pos + CAP_REC_HDR_LEN > r->size && (rc = refresh_size(r, e)) != 0)
            return rc;
        if (r->pos >= r->size)
            return 0;
        if (r->pos + CAP_REC_HDR_LEN > r->size)
            return torn_tail(r, e);
        if ((rc = read_at(r, r->pos, h, sizeof(h), e)) != 0)
            return rc;
        if (!et__cap_check_rec_header(h, r->nonce, &type, &plen))
            return skip_damaged(r, "damaged", "no intact record header", e);
        if ((uint64_t)plen + CAP_REC_OVERHEAD > r->max_record) {
            char why[96];
            snprintf(why, sizeof(why), "it announces %" PRIu32 " bytes, over the %zu limit",
                     plen, r->max_record);
            return skip_damaged(r, "oversized", why, e);
        }
        need = r->pos + CAP_REC_OVERHEAD + plen;
        if (need > r->size && (rc = refresh_size(r, e)) != 0)
            return rc;
        if (need > r->size)
            return skip_damaged(r, "torn", "incomplete", e);
        rc = take_record(r, h, type, plen, out, e);
        if (rc != 2)
            return rc;
    }
}

static void rd_close(void *impl)
{
    struct reader *r = impl;
    if (r == NULL)
        return;
    if (r->fd >= 0)
        close(r->fd);
    et_free(r->scan);
    et_free(r->win);
    et_free(r->name);
    et_free(r);
}

static const struct et_source_ops capfile_ops = {
    .format = "capture",
    .next = rd_next,
    .close = rd_close,
};

/* Shared by the file and memory openers: r has fd or mem and size set. */
static int rd_start(struct reader *r, const struct et_capfile_read_opts *o, const char *name,
                    struct et_source **out, struct et_error *e)
{
    uint8_t hdr[CAP_FILE_HDR_MAX];
    size_t n, hdr_len;
    char msg[160];
    int rc;

    r->max_record = o && o->max_record ? o->max_record : ET_CAPFILE_MAX_RECORD;
    if (r->max_record < CAP_REC_OVERHEAD)
        r->max_record = CAP_REC_OVERHEAD;
    r->follow = o ? o->follow : 0;
    r->name = et_strdup(name ? name : "-");
    r->scan = et_malloc(SCAN_CHUNK);
    if (r->fd >= 0 && !r->follow)
        r->win = et_malloc(WIN_SIZE);
    if (r->name == NULL || r->scan == NULL || (r->fd >= 0 && !r->follow && r->win == NULL)) {
        et_error_set(e, ET_ENOMEM, "out of memory opening capture %s", name ? name : "-");
        return ET_ENOMEM;
    }
    n = (size_t)ET_MIN(r->size, (uint64_t)sizeof(hdr));
    if ((rc = read_at(r, 0, hdr, n, e)) != 0)
        return rc;
    if (n < CAP_FILE_HDR_LEN && memcmp(hdr, CAP_MAGIC, ET_MIN(n, (size_t)CAP_MAGIC_LEN)) == 0) {
        et_error_set_at(e, ET_ETRUNC, n, "%s: capture file header incomplete (%zu bytes)",
                        r->name, n);
        return ET_ETRUNC;
    }
    rc = et__cap_check_file_header(hdr, n, r->nonce, &hdr_len, msg, sizeof(msg));
    if (rc != 0) {
        et_error_set_at(e, rc, 0, "%s: %s", r->name, msg);
        return rc;
    }
    memcpy(r->pat, CAP_SYNC, CAP_SYNC_LEN);
    memcpy(r->pat + CAP_SYNC_LEN, r->nonce, CAP_NONCE_LEN);
    r->pos = hdr_len;
    *out = et_source_new(&capfile_ops, r, r->name);
    if (*out == NULL) {
        et_error_set(e, ET_ENOMEM, "out of memory opening capture %s", r->name);
        return ET_ENOMEM;
    }
    return 0;
}

int et_capfile_open_ex(const char *path, const struct et_capfile_read_opts *o,
                       struct et_source **out, struct et_error *e)
{
    struct reader *r;
    struct stat st;
    int rc;

    *out = NULL;
    r = et_calloc(1, sizeof(*r));
    if (r == NULL) {
        et_error_set(e, ET_ENOMEM, "out of memory opening capture %s", path);
        return ET_ENOMEM;
    }
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        et_error_set(e, ET_EIO, "cannot open capture file %s: %s", path, strerror(errno));
        rc = ET_EIO;
        goto fail;
    }
    if (fstat(r->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        et_error_set(e, ET_EIO, "capture file %s is not a regular file", path);
        rc = ET_EIO;
        goto fail;
    }
    r->size = (uint64_t)st.st_size;
    rc = rd_start(r, o, path, out, e);
    if (rc != 0)
        goto fail;
    return 0;
fail:
    rd_close(r);
    return rc;
}

int et_capfile_open(const char *path, struct et_source **out, struct et_error *e)
{
    return et_capfile_open_ex(path, NULL, out, e);
}

int et_capfile_open_mem(const uint8_t *p, size_t n, const char *name,
                        const struct et_capfile_read_opts *o, struct et_source **out,
                        struct et_error *e)
{
    struct reader *r;
    int rc;

    *out = NULL;
    r = et_calloc(1, sizeof(*r));
    if (r == NULL) {
        et_error_set(e, ET_ENOMEM, "out of memory opening capture %s", name ? name : "-");
        return ET_ENOMEM;
    }
    r->fd = -1;
    r->mem = p;
    r->size = n;
    rc = rd_start(r, o, name, out, e);
    if (rc != 0)
        rd_close(r);
    return rc;
}
