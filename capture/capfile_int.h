/*
 * Private to the capture file code (capfile*.c): byte layout constants, little-endian helpers
 * and the TLV tag numbers. docs/capture-format.md is the reference; keep them in step.
 *
 * File header (40 bytes):
 *
 *   0        10     11     12         14       16          24          32        36       40
 *   +--------+------+------+----------+--------+-----------+-----------+---------+--------+
 *   | magic  | vmaj | vmin | hdr_len  | flags  | nonce     | created   | reserved| crc32  |
 *   +--------+------+------+----------+--------+-----------+-----------+---------+--------+
 *
 * Record (32 bytes + payload):
 *
 *   0      4         12     13      14     16        20         24          24+N   28+N   32+N
 *   +------+---------+------+-------+------+---------+----------+-----------+------+------+
 *   | sync | nonce   | type | flags | rsvd | len=N   | hdr_crc  | payload   | N    | crc  |
 *   +------+---------+------+-------+------+---------+----------+-----------+------+------+
 *
 * hdr_crc covers bytes 0..19; crc covers bytes 0..27+N (header, payload, repeated length).
 * Both, and the file header's, are CRC-32C.
 */
#ifndef ET_CAPTURE_CAPFILE_INT_H
#define ET_CAPTURE_CAPFILE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CAP_MAGIC "\x89" "ETCAP\r\n\x1a\n"
#define CAP_MAGIC_LEN 10
#define CAP_VERSION_MAJOR 1
#define CAP_VERSION_MINOR 0
#define CAP_FILE_HDR_LEN 40
#define CAP_FILE_HDR_MAX 4096 /* a later minor version may grow the header up to this */
#define CAP_NONCE_LEN 8

#define CAP_SYNC "\x1e" "ETR"
#define CAP_SYNC_LEN 4
#define CAP_REC_HDR_LEN 24
#define CAP_REC_FTR_LEN 8
#define CAP_REC_OVERHEAD (CAP_REC_HDR_LEN + CAP_REC_FTR_LEN)

/* Record types. Readers skip types they do not know. */
enum cap_rec_type {
    CAP_REC_OPEN = 1,     /* a writer opened the file (created or reopened it) */
    CAP_REC_EXCHANGE = 2  /* one exchange */
};

/* TLV: u16 tag, u32 length, value. Tags are per container; unknown tags are skipped. */
#define CAP_TLV_HDR 6

/* Exchange container (the payload of a CAP_REC_EXCHANGE record). */
enum {
    TX_ID = 0x01,          /* u64 */
    TX_SOURCE = 0x02,      /* u32 enum et_source */
    TX_SOURCE_NAME = 0x03, /* string */
    TX_FLAGS = 0x04,       /* u32: bit0 has_request, bit1 has_response, bit2 reverse */
    TX_T_CONNECT = 0x10,   /* i64 microseconds, and the four below */
    TX_T_REQ_BEGIN = 0x11,
    TX_T_REQ_END = 0x12,
    TX_T_RESP_BEGIN = 0x13,
    TX_T_RESP_END = 0x14,
    TX_CLIENT_ADDR = 0x20, /* strings */
    TX_SERVER_ADDR = 0x21,
    TX_SCHEME = 0x22,
    TX_HOST = 0x23,
    TX_PORT = 0x24,        /* u32 */
    TX_VIA_ADDR = 0x25,    /* string */
    TX_TLS = 0x30,         /* container, TT_* */
    TX_REQUEST = 0x40,     /* container, TM_* */
    TX_RESPONSE = 0x50,    /* container, TM_* */
    TX_ERROR = 0x60,       /* container, TE_* */
    TX_META = 0x70         /* header pair, repeated */
};

/* TLS container. */
enum {
    TT_FLAGS = 0x01, /* u32: bit0 present, bit1 intercepted, bit2 insecure */
    TT_SNI = 0x02,   /* strings from here on */
    TT_CLIENT_VERSION = 0x03,
    TT_UPSTREAM_VERSION = 0x04,
    TT_CIPHER = 0x05,
    TT_ALPN = 0x06,
    TT_SUBJECT = 0x07,
    TT_ISSUER = 0x08,
    TT_NOT_BEFORE = 0x09,
    TT_NOT_AFTER = 0x0a,
    TT_SHA256 = 0x0b,
    TT_VERIFY_ERROR = 0x0c
};

/* Request and response containers share tags. */
enum {
    TM_METHOD = 0x01,  /* request: string */
    TM_TARGET = 0x02,  /* request: string */
    TM_VERSION = 0x03, /* 2 bytes: major, minor */
    TM_HEADER = 0x04,  /* header pair, repeated, in order */
    TM_BODY = 0x05,    /* container, TB_* */
    TM_STATUS = 0x06,  /* response: i32 */
    TM_REASON = 0x07   /* response: string */
};

/* Body container. */
enum {
    TB_FLAGS = 0x01,    /* u32: bit0 truncated, bit1 absent */
    TB_WIRE_LEN = 0x02, /* u64 */
    TB_DATA = 0x03      /* bytes */
};

/* Error container. */
enum {
    TE_CODE = 0x01,   /* i32 ET_E* */
    TE_STAGE = 0x02,  /* u32 enum et_stage */
    TE_MESSAGE = 0x03 /* string */
};

/* Writer-open record payload. */
enum {
    TO_SOFTWARE = 0x01,   /* string "eastrace 0.1.0" */
    TO_TIME = 0x02,       /* i64 microseconds */
    TO_FLAGS = 0x03,      /* u32: bit0 created the file, bit1 the previous tail was torn */
    TO_OFFSET = 0x04      /* u64: file size when the writer opened it */
};

/* A header pair value: u32 name length, name bytes, value bytes (the rest). */

static inline void cap_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void cap_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void cap_put64(uint8_t *p, uint64_t v)
{
    cap_put32(p, (uint32_t)v);
    cap_put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t cap_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t cap_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline uint64_t cap_get64(const uint8_t *p)
{
    return (uint64_t)cap_get32(p) | ((uint64_t)cap_get32(p + 4) << 32);
}

/* CRC-32C (Castagnoli) continued from crc over n bytes; start from 0. et__cap_crc picks the
 * CPU instruction when there is one; et__cap_crc_sw is the portable path (tests compare). */
uint32_t et__cap_crc(uint32_t crc, const void *p, size_t n);
uint32_t et__cap_crc_sw(uint32_t crc, const void *p, size_t n);

/* Checks a file header of n >= CAP_FILE_HDR_LEN bytes (only the first hdr_len are used).
 * Returns 0 and fills nonce and *hdr_len, ET_EPARSE when it is not a capture file header, or
 * ET_EUNSUPPORTED for a newer major version. msg gets a reason. */
int et__cap_check_file_header(const uint8_t *p, size_t n, uint8_t nonce[CAP_NONCE_LEN],
                              size_t *hdr_len, char *msg, size_t msglen);

/* Checks a record header (CAP_REC_HDR_LEN bytes) against the file's nonce: sync, nonce and
 * header CRC. Returns 1 when intact and sets *type and *len. */
int et__cap_check_rec_header(const uint8_t *p, const uint8_t nonce[CAP_NONCE_LEN],
                             unsigned *type, uint32_t *len);

#endif
