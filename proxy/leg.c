/*
 * Buffers and TLS legs. A leg is one socket of a connection (the client's, or the upstream
 * one) with its chunks and, when it speaks TLS, an SSL over a custom BIO: reads land in the
 * free tail of `cin` (TLS) or `in` (plain), the TLS pump decrypts `cin` into `in`, writes are
 * staged in `out`, encrypted into `w` by one SSL_write per chunk, and `w` goes to uv_write
 * without a copy. The layout and the rules are in docs/proxy.md ("Buffers and ownership").
 *
 *   read_cb -> cin -(SSL_read)-> in -> et__conn_advance() -> out -(SSL_write)-> w -> uv_write
 */
#include "proxy_int.h"

#include "eastrace/certs.h"

#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MAX_FREE_CHUNKS 64 /* 1 MiB of recycled buffers at most */

/* ---------------------------------------------------------------- chunks */

struct et__chunk *et__chunk_get(struct et_proxy *p)
{
    struct et__chunk *c = p->free_chunks;
    if (c != NULL) {
        p->free_chunks = c->next;
        p->n_free--;
    } else {
        c = et_malloc(sizeof(*c) + ET__CHUNK_DATA);
        if (c == NULL)
            return NULL;
        c->cap = ET__CHUNK_DATA;
    }
    c->next = NULL;
    c->off = c->len = 0;
    return c;
}

void et__chunk_put(struct et_proxy *p, struct et__chunk *c)
{
    if (c == NULL)
        return;
    if (c->cap == ET__CHUNK_DATA && p->n_free < MAX_FREE_CHUNKS) {
        c->next = p->free_chunks;
        p->free_chunks = c;
        p->n_free++;
    } else {
        et_free(c);
    }
}

void et__chunk_list_put(struct et_proxy *p, struct et__chunk *c)
{
    while (c != NULL) {
        struct et__chunk *n = c->next;
        et__chunk_put(p, c);
        c = n;
    }
}

/* Appends bytes to a chunk list, filling the tail first, each chunk up to fill bytes. */
static int list_append(struct et_proxy *p, struct et__chunk **head, struct et__chunk **tail,
                       const void *data, size_t n, size_t fill)
{
    const uint8_t *s = data;
    while (n > 0) {
        struct et__chunk *t = *tail;
        if (t == NULL || t->off + t->len >= ET_MIN((size_t)t->cap, fill)) {
            struct et__chunk *nc = et__chunk_get(p);
            if (nc == NULL)
                return ET_ENOMEM;
            if (t == NULL)
                *head = nc;
            else
                t->next = nc;
            *tail = t = nc;
        }
        size_t room = ET_MIN((size_t)t->cap, fill) - t->off - t->len;
        size_t k = n < room ? n : room;
        memcpy(t->data + t->off + t->len, s, k);
        t->len += (uint32_t)k;
        s += k;
        n -= k;
    }
    return 0;
}

/* ---------------------------------------------------------------- custom BIO */

static int bio_write(BIO *b, const char *data, int len)
{
    struct et__leg *l = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (list_append(l->p, &l->w_head, &l->w_tail, data, (size_t)len, ET__CHUNK_DATA) != 0)
        return -1;
    l->queued += (size_t)len;
    return len;
}

static int bio_read(BIO *b, char *out, int len)
{
    struct et__leg *l = BIO_get_data(b);
    struct et__chunk *c = l->cin;
    BIO_clear_retry_flags(b);
    if (c == NULL || c->len == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t k = (size_t)len < c->len ? (size_t)len : c->len;
    memcpy(out, c->data + c->off, k);
    c->off += (uint32_t)k;
    c->len -= (uint32_t)k;
    if (c->len == 0) {
        et__chunk_put(l->p, c);
        l->cin = NULL;
    }
    return (int)k;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

int et__leg_tls_new(struct et__leg *l, SSL_CTX *ctx)
{
    l->ssl = SSL_new(ctx);
    if (l->ssl == NULL)
        return ET_ETLS;
    BIO *b = BIO_new(l->p->biometh);
    if (b == NULL) {
        SSL_free(l->ssl);
        l->ssl = NULL;
        return ET_ETLS;
    }
    BIO_set_data(b, l);
    SSL_set_bio(l->ssl, b, b);
    SSL_set_mode(l->ssl, SSL_MODE_RELEASE_BUFFERS);
    l->tls = 1;
    return 0;
}

/* ---------------------------------------------------------------- legs */

void et__leg_free_bufs(struct et_proxy *p, struct et__leg *l)
{
    et__chunk_put(p, l->cin);
    et__chunk_put(p, l->in);
    et__chunk_list_put(p, l->out_head);
    et__chunk_list_put(p, l->w_head);
    l->cin = l->in = l->out_head = l->out_tail = l->w_head = l->w_tail = NULL;
    if (l->ssl != NULL)
        SSL_free(l->ssl);
    l->ssl = NULL;
    if (l->info != NULL) {
        struct et__upinfo *i = l->info;
        et_free(i->version);
        et_free(i->cipher);
        et_free(i->alpn);
        et_free(i->subject);
        et_free(i->issuer);
        et_free(i->not_before);
        et_free(i->not_after);
        et_free(i->sha256);
        et_free(i->verify);
        et_free(i);
        l->info = NULL;
    }
    et_free(l->host);
    et_free(l->sni);
    l->host = l->sni = NULL;
}

void et__leg_on_closed(uv_handle_t *h)
{
    struct et__leg *l = h->data;
    et__leg_free_bufs(l->p, l);
    et_free(l);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct et__leg *l = h->data;
    struct et__chunk **slot = l->tls ? &l->cin : &l->in;
    struct et__chunk *c = *slot;
    (void)hint;
    if (c == NULL) {
        c = *slot = et__chunk_get(l->p);
        if (c == NULL) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
    }
    if (c->off > 0 && c->off + c->len == c->cap) {
        memmove(c->data, c->data + c->off, c->len);
        c->off = 0;
    }
    *buf = uv_buf_init((char *)c->data + c->off + c->len, c->cap - c->off - c->len);
}

void et__leg_read_stop(struct et__leg *l)
{
    if (l->reading) {
        uv_read_stop((uv_stream_t *)&l->tcp);
        l->reading = 0;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

void et__leg_read_start(struct et__leg *l)
{
    if (!l->reading && l->handle_open && !l->eof && !l->closing && l->connected) {
        if (uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read) == 0)
            l->reading = 1;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct et__leg *l = s->data;
    (void)buf;
    if (nread > 0) {
        struct et__chunk *c = l->tls ? l->cin : l->in;
        c->len += (uint32_t)nread;
    } else if (nread < 0) {
        if (nread == UV_ENOBUFS) {
            et__leg_read_stop(l);
        } else {
            l->eof = 1;
            if (nread != UV_EOF)
                l->failed = 1;
            et__leg_read_stop(l);
        }
    }
    /* Empty chunks go back to the pool: idle connections hold no buffer. */
    if (l->cin != NULL && l->cin->len == 0) {
        et__chunk_put(l->p, l->cin);
        l->cin = NULL;
    }
    if (l->in != NULL && l->in->len == 0) {
        et__chunk_put(l->p, l->in);
        l->in = NULL;
    }
    if (l->conn != NULL)
        et__conn_on_read(l, nread);
}

static void on_write(uv_write_t *req, int status)
{
    struct et__wreq *w = et__container_of(req, struct et__wreq, req);
    struct et__leg *l = w->leg;
    struct et_proxy *p = l->p;
    for (unsigned i = 0; i < w->n; i++)
        et__chunk_put(p, w->c[i]);
    l->queued -= w->bytes;
    w->next_free = p->free_wreqs;
    p->free_wreqs = w;
    if (status < 0) {
        l->failed = 1;
        l->eof = 1;
    }
    if (l->conn == NULL) {
        /* A detached upstream leg: close once drained. */
        if (l->queued == 0 && !l->closing && l->handle_open) {
            l->closing = 1;
            uv_close((uv_handle_t *)&l->tcp, et__leg_on_closed);
        }
        return;
    }
    et__conn_advance(l->conn);
}

/* Encrypts staged plaintext (TLS legs) and starts writes. */
void et__leg_flush(struct et__leg *l)
{
    struct et_proxy *p = l->p;
    if (!l->connected || !l->handle_open || l->closing)
        return;
    /* A request held back until its framing is checked to the end stays staged. */
    int hold = l->is_up && l->conn != NULL && l->conn->hold_req;
    if (l->ssl != NULL) {
        if ((!l->hs_done || hold) && l->out_head != NULL)
            goto write; /* handshake bytes only */
        while (l->out_head != NULL) {
            struct et__chunk *c = l->out_head;
            if (c->len > 0) {
                int r = SSL_write(l->ssl, c->data + c->off, (int)c->len);
                if (r <= 0) {
                    l->failed = 1;
                    break;
                }
                l->queued -= c->len;
            }
            l->out_head = c->next;
            if (l->out_head == NULL)
                l->out_tail = NULL;
            et__chunk_put(p, c);
        }
    } else if (l->out_head != NULL && !hold) {
        /* Plaintext: staged chunks are the write chunks. */
        if (l->w_tail != NULL)
            l->w_tail->next = l->out_head;
        else
            l->w_head = l->out_head;
        l->w_tail = l->out_tail;
        l->out_head = l->out_tail = NULL;
    }
write:
    while (l->w_head != NULL) {
        struct et__wreq *w = p->free_wreqs;
        if (w != NULL)
            p->free_wreqs = w->next_free;
        else if ((w = et_malloc(sizeof(*w))) == NULL)
            return;
        w->leg = l;
        w->n = 0;
        w->bytes = 0;
        while (l->w_head != NULL && w->n < 8) {
            struct et__chunk *c = l->w_head;
            l->w_head = c->next;
            c->next = NULL;
            if (c->len == 0) {
                et__chunk_put(p, c);
                continue;
            }
            w->c[w->n] = c;
            w->b[w->n] = uv_buf_init((char *)c->data + c->off, c->len);
            w->bytes += c->len;
            w->n++;
        }
        if (l->w_head == NULL)
            l->w_tail = NULL;
        if (w->n == 0) {
            w->next_free = p->free_wreqs;
            p->free_wreqs = w;
            break;
        }
        /* Write at once what the socket takes (uv_try_write refuses while a uv_write is
         * pending, so the order holds): uv_write would make the same write, then queue a
         * callback and re-arm epoll (libuv 1.44: one epoll_ctl per write). Only the rest
         * goes through uv_write; the connection advances as on_write would have made it. */
        int tr = uv_try_write((uv_stream_t *)&l->tcp, w->b, w->n);
        size_t done = tr > 0 ? (size_t)tr : 0;
        unsigned k = 0;
        if (tr < 0 && tr != UV_EAGAIN && tr != UV_ENOSYS)
            goto failed;
        while (k < w->n && done >= w->b[k].len) {
            done -= w->b[k].len;
            l->queued -= w->b[k].len;
            w->bytes -= w->b[k].len;
            et__chunk_put(p, w->c[k]);
            k++;
        }
        if (k < w->n && done > 0) {
            w->b[k].base += done;
            w->b[k].len -= done;
            l->queued -= done;
            w->bytes -= done;
        }
        if (tr > 0 && l->conn != NULL)
            et__conn_want_flush(l->conn, 1);
        if (k == w->n) {
            w->next_free = p->free_wreqs;
            p->free_wreqs = w;
            continue;
        }
        if (k > 0) {
            memmove(w->c, w->c + k, (w->n - k) * sizeof(w->c[0]));
            memmove(w->b, w->b + k, (w->n - k) * sizeof(w->b[0]));
            w->n -= k;
        }
        if (uv_write(&w->req, (uv_stream_t *)&l->tcp, w->b, w->n, on_write) != 0)
            goto failed;
        continue;
    failed:
        for (unsigned i = k; i < w->n; i++)
            et__chunk_put(p, w->c[i]);
        l->queued -= w->bytes;
        w->next_free = p->free_wreqs;
        p->free_wreqs = w;
        l->failed = 1;
        l->eof = 1;
        if (l->conn != NULL)
            et__conn_want_flush(l->conn, 1);
        return;
    }
}

/* Queues plaintext bytes for a leg. On a TLS leg a staged chunk holds at most one record's
 * plaintext, so each SSL_write in et__leg_flush makes one full record, not a full one and a
 * 512-byte one. */
int et__leg_write(struct et__leg *l, const void *d, size_t n)
{
    if (n == 0)
        return 0;
    if (list_append(l->p, &l->out_head, &l->out_tail, d, n,
                    l->tls ? ET__TLS_PLAIN_MAX : ET__CHUNK_DATA) != 0)
        return ET_ENOMEM;
    l->queued += n;
    return 0;
}

int et__leg_printf(struct et__leg *l, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return ET_EINVAL;
    return et__leg_write(l, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* The plaintext input chunk with free space at its tail, compacting or allocating. */
static struct et__chunk *leg_in_space(struct et__leg *l)
{
    struct et__chunk *c = l->in;
    if (c == NULL) {
        c = l->in = et__chunk_get(l->p);
        return c;
    }
    if (c->len == 0)
        c->off = 0;
    if (c->off + c->len == c->cap && c->off > 0) {
        memmove(c->data, c->data + c->off, c->len);
        c->off = 0;
    }
    return c;
}

void et__leg_in_consume(struct et__leg *l, size_t n)
{
    struct et__chunk *c = l->in;
    c->off += (uint32_t)n;
    c->len -= (uint32_t)n;
    if (c->len == 0) {
        et__chunk_put(l->p, c);
        l->in = NULL;
    }
}

/* Grows the input chunk to hold a whole header section (rare: heads over 16 KiB). */
int et__leg_in_grow(struct et__leg *l)
{
    struct et__chunk *c = l->in;
    if (c == NULL || c->cap >= ET__MAX_HEAD + 1024)
        return ET_ETOOBIG;
    struct et__chunk *b = et_malloc(sizeof(*b) + ET__MAX_HEAD + 1024);
    if (b == NULL)
        return ET_ENOMEM;
    b->next = NULL;
    b->cap = ET__MAX_HEAD + 1024;
    b->off = 0;
    b->len = c->len;
    memcpy(b->data, c->data + c->off, c->len);
    et__chunk_put(l->p, c);
    l->in = b;
    return 0;
}

/*
 * TLS legs: runs the handshake and decrypts into `in` while there is room.
 * Returns 0, 1 when the handshake just completed, or a negative error (handshake failure
 * with the SSL error code in *sslerr).
 */
int et__leg_tls_pump(struct et__leg *l, unsigned long *sslerr)
{
    int rv = 0;
    *sslerr = 0;
    if (!l->hs_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(l->ssl);
        if (r == 1) {
            l->hs_done = 1;
            rv = 1;
        } else {
            int e = SSL_get_error(l->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            *sslerr = ERR_peek_last_error();
            if (*sslerr == 0)
                *sslerr = (unsigned long)-1;
            return ET_ETLS;
        }
    }
    for (;;) {
        /* Only read when OpenSSL has something to work on: an SSL_read that finds no input
         * allocates a 16 KiB record buffer and keeps it (RELEASE_BUFFERS frees it only after
         * a record is consumed), which would cost every idle connection 17 KiB per leg. */
        if ((l->cin == NULL || l->cin->len == 0) && !SSL_has_pending(l->ssl))
            break;
        struct et__chunk *c = leg_in_space(l);
        if (c == NULL)
            return ET_ENOMEM;
        size_t room = c->cap - c->off - c->len;
        if (room == 0)
            break;
        ERR_clear_error();
        int r = SSL_read(l->ssl, c->data + c->off + c->len, (int)(room > INT32_MAX ? INT32_MAX : room));
        if (r > 0) {
            c->len += (uint32_t)r;
            continue;
        }
        int e = SSL_get_error(l->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        /* close_notify or a fatal error: the stream ends here. */
        l->eof = 1;
        break;
    }
    if (l->in != NULL && l->in->len == 0) {
        et__chunk_put(l->p, l->in);
        l->in = NULL;
    }
    /* RELEASE_BUFFERS does not release the record buffer after post-handshake messages (the
     * server's TLS 1.3 session tickets), so a held upstream would keep 17 KiB: drop the
     * buffers explicitly once nothing is pending (SSL_free_buffers refuses otherwise). */
    if (l->hs_done && (l->cin == NULL || l->cin->len == 0) && !SSL_has_pending(l->ssl))
        SSL_free_buffers(l->ssl);
    return rv;
}

/* 1 when a TLS leg holds ciphertext or decrypted bytes that did not fit into `in`. */
int et__leg_tls_has_more(const struct et__leg *l)
{
    if (l == NULL || l->ssl == NULL || !l->hs_done || l->closing || !l->handle_open)
        return 0;
    if (l->in != NULL && l->in->len == l->in->cap)
        return 0;
    return (l->cin != NULL && l->cin->len > 0) || SSL_pending(l->ssl) > 0;
}

/* ---------------------------------------------------------------- TLS contexts */

static int on_client_sni(SSL *ssl, int *al, void *arg)
{
    struct et__conn *c = SSL_get_app_data(ssl);
    struct et_proxy *p = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    (void)al;
    if (c == NULL)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    if (name != NULL && et__host_valid(name)) {
        et_free(c->sni);
        c->sni = et_strdup(name);
    } else {
        name = c->connect_host;
    }
    SSL_CTX *leaf = NULL;
    struct et_error e;
    et_error_clear(&e);
    if (et_certs_leaf_ctx(p->o.certs, name, &leaf, &e) != 0)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    SSL_set_SSL_CTX(ssl, leaf);
    SSL_CTX_free(leaf); /* the SSL holds its own reference */
    return SSL_TLSEXT_ERR_OK;
}

static int on_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned i = 0; i < inlen;) {
        unsigned n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

int et__tls_setup(struct et_proxy *p, struct et_error *e)
{
    p->biometh = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "et_proxy_leg");
    if (p->biometh == NULL)
        goto fail;
    BIO_meth_set_write(p->biometh, bio_write);
    BIO_meth_set_read(p->biometh, bio_read);
    BIO_meth_set_ctrl(p->biometh, bio_ctrl);
    BIO_meth_set_create(p->biometh, bio_create);

    if (p->o.certs != NULL) {
        p->sctx = SSL_CTX_new(TLS_server_method());
        if (p->sctx == NULL)
            goto fail;
        SSL_CTX_set_min_proto_version(p->sctx, TLS1_2_VERSION);
        SSL_CTX_set_mode(p->sctx, SSL_MODE_RELEASE_BUFFERS);
        SSL_CTX_set_tlsext_servername_callback(p->sctx, on_client_sni);
        SSL_CTX_set_tlsext_servername_arg(p->sctx, p);
        SSL_CTX_set_alpn_select_cb(p->sctx, on_alpn_select, NULL);
    }
    for (int k = 0; k < 2; k++) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        if (ctx == NULL)
            goto fail;
        if (k == 0)
            p->cctx = ctx;
        else
            p->cctx_insecure = ctx;
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
        static const unsigned char alpn[] = "\x08http/1.1";
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
        SSL_CTX_set_client_cert_cb(ctx, et__on_client_cert_request);
        if (k == 0) {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
            if (p->o.upstream_ca_file != NULL) {
                if (SSL_CTX_load_verify_locations(ctx, p->o.upstream_ca_file, NULL) != 1) {
                    et_error_set(e, ET_EINVAL, "cannot load upstream CA file %s",
                                 p->o.upstream_ca_file);
                    return ET_EINVAL;
                }
            } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
                goto fail;
            }
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        }
    }
    return 0;
fail: {
    char buf[200];
    ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
    et_error_set(e, ET_ETLS, "OpenSSL setup failed: %s", buf);
    return ET_ETLS;
}
}

void et__tls_free(struct et_proxy *p)
{
    SSL_CTX_free(p->sctx);
    SSL_CTX_free(p->cctx);
    SSL_CTX_free(p->cctx_insecure);
    BIO_meth_free(p->biometh);
    p->sctx = p->cctx = p->cctx_insecure = NULL;
    p->biometh = NULL;
}
