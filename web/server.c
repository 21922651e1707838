/*
 * The web server: HTTP/1.1 on libuv with llhttp, on its own thread and loop, serving the page
 * (embedded assets) and the JSON API over one store.
 *
 * Every request passes the same gate, in this order (docs/web.md, "Security"):
 *
 *   method GET only                           else 405
 *   Host = this listener (an IP literal or localhost, with our port)   else 421 (DNS rebinding)
 *   Origin, when sent, = http://<an allowed Host>; Sec-Fetch-Site not cross-site   else 403
 *   token: ?token= or the et_token_PORT cookie (set HttpOnly, SameSite=Strict on the first
 *          load; named for the port, as cookies are not, so two servers do not clash)
 *          none: 401, wrong: 403
 *   route: /  /app.js  /app.css  /api/...
 *
 * No CORS header is ever sent; every response carries a strict Content-Security-Policy,
 * nosniff, frame-ancestors 'none', no-referrer and no-store.
 *
 * A connection: read -> llhttp (pauses after each message) -> handle -> write; /api/wait holds
 * the request until the store changes (or 25 s pass) and reads nothing more meanwhile.
 */
#include "web_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <uv.h>

#include "llhttp.h"

#define MAX_REQUEST ((size_t)16 * 1024)   /* request line + headers */
#define MAX_HELD_INPUT ((size_t)64 * 1024)     /* unparsed bytes held */
#define IDLE_MS 60000
#define WAIT_MS 25000

static const char CSP[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct et_web_server *srv;
    llhttp_t p;
    struct et_buf in;
    struct et_buf url, field, value;
    char *host, *origin, *cookie, *fetch_site;
    size_t req_bytes;
    int in_value;
    int waiting;           /* /api/wait held */
    uint64_t wait_version;
    int closing;
    int shutting;          /* a close after the last write is under way */
    int keep_alive;
    int handles;           /* open handles; freed when 0 */
    struct conn *next, **pprev;
    char rbuf[16384];
};

struct et_web_server {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t wake, stop;
    uv_thread_t th;
    struct et_web_store *store;
    char token[65];
    char cookie[32]; /* et_token_PORT */
    char url[160];
    char addr[64];  /* listen address as text */
    int port;
    int loopback, wildcard;
    unsigned max_conns, nconns;
    struct conn *conns;
};

static llhttp_settings_t settings;

/* ---- responses ------------------------------------------------------------------------- */

static void on_write(uv_write_t *w, int status)
{
    (void)status;
    et_free(w->data);
    et_free(w);
}

static void conn_close(struct conn *c);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    (void)status;
    et_free(req);
    conn_close(c);
}

/* Closes once everything written has gone out (uv_close would cancel queued writes). */
static void conn_close_after_write(struct conn *c)
{
    uv_shutdown_t *req;
    if (c->closing || c->shutting)
        return;
    c->shutting = 1;
    c->waiting = 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
    req = et_malloc(sizeof(*req));
    if (req == NULL) {
        conn_close(c);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        et_free(req);
        conn_close(c);
    }
}

static void send_raw(struct conn *c, struct et_buf *b)
{
    uv_write_t *w = et_malloc(sizeof(*w));
    uv_buf_t ub;
    size_t len;
    uint8_t *data = et_buf_detach(b, &len);
    if (w == NULL || data == NULL) {
        et_free(w);
        et_free(data);
        conn_close(c);
        return;
    }
    w->data = data;
    ub = uv_buf_init((char *)data, (unsigned)len);
    if (uv_write(w, (uv_stream_t *)&c->tcp, &ub, 1, on_write) != 0) {
        et_free(data);
        et_free(w);
        conn_close(c);
    }
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 303: return "See Other";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 421: return "Misdirected Request";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

/* Sends one response; extra is more header lines ("Name: value\r\n"...) or NULL. */
static void respond(struct conn *c, int status, const char *type, const void *body, size_t len,
                    const char *extra)
{
    struct et_buf b;
    et_buf_init(&b, 0);
    et_buf_printf(&b,
                  "HTTP/1.1 %d %s\r\n"
                  "Content-Type: %s\r\n"
                  "Content-Length: %zu\r\n"
                  "Cache-Control: no-store\r\n"
                  "X-Content-Type-Options: nosniff\r\n"
                  "X-Frame-Options: DENY\r\n"
                  "Referrer-Policy: no-referrer\r\n"
                  "Cross-Origin-Opener-Policy: same-origin\r\n"
                  "Cross-Origin-Resource-Policy: same-origin\r\n"
                  "Content-Security-Policy: %s\r\n"
                  "%s"
                  "Connection: %s\r\n\r\n",
                  status, reason(status), type, len, CSP, extra ? extra : "",
                  c->keep_alive ? "keep-alive" : "close");
    et_buf_append(&b, body, len);
    send_raw(c, &b);
    if (!c->keep_alive)
        conn_close_after_write(c);
}

static void respond_text(struct conn *c, int status, const char *text)
{
    respond(c, status, "text/plain; charset=utf-8", text, strlen(text), NULL);
}

/* ---- the gate -------------------------------------------------------------------------- */

/* Host header value acceptable for this listener: our port, and an IP literal we listen on
 * (any IP literal for a wildcard listener) or "localhost" on a loopback one. A DNS name other
 * than localhost is refused: that is what a DNS-rebinding page sends. */
static int host_ok(const struct et_web_server *srv, const char *host)
{
    char name[80];
    const char *colon;
    size_t hl;
    unsigned char bin[16];

    if (host == NULL)
        return 0;
    if (host[0] == '[') {
        const char *rb = strchr(host, ']');
        if (rb == NULL || rb[1] != ':')
            return 0;
        hl = (size_t)(rb - host - 1);
        if (hl >= sizeof(name))
            return 0;
        memcpy(name, host + 1, hl);
        colon = rb + 1;
    } else {
        colon = strrchr(host, ':');
        if (colon == NULL)
            return 0;
        hl = (size_t)(colon - host);
        if (hl >= sizeof(name))
            return 0;
        memcpy(name, host, hl);
    }
    name[hl] = '\0';
    {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end != '\0' || port != srv->port)
            return 0;
    }
    if (et_strcaseeq(name, "localhost"))
        return srv->loopback;
    if (srv->wildcard)
        return inet_pton(AF_INET, name, bin) == 1 || inet_pton(AF_INET6, name, bin) == 1;
    return strcmp(name, srv->addr) == 0;
}

static int origin_ok(const struct et_web_server *srv, const char *origin)
{
    if (origin == NULL)
        return 1;
    if (strncmp(origin, "http://", 7) != 0)
        return 0;
    return host_ok(srv, origin + 7);
}

static int token_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* The value of cookie name in a Cookie header, copied into out (empty when absent). */
static void cookie_value(const char *cookies, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    out[0] = '\0';
    for (const char *p = cookies; p != NULL && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t vl = strcspn(p + nl + 1, ";");
            if (vl < outlen) {
                memcpy(out, p + nl + 1, vl);
                out[vl] = '\0';
            }
            return;
        }
        p = strchr(p, ';');
    }
}

/* ---- requests -------------------------------------------------------------------------- */

static void send_summary(struct conn *c)
{
    struct et_buf b;
    int status;
    et_buf_init(&b, 0);
    et_web_store_api(c->srv->store, "/api/summary", &b, &status);
    respond(c, status, "application/json", b.data, b.len, NULL);
    et_buf_free(&b);
}

static void conn_feed(struct conn *c);

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->waiting) {
        c->waiting = 0;
        send_summary(c);
        if (!c->closing) {
            uv_timer_start(&c->timer, on_timer, IDLE_MS, 0);
            conn_feed(c);
        }
    } else {
        conn_close(c);
    }
}

static void serve_asset(struct conn *c, const char *name)
{
    const struct et__web_asset *a = et__web_asset(name);
    if (a == NULL)
        respond_text(c, 404, "not found\n");
    else
        respond(c, 200, a->type, a->data, a->len, NULL);
}

static void handle(struct conn *c)
{
    struct et_web_server *srv = c->srv;
    const char *url = c->url.data ? (const char *)c->url.data : "/";
    const char *q = strchr(url, '?');
    size_t plen = q ? (size_t)(q - url) : strlen(url);
    char *qtok = q ? et__web_query_param(q + 1, "token") : NULL;
    char ctok[80];

    c->keep_alive = llhttp_should_keep_alive(&c->p);
    if (c->p.method != HTTP_GET) {
        respond(c, 405, "text/plain; charset=utf-8", "only GET\n", 9, "Allow: GET\r\n");
        goto out;
    }
    if (!host_ok(srv, c->host)) {
        c->keep_alive = 0;
        respond_text(c, 421, "refused: the Host header is not this server's address "
                             "(DNS rebinding protection)\n");
        goto out;
    }
    if (!origin_ok(srv, c->origin) ||
        (c->fetch_site != NULL && strcmp(c->fetch_site, "cross-site") == 0)) {
        respond_text(c, 403, "refused: cross-origin request\n");
        goto out;
    }
    cookie_value(c->cookie, srv->cookie, ctok, sizeof(ctok));
    if (qtok == NULL && ctok[0] == '\0') {
        respond_text(c, 401, "eastrace web: open the URL eastrace printed (it carries the "
                             "access token)\n");
        goto out;
    }
    if (!(qtok != NULL && token_eq(qtok, srv->token)) &&
        !(ctok[0] != '\0' && token_eq(ctok, srv->token))) {
        respond_text(c, 403, "eastrace web: wrong access token\n");
        goto out;
    }
    if (plen == 1 && url[0] == '/') {
        if (qtok != NULL) {
            /* The token becomes a cookie and leaves the address bar (and any history). */
            char extra[200];
            snprintf(extra, sizeof(extra),
                     "Location: /\r\nSet-Cookie: %s=%s; Path=/; HttpOnly; "
                     "SameSite=Strict\r\n",
                     srv->cookie, srv->token);
            respond(c, 303, "text/plain; charset=utf-8", "", 0, extra);
        } else {
            serve_asset(c, "index.html");
        }
    } else if (plen == 7 && memcmp(url, "/app.js", 7) == 0) {
        serve_asset(c, "app.js");
    } else if (plen == 8 && memcmp(url, "/app.css", 8) == 0) {
        serve_asset(c, "app.css");
    } else if (plen == 9 && memcmp(url, "/api/wait", 9) == 0) {
        char *v = q ? et__web_query_param(q + 1, "v") : NULL;
        uint64_t have = v ? strtoull(v, NULL, 10) : 0;
        uint64_t now;
        et_free(v);
        pthread_mutex_lock(&srv->store->mu);
        now = srv->store->version;
        pthread_mutex_unlock(&srv->store->mu);
        if (now != have) {
            send_summary(c);
        } else {
            c->waiting = 1;
            c->wait_version = have;
            uv_timer_start(&c->timer, on_timer, WAIT_MS, 0);
        }
    } else if (plen > 5 && memcmp(url, "/api/", 5) == 0) {
        struct et_buf b;
        int status;
        et_buf_init(&b, 0);
        if (et_web_store_api(srv->store, url, &b, &status) != 0) {
            respond_text(c, 500, "out of memory\n");
        } else {
            respond(c, status, "application/json", b.data, b.len, NULL);
        }
        et_buf_free(&b);
    } else {
        respond_text(c, 404, "not found\n");
    }
out:
    et_free(qtok);
}

/* ---- llhttp callbacks ------------------------------------------------------------------ */

static struct conn *conn_of(llhttp_t *p)
{
    return p->data;
}

static int count(struct conn *c, size_t n)
{
    c->req_bytes += n;
    return c->req_bytes > MAX_REQUEST ? -1 : 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct conn *c = conn_of(p);
    et_buf_reset(&c->url);
    et_buf_reset(&c->field);
    et_buf_reset(&c->value);
    et_free(c->host);
    et_free(c->origin);
    et_free(c->cookie);
    et_free(c->fetch_site);
    c->host = c->origin = c->cookie = c->fetch_site = NULL;
    c->req_bytes = 0;
    c->in_value = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = conn_of(p);
    if (count(c, n) != 0 || et_buf_append(&c->url, at, n) != 0)
        return HPE_USER;
    return 0;
}

static void commit_header(struct conn *c)
{
    const char *name = c->field.data ? (const char *)c->field.data : "";
    char **slot = NULL;
    if (et_strcaseeq(name, "Host"))
        slot = &c->host;
    else if (et_strcaseeq(name, "Origin"))
        slot = &c->origin;
    else if (et_strcaseeq(name, "Cookie"))
        slot = &c->cookie;
    else if (et_strcaseeq(name, "Sec-Fetch-Site"))
        slot = &c->fetch_site;
    if (slot != NULL && *slot == NULL)
        *slot = et_strdup(c->value.data ? (const char *)c->value.data : "");
    et_buf_reset(&c->field);
    et_buf_reset(&c->value);
    c->in_value = 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = conn_of(p);
    if (c->in_value)
        commit_header(c);
    if (count(c, n) != 0 || et_buf_append(&c->field, at, n) != 0)
        return HPE_USER;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = conn_of(p);
    c->in_value = 1;
    if (count(c, n) != 0 || et_buf_append(&c->value, at, n) != 0)
        return HPE_USER;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct conn *c = conn_of(p);
    if (c->in_value || c->field.len)
        commit_header(c);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    (void)p;
    return HPE_PAUSED; /* handled by conn_feed, one request at a time */
}

/* ---- connections ----------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles > 0)
        return;
    et_buf_free(&c->in);
    et_buf_free(&c->url);
    et_buf_free(&c->field);
    et_buf_free(&c->value);
    et_free(c->host);
    et_free(c->origin);
    et_free(c->cookie);
    et_free(c->fetch_site);
    et_free(c);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->waiting = 0;
    if (c->pprev != NULL) {
        *c->pprev = c->next;
        if (c->next != NULL)
            c->next->pprev = c->pprev;
        c->srv->nconns--;
    }
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void conn_feed(struct conn *c)
{
    while (c->in.len > 0 && !c->waiting && !c->closing && !c->shutting) {
        enum llhttp_errno err = llhttp_execute(&c->p, (const char *)c->in.data, c->in.len);
        if (err == HPE_OK) {
            et_buf_reset(&c->in);
        } else if (err == HPE_PAUSED) {
            size_t used = (size_t)(llhttp_get_error_pos(&c->p) - (const char *)c->in.data);
            et_buf_consume(&c->in, used);
            llhttp_resume(&c->p);
            handle(c);
        } else {
            c->keep_alive = 0;
            if (err == HPE_USER)
                respond_text(c, 431, "request too large\n");
            else
                respond_text(c, 400, "bad request\n");
            return;
        }
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)hint;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->in.len + (size_t)nread > MAX_HELD_INPUT || et_buf_append(&c->in, buf->base, (size_t)nread)) {
        conn_close(c);
        return;
    }
    if (!c->waiting)
        uv_timer_start(&c->timer, on_timer, IDLE_MS, 0);
    conn_feed(c);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct et_web_server *srv = l->data;
    struct conn *c;
    if (status != 0)
        return;
    c = et_calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->srv = srv;
    uv_tcp_init(&srv->loop, &c->tcp);
    uv_timer_init(&srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    et_buf_init(&c->in, 0);
    et_buf_init(&c->url, 0);
    et_buf_init(&c->field, 0);
    et_buf_init(&c->value, 0);
    llhttp_init(&c->p, HTTP_REQUEST, &settings);
    c->p.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 || srv->nconns >= srv->max_conns) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        return;
    }
    c->next = srv->conns;
    if (c->next != NULL)
        c->next->pprev = &c->next;
    c->pprev = &srv->conns;
    srv->conns = c;
    srv->nconns++;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->timer, on_timer, IDLE_MS, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* The store changed: answer every held /api/wait. */
static void on_wake(uv_async_t *a)
{
    struct et_web_server *srv = a->data;
    uint64_t now;
    pthread_mutex_lock(&srv->store->mu);
    now = srv->store->version;
    pthread_mutex_unlock(&srv->store->mu);
    for (struct conn *c = srv->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->waiting && c->wait_version != now) {
            c->waiting = 0;
            send_summary(c);
            if (!c->closing) {
                uv_timer_start(&c->timer, on_timer, IDLE_MS, 0);
                conn_feed(c);
            }
        }
    }
}

static void store_notify(void *arg)
{
    uv_async_send(arg);
}

static void on_stop(uv_async_t *a)
{
    struct et_web_server *srv = a->data;
    while (srv->conns != NULL)
        conn_close(srv->conns);
    uv_close((uv_handle_t *)&srv->listener, NULL);
    uv_close((uv_handle_t *)&srv->wake, NULL);
    uv_close((uv_handle_t *)&srv->stop, NULL);
}

static void run(void *arg)
{
    struct et_web_server *srv = arg;
    uv_run(&srv->loop, UV_RUN_DEFAULT);
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, char *addr,
                        size_t addrlen, int *port)
{
    const char *colon;
    char host[64];
    char *end;
    long p;
    size_t hl;

    if (listen[0] == '[') {
        const char *rb = strchr(listen, ']');
        if (rb == NULL || rb[1] != ':')
            return ET_EINVAL;
        hl = (size_t)(rb - listen - 1);
        if (hl >= sizeof(host))
            return ET_EINVAL;
        memcpy(host, listen + 1, hl);
        colon = rb + 1;
    } else {
        colon = strrchr(listen, ':');
        if (colon == NULL)
            return ET_EINVAL;
        hl = (size_t)(colon - listen);
        if (hl >= sizeof(host))
            return ET_EINVAL;
        memcpy(host, listen, hl);
    }
    host[hl] = '\0';
    p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || colon[1] == '\0' || p < 0 || p > 65535)
        return ET_EINVAL;
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(host, (int)p, (struct sockaddr_in *)ss) != 0 &&
        uv_ip6_addr(host, (int)p, (struct sockaddr_in6 *)ss) != 0)
        return ET_EINVAL;
    snprintf(addr, addrlen, "%s", host);
    *port = (int)p;
    return 0;
}

int et_web_server_start(struct et_web_store *s, const struct et_web_server_opts *o,
                        struct et_web_server **out, struct et_error *e)
{
    struct et_web_server *srv;
    struct sockaddr_storage ss;
    int namelen = sizeof(ss), rc;
    const char *listen = o && o->listen ? o->listen : "127.0.0.1:0";

    *out = NULL;
    srv = et_calloc(1, sizeof(*srv));
    if (srv == NULL)
        return ET_ENOMEM;
    if (parse_listen(listen, &ss, srv->addr, sizeof(srv->addr), &srv->port) != 0) {
        et_error_set(e, ET_EINVAL, "bad listen address '%s': use ADDR:PORT", listen);
        et_free(srv);
        return ET_EINVAL;
    }
    if (ss.ss_family == AF_INET) {
        uint32_t a = ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr);
        srv->loopback = (a >> 24) == 127;
        srv->wildcard = a == 0;
    } else {
        struct in6_addr *a6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        srv->loopback = IN6_IS_ADDR_LOOPBACK(a6);
        srv->wildcard = IN6_IS_ADDR_UNSPECIFIED(a6);
    }
    if (o && o->token) {
        snprintf(srv->token, sizeof(srv->token), "%s", o->token);
    } else {
        unsigned char r[16];
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
            et_error_set(e, ET_EIO, "no random bytes for the access token: %s", strerror(errno));
            et_free(srv);
            return ET_EIO;
        }
        for (size_t i = 0; i < sizeof(r); i++)
            snprintf(srv->token + 2 * i, 3, "%02x", r[i]);
    }
    srv->max_conns = o && o->max_conns ? o->max_conns : 64;
    srv->store = s;
    llhttp_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_message_complete = on_message_complete;

    uv_loop_init(&srv->loop);
    uv_tcp_init(&srv->loop, &srv->listener);
    srv->listener.data = srv;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 64, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &namelen);
    if (rc != 0) {
        et_error_set(e, ET_EIO, "cannot listen on %s: %s", listen, uv_strerror(rc));
        uv_close((uv_handle_t *)&srv->listener, NULL);
        uv_run(&srv->loop, UV_RUN_DEFAULT);
        uv_loop_close(&srv->loop);
        et_free(srv);
        return ET_EIO;
    }
    srv->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                              : ((struct sockaddr_in6 *)&ss)->sin6_port);
    snprintf(srv->url, sizeof(srv->url), "http://%s%s%s:%d/?token=%s",
             ss.ss_family == AF_INET6 ? "[" : "", srv->wildcard ? "127.0.0.1" : srv->addr,
             ss.ss_family == AF_INET6 ? "]" : "", srv->port, srv->token);
    snprintf(srv->cookie, sizeof(srv->cookie), "et_token_%d", srv->port);
    uv_async_init(&srv->loop, &srv->wake, on_wake);
    uv_async_init(&srv->loop, &srv->stop, on_stop);
    srv->wake.data = srv->stop.data = srv;
    pthread_mutex_lock(&s->mu);
    s->notify = store_notify;
    s->notify_arg = &srv->wake;
    pthread_mutex_unlock(&s->mu);
    if (uv_thread_create(&srv->th, run, srv) != 0) {
        et_error_set(e, ET_EIO, "cannot start the web server's thread");
        pthread_mutex_lock(&s->mu);
        s->notify = NULL;
        pthread_mutex_unlock(&s->mu);
        uv_close((uv_handle_t *)&srv->listener, NULL);
        uv_close((uv_handle_t *)&srv->wake, NULL);
        uv_close((uv_handle_t *)&srv->stop, NULL);
        uv_run(&srv->loop, UV_RUN_DEFAULT);
        uv_loop_close(&srv->loop);
        et_free(srv);
        return ET_EIO;
    }
    *out = srv;
    return 0;
}

const char *et_web_server_url(const struct et_web_server *srv)
{
    return srv->url;
}

int et_web_server_loopback(const struct et_web_server *srv)
{
    return srv->loopback;
}

void et_web_server_stop(struct et_web_server *srv)
{
    if (srv == NULL)
        return;
    pthread_mutex_lock(&srv->store->mu);
    srv->store->notify = NULL;
    pthread_mutex_unlock(&srv->store->mu);
    uv_async_send(&srv->stop);
    uv_thread_join(&srv->th);
    uv_loop_close(&srv->loop);
    et_free(srv);
}
