/*
 * The connection state machine. A client connection (struct et__conn) has a mode (its state
 * diagram is above enum et__mode in proxy_int.h; et__conn_set_mode() below is the only code
 * that changes it) and, in the two HTTP modes, a request and a response direction state.
 * Every libuv callback only records what happened (bytes arrived, a write finished, a
 * connect or lookup completed, the timer fired) and calls et__conn_advance(), which runs the
 * TLS layers, the HTTP machine or the tunnel, flushes both legs, then decides what to read
 * next and which deadline applies.
 */
#include "proxy_int.h"

#include "eastrace/certs.h"

#include <assert.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- modes */

/* 1 when from -> to is an arrow of the diagram above enum et__mode: the forward proxy's, or
 * (reverse) the reverse proxy's; neither enters the other's modes. */
static int mode_change_allowed(int reverse, enum et__mode from, enum et__mode to)
{
    if (to == ET__M_CLOSING)
        return 1;
    if (reverse) {
        switch (from) {
        case ET__M_HTTP: /* accept */
            return to == ET__M_PROXYHDR || to == ET__M_REV_TLS || to == ET__M_REVERSE;
        case ET__M_PROXYHDR: return to == ET__M_REV_TLS || to == ET__M_REVERSE;
        case ET__M_REV_TLS: return to == ET__M_REVERSE;
        default: return 0;
        }
    }
    switch (from) {
    case ET__M_HTTP: return to == ET__M_RESOLVING;
    case ET__M_RESOLVING: return to == ET__M_TLS_HS || to == ET__M_TUNNEL_WAIT;
    case ET__M_TLS_HS: return to == ET__M_MITM;
    case ET__M_TUNNEL_WAIT: return to == ET__M_TUNNEL;
    default: return 0;
    }
}

void et__conn_set_mode(struct et__conn *c, enum et__mode to)
{
    int allowed = mode_change_allowed(c->p->o.reverse_host != NULL, c->mode, to);
    assert(allowed);
    (void)allowed;
    c->mode = to;
    switch (to) {
    case ET__M_TLS_HS:
    case ET__M_REV_TLS:
        c->tkind_set = 0; /* the handshake gets a fresh HEADER deadline */
        c->quiet = 1;     /* until the ClientHello arrives (cleared below when it did) */
        break;
    case ET__M_PROXYHDR:
        break; /* the header deadline of the new connection goes on */
    case ET__M_REVERSE:
        /* After a PROXY header or a handshake the first request gets a fresh deadline (the
         * spec's "at least 3 seconds" is inside --header-timeout's 10 s). */
        c->rq = ET__RQ_HEAD;
        c->rs = ET__RS_NONE;
        c->tkind_set = 0;
        c->quiet = c->cl.in == NULL && c->cl.cin == NULL;
        break;
    case ET__M_MITM:
        /* The first request inside the tunnel; a fresh deadline. */
        c->rq = ET__RQ_HEAD;
        c->rs = ET__RS_NONE;
        c->tkind_set = 0;
        c->quiet = c->cl.in == NULL;
        break;
    case ET__M_CLOSING:
        c->cl.close_after_flush = 1;
        break;
    case ET__M_HTTP:
    case ET__M_RESOLVING:
    case ET__M_TUNNEL_WAIT:
    case ET__M_TUNNEL:
        break;
    }
}

/* ---------------------------------------------------------------- time */

static uint64_t timeout_ms(struct et_proxy *p, enum et_proxy_timer which)
{
    uint64_t ms = 0;
    switch (which) {
    case ET_PROXY_T_IDLE: ms = p->o.idle_timeout_ms; break;
    case ET_PROXY_T_HEADER: ms = p->o.header_timeout_ms; break;
    case ET_PROXY_T_CONNECT: ms = p->o.connect_timeout_ms; break;
    case ET_PROXY_T_LONGPOLL: ms = p->o.longpoll_timeout_ms; break;
    case ET_PROXY_T_PIN: ms = p->o.pin_ms; break;
    }
    if (p->o.timeout_hook != NULL)
        ms = p->o.timeout_hook(which, ms, p->o.timeout_ud);
    return ms ? ms : 1;
}

static void on_timer(uv_timer_t *t);

/* Sets the connection's deadline; HEADER and CONNECT deadlines are not extended by
 * progress, IDLE and LONGPOLL are (called on every advance). */
void et__conn_deadline(struct et__conn *c, enum et_proxy_timer kind)
{
    uint64_t now = uv_now(&c->p->loop);
    int fixed = (kind == ET_PROXY_T_HEADER || kind == ET_PROXY_T_CONNECT);
    if (!c->tkind_set || c->tkind != kind || !fixed)
        c->deadline = now + timeout_ms(c->p, kind);
    c->tkind = kind;
    c->tkind_set = 1;
    if (!uv_is_active((uv_handle_t *)&c->timer) || c->timer_due > c->deadline) {
        uint64_t in = c->deadline > now ? c->deadline - now : 0;
        uv_timer_start(&c->timer, on_timer, in, 0);
        c->timer_due = now + in;
    }
}

/* ---------------------------------------------------------------- failing and closing */

/* Records a failure on the current exchange (making one when needed), answers the client
 * with status when it can still be answered (0: no answer), finishes the exchange and
 * closes the connection once the answer is flushed. */
void et__conn_fail(struct et__conn *c, int code, enum et_stage stage, int status,
                   const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    et__rec_fail(c, code, stage, msg);
    if (status != 0 && !c->resp_started && c->cl.handle_open && !c->cl.eof &&
        (et__mode_http(c->mode) || c->mode == ET__M_RESOLVING ||
         c->mode == ET__M_TUNNEL_WAIT)) {
        char body[600];
        int n = snprintf(body, sizeof(body), "eastrace proxy: %s\n", msg);
        et__send_simple(c, status, "text/plain", body, n > 0 ? (size_t)n : 0, 1);
    }
    et__rec_finish(c);
    et__up_close(c);
    /* A pending lookup must not start anything for a failed connection. */
    et__resolve_cancel(c);
    et__conn_set_mode(c, ET__M_CLOSING);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct et__conn *c = h->data;
    if (--c->handles > 0)
        return;
    struct et_proxy *p = c->p;
    et__leg_free_bufs(p, &c->cl);
    et__rec_free(c);
    et_free(c->connect_host);
    et_free(c->sni);
    et_free(c->target_host);
    et_free(c);
}

void et__conn_close(struct et__conn *c)
{
    if (c->cl.closing)
        return;
    struct et_proxy *p = c->p;
    if (c->flush_pending) {
        /* What was staged leaves now (as an answer before a close always did), and the
         * connection leaves the flush list: it is freed before the next check phase. */
        for (struct et__conn **pp = &p->flush_head; *pp != NULL; pp = &(*pp)->flush_next)
            if (*pp == c) {
                *pp = c->flush_next;
                break;
            }
        c->flush_pending = 0;
        if (c->up != NULL && c->up->handle_open)
            et__leg_flush(c->up);
        et__leg_flush(&c->cl);
    }
    et__rec_close(c);
    et__resolve_cancel(c);
    et__up_close(c);
    c->cl.closing = 1;
    et__conn_set_mode(c, ET__M_CLOSING);

    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    p->st.active--;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->cl.tcp, on_conn_handle_closed);
}

/* ---------------------------------------------------------------- target and upstream */

void et__conn_on_target(struct et__conn *c)
{
    if (c->mode != ET__M_RESOLVING) {
        et__up_start(c); /* a request inside the tunnel, or a plain one */
        return;
    }
    if (!c->intercept) {
        et__conn_set_mode(c, ET__M_TUNNEL_WAIT);
        et__up_start(c);
        return;
    }
    /* Intercept: answer 200 now, handshake with the client, connect later. The SSL (tens of
     * KiB in OpenSSL 3) is made when the ClientHello arrives (client_tls_start), so a
     * CONNECT followed by silence costs little until the header deadline closes it. */
    et__leg_write(&c->cl, "HTTP/1.1 200 Connection established\r\n\r\n", 39);
    et__leg_flush(&c->cl);
    c->cl.tls = 1; /* reads go to cin from now on */
    /* Bytes already read after the CONNECT head are the ClientHello. */
    if (c->cl.in != NULL) {
        c->cl.cin = c->cl.in;
        c->cl.in = NULL;
    }
    et__conn_set_mode(c, ET__M_TLS_HS);
    c->quiet = c->cl.cin == NULL;
    /* The CONNECT itself is not recorded when intercepted: the requests inside are. */
    et__rec_discard(c);
}

void et__conn_up_ready(struct et__conn *c)
{
    struct et__leg *u = c->up;
    c->up_ready = 1;
    if (c->mode == ET__M_TUNNEL_WAIT) {
        et__conn_set_mode(c, ET__M_TUNNEL);
        c->tunnel = 1;
        c->tun_begin = et_now_us();
        c->p->st.tunnels++;
        et__leg_write(&c->cl, "HTTP/1.1 200 Connection established\r\n\r\n", 39);
        c->resp_started = 1;
        /* Bytes already read after the CONNECT head go upstream as they are. */
        if (c->cl.in != NULL && c->cl.in->len > 0) {
            c->tun_up += c->cl.in->len;
            et__leg_write(u, c->cl.in->data + c->cl.in->off, c->cl.in->len);
            et__leg_in_consume(&c->cl, c->cl.in->len);
        }
    }
    c->tkind_set = 0;
    et__leg_flush(u);
}

/* ---------------------------------------------------------------- client TLS */

/* The first ClientHello bytes are in cin: the server-side SSL is made now. 0 or ET_ETLS. */
static int client_tls_start(struct et__conn *c)
{
    if (et__leg_tls_new(&c->cl, c->mode == ET__M_REV_TLS ? c->p->rsctx : c->p->sctx) != 0)
        return ET_ETLS;
    SSL_set_app_data(c->cl.ssl, c);
    /* One TLS 1.3 ticket (not two): phones still resume, handshakes cost less. */
    SSL_set_num_tickets(c->cl.ssl, 1);
    SSL_set_accept_state(c->cl.ssl);
    return 0;
}

static void client_tls_failed(struct et__conn *c, unsigned long err)
{
    char reason[256] = "connection closed during the handshake";
    int alert = 0;
    if (err != (unsigned long)-1 && err != 0) {
        ERR_error_string_n(err, reason, sizeof(reason));
        /* Reasons at or above SSL_AD_REASON_OFFSET are alerts the peer sent. */
        alert = ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) >= SSL_AD_REASON_OFFSET;
    }
    if (c->mode == ET__M_REV_TLS && c->quiet) {
        et__conn_close(c); /* connected and closed, said nothing: a scan, not recorded */
        return;
    }
    if (c->mode == ET__M_REV_TLS) {
        /* The certificate is the operator's own: no pin, no CONNECT to record. */
        et__conn_fail(c, ET_ETLS, ET_STAGE_CLIENT_TLS, 0,
                      "client TLS handshake failed: %s (a client that refuses the certificate: "
                      "check that --cert holds the whole chain)", reason);
        c->cl.close_after_flush = 1;
        return;
    }
    const char *host = c->sni ? c->sni : c->connect_host;
    char pin[240] = "", pt[32];
    if (alert && host != NULL) {
        et__policy_pin(c->p, c, c->connect_host);
        if (c->sni)
            et__policy_pin(c->p, c, c->sni);
        et__pin_time_text(c->p, pt, sizeof(pt));
        snprintf(pin, sizeof(pin),
                 " (the client rejected our certificate: CA not installed, or the app pins its "
                 "server; %s is tunnelled for this client for %s, or until it fetches "
                 "http://%s/)", host, pt, ET_CERTS_INSTALL_HOST);
    }
    et__rec_connect_attempt(c);
    et__conn_fail(c, ET_ETLS, ET_STAGE_CLIENT_TLS, 0, "client TLS handshake for %s failed: %s%s",
                  host ? host : "?", reason, pin);
    c->cl.close_after_flush = 1;
}

/* ---------------------------------------------------------------- the state machine */

static void advance_http(struct et__conn *c)
{
    struct et_proxy *p = c->p;
    struct et_error e;
    for (int rounds = 0; rounds < 64; rounds++) {
        int progress = 0;
        et_error_clear(&e);
        /* Client side. */
        if (c->rq == ET__RQ_HEAD && c->rs == ET__RS_NONE && c->cl.in != NULL && c->cl.in->len > 0) {
            if (c->t_req_begin == 0)
                c->t_req_begin = et_now_us();
            int r = et__head_scan(c->cl.in->data + c->cl.in->off, c->cl.in->len, 1, &p->head,
                                  &e);
            if (r == ET_EAGAIN && c->cl.in->off + c->cl.in->len == c->cl.in->cap) {
                if (c->cl.in->off > 0) {
                    memmove(c->cl.in->data, c->cl.in->data + c->cl.in->off, c->cl.in->len);
                    c->cl.in->off = 0;
                } else if (et__leg_in_grow(&c->cl) != 0) {
                    r = ET_ETOOBIG;
                    et_error_set(&e, ET_ETOOBIG, "header section over %d bytes", ET__MAX_HEAD);
                }
            }
            if (r == 0) {
                et__handle_request(c, &p->head);
                progress = 1;
                if (!et__mode_http(c->mode))
                    return;
            } else if (r != ET_EAGAIN) {
                et__conn_fail(c, r, ET_STAGE_REQUEST, 400, "malformed request: %s", e.msg);
                return;
            }
        }
        if (c->rq == ET__RQ_BODY) {
            struct et__leg *dst = (c->up && !c->up->eof) ? c->up : NULL;
            int r = et__pump_body(c, &c->cl, dst, &c->reqf, &c->reqbody, &e);
            if (r < 0) {
                et__conn_fail(c, r, ET_STAGE_REQUEST, 400, "malformed request body: %s", e.msg);
                return;
            }
            if (r == 1) {
                c->rq = ET__RQ_DONE;
                et__rec_req_end(c);
                progress = 1;
            }
            /* A held request goes once complete (or once ET__HOLD_MAX bytes are in). */
            if (c->hold_req && (c->rq == ET__RQ_DONE || c->reqbody.wire >= ET__HOLD_MAX)) {
                c->hold_req = 0;
                if (c->up != NULL && c->up_ready)
                    et__leg_flush(c->up);
            }
        }
        /* Upstream side. */
        struct et__leg *u = c->up;
        if (u != NULL && u->in != NULL && u->in->len > 0 && c->up_ready) {
            if (c->rs == ET__RS_HEAD) {
                int r = et__head_scan(u->in->data + u->in->off, u->in->len, 0, &p->head, &e);
                if (r == ET_EAGAIN && u->in->off + u->in->len == u->in->cap && u->in->off == 0 &&
                    et__leg_in_grow(u) != 0)
                    r = ET_ETOOBIG;
                if (r == 0) {
                    et__handle_response(c, &p->head);
                    progress = 1;
                } else if (r != ET_EAGAIN) {
                    et__conn_fail(c, r, ET_STAGE_RESPONSE, 502, "malformed response: %s",
                                  e.msg[0] ? e.msg : "header section too large");
                    return;
                }
            } else if (c->rs == ET__RS_BODY) {
                int r = et__pump_body(c, u, &c->cl, &c->respf, &c->respbody, &e);
                if (r < 0) {
                    c->client_close = 1;
                    et__conn_fail(c, r, ET_STAGE_RESPONSE, 502, "malformed response body: %s",
                                  e.msg);
                    return;
                }
                if (r == 1) {
                    c->rs = ET__RS_DONE;
                    progress = 1;
                }
            } else if (c->rs == ET__RS_NONE || c->rs == ET__RS_DONE) {
                /* Bytes nobody asked for: the server is out of step; drop the connection. */
                et__up_close(c);
                u = NULL;
            }
        }
        /* Upstream end of stream. */
        if (u != NULL && u->eof && (u->in == NULL || u->in->len == 0)) {
            if (c->rs == ET__RS_BODY && c->respf.kind == ET__BODY_EOF) {
                if (c->respf.out_kind == ET__BODY_CHUNKED)
                    et__leg_write(&c->cl, "0\r\n\r\n", 5);
                c->rs = ET__RS_DONE;
                et__up_close(c);
                progress = 1;
            } else if (c->rs == ET__RS_HEAD && u->cert_asked && u->tls) {
                /* TLS 1.3: the server refuses our empty certificate after our Finished. */
                c->client_close = 1;
                et__up_wants_client_cert(c);
                return;
            } else if (c->rs == ET__RS_HEAD || c->rs == ET__RS_BODY) {
                int reset = u->failed || c->rs == ET__RS_BODY;
                c->client_close = 1;
                et__conn_fail(c, ET_ECONNRESET, ET_STAGE_RESPONSE, 502,
                              "the server closed the connection %s",
                              reset ? "in the middle of the response" : "before responding");
                return;
            } else {
                et__up_close(c);
            }
        }
        /* Exchange complete. */
        if (c->rq == ET__RQ_DONE && c->rs == ET__RS_DONE) {
            if (c->up && c->up->close_after_flush)
                et__up_close(c);
            et__rec_finish(c);
            c->rq = ET__RQ_HEAD;
            c->rs = ET__RS_NONE;
            if (c->client_close) {
                et__conn_set_mode(c, ET__M_CLOSING);
                return;
            }
            progress = 1;
        }
        if (!progress)
            break;
    }
}

static void advance_tunnel(struct et__conn *c)
{
    struct et__leg *u = c->up;
    if (u == NULL) {
        et__conn_close(c);
        return;
    }
    if (c->cl.in != NULL && c->cl.in->len > 0 && u->queued < ET__HIGH_WATER) {
        c->tun_up += c->cl.in->len;
        et__leg_write(u, c->cl.in->data + c->cl.in->off, c->cl.in->len);
        et__leg_in_consume(&c->cl, c->cl.in->len);
    }
    if (u->in != NULL && u->in->len > 0 && c->cl.queued < ET__HIGH_WATER) {
        c->tun_down += u->in->len;
        et__leg_write(&c->cl, u->in->data + u->in->off, u->in->len);
        et__leg_in_consume(u, u->in->len);
    }
    if ((c->cl.eof && c->cl.in == NULL) || (u->eof && u->in == NULL)) {
        et__conn_set_mode(c, ET__M_CLOSING);
        u->close_after_flush = 1;
        et__leg_flush(u);
        /* The tunnel exchange is recorded when the client side closes. */
    }
}

/* What the conn should read next, and its deadline. */
void et__conn_update_io(struct et__conn *c)
{
    struct et__leg *u = c->up;
    struct et__leg *cl = &c->cl;
    int read_cl = 1, read_up = 1;
    if (cl->in != NULL && cl->in->off + cl->in->len == cl->in->cap)
        read_cl = 0;
    if (cl->tls && cl->cin != NULL && cl->cin->off + cl->cin->len == cl->cin->cap)
        read_cl = 0;
    if (u != NULL && u->queued > ET__HIGH_WATER)
        read_cl = 0;
    if (c->mode == ET__M_RESOLVING || c->mode == ET__M_TUNNEL_WAIT || c->mode == ET__M_CLOSING)
        read_cl = c->mode != ET__M_CLOSING && cl->in == NULL;
    if (et__mode_http(c->mode) && c->rq == ET__RQ_DONE && cl->in != NULL)
        read_cl = 0; /* pipelined request waits for this response */
    if (et__mode_http(c->mode) && c->rq == ET__RQ_HEAD &&
        c->rs == ET__RS_NONE && c->p->worker.paused)
        read_cl = 0; /* the worker is behind: no new request until it catches up (worker.c) */
    if (cl->queued > ET__HIGH_WATER)
        read_up = 0;
    if (u != NULL) {
        if (u->in != NULL && u->in->off + u->in->len == u->in->cap)
            read_up = 0;
        if (u->tls && u->cin != NULL && u->cin->off + u->cin->len == u->cin->cap)
            read_up = 0;
        if (read_up)
            et__leg_read_start(u);
        else
            et__leg_read_stop(u);
    }
    if (read_cl)
        et__leg_read_start(cl);
    else
        et__leg_read_stop(cl);

    switch (c->mode) {
    case ET__M_TLS_HS:
    case ET__M_REV_TLS:
    case ET__M_PROXYHDR:
        et__conn_deadline(c, ET_PROXY_T_HEADER);
        break;
    case ET__M_RESOLVING:
    case ET__M_TUNNEL_WAIT:
        et__conn_deadline(c, ET_PROXY_T_CONNECT);
        break;
    case ET__M_TUNNEL:
        et__conn_deadline(c, ET_PROXY_T_LONGPOLL);
        break;
    case ET__M_HTTP:
    case ET__M_MITM:
    case ET__M_REVERSE:
        /* Before its first request a connection has the header deadline too: a silent
         * one is not held for the idle limit. */
        if (c->rq == ET__RQ_HEAD && c->rs == ET__RS_NONE)
            et__conn_deadline(c, cl->in != NULL || c->nreq == 0 ? ET_PROXY_T_HEADER
                                                                 : ET_PROXY_T_IDLE);
        else if (c->up != NULL && !c->up_ready)
            et__conn_deadline(c, ET_PROXY_T_CONNECT);
        else if (c->rq == ET__RQ_BODY && (u == NULL || u->queued <= ET__HIGH_WATER))
            et__conn_deadline(c, ET_PROXY_T_IDLE); /* the client owes body bytes */
        else
            et__conn_deadline(c, ET_PROXY_T_LONGPOLL);
        break;
    case ET__M_CLOSING:
        et__conn_deadline(c, ET_PROXY_T_HEADER);
        break;
    }
}

void et__conn_advance(struct et__conn *c)
{
    if (c->cl.closing)
        return;
    /* Decrypted records can outlast one pass when `in` was full: go round again while a
     * TLS leg still holds input and has room for it, or the mode just changed. */
    for (int iter = 0; iter < 16; iter++) {
        unsigned long sslerr = 0;
        enum et__mode m0 = c->mode;

        /* Upstream TLS handshake and decryption. */
        et__up_pump(c);
        /* Client TLS. */
        int hs = c->mode == ET__M_TLS_HS || c->mode == ET__M_REV_TLS;
        if (hs && c->cl.ssl == NULL && c->cl.cin != NULL &&
            c->cl.cin->len > 0 && client_tls_start(c) != 0) {
            et__conn_fail(c, ET_ETLS, ET_STAGE_CLIENT_TLS, 0, "SSL_new failed");
            return;
        }
        if (c->cl.ssl != NULL && c->mode != ET__M_CLOSING) {
            int r = et__leg_tls_pump(&c->cl, &sslerr);
            if (r < 0) {
                client_tls_failed(c, sslerr);
            } else if (r == 1) {
                et__conn_set_mode(c, c->mode == ET__M_REV_TLS ? ET__M_REVERSE : ET__M_MITM);
            } else if (hs && c->cl.eof) {
                client_tls_failed(c, (unsigned long)-1);
            }
        }

        switch (c->mode) {
        case ET__M_HTTP:
        case ET__M_MITM:
        case ET__M_REVERSE:
            advance_http(c);
            break;
        case ET__M_PROXYHDR:
            et__rev_on_header(c);
            break;
        case ET__M_TUNNEL:
            advance_tunnel(c);
            break;
        default:
            break;
        }
        if (c->cl.closing)
            return;
        if (c->mode == m0 && !et__leg_tls_has_more(&c->cl) && !et__leg_tls_has_more(c->up))
            break;
    }
    if (c->cl.closing)
        return;

    /* Client end of stream. */
    if (c->cl.eof && (c->cl.in == NULL || c->mode == ET__M_CLOSING || c->cl.failed)) {
        if (c->mode != ET__M_CLOSING) {
            et__rec_client_eof(c);
            if (c->mode == ET__M_TUNNEL) {
                if (c->up)
                    et__leg_flush(c->up);
                if (c->up)
                    c->up->close_after_flush = 1;
            }
            et__conn_close(c);
            return;
        }
    }

    /* The writes wait for the end of this loop phase (et__conn_flush_all): a 100 KB
     * response read in seven 16 KiB reads then leaves in one writev, not seven writes. */
    et__conn_want_flush(c, 0);
    if (c->cl.close_after_flush && c->cl.queued == 0) {
        if (c->cl.failed || c->mode == ET__M_CLOSING || c->mode == ET__M_TUNNEL) {
            et__conn_close(c);
            return;
        }
    }
    if (c->cl.failed && c->cl.queued == 0) {
        et__conn_close(c);
        return;
    }
    et__conn_update_io(c);
}

void et__conn_want_flush(struct et__conn *c, int advance)
{
    if (c->cl.closing)
        return;
    if (advance)
        c->advance_pending = 1;
    if (!c->flush_pending) {
        c->flush_pending = 1;
        c->flush_next = c->p->flush_head;
        c->p->flush_head = c;
    }
}

void et__conn_flush_all(struct et_proxy *p)
{
    struct et__conn *c = p->flush_head;
    p->flush_head = NULL;
    while (c != NULL) {
        struct et__conn *next = c->flush_next;
        c->flush_pending = 0;
        c->flush_next = NULL;
        /* A connection closed meanwhile is freed only in the closing phase, after this. */
        if (!c->cl.closing && c->advance_pending) {
            /* Writes that finished at once (no on_write): react as on_write would. */
            c->advance_pending = 0;
            et__conn_advance(c);
        }
        if (!c->cl.closing) {
            if (c->up != NULL && c->up->handle_open)
                et__leg_flush(c->up);
            et__leg_flush(&c->cl);
            /* A write that failed at once is handled now, not at the next deadline. */
            if (c->cl.failed || (c->up != NULL && c->up->failed))
                et__conn_advance(c);
        }
        c = next;
    }
}

void et__conn_on_read(struct et__leg *l, ssize_t nread)
{
    struct et__conn *c = l->conn;
    if (nread > 0 && !l->is_up)
        c->quiet = 0;
    if (nread > 0 && l->is_up && c->x == NULL && c->mode != ET__M_TUNNEL &&
        c->rs == ET__RS_NONE && !l->ssl) {
        /* Unsolicited bytes on an idle upstream: drop that connection. */
        et__up_close(c);
        return;
    }
    et__conn_advance(c);
}

static void on_timer(uv_timer_t *t)
{
    struct et__conn *c = et__container_of(t, struct et__conn, timer);
    uint64_t now = uv_now(&c->p->loop);
    c->timer_due = 0;
    if (now < c->deadline) {
        uv_timer_start(&c->timer, on_timer, c->deadline - now, 0);
        c->timer_due = c->deadline;
        return;
    }
    switch (c->tkind) {
    case ET_PROXY_T_IDLE:
        if (et__mode_http(c->mode) && c->rq == ET__RQ_BODY) {
            /* A client that stopped in the middle of its request body is not held. */
            et__conn_fail(c, ET_ETIMEDOUT, ET_STAGE_REQUEST, 408,
                          "the request body stalled (nothing for the idle limit)");
            break;
        }
        et__conn_close(c);
        return;
    case ET_PROXY_T_HEADER:
        if (c->quiet && c->x == NULL &&
            (et__mode_http(c->mode) || c->mode == ET__M_TLS_HS || c->mode == ET__M_REV_TLS ||
             c->mode == ET__M_PROXYHDR)) {
            /* Sent nothing: a scan or a dead phone. Counted, not recorded one by one. */
            c->p->st.timed_out++;
            et__conn_close(c);
            return;
        }
        if (c->mode == ET__M_TLS_HS || c->mode == ET__M_REV_TLS) {
            client_tls_failed(c, (unsigned long)-1);
            et__conn_close(c);
            return;
        }
        if (c->mode == ET__M_PROXYHDR) {
            char a[64];
            c->p->st.proxy_header_errors++;
            et_sockaddr_format((const struct sockaddr *)&c->peer, a, sizeof(a));
            et__plog(c->p, "closed the connection from %s: no complete PROXY header within the "
                     "header deadline", a);
            et__conn_close(c);
            return;
        }
        if (c->mode == ET__M_CLOSING) {
            et__conn_close(c);
            return;
        }
        et__conn_fail(c, ET_ETIMEDOUT, ET_STAGE_REQUEST, 408,
                      "the request header section did not arrive in time");
        break;
    case ET_PROXY_T_CONNECT:
        et__conn_fail(c, ET_ETIMEDOUT, ET_STAGE_UPSTREAM_CONNECT, 504,
                      "connecting to %s:%d timed out", c->target_host ? c->target_host : "?",
                      c->target_port);
        break;
    case ET_PROXY_T_LONGPOLL:
        if (c->mode == ET__M_TUNNEL) {
            et__conn_close(c);
            return;
        }
        et__conn_fail(c, ET_ETIMEDOUT, ET_STAGE_RESPONSE, 504,
                      "no progress for the long-poll ceiling");
        break;
    case ET_PROXY_T_PIN:
        break; /* not a connection deadline */
    }
    et__conn_advance(c);
}
