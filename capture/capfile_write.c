/*
 * Capture file writer. One record per exchange, assembled as an iovec list: small fields are
 * encoded into one reusable buffer, bodies are referenced where they lie, and the whole record
 * leaves in one writev() on an O_APPEND descriptor, so a kill -9 leaves whole records or one
 * torn tail. An exclusive flock() keeps a second writer off the file.
 *
 *   enc.b:  [rec hdr | tlv tlv ... body-tlv-hdr] [tlv ... body-tlv-hdr] [tlv ... | footer]
 *   iov:     seg 0 (owned)         body data      seg (owned)  body data  seg (owned)
 */
#include "eastrace/capfile.h"
#include "capfile_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define ENC_MAX_SEGS 16
/* Page cache kept behind the writer by et_capfile_writer_drop_behind(): writeback is started
 * per window, and a window is dropped one and two windows later. */
#define BEHIND_WINDOW ((uint64_t)4 << 20)
#define ENC_OWNED_MAX ((size_t)64 << 20) /* all non-body fields of one exchange */

/* One piece of a record: either bytes in enc.b (ext == NULL) or borrowed body bytes. */
struct seg {
    const uint8_t *ext;
    size_t off; /* in enc.b when ext == NULL */
    size_t len;
};

struct enc {
    struct et_buf b;
    struct seg seg[ENC_MAX_SEGS];
    size_t nseg;
    size_t run;   /* start in b of the owned bytes not yet closed into a segment */
    size_t total; /* record bytes so far (owned + borrowed) */
    int err;
};

struct et_capfile_writer {
    int fd;
    uint8_t nonce[CAP_NONCE_LEN];
    struct et_capfile_opts o;
    struct enc enc;
    uint64_t end; /* file size after our last complete record: where a failed one is cut */
    int end_known;
    struct et_capfile_stats st;
    char *path;
    /* end, published for et_capfile_writer_drop_behind() on another thread */
    _Atomic uint64_t shared_end;
    /* drop-behind state, touched only by et_capfile_writer_drop_behind(): the ends of the
     * last three windows handed to writeback, oldest first */
    uint64_t behind[3];
};

void et_capfile_opts_init(struct et_capfile_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->body_cap = ET_CAPFILE_DEFAULT_BODY_CAP;
    o->fsync = ET_CAPFILE_FSYNC_NONE;
}

/* --- encoding ---------------------------------------------------------------------------- */

static void enc_reset(struct enc *en)
{
    et_buf_reset(&en->b);
    en->nseg = 0;
    en->run = 0;
    en->total = 0;
    en->err = 0;
}

static uint8_t *enc_space(struct enc *en, size_t n)
{
    if (en->err)
        return NULL;
    if (et_buf_reserve(&en->b, n) != 0) {
        en->err = en->b.len + n > ENC_OWNED_MAX ? ET_ETOOBIG : ET_ENOMEM;
        return NULL;
    }
    en->b.len += n;
    en->total += n;
    return en->b.data + en->b.len - n;
}

static void enc_bytes(struct enc *en, const void *p, size_t n)
{
    uint8_t *d = enc_space(en, n);
    if (d != NULL && n)
        memcpy(d, p, n);
}

/* Closes the owned run into a segment and adds borrowed bytes as the next one. */
static void enc_borrow(struct enc *en, const uint8_t *p, size_t n)
{
    if (en->err || n == 0)
        return;
    if (en->nseg + 2 >= ENC_MAX_SEGS) {
        /* Cannot happen with two bodies per exchange; copy rather than fail. */
        enc_bytes(en, p, n);
        return;
    }
    if (en->b.len > en->run) {
        en->seg[en->nseg++] = (struct seg){NULL, en->run, en->b.len - en->run};
        en->run = en->b.len;
    }
    en->seg[en->nseg++] = (struct seg){p, 0, n};
    en->total += n;
}

static void enc_finish(struct enc *en)
{
    if (!en->err && en->b.len > en->run) {
        en->seg[en->nseg++] = (struct seg){NULL, en->run, en->b.len - en->run};
        en->run = en->b.len;
    }
}

/* Starts a TLV whose length is patched by tlv_end(); returns the patch position. */
static size_t tlv_begin(struct enc *en, unsigned tag)
{
    uint8_t *d = enc_space(en, CAP_TLV_HDR);
    if (d == NULL)
        return 0;
    cap_put16(d, (uint16_t)tag);
    cap_put32(d + 2, 0);
    return en->b.len - CAP_TLV_HDR;
}

/* total_at_begin is en->total right after tlv_begin(). */
static void tlv_end(struct enc *en, size_t pos, size_t total_at_begin)
{
    size_t n = en->total - total_at_begin;
    if (en->err)
        return;
    if (n > UINT32_MAX) {
        en->err = ET_ETOOBIG;
        return;
    }
    cap_put32(en->b.data + pos + 2, (uint32_t)n);
}

static void tlv(struct enc *en, unsigned tag, const void *p, size_t n)
{
    uint8_t *d;
    if (n > UINT32_MAX) {
        en->err = ET_ETOOBIG;
        return;
    }
    d = enc_space(en, CAP_TLV_HDR + n);
    if (d == NULL)
        return;
    cap_put16(d, (uint16_t)tag);
    cap_put32(d + 2, (uint32_t)n);
    if (n)
        memcpy(d + CAP_TLV_HDR, p, n);
}

static void tlv_str(struct enc *en, unsigned tag, const char *s)
{
    if (s != NULL) /* absent means NULL; present and empty means "" */
        tlv(en, tag, s, strlen(s));
}

static void tlv_u32(struct enc *en, unsigned tag, uint32_t v)
{
    uint8_t d[4];
    cap_put32(d, v);
    tlv(en, tag, d, 4);
}

static void tlv_u64(struct enc *en, unsigned tag, uint64_t v)
{
    uint8_t d[8];
    cap_put64(d, v);
    tlv(en, tag, d, 8);
}

static void tlv_pair(struct enc *en, unsigned tag, const char *name, const char *value)
{
    size_t nl = name ? strlen(name) : 0, vl = value ? strlen(value) : 0;
    uint8_t *d;
    if (nl > UINT32_MAX - 4 - vl) {
        en->err = ET_ETOOBIG;
        return;
    }
    d = enc_space(en, CAP_TLV_HDR + 4 + nl + vl);
    if (d == NULL)
        return;
    cap_put16(d, (uint16_t)tag);
    cap_put32(d + 2, (uint32_t)(4 + nl + vl));
    cap_put32(d + 6, (uint32_t)nl);
    if (nl)
        memcpy(d + 10, name, nl);
    if (vl)
        memcpy(d + 10 + nl, value, vl);
}

static void enc_headers(struct enc *en, unsigned tag, const struct et_headers *h)
{
    for (size_t i = 0; i < h->n; i++)
        tlv_pair(en, tag, h->v[i].name, h->v[i].value);
}

static void enc_body(struct enc *en, const struct et_body *b, size_t cap, uint64_t *ntrunc)
{
    size_t keep = b->len, pos, t0;
    uint32_t flags = 0;
    uint64_t wire = b->wire_len > b->len ? b->wire_len : b->len;

    if (b->data == NULL)
        keep = 0;
    if (keep > cap) {
        keep = cap;
        (*ntrunc)++;
    }
    if (b->truncated || keep < b->len)
        flags |= 1;
    if (b->absent)
        flags |= 2;
    pos = tlv_begin(en, TM_BODY);
    t0 = en->total;
    tlv_u32(en, TB_FLAGS, flags);
    tlv_u64(en, TB_WIRE_LEN, wire);
    if (keep > 0) {
        uint8_t *d = enc_space(en, CAP_TLV_HDR);
        if (d != NULL) {
            cap_put16(d, TB_DATA);
            cap_put32(d + 2, (uint32_t)keep);
        }
        enc_borrow(en, b->data, keep);
    }
    tlv_end(en, pos, t0);
}

static void enc_version(struct enc *en, uint8_t major, uint8_t minor)
{
    uint8_t v[2] = {major, minor};
    tlv(en, TM_VERSION, v, 2);
}

static void enc_exchange(struct enc *en, const struct et_exchange *x, size_t cap,
                         uint64_t *ntrunc)
{
    size_t pos, t0;
    uint32_t flags = (x->has_request ? 1u : 0u) | (x->has_response ? 2u : 0u) |
                     (x->reverse ? 4u : 0u);

    tlv_u64(en, TX_ID, x->id);
    tlv_u32(en, TX_SOURCE, (uint32_t)x->source);
    tlv_str(en, TX_SOURCE_NAME, x->source_name);
    tlv_u32(en, TX_FLAGS, flags);
    tlv_u64(en, TX_T_CONNECT, (uint64_t)x->t.connect);
    tlv_u64(en, TX_T_REQ_BEGIN, (uint64_t)x->t.req_begin);
    tlv_u64(en, TX_T_REQ_END, (uint64_t)x->t.req_end);
    tlv_u64(en, TX_T_RESP_BEGIN, (uint64_t)x->t.resp_begin);
    tlv_u64(en, TX_T_RESP_END, (uint64_t)x->t.resp_end);
    tlv_str(en, TX_CLIENT_ADDR, x->client_addr);
    tlv_str(en, TX_SERVER_ADDR, x->server_addr);
    tlv_str(en, TX_SCHEME, x->scheme);
    tlv_str(en, TX_HOST, x->host);
    tlv_u32(en, TX_PORT, (uint32_t)x->port);
    tlv_str(en, TX_VIA_ADDR, x->via_addr);

    pos = tlv_begin(en, TX_TLS);
    t0 = en->total;
    tlv_u32(en, TT_FLAGS, (x->tls.present ? 1u : 0u) | (x->tls.intercepted ? 2u : 0u) |
                              (x->tls.insecure ? 4u : 0u));
    tlv_str(en, TT_SNI, x->tls.sni);
    tlv_str(en, TT_CLIENT_VERSION, x->tls.client_version);
    tlv_str(en, TT_UPSTREAM_VERSION, x->tls.upstream_version);
    tlv_str(en, TT_CIPHER, x->tls.cipher);
    tlv_str(en, TT_ALPN, x->tls.alpn);
    tlv_str(en, TT_SUBJECT, x->tls.upstream_subject);
    tlv_str(en, TT_ISSUER, x->tls.upstream_issuer);
    tlv_str(en, TT_NOT_BEFORE, x->tls.upstream_not_before);
    tlv_str(en, TT_NOT_AFTER, x->tls.upstream_not_after);
    tlv_str(en, TT_SHA256, x->tls.upstream_sha256);
    tlv_str(en, TT_VERIFY_ERROR, x->tls.verify_error);
    tlv_end(en, pos, t0);

    /* Both messages are stored even when has_* is off: a half-built message still says what
     * was seen before the failure. */
    pos = tlv_begin(en, TX_REQUEST);
    t0 = en->total;
    tlv_str(en, TM_METHOD, x->req.method);
    tlv_str(en, TM_TARGET, x->req.target);
    enc_version(en, x->req.http_major, x->req.http_minor);
    enc_headers(en, TM_HEADER, &x->req.headers);
    enc_body(en, &x->req.body, cap, ntrunc);
    tlv_end(en, pos, t0);

    pos = tlv_begin(en, TX_RESPONSE);
    t0 = en->total;
    tlv_u32(en, TM_STATUS, (uint32_t)x->resp.status);
    tlv_str(en, TM_REASON, x->resp.reason);
    enc_version(en, x->resp.http_major, x->resp.http_minor);
    enc_headers(en, TM_HEADER, &x->resp.headers);
    enc_body(en, &x->resp.body, cap, ntrunc);
    tlv_end(en, pos, t0);

    if (x->err.code != 0 || x->err.stage != ET_STAGE_NONE || x->err.message != NULL) {
        pos = tlv_begin(en, TX_ERROR);
        t0 = en->total;
        tlv_u32(en, TE_CODE, (uint32_t)x->err.code);
        tlv_u32(en, TE_STAGE, (uint32_t)x->err.stage);
        tlv_str(en, TE_MESSAGE, x->err.message);
        tlv_end(en, pos, t0);
    }
    enc_headers(en, TX_META, &x->meta);
}

/* Lays out header and footer around an encoded payload (which starts at b offset
 * CAP_REC_HDR_LEN) and computes both checksums. */
static int enc_seal(struct enc *en, const uint8_t nonce[CAP_NONCE_LEN], unsigned type)
{
    size_t plen = en->total - CAP_REC_HDR_LEN;
    uint8_t *h, *f;
    uint32_t crc = 0;

    if (!en->err && plen > ET_CAPFILE_MAX_RECORD - CAP_REC_OVERHEAD)
        en->err = ET_ETOOBIG;
    f = enc_space(en, CAP_REC_FTR_LEN);
    if (f == NULL)
        return en->err;
    enc_finish(en);
    h = en->b.data;
    memcpy(h, CAP_SYNC, CAP_SYNC_LEN);
    memcpy(h + 4, nonce, CAP_NONCE_LEN);
    h[12] = (uint8_t)type;
    h[13] = 0;
    cap_put16(h + 14, 0);
    cap_put32(h + 16, (uint32_t)plen);
    cap_put32(h + 20, et__cap_crc(0, h, 20));
    f = en->b.data + en->b.len - CAP_REC_FTR_LEN;
    cap_put32(f, (uint32_t)plen);
    for (size_t i = 0; i < en->nseg; i++) {
        const struct seg *s = &en->seg[i];
        const uint8_t *p = s->ext ? s->ext : en->b.data + s->off;
        size_t n = s->len;
        if (i == en->nseg - 1)
            n -= 4; /* the CRC does not cover itself */
        crc = et__cap_crc(crc, p, n);
    }
    cap_put32(f + 4, crc);
    return 0;
}

/* --- file I/O ---------------------------------------------------------------------------- */

static int set_errno(struct et_error *e, int code, int err, const char *what, const char *path)
{
    et_error_set(e, code, "%s %s: %s", what, path, strerror(err));
    return code;
}

/* Writes the iovecs completely, continuing after short writes. Returns 0 or an errno. */
static int write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t r = writev(fd, iov, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (r == 0)
            return EIO;
        while (n > 0 && (size_t)r >= iov->iov_len) {
            r -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + r;
            iov->iov_len -= (size_t)r;
        }
    }
    return 0;
}

/* Sends the sealed record in w->enc. On failure cuts the partial record off again. */
static int emit(struct et_capfile_writer *w, struct et_error *e)
{
    struct iovec iov[ENC_MAX_SEGS];
    struct enc *en = &w->enc;
    int err;

    for (size_t i = 0; i < en->nseg; i++) {
        const struct seg *s = &en->seg[i];
        /* iovec is not const-correct; writev only reads. */
        iov[i].iov_base = (void *)(uintptr_t)(s->ext ? s->ext : en->b.data + s->off);
        iov[i].iov_len = s->len;
    }
    err = write_all(w->fd, iov, (int)en->nseg);
    if (err == 0 && w->o.fsync == ET_CAPFILE_FSYNC_EVERY && fdatasync(w->fd) != 0)
        err = errno;
    if (err != 0) {
        /* We hold the only write lock, so the bytes past `end` are our partial record. If
         * cutting fails the reader still skips them as a torn record. */
        if (!w->end_known || ftruncate(w->fd, (off_t)w->end) != 0)
            w->end_known = 0;
        return set_errno(e, ET_EIO, err, "cannot write capture file", w->path);
    }
    w->end += en->total;
    w->st.bytes += en->total;
    if (!w->end_known) {
        /* An earlier failed record could not be cut off; learn where the file ends now. */
        struct stat st;
        if (fstat(w->fd, &st) == 0) {
            w->end = (uint64_t)st.st_size;
            w->end_known = 1;
        }
    }
    atomic_store_explicit(&w->shared_end, w->end, memory_order_release);
    return 0;
}

static void fill_nonce(uint8_t nonce[CAP_NONCE_LEN])
{
    ssize_t r = getrandom(nonce, CAP_NONCE_LEN, GRND_NONBLOCK);
    if (r != CAP_NONCE_LEN) {
        /* No entropy yet (early boot): the nonce only has to differ from body bytes, so the
         * clock and pid do. */
        uint64_t v = (uint64_t)et_now_us() ^ ((uint64_t)getpid() << 40) ^ (uint64_t)clock();
        cap_put64(nonce, v);
    }
}

static int write_file_header(struct et_capfile_writer *w, struct et_error *e)
{
    uint8_t h[CAP_FILE_HDR_LEN];
    ssize_t r;

    memset(h, 0, sizeof(h));
    memcpy(h, CAP_MAGIC, CAP_MAGIC_LEN);
    h[10] = CAP_VERSION_MAJOR;
    h[11] = CAP_VERSION_MINOR;
    cap_put16(h + 12, CAP_FILE_HDR_LEN);
    cap_put16(h + 14, 0);
    fill_nonce(w->nonce);
    memcpy(h + 16, w->nonce, CAP_NONCE_LEN);
    cap_put64(h + 24, (uint64_t)et_now_us());
    cap_put32(h + 36, et__cap_crc(0, h, 36));
    do
        r = write(w->fd, h, sizeof(h));
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof(h)) {
        int err = r < 0 ? errno : EIO;
        if (ftruncate(w->fd, 0) != 0) {
            /* The reader treats a short header as "not a capture file" anyway. */
        }
        return set_errno(e, ET_EIO, err, "cannot write capture file", w->path);
    }
    w->end = sizeof(h);
    w->st.bytes += sizeof(h);
    return 0;
}

static int pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? errno : EIO;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/*
 * Whether the file ends on an intact record (or right after the header): reads the footer's
 * length, finds that record's header and checks both CRCs. Reads at most one record.
 */
static int tail_is_clean(struct et_capfile_writer *w, uint64_t size, uint64_t hdr_len)
{
    uint8_t ftr[CAP_REC_FTR_LEN], hdr[CAP_REC_HDR_LEN], chunk[65536];
    uint64_t start, off;
    uint32_t plen, len, crc;
    unsigned type;

    if (size == hdr_len)
        return 1;
    if (size < hdr_len + CAP_REC_OVERHEAD)
        return 0;
    if (pread_all(w->fd, ftr, sizeof(ftr), size - CAP_REC_FTR_LEN) != 0)
        return 0;
    plen = cap_get32(ftr);
    if ((uint64_t)plen + CAP_REC_OVERHEAD > size - hdr_len)
        return 0;
    start = size - CAP_REC_OVERHEAD - plen;
    if (pread_all(w->fd, hdr, sizeof(hdr), start) != 0 ||
        !et__cap_check_rec_header(hdr, w->nonce, &type, &len) || len != plen)
        return 0;
    crc = et__cap_crc(0, hdr, sizeof(hdr));
    for (off = start + CAP_REC_HDR_LEN; off < size - 4;) {
        size_t n = (size_t)ET_MIN((uint64_t)sizeof(chunk), size - 4 - off);
        if (pread_all(w->fd, chunk, n, off) != 0)
            return 0;
        crc = et__cap_crc(crc, chunk, n);
        off += n;
    }
    return crc == cap_get32(ftr + 4);
}

/* Checks an existing file: a capture header (or a header torn at creation, which holds no
 * data and is rewritten), and whether the tail is torn. */
static int adopt_existing(struct et_capfile_writer *w, uint64_t size, struct et_error *e)
{
    uint8_t h[CAP_FILE_HDR_MAX];
    size_t n = (size_t)ET_MIN(size, (uint64_t)sizeof(h)), hdr_len;
    char msg[200];
    int err, rc;

    if ((err = pread_all(w->fd, h, n, 0)) != 0)
        return set_errno(e, ET_EIO, err, "cannot read capture file", w->path);
    if (size < CAP_FILE_HDR_LEN && memcmp(h, CAP_MAGIC, ET_MIN(n, (size_t)CAP_MAGIC_LEN)) == 0) {
        /* A crash while the header itself was being written: nothing was recorded yet. */
        if (ftruncate(w->fd, 0) != 0)
            return set_errno(e, ET_EIO, errno, "cannot reset torn capture header of", w->path);
        w->st.created = 1;
        return write_file_header(w, e);
    }
    rc = et__cap_check_file_header(h, n, w->nonce, &hdr_len, msg, sizeof(msg));
    if (rc != 0) {
        et_error_set_at(e, rc, 0, "%s: %s; refusing to append to it", w->path, msg);
        return rc;
    }
    w->end = size;
    w->st.tail_was_torn = !tail_is_clean(w, size, hdr_len);
    return 0;
}

static int write_open_record(struct et_capfile_writer *w, uint64_t size_at_open,
                             struct et_error *e)
{
    struct enc *en = &w->enc;
    const char *sw = "eastrace " ET_VERSION;

    enc_reset(en);
    enc_space(en, CAP_REC_HDR_LEN);
    tlv_str(en, TO_SOFTWARE, sw);
    tlv_u64(en, TO_TIME, (uint64_t)et_now_us());
    tlv_u32(en, TO_FLAGS, (w->st.created ? 1u : 0u) | (w->st.tail_was_torn ? 2u : 0u));
    tlv_u64(en, TO_OFFSET, size_at_open);
    if (enc_seal(en, w->nonce, CAP_REC_OPEN) != 0) {
        et_error_set(e, ET_ENOMEM, "out of memory encoding a capture record");
        return ET_ENOMEM;
    }
    return emit(w, e);
}

int et_capfile_open_append(const char *path, const struct et_capfile_opts *o,
                           struct et_capfile_writer **out, struct et_error *e)
{
    struct et_capfile_writer *w;
    struct stat st;
    int rc;

    *out = NULL;
    w = et_calloc(1, sizeof(*w));
    if (w == NULL)
        goto nomem;
    w->fd = -1;
    if (o != NULL)
        w->o = *o;
    else
        et_capfile_opts_init(&w->o);
    if (w->o.body_cap == 0)
        w->o.body_cap = ET_CAPFILE_DEFAULT_BODY_CAP;
    if (w->o.body_cap > ET_CAPFILE_MAX_BODY_CAP) {
        et_error_set(e, ET_EINVAL, "capture body cap %zu is above the maximum %zu",
                     w->o.body_cap, ET_CAPFILE_MAX_BODY_CAP);
        rc = ET_EINVAL;
        goto fail;
    }
    et_buf_init(&w->enc.b, ENC_OWNED_MAX);
    w->path = et_strdup(path);
    if (w->path == NULL)
        goto nomem;

    w->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        rc = set_errno(e, ET_EIO, errno, "cannot open capture file", path);
        goto fail;
    }
    if (flock(w->fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        if (err == EWOULDBLOCK) {
            et_error_set(e, ET_EEXIST, "capture file %s is being written by another process",
                         path);
            rc = ET_EEXIST;
        } else {
            rc = set_errno(e, ET_EIO, err, "cannot lock capture file", path);
        }
        goto fail;
    }
    if (fstat(w->fd, &st) != 0) {
        rc = set_errno(e, ET_EIO, errno, "cannot stat capture file", path);
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        et_error_set(e, ET_EINVAL, "capture file %s is not a regular file", path);
        rc = ET_EINVAL;
        goto fail;
    }
    /* Captures hold credentials and mail: private to the user, also when an older file (or
     * a file made by hand) had looser modes. */
    if ((st.st_mode & 077) != 0 && fchmod(w->fd, st.st_mode & 0700) != 0) {
        et_error_set(e, ET_EPERM, "capture file %s has mode %04o and cannot be made private: %s",
                     path, (unsigned)(st.st_mode & 07777), strerror(errno));
        rc = ET_EPERM;
        goto fail;
    }
    w->end_known = 1;
    if (st.st_size == 0) {
        w->st.created = 1;
        rc = write_file_header(w, e);
    } else {
        rc = adopt_existing(w, (uint64_t)st.st_size, e);
    }
    if (rc != 0)
        goto fail;
    rc = write_open_record(w, (uint64_t)st.st_size, e);
    if (rc != 0)
        goto fail;
    w->behind[0] = w->behind[1] = w->behind[2] = w->end;
    *out = w;
    return 0;

nomem:
    et_error_set(e, ET_ENOMEM, "out of memory opening capture file %s", path);
    rc = ET_ENOMEM;
fail:
    if (w != NULL) {
        if (w->fd >= 0)
            close(w->fd);
        et_buf_free(&w->enc.b);
        et_free(w->path);
        et_free(w);
    }
    return rc;
}

int et_capfile_write(struct et_capfile_writer *w, const struct et_exchange *x,
                     struct et_error *e)
{
    struct enc *en = &w->enc;
    uint64_t ntrunc = 0;
    int rc;

    enc_reset(en);
    enc_space(en, CAP_REC_HDR_LEN);
    enc_exchange(en, x, w->o.body_cap, &ntrunc);
    rc = enc_seal(en, w->nonce, CAP_REC_EXCHANGE);
    if (rc != 0) {
        if (rc == ET_ETOOBIG)
            et_error_set(e, rc, "exchange %llu is too large for a capture record",
                         (unsigned long long)x->id);
        else
            et_error_set(e, rc, "out of memory encoding exchange %llu",
                         (unsigned long long)x->id);
        goto fail;
    }
    rc = emit(w, e);
    if (rc != 0)
        goto fail;
    w->st.records++;
    w->st.truncated += ntrunc;
    /* Do not keep a huge encode buffer around after one giant header block. */
    if (en->b.cap > ((size_t)1 << 20)) {
        et_buf_free(&en->b);
        et_buf_init(&en->b, ENC_OWNED_MAX);
    }
    return 0;
fail:
    w->st.failures++;
    w->st.last_error = rc;
    return rc;
}

/*
 * A capture grows by up to hundreds of MB/s, and what it wrote is never read again by the
 * writer: left to the kernel it fills the page cache with dirty pages until writeback, each
 * page a page the machine had free. Fresh pages are dear on a VM whose host takes free
 * memory back (virtio-balloon free page reporting): the first touch of each one faults on
 * the host, and at 100 KB exchanges that cost more CPU than the rest of the capture write
 * (docs/proxy.md, "Performance notes"). So writeback is started per 4 MiB window
 * (sync_file_range without waiting, WB_SYNC_NONE) and the windows one and two behind are
 * dropped (POSIX_FADV_DONTNEED drops clean pages only; one still being written stays cached
 * and is reclaimed as usual): the pages freed are the next ones the page cache takes, while
 * they are still warm. Nothing recorded changes, and the bytes are on their way to the disk
 * sooner than before.
 */
void et_capfile_writer_drop_behind(struct et_capfile_writer *w)
{
    uint64_t end = atomic_load_explicit(&w->shared_end, memory_order_acquire);
    uint64_t *b = w->behind;

    if (end < b[2] + BEHIND_WINDOW)
        return;
#ifdef SYNC_FILE_RANGE_WRITE
    (void)sync_file_range(w->fd, (off_t)b[2], (off_t)(end - b[2]), SYNC_FILE_RANGE_WRITE);
#endif
    if (b[2] > b[0]) /* a length of 0 would mean "to the end of the file" */
        (void)posix_fadvise(w->fd, (off_t)b[0], (off_t)(b[2] - b[0]), POSIX_FADV_DONTNEED);
    b[0] = b[1];
    b[1] = b[2];
    b[2] = end;
}

void et_capfile_writer_stats(const struct et_capfile_writer *w, struct et_capfile_stats *st)
{
    *st = w->st;
}

int et_capfile_close(struct et_capfile_writer *w, struct et_error *e)
{
    int rc = 0;

    if (w == NULL)
        return 0;
    if (w->o.fsync != ET_CAPFILE_FSYNC_NONE && fdatasync(w->fd) != 0)
        rc = set_errno(e, ET_EIO, errno, "cannot sync capture file", w->path);
    if (close(w->fd) != 0 && rc == 0)
        rc = set_errno(e, ET_EIO, errno, "cannot close capture file", w->path);
    w->fd = -1;
    et_buf_free(&w->enc.b);
    et_free(w->path);
    w->path = NULL;
    et_free(w);
    return rc;
}
