/* Capture file pieces shared by the writer and the reader: CRC, header checks, sniffing. */
#include "eastrace/capfile.h"
#include "capfile_int.h"

#include <stdio.h>
#include <zlib.h>

uint32_t et__cap_crc(uint32_t crc, const void *p, size_t n)
{
    const Bytef *b = p;
    /* zlib takes uInt lengths: feed huge spans in pieces. */
    while (n > 0) {
        uInt step = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32((uLong)crc, b, step);
        b += step;
        n -= step;
    }
    return crc;
}

int et_capfile_detect(const uint8_t *p, size_t n)
{
    return p != NULL && n >= CAP_MAGIC_LEN && memcmp(p, CAP_MAGIC, CAP_MAGIC_LEN) == 0;
}

int et__cap_check_file_header(const uint8_t *p, size_t n, uint8_t nonce[CAP_NONCE_LEN],
                              size_t *hdr_len, char *msg, size_t msglen)
{
    size_t hl;

    if (n < CAP_FILE_HDR_LEN || memcmp(p, CAP_MAGIC, CAP_MAGIC_LEN) != 0) {
        snprintf(msg, msglen, "not an eastrace capture file (no capture file header)");
        return ET_EPARSE;
    }
    if (p[10] != CAP_VERSION_MAJOR) {
        snprintf(msg, msglen, "capture format version %u.%u is not supported (this is %u.%u)",
                 p[10], p[11], CAP_VERSION_MAJOR, CAP_VERSION_MINOR);
        return ET_EUNSUPPORTED;
    }
    hl = cap_get16(p + 12);
    if (hl < CAP_FILE_HDR_LEN || hl > CAP_FILE_HDR_MAX || hl > n) {
        snprintf(msg, msglen, "capture file header length %zu is invalid", hl);
        return ET_EPARSE;
    }
    if (et__cap_crc(0, p, hl - 4) != cap_get32(p + hl - 4)) {
        snprintf(msg, msglen, "capture file header is damaged (checksum mismatch)");
        return ET_EPARSE;
    }
    memcpy(nonce, p + 16, CAP_NONCE_LEN);
    *hdr_len = hl;
    return 0;
}

int et__cap_check_rec_header(const uint8_t *p, const uint8_t nonce[CAP_NONCE_LEN],
                             unsigned *type, uint32_t *len)
{
    if (memcmp(p, CAP_SYNC, CAP_SYNC_LEN) != 0 ||
        memcmp(p + CAP_SYNC_LEN, nonce, CAP_NONCE_LEN) != 0)
        return 0;
    if (et__cap_crc(0, p, 20) != cap_get32(p + 20))
        return 0;
    *type = p[12];
    *len = cap_get32(p + 16);
    return 1;
}
