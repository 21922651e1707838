/*
 * Recording: the only code in proxy/ that builds a struct et_exchange. The rest of the proxy
 * says what happened (a request head was scanned, the proxy answered, the client went away)
 * and this file writes it down, then hands the finished exchange to et_proxy_opts.on_exchange,
 * which takes ownership. Every exchange has its own arena; bodies are recorded up to body_cap
 * (straight into the arena when the length is known, else into a growing buffer copied into
 * the arena at the end), with their wire length kept beyond it.
 */
#include "proxy_int.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- bodies */

void et__cap_init(struct et__conn *c, struct et__capbuf *b, int64_t known)
{
    memset(b, 0, sizeof(*b));
    b->truncated = c->norec; /* forwarded unrecorded: only the wire length is counted */
    if (known > 0 && (uint64_t)known <= c->p->o.body_cap && c->x != NULL && !c->norec) {
        b->data = et_arena_alloc_raw(c->x->arena, (size_t)known); /* written as it comes */
        if (b->data != NULL) {
            b->cap = (size_t)known;
            b->in_arena = 1;
        }
    }
}

void et__cap_add(struct et__conn *c, struct et__capbuf *b, const uint8_t *d, size_t n)
{
    b->wire += n;
    if (b->truncated || n == 0)
        return;
    size_t limit = b->in_arena ? b->cap : c->p->o.body_cap;
    size_t k = n;
    if (b->len + k > limit) {
        k = limit - b->len;
        b->truncated = 1;
    }
    if (k == 0)
        return;
    if (!b->in_arena && b->len + k > b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 4096;
        while (ncap < b->len + k)
            ncap *= 2;
        if (ncap > limit)
            ncap = limit;
        uint8_t *nd = et_realloc(b->data, ncap);
        if (nd == NULL) {
            b->truncated = 1;
            return;
        }
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, d, k);
    b->len += k;
}

void et__cap_drop(struct et__capbuf *b)
{
    if (!b->in_arena)
        et_free(b->data);
    memset(b, 0, sizeof(*b));
}

static void cap_to_body(struct et__conn *c, struct et__capbuf *b, struct et_body *body)
{
    if (b->len > 0) {
        if (b->in_arena)
            body->data = b->data;
        else
            body->data = et_arena_memdup(c->x->arena, b->data, b->len);
    }
    body->len = body->data ? b->len : 0;
    body->wire_len = b->wire;
    body->truncated = b->truncated || body->len < b->wire;
    if (!b->in_arena)
        et_free(b->data);
    memset(b, 0, sizeof(*b));
}

/* ---------------------------------------------------------------- the exchange */

struct et_exchange *et__rec_exchange(struct et__conn *c)
{
    if (c->x != NULL)
        return c->x;
    struct et_exchange *x = et_exchange_new();
    if (x == NULL)
        return NULL;
    x->id = ++c->p->next_id;
    x->source = ET_SRC_PROXY;
    x->source_name = "proxy";
    x->client_addr = et_arena_strdup(x->arena, c->client_addr);
    x->t.connect = c->t_accept;
    x->t.req_begin = c->t_req_begin ? c->t_req_begin : et_now_us();
    if (c->connect_host != NULL) {
        x->tls.present = 1;
        x->scheme = "https";
        x->host = et_arena_strdup(x->arena, c->connect_host);
        x->port = c->connect_port;
        if (c->sni != NULL)
            x->tls.sni = et_arena_strdup(x->arena, c->sni);
        if (c->mode == ET__M_MITM || c->mode == ET__M_TLS_HS) {
            x->tls.intercepted = 1;
            if (c->cl.ssl != NULL && c->cl.hs_done) {
                const unsigned char *alpn = NULL;
                unsigned alen = 0;
                x->tls.client_version = et_arena_strdup(x->arena, SSL_get_version(c->cl.ssl));
                SSL_get0_alpn_selected(c->cl.ssl, &alpn, &alen);
                if (alen > 0)
                    x->tls.alpn = et_arena_strndup(x->arena, (const char *)alpn, alen);
            }
        }
    }
    if (c->p->o.reverse_host != NULL)
        et__rev_rec_init(c, x);
    c->x = x;
    return x;
}

static void record_fields(struct et_exchange *x, struct et_headers *hs, const struct et__head *h)
{
    for (size_t i = 0; i < h->n; i++)
        et_headers_add(hs, x->arena, h->f[i].name, h->f[i].nlen, h->f[i].value, h->f[i].vlen);
}

void et__rec_request(struct et__conn *c, const struct et__head *h)
{
    struct et_exchange *x = c->x;
    if (x == NULL)
        return;
    x->has_request = 1;
    x->req.method = et_arena_strndup(x->arena, h->method, h->method_len);
    x->req.target = et_arena_strndup(x->arena, h->target, h->target_len);
    x->req.http_major = h->major;
    x->req.http_minor = h->minor;
    record_fields(x, &x->req.headers, h);
}

void et__rec_target(struct et__conn *c, const char *scheme, const char *host, int port)
{
    struct et_exchange *x = c->x;
    if (x == NULL)
        return;
    x->scheme = scheme;
    x->host = et_arena_strdup(x->arena, host);
    x->port = port;
    if (strcmp(scheme, "https") == 0)
        x->tls.present = 1;
}

void et__rec_intercepted(struct et__conn *c, int yes)
{
    if (c->x != NULL)
        c->x->tls.intercepted = yes ? 1 : 0;
}

void et__rec_req_end(struct et__conn *c)
{
    struct et_exchange *x = c->x;
    if (x == NULL)
        return;
    x->t.req_end = et_now_us();
    if (c->p->o.on_request != NULL && x->has_request && !c->norec) {
        /* The body recorded so far, lent for the call (it moves into x when it finishes). */
        struct et_body saved = x->req.body;
        x->req.body.data = c->reqbody.len ? c->reqbody.data : NULL;
        x->req.body.len = c->reqbody.len;
        x->req.body.wire_len = c->reqbody.wire;
        x->req.body.truncated = c->reqbody.truncated;
        c->p->o.on_request(x, c->p->o.ud);
        x->req.body = saved;
    }
}

void et__rec_response(struct et__conn *c, const struct et__head *h)
{
    struct et_exchange *x = c->x;
    if (x == NULL)
        return;
    x->has_response = 1;
    x->resp.status = h->status;
    x->resp.reason = et_arena_strndup(x->arena, h->reason, h->reason_len);
    x->resp.http_major = h->major;
    x->resp.http_minor = h->minor;
    x->t.resp_begin = et_now_us();
    record_fields(x, &x->resp.headers, h);
}

void et__rec_local_response(struct et__conn *c, int status, const char *reason,
                            const char *ctype, const void *body, size_t blen)
{
    struct et_exchange *x = c->x;
    if (x == NULL || x->has_response)
        return;
    x->has_response = 1;
    x->resp.status = status;
    x->resp.reason = reason;
    x->resp.http_major = 1;
    x->resp.http_minor = 1;
    x->t.resp_begin = et_now_us();
    et_headers_add(&x->resp.headers, x->arena, "Content-Type", 12, ctype, strlen(ctype));
    et__cap_drop(&c->respbody);
    et__cap_add(c, &c->respbody, body, blen);
}

void et__rec_connect_attempt(struct et__conn *c)
{
    struct et_exchange *x = et__rec_exchange(c);
    if (x == NULL)
        return;
    x->has_request = 1;
    x->req.method = "CONNECT";
    x->req.target = et_arena_printf(x->arena, "%s:%d", c->connect_host, c->connect_port);
}

void et__rec_fail(struct et__conn *c, int code, enum et_stage stage, const char *msg)
{
    struct et_exchange *x = et__rec_exchange(c);
    if (x != NULL)
        et_exchange_fail(x, code, stage, "%s", msg);
}

void et__rec_client_eof(struct et__conn *c)
{
    if (c->x != NULL && c->mode != ET__M_TUNNEL && c->x->has_request)
        et_exchange_fail(c->x, ET_ECONNRESET, ET_STAGE_CLIENT,
                         "the client closed the connection before the response ended");
}

void et__rec_discard(struct et__conn *c)
{
    et__cap_drop(&c->reqbody);
    et__cap_drop(&c->respbody);
    et_exchange_free(c->x);
    c->x = NULL;
}

/* Gives x to the callback (or frees it) and counts it. */
static void hand_over(struct et_proxy *p, struct et_exchange *x)
{
    p->st.exchanges++;
    if (x->err.code != 0)
        p->st.errors++;
    if (p->o.on_exchange_worker != NULL) {
        /* on_exchange borrows x (the capture record is written now, on the loop); the
         * worker owns it. */
        if (p->o.on_exchange != NULL)
            p->o.on_exchange(x, p->o.ud);
        et__worker_push(p, x);
    } else if (p->o.on_exchange != NULL) {
        p->o.on_exchange(x, p->o.ud);
    } else {
        et_exchange_free(x);
    }
}

static void record_upinfo(struct et__conn *c)
{
    struct et_exchange *x = c->x;
    struct et__leg *u = c->up;
    if (x == NULL || u == NULL)
        return;
    char addr[64];
    if (u->connected) {
        et_sockaddr_format((const struct sockaddr *)&u->peer, addr, sizeof(addr));
        x->server_addr = et_arena_strdup(x->arena, addr);
    }
    if (u->tls)
        x->tls.insecure = (unsigned)et__host_insecure(c->p, u->host); /* as upstream.c chose */
    if (u->info == NULL)
        return;
    struct et__upinfo *i = u->info;
    x->tls.upstream_version = i->version ? et_arena_strdup(x->arena, i->version) : NULL;
    x->tls.cipher = i->cipher ? et_arena_strdup(x->arena, i->cipher) : NULL;
    x->tls.upstream_subject = i->subject ? et_arena_strdup(x->arena, i->subject) : NULL;
    x->tls.upstream_issuer = i->issuer ? et_arena_strdup(x->arena, i->issuer) : NULL;
    x->tls.upstream_not_before = i->not_before ? et_arena_strdup(x->arena, i->not_before) : NULL;
    x->tls.upstream_not_after = i->not_after ? et_arena_strdup(x->arena, i->not_after) : NULL;
    x->tls.upstream_sha256 = i->sha256 ? et_arena_strdup(x->arena, i->sha256) : NULL;
    x->tls.verify_error = i->verify ? et_arena_strdup(x->arena, i->verify) : NULL;
    if (x->tls.alpn == NULL && i->alpn)
        x->tls.alpn = et_arena_strdup(x->arena, i->alpn);
}

/* Hands the current exchange to the callback. */
void et__rec_finish(struct et__conn *c)
{
    struct et_exchange *x = c->x;
    if (x == NULL)
        return;
    record_upinfo(c);
    if (x->has_request)
        cap_to_body(c, &c->reqbody, &x->req.body);
    if (x->has_response)
        cap_to_body(c, &c->respbody, &x->resp.body);
    et__cap_drop(&c->reqbody);
    et__cap_drop(&c->respbody);
    if (x->t.req_end == 0 && c->rq == ET__RQ_DONE)
        x->t.req_end = et_now_us();
    if (x->has_response && x->t.resp_end == 0)
        x->t.resp_end = et_now_us();
    c->x = NULL;
    c->t_req_begin = 0;
    if (x->has_response && x->err.code == 0)
        et__remember_client(c->p, (const struct sockaddr *)&c->peer);
    if (c->norec || (c->p->o.select != NULL && !x->has_request)) {
        /* Not selected (et_proxy_opts.select), or not attributable to a user or device. */
        c->norec = 0;
        c->p->st.unrecorded++;
        et_exchange_free(x);
        return;
    }
    hand_over(c->p, x);
}

void et__rec_close(struct et__conn *c)
{
    if (c->tunnel && c->x != NULL) {
        struct et_exchange *x = c->x;
        record_upinfo(c);
        x->has_response = 1;
        x->resp.status = 200;
        x->resp.reason = "Connection established";
        x->req.body.absent = 1;
        x->resp.body.absent = 1;
        x->req.body.wire_len = c->tun_up;
        x->resp.body.wire_len = c->tun_down;
        x->t.resp_begin = c->tun_begin;
        x->t.resp_end = et_now_us();
        et__cap_drop(&c->reqbody);
        et__cap_drop(&c->respbody);
        c->x = NULL;
        if (c->norec) {
            c->p->st.unrecorded++;
            et_exchange_free(x);
        } else {
            hand_over(c->p, x);
        }
    } else if (c->x != NULL && c->x->has_request) {
        if (c->x->err.code == 0)
            et_exchange_fail(c->x, ET_ECONNRESET, ET_STAGE_CLIENT,
                             "connection closed before the exchange completed");
        et__rec_finish(c);
    }
}

void et__rec_free(struct et__conn *c)
{
    if (c->x != NULL) {
        if (!c->reqbody.in_arena)
            et_free(c->reqbody.data);
        if (!c->respbody.in_arena)
            et_free(c->respbody.data);
        et_exchange_free(c->x);
        c->x = NULL;
    }
}
