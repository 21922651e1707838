/*
 * The engine URL, the schema and the loader.
 *
 * Loading (bounded memory: one 256 KiB chunk buffer, one line buffer, the list of files of
 * the current batch):
 *
 *   et_iis_rows_next --> row as RowBinary --> chunk --> INSERT ... FORMAT RowBinary
 *        |  2: a file ended -> its counters wait for the batch    (one POST per batch_rows)
 *        +--> batch full or end: end the POST, then insert the counters of its files
 *
 * seq numbers rows in load order across loads (max(seq) + 1 at the start), so "first seen"
 * columns (a device's user agent, ...) come out as the local report's, which takes the first
 * line it reads.
 */
#include "ch_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "eastrace/iis.h"
#include "eastrace/loglines.h"
#include "eastrace/iisrows.h"

/* ---- URL ------------------------------------------------------------------------------ */

static int ident_ok(const char *s, size_t n)
{
    if (n == 0 || n >= 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return !(s[0] >= '0' && s[0] <= '9');
}

int et_ch_url_parse(const char *url, struct et_ch_url *u, struct et_error *e)
{
    static const char form[] = "clickhouse://[USER@]HOST[:PORT]/DB[?table=NAME]";
    const char *p, *slash, *hs, *at, *q;
    memset(u, 0, sizeof(*u));
    u->port = 8123;
    snprintf(u->table, sizeof(u->table), "%s", ET_CH_TABLE);
    if (strncmp(url, "clickhouse://", 13) != 0) {
        et_error_set(e, ET_EINVAL, "engine URL '%.80s': must start with clickhouse:// (%s)", url,
                     form);
        return ET_EINVAL;
    }
    p = url + 13;
    slash = strchr(p, '/');
    if (slash == NULL) {
        et_error_set(e, ET_EINVAL, "engine URL '%.80s': no database (%s)", url, form);
        return ET_EINVAL;
    }
    at = memchr(p, '@', (size_t)(slash - p));
    hs = p;
    if (at != NULL) {
        if (memchr(p, ':', (size_t)(at - p)) != NULL) {
            et_error_set(e, ET_EINVAL,
                         "engine URL: no password in the URL (command lines are visible to "
                         "every user); set CLICKHOUSE_PASSWORD");
            return ET_EINVAL;
        }
        /* A user name may hold more than identifier characters (it goes base64-encoded in
         * an Authorization header), but no controls, spaces or '/'. */
        for (const char *c = p; c < at; c++)
            if ((unsigned char)*c <= ' ' || *c == '/' || *c == 0x7f) {
                et_error_set(e, ET_EINVAL, "engine URL: bad user name");
                return ET_EINVAL;
            }
        if ((size_t)(at - p) >= sizeof(u->user)) {
            et_error_set(e, ET_EINVAL, "engine URL: user name too long");
            return ET_EINVAL;
        }
        snprintf(u->user, sizeof(u->user), "%.*s", (int)(at - p), p);
        hs = at + 1;
    }
    const char *he = slash, *colon = NULL;
    if (*hs == '[') {
        const char *rb = memchr(hs, ']', (size_t)(slash - hs));
        if (rb == NULL) {
            et_error_set(e, ET_EINVAL, "engine URL '%.80s': unclosed [ (%s)", url, form);
            return ET_EINVAL;
        }
        snprintf(u->host, sizeof(u->host), "%.*s", (int)(rb - hs - 1), hs + 1);
        if (rb + 1 < slash && rb[1] == ':')
            colon = rb + 1;
        else if (rb + 1 != slash) {
            et_error_set(e, ET_EINVAL, "engine URL '%.80s': bad host (%s)", url, form);
            return ET_EINVAL;
        }
    } else {
        colon = memchr(hs, ':', (size_t)(slash - hs));
        he = colon ? colon : slash;
        if ((size_t)(he - hs) >= sizeof(u->host)) {
            et_error_set(e, ET_EINVAL, "engine URL: host name too long");
            return ET_EINVAL;
        }
        snprintf(u->host, sizeof(u->host), "%.*s", (int)(he - hs), hs);
    }
    if (u->host[0] == '\0') {
        et_error_set(e, ET_EINVAL, "engine URL '%.80s': no host (%s)", url, form);
        return ET_EINVAL;
    }
    for (const char *c = u->host; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '/' || *c == '?' || *c == '#' || *c == '@') {
            et_error_set(e, ET_EINVAL, "engine URL '%.80s': bad host", url);
            return ET_EINVAL;
        }
    if (colon != NULL) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end != slash || end == colon + 1 || port < 1 || port > 65535) {
            et_error_set(e, ET_EINVAL, "engine URL '%.80s': bad port (1-65535)", url);
            return ET_EINVAL;
        }
        u->port = (int)port;
    }
    q = strchr(slash + 1, '?');
    size_t dl = q ? (size_t)(q - slash - 1) : strlen(slash + 1);
    if (!ident_ok(slash + 1, dl)) {
        et_error_set(e, ET_EINVAL,
                     "engine URL '%.80s': the database name must be letters, digits and _ (%s)",
                     url, form);
        return ET_EINVAL;
    }
    snprintf(u->db, sizeof(u->db), "%.*s", (int)dl, slash + 1);
    if (q != NULL) {
        if (strncmp(q + 1, "table=", 6) != 0 || !ident_ok(q + 7, strlen(q + 7)) ||
            strlen(q + 7) + strlen(ET_CH_FILES_SUFFIX) >= sizeof(u->table)) {
            et_error_set(e, ET_EINVAL,
                         "engine URL '%.80s': the only parameter is table=NAME (letters, digits, "
                         "_)", url);
            return ET_EINVAL;
        }
        snprintf(u->table, sizeof(u->table), "%s", q + 7);
    }
    u->password = getenv("CLICKHOUSE_PASSWORD");
    return 0;
}

/* ---- schema --------------------------------------------------------------------------- */

struct col {
    const char *name;
    const char *type; /* NULL: the command enum, built from et_eas_cmd_name */
    const char *what;
};

/* The requests table, one row per EAS request line. Order matters: the loader writes the
 * TabSeparated fields in this order. */
static const struct col req_cols[] = {
    {"time", "DateTime('UTC')", "date + time of the line (UTC); 0 when they do not parse"},
    {"seq", "UInt64", "load order across loads (first seen = smallest)"},
    {"file", "String", "log file as given to --load"},
    {"line", "UInt64", "line number in the file"},
    {"site", "Enum8('frontend' = 1, 'backend' = 2)", "front end or back end (Proxy) vdir"},
    {"server", "String", "s-ip"},
    {"host", "String", "cs-host"},
    {"port", "Int32", "s-port (-1: absent)"},
    {"method", "String", "cs-method"},
    {"uri_stem", "String", "cs-uri-stem"},
    {"query", "String", "cs-uri-query as logged"},
    {"query_base64", "UInt8", "1: base64 query (MS-ASHTTP), decoded into user/device/cmd"},
    {"client_ip", "String", "c-ip"},
    {"username", "String", "cs-username"},
    {"user", "String", "User= (as logged; decoded from base64)"},
    {"device_id", "String", "DeviceId="},
    {"device_type", "String", "DeviceType="},
    {"user_agent", "String", "cs(User-Agent), '+' as space"},
    {"referer", "String", "cs(Referer)"},
    {"cmd", "String", "Cmd= as logged"},
    {"cmd_kind", NULL, "the command ('' none, 'OPTIONS', 'Other' unknown)"},
    {"http_status", "Int32", "sc-status (-1: absent)"},
    {"http_substatus", "Int32", "sc-substatus"},
    {"win32_status", "Int64", "sc-win32-status"},
    {"time_taken", "Int64", "time-taken (ms)"},
    {"sc_bytes", "Int64", "sc-bytes"},
    {"cs_bytes", "Int64", "cs-bytes"},
    {"log", "String", "Log= value as logged"},
    {"eas_status", "Int64", "Log S: the command's Status (-1: absent)"},
    {"error", "String", "Log Error:"},
    {"heartbeat", "Int64", "Log Hb (s)"},
    {"sync_key", "Int64", "Log Sk (client SyncKey; 0 = initial sync)"},
    {"sync_type", "String", "Log St (F, S, R, I)"},
    {"folder_type", "String", "Log Ty (Em, Co, Ca, Ta)"},
    {"access_state", "String", "Log As (AllowedG, BlockedP, Quarantined...)"},
    {"throttle", "Int64", "Log Throttle"},
    {"budget", "String", "Log Budget:"},
    {"protocol", "Int64", "Log V / Ver (141 = 14.1)"},
    {"folder_count", "Int64", "Log Fc"},
    {"filter", "Int64", "Log Filt"},
    {"rpc_count", "Int64", "Log RpcC"},
    {"rpc_latency", "Int64", "Log RpcL (ms)"},
    {"ldap_count", "Int64", "Log LdapC"},
    {"ldap_latency", "Int64", "Log LdapL (ms)"},
    {"cpo", "Int64", "Log Cpo (ms)"},
    {"fet", "Int64", "Log Fet (ms)"},
    {"mailbox", "String", "Log Mbx:"},
    {"dc", "String", "Log Dc:"},
};

static const struct col file_cols[] = {
    {"loaded", "DateTime('UTC')", "when the load ended"},
    {"file", "String", "log file as given to --load"},
    {"size", "UInt64", "file size on disk when loaded (a file of the same name and size is not loaded again)"},
    {"bytes", "UInt64", "input bytes (uncompressed)"},
    {"lines", "UInt64", "data lines (as the local report counts them)"},
    {"bad", "UInt64", "lines that did not fit their #Fields"},
    {"eas", "UInt64", "EAS request rows loaded"},
    {"seq_first", "UInt64", "seq of its first row (0: none)"},
    {"seq_last", "UInt64", "seq of its last row"},
};

static int cmd_enum(struct et_buf *b)
{
    int rc = et_buf_puts(b, "Enum8(");
    for (int c = 0; rc == 0 && c < ET_EAS_CMD_COUNT; c++) {
        if (c)
            rc = et_buf_puts(b, ", ");
        if (rc == 0)
            rc = et__ch_sql_str(b, et_eas_cmd_name((enum et_eas_cmd)c));
        if (rc == 0)
            rc = et_buf_printf(b, " = %d", c);
    }
    return rc == 0 ? et_buf_putc(b, ')') : rc;
}

static int col_type(struct et_buf *b, const struct col *c)
{
    return c->type ? et_buf_puts(b, c->type) : cmd_enum(b);
}

static int create_sql(struct et_buf *b, const char *db, const char *table, int files,
                      int comments)
{
    const struct col *cols = files ? file_cols : req_cols;
    size_t n = files ? ET_ARRAY_SIZE(file_cols) : ET_ARRAY_SIZE(req_cols);
    int rc = et_buf_printf(b, "CREATE TABLE IF NOT EXISTS %s.%s%s\n(\n", db, table,
                           files ? ET_CH_FILES_SUFFIX : "");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = et_buf_printf(b, "    %s ", cols[i].name);
        if (rc == 0)
            rc = col_type(b, &cols[i]);
        if (rc == 0)
            rc = et_buf_printf(b, "%s", i + 1 < n ? "," : "");
        if (rc == 0 && comments)
            rc = et_buf_printf(b, "%*s-- %s", 2, "", cols[i].what);
        if (rc == 0)
            rc = et_buf_putc(b, '\n');
    }
    if (rc == 0)
        rc = et_buf_puts(b, files ? ")\nENGINE = MergeTree\nORDER BY (file, loaded)"
                                  : ")\nENGINE = MergeTree\nPARTITION BY toYYYYMM(time)\n"
                                    "ORDER BY (device_id, time, seq)");
    return rc;
}

void et_ch_print_schema(FILE *f, const char *db, const char *table)
{
    struct et_buf b;
    et_buf_init(&b, 0);
    if (db == NULL)
        db = "eastrace";
    if (table == NULL)
        table = ET_CH_TABLE;
    fprintf(f, "-- eastrace IIS tables for ClickHouse 18.16 or later (docs/scale-out.md).\n"
               "-- One row per EAS request line; numbers are -1 when the line has no value.\n"
               "CREATE DATABASE IF NOT EXISTS %s;\n\n", db);
    if (create_sql(&b, db, table, 0, 1) == 0)
        fprintf(f, "%s;\n\n", (const char *)b.data);
    et_buf_reset(&b);
    if (create_sql(&b, db, table, 1, 1) == 0)
        fprintf(f, "-- One row per file loaded: the line counts the reports' totals need.\n%s;\n",
                (const char *)b.data);
    et_buf_free(&b);
}

/* Compares the columns ClickHouse has (name TAB type lines) with ours. */
static int check_cols(const struct et_ch_url *u, const char *table, const struct col *cols,
                      size_t n, const struct et_buf *have, struct et_error *e)
{
    const char *p = (const char *)have->data, *end = p + have->len;
    size_t i = 0;
    struct et_buf want;
    et_buf_init(&want, 0);
    for (; p < end && i < n; i++) {
        const char *eol = memchr(p, '\n', (size_t)(end - p)), *tab;
        if (eol == NULL)
            eol = end;
        tab = memchr(p, '\t', (size_t)(eol - p));
        if (tab == NULL)
            break;
        char type[200];
        size_t tl = et__ch_tsv_unescape((char *)(uintptr_t)(tab + 1), (size_t)(eol - tab - 1));
        snprintf(type, sizeof(type), "%.*s", (int)tl, tab + 1);
        et_buf_reset(&want);
        if (col_type(&want, &cols[i]) < 0)
            break;
        if ((size_t)(tab - p) != strlen(cols[i].name) ||
            memcmp(p, cols[i].name, (size_t)(tab - p)) != 0 || tl != want.len ||
            memcmp(tab + 1, want.data, tl) != 0) {
            et_error_set(e, ET_EINVAL,
                         "table %s.%s has another schema: column %zu is '%.*s %.60s', eastrace "
                         "needs '%s %.60s' (eastrace iis --print-schema; another ?table=NAME, "
                         "or drop it)",
                         u->db, table, i + 1, (int)ET_MIN((size_t)(tab - p), 60), p, type,
                         cols[i].name, (const char *)want.data);
            et_buf_free(&want);
            return ET_EINVAL;
        }
        p = eol + 1;
    }
    et_buf_free(&want);
    if (i < n || p < end) {
        et_error_set(e, ET_EINVAL,
                     "table %s.%s has another schema: %s columns than eastrace's %zu (eastrace "
                     "iis --print-schema; another ?table=NAME, or drop it)",
                     u->db, table, i < n ? "fewer" : "more", n);
        return ET_EINVAL;
    }
    return 0;
}

int et__ch_schema_ensure(const struct et_ch_url *u, int create, struct et_error *e)
{
    struct et_buf sql, resp;
    int rc;
    et_buf_init(&sql, 0);
    et_buf_init(&resp, ET__CH_RESP_MAX);
    rc = et__ch_ping(u, e);
    for (int files = 0; rc == 0 && files < 2; files++) {
        char table[80];
        snprintf(table, sizeof(table), "%s%s", u->table, files ? ET_CH_FILES_SUFFIX : "");
        et_buf_reset(&sql);
        rc = et_buf_puts(&sql, "SELECT name, type FROM system.columns WHERE database = ");
        if (rc == 0)
            rc = et__ch_sql_str(&sql, u->db);
        if (rc == 0)
            rc = et_buf_puts(&sql, " AND table = ");
        if (rc == 0)
            rc = et__ch_sql_str(&sql, table);
        if (rc < 0) {
            et_error_set(e, ET_ENOMEM, "ClickHouse query");
            break;
        }
        /* system.columns lists columns in table order. */
        if ((rc = et__ch_query(u, (const char *)sql.data, &resp, e)) < 0)
            break;
        if (resp.len == 0) {
            if (!create) {
                et_error_set(e, ET_ENOTFOUND,
                             "ClickHouse at %s:%d has no table %s.%s: load logs first (eastrace "
                             "iis LOG... --load clickhouse://%s:%d/%s)",
                             u->host, u->port, u->db, table, u->host, u->port, u->db);
                rc = ET_ENOTFOUND;
                break;
            }
            et_buf_reset(&sql);
            if (files == 0) {
                rc = et_buf_printf(&sql, "CREATE DATABASE IF NOT EXISTS %s", u->db);
                if (rc == 0 && (rc = et__ch_query(u, (const char *)sql.data, &resp, e)) < 0)
                    break;
                et_buf_reset(&sql);
            }
            if ((rc = create_sql(&sql, u->db, u->table, files, 0)) < 0 ||
                (rc = et__ch_query(u, (const char *)sql.data, &resp, e)) < 0)
                break;
            continue;
        }
        rc = check_cols(u, table, files ? file_cols : req_cols,
                        files ? ET_ARRAY_SIZE(file_cols) : ET_ARRAY_SIZE(req_cols), &resp, e);
    }
    et_buf_free(&sql);
    et_buf_free(&resp);
    return rc;
}

/* ---- rows ----------------------------------------------------------------------------- */

static int put_u(struct et_buf *b, uint64_t v)
{
    char t[24];
    int i = (int)sizeof(t);
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return et_buf_append(b, t + i, sizeof(t) - (size_t)i);
}

#define TAB(b) et_buf_putc(b, '\t')

/* ---- RowBinary: the rows of the requests table ------------------------------------------
 * Every field in req_cols order: integers little-endian at their column's width, strings as
 * a LEB128 length and the bytes, enums as their Int8 value. Binary-safe (nothing to escape,
 * so nothing a log line holds can end a field or a row) and cheaper for the server to parse
 * than TabSeparated: the loader's own CPU for 300 MB went from 2.0 s to 1.0 s.
 */
static void bin_int(uint8_t **p, uint64_t v, int width)
{
    for (int i = 0; i < width; i++)
        *(*p)++ = (uint8_t)(v >> (8 * i));
}

static int bin_str(struct et_buf *b, const void *s, size_t n)
{
    uint8_t hd[10], *p = hd;
    size_t v = n;
    do {
        uint8_t c = (uint8_t)(v & 0x7f);
        v >>= 7;
        *p++ = (uint8_t)(c | (v ? 0x80 : 0));
    } while (v);
    if (et_buf_append(b, hd, (size_t)(p - hd)) < 0)
        return ET_ENOMEM;
    return n ? et_buf_append(b, s, n) : 0;
}

static int bin_sl(struct et_buf *b, struct et_slice s)
{
    return bin_str(b, s.ptr, s.len);
}

static int bin_nums(struct et_buf *b, const long *v, size_t n)
{
    if (et_buf_reserve(b, n * 8) < 0)
        return ET_ENOMEM;
    uint8_t *p = b->data + b->len;
    for (size_t i = 0; i < n; i++)
        bin_int(&p, (uint64_t)(int64_t)v[i], 8);
    b->len += n * 8;
    b->data[b->len] = '\0';
    return 0;
}

static int bin_fixed(struct et_buf *b, uint64_t v, int width)
{
    if (et_buf_reserve(b, 8) < 0)
        return ET_ENOMEM;
    uint8_t *p = b->data + b->len;
    bin_int(&p, v, width);
    b->len += (size_t)width;
    b->data[b->len] = '\0';
    return 0;
}

static int bin_ua(struct et_buf *b, struct et_slice s)
{
    int rc = bin_sl(b, s);
    for (size_t i = b->len - s.len; rc == 0 && i < b->len; i++)
        if (b->data[i] == '+')
            b->data[i] = ' ';
    return rc;
}

/* One row in req_cols order. */
static int put_row(struct et_buf *b, const struct et_iis_row *r, uint64_t seq)
{
    const struct et_eas_log *lg = &r->log;
    int rc = 0;
    rc |= bin_fixed(b, r->t_us > 0 ? (uint64_t)(r->t_us / 1000000) : 0, 4);
    rc |= bin_fixed(b, seq, 8);
    rc |= bin_str(b, r->file, strlen(r->file));
    rc |= bin_fixed(b, r->lineno, 8);
    rc |= bin_fixed(b, r->stem == ET_IIS_STEM_BACKEND ? 2 : 1, 1);
    rc |= bin_sl(b, r->s_ip);
    rc |= bin_sl(b, r->host);
    rc |= bin_fixed(b, (uint64_t)(int64_t)r->s_port, 4);
    rc |= bin_sl(b, r->method);
    rc |= bin_sl(b, r->uri_stem);
    rc |= bin_sl(b, r->query);
    rc |= bin_fixed(b, r->q.base64 ? 1 : 0, 1);
    rc |= bin_sl(b, r->c_ip);
    rc |= bin_sl(b, r->username);
    rc |= bin_sl(b, r->q.user);
    rc |= bin_sl(b, r->q.device_id);
    rc |= bin_sl(b, r->q.device_type);
    rc |= bin_ua(b, r->ua);
    rc |= bin_sl(b, r->referer);
    rc |= bin_sl(b, r->q.cmd);
    rc |= bin_fixed(b, (uint64_t)r->cmd, 1);
    rc |= bin_fixed(b, (uint64_t)(int64_t)r->status, 4);
    rc |= bin_fixed(b, (uint64_t)(int64_t)r->substatus, 4);
    {
        const long v[] = {r->win32, r->time_taken, r->sc_bytes, r->cs_bytes};
        rc |= bin_nums(b, v, ET_ARRAY_SIZE(v));
    }
    rc |= bin_sl(b, r->q.log);
    rc |= bin_nums(b, &lg->status, 1);
    rc |= bin_sl(b, lg->error);
    {
        const long v[] = {lg->heartbeat, lg->sync_key};
        rc |= bin_nums(b, v, ET_ARRAY_SIZE(v));
    }
    rc |= bin_sl(b, lg->sync_type);
    rc |= bin_sl(b, lg->folder_type);
    rc |= bin_sl(b, lg->access_state);
    rc |= bin_nums(b, &lg->throttle, 1);
    rc |= bin_sl(b, lg->budget);
    {
        const long v[] = {lg->version,     lg->folder_count, lg->filter,
                          lg->rpc_count,   lg->rpc_latency,  lg->ldap_count,
                          lg->ldap_latency, lg->cpo,         lg->fet};
        rc |= bin_nums(b, v, ET_ARRAY_SIZE(v));
    }
    rc |= bin_sl(b, lg->mailbox);
    rc |= bin_sl(b, lg->dc);
    return rc ? ET_ENOMEM : 0;
}

/* A file that ended in the current batch: its counters go in after the batch commits. */
struct done_file {
    char *name;
    uint64_t size;
    struct et_iis_rows_totals t;
    uint64_t seq_first, seq_last;
};

struct loader {
    const struct et_ch_url *u;
    struct et__ch_req req;
    int in_batch;
    size_t batch_rows, rows_in_batch;
    struct done_file *done;
    size_t ndone, capdone;
    uint64_t seq, file_first;
    struct et_buf line, resp;
    struct et_ch_load_stats *st;
    int progress;
    int verbose_skips;
};

/* The requests go in as RowBinary, the few file rows as TabSeparated. */
static int insert_sql(struct et_buf *b, const struct et_ch_url *u, int files)
{
    const struct col *cols = files ? file_cols : req_cols;
    size_t n = files ? ET_ARRAY_SIZE(file_cols) : ET_ARRAY_SIZE(req_cols);
    int rc = et_buf_printf(b, "INSERT INTO %s.%s%s (", u->db, u->table,
                           files ? ET_CH_FILES_SUFFIX : "");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = et_buf_printf(b, "%s%s", i ? ", " : "", cols[i].name);
    return rc == 0 ? et_buf_puts(b, files ? ") FORMAT TabSeparated" : ") FORMAT RowBinary") : rc;
}

static int batch_begin(struct loader *l, struct et_error *e)
{
    struct et_buf q;
    int rc;
    et_buf_init(&q, 0);
    if (insert_sql(&q, l->u, 0) < 0) {
        et_buf_free(&q);
        et_error_set(e, ET_ENOMEM, "ClickHouse insert");
        return ET_ENOMEM;
    }
    rc = et__ch_begin(&l->req, l->u, (const char *)q.data, e);
    et_buf_free(&q);
    if (rc == 0) {
        l->in_batch = 1;
        l->rows_in_batch = 0;
    }
    return rc;
}

static int files_insert(struct loader *l, struct et_error *e)
{
    struct et_buf q, body;
    struct et__ch_req fr;
    int rc;
    if (l->ndone == 0)
        return 0;
    et_buf_init(&q, 0);
    et_buf_init(&body, 0);
    rc = insert_sql(&q, l->u, 1);
    uint64_t now = (uint64_t)time(NULL);
    for (size_t i = 0; rc == 0 && i < l->ndone; i++) {
        const struct done_file *d = &l->done[i];
        rc |= put_u(&body, now) | TAB(&body);
        rc |= et__ch_tsv_put(&body, d->name, strlen(d->name)) | TAB(&body);
        rc |= put_u(&body, d->size) | TAB(&body);
        rc |= put_u(&body, d->t.bytes) | TAB(&body);
        rc |= put_u(&body, d->t.lines) | TAB(&body);
        rc |= put_u(&body, d->t.bad) | TAB(&body);
        rc |= put_u(&body, d->t.eas) | TAB(&body);
        rc |= put_u(&body, d->seq_first) | TAB(&body);
        rc |= put_u(&body, d->seq_last) | et_buf_putc(&body, '\n');
        rc = rc ? ET_ENOMEM : 0;
    }
    if (rc < 0)
        et_error_set(e, ET_ENOMEM, "ClickHouse insert");
    if (rc == 0 && (rc = et__ch_begin(&fr, l->u, (const char *)q.data, e)) == 0) {
        rc = et__ch_write(&fr, body.data, body.len, e);
        if (rc == 0)
            rc = et__ch_end(&fr, &l->resp, e);
        else
            et__ch_abort(&fr);
    }
    for (size_t i = 0; i < l->ndone; i++)
        et_free(l->done[i].name);
    l->ndone = 0;
    et_buf_free(&q);
    et_buf_free(&body);
    return rc;
}

static int batch_end(struct loader *l, struct et_error *e)
{
    int rc = 0;
    if (l->in_batch) {
        l->in_batch = 0;
        rc = et__ch_end(&l->req, &l->resp, e);
        if (rc == 0) {
            l->st->batches++;
            if (l->progress)
                fprintf(stderr, "loaded %llu rows (%llu batches)\n",
                        (unsigned long long)l->st->rows, (unsigned long long)l->st->batches);
        }
    }
    if (rc == 0)
        rc = files_insert(l, e);
    return rc;
}

static int file_done(struct loader *l, const struct et_iis_row *row, struct et_iis_rows *rr,
                     uint64_t size, struct et_error *e)
{
    struct done_file *d;
    if (l->ndone == l->capdone) {
        size_t nc = l->capdone ? l->capdone * 2 : 16;
        struct done_file *nv = et_realloc(l->done, nc * sizeof(*nv));
        if (nv == NULL) {
            et_error_set(e, ET_ENOMEM, "load");
            return ET_ENOMEM;
        }
        l->done = nv;
        l->capdone = nc;
    }
    d = &l->done[l->ndone];
    et_iis_rows_totals(rr, 1, &d->t);
    d->size = size;
    d->name = et_strdup(row->file);
    if (d->name == NULL) {
        et_error_set(e, ET_ENOMEM, "load");
        return ET_ENOMEM;
    }
    d->seq_first = d->t.eas ? l->file_first : 0;
    d->seq_last = d->t.eas ? l->seq - 1 : 0;
    l->file_first = l->seq;
    l->ndone++;
    l->st->files++;
    l->st->lines += d->t.lines;
    l->st->bad += d->t.bad;
    l->st->bytes += d->t.bytes;
    return 0;
}

static int next_seq(const struct et_ch_url *u, uint64_t *seq, struct et_buf *resp,
                    struct et_error *e)
{
    char q[300];
    snprintf(q, sizeof(q), "SELECT max(seq) FROM %s.%s", u->db, u->table);
    int rc = et__ch_query(u, q, resp, e);
    if (rc < 0)
        return rc;
    *seq = strtoull(resp->len ? (const char *)resp->data : "0", NULL, 10) + 1;
    return 0;
}

/* Was file (this name and size on disk) loaded before? 1 yes, 0 no (also when only another
 * size was: then *other is set), <0 an error. */
static int loaded_before(struct loader *l, const char *file, uint64_t size, int *other,
                         struct et_error *e)
{
    struct et_buf q;
    uint64_t same = 0, any = 0;
    int rc;
    et_buf_init(&q, 0);
    rc = et_buf_printf(&q, "SELECT countIf(size = %llu), count() FROM %s.%s%s WHERE file = ",
                       (unsigned long long)size, l->u->db, l->u->table, ET_CH_FILES_SUFFIX);
    if (rc == 0)
        rc = et__ch_sql_str(&q, file);
    if (rc < 0) {
        et_buf_free(&q);
        et_error_set(e, ET_ENOMEM, "load");
        return ET_ENOMEM;
    }
    rc = et__ch_query(l->u, (const char *)q.data, &l->resp, e);
    et_buf_free(&q);
    if (rc < 0)
        return rc;
    if (sscanf(l->resp.len ? (const char *)l->resp.data : "0\t0", "%llu\t%llu",
               (unsigned long long *)&same, (unsigned long long *)&any) != 2)
        same = any = 0;
    *other = same == 0 && any > 0;
    return same > 0;
}

/* Loads one log file, unless a file of its name and size was loaded before. */
static int load_file(struct loader *l, const char *file, struct et_error *e)
{
    struct et_iis_rows *rr = NULL;
    struct et_iis_row row;
    struct stat sb;
    struct et_ch_load_stats *st = l->st;
    uint64_t size = stat(file, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    int other = 0, rc;

    rc = loaded_before(l, file, size, &other, e);
    if (rc < 0)
        return rc;
    if (rc > 0) {
        st->skipped++;
        if (l->progress || l->verbose_skips)
            fprintf(stderr, "eastrace: %s: loaded before (same name and size), skipped\n", file);
        return 0;
    }
    if (other)
        fprintf(stderr,
                "eastrace: note: %s was loaded before with another size (still being written "
                "then?): its earlier rows are now in twice; remove them with ALTER TABLE %s.%s "
                "DELETE WHERE file = '...' AND seq BETWEEN seq_first AND seq_last of %s.%s%s\n",
                file, l->u->db, l->u->table, l->u->db, l->u->table, ET_CH_FILES_SUFFIX);
    if ((rc = et_iis_rows_open(file, &rr, e)) < 0)
        return rc;
    for (;;) {
        int n = et_iis_rows_next(rr, &row, e);
        if (n == 0)
            break;
        if (n < 0) {
            rc = n;
            break;
        }
        if (n == 2) {
            if ((rc = file_done(l, &row, rr, size, e)) < 0)
                break;
            continue;
        }
        if (!l->in_batch && (rc = batch_begin(l, e)) < 0)
            break;
        et_buf_reset(&l->line);
        if (put_row(&l->line, &row, l->seq) < 0) {
            et_error_set(e, ET_ENOMEM, "load");
            rc = ET_ENOMEM;
            break;
        }
        l->seq++;
        st->rows++;
        if ((rc = et__ch_write(&l->req, l->line.data, l->line.len, e)) < 0) {
            /* The server stopped taking data: its answer says why. */
            l->in_batch = 0;
            int rc2 = et__ch_end(&l->req, &l->resp, e);
            rc = rc2 < 0 ? rc2 : rc;
            break;
        }
        if (++l->rows_in_batch >= l->batch_rows && (rc = batch_end(l, e)) < 0)
            break;
    }
    et_iis_rows_free(rr);
    return rc;
}

int et_ch_load(const struct et_ch_url *u, char *const *paths, int npaths,
               const struct et_ch_load_opts *o, struct et_ch_load_stats *st, struct et_error *e)
{
    struct loader l;
    struct timespec t0, t1;
    int rc;

    memset(st, 0, sizeof(*st));
    memset(&l, 0, sizeof(l));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    l.u = u;
    l.st = st;
    l.batch_rows = o && o->batch_rows ? o->batch_rows : 200000;
    l.progress = o ? o->progress : 0;
    et_buf_init(&l.line, 0);
    et_buf_init(&l.resp, ET__CH_RESP_MAX);
    rc = et__ch_schema_ensure(u, 1, e);
    if (rc == 0)
        rc = next_seq(u, &l.seq, &l.resp, e);
    l.file_first = l.seq;
    for (int i = 0; rc == 0 && i < npaths; i++) {
        char **files = NULL;
        size_t nfiles = 0;
        if ((rc = et_logfiles_list(paths[i], &files, &nfiles, e)) < 0)
            break;
        for (size_t k = 0; rc == 0 && k < nfiles; k++)
            rc = load_file(&l, files[k], e);
        et_logfiles_free(files, nfiles);
    }
    if (rc == 0)
        rc = batch_end(&l, e);
    else if (l.in_batch)
        et__ch_abort(&l.req); /* a read error of the logs: the batch is not ended */
    for (size_t i = 0; i < l.ndone; i++)
        et_free(l.done[i].name);
    et_free(l.done);
    et_buf_free(&l.line);
    et_buf_free(&l.resp);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    st->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    return rc;
}
