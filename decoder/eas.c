/*
 * The EAS request: the query of /Microsoft-Server-ActiveSync in its two forms and the EAS
 * headers ([MS-ASHTTP] 2.2.1.1.1 and 2.2.1.1.2, 2.2.2.1.2).
 *
 * Base64 form ([MS-ASHTTP] 2.2.1.1.1.1), after base64 decoding:
 *
 *   +---------+---------+-----------+-------+-----------+-------+-------------+
 *   | version | command | locale    | devid | device ID | pklen | policy key  |
 *   | 1 byte  | 1 byte  | 2 byte LE | len 1 | devid len | 0|4   | uint32 LE   |
 *   +---------+---------+-----------+-------+-----------+-------+-------------+
 *   | dtlen 1 | device type (dtlen) | { tag 1 | len 1 | value (len) } ...     |
 *   +---------+---------------------+---------------------------------------+
 *
 * version is the protocol times ten (121, 140, 141, 160, 161); tag 7 (Options) carries bits
 * 0x01 SaveInSent and 0x02 AcceptMultiPart.
 */
#include "eastrace/eas.h"

#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define EAS_QUERY_MAX 65536 /* cap on the decoded query we hold */

/* [MS-ASHTTP] 2.2.1.1.1.1.2 Command Codes; 23 Find came with 16.1. */
static const char *const command_names[] = {
    [0] = "Sync",          [1] = "SendMail",        [2] = "SmartForward",
    [3] = "SmartReply",    [4] = "GetAttachment",   [9] = "FolderSync",
    [10] = "FolderCreate", [11] = "FolderDelete",   [12] = "FolderUpdate",
    [13] = "MoveItems",    [14] = "GetItemEstimate", [15] = "MeetingResponse",
    [16] = "Search",       [17] = "Settings",       [18] = "Ping",
    [19] = "ItemOperations", [20] = "Provision",    [21] = "ResolveRecipients",
    [22] = "ValidateCert", [23] = "Find",
};

/* Plain-form command names that have no base64 code (older protocol versions). */
static const char *const plain_only_commands[] = {
    "GetHierarchy", "CreateCollection", "DeleteCollection", "MoveCollection", "Options",
    "Autodiscover", "Notify",
};

/* [MS-ASHTTP] 2.2.1.1.1.1.3 Command Parameters; 2 and 5 are in earlier revisions only. */
static const char *const param_names[] = {
    [0] = "AttachmentName", [1] = "CollectionId", [2] = "CollectionName", [3] = "ItemId",
    [4] = "LongId",         [5] = "ParentId",     [6] = "Occurrence",     [7] = "Options",
    [8] = "User",
};

/* A few [MS-LCID] locales that EAS clients send most. */
static const struct {
    uint16_t id;
    const char *name;
} locales[] = {
    {0x0401, "ar-SA"}, {0x0404, "zh-TW"}, {0x0405, "cs-CZ"}, {0x0406, "da-DK"},
    {0x0407, "de-DE"}, {0x0408, "el-GR"}, {0x0409, "en-US"}, {0x040B, "fi-FI"},
    {0x040C, "fr-FR"}, {0x040D, "he-IL"}, {0x040E, "hu-HU"}, {0x0410, "it-IT"},
    {0x0411, "ja-JP"}, {0x0412, "ko-KR"}, {0x0413, "nl-NL"}, {0x0414, "nb-NO"},
    {0x0415, "pl-PL"}, {0x0416, "pt-BR"}, {0x0419, "ru-RU"}, {0x041D, "sv-SE"},
    {0x041F, "tr-TR"}, {0x0804, "zh-CN"}, {0x0807, "de-CH"}, {0x0809, "en-GB"},
    {0x080A, "es-MX"}, {0x0816, "pt-PT"}, {0x0C07, "de-AT"}, {0x0C09, "en-AU"},
    {0x0C0A, "es-ES"}, {0x0C0C, "fr-CA"}, {0x1009, "en-CA"},
};

const char *et_eas_command_name(int code)
{
    if (code < 0 || (size_t)code >= NELEM(command_names))
        return NULL;
    return command_names[code];
}

int et_eas_command_code(const char *name)
{
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < NELEM(command_names); i++)
        if (command_names[i] != NULL && et_strcaseeq(command_names[i], name))
            return (int)i;
    return -1;
}

static int command_known(const char *name)
{
    if (et_eas_command_code(name) >= 0)
        return 1;
    for (size_t i = 0; i < NELEM(plain_only_commands); i++)
        if (et_strcaseeq(plain_only_commands[i], name))
            return 1;
    return 0;
}

/* ---- path ------------------------------------------------------------------------------ */

static const char *const eas_paths[] = {
    "/Microsoft-Server-ActiveSync",
    "/Microsoft-Server-ActiveSync/",
    "/Microsoft-Server-ActiveSync/default.eas",
    "/Microsoft-Server-ActiveSync/Proxy",
    "/Microsoft-Server-ActiveSync/Proxy/",
    "/Microsoft-Server-ActiveSync/Proxy/default.eas",
};

/* The endpoint may sit below a prefix (SOGo serves /SOGo/Microsoft-Server-ActiveSync, reverse
 * proxies add their own): match the last "/Microsoft-Server-ActiveSync" segment onwards. */
static int eas_path(const char *p, size_t n)
{
    static const char seg[] = "/Microsoft-Server-ActiveSync";
    const size_t sl = sizeof(seg) - 1;
    size_t start = n;

    for (size_t k = 0; k + sl <= n; k++)
        if (et_strncaseeq(p + k, seg, sl) && (k + sl == n || p[k + sl] == '/'))
            start = k;
    if (start == n)
        return 0;
    p += start;
    n -= start;
    for (size_t i = 0; i < NELEM(eas_paths); i++)
        if (strlen(eas_paths[i]) == n && et_strncaseeq(eas_paths[i], p, n))
            return 1;
    return 0;
}

/* ---- helpers ----------------------------------------------------------------------------- */


/* Percent-decodes s[0..n) into the arena. base is the offset of s in the target, for errors.
 * Returns NULL with e set on a bad escape or ENOMEM; *outlen gets the decoded length. */
static char *pct_decode(struct et_arena *a, const char *s, size_t n, size_t base,
                        size_t *outlen, struct et_error *e)
{
    char *d = et_arena_alloc(a, n + 1);
    size_t j = 0;

    if (d == NULL) {
        et_error_set(e, ET_ENOMEM, "out of memory decoding the query");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[j++] = s[i];
            continue;
        }
        int hi = i + 1 < n ? et_hex_digit((unsigned char)s[i + 1]) : -1;
        int lo = i + 2 < n ? et_hex_digit((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            et_error_set_at(e, ET_EPARSE, base + i, "bad percent escape in the query");
            return NULL;
        }
        d[j++] = (char)(hi << 4 | lo);
        i += 2;
    }
    d[j] = '\0';
    if (outlen != NULL)
        *outlen = j;
    return d;
}

static int printable_ascii(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7e)
            return 0;
    return 1;
}

/* Text when printable ASCII, else uppercase hex. */
static char *bytes_text(struct et_arena *a, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    char *s;

    if (printable_ascii(p, n))
        return et_arena_strndup(a, (const char *)p, n);
    s = et_arena_alloc(a, n * 2 + 1);
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = hex[p[i] >> 4];
        s[2 * i + 1] = hex[p[i] & 15];
    }
    s[2 * n] = '\0';
    return s;
}

/* Microsoft GUID text of 16 bytes: the first three fields are little-endian. */
static char *guid_text(struct et_arena *a, const uint8_t *g)
{
    return et_arena_printf(a,
                           "{%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-"
                           "%02X%02X%02X%02X%02X%02X}",
                           g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10],
                           g[11], g[12], g[13], g[14], g[15]);
}

static int add_param(struct et_arena *a, struct et_eas_request *r, size_t *cap,
                     const char *name, const char *value)
{
    if (r->nparams == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct et_eas_param *v = et_arena_alloc(a, ncap * sizeof(*v));
        if (v == NULL)
            return ET_ENOMEM;
        if (r->nparams)
            memcpy(v, r->params, r->nparams * sizeof(*v));
        r->params = v;
        *cap = ncap;
    }
    r->params[r->nparams].name = name;
    r->params[r->nparams].value = value;
    r->nparams++;
    return 0;
}

/* ---- base64 form ------------------------------------------------------------------------ */

/* Offset in the base64 text of decoded byte i (the character holding its first bits). */
static size_t b64_offset(size_t qoff, int exact, size_t i)
{
    return exact ? qoff + i * 4 / 3 : qoff;
}

static int parse_base64(const char *q, size_t qn, size_t qoff, struct et_arena *a,
                        struct et_eas_request *r, struct et_error *e)
{
    struct et_buf b;
    struct et_error be;
    const char *text = q;
    size_t tn = qn, i = 0, cap = 0;
    int rc = 0, exact = 1;
    const uint8_t *p;
    size_t n;

    et_buf_init(&b, EAS_QUERY_MAX);
    et_error_clear(&be);
    if (memchr(q, '%', qn) != NULL) {
        /* Some clients percent-encode '+', '/' and '='; offsets then no longer map 1:1. */
        text = pct_decode(a, q, qn, qoff, &tn, e);
        if (text == NULL)
            return e->code;
        exact = 0;
    }
    rc = et_base64_decode(&b, text, tn, &be);
    if (rc != 0) {
        if (rc == ET_EPARSE)
            et_error_set_at(e, rc, exact ? qoff + be.offset : qoff,
                            "base64 query: %s", be.msg);
        else
            et_error_set(e, rc, "base64 query: %s", et_strerror(rc));
        goto out;
    }
    p = b.data;
    n = b.len;

#define NEED(k, what)                                                                          \
    do {                                                                                       \
        if (n - i < (size_t)(k)) {                                                             \
            rc = ET_ETRUNC;                                                                    \
            et_error_set_at(e, rc, b64_offset(qoff, exact, i),                                 \
                            "base64 query ends inside the %s (decoded byte %zu of %zu)", what, \
                            i, n);                                                             \
            goto out;                                                                          \
        }                                                                                      \
    } while (0)
#define ALLOC_OK(ptr)                                                                          \
    do {                                                                                       \
        if ((ptr) == NULL) {                                                                   \
            rc = ET_ENOMEM;                                                                    \
            et_error_set(e, rc, "out of memory decoding the query");                           \
            goto out;                                                                          \
        }                                                                                      \
    } while (0)

    r->base64_form = 1;
    NEED(1, "protocol version");
    r->protocol = et_arena_printf(a, "%u.%u", p[i] / 10u, p[i] % 10u);
    ALLOC_OK(r->protocol);
    i++;
    NEED(1, "command code");
    r->cmd_code = p[i];
    r->cmd = et_eas_command_name(p[i]);
    r->cmd_known = r->cmd != NULL;
    if (r->cmd == NULL) {
        r->cmd = et_arena_printf(a, "Unknown(0x%02X)", p[i]);
        ALLOC_OK(r->cmd);
    }
    i++;
    NEED(2, "locale");
    r->locale_id = p[i] | p[i + 1] << 8;
    for (size_t k = 0; k < NELEM(locales); k++)
        if (locales[k].id == r->locale_id)
            r->locale = locales[k].name;
    if (r->locale == NULL) {
        r->locale = et_arena_printf(a, "0x%04X", (unsigned)r->locale_id);
        ALLOC_OK(r->locale);
    }
    i += 2;
    NEED(1, "device ID length");
    {
        size_t len = p[i];
        if (len == 0) {
            rc = ET_EPARSE;
            et_error_set_at(e, rc, b64_offset(qoff, exact, i),
                            "base64 query: device ID length is 0 (decoded byte %zu)", i);
            goto out;
        }
        i++;
        NEED(len, "device ID");
        r->device_id = bytes_text(a, p + i, len);
        ALLOC_OK(r->device_id);
        if (len == 16 && !printable_ascii(p + i, len)) {
            r->device_guid = guid_text(a, p + i);
            ALLOC_OK(r->device_guid);
        }
        i += len;
    }
    NEED(1, "policy key length");
    if (p[i] != 0 && p[i] != 4) {
        rc = ET_EPARSE;
        et_error_set_at(e, rc, b64_offset(qoff, exact, i),
                        "base64 query: policy key length %u is neither 0 nor 4 "
                        "(decoded byte %zu)", p[i], i);
        goto out;
    }
    if (p[i++] == 4) {
        NEED(4, "policy key");
        uint32_t k = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 |
                     (uint32_t)p[i + 3] << 24;
        r->policy_key = et_arena_printf(a, "%lu", (unsigned long)k);
        ALLOC_OK(r->policy_key);
        i += 4;
    }
    NEED(1, "device type length");
    {
        size_t len = p[i++];
        NEED(len, "device type");
        r->device_type = bytes_text(a, p + i, len);
        ALLOC_OK(r->device_type);
        i += len;
    }
    while (i < n) {
        unsigned tag = p[i];
        const char *name;
        char *value;
        size_t len;

        i++;
        NEED(1, "command parameter length");
        len = p[i++];
        NEED(len, "command parameter value");
        name = tag < NELEM(param_names) ? param_names[tag] : NULL;
        if (name == NULL) {
            name = et_arena_printf(a, "Tag(0x%02X)", tag);
            ALLOC_OK(name);
        }
        if (tag == 7) {
            /* Options: one byte of flags. A longer value keeps the first byte's flags. */
            if (len >= 1) {
                r->has_options = 1;
                r->options = p[i];
                r->save_in_sent = (p[i] & 0x01) != 0;
                r->accept_multipart = (p[i] & 0x02) != 0;
            }
            value = et_arena_printf(a, "0x%02X", len >= 1 ? p[i] : 0);
        } else {
            value = bytes_text(a, p + i, len);
        }
        ALLOC_OK(value);
        if (tag == 8)
            r->user = value;
        if ((rc = add_param(a, r, &cap, name, value)) != 0) {
            et_error_set(e, rc, "out of memory decoding the query");
            goto out;
        }
        i += len;
    }
#undef NEED
#undef ALLOC_OK
out:
    et_buf_free(&b);
    return rc;
}

/* ---- plain form -------------------------------------------------------------------------- */

static int parse_plain(const char *q, size_t qn, size_t qoff, struct et_arena *a,
                       struct et_eas_request *r, struct et_error *e)
{
    size_t i = 0, cap = 0;
    int rc;

    while (i <= qn) {
        size_t start = i, eq = (size_t)-1;
        while (i < qn && q[i] != '&') {
            if (q[i] == '=' && eq == (size_t)-1)
                eq = i;
            i++;
        }
        if (i > start) {
            size_t nend = eq != (size_t)-1 ? eq : i;
            const char *name = pct_decode(a, q + start, nend - start, qoff + start, NULL, e);
            const char *value =
                eq != (size_t)-1 ? pct_decode(a, q + eq + 1, i - eq - 1, qoff + eq + 1, NULL, e)
                                 : "";
            if (name == NULL || value == NULL)
                return e->code;
            if (et_strcaseeq(name, "Cmd")) {
                r->cmd = value;
                r->cmd_known = command_known(value) != 0;
            } else if (et_strcaseeq(name, "User")) {
                r->user = value;
            } else if (et_strcaseeq(name, "DeviceId")) {
                r->device_id = value;
            } else if (et_strcaseeq(name, "DeviceType")) {
                r->device_type = value;
            } else {
                if (et_strcaseeq(name, "SaveInSent"))
                    r->save_in_sent = value[0] == 'T' || value[0] == 't';
                if ((rc = add_param(a, r, &cap, name, value)) != 0) {
                    et_error_set(e, rc, "out of memory decoding the query");
                    return rc;
                }
            }
        }
        i++;
    }
    return 0;
}

/* A query is in the plain form when it has a name=value pair or an '&'; base64 text has
 * '=' only as trailing padding. */
static int looks_plain(const char *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (q[i] == '&')
            return 1;
        if (q[i] == '=') {
            for (size_t j = i; j < n; j++)
                if (q[j] != '=')
                    return 1;
            return 0;
        }
    }
    /* A query without '=' at all: base64 unless it is empty. */
    return n == 0;
}

int et_eas_query_parse(const char *target, struct et_arena *a, struct et_eas_request *out,
                       struct et_error *e)
{
    const char *path, *q;
    size_t plen, qn, qoff;

    memset(out, 0, sizeof(*out));
    out->cmd_code = -1;
    out->locale_id = -1;
    if (target == NULL || a == NULL) {
        et_error_set(e, ET_EINVAL, "no request target");
        return ET_EINVAL;
    }
    path = target;
    /* absolute-form: skip "scheme://authority". */
    {
        const char *sep = strstr(target, "://");
        const char *qm = strchr(target, '?');
        if (sep != NULL && (qm == NULL || sep < qm) && target[0] != '/') {
            path = strchr(sep + 3, '/');
            if (path == NULL) {
                et_error_set_at(e, ET_EUNSUPPORTED, 0,
                                "not an ActiveSync request: no path in the target");
                return ET_EUNSUPPORTED;
            }
        }
    }
    q = strchr(path, '?');
    plen = q != NULL ? (size_t)(q - path) : strlen(path);
    {
        /* Drop a fragment, which no client should send but a pasted URL may carry. */
        const char *frag = memchr(path, '#', plen);
        if (frag != NULL)
            plen = (size_t)(frag - path);
    }
    out->path = et_arena_strndup(a, path, plen);
    if (out->path == NULL) {
        et_error_set(e, ET_ENOMEM, "out of memory decoding the query");
        return ET_ENOMEM;
    }
    if (!eas_path(path, plen)) {
        et_error_set_at(e, ET_EUNSUPPORTED, (uint64_t)(path - target),
                        "not an ActiveSync request: path is not /Microsoft-Server-ActiveSync");
        return ET_EUNSUPPORTED;
    }
    out->is_eas = 1;
    if (q == NULL)
        return 0; /* OPTIONS and Autodiscover-style requests carry no query */
    q++;
    qoff = (size_t)(q - target);
    qn = strlen(q);
    {
        const char *frag = memchr(q, '#', qn);
        if (frag != NULL)
            qn = (size_t)(frag - q);
    }
    if (qn == 0)
        return 0;
    if (qn > EAS_QUERY_MAX) {
        et_error_set_at(e, ET_ETOOBIG, qoff, "query of %zu bytes is over the %d-byte cap", qn,
                        EAS_QUERY_MAX);
        return ET_ETOOBIG;
    }
    if (looks_plain(q, qn))
        return parse_plain(q, qn, qoff, a, out, e);
    return parse_base64(q, qn, qoff, a, out, e);
}

/* ---- headers ---------------------------------------------------------------------------- */

static void wipe(void *p, size_t n)
{
    /* A volatile pointer keeps the compiler from dropping the stores (no explicit_bzero in
     * C11). */
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

static int parse_auth(const char *value, struct et_arena *a, struct et_eas_request *r)
{
    size_t sl = 0;
    const char *cred;

    while (value[sl] != '\0' && value[sl] != ' ' && value[sl] != '\t')
        sl++;
    if (sl == 0)
        return 0;
    r->auth_scheme = et_arena_strndup(a, value, sl);
    if (r->auth_scheme == NULL)
        return ET_ENOMEM;
    if (!et_strcaseeq(r->auth_scheme, "Basic"))
        return 0;
    cred = value + sl;
    while (*cred == ' ' || *cred == '\t')
        cred++;
    {
        struct et_buf b;
        struct et_error be;
        int rc = 0;
        et_buf_init(&b, 4096);
        et_error_clear(&be);
        if (et_base64_decode(&b, cred, strlen(cred), &be) == 0) {
            const uint8_t *colon = memchr(b.data, ':', b.len);
            size_t ul = colon != NULL ? (size_t)(colon - b.data) : b.len;
            r->auth_user = bytes_text(a, b.data, ul);
            if (r->auth_user == NULL)
                rc = ET_ENOMEM;
        }
        if (b.data != NULL)
            wipe(b.data, b.cap);
        et_buf_free(&b);
        return rc;
    }
}

int et_eas_request_parse(const struct et_exchange *x, struct et_arena *a,
                         struct et_eas_request *out, struct et_error *e)
{
    const struct et_headers *h;
    const char *v;
    int rc;

    if (x == NULL || !x->has_request || x->req.target == NULL) {
        memset(out, 0, sizeof(*out));
        out->cmd_code = -1;
        out->locale_id = -1;
        et_error_set(e, ET_EINVAL, "exchange has no request");
        return ET_EINVAL;
    }
    rc = et_eas_query_parse(x->req.target, a, out, e);
    if (rc == ET_ENOMEM || rc == ET_EINVAL)
        return rc;
    h = &x->req.headers;
    /* Headers still count after a malformed query: they tell who sent it. Of a request that
     * is not ActiveSync (Autodiscover, OWA) only the Basic user, which --user and
     * --only-user match. */
    if (rc != ET_EUNSUPPORTED) {
        if (out->protocol == NULL && (v = et_headers_get(h, "MS-ASProtocolVersion")) != NULL)
            out->protocol = v;
        if (out->policy_key == NULL && (v = et_headers_get(h, "X-MS-PolicyKey")) != NULL)
            out->policy_key = v;
        if ((v = et_headers_get(h, "MS-ASAcceptMultiPart")) != NULL &&
            (v[0] == 'T' || v[0] == 't'))
            out->accept_multipart = 1;
        out->user_agent = et_headers_get(h, "User-Agent");
    }
    if ((v = et_headers_get(h, "Authorization")) != NULL && parse_auth(v, a, out) != 0) {
        et_error_set(e, ET_ENOMEM, "out of memory decoding the Authorization header");
        return ET_ENOMEM;
    }
    return rc;
}

void et_eas_response_info(const struct et_exchange *x, struct et_eas_response_info *out)
{
    const struct et_headers *h;

    memset(out, 0, sizeof(*out));
    if (x == NULL || !x->has_response)
        return;
    h = &x->resp.headers;
    out->http_status = x->resp.status;
    out->http_meaning = et_eas_http_status_meaning(x->resp.status);
    out->server_version = et_headers_get(h, "MS-Server-ActiveSync");
    out->protocol_versions = et_headers_get(h, "MS-ASProtocolVersions");
    out->protocol_commands = et_headers_get(h, "MS-ASProtocolCommands");
    out->throttle = et_headers_get(h, "X-MS-ASThrottle");
    out->location = et_headers_get(h, "X-MS-Location");
    out->retry_after = et_headers_get(h, "Retry-After");
    out->rp = et_headers_get(h, "X-MS-RP");
    out->credentials_expire = et_headers_get(h, "X-MS-Credentials-Expire");
    out->credential_service_url = et_headers_get(h, "X-MS-Credential-Service-Url");
    out->content_type = et_headers_get(h, "Content-Type");
}

/* ---- rendering ---------------------------------------------------------------------------- */

/* Appends s with control characters and spaces escaped as %XX, so the line stays one line
 * and each value one word. */
static int put_value(struct et_buf *out, const char *s)
{
    int rc = 0;
    for (; *s != '\0' && rc == 0; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c == 0x7f || c == '%')
            rc = et_buf_printf(out, "%%%02X", c);
        else
            rc = et_buf_putc(out, c);
    }
    return rc;
}

static int put_field(struct et_buf *out, const char *label, const char *v)
{
    int rc;
    if (v == NULL)
        return 0;
    if ((rc = et_buf_printf(out, " %s=", label)) != 0)
        return rc;
    return put_value(out, v);
}

int et_eas_request_line(const struct et_eas_request *r, struct et_buf *out)
{
    int rc;

    if (!r->is_eas)
        return et_buf_puts(out, "(not an ActiveSync request)");
    if ((rc = put_value(out, r->cmd != NULL ? r->cmd : "(no command)")) != 0)
        return rc;
    if ((rc = put_field(out, "user", r->user)) != 0 ||
        (rc = put_field(out, "device", r->device_id)) != 0 ||
        (rc = put_field(out, "type", r->device_type)) != 0)
        return rc;
    if (r->protocol != NULL) {
        if ((rc = et_buf_puts(out, " v")) != 0 || (rc = put_value(out, r->protocol)) != 0)
            return rc;
    }
    if ((rc = put_field(out, "policy", r->policy_key)) != 0 ||
        (rc = put_field(out, "locale", r->locale)) != 0)
        return rc;
    if (r->base64_form && (rc = et_buf_puts(out, " [base64]")) != 0)
        return rc;
    for (size_t i = 0; i < r->nparams; i++) {
        const struct et_eas_param *p = &r->params[i];
        if (strcmp(p->name, "User") == 0 || strcmp(p->name, "Options") == 0)
            continue; /* shown as user= and as the flags below */
        if ((rc = put_field(out, p->name, p->value)) != 0)
            return rc;
    }
    if (r->save_in_sent && (rc = et_buf_puts(out, " SaveInSent")) != 0)
        return rc;
    if (r->accept_multipart && (rc = et_buf_puts(out, " AcceptMultiPart")) != 0)
        return rc;
    if (r->has_options && (r->options & ~0x03u) != 0 &&
        (rc = et_buf_printf(out, " Options=0x%02X", r->options)) != 0)
        return rc;
    if (r->auth_scheme != NULL) {
        if ((rc = et_buf_puts(out, " auth=")) != 0 || (rc = put_value(out, r->auth_scheme)) != 0)
            return rc;
        if (r->auth_user != NULL &&
            ((rc = et_buf_putc(out, ':')) != 0 || (rc = put_value(out, r->auth_user)) != 0))
            return rc;
    }
    return 0;
}

/* ---- redaction --------------------------------------------------------------------------- */

static const char *const secret_params[] = {
    "Password", "Pwd", "Passwd", "Token", "access_token", "jwt", "auth", "Authorization",
    "Key", "Secret", "Credential", "Credentials",
};

static int is_secret_param(const char *name, size_t n)
{
    for (size_t i = 0; i < NELEM(secret_params); i++)
        if (strlen(secret_params[i]) == n && et_strncaseeq(secret_params[i], name, n))
            return 1;
    return 0;
}

static int redact_plain(const char *q, size_t qn, unsigned flags, struct et_buf *out)
{
    size_t i = 0;
    int rc = 0;

    while (i < qn && rc == 0) {
        size_t start = i, eq = (size_t)-1;
        while (i < qn && q[i] != '&') {
            if (q[i] == '=' && eq == (size_t)-1)
                eq = i;
            i++;
        }
        if (eq == (size_t)-1) {
            rc = et_buf_append(out, q + start, i - start);
        } else {
            size_t nl = eq - start;
            int hide = is_secret_param(q + start, nl) ||
                       ((flags & ET_EAS_REDACT_IDENTITY) &&
                        ((nl == 4 && et_strncaseeq(q + start, "User", 4)) ||
                         (nl == 8 && et_strncaseeq(q + start, "DeviceId", 8))));
            rc = et_buf_append(out, q + start, nl + 1);
            if (rc == 0)
                rc = hide ? et_buf_puts(out, "REDACTED")
                          : et_buf_append(out, q + eq + 1, i - eq - 1);
        }
        if (rc == 0 && i < qn)
            rc = et_buf_putc(out, '&');
        i++;
    }
    return rc;
}

/* Re-encodes a parsed base64 query with identity fields replaced. */
static int redact_base64(const struct et_eas_request *r, struct et_buf *out)
{
    static const char red[] = "REDACTED";
    uint8_t bin[1024];
    size_t n = 0, rl = sizeof(red) - 1;
    unsigned ver = 0;
    const char *dot = strchr(r->protocol, '.');
    int rc;

    for (const char *s = r->protocol; s < dot; s++)
        ver = ver * 10u + (unsigned)(*s - '0');
    ver = ver * 10u + (unsigned)(dot[1] - '0');
    bin[n++] = (uint8_t)ver;
    bin[n++] = (uint8_t)r->cmd_code;
    bin[n++] = (uint8_t)(r->locale_id & 0xff);
    bin[n++] = (uint8_t)(r->locale_id >> 8);
    bin[n++] = (uint8_t)rl;
    memcpy(bin + n, red, rl);
    n += rl;
    if (r->policy_key != NULL) {
        unsigned long k = 0;
        for (const char *s = r->policy_key; *s; s++)
            k = k * 10u + (unsigned long)(*s - '0');
        bin[n++] = 4;
        for (int s = 0; s < 32; s += 8)
            bin[n++] = (uint8_t)(k >> s);
    } else {
        bin[n++] = 0;
    }
    /* The device type and parameters are copied from the original bytes' decoded text; as
     * they were shown as hex when binary, only text values are kept verbatim. */
    {
        size_t dl = r->device_type != NULL ? strlen(r->device_type) : 0;
        if (dl > 255 || n + 1 + dl > sizeof(bin))
            return ET_EUNSUPPORTED; /* longer than any real query */
        bin[n++] = (uint8_t)dl;
        memcpy(bin + n, r->device_type, dl);
        n += dl;
    }
    for (size_t i = 0; i < r->nparams; i++) {
        const struct et_eas_param *p = &r->params[i];
        int tag = -1;
        for (size_t t = 0; t < NELEM(param_names); t++)
            if (param_names[t] != NULL && strcmp(param_names[t], p->name) == 0)
                tag = (int)t;
        if (tag < 0)
            continue; /* unknown tags are dropped: their meaning is unknown */
        if (tag == 7) {
            if (n + 3 > sizeof(bin))
                return ET_EUNSUPPORTED; /* longer than any real query */
            bin[n++] = 7;
            bin[n++] = 1;
            bin[n++] = r->options;
            continue;
        }
        const char *v = tag == 8 ? red : p->value;
        size_t vl = strlen(v);
        if (vl > 255 || n + 2 + vl > sizeof(bin))
            return ET_EUNSUPPORTED; /* longer than any real query */
        bin[n++] = (uint8_t)tag;
        bin[n++] = (uint8_t)vl;
        memcpy(bin + n, v, vl);
        n += vl;
    }
    rc = et_base64_encode(out, bin, n);
    return rc;
}

int et_eas_query_redact(const char *target, unsigned flags, struct et_buf *out)
{
    struct et_arena *a;
    struct et_eas_request r;
    struct et_error e;
    const char *q = strchr(target, '?');
    size_t before = out->len;
    int rc;

    if (q == NULL)
        return et_buf_puts(out, target);
    if ((rc = et_buf_append(out, target, (size_t)(q - target) + 1)) != 0)
        return rc;
    a = et_arena_new(0);
    if (a == NULL)
        return ET_ENOMEM;
    et_error_clear(&e);
    rc = et_eas_query_parse(target, a, &r, &e);
    if (rc == 0 && !r.base64_form) {
        rc = redact_plain(q + 1, strlen(q + 1), flags, out);
    } else if (rc == 0 && !(flags & ET_EAS_REDACT_IDENTITY)) {
        rc = et_buf_puts(out, q + 1); /* no credentials in the base64 layout */
    } else if (rc == 0) {
        size_t mark = out->len;
        rc = redact_base64(&r, out);
        if (rc == ET_EUNSUPPORTED) {
            out->len = mark;
            rc = et_buf_puts(out, "REDACTED");
        }
    } else if (rc != ET_ENOMEM) {
        rc = et_buf_puts(out, "REDACTED");
    }
    if (rc != 0 && rc != ET_ENOMEM && rc != ET_ETOOBIG)
        rc = 0;
    if (rc != 0)
        out->len = before; /* leave nothing half-written */
    if (out->data != NULL)
        out->data[out->len] = '\0';
    et_arena_free(a);
    return rc;
}

int et_eas_auth_redact(const char *value, struct et_buf *out)
{
    struct et_arena *a = et_arena_new(0);
    struct et_eas_request r;
    int rc;

    if (a == NULL)
        return ET_ENOMEM;
    memset(&r, 0, sizeof(r));
    rc = parse_auth(value, a, &r);
    if (rc == 0) {
        rc = et_buf_printf(out, "%s REDACTED", r.auth_scheme ? r.auth_scheme : "");
        if (rc == 0 && r.auth_user != NULL) {
            rc = et_buf_puts(out, " (user=");
            if (rc == 0)
                rc = put_value(out, r.auth_user);
            if (rc == 0)
                rc = et_buf_putc(out, ')');
        }
    }
    et_arena_free(a);
    return rc;
}
