/*
 * IIS W3C line pieces shared by the exchange reader (iis.c) and the report fast path
 * (report.c): #Fields layouts, the field splitter, the EAS query scan and Exchange's Log=
 * grammar. Nothing here allocates: every result borrows the line.
 */
#include "eastrace/iisline.h"

#include "eastrace/eas.h"

#include <stddef.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static const char *const field_names[ET_IIS_FIELD_COUNT] = {
    "date", "time", "s-ip", "cs-method", "cs-uri-stem", "cs-uri-query", "s-port",
    "cs-username", "c-ip", "cs(User-Agent)", "cs(Referer)", "sc-status", "sc-substatus",
    "sc-win32-status", "sc-bytes", "cs-bytes", "time-taken", "cs-host",
};

void et_iis_layout_default(struct et_iis_layout *l)
{
    /* IIS 7+ default field set (what Exchange 2010-2019 servers log out of the box). */
    static const char def[] = "date time s-ip cs-method cs-uri-stem cs-uri-query s-port "
                              "cs-username c-ip cs(User-Agent) cs(Referer) sc-status "
                              "sc-substatus sc-win32-status time-taken";
    (void)et_iis_layout_parse(l, def, sizeof(def) - 1);
}

int et_iis_layout_parse(struct et_iis_layout *l, const char *s, size_t n)
{
    size_t i = 0, o = 0;

    for (int k = 0; k < ET_IIS_FIELD_COUNT; k++)
        l->idx[k] = -1;
    l->n = 0;
    while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n >= sizeof(l->text))
        return ET_EPARSE;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i == n)
            break;
        if (l->n == ET_IIS_MAX_FIELDS)
            return ET_EPARSE;
        size_t st = i;
        while (i < n && s[i] != ' ' && s[i] != '\t')
            i++;
        memcpy(l->text + o, s + st, i - st);
        l->text[o + (i - st)] = '\0';
        l->name_at[l->n] = (uint16_t)o;
        for (int k = 0; k < ET_IIS_FIELD_COUNT; k++)
            if (l->idx[k] < 0 && et_strcaseeq(l->text + o, field_names[k]))
                l->idx[k] = l->n;
        o += i - st + 1;
        l->n++;
    }
    return l->n > 0 ? 0 : ET_EPARSE;
}

int et_iis_layout_equal(const struct et_iis_layout *a, const struct et_iis_layout *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++)
        if (strcmp(et_iis_layout_name(a, i), et_iis_layout_name(b, i)) != 0)
            return 0;
    return 1;
}

/* One 64-bit word with a 0x80 bit set in each byte equal to c (SWAR, as in the classic
 * "haszero" trick); exact, so no false positives. */
static inline uint64_t byte_eq_mask(uint64_t w, uint64_t c8)
{
    uint64_t x = w ^ c8;
    return ~(((x & 0x7F7F7F7F7F7F7F7FULL) + 0x7F7F7F7F7F7F7F7FULL) | x | 0x7F7F7F7F7F7F7F7FULL);
}

int et_iis_line_split(const char *line, size_t n, struct et_slice *f, int max)
{
    const char *p = line, *end = line + n;
    const uint64_t sp8 = 0x2020202020202020ULL;
    int k = 0;

    if (n > 0 && end[-1] == '\r')
        end--;
    if (max <= 0)
        return 0;
    f[0].ptr = (const uint8_t *)p;
    /* Hot path of the reports: find the spaces eight bytes at a time. */
    const char *fs = p;
    while (k < max - 1 && end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t m = byte_eq_mask(w, sp8);
        while (m != 0 && k < max - 1) {
            const char *sp = p + (__builtin_ctzll(m) >> 3);
            f[k].ptr = (const uint8_t *)fs;
            f[k].len = (size_t)(sp - fs);
            k++;
            fs = sp + 1;
            m &= m - 1;
        }
        p += 8;
    }
    if (p < fs)
        p = fs;
    while (k < max - 1 && p < end) {
        if (*p == ' ') {
            f[k].ptr = (const uint8_t *)fs;
            f[k].len = (size_t)(p - fs);
            k++;
            fs = p + 1;
        }
        p++;
    }
    f[k].ptr = (const uint8_t *)fs;
    f[k].len = fs <= end ? (size_t)(end - fs) : 0;
    return k + 1;
}

/* Exact match first: logs nearly always carry the canonical spelling. */
static int slice_ieq(const char *s, size_t n, const char *lit, size_t ln)
{
    return n == ln && (memcmp(s, lit, ln) == 0 || et_strncaseeq(s, lit, ln));
}

enum et_iis_stem et_iis_stem_classify(const char *s, size_t n)
{
    static const char base[] = "/Microsoft-Server-ActiveSync";
    const size_t bl = sizeof(base) - 1;

    if (n < bl || (memcmp(s, base, bl) != 0 && !et_strncaseeq(s, base, bl)))
        return ET_IIS_STEM_OTHER;
    s += bl;
    n -= bl;
    if (n == 0 || slice_ieq(s, n, "/", 1) || slice_ieq(s, n, "/default.eas", 12))
        return ET_IIS_STEM_FRONTEND;
    if ((n >= 6 && et_strncaseeq(s, "/Proxy", 6)) &&
        (n == 6 || s[6] == '/'))
        return ET_IIS_STEM_BACKEND;
    /* Other paths below the vdir (e.g. /Microsoft-Server-ActiveSync/default.eas/x) are
     * still ActiveSync requests of the front-end site. */
    return s[0] == '/' ? ET_IIS_STEM_FRONTEND : ET_IIS_STEM_OTHER;
}

void et_iis_query_scan(const char *q, size_t n, struct et_iis_query *out)
{
    const char *p = q, *end = q + n;

    static const uint8_t empty[1] = {0};
    memset(out, 0, sizeof(*out));
    /* Absent parameters are empty slices with a valid pointer, never NULL: callers hash and
     * compare them without checking. */
    out->cmd.ptr = out->user.ptr = out->device_id.ptr = out->device_type.ptr = empty;
    out->log.ptr = empty;
    out->raw.ptr = (const uint8_t *)q;
    out->raw.len = n;
    if (n == 1 && q[0] == '-') {
        out->raw.len = 0;
        return;
    }
    {
        /* MS-ASHTTP base64 form: the first '&'-separated item has no '=' except up to two
         * padding characters at its end; Exchange may append "&Log=..." after it. */
        const char *amp0 = memchr(q, '&', n);
        size_t seg = amp0 ? (size_t)(amp0 - q) : n, sl = seg;
        while (sl > 0 && q[sl - 1] == '=' && seg - sl < 2)
            sl--;
        if (sl > 0 && memchr(q, '=', sl) == NULL) {
            out->base64 = 1;
            out->raw.len = seg;
        }
    }
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        if (eq != NULL) {
            size_t kl = (size_t)(eq - p);
            struct et_slice v = {(const uint8_t *)eq + 1, (size_t)(pe - eq - 1)};
            switch (kl) {
            case 3:
                if (slice_ieq(p, kl, "Cmd", 3))
                    out->cmd = v;
                else if (slice_ieq(p, kl, "Log", 3)) {
                    /* Log= is always last; its value may hold '&' only URL-encoded, but
                     * be generous and take the rest of the query. */
                    v.len = (size_t)(end - eq - 1);
                    out->log = v;
                    return;
                }
                break;
            case 4:
                if (slice_ieq(p, kl, "User", 4))
                    out->user = v;
                break;
            case 8:
                if (slice_ieq(p, kl, "DeviceId", 8))
                    out->device_id = v;
                break;
            case 10:
                if (slice_ieq(p, kl, "DeviceType", 10))
                    out->device_type = v;
                break;
            default:
                break;
            }
        }
        if (amp == NULL)
            break;
        p = amp + 1;
    }
}

static const char *const cmd_names[ET_EAS_CMD_COUNT] = {
    "", "Ping", "Sync", "FolderSync", "SendMail", "SmartReply", "SmartForward",
    "MeetingResponse", "GetAttachment", "ItemOperations", "Provision", "Settings", "Search",
    "MoveItems", "GetItemEstimate", "FolderCreate", "FolderDelete", "FolderUpdate",
    "ResolveRecipients", "ValidateCert", "Find", "GetHierarchy", "CreateCollection",
    "DeleteCollection", "MoveCollection", "Notify", "OPTIONS", "Other",
};

const char *et_eas_cmd_name(enum et_eas_cmd c)
{
    if ((int)c < 0 || c >= ET_EAS_CMD_COUNT)
        return "Other";
    return cmd_names[c];
}

enum et_eas_cmd et_eas_cmd_from(const char *s, size_t n)
{
    if (n == 0 || (n == 1 && s[0] == '-'))
        return ET_EAS_CMD_NONE;
    /* The two hot commands first: most EAS lines are Ping or Sync. */
    if (n == 4 && memcmp(s, "Ping", 4) == 0)
        return ET_EAS_CMD_PING;
    if (n == 4 && memcmp(s, "Sync", 4) == 0)
        return ET_EAS_CMD_SYNC;
    for (int c = ET_EAS_CMD_PING; c < ET_EAS_CMD_OPTIONS; c++) {
        size_t l = strlen(cmd_names[c]);
        if (l == n && et_strncaseeq(s, cmd_names[c], n))
            return (enum et_eas_cmd)c;
    }
    return ET_EAS_CMD_OTHER;
}

/* ---- Log= ---------------------------------------------------------------------------- */

static int is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static long slice_long(struct et_slice v)
{
    long r = 0;
    size_t i = 0;
    int neg = 0;
    if (v.len == 0)
        return -1;
    if (v.ptr[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == v.len)
        return -1;
    for (; i < v.len; i++) {
        if (!is_digit((char)v.ptr[i]))
            return -1;
        if (r > 100000000000L)
            return -1; /* absurd; keep it from overflowing */
        r = r * 10 + (v.ptr[i] - '0');
    }
    return neg ? -r : r;
}

static int name_is(struct et_slice n, const char *lit)
{
    size_t l = strlen(lit);
    return n.len == l && memcmp(n.ptr, lit, l) == 0;
}

static void log_add(struct et_eas_log *o, const char *np, size_t nl, const char *vp, size_t vl,
                    int colon)
{
    struct et_eas_log_item *it;
    if (o->nitems == ET_EAS_LOG_MAX_ITEMS) {
        o->dropped++;
        return;
    }
    it = &o->items[o->nitems++];
    it->name.ptr = (const uint8_t *)np;
    it->name.len = nl;
    it->value.ptr = (const uint8_t *)vp;
    it->value.len = vl;
    it->colon = colon;
}

static void log_assign(struct et_eas_log *o, const struct et_eas_log_item *it)
{
    struct et_slice n = it->name, v = it->value;
    if (n.len == 0)
        return;
    switch (n.ptr[0]) {
    case 'A':
        if (name_is(n, "As"))
            o->access_state = v;
        break;
    case 'B':
        if (name_is(n, "Budget"))
            o->budget = v;
        break;
    case 'C':
        if (name_is(n, "Cpo"))
            o->cpo = slice_long(v);
        break;
    case 'D':
        if (name_is(n, "Dc"))
            o->dc = v;
        break;
    case 'E':
        if (name_is(n, "Error"))
            o->error = v;
        break;
    case 'F':
        if (name_is(n, "Fet"))
            o->fet = slice_long(v);
        else if (name_is(n, "Fc"))
            o->folder_count = slice_long(v);
        else if (name_is(n, "Filt"))
            o->filter = slice_long(v);
        break;
    case 'H':
        if (name_is(n, "Hb"))
            o->heartbeat = slice_long(v);
        break;
    case 'L':
        if (name_is(n, "LdapC"))
            o->ldap_count = slice_long(v);
        else if (name_is(n, "LdapL"))
            o->ldap_latency = slice_long(v);
        break;
    case 'M':
        if (name_is(n, "Mbx"))
            o->mailbox = v;
        break;
    case 'R':
        if (name_is(n, "RpcC"))
            o->rpc_count = slice_long(v);
        else if (name_is(n, "RpcL"))
            o->rpc_latency = slice_long(v);
        break;
    case 'S':
        if (n.len == 1)
            o->status = slice_long(v);
        else if (name_is(n, "Sk"))
            o->sync_key = slice_long(v);
        else if (name_is(n, "St"))
            o->sync_type = v;
        break;
    case 'T':
        if (name_is(n, "Ty") || (o->exch2003 && n.len == 1))
            o->folder_type = v;
        else if (name_is(n, "Throttle"))
            o->throttle = slice_long(v);
        break;
    case 'V':
        if (n.len == 1 || name_is(n, "Ver") || name_is(n, "Ver1"))
            o->version = slice_long(v);
        break;
    default:
        break;
    }
}

/*
 * Exchange 2003 packs one string without separators:
 *   V<ver> T<type> S<synctype> C:<n>A<n>C<n>D<n>F S:<n>A<n>C<n>D P:<n>C<n>I<n>S<n>R
 * (Exchange Team Blog, 2005-03-28). Returns 1 when s has that shape and was parsed.
 */
static int parse_2003(const char *s, size_t n, struct et_eas_log *o)
{
    const char *p = s, *end = s + n, *c, *sv, *pp;
    if (n < 4 || s[0] != 'V' || memchr(s, '_', n) != NULL)
        return 0;
    c = NULL;
    for (const char *q = s; q + 1 < end; q++)
        if (q[0] == 'C' && q[1] == ':') {
            c = q;
            break;
        }
    if (c == NULL)
        return 0;
    o->exch2003 = 1;
    p = s + 1;
    const char *vs = p;
    while (p < c && (is_digit(*p) || *p == 'N' || *p == 'A'))
        p++;
    log_add(o, s, 1, vs, (size_t)(p - vs), 0);
    if (p < c && *p == 'T') {
        const char *ts = ++p;
        /* The type is two letters (Em, Co, Ca, NA); S<synctype> follows. */
        size_t tl = (size_t)(c - ts) >= 2 ? 2 : (size_t)(c - ts);
        p = ts + tl;
        log_add(o, ts - 1, 1, ts, tl, 0);
    }
    if (p < c && *p == 'S') {
        log_add(o, "St", 2, p + 1, (size_t)(c - p - 1), 0);
        p = c;
    }
    sv = NULL;
    pp = NULL;
    for (const char *q = c + 2; q + 1 < end; q++) {
        if (sv == NULL && q[0] == 'S' && q[1] == ':')
            sv = q;
        else if (q[0] == 'P' && q[1] == ':') {
            pp = q;
            break;
        }
    }
    {
        const char *ce = sv ? sv : (pp ? pp : end);
        log_add(o, c, 1, c + 2, (size_t)(ce - c - 2), 1);
    }
    if (sv != NULL) {
        const char *se = pp ? pp : end;
        log_add(o, sv, 1, sv + 2, (size_t)(se - sv - 2), 1);
    }
    if (pp != NULL)
        log_add(o, pp, 1, pp + 2, (size_t)(end - pp - 2), 1);
    for (size_t i = 0; i < o->nitems; i++)
        log_assign(o, &o->items[i]);
    return 1;
}

/* The first '_' (or also ':', with colon) at or after p, else end. Items are about ten
 * bytes: sixteen are compared at once (SSE2, part of x86-64) while that many remain, byte by
 * byte after. */
static inline const char *find_sep(const char *p, const char *end, int colon)
{
#ifdef __SSE2__
    const __m128i us = _mm_set1_epi8('_'), co = _mm_set1_epi8(colon ? ':' : '_');
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(x, us), _mm_cmpeq_epi8(x, co)));
        if (m != 0)
            return p + __builtin_ctz(m);
        p += 16;
    }
#endif
    while (p < end && *p != '_' && !(colon && *p == ':'))
        p++;
    return p;
}

static void log_clear(struct et_eas_log *o)
{
    /* items[] past nitems is never read: only the fields before it are set (the array is
     * most of the struct, and this runs once per IIS line), copied from a template (a
     * fixed-size copy the compiler inlines, where memset and stores cost more). */
    static const struct et_eas_log empty = {
        .version = -1, .status = -1, .heartbeat = -1, .sync_key = -1, .folder_count = -1,
        .filter = -1, .rpc_count = -1, .rpc_latency = -1, .ldap_count = -1,
        .ldap_latency = -1, .cpo = -1, .fet = -1, .throttle = -1};
    memcpy(o, &empty, offsetof(struct et_eas_log, items));
}

/* Adds the item that starts at p (it ends at the next '_'; a ':' before that splits name
 * and value, else the name is the leading letters) and assigns its field. */
/* Adds the item p..ie (colon: its first ':', or NULL: the name is then the leading letters)
 * and assigns its field. */
static void add_item(struct et_eas_log *o, const char *p, const char *colon, const char *ie)
{
    if (colon != NULL) {
        log_add(o, p, (size_t)(colon - p), colon + 1, (size_t)(ie - colon - 1), 1);
    } else {
        const char *q = p;
        while (q < ie && is_alpha(*q))
            q++;
        log_add(o, p, (size_t)(q - p), q, (size_t)(ie - q), 0);
    }
    log_assign(o, &o->items[o->nitems - 1]);
}

#ifdef __SSE2__
/*
 * The items whose first byte is in the set `want` (a 256-bit map), sixteen bytes at a time:
 * one pass notes where the '_' are; an item runs from the string's start or a '_' to the
 * next '_', so each item is then found from those positions alone and only the wanted ones
 * are read, byte by byte, for their ':'.
 * Applies only when the string has fewer '_' than the item cap, so that no item can be past
 * it (the general loop counts them otherwise). Returns 0 when it did not apply, with o
 * untouched.
 */
static int parse_wanted_simd(const char *s, size_t n, const uint64_t want[4],
                             struct et_eas_log *o)
{
    const __m128i us = _mm_set1_epi8('_');
    uint32_t sep[ET_EAS_LOG_MAX_ITEMS];
    size_t ns = 0;

    for (size_t i = 0; i < n; i += 16) {
        uint8_t blk[16];
        const uint8_t *b = (const uint8_t *)s + i;
        if (n - i < 16) { /* the tail, padded with NULs (not '_') */
            memset(blk, 0, sizeof(blk));
            memcpy(blk, b, n - i);
            b = blk;
        }
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)b);
        unsigned um = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, us));
        while (um != 0) {
            if (ns == ET_EAS_LOG_MAX_ITEMS - 1)
                return 0;
            sep[ns++] = (uint32_t)(i + (size_t)__builtin_ctz(um));
            um &= um - 1;
        }
    }
    /* Item k runs from just after separator k-1 (or the start) to separator k (or the end). */
    for (size_t k = 0; k <= ns; k++) {
        size_t st = k == 0 ? 0 : (size_t)sep[k - 1] + 1, ie = k < ns ? sep[k] : n;
        if (ie <= st)
            continue;
        uint8_t c = (uint8_t)s[st];
        if (!((want[c >> 6] >> (c & 63)) & 1))
            continue;
        const char *colon = memchr(s + st, ':', ie - st);
        add_item(o, s + st, colon, s + ie);
    }
    return 1;
}
#endif

void et_eas_log_parse(const char *s, size_t n, struct et_eas_log *o)
{
    et_eas_log_parse_only(s, n, NULL, o);
}

void et_eas_log_parse_only(const char *s, size_t n, const char *first, struct et_eas_log *o)
{
    uint64_t want_bits[4] = {0}; /* the bytes of `first`, as a set */
    size_t seen = 0;

    for (const char *f = first; f != NULL && *f != '\0'; f++)
        want_bits[(uint8_t)*f >> 6] |= 1ULL << ((uint8_t)*f & 63);

    log_clear(o);
    if (n == 0)
        return; /* s may be NULL */
    if (parse_2003(s, n, o))
        return;
#ifdef __SSE2__
    if (first != NULL && parse_wanted_simd(s, n, want_bits, o))
        return;
#endif
    const char *p = s, *end = s + n;
    while (p < end) {
        /* The item ends at the next '_'; a ':' before it splits name and value. An item
         * whose first byte the caller does not want is only stepped over (it still counts
         * towards the cap, so the stored items are those a full parse stores). */
        int want = first == NULL || ((want_bits[(uint8_t)*p >> 6] >> ((uint8_t)*p & 63)) & 1);
        const char *ie, *colon = NULL;
        if ((ie = find_sep(p, end, want)) < end && *ie == ':') {
            colon = ie;
            ie = find_sep(ie + 1, end, 0);
        }
        if (ie > p && ++seen > ET_EAS_LOG_MAX_ITEMS) {
            o->dropped++;
        } else if (ie > p && want) {
            add_item(o, p, colon, ie);
        }
        if (ie == end)
            break;
        p = ie + 1;
    }
}


size_t et_iis_url_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen == 0)
        return 0;
    for (size_t i = 0; i < n && o + 1 < outlen; i++) {
        int hi = i + 2 < n ? et_hex_digit((unsigned char)s[i + 1]) : -1;
        int lo = i + 2 < n ? et_hex_digit((unsigned char)s[i + 2]) : -1;
        if (s[i] == '%' && hi >= 0 && lo >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return o;
}

static int num(const char *s, size_t n, int *v)
{
    int r = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return -1;
        r = r * 10 + (s[i] - '0');
    }
    *v = r;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int et_iis_time_parse(const char *date, size_t dn, const char *time, size_t tn, int64_t *us)
{
    int y, mo, d, h, mi, sec;
    if (dn != 10 || date[4] != '-' || date[7] != '-')
        return ET_EPARSE;
    if (num(date, 4, &y) || num(date + 5, 2, &mo) || num(date + 8, 2, &d))
        return ET_EPARSE;
    if (tn < 8 || time[2] != ':' || time[5] != ':')
        return ET_EPARSE;
    if (num(time, 2, &h) || num(time + 3, 2, &mi) || num(time + 6, 2, &sec))
        return ET_EPARSE;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return ET_EPARSE;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    int64_t frac = 0;
    if (tn > 8) { /* optional ".mmm" */
        int f = 0;
        if (time[8] != '.' || tn > 12 || num(time + 9, tn - 9, &f))
            return ET_EPARSE;
        for (size_t k = tn - 9; k < 6; k++)
            f *= 10;
        frac = f;
    }
    *us = t * 1000000 + frac;
    return 0;
}

static void set_slice(struct et_slice *dst, const char *v)
{
    if (v != NULL) {
        dst->ptr = (const uint8_t *)v;
        dst->len = strlen(v);
    }
}

int et_iis_query_decode_base64(struct et_iis_query *q, struct et_arena *a)
{
    static const char path[] = "/Microsoft-Server-ActiveSync?";
    struct et_eas_request req;
    struct et_error e;
    char *target;
    int rc;

    if (!q->base64 || q->raw.len == 0)
        return ET_EINVAL;
    target = et_arena_alloc(a, sizeof(path) + q->raw.len);
    if (target == NULL)
        return ET_ENOMEM;
    memcpy(target, path, sizeof(path) - 1);
    memcpy(target + sizeof(path) - 1, q->raw.ptr, q->raw.len);
    target[sizeof(path) - 1 + q->raw.len] = '\0';
    et_error_clear(&e);
    rc = et_eas_query_parse(target, a, &req, &e);
    /* Fields decoded before an error are still worth having. */
    set_slice(&q->cmd, req.cmd);
    set_slice(&q->user, req.user);
    set_slice(&q->device_id, req.device_id);
    set_slice(&q->device_type, req.device_type);
    return rc;
}

int et_iis_date_normalize(const char *d, char out[11])
{
    if (strlen(d) != 10)
        return ET_EPARSE;
    if (d[4] == '-' && d[7] == '-') {
        memcpy(out, d, 10);
    } else if (d[2] == '-' && d[5] == '-') {
        memcpy(out, d + 6, 4);
        out[4] = '-';
        memcpy(out + 5, d, 2);
        out[7] = '-';
        memcpy(out + 8, d + 3, 2);
    } else {
        return ET_EPARSE;
    }
    out[10] = '\0';
    return 0;
}
