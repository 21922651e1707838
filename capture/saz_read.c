/*
 * Fiddler .saz reader.
 *
 *   open:  EOCD pre-check (entry count, before libzip allocates per entry)
 *          -> zip_open (ZIP_RDONLY | ZIP_CHECKCONS) -> one pass over the directory:
 *             unsafe names and declared bomb ratios reject the archive; raw/NN_{c,s,m}
 *             entries are indexed by session number and sorted
 *   next:  session k: read NN_c.txt, NN_s.txt, NN_m.xml (each capped, encrypted entries and
 *          inflation ratios checked on the bytes actually read) -> et_http_parse_request /
 *          _response -> timers and flags -> one exchange
 *
 * Nothing is ever extracted: entries are read into memory one session at a time.
 */
#include "eastrace/saz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "eastrace/http.h"
#include "har_int.h"

struct saz_session {
    uint32_t num;
    int64_t c, s, m;  /* entry indices, -1 when absent */
    uint8_t width;    /* digits in the file name, for messages */
};

struct saz_reader {
    zip_t *za;
    char *name;
    struct saz_session *sess;
    size_t nsess, next;
};

/* ---- archive checks --------------------------------------------------------------------- */

static uint32_t le16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const uint8_t *p)
{
    return le16(p) | le16(p + 2) << 16;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/*
 * Finds the end-of-central-directory record in the tail of the archive (tail holds the last
 * tlen bytes) and returns the number of entries it declares, or -1 when there is none (libzip
 * then explains). Looks at the ZIP64 record too when the classic one says 0xFFFF.
 */
static int64_t eocd_entries(const uint8_t *tail, size_t tlen)
{
    if (tlen < 22)
        return -1;
    for (size_t i = tlen - 22 + 1; i-- > 0;) {
        if (le32(tail + i) != 0x06054b50)
            continue;
        uint64_t n = le16(tail + i + 10);
        if (n == 0xFFFF && i >= 20 && le32(tail + i - 20) == 0x07064b50) {
            /* The ZIP64 locator gives the absolute offset of the ZIP64 EOCD; we only know the
             * tail, so trust it only when it lies inside the tail. */
            for (size_t j = 0; j + 56 <= i - 20; j++)
                if (le32(tail + j) == 0x06064b50)
                    return (int64_t)ET_MIN(le64(tail + j + 32), (uint64_t)INT64_MAX);
        }
        return (int64_t)n;
    }
    return -1;
}

/* A name we would never write to disk, were we to extract: "..", absolute, backslashes,
 * drive letters, control bytes. */
static const char *unsafe_name(const char *n)
{
    if (n[0] == '/' || n[0] == '\\')
        return "absolute path";
    if (((n[0] >= 'A' && n[0] <= 'Z') || (n[0] >= 'a' && n[0] <= 'z')) && n[1] == ':')
        return "drive letter";
    if (strchr(n, '\\') != NULL)
        return "backslash in the name";
    for (const char *p = n; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20)
            return "control character in the name";
        if (p[0] == '.' && p[1] == '.' && (p == n || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
            return "path traversal (..)";
    }
    return NULL;
}

/* Parses "raw/<digits>_<c|s|m>.<txt|xml>"; returns the kind letter or 0. */
static int session_entry(const char *n, uint32_t *num, uint8_t *width)
{
    const char *p = n + 4, *d;
    uint64_t v = 0;
    if (strncmp(n, "raw/", 4) != 0)
        return 0;
    for (d = p; *d >= '0' && *d <= '9'; d++) {
        v = v * 10 + (uint64_t)(*d - '0');
        if (v > UINT32_MAX)
            return 0;
    }
    if (d == p || d[0] != '_' || d[1] == '\0' || d[2] != '.')
        return 0;
    *num = (uint32_t)v;
    *width = (uint8_t)ET_MIN(d - p, 255);
    if ((d[1] == 'c' || d[1] == 's') && strcmp(d + 2, ".txt") == 0)
        return d[1];
    if (d[1] == 'm' && strcmp(d + 2, ".xml") == 0)
        return 'm';
    return 0;
}

static int cmp_session(const void *a, const void *b)
{
    const struct saz_session *x = a, *y = b;
    return x->num < y->num ? -1 : x->num > y->num;
}

static int index_archive(struct saz_reader *r, struct et_error *e)
{
    zip_int64_t n = zip_get_num_entries(r->za, 0);
    size_t cap = 0;

    if (n < 0 || n > ET_SAZ_MAX_ENTRIES) {
        et_error_set(e, ET_ETOOBIG, "%s: %lld entries: more than the %d an archive may have",
                     r->name, (long long)n, ET_SAZ_MAX_ENTRIES);
        return ET_ETOOBIG;
    }
    for (zip_int64_t i = 0; i < n; i++) {
        zip_stat_t st;
        const char *why;
        uint32_t num;
        uint8_t width;
        int kind;

        zip_stat_init(&st);
        if (zip_stat_index(r->za, (zip_uint64_t)i, 0, &st) != 0 ||
            !(st.valid & ZIP_STAT_NAME)) {
            et_error_set(e, ET_EPARSE, "%s: entry %lld: %s", r->name, (long long)i,
                         zip_strerror(r->za));
            return ET_EPARSE;
        }
        if ((why = unsafe_name(st.name)) != NULL) {
            et_error_set(e, ET_EPARSE, "%s: unsafe entry name \"%.80s\": %s; archive rejected",
                         r->name, st.name, why);
            return ET_EPARSE;
        }
        if ((st.valid & ZIP_STAT_SIZE) && (st.valid & ZIP_STAT_COMP_SIZE) &&
            st.size > ((uint64_t)1 << 20) &&
            (st.comp_size == 0 || st.size / st.comp_size > ET_SAZ_MAX_RATIO)) {
            et_error_set(e, ET_ETOOBIG,
                         "%s: entry %.80s declares %llu bytes from %llu compressed (ratio over "
                         "%d:1): zip bomb; archive rejected",
                         r->name, st.name, (unsigned long long)st.size,
                         (unsigned long long)st.comp_size, ET_SAZ_MAX_RATIO);
            return ET_ETOOBIG;
        }
        if ((kind = session_entry(st.name, &num, &width)) == 0)
            continue;
        if (r->nsess == cap) {
            size_t nc = cap ? cap * 2 : 64;
            struct saz_session *ns = et_realloc(r->sess, nc * sizeof(*ns));
            if (ns == NULL) {
                et_error_set(e, ET_ENOMEM, "%s: out of memory", r->name);
                return ET_ENOMEM;
            }
            r->sess = ns;
            cap = nc;
        }
        /* One record per entry for now; merged by number after sorting. */
        struct saz_session *s = &r->sess[r->nsess++];
        s->num = num;
        s->width = width;
        s->c = kind == 'c' ? i : -1;
        s->s = kind == 's' ? i : -1;
        s->m = kind == 'm' ? i : -1;
    }
    if (r->nsess > 1) /* qsort(NULL, 0) is undefined (found by fuzz_saz) */
        qsort(r->sess, r->nsess, sizeof(*r->sess), cmp_session);
    size_t out = 0;
    for (size_t i = 0; i < r->nsess; i++) {
        struct saz_session *s = &r->sess[i];
        if (out > 0 && r->sess[out - 1].num == s->num) {
            struct saz_session *d = &r->sess[out - 1];
            if (s->c >= 0)
                d->c = s->c;
            if (s->s >= 0)
                d->s = s->s;
            if (s->m >= 0)
                d->m = s->m;
            continue;
        }
        r->sess[out++] = *s;
    }
    r->nsess = out;
    if (r->nsess == 0) {
        et_error_set(e, ET_EPARSE, "%s: no sessions (raw/NN_c.txt) in the archive: not a .saz",
                     r->name);
        return ET_EPARSE;
    }
    return 0;
}

/* ---- reading one entry ------------------------------------------------------------------ */

/* Reads entry idx into b (reset first), enforcing the size cap and the inflation ratio on the
 * bytes actually produced, whatever the directory claims. why gets the reason on failure. */
static int read_entry(struct saz_reader *r, int64_t idx, struct et_buf *b, char *why,
                      size_t whylen)
{
    zip_stat_t st;
    zip_file_t *f;
    uint64_t total = 0;
    int rc = 0;

    et_buf_reset(b);
    zip_stat_init(&st);
    if (zip_stat_index(r->za, (zip_uint64_t)idx, 0, &st) != 0) {
        snprintf(why, whylen, "%s", zip_strerror(r->za));
        return ET_EPARSE;
    }
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE) {
        snprintf(why, whylen, "encrypted entry %s: not supported", st.name);
        return ET_EUNSUPPORTED;
    }
    if ((st.valid & ZIP_STAT_COMP_METHOD) &&
        !zip_compression_method_supported((zip_int32_t)st.comp_method, 0)) {
        snprintf(why, whylen, "entry %s: compression method %u not supported", st.name,
                 (unsigned)st.comp_method);
        return ET_EUNSUPPORTED;
    }
    if ((st.valid & ZIP_STAT_SIZE) && st.size > ET_SAZ_MAX_ENTRY) {
        snprintf(why, whylen, "entry %s: %llu bytes, over the %llu MiB cap", st.name,
                 (unsigned long long)st.size, (unsigned long long)(ET_SAZ_MAX_ENTRY >> 20));
        return ET_ETOOBIG;
    }
    if ((f = zip_fopen_index(r->za, (zip_uint64_t)idx, 0)) == NULL) {
        snprintf(why, whylen, "entry %s: %s", st.name, zip_strerror(r->za));
        return ET_EPARSE;
    }
    for (;;) {
        zip_int64_t got;
        if ((rc = et_buf_reserve(b, 64 * 1024)) != 0) {
            if (rc == ET_ETOOBIG)
                snprintf(why, whylen, "entry %s: inflates past the %llu MiB cap (its header "
                         "says %llu bytes)", st.name,
                         (unsigned long long)(ET_SAZ_MAX_ENTRY >> 20),
                         (unsigned long long)((st.valid & ZIP_STAT_SIZE) ? st.size : 0));
            else
                snprintf(why, whylen, "entry %s: out of memory", st.name);
            break;
        }
        got = zip_fread(f, b->data + b->len, 64 * 1024);
        if (got < 0) {
            snprintf(why, whylen, "entry %s: %s", st.name, zip_file_strerror(f));
            rc = ET_EPARSE;
            break;
        }
        if (got == 0)
            break;
        b->len += (size_t)got;
        total += (uint64_t)got;
        if (total > ET_SAZ_MAX_ENTRY) {
            snprintf(why, whylen, "entry %s: inflates past the %llu MiB cap", st.name,
                     (unsigned long long)(ET_SAZ_MAX_ENTRY >> 20));
            rc = ET_ETOOBIG;
            break;
        }
        if (total > ((uint64_t)1 << 20) && (st.valid & ZIP_STAT_COMP_SIZE) &&
            (st.comp_size == 0 || total / st.comp_size > ET_SAZ_MAX_RATIO)) {
            snprintf(why, whylen, "entry %s: inflates over %d times its compressed size: zip bomb",
                     st.name, ET_SAZ_MAX_RATIO);
            rc = ET_ETOOBIG;
            break;
        }
    }
    zip_fclose(f);
    if (rc == 0 && b->data != NULL)
        b->data[b->len] = '\0';
    return rc;
}

/* ---- _m.xml ----------------------------------------------------------------------------- */

/* Finds attribute name="value" inside the tag that starts at tag (up to '>'); copies the
 * unescaped value into a. NULL when absent. */
static const char *xml_attr(struct et_arena *a, const char *tag, const char *tag_end,
                            const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = tag; p + nl + 2 < tag_end; p++) {
        if ((p[-1] != ' ' && p[-1] != '\t' && p[-1] != '\n' && p[-1] != '\r') ||
            strncmp(p, name, nl) != 0 || p[nl] != '=' || (p[nl + 1] != '"' && p[nl + 1] != '\''))
            continue;
        char q = p[nl + 1];
        const char *v = p + nl + 2, *end = memchr(v, q, (size_t)(tag_end - v));
        if (end == NULL)
            return NULL;
        struct et_buf b;
        et_buf_init(&b, 1 << 20);
        for (const char *s = v; s < end; s++) {
            if (*s == '&') {
                const char *semi = memchr(s, ';', (size_t)(end - s));
                static const struct { const char *n; char c; } ents[] = {
                    {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
                int done = 0;
                if (semi != NULL) {
                    size_t el = (size_t)(semi - s - 1);
                    for (size_t k = 0; k < ET_ARRAY_SIZE(ents) && !done; k++)
                        if (strlen(ents[k].n) == el && strncmp(s + 1, ents[k].n, el) == 0) {
                            et_buf_putc(&b, ents[k].c);
                            done = 1;
                        }
                    if (!done && el >= 2 && s[1] == '#') {
                        char *ep;
                        unsigned long cp = s[2] == 'x' ? strtoul(s + 3, &ep, 16)
                                                       : strtoul(s + 2, &ep, 10);
                        if (ep == semi && cp > 0 && cp < 0x80) {
                            et_buf_putc(&b, (int)cp);
                            done = 1;
                        }
                    }
                }
                if (done) {
                    s = semi;
                    continue;
                }
            }
            et_buf_putc(&b, (unsigned char)*s);
        }
        const char *out = et_arena_strndup(a, b.data != NULL ? (const char *)b.data : "", b.len);
        et_buf_free(&b);
        return out;
    }
    return NULL;
}

static const char *find_tag(const char *p, const char *end, const char *open, const char **tag_end)
{
    size_t ol = strlen(open);
    while (p != NULL && p + ol < end) {
        const char *t = memmem(p, (size_t)(end - p), open, ol);
        if (t == NULL)
            return NULL;
        char after = t[ol];
        if (after == ' ' || after == '\t' || after == '\r' || after == '\n' || after == '/' ||
            after == '>') {
            const char *gt = memchr(t, '>', (size_t)(end - t));
            if (gt == NULL)
                return NULL;
            *tag_end = gt;
            return t + ol;
        }
        p = t + ol;
    }
    return NULL;
}

/* Timers we map to struct et_timings; the others go to meta as "fiddler-timer-<Name>". */
static const char *const timers[] = {
    "ClientConnected", "ClientBeginRequest", "GotRequestHeaders", "ClientDoneRequest",
    "GatewayTime", "DNSTime", "TCPConnectTime", "HTTPSHandshakeTime", "ServerConnected",
    "FiddlerBeginRequest", "ServerGotRequest", "ServerBeginResponse", "GotResponseHeaders",
    "ServerDoneResponse", "ClientBeginResponse", "ClientDoneResponse"};

static int64_t timer_us(const char *v)
{
    int64_t us;
    if (v == NULL || et_time_parse_iso8601(v, &us) != 0 || us <= 0)
        return 0;
    return us;
}

static int meta_add(struct et_exchange *x, const char *n, const char *v)
{
    return et_headers_add(&x->meta, x->arena, n, strlen(n), v, strlen(v));
}

static int parse_meta(struct et_exchange *x, const char *p, size_t n)
{
    struct et_arena *a = x->arena;
    const char *end = p + n, *te, *t, *v;
    int rc;

    if ((t = find_tag(p, end, "<Session", &te)) != NULL) {
        if ((v = xml_attr(a, t, te, "SID")) != NULL && (rc = meta_add(x, "fiddler-sid", v)) != 0)
            return rc;
        if ((v = xml_attr(a, t, te, "BitFlags")) != NULL &&
            (rc = meta_add(x, "fiddler-bitflags", v)) != 0)
            return rc;
    }
    if ((t = find_tag(p, end, "<SessionTimers", &te)) != NULL) {
        const char *val[ET_ARRAY_SIZE(timers)];
        for (size_t i = 0; i < ET_ARRAY_SIZE(timers); i++)
            val[i] = xml_attr(a, t, te, timers[i]);
        x->t.connect = timer_us(val[0]);
        x->t.req_begin = timer_us(val[1]);
        x->t.req_end = timer_us(val[3]);
        x->t.resp_begin = timer_us(val[11]);
        if (x->t.resp_begin == 0)
            x->t.resp_begin = timer_us(val[12]);
        x->t.resp_end = timer_us(val[15]);
        if (x->t.resp_end == 0)
            x->t.resp_end = timer_us(val[13]);
        for (size_t i = 0; i < ET_ARRAY_SIZE(timers); i++) {
            char name[64];
            if (val[i] == NULL || i == 0 || i == 1 || i == 3 || i == 11 || i == 15)
                continue;
            snprintf(name, sizeof(name), "fiddler-timer-%s", timers[i]);
            if ((rc = meta_add(x, name, val[i])) != 0)
                return rc;
        }
    }
    const char *ip = NULL, *port = NULL, *err_msg = NULL;
    int err_code = ET_EPARSE, err_stage = ET_STAGE_NONE;
    for (const char *q = p; (t = find_tag(q, end, "<SessionFlag", &te)) != NULL; q = te) {
        const char *fn = xml_attr(a, t, te, "N"), *fv = xml_attr(a, t, te, "V");
        if (fn == NULL)
            continue;
        if (fv == NULL)
            fv = "";
        /* Our writer's reverse-proxy facts are fields of the exchange, not source fields. */
        if (strcmp(fn, "x-eastrace-via") == 0) {
            x->via_addr = *fv != '\0' ? fv : NULL;
            continue;
        }
        if (strcmp(fn, "x-eastrace-reverse") == 0) {
            x->reverse = strcmp(fv, "1") == 0;
            continue;
        }
        if ((rc = meta_add(x, fn, fv)) != 0)
            return rc;
        if (strcmp(fn, "x-clientip") == 0)
            ip = fv;
        else if (strcmp(fn, "x-clientport") == 0)
            port = fv;
        else if (strcmp(fn, "x-hostip") == 0 && *fv != '\0')
            x->server_addr = fv;
        else if (strcmp(fn, "x-eastrace-error") == 0)
            err_msg = fv;
        else if (strcmp(fn, "x-eastrace-error-code") == 0)
            err_code = (int)strtol(fv, NULL, 10);
        else if (strcmp(fn, "x-eastrace-error-stage") == 0)
            err_stage = (int)strtol(fv, NULL, 10);
    }
    /* Our writer keeps a recorded failure in these flags. */
    if (err_msg != NULL && err_code < 0 && err_stage >= 0 && err_stage <= ET_STAGE_CAPTURE)
        et_exchange_fail(x, err_code, (enum et_stage)err_stage, "%s", err_msg);
    if (ip != NULL && *ip != '\0') {
        int v6 = strchr(ip, ':') != NULL;
        if (port != NULL && *port != '\0' && strcmp(port, "0") != 0)
            x->client_addr = et_arena_printf(a, "%s%s%s:%s", v6 ? "[" : "", ip, v6 ? "]" : "",
                                             port);
        else
            x->client_addr = ip;
        if (x->client_addr == NULL)
            return ET_ENOMEM;
    }
    return 0;
}

/* ---- source interface ------------------------------------------------------------------- */

static const char *entry_name(struct saz_reader *r, int64_t idx)
{
    const char *n = idx >= 0 ? zip_get_name(r->za, (zip_uint64_t)idx, 0) : NULL;
    return n != NULL ? n : "?";
}

static int saz_next(void *impl, struct et_exchange **out, struct et_error *e)
{
    struct saz_reader *r = impl;
    struct saz_session *s;
    struct et_exchange *x = NULL;
    struct et_buf b;
    struct et_error pe;
    char why[256];
    const char *where = NULL;
    int rc;

    *out = NULL;
    if (r->next >= r->nsess)
        return 0;
    s = &r->sess[r->next++];
    et_buf_init(&b, (size_t)ET_SAZ_MAX_ENTRY + 1);
    why[0] = '\0';
    if ((x = et_exchange_new()) == NULL)
        goto nomem;
    x->id = s->num;
    x->source = ET_SRC_SAZ;
    if ((x->source_name = et_arena_strdup(x->arena, r->name)) == NULL)
        goto nomem;

    if (s->c < 0) {
        rc = ET_EPARSE;
        snprintf(why, sizeof(why), "no request entry (raw/%0*u_c.txt)", s->width, s->num);
        goto bad;
    }
    /* Metadata first: it says where the client was even if the bytes turn out bad. */
    if (s->m >= 0) {
        where = entry_name(r, s->m);
        if ((rc = read_entry(r, s->m, &b, why, sizeof(why))) != 0)
            goto bad;
        if ((rc = parse_meta(x, (const char *)b.data, b.len)) != 0)
            goto nomem;
    }
    where = entry_name(r, s->c);
    if ((rc = read_entry(r, s->c, &b, why, sizeof(why))) != 0)
        goto bad;
    et_error_clear(&pe);
    rc = et_http_parse_request(b.data != NULL ? b.data : (const uint8_t *)"", b.len, x, &pe);
    if (rc == ET_ENOMEM)
        goto nomem;
    if (rc == ET_EPARSE) {
        et_error_format(&pe, why, sizeof(why));
        goto bad;
    }
    /* ET_ETRUNC: kept, with the failure recorded in x->err by the parser. */
    if (s->s >= 0) {
        where = entry_name(r, s->s);
        if ((rc = read_entry(r, s->s, &b, why, sizeof(why))) != 0)
            goto bad;
        if (b.len > 0) {
            et_error_clear(&pe);
            rc = et_http_parse_response(b.data, b.len, x, &pe);
            if (rc == ET_ENOMEM)
                goto nomem;
            if (rc == ET_EPARSE) {
                et_error_format(&pe, why, sizeof(why));
                goto bad;
            }
        }
    }
    if (x->scheme == NULL && x->port == 443)
        x->scheme = "https";
    et_buf_free(&b);
    *out = x;
    return 1;

bad:
    et_error_set(e, ET_EPARSE, "%s: session %u (%s): %s", r->name, s->num,
                 where != NULL ? where : "raw/", why);
    et_buf_free(&b);
    et_exchange_free(x);
    return ET_EPARSE;
nomem:
    et_buf_free(&b);
    et_exchange_free(x);
    et_error_set(e, ET_ENOMEM, "%s: out of memory", r->name);
    return ET_ENOMEM;
}

static void saz_close(void *impl)
{
    struct saz_reader *r = impl;
    if (r == NULL)
        return;
    if (r->za != NULL)
        zip_discard(r->za);
    et_free(r->sess);
    et_free(r->name);
    et_free(r);
}

static const struct et_source_ops saz_ops = {"saz", saz_next, saz_close};

static int finish_open(struct saz_reader *r, zip_source_t *src, const uint8_t *tail,
                       size_t tlen, struct et_source **out, struct et_error *e)
{
    zip_error_t ze;
    int64_t declared = eocd_entries(tail, tlen);
    int rc;

    if (declared > ET_SAZ_MAX_ENTRIES) {
        zip_source_free(src);
        et_error_set(e, ET_ETOOBIG,
                     "%s: the archive declares %lld entries, more than the %d allowed",
                     r->name, (long long)declared, ET_SAZ_MAX_ENTRIES);
        rc = ET_ETOOBIG;
        goto fail;
    }
    zip_error_init(&ze);
    r->za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (r->za == NULL) {
        zip_source_free(src);
        et_error_set(e, ET_EPARSE, "%s: not a readable zip archive (%s)%s", r->name,
                     zip_error_strerror(&ze),
                     declared < 0 ? ": no end of central directory, truncated or not a zip" : "");
        zip_error_fini(&ze);
        rc = ET_EPARSE;
        goto fail;
    }
    zip_error_fini(&ze);
    if ((rc = index_archive(r, e)) != 0)
        goto fail;
    if ((*out = et_source_new(&saz_ops, r, r->name)) == NULL) {
        et_error_set(e, ET_ENOMEM, "%s: out of memory", r->name);
        rc = ET_ENOMEM;
        goto fail;
    }
    return 0;
fail:
    saz_close(r);
    return rc;
}

int et_saz_open(const char *path, struct et_source **out, struct et_error *e)
{
    struct saz_reader *r;
    zip_source_t *src;
    zip_error_t ze;
    uint8_t *tail = NULL;
    size_t tlen = 0;
    struct stat st;
    int fd, rc;

    *out = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        int err = errno;
        et_error_set(e, err == ENOENT ? ET_ENOTFOUND : ET_EIO, "%s: %s", path, strerror(err));
        return err == ENOENT ? ET_ENOTFOUND : ET_EIO;
    }
    /* The EOCD sits in the last 22 + 65535 (comment) bytes. */
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        tlen = (size_t)ET_MIN((off_t)(22 + 65535 + 20), st.st_size);
        if ((tail = et_malloc(tlen)) != NULL &&
            pread(fd, tail, tlen, st.st_size - (off_t)tlen) != (ssize_t)tlen)
            tlen = 0;
    }
    close(fd);
    if ((r = et_calloc(1, sizeof(*r))) == NULL || (r->name = et_strdup(path)) == NULL) {
        et_free(r);
        et_free(tail);
        et_error_set(e, ET_ENOMEM, "%s: out of memory", path);
        return ET_ENOMEM;
    }
    zip_error_init(&ze);
    if ((src = zip_source_file_create(path, 0, -1, &ze)) == NULL) {
        et_error_set(e, ET_EIO, "%s: %s", path, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        et_free(tail);
        saz_close(r);
        return ET_EIO;
    }
    zip_error_fini(&ze);
    rc = finish_open(r, src, tail != NULL ? tail : (const uint8_t *)"", tail != NULL ? tlen : 0,
                     out, e);
    et_free(tail);
    return rc;
}

int et_saz_open_mem(const void *p, size_t n, const char *name, struct et_source **out,
                    struct et_error *e)
{
    struct saz_reader *r;
    zip_source_t *src;
    zip_error_t ze;
    size_t tlen = ET_MIN(n, (size_t)(22 + 65535 + 20));

    *out = NULL;
    if (name == NULL)
        name = "(memory)";
    if ((r = et_calloc(1, sizeof(*r))) == NULL || (r->name = et_strdup(name)) == NULL) {
        et_free(r);
        et_error_set(e, ET_ENOMEM, "%s: out of memory", name);
        return ET_ENOMEM;
    }
    zip_error_init(&ze);
    if ((src = zip_source_buffer_create(n > 0 ? p : "", n, 0, &ze)) == NULL) {
        et_error_set(e, ET_ENOMEM, "%s: %s", name, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        saz_close(r);
        return ET_ENOMEM;
    }
    zip_error_fini(&ze);
    return finish_open(r, src, n > 0 ? (const uint8_t *)p + (n - tlen) : (const uint8_t *)"",
                       tlen, out, e);
}
