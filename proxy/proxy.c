/*
 * The capture proxy: one libuv loop; per client connection a struct conn with two legs
 * (client, upstream), each with TLS as a sans-I/O layer (OpenSSL over a custom BIO that reads
 * from the leg's ciphertext chunk and appends to its write queue). See docs/proxy.md for the
 * state machine, buffer ownership, timeouts and security rules.
 *
 *   client leg                      conn                        upstream leg
 *   read_cb -> cin -(SSL_read)-> in -> conn_advance() -> out -(SSL_write)-> w -> uv_write
 *   uv_write <- w <-(SSL_write)- out <- conn_advance() <- in <-(SSL_read)- cin <- read_cb
 */
#include "eastrace/proxy.h"

#include "proxy_int.h"

#include "eastrace/certs.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <malloc.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define CHUNK_DATA (16384 + 512) /* one full TLS record fits */
#define MAX_FREE_CHUNKS 64 /* 1 MiB of recycled buffers at most */
#define HIGH_WATER (256 * 1024)  /* stop reading the other side above this */
#define LOW_WATER (64 * 1024)
#define DNS_CACHE_SIZE 64
#define DNS_TTL_MS 30000
#define MAX_ADDRS 4
#define MAX_PINNED 4096

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct chunk {
    struct chunk *next;
    uint32_t off, len, cap;
    uint8_t data[];
};

struct wreq {
    uv_write_t req;
    struct leg *leg;
    struct wreq *next_free;
    unsigned n;
    size_t bytes;
    struct chunk *c[8];
    uv_buf_t b[8];
};

/* Facts about an upstream TLS session, computed once per connection. */
struct upinfo {
    char *version, *cipher, *alpn, *subject, *issuer, *not_before, *not_after, *sha256;
};

struct conn;

struct leg {
    uv_tcp_t tcp;
    struct et_proxy *p;
    struct conn *conn;       /* NULL once an upstream leg is detached (closing) */
    SSL *ssl;                /* NULL: plaintext */
    struct chunk *cin;       /* TLS ciphertext received, not yet read by OpenSSL */
    struct chunk *in;        /* plaintext received, not yet processed */
    struct chunk *out_head, *out_tail; /* plaintext queued (before SSL_write on TLS legs) */
    struct chunk *w_head, *w_tail;     /* bytes ready for uv_write */
    size_t queued;           /* bytes in out + w + in flight */
    unsigned handle_open : 1, reading : 1, eof : 1, closing : 1, connected : 1, hs_done : 1,
        is_up : 1, tls : 1, close_after_flush : 1, failed : 1;
    /* Upstream identity (for reuse): host, port, tls, sni. */
    char *host;
    char *sni;
    int port;
    struct upinfo *info;
    uv_connect_t creq;
    struct sockaddr_storage peer;
};

/* Connection mode. */
enum mode {
    M_HTTP = 0,        /* plain explicit-proxy HTTP from the client */
    M_RESOLVING = 1,   /* CONNECT received, resolving/checking the target */
    M_TLS_HS = 2,      /* CONNECT accepted, TLS handshake with the client */
    M_MITM = 3,        /* HTTP inside the intercepted TLS */
    M_TUNNEL_WAIT = 4, /* CONNECT to be tunnelled, connecting upstream */
    M_TUNNEL = 5,      /* blind relay */
    M_CLOSING = 6      /* flushing what is queued, then closing */
};

/* Request direction. */
enum rq {
    RQ_HEAD = 0,  /* waiting for a request head */
    RQ_BODY = 1,  /* streaming the request body upstream */
    RQ_DONE = 2   /* request complete */
};

/* Response direction. */
enum rs {
    RS_NONE = 0,  /* no request sent */
    RS_HEAD = 1,  /* waiting for the response head */
    RS_BODY = 2,  /* streaming the response body to the client */
    RS_DONE = 3   /* response complete */
};

struct framing {
    enum et__framing kind;
    enum et__framing out_kind; /* how we frame it towards the other side */
    uint64_t remaining;
    struct et__chunked ck;
};

struct capbuf {
    uint8_t *data;
    size_t len, cap;
    uint64_t wire;
    unsigned in_arena : 1, truncated : 1;
};

struct resolve {
    uv_getaddrinfo_t req;
    struct conn *conn; /* NULL when the conn went away meanwhile */
};

struct conn {
    struct leg cl;
    struct leg *up;
    struct et_proxy *p;
    struct conn *prev, *next;
    uv_timer_t timer;
    int handles;              /* open handles (client tcp, timer); freed at 0 */
    enum mode mode;
    enum rq rq;
    enum rs rs;
    struct framing reqf, respf;
    struct et_exchange *x;
    struct capbuf reqbody, respbody;
    struct resolve *res;
    char client_addr[56];
    char *connect_host;       /* CONNECT target host, or NULL */
    int connect_port;
    char *sni;                /* SNI the client sent in the intercepted handshake */
    char *target_host;        /* current request's target */
    int target_port;
    unsigned target_tls : 1, req_is_head : 1, client_close : 1, resp_started : 1,
        local : 1, up_ready : 1, resolved : 1, intercept : 1, tunnel : 1;
    int naddr;
    struct sockaddr_storage addrs[MAX_ADDRS];
    int addr_i;
    int64_t t_accept, t_req_begin;
    uint64_t deadline;
    uint64_t timer_due;
    enum et_proxy_timer tkind;
    int tkind_set;
    uint64_t tun_up, tun_down;
    int64_t tun_begin;
};

struct dns_entry {
    char host[256];
    int naddr;
    struct sockaddr_storage a[MAX_ADDRS];
    uint64_t expires;
};

struct et_proxy {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t async;
    uv_timer_t trim;      /* gives freed heap back after connection churn */
    uint64_t trim_seen;   /* st.connections at the last trim */
    struct et_proxy_opts o;
    SSL_CTX *sctx, *cctx, *cctx_insecure;
    BIO_METHOD *biometh;
    struct chunk *free_chunks;
    unsigned n_free;
    struct wreq *free_wreqs;
    struct conn *conns;
    struct et_proxy_stats st;
    uint64_t next_id;
    struct et__head head; /* scratch, one thread */
    struct et__cidr *allow_clients;
    size_t n_allow_clients;
    struct et__cidr *allow_targets;
    size_t n_allow_targets;
    struct sockaddr_storage *own;
    size_t n_own;
    char **pinned;
    size_t n_pinned;
    struct dns_entry dns[DNS_CACHE_SIZE];
    unsigned dns_next;
    char listen_str[64];
    int port;
    unsigned stopping : 1, running : 1, handles_closed : 1;
};

static void conn_advance(struct conn *c);
static void leg_flush(struct leg *l);
static void conn_close(struct conn *c);
static void up_close(struct conn *c);
static void start_upstream(struct conn *c);

/* ---------------------------------------------------------------- chunks */

static struct chunk *chunk_get(struct et_proxy *p)
{
    struct chunk *c = p->free_chunks;
    if (c != NULL) {
        p->free_chunks = c->next;
        p->n_free--;
    } else {
        c = et_malloc(sizeof(*c) + CHUNK_DATA);
        if (c == NULL)
            return NULL;
        c->cap = CHUNK_DATA;
    }
    c->next = NULL;
    c->off = c->len = 0;
    return c;
}

static void chunk_put(struct et_proxy *p, struct chunk *c)
{
    if (c == NULL)
        return;
    if (c->cap == CHUNK_DATA && p->n_free < MAX_FREE_CHUNKS) {
        c->next = p->free_chunks;
        p->free_chunks = c;
        p->n_free++;
    } else {
        et_free(c);
    }
}

static void chunk_list_put(struct et_proxy *p, struct chunk *c)
{
    while (c != NULL) {
        struct chunk *n = c->next;
        chunk_put(p, c);
        c = n;
    }
}

/* Appends bytes to a chunk list, filling the tail first. */
static int list_append(struct et_proxy *p, struct chunk **head, struct chunk **tail,
                       const void *data, size_t n)
{
    const uint8_t *s = data;
    while (n > 0) {
        struct chunk *t = *tail;
        if (t == NULL || t->off + t->len == t->cap) {
            struct chunk *nc = chunk_get(p);
            if (nc == NULL)
                return ET_ENOMEM;
            if (t == NULL)
                *head = nc;
            else
                t->next = nc;
            *tail = t = nc;
        }
        size_t room = t->cap - t->off - t->len;
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
    struct leg *l = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (list_append(l->p, &l->w_head, &l->w_tail, data, (size_t)len) != 0)
        return -1;
    l->queued += (size_t)len;
    return len;
}

static int bio_read(BIO *b, char *out, int len)
{
    struct leg *l = BIO_get_data(b);
    struct chunk *c = l->cin;
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
        chunk_put(l->p, c);
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

/* ---------------------------------------------------------------- time */

static uint64_t timeout_ms(struct et_proxy *p, enum et_proxy_timer which)
{
    uint64_t ms = 0;
    switch (which) {
    case ET_PROXY_T_IDLE: ms = p->o.idle_timeout_ms; break;
    case ET_PROXY_T_HEADER: ms = p->o.header_timeout_ms; break;
    case ET_PROXY_T_CONNECT: ms = p->o.connect_timeout_ms; break;
    case ET_PROXY_T_LONGPOLL: ms = p->o.longpoll_timeout_ms; break;
    }
    if (p->o.timeout_hook != NULL)
        ms = p->o.timeout_hook(which, ms, p->o.timeout_ud);
    return ms ? ms : 1;
}

static void on_timer(uv_timer_t *t);

/* Sets the connection's deadline; HEADER and CONNECT deadlines are not extended by
 * progress, IDLE and LONGPOLL are (called on every advance). */
static void conn_deadline(struct conn *c, enum et_proxy_timer kind)
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

/* ---------------------------------------------------------------- exchange recording */

static void cap_init(struct conn *c, struct capbuf *b, int64_t known)
{
    memset(b, 0, sizeof(*b));
    if (known > 0 && (uint64_t)known <= c->p->o.body_cap && c->x != NULL) {
        b->data = et_arena_alloc(c->x->arena, (size_t)known);
        if (b->data != NULL) {
            b->cap = (size_t)known;
            b->in_arena = 1;
        }
    }
}

static void cap_add(struct conn *c, struct capbuf *b, const uint8_t *d, size_t n)
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

static void cap_drop(struct capbuf *b)
{
    if (!b->in_arena)
        et_free(b->data);
    memset(b, 0, sizeof(*b));
}

static void cap_to_body(struct conn *c, struct capbuf *b, struct et_body *body)
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

static struct et_exchange *conn_exchange(struct conn *c)
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
        if (c->mode == M_MITM || c->mode == M_TLS_HS) {
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
    c->x = x;
    return x;
}

static void record_upinfo(struct conn *c)
{
    struct et_exchange *x = c->x;
    struct leg *u = c->up;
    if (x == NULL || u == NULL)
        return;
    char addr[64];
    if (u->connected) {
        et__addr_format((const struct sockaddr *)&u->peer, addr, sizeof(addr));
        x->server_addr = et_arena_strdup(x->arena, addr);
    }
    if (u->tls) {
        int ins = 0;
        for (size_t i = 0; i < c->p->o.n_insecure_upstream; i++)
            if (et_strcaseeq(c->p->o.insecure_upstream[i], u->host))
                ins = 1;
        x->tls.insecure = (unsigned)ins;
    }
    if (u->info == NULL)
        return;
    struct upinfo *i = u->info;
    x->tls.upstream_version = i->version ? et_arena_strdup(x->arena, i->version) : NULL;
    x->tls.cipher = i->cipher ? et_arena_strdup(x->arena, i->cipher) : NULL;
    x->tls.upstream_subject = i->subject ? et_arena_strdup(x->arena, i->subject) : NULL;
    x->tls.upstream_issuer = i->issuer ? et_arena_strdup(x->arena, i->issuer) : NULL;
    x->tls.upstream_not_before = i->not_before ? et_arena_strdup(x->arena, i->not_before) : NULL;
    x->tls.upstream_not_after = i->not_after ? et_arena_strdup(x->arena, i->not_after) : NULL;
    x->tls.upstream_sha256 = i->sha256 ? et_arena_strdup(x->arena, i->sha256) : NULL;
    if (x->tls.alpn == NULL && i->alpn)
        x->tls.alpn = et_arena_strdup(x->arena, i->alpn);
}

/* Hands the current exchange to the callback. */
static void conn_finish(struct conn *c)
{
    struct et_exchange *x = c->x;
    if (x == NULL)
        return;
    record_upinfo(c);
    if (x->has_request)
        cap_to_body(c, &c->reqbody, &x->req.body);
    if (x->has_response)
        cap_to_body(c, &c->respbody, &x->resp.body);
    cap_drop(&c->reqbody);
    cap_drop(&c->respbody);
    if (x->t.req_end == 0 && c->rq == RQ_DONE)
        x->t.req_end = et_now_us();
    if (x->has_response && x->t.resp_end == 0)
        x->t.resp_end = et_now_us();
    c->x = NULL;
    c->t_req_begin = 0;
    c->p->st.exchanges++;
    if (x->err.code != 0)
        c->p->st.errors++;
    if (c->p->o.on_exchange != NULL)
        c->p->o.on_exchange(x, c->p->o.ud);
    else
        et_exchange_free(x);
}

/* ---------------------------------------------------------------- legs */

static void leg_free_bufs(struct et_proxy *p, struct leg *l)
{
    chunk_put(p, l->cin);
    chunk_put(p, l->in);
    chunk_list_put(p, l->out_head);
    chunk_list_put(p, l->w_head);
    l->cin = l->in = l->out_head = l->out_tail = l->w_head = l->w_tail = NULL;
    if (l->ssl != NULL)
        SSL_free(l->ssl);
    l->ssl = NULL;
    if (l->info != NULL) {
        struct upinfo *i = l->info;
        et_free(i->version);
        et_free(i->cipher);
        et_free(i->alpn);
        et_free(i->subject);
        et_free(i->issuer);
        et_free(i->not_before);
        et_free(i->not_after);
        et_free(i->sha256);
        et_free(i);
        l->info = NULL;
    }
    et_free(l->host);
    et_free(l->sni);
    l->host = l->sni = NULL;
}

static void on_up_closed(uv_handle_t *h)
{
    struct leg *l = h->data;
    leg_free_bufs(l->p, l);
    et_free(l);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct leg *l = h->data;
    struct chunk **slot = l->tls ? &l->cin : &l->in;
    struct chunk *c = *slot;
    (void)hint;
    if (c == NULL) {
        c = *slot = chunk_get(l->p);
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

static void leg_read_stop(struct leg *l)
{
    if (l->reading) {
        uv_read_stop((uv_stream_t *)&l->tcp);
        l->reading = 0;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void leg_read_start(struct leg *l)
{
    if (!l->reading && l->handle_open && !l->eof && !l->closing && l->connected) {
        if (uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read) == 0)
            l->reading = 1;
    }
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = container_of(req, struct wreq, req);
    struct leg *l = w->leg;
    struct et_proxy *p = l->p;
    for (unsigned i = 0; i < w->n; i++)
        chunk_put(p, w->c[i]);
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
            uv_close((uv_handle_t *)&l->tcp, on_up_closed);
        }
        return;
    }
    conn_advance(l->conn);
}

/* Encrypts staged plaintext (TLS legs) and starts writes. */
static void leg_flush(struct leg *l)
{
    struct et_proxy *p = l->p;
    if (!l->connected || !l->handle_open || l->closing)
        return;
    if (l->ssl != NULL) {
        if (!l->hs_done && l->out_head != NULL)
            goto write; /* handshake bytes only */
        while (l->out_head != NULL) {
            struct chunk *c = l->out_head;
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
            chunk_put(p, c);
        }
    } else if (l->out_head != NULL) {
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
        struct wreq *w = p->free_wreqs;
        if (w != NULL)
            p->free_wreqs = w->next_free;
        else if ((w = et_malloc(sizeof(*w))) == NULL)
            return;
        w->leg = l;
        w->n = 0;
        w->bytes = 0;
        while (l->w_head != NULL && w->n < 8) {
            struct chunk *c = l->w_head;
            l->w_head = c->next;
            c->next = NULL;
            if (c->len == 0) {
                chunk_put(p, c);
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
        if (uv_write(&w->req, (uv_stream_t *)&l->tcp, w->b, w->n, on_write) != 0) {
            for (unsigned i = 0; i < w->n; i++)
                chunk_put(p, w->c[i]);
            l->queued -= w->bytes;
            w->next_free = p->free_wreqs;
            p->free_wreqs = w;
            l->failed = 1;
            l->eof = 1;
            return;
        }
    }
}

/* Queues plaintext bytes for a leg. */
static int leg_write(struct leg *l, const void *d, size_t n)
{
    if (n == 0)
        return 0;
    if (list_append(l->p, &l->out_head, &l->out_tail, d, n) != 0)
        return ET_ENOMEM;
    l->queued += n;
    return 0;
}

static int leg_printf(struct leg *l, const char *fmt, ...) ET_PRINTF(2, 3);
static int leg_printf(struct leg *l, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return ET_EINVAL;
    return leg_write(l, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* The plaintext input chunk with free space at its tail, compacting or allocating. */
static struct chunk *leg_in_space(struct leg *l)
{
    struct chunk *c = l->in;
    if (c == NULL) {
        c = l->in = chunk_get(l->p);
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

static void leg_in_consume(struct leg *l, size_t n)
{
    struct chunk *c = l->in;
    c->off += (uint32_t)n;
    c->len -= (uint32_t)n;
    if (c->len == 0) {
        chunk_put(l->p, c);
        l->in = NULL;
    }
}

/* Grows the input chunk to hold a whole header section (rare: heads over 16 KiB). */
static int leg_in_grow(struct leg *l)
{
    struct chunk *c = l->in;
    if (c == NULL || c->cap >= ET__MAX_HEAD + 1024)
        return ET_ETOOBIG;
    struct chunk *b = et_malloc(sizeof(*b) + ET__MAX_HEAD + 1024);
    if (b == NULL)
        return ET_ENOMEM;
    b->next = NULL;
    b->cap = ET__MAX_HEAD + 1024;
    b->off = 0;
    b->len = c->len;
    memcpy(b->data, c->data + c->off, c->len);
    chunk_put(l->p, c);
    l->in = b;
    return 0;
}

/*
 * TLS legs: runs the handshake and decrypts into `in` while there is room.
 * Returns 0, 1 when the handshake just completed, or a negative error (handshake failure
 * with the SSL error code in *sslerr).
 */
static int leg_tls_pump(struct leg *l, unsigned long *sslerr)
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
        struct chunk *c = leg_in_space(l);
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
        chunk_put(l->p, l->in);
        l->in = NULL;
    }
    /* RELEASE_BUFFERS does not release the record buffer after post-handshake messages (the
     * server's TLS 1.3 session tickets), so a held upstream would keep 17 KiB: drop the
     * buffers explicitly once nothing is pending (SSL_free_buffers refuses otherwise). */
    if (l->hs_done && (l->cin == NULL || l->cin->len == 0) && !SSL_has_pending(l->ssl))
        SSL_free_buffers(l->ssl);
    return rv;
}

/* ---------------------------------------------------------------- responses we make */

static void conn_fail(struct conn *c, int code, enum et_stage stage, int status,
                      const char *fmt, ...) ET_PRINTF(5, 6);

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 504: return "Gateway Timeout";
    }
    return "Error";
}

/* Writes a complete small response to the client. */
static void send_simple(struct conn *c, int status, const char *ctype, const void *body,
                        size_t blen, int close)
{
    leg_printf(&c->cl,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
               "Cache-Control: no-store\r\n%s\r\n",
               status, reason_of(status), ctype, blen, close ? "Connection: close\r\n" : "");
    if (!c->req_is_head)
        leg_write(&c->cl, body, blen);
    c->resp_started = 1;
    struct et_exchange *x = c->x;
    if (x != NULL && !x->has_response) {
        x->has_response = 1;
        x->resp.status = status;
        x->resp.reason = reason_of(status);
        x->resp.http_major = 1;
        x->resp.http_minor = 1;
        x->t.resp_begin = et_now_us();
        et_headers_add(&x->resp.headers, x->arena, "Content-Type", 12, ctype, strlen(ctype));
        cap_drop(&c->respbody);
        cap_add(c, &c->respbody, body, blen);
    }
}

/* Records a failure on the current exchange (making one when needed), answers the client
 * with status when it can still be answered (0: no answer), finishes the exchange and
 * closes the connection once the answer is flushed. */
static void conn_fail(struct conn *c, int code, enum et_stage stage, int status,
                      const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct et_exchange *x = conn_exchange(c);
    if (x != NULL)
        et_exchange_fail(x, code, stage, "%s", msg);
    if (status != 0 && !c->resp_started && c->cl.handle_open && !c->cl.eof &&
        (c->mode == M_HTTP || c->mode == M_MITM || c->mode == M_RESOLVING ||
         c->mode == M_TUNNEL_WAIT)) {
        char body[600];
        int n = snprintf(body, sizeof(body), "eastrace proxy: %s\n", msg);
        send_simple(c, status, "text/plain", body, n > 0 ? (size_t)n : 0, 1);
    }
    conn_finish(c);
    up_close(c);
    if (c->res != NULL) {
        /* A pending lookup must not start anything for a failed connection. */
        c->res->conn = NULL;
        uv_cancel((uv_req_t *)&c->res->req);
        c->res = NULL;
    }
    c->mode = M_CLOSING;
    c->cl.close_after_flush = 1;
}

/* ---------------------------------------------------------------- policy */

static int is_pinned(struct et_proxy *p, const char *host)
{
    for (size_t i = 0; i < p->n_pinned; i++)
        if (et_strcaseeq(p->pinned[i], host))
            return 1;
    return 0;
}

static void add_pinned(struct et_proxy *p, const char *host)
{
    if (is_pinned(p, host) || p->n_pinned >= MAX_PINNED)
        return;
    char **n = et_realloc(p->pinned, (p->n_pinned + 1) * sizeof(*n));
    if (n == NULL)
        return;
    p->pinned = n;
    if ((n[p->n_pinned] = et_strdup(host)) != NULL)
        p->n_pinned++;
}

static int target_allowed(struct et_proxy *p, const char *host, const struct sockaddr *sa)
{
    int special = et__addr_is_special(sa);
    for (size_t i = 0; !special && i < p->n_own; i++)
        if (et__addr_same_ip((const struct sockaddr *)&p->own[i], sa))
            special = 1;
    if (!special)
        return 1;
    for (size_t i = 0; i < p->o.n_allow_target; i++)
        if (et_strcaseeq(p->o.allow_target[i], host))
            return 1;
    for (size_t i = 0; i < p->n_allow_targets; i++)
        if (et__cidr_match(&p->allow_targets[i], sa))
            return 1;
    return 0;
}

static int client_allowed(struct et_proxy *p, const struct sockaddr *sa)
{
    uint8_t lb4[4] = {127, 0, 0, 0};
    struct et__cidr lo4 = {.family = AF_INET, .bits = 8};
    struct et__cidr lo6 = {.family = AF_INET6, .bits = 128};
    memcpy(lo4.addr, lb4, 4);
    lo6.addr[15] = 1;
    if (et__cidr_match(&lo4, sa) || et__cidr_match(&lo6, sa))
        return 1;
    for (size_t i = 0; i < p->n_allow_clients; i++)
        if (et__cidr_match(&p->allow_clients[i], sa))
            return 1;
    return 0;
}

static int should_intercept(struct et_proxy *p, const char *host)
{
    if (p->o.certs == NULL || p->sctx == NULL)
        return 0;
    if (is_pinned(p, host))
        return 0;
    if (p->o.n_intercept == 0)
        return 1;
    for (size_t i = 0; i < p->o.n_intercept; i++)
        if (et__glob_match(p->o.intercept[i], host))
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- DNS */

static struct dns_entry *dns_lookup(struct et_proxy *p, const char *host)
{
    uint64_t now = uv_now(&p->loop);
    for (unsigned i = 0; i < DNS_CACHE_SIZE; i++) {
        struct dns_entry *d = &p->dns[i];
        if (d->naddr > 0 && d->expires > now && et_strcaseeq(d->host, host))
            return d;
    }
    return NULL;
}

static void dns_store(struct et_proxy *p, const char *host, const struct sockaddr_storage *a,
                      int n)
{
    size_t hl = strlen(host);
    if (hl >= sizeof(p->dns[0].host) || n <= 0)
        return;
    struct dns_entry *d = &p->dns[p->dns_next++ % DNS_CACHE_SIZE];
    memcpy(d->host, host, hl + 1);
    memcpy(d->a, a, sizeof(*a) * (size_t)n);
    d->naddr = n;
    d->expires = uv_now(&p->loop) + DNS_TTL_MS;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons((uint16_t)port);
}

/* Called once the target's addresses are known (c->addrs): checks the policy on every
 * resolved address (DNS rebinding), then continues by mode. */
static void on_target_resolved(struct conn *c)
{
    for (int i = 0; i < c->naddr; i++) {
        set_port(&c->addrs[i], c->target_port);
        if (!target_allowed(c->p, c->target_host, (const struct sockaddr *)&c->addrs[i])) {
            char a[64];
            et__addr_format((const struct sockaddr *)&c->addrs[i], a, sizeof(a));
            c->p->st.denied++;
            conn_fail(c, ET_EDENIED, ET_STAGE_REQUEST, 403,
                      "target %s resolves to %s, which is not allowed (--allow-target)",
                      c->target_host, a);
            return;
        }
    }
    c->resolved = 1;
    c->addr_i = 0;
    if (c->mode == M_RESOLVING) {
        if (c->intercept) {
            /* Intercept: answer 200 now, handshake with the client, connect later. */
            leg_write(&c->cl, "HTTP/1.1 200 Connection established\r\n\r\n", 39);
            leg_flush(&c->cl);
            c->cl.ssl = SSL_new(c->p->sctx);
            if (c->cl.ssl == NULL) {
                conn_fail(c, ET_ETLS, ET_STAGE_CLIENT_TLS, 0, "SSL_new failed");
                return;
            }
            BIO *b = BIO_new(c->p->biometh);
            BIO_set_data(b, &c->cl);
            SSL_set_bio(c->cl.ssl, b, b);
            SSL_set_app_data(c->cl.ssl, c);
            SSL_set_mode(c->cl.ssl, SSL_MODE_RELEASE_BUFFERS);
            /* One TLS 1.3 ticket (not two): phones still resume, handshakes cost less. */
            SSL_set_num_tickets(c->cl.ssl, 1);
            SSL_set_accept_state(c->cl.ssl);
            c->cl.tls = 1;
            /* Bytes already read after the CONNECT head are the ClientHello. */
            if (c->cl.in != NULL) {
                c->cl.cin = c->cl.in;
                c->cl.in = NULL;
            }
            c->mode = M_TLS_HS;
            c->tkind_set = 0;
            /* The CONNECT itself is not recorded when intercepted: the requests inside are. */
            et_exchange_free(c->x);
            c->x = NULL;
        } else {
            c->mode = M_TUNNEL_WAIT;
            start_upstream(c);
        }
    } else {
        start_upstream(c);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct resolve *r = container_of(req, struct resolve, req);
    struct conn *c = r->conn;
    if (c == NULL) {
        uv_freeaddrinfo(res);
        et_free(r);
        return;
    }
    c->res = NULL;
    et_free(r);
    if (status < 0 || res == NULL) {
        uv_freeaddrinfo(res);
        conn_fail(c, ET_EDNS, ET_STAGE_DNS, 502, "cannot resolve %s: %s", c->target_host,
                  uv_strerror(status));
        conn_advance(c);
        return;
    }
    /* IPv4 first: the tests and most Exchange front ends are reached over IPv4. */
    c->naddr = 0;
    for (int pass = 0; pass < 2; pass++)
        for (struct addrinfo *ai = res; ai != NULL && c->naddr < MAX_ADDRS; ai = ai->ai_next)
            if ((pass == 0) == (ai->ai_family == AF_INET) &&
                (ai->ai_family == AF_INET || ai->ai_family == AF_INET6))
                memcpy(&c->addrs[c->naddr++], ai->ai_addr, ai->ai_addrlen);
    uv_freeaddrinfo(res);
    if (c->naddr == 0) {
        conn_fail(c, ET_EDNS, ET_STAGE_DNS, 502, "no address for %s", c->target_host);
        conn_advance(c);
        return;
    }
    dns_store(c->p, c->target_host, c->addrs, c->naddr);
    on_target_resolved(c);
    conn_advance(c);
}

/* Resolves c->target_host (literal, cache or uv_getaddrinfo). */
static void resolve_target(struct conn *c)
{
    struct et_proxy *p = c->p;
    const char *h = c->target_host;
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    c->resolved = 0;
    if (uv_ip4_addr(h, c->target_port, &a4) == 0) {
        memcpy(&c->addrs[0], &a4, sizeof(a4));
        c->naddr = 1;
        on_target_resolved(c);
        return;
    }
    if (uv_ip6_addr(h, c->target_port, &a6) == 0) {
        memcpy(&c->addrs[0], &a6, sizeof(a6));
        c->naddr = 1;
        on_target_resolved(c);
        return;
    }
    {
        /* RFC 6761: names under .invalid never resolve; answer without asking DNS. */
        size_t hl = strlen(h);
        if ((hl >= 8 && et_strcaseeq(h + hl - 8, ".invalid")) || et_strcaseeq(h, "invalid")) {
            conn_fail(c, ET_EDNS, ET_STAGE_DNS, 502,
                      "cannot resolve %s: the .invalid domain never resolves (RFC 6761)", h);
            return;
        }
    }
    struct dns_entry *d = dns_lookup(p, h);
    if (d != NULL) {
        memcpy(c->addrs, d->a, sizeof(d->a[0]) * (size_t)d->naddr);
        c->naddr = d->naddr;
        on_target_resolved(c);
        return;
    }
    struct resolve *r = et_calloc(1, sizeof(*r));
    if (r == NULL) {
        conn_fail(c, ET_ENOMEM, ET_STAGE_DNS, 502, "out of memory");
        return;
    }
    r->conn = c;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = uv_getaddrinfo(&p->loop, &r->req, on_resolved, h, NULL, &hints);
    if (rc != 0) {
        et_free(r);
        conn_fail(c, ET_EDNS, ET_STAGE_DNS, 502, "cannot resolve %s: %s", h, uv_strerror(rc));
        return;
    }
    c->res = r;
}

/* ---------------------------------------------------------------- upstream */

static void up_close(struct conn *c)
{
    struct leg *u = c->up;
    if (u == NULL)
        return;
    c->up = NULL;
    c->up_ready = 0;
    u->conn = NULL;
    if (!u->handle_open) {
        leg_free_bufs(u->p, u);
        et_free(u);
        return;
    }
    leg_read_stop(u);
    if (!u->closing) {
        u->closing = 1;
        uv_close((uv_handle_t *)&u->tcp, on_up_closed);
    }
}

static char *asn1_time_iso(const ASN1_TIME *t)
{
    struct tm tm;
    char buf[40];
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return NULL;
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return et_strdup(buf);
}

static void up_collect_info(struct leg *u)
{
    struct upinfo *i = et_calloc(1, sizeof(*i));
    if (i == NULL)
        return;
    u->info = i;
    i->version = et_strdup(SSL_get_version(u->ssl));
    const SSL_CIPHER *ci = SSL_get_current_cipher(u->ssl);
    if (ci != NULL)
        i->cipher = et_strdup(SSL_CIPHER_get_name(ci));
    const unsigned char *alpn = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(u->ssl, &alpn, &alen);
    if (alen > 0)
        i->alpn = et_strndup((const char *)alpn, alen);
    X509 *cert = SSL_get0_peer_certificate(u->ssl);
    if (cert == NULL)
        return;
    char buf[512];
    X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof(buf));
    i->subject = et_strdup(buf);
    X509_NAME_oneline(X509_get_issuer_name(cert), buf, sizeof(buf));
    i->issuer = et_strdup(buf);
    i->not_before = asn1_time_iso(X509_get0_notBefore(cert));
    i->not_after = asn1_time_iso(X509_get0_notAfter(cert));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) == 1) {
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        for (unsigned k = 0; k < mdlen; k++)
            snprintf(hex + 2 * k, 3, "%02x", md[k]);
        i->sha256 = et_strdup(hex);
    }
}

static int host_is_insecure(struct et_proxy *p, const char *host)
{
    for (size_t i = 0; i < p->o.n_insecure_upstream; i++)
        if (et_strcaseeq(p->o.insecure_upstream[i], host) ||
            et__glob_match(p->o.insecure_upstream[i], host))
            return 1;
    return 0;
}

static void on_up_connect(uv_connect_t *req, int status);

/* Opens a TCP connection to c->addrs[c->addr_i] on leg u. */
static int up_connect_addr(struct conn *c, struct leg *u)
{
    int rc = uv_tcp_init(&c->p->loop, &u->tcp);
    if (rc != 0)
        return rc;
    u->handle_open = 1;
    u->tcp.data = u;
    memcpy(&u->peer, &c->addrs[c->addr_i], sizeof(u->peer));
    return uv_tcp_connect(&u->creq, &u->tcp, (const struct sockaddr *)&u->peer, on_up_connect);
}

/* Starts (or reuses) the upstream leg for the current target. */
static void start_upstream(struct conn *c)
{
    struct et_proxy *p = c->p;
    struct leg *u = et_calloc(1, sizeof(*u));
    if (u == NULL) {
        conn_fail(c, ET_ENOMEM, ET_STAGE_UPSTREAM_CONNECT, 502, "out of memory");
        return;
    }
    u->p = p;
    u->conn = c;
    u->is_up = 1;
    u->port = c->target_port;
    u->host = et_strdup(c->target_host);
    if (c->mode != M_TUNNEL_WAIT && c->target_tls) {
        const char *sni = c->sni ? c->sni : c->target_host;
        u->sni = et_strdup(sni);
    }
    if (u->host == NULL) {
        et_free(u);
        conn_fail(c, ET_ENOMEM, ET_STAGE_UPSTREAM_CONNECT, 502, "out of memory");
        return;
    }
    /* A previous upstream's staged bytes move over (the request head). */
    if (c->up != NULL) {
        struct leg *old = c->up;
        u->out_head = old->out_head;
        u->out_tail = old->out_tail;
        u->queued = 0;
        for (struct chunk *k = u->out_head; k; k = k->next)
            u->queued += k->len;
        old->out_head = old->out_tail = NULL;
        old->queued -= u->queued;
        up_close(c);
    }
    c->up = u;
    c->up_ready = 0;
    conn_deadline(c, ET_PROXY_T_CONNECT);
    int rc = up_connect_addr(c, u);
    if (rc != 0)
        conn_fail(c, ET_ECONNREFUSED, ET_STAGE_UPSTREAM_CONNECT, 502, "connect to %s:%d: %s",
                  c->target_host, c->target_port, uv_strerror(rc));
}

static void up_ready(struct conn *c)
{
    struct leg *u = c->up;
    c->up_ready = 1;
    if (c->mode == M_TUNNEL_WAIT) {
        c->mode = M_TUNNEL;
        c->tunnel = 1;
        c->tun_begin = et_now_us();
        c->p->st.tunnels++;
        leg_write(&c->cl, "HTTP/1.1 200 Connection established\r\n\r\n", 39);
        c->resp_started = 1;
        /* Bytes already read after the CONNECT head go upstream as they are. */
        if (c->cl.in != NULL && c->cl.in->len > 0) {
            c->tun_up += c->cl.in->len;
            leg_write(u, c->cl.in->data + c->cl.in->off, c->cl.in->len);
            leg_in_consume(&c->cl, c->cl.in->len);
        }
    }
    c->tkind_set = 0;
    leg_flush(u);
}

static void on_up_connect(uv_connect_t *req, int status)
{
    struct leg *u = container_of(req, struct leg, creq);
    struct conn *c = u->conn;
    if (c == NULL)
        return; /* detached; on_up_closed frees it */
    if (status < 0) {
        if (status != UV_ECANCELED && c->addr_i + 1 < c->naddr) {
            /* Try the next address on a fresh socket. */
            c->addr_i++;
            struct leg *nu = et_calloc(1, sizeof(*nu));
            if (nu != NULL) {
                *nu = *u;
                memset(&nu->tcp, 0, sizeof(nu->tcp));
                memset(&nu->creq, 0, sizeof(nu->creq));
                nu->handle_open = 0;
                u->out_head = u->out_tail = NULL;
                u->host = u->sni = NULL;
                u->queued = 0;
                u->conn = NULL;
                u->closing = 1;
                uv_close((uv_handle_t *)&u->tcp, on_up_closed);
                c->up = nu;
                if (up_connect_addr(c, nu) == 0)
                    return;
                u = nu;
            }
        }
        conn_fail(c, status == UV_ETIMEDOUT ? ET_ETIMEDOUT : ET_ECONNREFUSED,
                  ET_STAGE_UPSTREAM_CONNECT, 502, "connect to %s:%d: %s", c->target_host,
                  c->target_port, uv_strerror(status));
        conn_advance(c);
        return;
    }
    u->connected = 1;
    uv_tcp_nodelay(&u->tcp, 1);
    if (c->mode != M_TUNNEL_WAIT && c->target_tls) {
        int insecure = host_is_insecure(c->p, u->host);
        u->ssl = SSL_new(insecure ? c->p->cctx_insecure : c->p->cctx);
        if (u->ssl == NULL) {
            conn_fail(c, ET_ETLS, ET_STAGE_UPSTREAM_TLS, 502, "SSL_new failed");
            conn_advance(c);
            return;
        }
        BIO *b = BIO_new(c->p->biometh);
        BIO_set_data(b, u);
        SSL_set_bio(u->ssl, b, b);
        SSL_set_mode(u->ssl, SSL_MODE_RELEASE_BUFFERS);
        SSL_set_connect_state(u->ssl);
        u->tls = 1;
        unsigned char tmp[16];
        int is_ip = inet_pton(AF_INET, u->sni, tmp) == 1 || inet_pton(AF_INET6, u->sni, tmp) == 1;
        if (!is_ip)
            SSL_set_tlsext_host_name(u->ssl, u->sni);
        if (!insecure) {
            X509_VERIFY_PARAM *vp = SSL_get0_param(u->ssl);
            if (is_ip)
                X509_VERIFY_PARAM_set1_ip_asc(vp, u->sni);
            else
                SSL_set1_host(u->ssl, u->sni);
        }
        /* The first flight: ClientHello into the write queue. */
        unsigned long err;
        leg_tls_pump(u, &err);
        leg_flush(u);
    } else {
        up_ready(c);
    }
    leg_read_start(u);
    conn_advance(c);
}

/* ---------------------------------------------------------------- HTTP forwarding */

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

/* Copies the end-to-end fields of h to l. skip_host drops Host (absolute-form requests). */
static void write_fields(struct leg *l, const struct et__head *h, int skip_host)
{
    for (size_t i = 0; i < h->n; i++) {
        const struct et__field *f = &h->f[i];
        if (is_hop_by_hop(f) || (skip_host && et__field_is(f, "host")) ||
            listed_in_connection(h, f))
            continue;
        leg_write(l, f->name, f->nlen);
        leg_write(l, ": ", 2);
        leg_write(l, f->value, f->vlen);
        leg_write(l, "\r\n", 2);
    }
}

static void record_fields(struct et_exchange *x, struct et_headers *hs, const struct et__head *h)
{
    for (size_t i = 0; i < h->n; i++)
        et_headers_add(hs, x->arena, h->f[i].name, h->f[i].nlen, h->f[i].value, h->f[i].vlen);
}

/* Splits "host:port" / "[v6]:port" (port optional when defport > 0). */
static int split_authority(const char *s, size_t n, int defport, char **host, int *port)
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
static void serve_local(struct conn *c, const char *path)
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
    if (c->p->o.certs != NULL)
        rc = et_certs_http_resource(c->p->o.certs, res, c->p->listen_str, &body, &ctype);
    if (rc == 0) {
        if (strstr(res, "mobileconfig") != NULL)
            ctype = "application/x-apple-aspen-config";
        send_simple(c, 200, ctype, body.data, body.len, c->client_close);
    } else {
        static const char nf[] = "eastrace proxy: not found\n";
        send_simple(c, 404, "text/plain", nf, sizeof(nf) - 1, c->client_close);
    }
    et_buf_free(&body);
    c->rs = RS_DONE;
}

/* A complete request head is in cl.in: record it, decide where it goes, forward it. */
static void handle_request(struct conn *c, const struct et__head *h)
{
    struct et_proxy *p = c->p;
    struct et_exchange *x = conn_exchange(c);
    if (x == NULL) {
        conn_fail(c, ET_ENOMEM, ET_STAGE_REQUEST, 502, "out of memory");
        return;
    }
    x->has_request = 1;
    x->req.method = et_arena_strndup(x->arena, h->method, h->method_len);
    x->req.target = et_arena_strndup(x->arena, h->target, h->target_len);
    x->req.http_major = h->major;
    x->req.http_minor = h->minor;
    record_fields(x, &x->req.headers, h);
    c->req_is_head = (h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0);
    c->client_close = h->conn_close || (h->minor == 0 && !h->conn_keep_alive);
    c->resp_started = 0;
    c->local = 0;
    int is_connect = h->method_len == 7 && memcmp(h->method, "CONNECT", 7) == 0;
    const char *path = h->target;
    size_t plen = h->target_len;
    char *host = NULL;
    int port = 0;

    if (is_connect) {
        if (c->mode != M_HTTP) {
            conn_fail(c, ET_EPARSE, ET_STAGE_REQUEST, 400, "CONNECT inside a tunnel");
            return;
        }
        if (split_authority(h->target, h->target_len, 0, &host, &port) != 0) {
            conn_fail(c, ET_EPARSE, ET_STAGE_REQUEST, 400, "bad CONNECT target");
            return;
        }
        et_free(c->connect_host);
        c->connect_host = host;
        c->connect_port = port;
        x->host = et_arena_strdup(x->arena, host);
        x->port = port;
        x->scheme = "https";
        x->tls.present = 1;
        if (h->content_length > 0 || h->chunked) {
            conn_fail(c, ET_EPARSE, ET_STAGE_REQUEST, 400, "CONNECT with a body");
            return;
        }
        c->intercept = (unsigned)should_intercept(p, host);
        x->tls.intercepted = c->intercept;
        /* eastrace.cert over TLS is served locally; nothing to resolve. */
        if (c->intercept && et_strcaseeq(host, ET_CERTS_INSTALL_HOST)) {
            c->mode = M_RESOLVING;
            et_free(c->target_host);
            c->target_host = et_strdup(host);
            c->target_port = port;
            c->naddr = 0;
            on_target_resolved(c);
            leg_in_consume(&c->cl, h->head_len);
            return;
        }
        et_free(c->target_host);
        c->target_host = et_strdup(host);
        c->target_port = port;
        c->mode = M_RESOLVING;
        leg_in_consume(&c->cl, h->head_len);
        x->t.req_end = et_now_us();
        /* A tunnel records one exchange when it ends; an intercepted CONNECT none. */
        resolve_target(c);
        return;
    }

    if (c->mode == M_MITM) {
        x->host = et_arena_strdup(x->arena, c->connect_host);
        x->port = c->connect_port;
        x->scheme = "https";
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
            if (split_authority(a, (size_t)(ae - a), 80, &host, &port) != 0) {
                conn_fail(c, ET_EPARSE, ET_STAGE_REQUEST, 400, "bad absolute-form target");
                return;
            }
            path = sl ? sl : "/";
            plen = sl ? (size_t)(end - sl) : 1;
            x->host = et_arena_strdup(x->arena, host);
            x->port = port;
            x->scheme = "http";
            c->target_tls = 0;
            if (et_strcaseeq(host, ET_CERTS_INSTALL_HOST) || is_self(p, host, port))
                c->local = 1;
        } else if (h->target_len > 0 && h->target[0] == '/') {
            /* Origin-form to an explicit proxy: addressed to the proxy itself. */
            c->local = 1;
            x->scheme = "http";
            x->host = et_arena_strdup(x->arena, p->listen_str);
        } else {
            conn_fail(c, ET_EPARSE, ET_STAGE_REQUEST, 400,
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
            conn_fail(c, ET_EPARSE, ET_STAGE_REQUEST, 400, "unexpected body");
            return;
        }
        leg_in_consume(&c->cl, h->head_len);
        c->rq = RQ_DONE;
        x->t.req_end = et_now_us();
        serve_local(c, lp);
        return;
    }

    /* Reuse the upstream connection when it goes to the same place. */
    struct leg *u = c->up;
    const char *want_sni = c->target_tls ? (c->sni ? c->sni : host) : NULL;
    if (u != NULL && (u->closing || u->eof || u->failed || u->port != port ||
                      !et_strcaseeq(u->host, host) || u->tls != c->target_tls ||
                      (want_sni && (!u->sni || !et_strcaseeq(u->sni, want_sni)))))
        up_close(c);
    u = c->up;

    /* The forwarded head, re-serialised from the parsed parts. */
    struct leg tmp; /* staging when there is no upstream leg yet */
    struct leg *w = u;
    if (w == NULL) {
        memset(&tmp, 0, sizeof(tmp));
        tmp.p = p;
        w = &tmp;
    }
    leg_write(w, h->method, h->method_len);
    leg_write(w, " ", 1);
    leg_write(w, path, plen);
    leg_write(w, " HTTP/1.1\r\n", 11);
    int absolute = path != h->target;
    if (absolute || !h->has_host) {
        int defp = c->target_tls ? 443 : 80;
        int v6 = strchr(host, ':') != NULL;
        if (port == defp)
            leg_printf(w, "Host: %s%s%s\r\n", v6 ? "[" : "", host, v6 ? "]" : "");
        else
            leg_printf(w, "Host: %s%s%s:%d\r\n", v6 ? "[" : "", host, v6 ? "]" : "", port);
    }
    write_fields(w, h, absolute);
    if (h->chunked)
        leg_write(w, "Transfer-Encoding: chunked\r\n", 28);
    leg_write(w, "\r\n", 2);

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
    cap_init(c, &c->reqbody, h->content_length);
    c->rq = c->reqf.kind == ET__BODY_NONE ? RQ_DONE : RQ_BODY;
    if (c->rq == RQ_DONE)
        x->t.req_end = et_now_us();
    c->rs = RS_HEAD;
    leg_in_consume(&c->cl, h->head_len);

    if (u == NULL) {
        et_free(c->target_host);
        c->target_host = host;
        c->target_port = port;
        host = NULL;
        /* Move the staged head into a fresh upstream leg once it exists. */
        struct chunk *sh = tmp.out_head, *st = tmp.out_tail;
        size_t sq = tmp.queued;
        if (c->mode == M_MITM && c->resolved && c->naddr > 0) {
            start_upstream(c);
        } else {
            c->resolved = 0;
            resolve_target(c);
        }
        if (c->up != NULL) {
            c->up->out_head = sh;
            c->up->out_tail = st;
            c->up->queued += sq;
            if (c->up_ready)
                leg_flush(c->up);
        } else {
            /* Resolving: keep it on a placeholder leg, adopted by start_upstream(). */
            struct leg *ph = et_calloc(1, sizeof(*ph));
            if (ph == NULL) {
                chunk_list_put(p, sh);
                conn_fail(c, ET_ENOMEM, ET_STAGE_REQUEST, 502, "out of memory");
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
static void write_status_line(struct leg *l, const struct et__head *h)
{
    leg_printf(l, "HTTP/1.1 %03d ", h->status);
    leg_write(l, h->reason, h->reason_len);
    leg_write(l, "\r\n", 2);
}

/* The response head from upstream is in up->in. */
static void handle_response(struct conn *c, const struct et__head *h)
{
    struct leg *u = c->up;
    struct et_exchange *x = c->x;
    if (h->status >= 100 && h->status < 200) {
        if (h->status == 101) {
            conn_fail(c, ET_EUNSUPPORTED, ET_STAGE_RESPONSE, 502, "protocol upgrade (101)");
            return;
        }
        /* Interim response (100 Continue): relay it, wait for the final one. */
        write_status_line(&c->cl, h);
        leg_write(&c->cl, "\r\n", 2);
        leg_in_consume(u, h->head_len);
        return;
    }
    if (x != NULL) {
        x->has_response = 1;
        x->resp.status = h->status;
        x->resp.reason = et_arena_strndup(x->arena, h->reason, h->reason_len);
        x->resp.http_major = h->major;
        x->resp.http_minor = h->minor;
        x->t.resp_begin = et_now_us();
        record_fields(x, &x->resp.headers, h);
    }
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
    if (c->rq != RQ_DONE)
        c->client_close = 1; /* early answer: the rest of the request cannot be trusted */

    struct leg *cl = &c->cl;
    write_status_line(cl, h);
    write_fields(cl, h, 0);
    if (c->respf.out_kind == ET__BODY_CHUNKED && !c->req_is_head && h->status != 204 &&
        h->status != 304)
        leg_write(cl, "Transfer-Encoding: chunked\r\n", 28);
    if (c->client_close)
        leg_write(cl, "Connection: close\r\n", 19);
    leg_write(cl, "\r\n", 2);
    c->resp_started = 1;
    cap_init(c, &c->respbody, h->content_length);
    leg_in_consume(u, h->head_len);
    c->rs = c->respf.kind == ET__BODY_NONE ? RS_DONE : RS_BODY;
}

/*
 * Moves body bytes from src->in to dst (re-framed), recording them. Returns 1 when the body
 * is complete, 0 when more is needed, negative on a framing error (e set).
 */
static int pump_body(struct conn *c, struct leg *src, struct leg *dst, struct framing *f,
                     struct capbuf *cap, struct et_error *e)
{
    while (src->in != NULL && src->in->len > 0) {
        if (dst != NULL && dst->queued > HIGH_WATER)
            return 0;
        const uint8_t *d = src->in->data + src->in->off;
        size_t n = src->in->len;
        if (f->kind == ET__BODY_LENGTH) {
            size_t k = n < f->remaining ? n : (size_t)f->remaining;
            cap_add(c, cap, d, k);
            if (dst != NULL)
                leg_write(dst, d, k);
            f->remaining -= k;
            leg_in_consume(src, k);
            if (f->remaining == 0)
                return 1;
        } else if (f->kind == ET__BODY_CHUNKED) {
            const uint8_t *data = NULL;
            size_t dlen = 0, used = 0;
            int r = et__chunked_feed(&f->ck, d, n, &used, &data, &dlen, e);
            if (r < 0 && r != ET_EAGAIN)
                return r;
            if (r == 1 && dlen > 0) {
                cap_add(c, cap, data, dlen);
                if (dst != NULL) {
                    leg_printf(dst, "%zx\r\n", dlen);
                    leg_write(dst, data, dlen);
                    leg_write(dst, "\r\n", 2);
                }
            }
            leg_in_consume(src, used);
            if (r == 0) {
                if (dst != NULL)
                    leg_write(dst, "0\r\n\r\n", 5);
                return 1;
            }
        } else if (f->kind == ET__BODY_EOF) {
            cap_add(c, cap, d, n);
            if (dst != NULL) {
                if (f->out_kind == ET__BODY_CHUNKED) {
                    leg_printf(dst, "%zx\r\n", n);
                    leg_write(dst, d, n);
                    leg_write(dst, "\r\n", 2);
                } else {
                    leg_write(dst, d, n);
                }
            }
            leg_in_consume(src, n);
        } else {
            return 1;
        }
    }
    return f->kind == ET__BODY_NONE ? 1 : 0;
}

/* Closes the connection and everything it owns. */
static void on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles > 0)
        return;
    struct et_proxy *p = c->p;
    leg_free_bufs(p, &c->cl);
    if (c->x != NULL) {
        if (!c->reqbody.in_arena)
            et_free(c->reqbody.data);
        if (!c->respbody.in_arena)
            et_free(c->respbody.data);
        et_exchange_free(c->x);
    }
    et_free(c->connect_host);
    et_free(c->sni);
    et_free(c->target_host);
    et_free(c);
}

static void conn_close(struct conn *c)
{
    if (c->cl.closing)
        return;
    struct et_proxy *p = c->p;
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
        cap_drop(&c->reqbody);
        cap_drop(&c->respbody);
        c->x = NULL;
        p->st.exchanges++;
        if (x->err.code)
            p->st.errors++;
        if (p->o.on_exchange)
            p->o.on_exchange(x, p->o.ud);
        else
            et_exchange_free(x);
    } else if (c->x != NULL && c->x->has_request) {
        if (c->x->err.code == 0)
            et_exchange_fail(c->x, ET_ECONNRESET, ET_STAGE_CLIENT,
                             "connection closed before the exchange completed");
        conn_finish(c);
    }
    if (c->res != NULL) {
        c->res->conn = NULL;
        uv_cancel((uv_req_t *)&c->res->req);
        c->res = NULL;
    }
    up_close(c);
    c->cl.closing = 1;
    c->mode = M_CLOSING;
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

/* ---------------------------------------------------------------- client TLS */

static int on_client_sni(SSL *ssl, int *al, void *arg)
{
    struct conn *c = SSL_get_app_data(ssl);
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

static void client_tls_failed(struct conn *c, unsigned long err)
{
    char reason[256] = "connection closed during the handshake";
    int alert = 0;
    if (err != (unsigned long)-1 && err != 0) {
        ERR_error_string_n(err, reason, sizeof(reason));
        /* Reasons at or above SSL_AD_REASON_OFFSET are alerts the peer sent. */
        alert = ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) >= SSL_AD_REASON_OFFSET;
    }
    const char *host = c->sni ? c->sni : c->connect_host;
    if (alert && host != NULL) {
        add_pinned(c->p, c->connect_host);
        if (c->sni)
            add_pinned(c->p, c->sni);
    }
    struct et_exchange *x = conn_exchange(c);
    if (x != NULL) {
        x->has_request = 1;
        x->req.method = "CONNECT";
        x->req.target = et_arena_printf(x->arena, "%s:%d", c->connect_host, c->connect_port);
    }
    conn_fail(c, ET_ETLS, ET_STAGE_CLIENT_TLS, 0, "client TLS handshake for %s failed: %s%s",
              host ? host : "?", reason,
              alert ? " (the client rejected our certificate: pinned or CA not installed; "
                      "this host is tunnelled from now on)" : "");
    c->cl.close_after_flush = 1;
}

/* ---------------------------------------------------------------- the state machine */

static void advance_http(struct conn *c)
{
    struct et_proxy *p = c->p;
    struct et_error e;
    for (int rounds = 0; rounds < 64; rounds++) {
        int progress = 0;
        et_error_clear(&e);
        /* Client side. */
        if (c->rq == RQ_HEAD && c->rs == RS_NONE && c->cl.in != NULL && c->cl.in->len > 0) {
            if (c->t_req_begin == 0)
                c->t_req_begin = et_now_us();
            int r = et__head_scan(c->cl.in->data + c->cl.in->off, c->cl.in->len, 1, &p->head,
                                  &e);
            if (r == ET_EAGAIN && c->cl.in->off + c->cl.in->len == c->cl.in->cap) {
                if (c->cl.in->off > 0) {
                    memmove(c->cl.in->data, c->cl.in->data + c->cl.in->off, c->cl.in->len);
                    c->cl.in->off = 0;
                } else if (leg_in_grow(&c->cl) != 0) {
                    r = ET_ETOOBIG;
                    et_error_set(&e, ET_ETOOBIG, "header section over %d bytes", ET__MAX_HEAD);
                }
            }
            if (r == 0) {
                handle_request(c, &p->head);
                progress = 1;
                if (c->mode != M_HTTP && c->mode != M_MITM)
                    return;
            } else if (r != ET_EAGAIN) {
                conn_fail(c, r, ET_STAGE_REQUEST, 400, "malformed request: %s", e.msg);
                return;
            }
        }
        if (c->rq == RQ_BODY) {
            struct leg *dst = (c->up && !c->up->eof) ? c->up : NULL;
            int r = pump_body(c, &c->cl, dst, &c->reqf, &c->reqbody, &e);
            if (r < 0) {
                conn_fail(c, r, ET_STAGE_REQUEST, 400, "malformed request body: %s", e.msg);
                return;
            }
            if (r == 1) {
                c->rq = RQ_DONE;
                if (c->x)
                    c->x->t.req_end = et_now_us();
                progress = 1;
            }
        }
        /* Upstream side. */
        struct leg *u = c->up;
        if (u != NULL && u->in != NULL && u->in->len > 0 && c->up_ready) {
            if (c->rs == RS_HEAD) {
                int r = et__head_scan(u->in->data + u->in->off, u->in->len, 0, &p->head, &e);
                if (r == ET_EAGAIN && u->in->off + u->in->len == u->in->cap && u->in->off == 0 &&
                    leg_in_grow(u) != 0)
                    r = ET_ETOOBIG;
                if (r == 0) {
                    handle_response(c, &p->head);
                    progress = 1;
                } else if (r != ET_EAGAIN) {
                    conn_fail(c, r, ET_STAGE_RESPONSE, 502, "malformed response: %s",
                              e.msg[0] ? e.msg : "header section too large");
                    return;
                }
            } else if (c->rs == RS_BODY) {
                int r = pump_body(c, u, &c->cl, &c->respf, &c->respbody, &e);
                if (r < 0) {
                    c->client_close = 1;
                    conn_fail(c, r, ET_STAGE_RESPONSE, 502, "malformed response body: %s",
                              e.msg);
                    return;
                }
                if (r == 1) {
                    c->rs = RS_DONE;
                    progress = 1;
                }
            } else if (c->rs == RS_NONE || c->rs == RS_DONE) {
                /* Bytes nobody asked for: the server is out of step; drop the connection. */
                up_close(c);
                u = NULL;
            }
        }
        /* Upstream end of stream. */
        if (u != NULL && u->eof && (u->in == NULL || u->in->len == 0)) {
            if (c->rs == RS_BODY && c->respf.kind == ET__BODY_EOF) {
                if (c->respf.out_kind == ET__BODY_CHUNKED)
                    leg_write(&c->cl, "0\r\n\r\n", 5);
                c->rs = RS_DONE;
                up_close(c);
                progress = 1;
            } else if (c->rs == RS_HEAD || c->rs == RS_BODY) {
                int reset = u->failed || c->rs == RS_BODY;
                c->client_close = 1;
                conn_fail(c, ET_ECONNRESET, ET_STAGE_RESPONSE, 502,
                          "the server closed the connection %s",
                          reset ? "in the middle of the response" : "before responding");
                return;
            } else {
                up_close(c);
            }
        }
        /* Exchange complete. */
        if (c->rq == RQ_DONE && c->rs == RS_DONE) {
            if (c->up && c->up->close_after_flush)
                up_close(c);
            conn_finish(c);
            c->rq = RQ_HEAD;
            c->rs = RS_NONE;
            if (c->client_close) {
                c->mode = M_CLOSING;
                c->cl.close_after_flush = 1;
                return;
            }
            progress = 1;
        }
        if (!progress)
            break;
    }
}

static void advance_tunnel(struct conn *c)
{
    struct leg *u = c->up;
    if (u == NULL) {
        conn_close(c);
        return;
    }
    if (c->cl.in != NULL && c->cl.in->len > 0 && u->queued < HIGH_WATER) {
        c->tun_up += c->cl.in->len;
        leg_write(u, c->cl.in->data + c->cl.in->off, c->cl.in->len);
        leg_in_consume(&c->cl, c->cl.in->len);
    }
    if (u->in != NULL && u->in->len > 0 && c->cl.queued < HIGH_WATER) {
        c->tun_down += u->in->len;
        leg_write(&c->cl, u->in->data + u->in->off, u->in->len);
        leg_in_consume(u, u->in->len);
    }
    if ((c->cl.eof && c->cl.in == NULL) || (u->eof && u->in == NULL)) {
        c->mode = M_CLOSING;
        c->cl.close_after_flush = 1;
        u->close_after_flush = 1;
        leg_flush(u);
        /* The tunnel exchange is recorded when the client side closes. */
    }
}

/* What the conn should read next, and its deadline. */
static void conn_update_io(struct conn *c)
{
    struct leg *u = c->up;
    struct leg *cl = &c->cl;
    int read_cl = 1, read_up = 1;
    if (cl->in != NULL && cl->in->off + cl->in->len == cl->in->cap)
        read_cl = 0;
    if (cl->tls && cl->cin != NULL && cl->cin->off + cl->cin->len == cl->cin->cap)
        read_cl = 0;
    if (u != NULL && u->queued > HIGH_WATER)
        read_cl = 0;
    if (c->mode == M_RESOLVING || c->mode == M_TUNNEL_WAIT || c->mode == M_CLOSING)
        read_cl = c->mode != M_CLOSING && cl->in == NULL;
    if ((c->mode == M_HTTP || c->mode == M_MITM) && c->rq == RQ_DONE && cl->in != NULL)
        read_cl = 0; /* pipelined request waits for this response */
    if (cl->queued > HIGH_WATER)
        read_up = 0;
    if (u != NULL) {
        if (u->in != NULL && u->in->off + u->in->len == u->in->cap)
            read_up = 0;
        if (u->tls && u->cin != NULL && u->cin->off + u->cin->len == u->cin->cap)
            read_up = 0;
        if (read_up)
            leg_read_start(u);
        else
            leg_read_stop(u);
    }
    if (read_cl)
        leg_read_start(cl);
    else
        leg_read_stop(cl);

    switch (c->mode) {
    case M_TLS_HS:
        conn_deadline(c, ET_PROXY_T_HEADER);
        break;
    case M_RESOLVING:
    case M_TUNNEL_WAIT:
        conn_deadline(c, ET_PROXY_T_CONNECT);
        break;
    case M_TUNNEL:
        conn_deadline(c, ET_PROXY_T_LONGPOLL);
        break;
    case M_HTTP:
    case M_MITM:
        if (c->rq == RQ_HEAD && c->rs == RS_NONE)
            conn_deadline(c, cl->in != NULL ? ET_PROXY_T_HEADER : ET_PROXY_T_IDLE);
        else if (c->up != NULL && !c->up_ready)
            conn_deadline(c, ET_PROXY_T_CONNECT);
        else
            conn_deadline(c, ET_PROXY_T_LONGPOLL);
        break;
    case M_CLOSING:
        conn_deadline(c, ET_PROXY_T_HEADER);
        break;
    }
}

/* 1 when a TLS leg holds ciphertext or decrypted bytes that did not fit into `in`. */
static int tls_has_more(const struct leg *l)
{
    if (l == NULL || l->ssl == NULL || !l->hs_done || l->closing || !l->handle_open)
        return 0;
    if (l->in != NULL && l->in->len == l->in->cap)
        return 0;
    return (l->cin != NULL && l->cin->len > 0) || SSL_pending(l->ssl) > 0;
}

static void conn_advance(struct conn *c)
{
    if (c->cl.closing)
        return;
    /* Decrypted records can outlast one pass when `in` was full: go round again while a
     * TLS leg still holds input and has room for it, or the mode just changed. */
    for (int iter = 0; iter < 16; iter++) {
        unsigned long sslerr = 0;
        struct leg *u = c->up;
        enum mode m0 = c->mode;

        /* Upstream TLS handshake and decryption. */
        if (u != NULL && u->ssl != NULL && u->connected && c->mode != M_CLOSING) {
            int r = leg_tls_pump(u, &sslerr);
            if (r < 0) {
                long vr = SSL_get_verify_result(u->ssl);
                if (vr != X509_V_OK)
                    conn_fail(c, ET_ECERT, ET_STAGE_UPSTREAM_TLS, 502,
                              "certificate of %s rejected: %s", u->sni,
                              X509_verify_cert_error_string(vr));
                else {
                    char buf[256] = "connection closed during the handshake";
                    if (sslerr != (unsigned long)-1)
                        ERR_error_string_n(sslerr, buf, sizeof(buf));
                    conn_fail(c, ET_ETLS, ET_STAGE_UPSTREAM_TLS, 502, "TLS with %s failed: %s",
                              u->sni, buf);
                }
            } else if (r == 1) {
                up_collect_info(u);
                up_ready(c);
            } else if (!u->hs_done && u->eof) {
                conn_fail(c, ET_ECONNRESET, ET_STAGE_UPSTREAM_TLS, 502,
                          "%s closed the connection during the TLS handshake", u->sni);
            }
            if (u->hs_done)
                leg_flush(u);
        }
        /* Client TLS. */
        if (c->cl.ssl != NULL && c->mode != M_CLOSING) {
            int r = leg_tls_pump(&c->cl, &sslerr);
            if (r < 0) {
                client_tls_failed(c, sslerr);
            } else if (r == 1) {
                c->mode = M_MITM;
                c->rq = RQ_HEAD;
                c->rs = RS_NONE;
                c->tkind_set = 0;
            } else if (c->mode == M_TLS_HS && c->cl.eof) {
                client_tls_failed(c, (unsigned long)-1);
            }
        }

        switch (c->mode) {
        case M_HTTP:
        case M_MITM:
            advance_http(c);
            break;
        case M_TUNNEL:
            advance_tunnel(c);
            break;
        default:
            break;
        }
        if (c->cl.closing)
            return;
        if (c->mode == m0 && !tls_has_more(&c->cl) && !tls_has_more(c->up))
            break;
    }
    if (c->cl.closing)
        return;

    /* Client end of stream. */
    if (c->cl.eof && (c->cl.in == NULL || c->mode == M_CLOSING || c->cl.failed)) {
        if (c->mode == M_HTTP || c->mode == M_MITM || c->mode == M_RESOLVING ||
            c->mode == M_TLS_HS || c->mode == M_TUNNEL_WAIT || c->mode == M_TUNNEL) {
            if (c->x != NULL && c->mode != M_TUNNEL && c->x->has_request)
                et_exchange_fail(c->x, ET_ECONNRESET, ET_STAGE_CLIENT,
                                 "the client closed the connection before the response ended");
            if (c->mode == M_TUNNEL) {
                if (c->up)
                    leg_flush(c->up);
                if (c->up)
                    c->up->close_after_flush = 1;
            }
            conn_close(c);
            return;
        }
    }

    if (c->up != NULL && c->up->handle_open)
        leg_flush(c->up);
    leg_flush(&c->cl);
    if (c->cl.close_after_flush && c->cl.queued == 0) {
        if (c->cl.failed || c->mode == M_CLOSING || c->mode == M_TUNNEL) {
            conn_close(c);
            return;
        }
    }
    if (c->cl.failed && c->cl.queued == 0) {
        conn_close(c);
        return;
    }
    conn_update_io(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct leg *l = s->data;
    (void)buf;
    if (nread > 0) {
        struct chunk *c = l->tls ? l->cin : l->in;
        c->len += (uint32_t)nread;
    } else if (nread < 0) {
        if (nread == UV_ENOBUFS) {
            leg_read_stop(l);
        } else {
            l->eof = 1;
            if (nread != UV_EOF)
                l->failed = 1;
            leg_read_stop(l);
        }
    }
    /* Empty chunks go back to the pool: idle connections hold no buffer. */
    if (l->cin != NULL && l->cin->len == 0) {
        chunk_put(l->p, l->cin);
        l->cin = NULL;
    }
    if (l->in != NULL && l->in->len == 0) {
        chunk_put(l->p, l->in);
        l->in = NULL;
    }
    if (l->conn == NULL)
        return;
    if (nread > 0 && l->is_up && l->conn->x == NULL && l->conn->mode != M_TUNNEL &&
        l->conn->rs == RS_NONE && !l->ssl) {
        /* Unsolicited bytes on an idle upstream: drop that connection. */
        up_close(l->conn);
        return;
    }
    conn_advance(l->conn);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = container_of(t, struct conn, timer);
    uint64_t now = uv_now(&c->p->loop);
    c->timer_due = 0;
    if (now < c->deadline) {
        uv_timer_start(&c->timer, on_timer, c->deadline - now, 0);
        c->timer_due = c->deadline;
        return;
    }
    switch (c->tkind) {
    case ET_PROXY_T_IDLE:
        conn_close(c);
        return;
    case ET_PROXY_T_HEADER:
        if (c->mode == M_TLS_HS) {
            client_tls_failed(c, (unsigned long)-1);
            conn_close(c);
            return;
        }
        if (c->mode == M_CLOSING) {
            conn_close(c);
            return;
        }
        conn_fail(c, ET_ETIMEDOUT, ET_STAGE_REQUEST, 408,
                  "the request header section did not arrive in time");
        break;
    case ET_PROXY_T_CONNECT:
        conn_fail(c, ET_ETIMEDOUT, ET_STAGE_UPSTREAM_CONNECT, 504, "connecting to %s:%d timed out",
                  c->target_host ? c->target_host : "?", c->target_port);
        break;
    case ET_PROXY_T_LONGPOLL:
        if (c->mode == M_TUNNEL) {
            conn_close(c);
            return;
        }
        conn_fail(c, ET_ETIMEDOUT, ET_STAGE_RESPONSE, 504,
                  "no progress for the long-poll ceiling");
        break;
    }
    conn_advance(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct et_proxy *p = server->data;
    if (status < 0 || p->stopping)
        return;
    struct conn *c = et_calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->p = p;
    c->cl.p = p;
    c->cl.conn = c;
    if (uv_tcp_init(&p->loop, &c->cl.tcp) != 0) {
        et_free(c);
        return;
    }
    c->cl.tcp.data = &c->cl;
    c->cl.handle_open = 1;
    uv_timer_init(&p->loop, &c->timer);
    c->timer.data = c;
    c->handles = 2;
    c->next = p->conns;
    if (p->conns)
        p->conns->prev = c;
    p->conns = c;
    p->st.connections++;
    p->st.active++;
    if (uv_accept(server, (uv_stream_t *)&c->cl.tcp) != 0) {
        conn_close(c);
        return;
    }
    c->cl.connected = 1;
    c->t_accept = et_now_us();
    uv_tcp_nodelay(&c->cl.tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    uv_tcp_getpeername(&c->cl.tcp, (struct sockaddr *)&ss, &len);
    et__addr_format((const struct sockaddr *)&ss, c->client_addr, sizeof(c->client_addr));
    c->mode = M_HTTP;
    if (!client_allowed(p, (const struct sockaddr *)&ss)) {
        p->st.denied++;
        conn_fail(c, ET_EDENIED, ET_STAGE_CLIENT, 403,
                  "client %s is not on the proxy's subnets (--allow)", c->client_addr);
        leg_flush(&c->cl);
        conn_update_io(c);
        return;
    }
    conn_update_io(c);
}

/*
 * After a burst of handshakes (a reconnect storm), glibc keeps the freed TLS buffers in its
 * arenas; held connections then look far bigger than they are. Trimming every few seconds
 * while connections come and go returns those pages (malloc_trim also releases free pages in
 * the middle of the heap), which keeps RSS per held long poll near its real size.
 */
static void on_trim(uv_timer_t *t)
{
    struct et_proxy *p = t->data;
    if (getenv("ET_PROXY_DEBUG_MEM") != NULL) {
        struct mallinfo2 mi = mallinfo2();
        fprintf(stderr, "mem: active %llu in-use %zu KiB (%zu B/conn), heap %zu KiB\n",
                (unsigned long long)p->st.active, mi.uordblks / 1024,
                p->st.active ? mi.uordblks / (size_t)p->st.active : 0, mi.arena / 1024);
    }
    if (p->st.connections != p->trim_seen) {
        p->trim_seen = p->st.connections;
        malloc_trim(0);
    }
}

static void on_async(uv_async_t *a)
{
    struct et_proxy *p = a->data;
    p->stopping = 1;
    if (!p->handles_closed) {
        p->handles_closed = 1;
        uv_close((uv_handle_t *)&p->listener, NULL);
        uv_close((uv_handle_t *)&p->async, NULL);
        uv_close((uv_handle_t *)&p->trim, NULL);
    }
    while (p->conns != NULL)
        conn_close(p->conns);
}

/* ---------------------------------------------------------------- setup */

static int add_cidr(struct et__cidr **v, size_t *n, const struct et__cidr *c)
{
    struct et__cidr *nv = et_realloc(*v, (*n + 1) * sizeof(*nv));
    if (nv == NULL)
        return ET_ENOMEM;
    nv[(*n)++] = *c;
    *v = nv;
    return 0;
}

/* Prefix length of a netmask. */
static unsigned mask_bits(const struct sockaddr *m)
{
    const uint8_t *b;
    size_t n;
    if (m->sa_family == AF_INET) {
        b = (const uint8_t *)&((const struct sockaddr_in *)(const void *)m)->sin_addr;
        n = 4;
    } else {
        b = ((const struct sockaddr_in6 *)(const void *)m)->sin6_addr.s6_addr;
        n = 16;
    }
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++)
        for (int k = 7; k >= 0; k--)
            if (b[i] & (1u << k))
                bits++;
    return bits;
}

/* Our own addresses, and the subnets of the listening interface as allowed clients. */
static int load_interfaces(struct et_proxy *p, const struct sockaddr *listen_sa)
{
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0)
        return 0;
    int unspec = et__addr_is_special(listen_sa) &&
                 !(listen_sa->sa_family == AF_INET &&
                   ((const uint8_t *)&((const struct sockaddr_in *)(const void *)listen_sa)
                        ->sin_addr)[0] == 127);
    for (struct ifaddrs *i = ifa; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL ||
            (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
            continue;
        struct sockaddr_storage *no = et_realloc(p->own, (p->n_own + 1) * sizeof(*no));
        if (no == NULL)
            break;
        p->own = no;
        memset(&no[p->n_own], 0, sizeof(*no));
        memcpy(&no[p->n_own], i->ifa_addr,
               i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                 : sizeof(struct sockaddr_in6));
        p->n_own++;
        if (i->ifa_netmask == NULL)
            continue;
        if (unspec || et__addr_same_ip(i->ifa_addr, listen_sa)) {
            struct et__cidr c;
            memset(&c, 0, sizeof(c));
            c.family = i->ifa_addr->sa_family;
            if (c.family == AF_INET)
                memcpy(c.addr, &((const struct sockaddr_in *)(const void *)i->ifa_addr)->sin_addr, 4);
            else
                memcpy(c.addr,
                       ((const struct sockaddr_in6 *)(const void *)i->ifa_addr)->sin6_addr.s6_addr,
                       16);
            c.bits = mask_bits(i->ifa_netmask);
            add_cidr(&p->allow_clients, &p->n_allow_clients, &c);
        }
    }
    freeifaddrs(ifa);
    return 0;
}

static int tls_setup(struct et_proxy *p, struct et_error *e)
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

int et_proxy_new(const struct et_proxy_opts *o, struct et_proxy **out, struct et_error *e)
{
    struct et_proxy *p = et_calloc(1, sizeof(*p));
    int rc;
    if (p == NULL)
        return ET_ENOMEM;
    p->o = *o;
    if (p->o.listen_addr == NULL)
        p->o.listen_addr = "127.0.0.1";
    if (p->o.listen_port < 0)
        p->o.listen_port = 8888;
    if (p->o.body_cap == 0)
        p->o.body_cap = 1 << 20;
    if (p->o.idle_timeout_ms == 0)
        p->o.idle_timeout_ms = 120000;
    if (p->o.header_timeout_ms == 0)
        p->o.header_timeout_ms = 30000;
    if (p->o.connect_timeout_ms == 0)
        p->o.connect_timeout_ms = 30000;
    if (p->o.longpoll_timeout_ms < 3660000)
        p->o.longpoll_timeout_ms = 3660000;

    for (size_t i = 0; i < o->n_allow; i++) {
        struct et__cidr c;
        if (et__cidr_parse(o->allow[i], &c) != 0) {
            et_error_set(e, ET_EINVAL, "bad --allow CIDR '%s'", o->allow[i]);
            rc = ET_EINVAL;
            goto fail;
        }
        if ((rc = add_cidr(&p->allow_clients, &p->n_allow_clients, &c)) != 0)
            goto fail;
    }
    for (size_t i = 0; i < o->n_allow_target; i++) {
        struct et__cidr c;
        if (et__cidr_parse(o->allow_target[i], &c) == 0) {
            if ((rc = add_cidr(&p->allow_targets, &p->n_allow_targets, &c)) != 0)
                goto fail;
        } else if (!et__host_valid(o->allow_target[i])) {
            et_error_set(e, ET_EINVAL, "bad --allow-target '%s'", o->allow_target[i]);
            rc = ET_EINVAL;
            goto fail;
        }
    }

    rc = uv_loop_init(&p->loop);
    if (rc != 0) {
        et_error_set(e, ET_EIO, "uv_loop_init: %s", uv_strerror(rc));
        et_free(p);
        return ET_EIO;
    }
    uv_tcp_init(&p->loop, &p->listener);
    p->listener.data = p;
    uv_async_init(&p->loop, &p->async, on_async);
    p->async.data = p;
    uv_timer_init(&p->loop, &p->trim);
    p->trim.data = p;
    uv_timer_start(&p->trim, on_trim, 2000, 2000);
    uv_unref((uv_handle_t *)&p->trim);

    if ((rc = tls_setup(p, e)) != 0)
        goto fail_loop;

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(p->o.listen_addr, p->o.listen_port, (struct sockaddr_in *)(void *)&ss) != 0 &&
        uv_ip6_addr(p->o.listen_addr, p->o.listen_port, (struct sockaddr_in6 *)(void *)&ss) != 0) {
        et_error_set(e, ET_EINVAL, "bad listen address '%s'", p->o.listen_addr);
        rc = ET_EINVAL;
        goto fail_loop;
    }
    load_interfaces(p, (const struct sockaddr *)&ss);
    rc = uv_tcp_bind(&p->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&p->listener, 4096, on_connection);
    if (rc != 0) {
        et_error_set(e, ET_EIO, "cannot listen on %s:%d: %s", p->o.listen_addr,
                     p->o.listen_port, uv_strerror(rc));
        rc = ET_EIO;
        goto fail_loop;
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&p->listener, (struct sockaddr *)&bound, &blen);
    et__addr_format((const struct sockaddr *)&bound, p->listen_str, sizeof(p->listen_str));
    p->port = ntohs(bound.ss_family == AF_INET
                        ? ((struct sockaddr_in *)(void *)&bound)->sin_port
                        : ((struct sockaddr_in6 *)(void *)&bound)->sin6_port);
    *out = p;
    return 0;
fail_loop:
    et_proxy_free(p);
    return rc;
fail:
    et_free(p->allow_clients);
    et_free(p->allow_targets);
    et_free(p);
    return rc;
}

int et_proxy_port(const struct et_proxy *p)
{
    return p->port;
}

int et_proxy_run(struct et_proxy *p)
{
    p->running = 1;
    int rc = uv_run(&p->loop, UV_RUN_DEFAULT);
    p->running = 0;
    return rc < 0 ? ET_EIO : 0;
}

void et_proxy_stop(struct et_proxy *p)
{
    uv_async_send(&p->async);
}

void et_proxy_get_stats(const struct et_proxy *p, struct et_proxy_stats *out)
{
    *out = p->st;
}

void et_proxy_free(struct et_proxy *p)
{
    if (p == NULL)
        return;
    if (!p->handles_closed)
        on_async(&p->async);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    uv_loop_close(&p->loop);
    while (p->free_chunks != NULL) {
        struct chunk *c = p->free_chunks;
        p->free_chunks = c->next;
        et_free(c);
    }
    while (p->free_wreqs != NULL) {
        struct wreq *w = p->free_wreqs;
        p->free_wreqs = w->next_free;
        et_free(w);
    }
    SSL_CTX_free(p->sctx);
    SSL_CTX_free(p->cctx);
    SSL_CTX_free(p->cctx_insecure);
    BIO_meth_free(p->biometh);
    for (size_t i = 0; i < p->n_pinned; i++)
        et_free(p->pinned[i]);
    et_free(p->pinned);
    et_free(p->allow_clients);
    et_free(p->allow_targets);
    et_free(p->own);
    et_free(p);
}
