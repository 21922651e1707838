/*
 * libFuzzer target for the capture file reader (capture/capfile_read.c).
 *
 * The first input byte picks a mode, because random bytes almost never pass the record CRCs:
 *   even: the rest is a capture file as found on disk (header checks, resync, torn tails),
 *         read from memory, or with bit 1 set from a memfd through the file reader (pread,
 *         read-ahead window);
 *   odd:  the rest is a list of record payloads (u16 length + type byte + bytes) that the
 *         harness wraps in a valid header and valid records, so the TLV decoder is reached;
 *         bit 1 asks for the last record to be cut short, bit 2 for a flipped byte.
 * Every exchange that comes out is walked, so a dangling pointer shows under ASan, and the
 * reader must reach the end in a bounded number of calls.
 */
#include "eastrace/capfile.h"
#include "../../capture/capfile_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t touch_str(const char *s)
{
    return s ? strlen(s) : 0;
}

static size_t touch_headers(const struct et_headers *h)
{
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++)
        n += strlen(h->v[i].name) + strlen(h->v[i].value);
    return n;
}

static size_t touch_body(const struct et_body *b)
{
    size_t n = 0;
    if (b->len > 0 && b->data == NULL)
        abort();
    if (b->wire_len < b->len)
        abort();
    for (size_t i = 0; i < b->len; i++)
        n += b->data[i];
    return n;
}

static size_t touch(const struct et_exchange *x)
{
    size_t n = touch_str(x->source_name) + touch_str(x->client_addr) +
               touch_str(x->server_addr) + touch_str(x->scheme) + touch_str(x->host);
    n += touch_str(x->tls.sni) + touch_str(x->tls.client_version) +
         touch_str(x->tls.upstream_version) + touch_str(x->tls.cipher) + touch_str(x->tls.alpn) +
         touch_str(x->tls.upstream_subject) + touch_str(x->tls.upstream_issuer) +
         touch_str(x->tls.upstream_not_before) + touch_str(x->tls.upstream_not_after) +
         touch_str(x->tls.upstream_sha256) + touch_str(x->tls.verify_error);
    n += touch_str(x->req.method) + touch_str(x->req.target) + touch_headers(&x->req.headers);
    n += touch_body(&x->req.body) + touch_str(x->resp.reason) +
         touch_headers(&x->resp.headers) + touch_body(&x->resp.body);
    n += touch_str(x->err.message) + touch_headers(&x->meta);
    n += et_strerror(x->err.code)[0] + et_stage_name(x->err.stage)[0];
    return n;
}

static void read_all(const uint8_t *p, size_t n, int as_file)
{
    struct et_capfile_read_opts o = {.follow = 0, .max_record = (size_t)1 << 20};
    struct et_source *s = NULL;
    struct et_error e;
    volatile size_t sink = 0;

    et_error_clear(&e);
    if (as_file) {
        char path[64];
        int fd = memfd_create("fuzz_capfile", MFD_CLOEXEC), rc;
        if (fd < 0)
            return;
        if (n > 0 && write(fd, p, n) != (ssize_t)n) {
            close(fd);
            return;
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        rc = et_capfile_open_ex(path, &o, &s, &e);
        close(fd); /* the reader holds its own descriptor */
        if (rc != 0)
            return;
    } else if (et_capfile_open_mem(p, n, "fuzz", &o, &s, &e) != 0) {
        return;
    }
    for (size_t calls = 0;; calls++) {
        struct et_exchange *x = NULL;
        int rc;
        if (calls > n + 16)
            abort(); /* every call must make progress */
        et_error_clear(&e);
        rc = et_source_next(s, &x, &e);
        if (rc == 0)
            break;
        if (rc == 1) {
            sink += touch(x);
            et_exchange_free(x);
            continue;
        }
        if (rc != ET_EPARSE || e.code != ET_EPARSE || !e.has_offset || e.offset > n)
            abort(); /* memory input: only damage reports, each with a valid offset */
    }
    et_source_close(s);
    (void)sink;
}

/* Wraps payloads from the input into a well-formed capture (fixed nonce). */
static void read_wrapped(const uint8_t *d, size_t size, unsigned mode)
{
    static const uint8_t nonce[CAP_NONCE_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
    size_t cap = CAP_FILE_HDR_LEN + size * 2 + 64, len = 0, last = 0;
    uint8_t *buf = malloc(cap);

    if (buf == NULL)
        return;
    memset(buf, 0, CAP_FILE_HDR_LEN);
    memcpy(buf, CAP_MAGIC, CAP_MAGIC_LEN);
    buf[10] = CAP_VERSION_MAJOR;
    buf[11] = CAP_VERSION_MINOR;
    cap_put16(buf + 12, CAP_FILE_HDR_LEN);
    memcpy(buf + 16, nonce, CAP_NONCE_LEN);
    cap_put32(buf + 36, et__cap_crc(0, buf, 36));
    len = CAP_FILE_HDR_LEN;
    while (size >= 3) {
        size_t n = cap_get16(d);
        unsigned type = d[2] % 4 == 0 ? d[2] : CAP_REC_EXCHANGE;
        uint8_t *r = buf + len;
        d += 3;
        size -= 3;
        if (n > size)
            n = size;
        if (len + CAP_REC_OVERHEAD + n > cap)
            break;
        memcpy(r, CAP_SYNC, CAP_SYNC_LEN);
        memcpy(r + 4, nonce, CAP_NONCE_LEN);
        r[12] = (uint8_t)type;
        r[13] = 0;
        cap_put16(r + 14, 0);
        cap_put32(r + 16, (uint32_t)n);
        cap_put32(r + 20, et__cap_crc(0, r, 20));
        memcpy(r + CAP_REC_HDR_LEN, d, n);
        cap_put32(r + CAP_REC_HDR_LEN + n, (uint32_t)n);
        cap_put32(r + CAP_REC_HDR_LEN + n + 4, et__cap_crc(0, r, CAP_REC_HDR_LEN + n + 4));
        last = len;
        len += CAP_REC_OVERHEAD + n;
        d += n;
        size -= n;
    }
    if ((mode & 2) && len > last + 1)
        len = last + (len - last) / 2;
    if ((mode & 4) && len > CAP_FILE_HDR_LEN)
        buf[CAP_FILE_HDR_LEN + (mode >> 3) % (len - CAP_FILE_HDR_LEN)] ^= 0x20;
    read_all(buf, len, 0);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        read_wrapped(data + 1, size - 1, data[0]);
    else
        read_all(data + 1, size - 1, (data[0] & 2) != 0);
    return 0;
}
