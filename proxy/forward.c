/*
 * Forwarding: where a request goes (CONNECT target, absolute-form URL, the host inside an
 * intercepted tunnel, or the proxy's own install page), the head re-serialised for the other
 * side (origin-form, HTTP/1.1, hop-by-hop fields dropped, Host from the URL), bodies moved
 * with regenerated framing, and the small answers the proxy makes itself. Mode changes go
 * through et__conn_set_mode(); what is recorded goes through record.c.
 */
#include "proxy_int.h"

#include "eastrace/certs.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- responses we make */

const char *et__reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 504: return "Gateway Timeout";
    }
    return "Error";
}

/* Writes a complete small response to the client. */
void et__send_simple(struct et__conn *c, int status, const char *ctype, const void *body,
                     size_t blen, int close)
{
    et__leg_printf(&c->cl,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\n%s\r\n",
                   status, et__reason_of(status), ctype, blen, close ? "Connection: close\r\n" : "");
    if (!c->req_is_head)
        et__leg_write(&c->cl, body, blen);
    c->resp_started = 1;
    et__rec_local_response(c, status, et__reason_of(status), ctype, body, blen);
}

/* ---------------------------------------------------------------- heads */

static int is_hop_by_hop(const struct et__field *f)
{
    return et__field_is(f, "connection") || et__field_is(f, "proxy-connection") ||
           et__field_is(f, "keep-alive") || et__field_is(f, "proxy-authorization") ||
           et__field_is(f, "proxy-authenticate") || et__field_is(f, "te") ||
           et__field_is(f, "trailer") || et__field_is(f, "transfer-encoding") ||
           et__field_is(f, "upgrade");
}

/* 1 when f is named in a Connection header of h. */
static int listed_in_connection(const struct et__head *h, const struct et__field *f)
{
    for (size_t i = 0; i < h->n; i++) {
        const struct et__field *cf = &h->f[i];
        if (!et__field_is(cf, "connection"))
            continue;
        const char *v = cf->value;
        size_t n = cf->vlen, k = 0;
        while (k < n) {
            while (k < n && (v[k] == ' ' || v[k] == '\t' || v[k] == ','))
                k++;
            size_t s = k;
            while (k < n && v[k] != ',' && v[k] != ' ' && v[k] != '\t')
                k++;
            if (k - s == f->nlen && et_strncaseeq(v + s, f->name, f->nlen))
                return 1;
        }
    }
    return 0;
}

int et__field_hop(const struct et__head *h, const struct et__field *f)
{
    return is_hop_by_hop(f) || listed_in_connection(h, f);
}

/* Copies the end-to-end fields of h to l. skip_host drops Host (absolute-form requests). */
static void write_fields(struct et__leg *l, const struct et__head *h, int skip_host)
{
    for (size_t i = 0; i < h->n; i++) {
        const struct et__field *f = &h->f[i];
        if (et__field_hop(h, f) || (skip_host && et__field_is(f, "host")))
            continue;
        et__leg_write(l, f->name, f->nlen);
        et__leg_write(l, ": ", 2);
        et__leg_write(l, f->value, f->vlen);
        et__leg_write(l, "\r\n", 2);
    }
}

/* Splits "host:port" / "[v6]:port" (port optional when defport > 0). */
int et__split_authority(const char *s, size_t n, int defport, char **host, int *port)
{
    const char *hs = s, *he;
    const char *ps = NULL;
    if (n > 0 && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (rb == NULL)
            return ET_EPARSE;
        hs = s + 1;
        he = rb;
        if (rb + 1 < s + n) {
            if (rb[1] != ':')
                return ET_EPARSE;
            ps = rb + 2;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        he = colon ? colon : s + n;
        if (colon)
            ps = colon + 1;
    }
    if (he == hs || memchr(s, '@', n) != NULL)
        return ET_EPARSE;
    int pv = defport;
    if (ps != NULL) {
        pv = 0;
        if (ps == s + n)
            return ET_EPARSE;
        for (const char *q = ps; q < s + n; q++) {
            if (*q < '0' || *q > '9' || pv > 65535)
                return ET_EPARSE;
            pv = pv * 10 + (*q - '0');
        }
    }
    if (pv <= 0 || pv > 65535)
        return ET_EPARSE;
    *host = et_strndup(hs, (size_t)(he - hs));
    if (*host == NULL)
        return ET_ENOMEM;
    if (!et__host_valid(*host)) {
        et_free(*host);
        *host = NULL;
        return ET_EPARSE;
    }
    *port = pv;
    return 0;
}

/* 1 when host:port is this proxy (a phone that browses to the proxy's address with the
 * proxy configured sends absolute-form): served locally instead of refused as a loop. */
static int is_self(const struct et_proxy *p, const char *host, int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (port != p->port)
        return 0;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)(void *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)(void *)&ss) != 0)
        return et_strcaseeq(host, "localhost");
    for (size_t i = 0; i < p->n_own; i++)
        if (et__addr_same_ip((const struct sockaddr *)&p->own[i], (const struct sockaddr *)&ss))
            return 1;
    return 0;
}

/* Serves the CA install page and downloads. */
static void serve_local(struct et__conn *c, const char *path)
{
    struct et_buf body;
    const char *ctype = "text/plain";
    int rc = ET_ENOTFOUND;
    char pathbuf[256];
    et_buf_init(&body, 1 << 20);
    snprintf(pathbuf, sizeof(pathbuf), "%s", path);
    char *q = strchr(pathbuf, '?');
    if (q)
        *q = '\0';
    const char *res = pathbuf;
    if (strcmp(res, "/ca.pem") == 0)
        res = "/eastrace-ca.pem";
    else if (strcmp(res, "/ca.crt") == 0)
        res = "/eastrace-ca.crt";
    else if (strcmp(res, "/eastrace.mobileconfig") == 0)
        res = "/eastrace-ca.mobileconfig";
    /* A client fetching the install page is installing the CA: its pins go. */
    size_t unpinned = et__policy_unpin_client(c->p, c);
    if (unpinned > 0)
        et__plog(c->p, "install page fetched by %s: its %zu pinned host(s) are intercepted again",
                 c->client_addr, unpinned);
    if (c->p->o.certs != NULL)
        rc = et_certs_http_resource(c->p->o.certs, res, c->p->listen_str, &body, &ctype);
    if (rc == 0) {
        if (strstr(res, "mobileconfig") != NULL)
            ctype = "application/x-apple-aspen-config";
        et__send_simple(c, 200, ctype, body.data, body.len, c->client_close);
    } else {
        static const char nf[] = "eastrace proxy: not found\n";
        et__send_simple(c, 404, "text/plain", nf, sizeof(nf) - 1, c->client_close);
    }
    et_buf_free(&body);
    c->rs = ET__RS_DONE;
}

static void forward_request(struct et__conn *c, const struct et__head *h, char *host, int port,
                            const char *path, size_t plen);

/* A complete request head is in cl.in: record it, decide where it goes, forward it. */
void et__handle_request(struct et__conn *c, const struct et__head *h)
{
    struct et_proxy *p = c->p;
    struct et_exchange *x = et__rec_exchange(c);
    if (x == NULL) {
        et__conn_fail(c, ET_ENOMEM, ET_STAGE_REQUEST, 502, "out of memory");
        return;
    }
    et__rec_request(c, h);
    /* Recorded, or forwarded unrecorded (--only-user, --only-device: et_proxy_opts.select). */
    c->norec = p->o.select != NULL && !p->o.select(x, p->o.select_ud);
    c->req_is_head = (h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0);
    c->client_close = h->conn_close || (h->minor == 0 && !h->conn_keep_alive);
    c->resp_started = 0;
    c->local = 0;
    int is_connect = h->method_len == 7 && memcmp(h->method, "CONNECT", 7) == 0;
    if (!is_connect)
        c->nreq++;
    const char *path = h->target;
    size_t plen = h->target_len;
    char *host = NULL;
    int port = 0;

    if (c->mode == ET__M_REVERSE) {
        if (et__rev_route(c, h, &host, &port) == 0)
            forward_request(c, h, host, port, path, plen);
        return;
    }
    if (is_connect) {
        if (c->mode != ET__M_HTTP) {
            et__conn_fail(c, ET_EPARSE, ET_STAGE_REQUEST, 400, "CONNECT inside a tunnel");
            return;
        }
        if (et__split_authority(h->target, h->target_len, 0, &host, &port) != 0) {
            et__conn_fail(c, ET_EPARSE, ET_STAGE_REQUEST, 400, "bad CONNECT target");
            return;
        }
        et_free(c->connect_host);
        c->connect_host = host;
        c->connect_port = port;
        et__rec_target(c, "https", host, port);
        if (h->content_length > 0 || h->chunked) {
            et__conn_fail(c, ET_EPARSE, ET_STAGE_REQUEST, 400, "CONNECT with a body");
            return;
        }
        /* Ports other than 80/443 only for targets the operator named (policy.c). */
        c->named = (unsigned)et__target_named(p, host);
        if (!c->named && !et__port_allowed(port) && !et_strcaseeq(host, ET_CERTS_INSTALL_HOST)) {
            char why[64];
            snprintf(why, sizeof(why), "port %d is not 80 or 443", port);
            et__deny_target(c, "CONNECT", host, port, NULL, why);
            return;
        }
        c->intercept = (unsigned)et__should_intercept(p, c, host);
        et__rec_intercepted(c, c->intercept);
        /* eastrace.cert over TLS is served locally; nothing to resolve. */
        if (c->intercept && et_strcaseeq(host, ET_CERTS_INSTALL_HOST)) {
            et__conn_set_mode(c, ET__M_RESOLVING);
            et_free(c->target_host);
            c->target_host = et_strdup(host);
            c->target_port = port;
            c->naddr = 0;
            et__target_resolved(c);
            et__leg_in_consume(&c->cl, h->head_len);
            return;
        }
        et_free(c->target_host);
        c->target_host = et_strdup(host);
        c->target_port = port;
        et__conn_set_mode(c, ET__M_RESOLVING);
        et__leg_in_consume(&c->cl, h->head_len);
        et__rec_req_end(c);
        /* A tunnel records one exchange when it ends; an intercepted CONNECT none. */
        et__resolve_target(c);
        return;
    }

    if (c->mode == ET__M_MITM) {
        et__rec_target(c, "https", c->connect_host, c->connect_port);
        host = et_strdup(c->connect_host);
        port = c->connect_port;
        if (plen >= 8 && et_strncaseeq(path, "https://", 8)) {
            const char *a = path + 8, *end = path + plen;
            const char *sl = memchr(a, '/', (size_t)(end - a));
            path = sl ? sl : "/";
            plen = sl ? (size_t)(end - sl) : 1;
        }
        if (et_strcaseeq(c->connect_host, ET_CERTS_INSTALL_HOST))
            c->local = 1;
        c->target_tls = 1;
    } else {
        if (plen >= 7 && et_strncaseeq(path, "http://", 7)) {
            const char *a = path + 7, *end = path + plen;
            const char *sl = memchr(a, '/', (size_t)(end - a));
            const char *qm = memchr(a, '?', (size_t)(end - a));
            if (qm && (!sl || qm < sl))
                sl = qm;
            const char *ae = sl ? sl : end;
            if (et__split_authority(a, (size_t)(ae - a), 80, &host, &port) != 0) {
                et__conn_fail(c, ET_EPARSE, ET_STAGE_REQUEST, 400, "bad absolute-form target");
                return;
            }
            path = sl ? sl : "/";
            plen = sl ? (size_t)(end - sl) : 1;
            et__rec_target(c, "http", host, port);
            c->target_tls = 0;
            if (et_strcaseeq(host, ET_CERTS_INSTALL_HOST) || is_self(p, host, port)) {
                c->local = 1;
            } else {
                c->named = (unsigned)et__target_named(p, host);
                if (!c->named && !et__port_allowed(port)) {
                    char why[64];
                    snprintf(why, sizeof(why), "port %d is not 80 or 443", port);
                    et__deny_target(c, "request to", host, port, NULL, why);
                    et_free(host);
                    return;
                }
            }
        } else if (h->target_len > 0 && h->target[0] == '/') {
            /* Origin-form to an explicit proxy: addressed to the proxy itself. */
            c->local = 1;
            et__rec_target(c, "http", p->listen_str, 0);
        } else {
            et__conn_fail(c, ET_EPARSE, ET_STAGE_REQUEST, 400,
                          "request target is neither absolute-form nor CONNECT");
            return;
        }
    }
    if (c->local) {
        char lp[256];
        size_t k = plen < sizeof(lp) - 1 ? plen : sizeof(lp) - 1;
        memcpy(lp, path, k);
        lp[k] = '\0';
        et_free(host);
        if (h->content_length > 0 || h->chunked) {
            et__conn_fail(c, ET_EPARSE, ET_STAGE_REQUEST, 400, "unexpected body");
            return;
        }
        et__leg_in_consume(&c->cl, h->head_len);
        c->rq = ET__RQ_DONE;
        et__rec_req_end(c);
        serve_local(c, lp);
        return;
    }
    forward_request(c, h, host, port, path, plen);
}

/* Writes the request line and fields for the upstream (forward mode). */
static void write_request_head(struct et__conn *c, struct et__leg *w, const struct et__head *h,
                               const char *host, int port, const char *path, size_t plen)
{
    et__leg_write(w, h->method, h->method_len);
    et__leg_write(w, " ", 1);
    et__leg_write(w, path, plen);
    et__leg_write(w, " HTTP/1.1\r\n", 11);
    int absolute = path != h->target;
    if (absolute || !h->has_host) {
        int defp = c->target_tls ? 443 : 80;
        int v6 = strchr(host, ':') != NULL;
        if (port == defp)
            et__leg_printf(w, "Host: %s%s%s\r\n", v6 ? "[" : "", host, v6 ? "]" : "");
        else
            et__leg_printf(w, "Host: %s%s%s:%d\r\n", v6 ? "[" : "", host, v6 ? "]" : "", port);
    }
    write_fields(w, h, absolute);
    if (h->chunked)
        et__leg_write(w, "Transfer-Encoding: chunked\r\n", 28);
    et__leg_write(w, "\r\n", 2);
}

/* The request goes to host:port (takes host): its head is staged for the upstream leg
 * (reused when it goes to the same place, else started once the target is resolved), its
 * body framing set up. */
static void forward_request(struct et__conn *c, const struct et__head *h, char *host, int port,
                            const char *path, size_t plen)
{
    struct et_proxy *p = c->p;
    /* Reuse the upstream connection when it goes to the same place. */
    struct et__leg *u = c->up;
    const char *want_sni = c->target_tls ? (c->sni ? c->sni : host) : NULL;
    if (u != NULL && (u->closing || u->eof || u->failed || u->port != port ||
                      !et_strcaseeq(u->host, host) || u->tls != c->target_tls ||
                      (want_sni && (!u->sni || !et_strcaseeq(u->sni, want_sni)))))
        et__up_close(c);
    u = c->up;

    /* The forwarded head, re-serialised from the parsed parts. */
    struct et__leg tmp; /* staging when there is no upstream leg yet */
    struct et__leg *w = u;
    if (w == NULL) {
        memset(&tmp, 0, sizeof(tmp));
        tmp.p = p;
        w = &tmp;
    }
    if (c->mode == ET__M_REVERSE)
        et__rev_write_head(c, w, h);
    else
        write_request_head(c, w, h, host, port, path, plen);

    memset(&c->reqf, 0, sizeof(c->reqf));
    if (h->chunked) {
        c->reqf.kind = ET__BODY_CHUNKED;
        et__chunked_init(&c->reqf.ck);
    } else if (h->content_length > 0) {
        c->reqf.kind = ET__BODY_LENGTH;
        c->reqf.remaining = (uint64_t)h->content_length;
    } else {
        c->reqf.kind = ET__BODY_NONE;
    }
    c->reqf.out_kind = c->reqf.kind;
    et__cap_init(c, &c->reqbody, h->content_length);
    c->rq = c->reqf.kind == ET__BODY_NONE ? ET__RQ_DONE : ET__RQ_BODY;
    if (c->rq == ET__RQ_DONE)
        et__rec_req_end(c);
    /* A request with a body reaches the server only once its framing is checked to the end
     * (or ET__HOLD_MAX bytes of it), so a malformed one gets 400 with 0 bytes upstream however
     * its bytes are split. Expect: 100-continue waits for the server, so it is not held. */
    c->hold_req = c->rq == ET__RQ_BODY && !h->expect_continue;
    c->rs = ET__RS_HEAD;
    et__leg_in_consume(&c->cl, h->head_len);

    if (u == NULL) {
        et_free(c->target_host);
        c->target_host = host;
        c->target_port = port;
        host = NULL;
        /* Move the staged head into a fresh upstream leg once it exists. */
        struct et__chunk *sh = tmp.out_head, *st = tmp.out_tail;
        size_t sq = tmp.queued;
        if ((c->mode == ET__M_MITM || c->mode == ET__M_REVERSE) && c->resolved && c->naddr > 0) {
            et__up_start(c);
        } else {
            c->resolved = 0;
            et__resolve_target(c);
        }
        if (c->up != NULL) {
            c->up->out_head = sh;
            c->up->out_tail = st;
            c->up->queued += sq;
            if (c->up_ready)
                et__leg_flush(c->up);
        } else {
            /* Resolving: keep it on a placeholder leg, adopted by et__up_start(). */
            struct et__leg *ph = et_calloc(1, sizeof(*ph));
            if (ph == NULL) {
                et__chunk_list_put(p, sh);
                et__conn_fail(c, ET_ENOMEM, ET_STAGE_REQUEST, 502, "out of memory");
                return;
            }
            ph->p = p;
            ph->conn = c;
            ph->is_up = 1;
            ph->out_head = sh;
            ph->out_tail = st;
            ph->queued = sq;
            c->up = ph;
        }
    }
    et_free(host);
}

/* "HTTP/1.1 NNN reason\r\n" (the reason may be long: written as it is, never truncated). */
static void write_status_line(struct et__leg *l, const struct et__head *h)
{
    et__leg_printf(l, "HTTP/1.1 %03d ", h->status);
    et__leg_write(l, h->reason, h->reason_len);
    et__leg_write(l, "\r\n", 2);
}

/* The response head from upstream is in up->in. */
void et__handle_response(struct et__conn *c, const struct et__head *h)
{
    struct et__leg *u = c->up;
    struct et_exchange *x = c->x;
    if (h->status >= 100 && h->status < 200) {
        if (h->status == 101) {
            et__conn_fail(c, ET_EUNSUPPORTED, ET_STAGE_RESPONSE, 502, "protocol upgrade (101)");
            return;
        }
        /* Interim response (100 Continue): relay it, wait for the final one. */
        write_status_line(&c->cl, h);
        et__leg_write(&c->cl, "\r\n", 2);
        et__leg_in_consume(u, h->head_len);
        return;
    }
    et__rec_response(c, h);
    memset(&c->respf, 0, sizeof(c->respf));
    if (c->req_is_head || h->status == 204 || h->status == 304) {
        c->respf.kind = ET__BODY_NONE;
    } else if (h->chunked) {
        c->respf.kind = ET__BODY_CHUNKED;
        et__chunked_init(&c->respf.ck);
    } else if (h->content_length >= 0) {
        c->respf.kind = h->content_length > 0 ? ET__BODY_LENGTH : ET__BODY_NONE;
        c->respf.remaining = (uint64_t)h->content_length;
    } else {
        c->respf.kind = ET__BODY_EOF;
    }
    c->respf.out_kind = c->respf.kind;
    if (c->respf.kind == ET__BODY_EOF) {
        if (x != NULL && x->req.http_minor >= 1)
            c->respf.out_kind = ET__BODY_CHUNKED;
        else
            c->client_close = 1;
    }
    if (h->conn_close || (h->minor == 0 && !h->conn_keep_alive) || c->respf.kind == ET__BODY_EOF)
        u->close_after_flush = 1; /* not reused */
    if (c->rq != ET__RQ_DONE)
        c->client_close = 1; /* early answer: the rest of the request cannot be trusted */

    struct et__leg *cl = &c->cl;
    write_status_line(cl, h);
    write_fields(cl, h, 0);
    if (c->respf.out_kind == ET__BODY_CHUNKED && !c->req_is_head && h->status != 204 &&
        h->status != 304)
        et__leg_write(cl, "Transfer-Encoding: chunked\r\n", 28);
    if (c->client_close)
        et__leg_write(cl, "Connection: close\r\n", 19);
    et__leg_write(cl, "\r\n", 2);
    c->resp_started = 1;
    et__cap_init(c, &c->respbody, h->content_length);
    et__leg_in_consume(u, h->head_len);
    c->rs = c->respf.kind == ET__BODY_NONE ? ET__RS_DONE : ET__RS_BODY;
}

/* ---------------------------------------------------------------- bodies */

/*
 * Moves body bytes from src->in to dst (re-framed), recording them. Returns 1 when the body
 * is complete, 0 when more is needed, negative on a framing error (e set).
 */
int et__pump_body(struct et__conn *c, struct et__leg *src, struct et__leg *dst,
                  struct et__bodyframe *f, struct et__capbuf *cap, struct et_error *e)
{
    while (src->in != NULL && src->in->len > 0) {
        if (dst != NULL && dst->queued > ET__HIGH_WATER)
            return 0;
        const uint8_t *d = src->in->data + src->in->off;
        size_t n = src->in->len;
        if (f->kind == ET__BODY_LENGTH) {
            size_t k = n < f->remaining ? n : (size_t)f->remaining;
            et__cap_add(c, cap, d, k);
            if (dst != NULL)
                et__leg_write(dst, d, k);
            f->remaining -= k;
            et__leg_in_consume(src, k);
            if (f->remaining == 0)
                return 1;
        } else if (f->kind == ET__BODY_CHUNKED) {
            const uint8_t *data = NULL;
            size_t dlen = 0, used = 0;
            int r = et__chunked_feed(&f->ck, d, n, &used, &data, &dlen, e);
            if (r < 0 && r != ET_EAGAIN)
                return r;
            if (r == 1 && dlen > 0) {
                et__cap_add(c, cap, data, dlen);
                if (dst != NULL) {
                    et__leg_printf(dst, "%zx\r\n", dlen);
                    et__leg_write(dst, data, dlen);
                    et__leg_write(dst, "\r\n", 2);
                }
            }
            et__leg_in_consume(src, used);
            if (r == 0) {
                if (dst != NULL)
                    et__leg_write(dst, "0\r\n\r\n", 5);
                return 1;
            }
        } else if (f->kind == ET__BODY_EOF) {
            et__cap_add(c, cap, d, n);
            if (dst != NULL) {
                if (f->out_kind == ET__BODY_CHUNKED) {
                    et__leg_printf(dst, "%zx\r\n", n);
                    et__leg_write(dst, d, n);
                    et__leg_write(dst, "\r\n", 2);
                } else {
                    et__leg_write(dst, d, n);
                }
            }
            et__leg_in_consume(src, n);
        } else {
            return 1;
        }
    }
    return f->kind == ET__BODY_NONE ? 1 : 0;
}
