/*
 * eastrace common layer: error codes, error records, slices, growable buffers, checked
 * allocation and small encoding helpers. libc only; every other library builds on it.
 */
#ifndef ET_COMMON_COMMON_H
#define ET_COMMON_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ET_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ET_PRINTF(a, b)
#endif
/* A switch case that goes on into the next: gcc takes a comment, clang's
 * -Wimplicit-fallthrough only the attribute (both know it). */
#if defined(__GNUC__) && (defined(__clang__) || __GNUC__ >= 7)
#define ET_FALLTHROUGH __attribute__((fallthrough))
#else
#define ET_FALLTHROUGH ((void)0)
#endif

/*
 * The output budget of one body: the most one HTTP body may decode to (gzip, deflate), one
 * WBXML document may render to (XML or JSON, string-table references and nested documents
 * counted every time they occur) and one archive entry (.saz, HAR) may inflate to. 64 MiB
 * because no EAS body comes near it: Exchange refuses client bodies over 10 MiB
 * (maxRequestLength 10240 KB), fetches at most 10,240,000 bytes of data per request
 * (MaxDocumentDataSize) and its backend admits 30,000,000-byte requests at most; a 30 MB
 * attachment shown as base64 is 40 MB. docs/security.md gives the whole list of limits.
 */
#define ET_BODY_BUDGET ((size_t)64 << 20)

/* Error codes: 0 is success, every failure is negative. et_strerror() names them. */
enum et_err {
    ET_OK = 0,
    ET_EAGAIN = -1,        /* need more input; not an error */
    ET_ENOMEM = -2,        /* allocation failed */
    ET_EINVAL = -3,        /* invalid argument (a caller bug or bad option) */
    ET_EPARSE = -4,        /* malformed input */
    ET_ETRUNC = -5,        /* input ended before the structure did */
    ET_ETOOBIG = -6,       /* a size, count or depth cap was reached */
    ET_EUNSUPPORTED = -7,  /* well-formed but not supported */
    ET_EIO = -8,           /* read/write error; errno-based detail in the message */
    ET_ETLS = -9,          /* TLS library failure */
    ET_ENOTFOUND = -10,    /* no such item */
    ET_EDNS = -11,         /* name resolution failed */
    ET_ECONNREFUSED = -12, /* peer refused the connection */
    ET_ETIMEDOUT = -13,    /* a deadline passed */
    ET_ECONNRESET = -14,   /* peer reset or closed early */
    ET_ECERT = -15,        /* certificate verification failed */
    ET_EDENIED = -16,      /* refused by policy (not an open proxy, access rules) */
    ET_EEXIST = -17,       /* already exists */
    ET_EPERM = -18         /* file permissions are unsafe or insufficient */
};

/* Name of an error code ("malformed input", ...); never NULL. */
const char *et_strerror(int err);

/*
 * An error record: what failed, where, and for byte-oriented input at which offset. Parsers
 * keep their first error until reset (like llhttp_get_error_pos).
 */
struct et_error {
    int code;            /* ET_E*, 0 when no error is set */
    int has_offset;      /* offset is meaningful */
    uint64_t offset;     /* byte offset in the input where the problem was seen */
    char msg[256];       /* human readable reason, no trailing newline */
};

void et_error_clear(struct et_error *e);
/* Sets code and message (printf-style). Does not overwrite an error already set. */
void et_error_set(struct et_error *e, int code, const char *fmt, ...) ET_PRINTF(3, 4);
/* Same, with a byte offset. */
void et_error_set_at(struct et_error *e, int code, uint64_t offset, const char *fmt, ...)
    ET_PRINTF(4, 5);
/* Formats "MSG (at byte N)" or "MSG" into out; returns out. */
const char *et_error_format(const struct et_error *e, char *out, size_t outlen);

/* A borrowed view of bytes: never owns; valid until its owner changes. */
struct et_slice {
    const uint8_t *ptr;
    size_t len;
};

/*
 * Allocation. All library allocations go through these so tests can fail the Nth call.
 * et_alloc_fail_after(n): the nth allocation from now (1-based) and all after it fail;
 * n < 0 turns failing off.
 */
void *et_malloc(size_t n);
void *et_calloc(size_t count, size_t size);
void *et_realloc(void *p, size_t n);
void et_free(void *p);
char *et_strdup(const char *s);
char *et_strndup(const char *s, size_t n);
void et_alloc_fail_after(long n);

/*
 * Growable byte buffer with a hard cap. Appends that would pass `max` fail with ET_ETOOBIG
 * and leave the buffer unchanged. data is NUL-terminated after every successful append
 * (the NUL is not counted in len), so text can be used as a C string.
 * Keep no raw pointer into data across an append: it may move.
 */
struct et_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max; /* 0 means SIZE_MAX / 2 */
};

void et_buf_init(struct et_buf *b, size_t max);
int et_buf_reserve(struct et_buf *b, size_t extra);
int et_buf_append(struct et_buf *b, const void *p, size_t n);
int et_buf_putc(struct et_buf *b, int c);
int et_buf_puts(struct et_buf *b, const char *s);
int et_buf_printf(struct et_buf *b, const char *fmt, ...) ET_PRINTF(2, 3);
/* The va_list form; ET_PRINTF(2, 0) lets the compiler check fmt at its callers. */
int et_buf_vprintf(struct et_buf *b, const char *fmt, va_list ap) ET_PRINTF(2, 0);
/* Removes the first n bytes (n <= len). */
void et_buf_consume(struct et_buf *b, size_t n);
/* Keeps the memory, sets len to 0. */
void et_buf_reset(struct et_buf *b);
void et_buf_free(struct et_buf *b);
/* Hands the data to the caller (free with et_free) and resets the buffer to empty. */
uint8_t *et_buf_detach(struct et_buf *b, size_t *len);

/* Escaping helpers that append to a buffer. */
int et_buf_put_xml_escaped(struct et_buf *b, const char *s, size_t n);  /* &<>"' and controls */
/* The one JSON string writer: with quotes; ", \ and controls escaped; bytes that are not
 * well-formed UTF-8 become U+FFFD, so the result is always valid JSON. */
int et_buf_put_json_string(struct et_buf *b, const char *s, size_t n);
int et_buf_put_hex(struct et_buf *b, const uint8_t *p, size_t n);

/* Base64 (RFC 4648, standard alphabet, padding). */
size_t et_base64_encoded_len(size_t n);
int et_base64_encode(struct et_buf *out, const uint8_t *p, size_t n);
/* Decodes; accepts missing padding and (when lenient) skips whitespace. URL-safe '-' '_' are
 * accepted too. Returns ET_EPARSE with the offset in e on an invalid character. */
int et_base64_decode(struct et_buf *out, const char *s, size_t n, struct et_error *e);

/* Validates UTF-8 (no overlongs, no surrogates, max U+10FFFF). Returns 1 when valid. */
int et_utf8_valid(const uint8_t *p, size_t n);

/*
 * The terminal scrubber: the one place that decides which bytes from traffic and files may
 * reach a terminal. Replaces with '?', in place, every byte a terminal could act on: C0
 * controls, DEL, ESC (so no escape sequence survives), C1 controls U+0080..U+009F both as
 * UTF-8 (C2 80..C2 9F, each byte becomes '?') and as raw bytes, and every byte that is not
 * part of a valid UTF-8 sequence (a raw 0x9B is CSI to an 8-bit terminal). Valid UTF-8 text
 * otherwise stays as it is. Flags:
 *   ET_SCRUB_LINES  keep TAB, LF and a CR right before LF (multi-line output)
 *   ET_SCRUB_SGR    keep well-formed colour sequences ESC [ digits/';' m (our own colours;
 *                   only for output whose fields were scrubbed before colouring)
 * keep: NULL, or receives the length of an incomplete sequence at the end of p (a UTF-8
 * prefix, a CR, a colour sequence cut short) left untouched for the caller to carry into its
 * next call; with keep NULL such a tail is scrubbed. Returns the number of bytes replaced.
 */
#define ET_SCRUB_LINES 1u
#define ET_SCRUB_SGR 2u
size_t et_scrub(uint8_t *p, size_t n, unsigned flags, size_t *keep);

/* et_scrub() of a single-line field, NUL-terminated (TAB and LF replaced too). Returns s. */
char *et_str_printable(char *s);

/* Value of a hexadecimal digit, or -1. */
int et_hex_digit(int c);
/* The decimal digits of v, NUL-terminated, in out (at least 21 bytes; 22 for et_fmt_i64).
 * Returns the length. For hot paths where printf's format parsing costs more than the work. */
size_t et_fmt_u64(char *out, uint64_t v);
size_t et_fmt_i64(char *out, int64_t v);

/* Case-insensitive ASCII comparisons. */
int et_strcaseeq(const char *a, const char *b);
int et_strncaseeq(const char *a, const char *b, size_t n);
struct sockaddr;
/* An IPv4 or IPv6 socket address as "1.2.3.4:80" or "[::1]:80" ("?" for another family). */
void et_sockaddr_format(const struct sockaddr *sa, char *out, size_t outlen);

/*
 * An output file replaced whole or not at all (common/outfile.c). et_outfile_begin() creates
 * o->tmp, an empty file next to target (mode 0666 minus the umask) for the writer to open by
 * name and write; et_outfile_commit() syncs it and renames it over target; et_outfile_abort()
 * removes it, leaving target as it was. target is borrowed until commit or abort. Both return
 * 0 or ET_EIO / ET_ENOMEM with e set; a failed commit has removed the temporary file.
 */
struct et_outfile {
    const char *target;
    char *tmp; /* owned; NULL after commit or abort */
};
int et_outfile_begin(struct et_outfile *o, const char *target, struct et_error *e);
int et_outfile_commit(struct et_outfile *o, struct et_error *e);
void et_outfile_abort(struct et_outfile *o);

/* Time: microseconds since the Unix epoch (UTC). */
int64_t et_now_us(void);
/* "2024-05-01T12:34:56.789Z" (milliseconds); out needs 32 bytes. us <= 0 gives "-". */
const char *et_time_iso8601(int64_t us, char *out, size_t outlen);
/* Parses ISO 8601 / RFC 3339 date-times ("2024-05-01T12:34:56.123+02:00", "...Z",
 * "2024-05-01 12:34:56" taken as UTC). Returns 0 and sets *us, or ET_EPARSE. */
int et_time_parse_iso8601(const char *s, int64_t *us);

#define ET_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ET_MIN(a, b) ((a) < (b) ? (a) : (b))
#define ET_MAX(a, b) ((a) > (b) ? (a) : (b))

#ifdef __cplusplus
}
#endif
#endif
