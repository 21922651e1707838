/*
 * The IIS reports computed inside ClickHouse. Each table of a report is one SQL query whose
 * answer (TabSeparated) is already the table's cells, in the local report's order; C only
 * splits the answer and hands the tables to the report renderer (et_iis_report_write_result).
 *
 * What the local report does, said in SQL (logs/report.c is the reference):
 *   - keys (device, user, error, User+DeviceId+DeviceType) compare case-insensitively and show
 *     the spelling seen first:            GROUP BY lower(k) ... argMin(k, seq)
 *   - rows sort by hits, then bucket, then key bytes:  ORDER BY count() DESC, b, k
 *   - percentiles come from a log-linear histogram (values of 1024 and more keep their 7 top
 *     bits) and are the bin where the running count passes p * n:  BIN() below, arrayCumSum
 *   - row reports are in time order, ties in load order:   ORDER BY time, seq
 *   - AUTO site: the front end, or the back end when no front-end line passes the filters.
 */
#include "ch_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eastrace/iis.h"

#define MAX_TABLES 8

struct rep {
    const struct et_ch_url *u;
    const struct et_iis_report_opts *o;
    struct et_buf where;       /* filters and site, "1" when none */
    struct et_buf sql;
    struct et_iis_report_table t[MAX_TABLES];
    int nt;
    char **keep;               /* answer buffers the cells point into */
    size_t nkeep, capkeep;
    const char ***cellv;       /* cell arrays of t[] */
    struct et_error *e;
};

static int oom(struct rep *r)
{
    et_error_set(r->e, ET_ENOMEM, "engine report");
    return ET_ENOMEM;
}

static int keep(struct rep *r, char *p)
{
    if (r->nkeep == r->capkeep) {
        size_t nc = r->capkeep ? r->capkeep * 2 : 16;
        char **nv = et_realloc(r->keep, nc * sizeof(*nv));
        if (nv == NULL) {
            et_free(p);
            return oom(r);
        }
        r->keep = nv;
        r->capkeep = nc;
    }
    r->keep[r->nkeep++] = p;
    return 0;
}

/*
 * Runs sql (FORMAT TabSeparated is appended) and splits its answer into rows of ncols
 * cells, unescaped in place. *cells (et_malloc'd) points into the kept answer.
 */
static int run(struct rep *r, const char *sql, int ncols, const char ***cells, size_t *nrows)
{
    struct et_buf resp, q;
    int rc;
    et_buf_init(&resp, ET__CH_RESP_MAX);
    et_buf_init(&q, 0);
    *cells = NULL;
    *nrows = 0;
    if (et_buf_printf(&q, "%s FORMAT TabSeparated", sql) < 0)
        return oom(r);
    rc = et__ch_query(r->u, (const char *)q.data, &resp, r->e);
    et_buf_free(&q);
    if (rc < 0) {
        et_buf_free(&resp);
        return rc;
    }
    size_t len = resp.len, n = 0;
    char *p = (char *)et_buf_detach(&resp, &len);
    if (p == NULL) { /* an empty answer: no rows */
        *cells = et_malloc(sizeof(**cells));
        return *cells ? 0 : oom(r);
    }
    if ((rc = keep(r, p)) < 0)
        return rc;
    for (size_t i = 0; i < len; i++)
        n += p[i] == '\n';
    /* n + 1 rows: the last line may lack its newline (an exception text does). */
    const char **cv = et_malloc((n + 1) * (size_t)ncols * sizeof(*cv));
    if (cv == NULL)
        return oom(r);
    char *s = p, *end = p + len;
    size_t row = 0;
    while (s < end) {
        char *eol = memchr(s, '\n', (size_t)(end - s));
        if (eol == NULL)
            eol = end;
        int c = 0;
        char *f = s;
        for (;;) {
            char *tab = memchr(f, '\t', (size_t)(eol - f));
            char *fe = tab ? tab : eol;
            if (c < ncols) {
                size_t l = et__ch_tsv_unescape(f, (size_t)(fe - f));
                f[l] = '\0';
                cv[row * (size_t)ncols + (size_t)c] = f;
            }
            c++;
            if (tab == NULL)
                break;
            f = tab + 1;
        }
        if (c != ncols && strncmp(s, "Code: ", 6) == 0) {
            /* An exception after the answer started (memory limit, timeout) comes as text
             * after the rows sent so far; rows themselves always have ncols fields. */
            char m[300];
            snprintf(m, sizeof(m), "%s", s);
            et_str_printable(m);
            et_free(cv);
            et_error_set(r->e, ET_EDENIED, "ClickHouse at %s:%d failed during the answer: %s",
                         r->u->host, r->u->port, m);
            return ET_EDENIED;
        }
        if (c != ncols) {
            et_free(cv);
            et_error_set(r->e, ET_EPARSE,
                         "ClickHouse at %s:%d: an answer row has %d fields where %d were asked "
                         "for", r->u->host, r->u->port, c, ncols);
            return ET_EPARSE;
        }
        row++;
        s = eol + 1;
    }
    *cells = cv;
    *nrows = row;
    return 0;
}

/* Adds a table of the report from a query whose columns are cols. */
static int grid(struct rep *r, const char *name, const char *const *cols, int ncols,
                const char *sql)
{
    const char **cells;
    size_t n;
    if (r->nt == MAX_TABLES)
        return oom(r);
    int rc = run(r, sql, ncols, &cells, &n);
    if (rc < 0)
        return rc;
    r->cellv[r->nt] = cells;
    r->t[r->nt].name = name;
    r->t[r->nt].cols = cols;
    r->t[r->nt].ncols = ncols;
    r->t[r->nt].cells = cells;
    r->t[r->nt].nrows = n;
    r->nt++;
    return 0;
}

/* ---- SQL text ------------------------------------------------------------------------- */

#define S(x) et_buf_puts(&r->sql, x)

static int sqlf(struct rep *r, const char *fmt, ...) ET_PRINTF(2, 3);
static int sqlf(struct rep *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = et_buf_vprintf(&r->sql, fmt, ap);
    va_end(ap);
    return rc;
}

/* The number columns print "" when absent (-1), as the local report's fmt_l. */
#define NUM(c) "if(" c " < 0, '', toString(" c "))"

static const char *const http_names[] = {"4xx", "5xx", "409", "451", "500", "503", "507"};
static const char *const http_cond[] = {
    "http_status >= 400 AND http_status < 500", "http_status >= 500 AND http_status < 600",
    "http_status = 409", "http_status = 451", "http_status = 500", "http_status = 503",
    "http_status = 507",
};

/* The histogram bin of v (logs/report.c hist_idx/hist_val): v below 1024 itself, else v with
 * only its 7 top bits. e is floor(log2(v)), corrected where the float is off by one. */
static int put_bin(struct rep *r, const char *v)
{
    return sqlf(r,
                "if(%s < 1024, %s, bitShiftLeft(bitShiftRight(%s, "
                "toInt64(log2(%s)) - (bitShiftRight(%s, toInt64(log2(%s))) = 0) + "
                "(bitShiftRight(%s, toInt64(log2(%s)) + 1) > 0) - 6), "
                "toInt64(log2(%s)) - (bitShiftRight(%s, toInt64(log2(%s))) = 0) + "
                "(bitShiftRight(%s, toInt64(log2(%s)) + 1) > 0) - 6))",
                v, v, v, v, v, v, v, v, v, v, v, v, v);
}

static int known_list(struct rep *r)
{
    int rc = S("[");
    for (size_t i = 0; rc == 0 && i < et_iis_known_errors_n; i++) {
        if (i)
            rc = S(", ");
        if (rc == 0)
            rc = et__ch_sql_str(&r->sql, et_iis_known_errors[i]);
    }
    return rc == 0 ? S("]") : rc;
}

static int from(struct rep *r)
{
    return sqlf(r, " FROM %s.%s WHERE %s", r->u->db, r->u->table, (const char *)r->where.data);
}

/* The bucket of the hits and top reports: interval start in seconds, 0 without --interval. */
static int bucket(struct rep *r)
{
    if (r->o->interval > 0)
        return sqlf(r, "intDiv(toUInt32(time), %ld) * %ld", r->o->interval, r->o->interval);
    return S("toUInt32(0)");
}

/* ---- the tables ----------------------------------------------------------------------- */

static int hits_devices(struct rep *r)
{
    static const char *cols[64];
    int n = 0, rc;
    const struct et_iis_report_opts *o = r->o;
    cols[n++] = "DeviceID";
    cols[n++] = "Hits";
    cols[n++] = "Ping";
    cols[n++] = "Sync";
    cols[n++] = "FolderSync";
    cols[n++] = "DeviceType";
    cols[n++] = "User-Agent";
    cols[n++] = "User";
    cols[n++] = "cs-username";
    if (o->interval > 0)
        cols[n++] = "Interval";
    for (int c = ET_EAS_CMD_SENDMAIL; c <= ET_EAS_CMD_OTHER; c++)
        cols[n++] = et_eas_cmd_name((enum et_eas_cmd)c);
    for (size_t i = 0; i < ET_ARRAY_SIZE(http_names); i++)
        cols[n++] = http_names[i];
    for (size_t i = 0; i < et_iis_known_errors_n; i++)
        cols[n++] = et_iis_known_errors[i];
    cols[n++] = "OtherErrors";
    cols[n++] = "sc-bytes";
    cols[n++] = "cs-bytes";
    cols[n++] = "time-taken-avg";
    cols[n++] = "time-taken-max";

    et_buf_reset(&r->sql);
    rc = S("SELECT argMin(device_id, seq) AS k, toString(count()), "
           "toString(countIf(cmd_kind = 'Ping')), toString(countIf(cmd_kind = 'Sync')), "
           "toString(countIf(cmd_kind = 'FolderSync')), argMin(device_type, seq), "
           "argMin(user_agent, seq), argMin(user, seq), argMin(username, seq), ");
    if (rc == 0 && o->interval > 0)
        rc = S("if(b > 0, toString(toDateTime(b, 'UTC')), ''), ");
    for (int c = ET_EAS_CMD_SENDMAIL; rc == 0 && c <= ET_EAS_CMD_OTHER; c++) {
        rc = S("toString(countIf(cmd_kind = ");
        if (rc == 0)
            rc = et__ch_sql_str(&r->sql, et_eas_cmd_name((enum et_eas_cmd)c));
        if (rc == 0)
            rc = S(")), ");
    }
    for (size_t i = 0; rc == 0 && i < ET_ARRAY_SIZE(http_cond); i++)
        rc = sqlf(r, "toString(countIf(%s)), ", http_cond[i]);
    for (size_t i = 0; rc == 0 && i < et_iis_known_errors_n; i++) {
        rc = S("toString(countIf(error = ");
        if (rc == 0)
            rc = et__ch_sql_str(&r->sql, et_iis_known_errors[i]);
        if (rc == 0)
            rc = S(")), ");
    }
    if (rc == 0)
        rc = S("toString(countIf(error != '' AND NOT has(");
    if (rc == 0)
        rc = known_list(r);
    if (rc == 0)
        rc = S(", error))), "
               "if(countIf(sc_bytes >= 0) > 0, toString(sumIf(sc_bytes, sc_bytes >= 0)), ''), "
               "if(countIf(cs_bytes >= 0) > 0, toString(sumIf(cs_bytes, cs_bytes >= 0)), ''), "
               "if(countIf(time_taken >= 0) > 0, toString(intDiv(sumIf(time_taken, "
               "time_taken >= 0), greatest(countIf(time_taken >= 0), 1))), ''), "
               "if(countIf(time_taken >= 0) > 0, toString(maxIf(time_taken, time_taken >= 0)),"
               " '')");
    if (rc == 0)
        rc = from(r);
    if (rc == 0)
        rc = S(" GROUP BY lower(device_id), ");
    if (rc == 0)
        rc = bucket(r);
    if (rc == 0)
        rc = S(" AS b");
    if (rc == 0 && o->minimum_hits > 0)
        rc = sqlf(r, " HAVING count() >= %ld", o->minimum_hits);
    if (rc == 0)
        rc = S(o->interval > 0 ? " ORDER BY b, k" : " ORDER BY count() DESC, b, k");
    if (rc == 0 && o->top > 0 && o->interval <= 0)
        rc = sqlf(r, " LIMIT %ld", o->top);
    if (rc < 0)
        return oom(r);
    return grid(r, "devices", cols, n, (const char *)r->sql.data);
}

static int hits_summary(struct rep *r)
{
    static const char *const cols[] = {"Metric", "Count", "Sum", "Mean", "p50", "p95", "Max"};
    int rc;
    /* Counts: one scan, one row per count. */
    et_buf_reset(&r->sql);
    rc = S("SELECT m, c, '', '', '', '', '' FROM (SELECT tupleElement(x, 1) AS m, "
           "tupleElement(x, 2) AS c FROM (SELECT arrayJoin([('EAS requests', "
           "toString(count()))");
    for (size_t i = 0; rc == 0 && i < ET_ARRAY_SIZE(http_cond); i++)
        rc = sqlf(r, ", ('HTTP %s', toString(countIf(%s)))", http_names[i], http_cond[i]);
    if (rc == 0)
        rc = S("]) AS x");
    if (rc == 0)
        rc = from(r);
    if (rc == 0)
        rc = S("))");
    if (rc < 0)
        return oom(r);
    const char **c1;
    size_t n1;
    if ((rc = run(r, (const char *)r->sql.data, 7, &c1, &n1)) < 0)
        return rc;
    /* Sizes and time-taken: one scan into histogram bins, then the percentiles. */
    et_buf_reset(&r->sql);
    rc = S("SELECT ['sc-bytes', 'cs-bytes', 'time-taken (ms)'][m], toString(n), toString(s), "
           "toString(intDiv(s, n)), "
           "toString(least(tupleElement(arr[arrayFirstIndex((x, y) -> x >= y, cum, "
           "arrayResize(emptyArrayUInt64(), length(cum), w50))], 1), mx)), "
           "toString(least(tupleElement(arr[arrayFirstIndex((x, y) -> x >= y, cum, "
           "arrayResize(emptyArrayUInt64(), length(cum), w95))], 1), mx)), "
           "toString(mx) FROM (SELECT m, n, s, mx, arr, arrayCumSum(arrayMap(x -> "
           "tupleElement(x, 2), arr)) AS cum, greatest(toUInt64(0.5 * n + 0.5), 1) AS w50, "
           "greatest(toUInt64(0.95 * n + 0.5), 1) AS w95 FROM (SELECT m, sum(c) AS n, "
           "sum(sv) AS s, max(mvx) AS mx, "
           "arraySort(x -> tupleElement(x, 1), groupArray((b, c))) AS arr "
           "FROM (SELECT tupleElement(mv, 1) AS m, ");
    if (rc == 0)
        rc = put_bin(r, "tupleElement(mv, 2)");
    if (rc == 0)
        rc = S(" AS b, count() AS c, sum(tupleElement(mv, 2)) AS sv, "
               "max(tupleElement(mv, 2)) AS mvx");
    if (rc == 0)
        rc = sqlf(r, " FROM %s.%s ARRAY JOIN [(1, sc_bytes), (2, cs_bytes), (3, time_taken)] "
                     "AS mv WHERE (%s) AND tupleElement(mv, 2) >= 0 GROUP BY m, b) GROUP BY m)) "
                     "ORDER BY m",
                  r->u->db, r->u->table, (const char *)r->where.data);
    if (rc < 0) {
        et_free(c1);
        return oom(r);
    }
    const char **c2;
    size_t n2;
    if ((rc = run(r, (const char *)r->sql.data, 7, &c2, &n2)) < 0) {
        et_free(c1);
        return rc;
    }
    const char **cv = et_malloc((n1 + n2 + 1) * 7 * sizeof(*cv));
    if (cv == NULL) {
        et_free(c1);
        et_free(c2);
        return oom(r);
    }
    memcpy(cv, c1, n1 * 7 * sizeof(*cv));
    memcpy(cv + n1 * 7, c2, n2 * 7 * sizeof(*cv));
    et_free(c1);
    et_free(c2);
    r->cellv[r->nt] = cv;
    r->t[r->nt] = (struct et_iis_report_table){"summary", cols, 7, cv, n1 + n2};
    r->nt++;
    return 0;
}

/* errors: the known names first (in the script's order, 0 when absent), then the others by
 * count. Keys compare case-sensitively with the known names, as the local report does. */
static int errors_tables(struct rep *r)
{
    static const char *const ecols[] = {"Error", "Count"};
    static const char *const hcols[] = {"HTTP", "Count"};
    const char **ans;
    size_t n;
    int rc;
    et_buf_reset(&r->sql);
    rc = S("SELECT argMin(error, seq) AS k, toString(count())");
    if (rc == 0)
        rc = from(r);
    if (rc == 0)
        rc = S(" AND error != '' GROUP BY lower(error) ORDER BY count() DESC, k");
    if (rc < 0)
        return oom(r);
    if ((rc = run(r, (const char *)r->sql.data, 2, &ans, &n)) < 0)
        return rc;
    size_t nk = et_iis_known_errors_n;
    const char **cv = et_malloc((nk + n + 1) * 2 * sizeof(*cv));
    if (cv == NULL) {
        et_free(ans);
        return oom(r);
    }
    size_t rows = 0;
    for (size_t i = 0; i < nk; i++) {
        cv[rows * 2] = et_iis_known_errors[i];
        cv[rows * 2 + 1] = "0";
        for (size_t k = 0; k < n; k++)
            if (strcmp(ans[k * 2], et_iis_known_errors[i]) == 0)
                cv[rows * 2 + 1] = ans[k * 2 + 1];
        rows++;
    }
    for (size_t k = 0; k < n; k++) {
        int known = 0;
        for (size_t i = 0; i < nk; i++)
            known |= strcmp(ans[k * 2], et_iis_known_errors[i]) == 0;
        if (known)
            continue;
        cv[rows * 2] = ans[k * 2];
        cv[rows * 2 + 1] = ans[k * 2 + 1];
        rows++;
    }
    et_free(ans);
    r->cellv[r->nt] = cv;
    r->t[r->nt] = (struct et_iis_report_table){"errors", ecols, 2, cv, rows};
    r->nt++;

    et_buf_reset(&r->sql);
    rc = S("SELECT tupleElement(x, 1), tupleElement(x, 2) FROM (SELECT arrayJoin([");
    for (size_t i = 0; rc == 0 && i < ET_ARRAY_SIZE(http_cond); i++)
        rc = sqlf(r, "%s('%s', toString(countIf(%s)))", i ? ", " : "", http_names[i],
                  http_cond[i]);
    if (rc == 0)
        rc = S("]) AS x");
    if (rc == 0)
        rc = from(r);
    if (rc == 0)
        rc = S(")");
    if (rc < 0)
        return oom(r);
    return grid(r, "http", hcols, 2, (const char *)r->sql.data);
}

#define KEY3 "concat(substring(user, 1, 200), '\\x1F', substring(device_id, 1, 200), '\\x1F', " \
             "substring(device_type, 1, 80))"

static int keyed(struct rep *r)
{
    static const char *const c0[] = {"User", "DeviceID", "DeviceType", "SyncKey0-Syncs"};
    static const char *const c1[] = {"User", "DeviceID", "DeviceType", "SyncKey", "Syncs"};
    int sk = r->o->kind == ET_IIS_REPORT_SYNCS_BY_SYNCKEY;
    int rc;
    et_buf_reset(&r->sql);
    rc = S("SELECT substring(argMin(user, seq), 1, 200), substring(argMin(device_id, seq), 1, "
           "200), substring(argMin(device_type, seq), 1, 80), ");
    if (rc == 0 && sk)
        rc = S(NUM("sync_key") ", ");
    if (rc == 0)
        rc = S("toString(count())");
    if (rc == 0)
        rc = from(r);
    if (rc == 0)
        rc = S(sk ? " AND cmd_kind = 'Sync' GROUP BY lower(" KEY3 "), sync_key "
                    "ORDER BY count() DESC, sync_key, argMin(" KEY3 ", seq)"
                  : " AND cmd_kind = 'Sync' AND sync_key = 0 GROUP BY lower(" KEY3 ") "
                    "ORDER BY count() DESC, argMin(" KEY3 ", seq)");
    if (rc < 0)
        return oom(r);
    return grid(r, sk ? "syncs-by-synckey" : "synckey0", sk ? c1 : c0, sk ? 5 : 4,
                (const char *)r->sql.data);
}

static int top(struct rep *r)
{
    static const char *const uc[] = {"User", "Hits"};
    static const char *const dc[] = {"DeviceID", "Hits", "User", "DeviceType", "User-Agent"};
    int rc;
    et_buf_reset(&r->sql);
    rc = S("SELECT argMin(user, seq) AS k, toString(count())");
    if (rc == 0)
        rc = from(r);
    if (rc == 0)
        rc = sqlf(r, " GROUP BY lower(user) ORDER BY count() DESC, k LIMIT %ld", r->o->top);
    if (rc < 0)
        return oom(r);
    if ((rc = grid(r, "top-users", uc, 2, (const char *)r->sql.data)) < 0)
        return rc;
    et_buf_reset(&r->sql);
    rc = S("SELECT argMin(device_id, seq) AS k, toString(count()), argMin(user, seq), "
           "argMin(device_type, seq), argMin(user_agent, seq)");
    if (rc == 0)
        rc = from(r);
    if (rc == 0)
        rc = S(" GROUP BY lower(device_id), ");
    if (rc == 0)
        rc = bucket(r);
    if (rc == 0)
        rc = sqlf(r, " AS b ORDER BY count() DESC, b, k LIMIT %ld", r->o->top);
    if (rc < 0)
        return oom(r);
    return grid(r, "top-devices", dc, 5, (const char *)r->sql.data);
}

static int recs(struct rep *r, int *truncated)
{
    static const char *const cols[] = {
        "Time", "User", "DeviceID", "DeviceType", "Cmd", "sc-status", "sc-substatus",
        "sc-win32-status", "Status", "Error", "As", "SyncKey", "SyncType", "FolderType",
        "Heartbeat", "RpcC", "RpcL", "time-taken", "User-Agent",
    };
    const struct et_iis_report_opts *o = r->o;
    const char *cond = "1";
    char rpc[200];
    int rc;
    switch (o->kind) {
    case ET_IIS_REPORT_SENDMAIL: cond = "cmd_kind = 'SendMail'"; break;
    case ET_IIS_REPORT_EAS_ERRORS:
        cond = "error != '' OR http_status >= 400 OR (eas_status > 1 AND NOT (cmd_kind = 'Ping' "
               "AND eas_status = 2))";
        break;
    case ET_IIS_REPORT_RPC:
        snprintf(rpc, sizeof(rpc), "(rpc_count >= 0 AND rpc_count >= %ld) OR (rpc_latency >= 0 "
                                   "AND rpc_latency >= %ld)",
                 o->rpc_count_min, o->rpc_latency_min);
        cond = rpc;
        break;
    case ET_IIS_REPORT_CALENDAR:
        /* MeetingResponse, Ty:Ca, or a Log= item whose value (after its first ':') holds
         * "Ty:Ca" (newer builds log a collection as Fid:<id>:Ty:Ca). */
        cond = "cmd_kind = 'MeetingResponse' OR folder_type = 'Ca' OR "
               "match(log, '(^|_)[^_:]*:[^_]*Ty:Ca')";
        break;
    default: break;
    }
    et_buf_reset(&r->sql);
    rc = S("SELECT if(toUInt32(time) = 0, '', toString(time)), user, device_id, device_type, "
           "if(cmd_kind = 'Other', cmd, toString(cmd_kind)), " NUM("http_status") ", "
           NUM("http_substatus") ", " NUM("win32_status") ", " NUM("eas_status") ", error, "
           "access_state, " NUM("sync_key") ", sync_type, folder_type, " NUM("heartbeat") ", "
           NUM("rpc_count") ", " NUM("rpc_latency") ", " NUM("time_taken") ", user_agent");
    if (rc == 0)
        rc = from(r);
    if (rc == 0)
        rc = sqlf(r, " AND (%s) ORDER BY time, seq LIMIT %zu", cond, o->max_rows + 1);
    if (rc < 0)
        return oom(r);
    if ((rc = grid(r, et_iis_report_kind_name(o->kind), cols, 19, (const char *)r->sql.data)) < 0)
        return rc;
    if (r->t[r->nt - 1].nrows > o->max_rows) {
        r->t[r->nt - 1].nrows = o->max_rows;
        *truncated = 1;
    }
    return 0;
}

/* The analyzer's findings are not computed by the engine: say which, where, and why. */
static int findings_table(struct rep *r)
{
    static const char *const cols[] = {"Findings", "Where", "Why"};
    static const char *const cells[] = {
        "per-device patterns: synckey-reset-loop, synckey-repeat, request-storm, "
        "provisioning-loop, auth-failures, heartbeat-range, high-usage",
        "the local pass: eastrace iis LOG... over the same logs",
        "they follow each device's requests in order with state the analyzer keeps (counts "
        "since the last success, a 60 s window, per-collection SyncKeys); written again in SQL "
        "they would be a second implementation of the rules",
        "per request: http-status, sync-status, ping-status, sendmail-status, "
        "provision-status, folder-status, command-status, throttling, server-error",
        "the local pass; their facts are here: --report eas-errors (HTTP >= 400, Status > 1, "
        "Error:), --report errors",
        "their severities, messages and next steps come from the analyzer's and the "
        "decoder's status tables, not from the log",
    };
    if (r->nt == MAX_TABLES)
        return oom(r);
    r->cellv[r->nt] = NULL;
    r->t[r->nt] = (struct et_iis_report_table){"findings", cols, 3, cells, 2};
    r->nt++;
    return 0;
}

/* ---- totals and filters --------------------------------------------------------------- */

/* One row of numbers from a query. */
static int numbers(struct rep *r, const char *sql, int n, uint64_t *v)
{
    const char **c;
    size_t rows;
    int rc = run(r, sql, n, &c, &rows);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n; i++)
        v[i] = rows ? strtoull(c[i], NULL, 10) : 0;
    et_free(c);
    return 0;
}

static int build_where(struct rep *r, const struct et_ch_filter *flt, char date[11])
{
    struct et_buf *w = &r->where;
    int rc = et_buf_puts(w, "1");
    if (rc == 0 && date[0]) {
        int64_t us;
        if (et_iis_time_parse(date, 10, "00:00:00", 8, &us) != 0) {
            et_error_set(r->e, ET_EINVAL, "bad --date '%s'", date);
            return ET_EINVAL;
        }
        rc = et_buf_printf(w, " AND toUInt32(time) >= %lld AND toUInt32(time) < %lld",
                           (long long)(us / 1000000), (long long)(us / 1000000 + 86400));
    }
    if (rc == 0 && r->o->device != NULL && r->o->device[0]) {
        rc = et_buf_puts(w, " AND lower(device_id) = lower(");
        if (rc == 0)
            rc = et__ch_sql_str(w, r->o->device);
        if (rc == 0)
            rc = et_buf_putc(w, ')');
    }
    if (rc == 0 && flt != NULL && (flt->since || flt->until))
        rc = et_buf_puts(w, " AND toUInt32(time) > 0");
    if (rc == 0 && flt != NULL && flt->since)
        rc = et_buf_printf(w, " AND toUInt32(time) >= %lld",
                           (long long)((flt->since + 999999) / 1000000));
    if (rc == 0 && flt != NULL && flt->until)
        rc = et_buf_printf(w, " AND toUInt32(time) < %lld",
                           (long long)((flt->until + 999999) / 1000000));
    return rc < 0 ? oom(r) : 0;
}

int et_ch_report(const struct et_ch_url *u, const struct et_iis_report_opts *oin,
                 const struct et_ch_filter *flt, int findings, FILE *out,
                 enum et_report_format fmt, struct et_error *e)
{
    struct et_iis_report_opts o = *oin;
    struct et_iis_report_result res;
    struct rep r;
    char date[11] = "";
    uint64_t v[3];
    int rc, truncated = 0;
    int64_t *hour = NULL;
    uint64_t *hour_hits = NULL;
    const char **hc = NULL;

    /* The defaults of et_iis_report_new. */
    if (o.max_rows == 0)
        o.max_rows = 1000000;
    if (o.rpc_count_min <= 0)
        o.rpc_count_min = 500;
    if (o.rpc_latency_min <= 0)
        o.rpc_latency_min = 1000;
    if (o.kind == ET_IIS_REPORT_TOP && o.top <= 0)
        o.top = 20;
    if (o.date != NULL && o.date[0] && et_iis_date_normalize(o.date, date) != 0) {
        et_error_set(e, ET_EINVAL, "bad --date '%s' (YYYY-MM-DD or MM-DD-YYYY)", o.date);
        return ET_EINVAL;
    }
    memset(&r, 0, sizeof(r));
    memset(&res, 0, sizeof(res));
    r.u = u;
    r.o = &o;
    r.e = e;
    et_buf_init(&r.where, 0);
    et_buf_init(&r.sql, 0);
    r.cellv = et_calloc(MAX_TABLES, sizeof(*r.cellv));
    if (r.cellv == NULL) {
        rc = oom(&r);
        goto out;
    }
    if ((rc = et__ch_schema_ensure(u, 0, e)) < 0 || (rc = build_where(&r, flt, date)) < 0)
        goto out;

    /* Totals: lines and bad lines per file; EAS lines per site before the filters. */
    et_buf_reset(&r.sql);
    sqlf(&r, "SELECT sum(lines), sum(bad), sum(bytes) FROM %s.%s%s", u->db, u->table,
         ET_CH_FILES_SUFFIX);
    if ((rc = numbers(&r, (const char *)r.sql.data, 3, v)) < 0)
        goto out;
    res.totals.lines = v[0];
    res.totals.bad = v[1];
    res.totals.bytes = v[2];
    et_buf_reset(&r.sql);
    sqlf(&r, "SELECT countIf(site = 'frontend'), countIf(site = 'backend') FROM %s.%s", u->db,
         u->table);
    if ((rc = numbers(&r, (const char *)r.sql.data, 2, v)) < 0)
        goto out;
    res.totals.frontend = o.site == ET_IIS_SITE_BACKEND ? 0 : v[0];
    res.totals.backend = o.site == ET_IIS_SITE_FRONTEND ? 0 : v[1];
    et_buf_reset(&r.sql);
    sqlf(&r, "SELECT countIf(site = 'frontend'), countIf(site = 'backend') FROM %s.%s WHERE %s",
         u->db, u->table, (const char *)r.where.data);
    if ((rc = numbers(&r, (const char *)r.sql.data, 2, v)) < 0)
        goto out;
    int site = (int)o.site;
    if (site == ET_IIS_SITE_AUTO)
        site = v[0] == 0 && v[1] > 0 ? ET_IIS_SITE_BACKEND : ET_IIS_SITE_FRONTEND;
    res.totals.site_used = site;
    res.totals.eas = site == ET_IIS_SITE_FRONTEND ? v[0]
                     : site == ET_IIS_SITE_BACKEND ? v[1] : v[0] + v[1];
    if (site != ET_IIS_SITE_BOTH &&
        et_buf_printf(&r.where, " AND site = '%s'",
                      site == ET_IIS_SITE_BACKEND ? "backend" : "frontend") < 0) {
        rc = oom(&r);
        goto out;
    }

    switch (o.kind) {
    case ET_IIS_REPORT_HITS:
        if ((rc = hits_devices(&r)) < 0 || (rc = hits_summary(&r)) < 0 ||
            (rc = errors_tables(&r)) < 0)
            goto out;
        break;
    case ET_IIS_REPORT_ERRORS:
        if ((rc = errors_tables(&r)) < 0)
            goto out;
        break;
    case ET_IIS_REPORT_SYNCKEY0:
    case ET_IIS_REPORT_SYNCS_BY_SYNCKEY:
        if ((rc = keyed(&r)) < 0)
            goto out;
        break;
    case ET_IIS_REPORT_TOP:
        if ((rc = top(&r)) < 0)
            goto out;
        break;
    default:
        if ((rc = recs(&r, &truncated)) < 0)
            goto out;
        break;
    }
    if (findings && fmt != ET_REPORT_CSV && (rc = findings_table(&r)) < 0)
        goto out;
    if (fmt == ET_REPORT_HTML) {
        size_t n;
        et_buf_reset(&r.sql);
        sqlf(&r, "SELECT toString(intDiv(toUInt32(time), 3600) AS h), toString(count()) FROM "
                 "%s.%s WHERE %s GROUP BY h ORDER BY h",
             u->db, u->table, (const char *)r.where.data);
        if ((rc = run(&r, (const char *)r.sql.data, 2, &hc, &n)) < 0)
            goto out;
        hour = et_malloc((n ? n : 1) * sizeof(*hour));
        hour_hits = et_malloc((n ? n : 1) * sizeof(*hour_hits));
        if (hour == NULL || hour_hits == NULL) {
            rc = oom(&r);
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            hour[i] = strtoll(hc[i * 2], NULL, 10);
            hour_hits[i] = strtoull(hc[i * 2 + 1], NULL, 10);
        }
        res.hour = hour;
        res.hour_hits = hour_hits;
        res.nhours = n;
    }
    res.kind = o.kind;
    res.truncated = truncated;
    res.tables = r.t;
    res.ntables = r.nt;
    rc = et_iis_report_write_result(&res, out, fmt, e);
out:
    for (int i = 0; r.cellv != NULL && i < r.nt; i++)
        et_free((void *)r.cellv[i]);
    et_free(r.cellv);
    for (size_t i = 0; i < r.nkeep; i++)
        et_free(r.keep[i]);
    et_free(r.keep);
    et_free(hc);
    et_free(hour);
    et_free(hour_hits);
    et_buf_free(&r.where);
    et_buf_free(&r.sql);
    return rc;
}
