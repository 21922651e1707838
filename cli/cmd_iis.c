/* eastrace iis: ActiveSyncReport.ps1-style and Log Parser Studio-style reports over Exchange
 * IIS logs (files, directories, .gz), or the EAS lines as exchanges (--exchanges, JSON). */
#include "cli.h"

#include "eastrace/pipeline.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eastrace/iisreport.h"
#include "eastrace/smtp.h"

static void iis_usage(FILE *f)
{
    fputs("usage: eastrace iis [OPTIONS] PATH...\n"
          "\n"
          "Reports over Exchange IIS (W3C) logs: files, directories (u_ex*.log), .gz.\n"
          "\n"
          "  --report NAME      hits (default), errors, synckey0, syncs-by-synckey,\n"
          "                     device-timeline, sendmail, eas-errors, rpc, top, calendar\n"
          "  --csv | --html | --json   output format (default: a table)\n"
          "  -o FILE            write to FILE instead of stdout\n"
          "  --minimum-hits N   leave out devices with fewer hits\n"
          "  --top N            only the N devices with most hits\n"
          "  --hourly           per-hour rows;  --interval SECONDS  per-interval rows\n"
          "  --date DATE        only lines of DATE (YYYY-MM-DD or MM-DD-YYYY)\n"
          "  --no-findings      leave out the analyzer's findings table (rules as in replay)\n"
          "  --device ID        only this DeviceId\n"
          "  --site S           frontend (default when both appear), backend, both\n"
          "  --rpc-count N, --rpc-latency MS   thresholds of --report rpc\n"
          "  --threads N        worker threads for plain files (default 2)\n"
          "  --no-progress      no progress bar on a terminal\n"
          "\n"
          "ClickHouse as the engine (docs/scale-out.md):\n"
          "  --load clickhouse://[USER@]HOST[:PORT]/DB[?table=NAME]\n"
          "                     load the EAS lines of PATH... (creates the tables; password\n"
          "                     from CLICKHOUSE_PASSWORD); --batch-rows N rows per INSERT\n"
          "  --engine clickhouse://HOST[:PORT]/DB   compute the report there with SQL (no\n"
          "                     PATH); same options and output as over the logs, plus\n"
          "  --since TIME, --until TIME   ISO 8601, UTC unless an offset (until exclusive)\n"
          "  --print-schema     the CREATE TABLE statements (for every shard of a cluster)\n"
          "\n"
          "Mailing the report (the HTML report as the message, the CSV attached):\n"
          "  --mail-to ADDR[,ADDR]   recipients (repeatable); needs --smtp\n"
          "  --smtp HOST[:PORT]      SMTP server (port 25 by default; [v6addr]:port)\n"
          "  --mail-from ADDR        sender (default eastrace@<hostname>)\n"
          "  --mail-subject TEXT     subject (default names the report and its totals)\n"
          "  --smtp-starttls MODE    if-offered (default), required, never\n"
          "  --smtp-ca FILE          trust this CA for the server (default: system store)\n"
          "  --smtp-user USER        AUTH PLAIN/LOGIN as USER; the password comes from the\n"
          "                          SMTP_PASSWORD environment variable or\n"
          "  --smtp-password-file F  (first line of F), never from the command line\n"
          "  --smtp-timeout SECONDS  per SMTP step (default 30)\n"
          "With --mail-to the report goes to stdout only when -o or a format is given.\n",
          f);
}

static int parse_long(const char *s, long *v);

/* What --mail-to and friends collected. */
struct mail_opts {
    const char *to[64];
    size_t nto;
    char *to_copy[64]; /* owned copies of the --mail-to values, split at commas */
    size_t ncopy;
    const char *smtp, *from, *subject, *ca, *user, *password_file;
    enum et_smtp_starttls starttls;
    long timeout_s;
};

static int add_recipients(struct mail_opts *m, const char *v)
{
    char *c;
    if (m->ncopy >= ET_ARRAY_SIZE(m->to_copy) || (c = strdup(v)) == NULL)
        return -1;
    m->to_copy[m->ncopy++] = c;
    for (char *p = c; p != NULL;) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        while (*p == ' ')
            p++;
        if (*p != '\0') {
            if (m->nto >= ET_ARRAY_SIZE(m->to))
                return -1;
            m->to[m->nto++] = p;
        }
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* Renders the report in one format into a malloc'd buffer (open_memstream). */
static int render_mem(struct et_iis_report *r, enum et_report_format fmt, char **out, size_t *n)
{
    struct et_error e;
    char m[300];
    FILE *f = open_memstream(out, n);
    if (f == NULL)
        return -1;
    et_error_clear(&e);
    int rc = et_iis_report_write(r, f, fmt, &e);
    if (fclose(f) != 0 || rc < 0) {
        if (rc < 0)
            et_cli_err("%s", et_error_format(&e, m, sizeof(m)));
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

/* Mails the HTML report with the CSV attached. Returns 0, or -1 after reporting why. */
static int mail_report(struct et_iis_report *r, const struct et_iis_report_opts *ro,
                       const struct mail_opts *m)
{
    struct et_smtp_opts so;
    struct et_iis_report_totals t;
    char host[256], from[320], subject[300], pw[512], port_s[8] = "";
    char *html = NULL, *csv = NULL;
    size_t hn = 0, cn = 0;
    struct et_buf msg;
    struct et_error e;
    char em[600];
    int rc = -1;

    memset(&so, 0, sizeof(so));
    pw[0] = '\0';
    et_buf_init(&msg, 0);
    /* HOST, HOST:PORT, [V6]:PORT */
    if (m->smtp[0] == '[') {
        const char *rb = strchr(m->smtp, ']');
        if (rb == NULL || (rb[1] != '\0' && rb[1] != ':')) {
            et_cli_err("iis: bad --smtp '%s' (HOST[:PORT] or [ADDR]:PORT)", m->smtp);
            goto out;
        }
        snprintf(host, sizeof(host), "%.*s", (int)(rb - m->smtp - 1), m->smtp + 1);
        if (rb[1] == ':')
            snprintf(port_s, sizeof(port_s), "%s", rb + 2);
    } else {
        const char *colon = strrchr(m->smtp, ':');
        if (colon != NULL && strchr(m->smtp, ':') == colon) {
            snprintf(host, sizeof(host), "%.*s", (int)(colon - m->smtp), m->smtp);
            snprintf(port_s, sizeof(port_s), "%s", colon + 1);
        } else {
            snprintf(host, sizeof(host), "%s", m->smtp);
        }
    }
    so.port = 25;
    if (port_s[0] != '\0') {
        long p;
        if (parse_long(port_s, &p) < 0 || p < 1 || p > 65535) {
            et_cli_err("iis: bad port in --smtp '%s'", m->smtp);
            goto out;
        }
        so.port = (int)p;
    }
    if (host[0] == '\0') {
        et_cli_err("iis: --smtp needs a host");
        goto out;
    }
    so.host = host;
    so.starttls = m->starttls;
    so.ca_file = m->ca;
    so.to = m->to;
    so.nto = m->nto;
    so.timeout_ms = (int)(m->timeout_s > 0 ? m->timeout_s * 1000 : 30000);
    /* Loopback never leaves the machine: AUTH without TLS is allowed there only. */
    so.allow_plain_auth = strcmp(host, "127.0.0.1") == 0 || strcmp(host, "::1") == 0 ||
                          strcmp(host, "localhost") == 0;
    if (m->from != NULL) {
        snprintf(from, sizeof(from), "%s", m->from);
    } else {
        char hn_[256];
        if (gethostname(hn_, sizeof(hn_)) != 0 || hn_[0] == '\0')
            snprintf(hn_, sizeof(hn_), "localhost");
        hn_[sizeof(hn_) - 1] = '\0';
        snprintf(from, sizeof(from), "eastrace@%s", hn_);
    }
    so.from = from;
    if (m->user != NULL) {
        const char *env = getenv("SMTP_PASSWORD");
        so.user = m->user;
        if (m->password_file != NULL) {
            FILE *pf = fopen(m->password_file, "r");
            if (pf == NULL || fgets(pw, sizeof(pw), pf) == NULL) {
                et_cli_err("iis: cannot read the password from %s", m->password_file);
                if (pf)
                    fclose(pf);
                goto out;
            }
            fclose(pf);
            pw[strcspn(pw, "\r\n")] = '\0';
        } else if (env != NULL) {
            snprintf(pw, sizeof(pw), "%s", env);
        } else {
            et_cli_err("iis: --smtp-user needs SMTP_PASSWORD or --smtp-password-file");
            goto out;
        }
        so.password = pw;
    }
    et_iis_report_totals(r, &t);
    if (m->subject != NULL)
        snprintf(subject, sizeof(subject), "%s", m->subject);
    else
        snprintf(subject, sizeof(subject),
                 "eastrace IIS report (%s): %llu EAS requests, %llu devices",
                 et_iis_report_kind_name(ro->kind), (unsigned long long)t.eas,
                 (unsigned long long)t.devices);
    if (render_mem(r, ET_REPORT_HTML, &html, &hn) < 0 || render_mem(r, ET_REPORT_CSV, &csv, &cn) < 0)
        goto out;
    {
        char fname[80];
        snprintf(fname, sizeof(fname), "eastrace-iis-%s.csv", et_iis_report_kind_name(ro->kind));
        struct et_mime_part parts[2] = {
            {"text/html; charset=utf-8", NULL, html, hn},
            {"text/csv; charset=utf-8", fname, csv, cn},
        };
        if (et_mime_build(&msg, from, m->to, m->nto, subject, parts, 2) < 0) {
            et_cli_err("iis: out of memory building the message");
            goto out;
        }
    }
    et_error_clear(&e);
    if (et_smtp_send(&so, (const char *)msg.data, msg.len, &e) < 0) {
        et_cli_err("iis: mail not sent: %s", et_error_format(&e, em, sizeof(em)));
        goto out;
    }
    et_cli_err("mailed the report to %zu recipient(s) through %s port %d", m->nto, host, so.port);
    rc = 0;
out:
    memset(pw, 0, sizeof(pw));
    free(html);
    free(csv);
    et_buf_free(&msg);
    return rc;
}

static int parse_long(const char *s, long *v)
{
    char *end;
    long x = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || x < 0)
        return -1;
    *v = x;
    return 0;
}


int et_cmd_iis(int argc, char **argv)
{
    struct et_iis_report_opts o;
    enum et_report_format fmt = ET_REPORT_TABLE;
    const char *outpath = NULL;
    int progress = 1, npaths = 0, fmt_given = 0, findings = 1;
    char **paths = calloc((size_t)argc, sizeof(*paths));
    int rc = ET_EXIT_INPUT;
    struct mail_opts mo;
    struct et_cli_iis_engine eng = {0};

    if (paths == NULL)
        return ET_EXIT_INPUT;
    memset(&o, 0, sizeof(o));
    memset(&mo, 0, sizeof(mo));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
#define NEEDV                                                                                  \
    do {                                                                                       \
        if (v == NULL) {                                                                       \
            et_cli_err("iis: %s needs a value", a);                                            \
            goto out;                                                                          \
        }                                                                                      \
        i++;                                                                                   \
    } while (0)
#define NEEDN(dst)                                                                             \
    do {                                                                                       \
        NEEDV;                                                                                 \
        if (parse_long(v, &n) < 0) {                                                           \
            et_cli_err("iis: %s needs a number, not '%s'", a, v);                              \
            goto out;                                                                          \
        }                                                                                      \
        dst = n;                                                                               \
    } while (0)
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            iis_usage(stdout);
            rc = ET_EXIT_OK;
            goto out;
        } else if (strcmp(a, "--csv") == 0) {
            fmt = ET_REPORT_CSV;
            fmt_given = 1;
        } else if (strcmp(a, "--html") == 0) {
            fmt = ET_REPORT_HTML;
            fmt_given = 1;
        } else if (strcmp(a, "--json") == 0) {
            fmt = ET_REPORT_JSON;
            fmt_given = 1;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            NEEDV;
            outpath = v;
        } else if (strcmp(a, "--report") == 0) {
            NEEDV;
            int k = et_iis_report_kind_from(v);
            if (k < 0) {
                et_cli_err("iis: unknown report '%s' (see eastrace iis --help)", v);
                goto out;
            }
            o.kind = (enum et_iis_report_kind)k;
        } else if (strcmp(a, "--minimum-hits") == 0) {
            NEEDN(o.minimum_hits);
        } else if (strcmp(a, "--top") == 0) {
            NEEDN(o.top);
        } else if (strcmp(a, "--hourly") == 0) {
            o.interval = 3600;
        } else if (strcmp(a, "--interval") == 0) {
            NEEDN(o.interval);
        } else if (strcmp(a, "--no-findings") == 0) {
            findings = 0;
        } else if (strcmp(a, "--date") == 0) {
            NEEDV;
            o.date = v;
        } else if (strcmp(a, "--device") == 0) {
            NEEDV;
            o.device = v;
        } else if (strcmp(a, "--threads") == 0) {
            NEEDN(o.threads);
        } else if (strcmp(a, "--rpc-count") == 0) {
            NEEDN(o.rpc_count_min);
        } else if (strcmp(a, "--rpc-latency") == 0) {
            NEEDN(o.rpc_latency_min);
        } else if (strcmp(a, "--site") == 0) {
            NEEDV;
            if (strcmp(v, "frontend") == 0)
                o.site = ET_IIS_SITE_FRONTEND;
            else if (strcmp(v, "backend") == 0)
                o.site = ET_IIS_SITE_BACKEND;
            else if (strcmp(v, "both") == 0)
                o.site = ET_IIS_SITE_BOTH;
            else if (strcmp(v, "auto") == 0)
                o.site = ET_IIS_SITE_AUTO;
            else {
                et_cli_err("iis: --site takes frontend, backend, both or auto");
                goto out;
            }
        } else if (strcmp(a, "--no-progress") == 0) {
            progress = 0;
        } else if (strcmp(a, "--load") == 0) {
            NEEDV;
            eng.load = v;
        } else if (strcmp(a, "--engine") == 0) {
            NEEDV;
            eng.engine = v;
        } else if (strcmp(a, "--print-schema") == 0) {
            eng.print_schema = 1;
        } else if (strcmp(a, "--batch-rows") == 0) {
            NEEDN(eng.batch_rows);
        } else if (strcmp(a, "--since") == 0 || strcmp(a, "--until") == 0) {
            NEEDV;
            if (et_time_parse_iso8601(v, a[2] == 's' ? &eng.since : &eng.until) != 0) {
                et_cli_err("iis: %s needs an ISO 8601 time, not '%s'", a, v);
                goto out;
            }
        } else if (strcmp(a, "--mail-to") == 0) {
            NEEDV;
            if (add_recipients(&mo, v) < 0) {
                et_cli_err("iis: too many recipients");
                goto out;
            }
        } else if (strcmp(a, "--smtp") == 0) {
            NEEDV;
            mo.smtp = v;
        } else if (strcmp(a, "--mail-from") == 0) {
            NEEDV;
            mo.from = v;
        } else if (strcmp(a, "--mail-subject") == 0) {
            NEEDV;
            mo.subject = v;
        } else if (strcmp(a, "--smtp-ca") == 0) {
            NEEDV;
            mo.ca = v;
        } else if (strcmp(a, "--smtp-user") == 0) {
            NEEDV;
            mo.user = v;
        } else if (strcmp(a, "--smtp-password-file") == 0) {
            NEEDV;
            mo.password_file = v;
        } else if (strcmp(a, "--smtp-password") == 0) {
            /* Command lines are visible to every user (ps, /proc) and end up in histories. */
            et_cli_err("iis: no password on the command line: set SMTP_PASSWORD or use "
                       "--smtp-password-file");
            goto out;
        } else if (strcmp(a, "--smtp-timeout") == 0) {
            NEEDN(mo.timeout_s);
        } else if (strcmp(a, "--smtp-starttls") == 0) {
            NEEDV;
            if (strcmp(v, "if-offered") == 0)
                mo.starttls = ET_SMTP_TLS_IF_OFFERED;
            else if (strcmp(v, "required") == 0)
                mo.starttls = ET_SMTP_TLS_REQUIRED;
            else if (strcmp(v, "never") == 0)
                mo.starttls = ET_SMTP_TLS_NEVER;
            else {
                et_cli_err("iis: --smtp-starttls takes required, if-offered or never");
                goto out;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            et_cli_err("iis: unknown option '%s' (see eastrace iis --help)", a);
            goto out;
        } else {
            paths[npaths++] = argv[i];
        }
#undef NEEDV
#undef NEEDN
    }
    if (o.kind == ET_IIS_REPORT_DEVICE_TIMELINE && o.device == NULL && !eng.print_schema &&
        eng.load == NULL) {
        et_cli_err("iis: --report device-timeline needs --device ID");
        goto out;
    }
    if ((eng.since || eng.until) && eng.engine == NULL) {
        et_cli_err("iis: --since/--until need --engine (over log files: --date)");
        goto out;
    }
    if ((eng.load != NULL || eng.engine != NULL) && (mo.nto > 0 || mo.smtp != NULL)) {
        et_cli_err("iis: --mail-to works on the local report only (write the engine's with "
                   "--html -o FILE and mail that)");
        goto out;
    }
    if (eng.load != NULL && eng.engine != NULL) {
        et_cli_err("iis: --load and --engine are separate runs (load first, then report)");
        goto out;
    }
    if (eng.load != NULL || eng.engine != NULL || eng.print_schema) {
        eng.progress = progress && isatty(2);
        rc = et_cli_iis_engine(&eng, &o, paths, npaths, (int)fmt, outpath, findings);
        goto out;
    }
    if (npaths == 0) {
        iis_usage(stderr);
        goto out;
    }
    if ((mo.nto > 0) != (mo.smtp != NULL)) {
        et_cli_err("iis: %s", mo.nto > 0 ? "--mail-to needs --smtp HOST[:PORT]"
                                         : "--smtp needs --mail-to ADDR");
        goto out;
    }
    o.progress = progress && isatty(2);
    /* CSV is the script's one per-device table; every other output carries the findings,
     * computed in the report's own pass. */
    o.findings = findings && (fmt != ET_REPORT_CSV || mo.nto > 0);
    struct et_iis_report *r = et_iis_report_new(&o);
    if (r == NULL) {
        et_cli_err("iis: bad --date (use YYYY-MM-DD or MM-DD-YYYY) or out of memory");
        goto out;
    }
    for (int i = 0; i < npaths; i++) {
        struct et_error e;
        char m[300];
        et_error_clear(&e);
        /* A file of another format: say what it is and which command reads it. */
        if (et_pipe_check_format(paths[i], "iis", &e) != 0 ||
            et_iis_report_add_path(r, paths[i], &e) < 0) {
            et_cli_err("%s", et_error_format(&e, m, sizeof(m)));
            et_iis_report_free(r);
            goto out;
        }
    }
    if (mo.nto > 0) {
        int mrc = mail_report(r, &o, &mo);
        if (mrc < 0 || (outpath == NULL && !fmt_given)) {
            et_iis_report_free(r);
            rc = mrc < 0 ? ET_EXIT_INPUT : ET_EXIT_OK;
            goto out;
        }
    }
    FILE *f = stdout;
    if (outpath != NULL && (f = fopen(outpath, "w")) == NULL) {
        et_cli_err("iis: cannot write %s", outpath);
        et_iis_report_free(r);
        goto out;
    }
    struct et_error e;
    char m[300];
    et_error_clear(&e);
    int wrc = et_iis_report_write(r, f, fmt, &e);
    struct et_iis_report_totals t;
    et_iis_report_totals(r, &t);
    if (f != stdout)
        fclose(f);
    else
        fflush(stdout);
    et_iis_report_free(r);
    if (wrc < 0) {
        et_cli_err("%s", et_error_format(&e, m, sizeof(m)));
        goto out;
    }
    if (t.frontend > 0 && t.backend > 0 && o.site == ET_IIS_SITE_AUTO)
        et_cli_err("note: both front-end and back-end (Proxy) lines found; counted the front "
                   "end only (--site to choose)");
    if (t.bad > 0)
        et_cli_err("note: %llu lines did not match their #Fields and were skipped",
                   (unsigned long long)t.bad);
    rc = ET_EXIT_OK;
out:
    for (size_t k = 0; k < mo.ncopy; k++)
        free(mo.to_copy[k]);
    free(paths);
    return rc;
}
