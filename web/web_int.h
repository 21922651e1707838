/* Private declarations of the web folder: the store's layout, the renderers, the assets. */
#ifndef ET_WEB_WEB_INT_H
#define ET_WEB_WEB_INT_H

#include "eastrace/map.h"
#include <pthread.h>
#include <stdint.h>

#include "eastrace/web.h"

/* One embedded page file (web/assets, turned into C arrays at build time). */
struct et__web_asset {
    const char *name; /* "index.html", "app.js", "app.css" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
};
extern const struct et__web_asset et__web_assets[];
extern const size_t et__web_nassets;
const struct et__web_asset *et__web_asset(const char *name);

/* Interned strings (common/map.h's pool, made on first use): id 0 is NULL, id k the pool's
 * string k - 1; ids are stable for the store's life. */
struct et__strpool {
    struct et_strpool pool;
    int ready;
};

/*
 * One exchange in memory: what the grid shows and what the filters test. Strings are pool ids.
 * The detail JSON and the search text sit in the spill file at the offsets given.
 */
struct et__web_row {
    uint64_t n;
    int64_t t;        /* request start, us; 0 unknown */
    int64_t dur;      /* us; -1 unknown */
    int64_t req_bytes, resp_bytes; /* -1 unknown (IIS) */
    uint32_t device, device_id, user, auth_user, cmd, fcmd, host, folder, status_name, method;
    uint32_t rules;   /* pool id of "rule rule ..." (the findings' rules), 0 none */
    int32_t http;     /* 0 none */
    int32_t eas;      /* EAS Status shown (as replay's column), -1 none */
    int8_t sev;       /* worst finding, -1 none */
    uint8_t seen;     /* ET_WEB_SEEN_* */
    uint8_t err;      /* the exchange failed (no response) */
    uint16_t nfind;
    uint64_t detail_off, text_off;
    uint32_t detail_len, text_len;
};

struct et__web_rule {
    char *rule;
    int sev;            /* highest seen */
    uint64_t count;     /* findings */
    uint64_t *ns;       /* exchange numbers, at most RULE_MAX_NS */
    size_t nns;
    char *message, *next_step; /* of the first finding */
    uint32_t *devs;     /* pool ids of devices concerned */
    size_t ndevs;
};

struct et__web_dev {
    uint32_t device, user, type;
    uint64_t requests, errors, warnings, http_errors;
    int64_t first, last;
    unsigned max_per_minute;
    uint64_t cmds[8];
};

struct et__web_pending {
    uint64_t key;
    int64_t start;
    char *device, *cmd, *host;
    long heartbeat;
};

struct et_web_store {
    pthread_mutex_t mu;
    struct et_web_store_opts o;
    struct et__strpool pool;
    struct et__web_row *rows;
    size_t nrows, cap;
    uint64_t dropped;        /* rows dropped by max_rows */
    int unordered;           /* rows are not in ascending n (rows are in timeline order, and
                              * with one input n is the record number, which need not be) */
    int fd;                  /* spill file */
    uint64_t spill_len;
    uint64_t version;        /* bumps on every change */
    int live, finished;
    struct et__web_rule *rules;
    size_t nrules;
    struct et__web_dev *devs;
    size_t ndevs;
    int devs_from_analyzer;
    char *summary_json;      /* findings of et_web_store_finish, a JSON array */
    struct et__web_pending *pend;
    size_t npend;
    uint64_t nerr, nwarn, ninfo;
    /* the last query's result, reused while paging */
    char *q_key;
    uint64_t q_version;
    uint32_t *q_idx;
    size_t q_n;
    /* wake-up for waiters (the server's async handle) */
    void (*notify)(void *arg);
    void *notify_arg;
};

/* Pool. */
uint32_t et__pool_intern(struct et__strpool *p, const char *s);
const char *et__pool_str(const struct et__strpool *p, uint32_t id);

/* Appends s as a JSON string: quotes, backslash, controls, U+2028/2029 escaped, invalid UTF-8
 * as U+FFFD (so it is valid JSON whatever the traffic held). NULL gives null. The API serves
 * it as application/json with nosniff; the export runs et__web_json_harden over it. */
int et__web_json_str(struct et_buf *b, const char *s, size_t n);
int et__web_json_cstr(struct et_buf *b, const char *s);
/* Rewrites a JSON text in place so it can sit inside <script>: '<' '>' '&' become \u00XX
 * (they occur only inside strings) and invalid UTF-8 becomes U+FFFD. */
int et__web_json_harden(struct et_buf *b);

/* The detail JSON of one exchange (its search text is et_pipe_find_text's). */
int et__web_render_detail(const struct et_web_store_opts *o, uint64_t n,
                          const struct et_exchange *x, const struct et_view *v,
                          const struct et_finding *f, unsigned seen, struct et_buf *out);
/* A row as a JSON object. */
void et__web_row_json(const struct et_web_store *s, const struct et__web_row *r,
                      struct et_buf *out);
/* Reads len bytes at off from the spill file into out. */
int et__web_spill_read(struct et_web_store *s, uint64_t off, uint32_t len, struct et_buf *out);

/* Devices / findings / summary documents (caller holds the lock). */
void et__web_devices_json(struct et_web_store *s, struct et_buf *out);
void et__web_findings_json(struct et_web_store *s, struct et_buf *out);
void et__web_summary_json(struct et_web_store *s, struct et_buf *out);

/* Query of /api/rows (caller holds the lock). */
int et__web_rows_query(struct et_web_store *s, const char *query, struct et_buf *out,
                       int *status);

/* Percent-decoding of one query parameter: the value of name in query ("a=1&b=2"), or NULL.
 * Returns a string the caller frees with et_free. */
char *et__web_query_param(const char *query, const char *name);

#endif
