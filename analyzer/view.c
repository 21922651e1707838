/*
 * The view of one exchange: what the rules and renderers need, decoded once.
 *
 * Sources differ in what they carry: a capture or .saz has WBXML bodies, a mailbox log has the
 * same documents as XML text, an IIS log line has no body but Exchange's Log= items (S = status,
 * Error:, ...), which the readers turn into typed facts (x->facts). The view hides that:
 * statuses, collections and heartbeats come from whichever is present.
 */
#include "eastrace/analyzer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eastrace/http.h"

/* Cap on decoded body size for analysis (a capture body cap is 16 MiB). */
#define VIEW_BODY_CAP ((size_t)64 * 1024 * 1024)

/* Decodes a body (WBXML, multipart part 0, or mailbox-log XML) into a document. */
static struct et_wbxml_doc *decode_body(const struct et_headers *h, const struct et_body *b,
                                        struct et_arena *a, struct et_view *v)
{
    struct et_http_view hv;
    struct et_error err;
    struct et_wbxml_doc *doc = NULL;
    struct et_wbxml_opts wo = {0};
    const uint8_t *p;
    size_t n;

    if (b->len == 0 || b->absent)
        return NULL;
    et_error_clear(&err);
    if (et_http_body_view(h, b, VIEW_BODY_CAP, &hv, a, &err) == ET_ENOMEM)
        return NULL;
    p = hv.data;
    n = hv.len;
    if (hv.kind == ET_BODY_MULTIPART) {
        if (hv.nparts == 0)
            return NULL;
        p = hv.data + hv.parts[0].offset;
        n = hv.parts[0].len;
    } else if (hv.kind == ET_BODY_XML) {
        /* Mailbox logs hold the documents as XML: encode them with the same tables and
         * decode the result, so every rule reads one tree shape. */
        struct et_buf wb;
        int rc;
        et_buf_init(&wb, VIEW_BODY_CAP);
        et_error_clear(&err);
        rc = et_wbxml_encode((const char *)p, n, &wb, &err);
        if (rc == 0) {
            struct et_error derr;
            et_error_clear(&derr);
            et_wbxml_decode(wb.data, wb.len, &wo, &doc, &derr);
        }
        et_buf_free(&wb);
        return doc;
    } else if (hv.kind != ET_BODY_WBXML) {
        return NULL;
    }
    et_error_clear(&err);
    if (et_wbxml_decode(p, n, &wo, &doc, &err) != 0 && v->body_error == 0) {
        char msg[300];
        v->body_error = err.code;
        snprintf(v->body_error_msg, sizeof(v->body_error_msg), "%s",
                 et_error_format(&err, msg, sizeof(msg)));
    }
    return doc;
}

static const char *node_text_dup(const struct et_wbxml_node *n, struct et_arena *a)
{
    size_t len;
    const char *t;
    if (n == NULL)
        return NULL;
    t = et_wbxml_node_text(n, &len);
    return et_arena_strndup(a, t, len);
}

/* Exchange's diagnostic headers. X-FailureContext is base64 text in Exchange Online's answers;
 * it is decoded when the result is printable UTF-8, else kept as sent. */
static void read_exdiag(struct et_view *v, const struct et_exchange *x, struct et_arena *a)
{
    const struct et_headers *h = &x->resp.headers;
    struct et_view_exdiag *d = &v->exdiag;
    const char *fc;

    if (!x->has_response)
        return;
    d->cas_error = et_headers_get(h, "X-CasErrorCode");
    d->diag_info = et_headers_get(h, "X-DiagInfo");
    d->fe_server = et_headers_get(h, "X-FEServer");
    d->be_server = et_headers_get(h, "X-BEServer");
    d->be_target = et_headers_get(h, "X-CalculatedBETarget");
    d->request_id = et_headers_get(h, "request-id");
    d->ms_diagnostics = et_headers_get(h, "X-MS-Diagnostics");
    fc = et_headers_get(h, "X-FailureContext");
    d->failure_context = fc;
    if (fc != NULL && *fc != '\0') {
        struct et_buf dec;
        struct et_error e;
        int text = 0;
        et_buf_init(&dec, 64 * 1024);
        et_error_clear(&e);
        if (et_base64_decode(&dec, fc, strlen(fc), &e) == 0 && dec.len > 0 &&
            et_utf8_valid(dec.data, dec.len)) {
            text = 1;
            for (size_t i = 0; i < dec.len; i++)
                if (dec.data[i] < 0x20 && dec.data[i] != '\t' && dec.data[i] != '\r' &&
                    dec.data[i] != '\n')
                    text = 0;
        }
        if (text) {
            const char *s = et_arena_strndup(a, (const char *)dec.data, dec.len);
            if (s != NULL)
                d->failure_context = s;
        }
        et_buf_free(&dec);
    }
    d->present = d->cas_error || d->failure_context || d->diag_info || d->fe_server ||
                 d->be_server || d->be_target || d->request_id || d->ms_diagnostics;
}

static struct et_view_collection *find_coll(struct et_view *v, const char *id)
{
    for (size_t i = 0; i < v->ncolls; i++) {
        const char *cid = v->colls[i].collection_id;
        if ((cid == NULL && id == NULL) || (cid && id && strcmp(cid, id) == 0))
            return &v->colls[i];
    }
    if (v->ncolls == ET_VIEW_MAX_COLLECTIONS)
        return NULL;
    v->colls[v->ncolls].collection_id = id;
    v->colls[v->ncolls].status = -1;
    return &v->colls[v->ncolls++];
}

/* Collections of a Sync request or response. */
static void sync_collections(struct et_view *v, const struct et_wbxml_node *root, int response,
                             struct et_arena *a)
{
    struct et_wbxml_iter it;
    const struct et_wbxml_node *c;

    et_wbxml_iter_init(&it, root, "Collections/Collection");
    while ((c = et_wbxml_iter_next(&it)) != NULL) {
        const char *id = node_text_dup(et_wbxml_find(c, "CollectionId"), a);
        const char *key = node_text_dup(et_wbxml_find(c, "SyncKey"), a);
        struct et_view_collection *vc = find_coll(v, id);
        long long st;
        if (vc == NULL)
            break;
        if (response) {
            vc->new_sync_key = key;
            if (et_wbxml_find_int(c, "Status", &st) == 0)
                vc->status = (long)st;
        } else {
            vc->sync_key = key;
        }
    }
}

static void read_request(struct et_view *v, struct et_arena *a)
{
    const struct et_wbxml_node *root = v->req_doc ? v->req_doc->root : NULL;
    long long n;

    if (root == NULL || root->name == NULL)
        return;
    if (strcmp(root->name, "Sync") == 0) {
        sync_collections(v, root, 0, a);
        if (et_wbxml_find_int(root, "HeartbeatInterval", &n) == 0)
            v->heartbeat_req = (long)n;
        else if (et_wbxml_find_int(root, "Wait", &n) == 0)
            v->heartbeat_req = (long)n * 60;
    } else if (strcmp(root->name, "FolderSync") == 0) {
        struct et_view_collection *vc = find_coll(v, "FolderSync");
        if (vc != NULL)
            vc->sync_key = node_text_dup(et_wbxml_find(root, "SyncKey"), a);
    } else if (strcmp(root->name, "Ping") == 0) {
        struct et_wbxml_iter it;
        long count = 0;
        if (et_wbxml_find_int(root, "HeartbeatInterval", &n) == 0)
            v->heartbeat_req = (long)n;
        et_wbxml_iter_init(&it, root, "Folders/Folder");
        while (et_wbxml_iter_next(&it) != NULL)
            count++;
        if (et_wbxml_find(root, "Folders") != NULL)
            v->ping_folders = count;
    }
}

static void read_response(struct et_view *v, struct et_arena *a)
{
    const struct et_wbxml_node *root = v->resp_doc ? v->resp_doc->root : NULL;
    const struct et_wbxml_node *s;
    struct et_wbxml_iter it;
    long long n;

    if (root == NULL || root->name == NULL)
        return;
    v->resp_root = root->name;
    if (et_wbxml_find_int(root, "Status", &n) == 0)
        v->top_status = (long)n;
    /* Only the command's own Status elements: an Email Flag or a Tasks item has a Status of
     * its own namespace that is item data, not a result. */
    et_wbxml_iter_init(&it, root, "//Status");
    while ((s = et_wbxml_iter_next(&it)) != NULL && v->nstatus < ET_VIEW_MAX_STATUS) {
        if (s->page != root->page || et_wbxml_node_int(s, &n) != 0)
            continue;
        v->statuses[v->nstatus] = (long)n;
        v->status_parent[v->nstatus] = s->parent && s->parent->name ? s->parent->name : NULL;
        v->nstatus++;
    }
    if (strcmp(root->name, "Sync") == 0) {
        sync_collections(v, root, 1, a);
    } else if (strcmp(root->name, "FolderSync") == 0) {
        struct et_view_collection *vc = find_coll(v, "FolderSync");
        if (vc != NULL) {
            vc->new_sync_key = node_text_dup(et_wbxml_find(root, "SyncKey"), a);
            vc->status = v->top_status;
        }
    } else if (strcmp(root->name, "Ping") == 0) {
        if (et_wbxml_find_int(root, "HeartbeatInterval", &n) == 0)
            v->heartbeat_resp = (long)n;
        if (et_wbxml_find_int(root, "MaxFolders", &n) == 0)
            v->max_folders = (long)n;
    }
}

/* What a server-side log said (exchange.h, struct et_server_facts): an IIS line's Log= items
 * or a mailbox log's exception, set by the readers, or carried over by the pipeline from the
 * other members of a correlated group. Bodies, when decoded, take precedence. */
static void read_facts(struct et_view *v, const struct et_exchange *x, struct et_arena *a)
{
    const struct et_server_facts *f = &x->facts;
    const char *err = f->error != NULL && *f->error != '\0' ? f->error : NULL;

    if (!f->present)
        return;
    if (f->status >= 0 && v->nstatus == 0) {
        v->top_status = f->status;
        v->statuses[0] = f->status;
        v->status_parent[0] = NULL;
        v->nstatus = 1;
    }
    /* The exception explains more than the error's name: it wins when a group has both. */
    if (f->exception != NULL)
        v->server_error = f->exception;
    if (err != NULL) {
        if (v->server_error == NULL)
            v->server_error = err;
        if (strstr(err, "TooManyJobsQueued") || strstr(err, "OverBudget") ||
            strstr(err, "Throttl") || strstr(err, "Budget")) {
            v->throttled = 1;
            v->throttle = err;
        }
    }
    if (f->heartbeat >= 0 && v->heartbeat_req < 0)
        v->heartbeat_req = f->heartbeat;
    if (f->sync_key != NULL && v->ncolls == 0 && v->cmd != NULL && strcmp(v->cmd, "Sync") == 0) {
        struct et_view_collection *vc = find_coll(v, NULL);
        if (vc != NULL) {
            vc->sync_key = et_arena_strdup(a, f->sync_key);
            vc->status = v->top_status;
        }
    }
}

int et_view_build(const struct et_exchange *x, struct et_arena *a, struct et_view *v)
{
    struct et_eas_response_info ri;
    struct et_error err;

    memset(v, 0, sizeof(*v));
    v->top_status = -1;
    v->heartbeat_req = -1;
    v->heartbeat_resp = -1;
    v->max_folders = -1;
    v->ping_folders = -1;
    v->http_status = x->has_response ? x->resp.status : 0;
    read_exdiag(v, x, a);

    if (x->has_request && x->req.target != NULL) {
        et_error_clear(&err);
        if (et_eas_request_parse(x, a, &v->req, &err) == ET_ENOMEM)
            return ET_ENOMEM;
        if (v->req.is_eas) {
            v->is_eas = 1;
            v->cmd = v->req.cmd;
            v->user = v->req.user ? v->req.user : v->req.auth_user;
        }
    }
    if (v->req.device_id != NULL && v->req.device_id[0] != '\0')
        v->device = v->req.device_id;
    else if (v->user != NULL)
        v->device = v->user;
    else if (x->client_addr != NULL)
        v->device = x->client_addr;
    else
        v->device = "-";

    if (x->has_response) {
        et_eas_response_info(x, &ri);
        if (ri.throttle != NULL) {
            v->throttled = 1;
            v->throttle = ri.throttle;
        } else if (ri.http_status == 503 && ri.retry_after != NULL) {
            v->throttled = 1;
            v->throttle = "503 with Retry-After";
        }
    }
    if (v->is_eas || x->source == ET_SRC_MAILBOX) {
        if (x->has_request) {
            v->req_doc = decode_body(&x->req.headers, &x->req.body, a, v);
            v->has_req_body = v->req_doc != NULL;
        }
        if (x->has_response) {
            v->resp_doc = decode_body(&x->resp.headers, &x->resp.body, a, v);
            v->has_resp_body = v->resp_doc != NULL;
        }
        read_request(v, a);
        read_response(v, a);
    }
    read_facts(v, x, a);
    return 0;
}

long et_view_status(const struct et_view *v, const char **rootp, const char **parentp)
{
    const char *root = v->resp_root ? v->resp_root : v->cmd;
    const char *parent = NULL;
    long show = -1;

    *rootp = root;
    *parentp = NULL;
    if (root == NULL || v->nstatus == 0)
        return -1;
    for (size_t i = 0; i < v->nstatus; i++) {
        int sev = et_eas_status_severity(root, v->status_parent[i], (int)v->statuses[i]);
        if (sev != ET_EAS_SEV_SUCCESS) {
            show = v->statuses[i];
            parent = v->status_parent[i];
            break;
        }
    }
    if (show < 0) {
        show = v->top_status >= 0 ? v->top_status : v->statuses[0];
        parent = v->top_status >= 0 ? root : v->status_parent[0];
    }
    *parentp = parent;
    return show;
}

void et_view_reset(struct et_view *v)
{
    et_wbxml_doc_free(v->req_doc);
    v->req_doc = NULL;
    et_wbxml_doc_free(v->resp_doc);
    v->resp_doc = NULL;
}
