/*
 * The listener and the public API (eastrace/proxy.h): options and defaults, the listening
 * socket, accepting a client (policy check, then the connection starts in ET__M_HTTP),
 * stopping from any thread, and the timer that gives freed heap back after connection churn.
 * Per-connection work lives in conn.c; docs/proxy.md has the map of the files.
 */
#include "proxy_int.h"

#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void on_connection(uv_stream_t *server, int status)
{
    struct et_proxy *p = server->data;
    if (status < 0 || p->stopping)
        return;
    struct et__conn *c = et_calloc(1, sizeof(*c));
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
        et__conn_close(c);
        return;
    }
    c->cl.connected = 1;
    c->t_accept = et_now_us();
    uv_tcp_nodelay(&c->cl.tcp, 1);
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    int len = sizeof(c->peer);
    uv_tcp_getpeername(&c->cl.tcp, (struct sockaddr *)&c->peer, &len);
    et_sockaddr_format(sa, c->client_addr, sizeof(c->client_addr));
    /* c->mode is ET__M_HTTP (calloc): the first state of the diagram. Nothing received. */
    c->quiet = 1;
    char ip[64];
    et__ip_format(sa, ip, sizeof(ip));
    if (p->o.reverse_host != NULL) {
        if (et__rev_accept(c) != 0) /* reverse.c: its own admission and first mode */
            return;
    } else if (!et__client_allowed(p, sa)) {
        /* Not admitted: a 403 and a count, no record (a scan must not fill the disk). */
        static const char body[] = "eastrace proxy: this client is not admitted (--allow)\n";
        p->st.denied++;
        p->st.refused++;
        et__note_refused(p, sa, "refused client %s: not admitted (--allow %s to admit it)", ip,
                         ip);
        et__send_simple(c, 403, "text/plain", body, sizeof(body) - 1, 1);
        et__conn_set_mode(c, ET__M_CLOSING);
        et__leg_flush(&c->cl);
        et__conn_update_io(c);
        return;
    }
    if (!et__caps_admit(p, c)) {
        p->st.refused++;
        et__note_refused(p, sa,
                         "refused a connection from %s: %llu connections open (cap %zu), none "
                         "idle", ip, (unsigned long long)p->st.active - 1, p->max_conns);
        et__conn_close(c);
        return;
    }
    et__conn_update_io(c);
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

/* Staged writes leave after the poll phase (what reads produced) and before it (what timers
 * and write callbacks produced), so a poll never waits with bytes staged. */
static void on_check(uv_check_t *h)
{
    et__conn_flush_all(h->data);
}

static void on_prepare(uv_prepare_t *h)
{
    et__conn_flush_all(h->data);
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
        uv_close((uv_handle_t *)&p->flusher, NULL);
        uv_close((uv_handle_t *)&p->flusher_pre, NULL);
        et__worker_close(p);
    }
    while (p->conns != NULL)
        et__conn_close(p->conns);
}

/* ---------------------------------------------------------------- setup */

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
        p->o.header_timeout_ms = 10000;
    if (p->o.pin_ms == 0)
        p->o.pin_ms = 600000;
    p->max_conns = p->o.max_conns;
    if (p->max_conns == 0) {
        /* Two descriptors per connection (client and upstream) and some to spare. */
        struct rlimit rl;
        p->max_conns = 100000;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
            p->max_conns = rl.rlim_cur > 96 ? (size_t)(rl.rlim_cur - 64) / 2 : 16;
    }
    if (p->o.connect_timeout_ms == 0)
        p->o.connect_timeout_ms = 30000;
    if (p->o.longpoll_timeout_ms < 3660000)
        p->o.longpoll_timeout_ms = 3660000;

    if ((rc = et__policy_init(p, o, e)) != 0)
        goto fail;
    /* Exchanges with 100 KB bodies come and go thousands of times a second. With glibc's
     * dynamic thresholds each free at the top of the heap gave the pages back (brk) and the
     * next exchange faulted them in again: page clearing and TLB shootdowns were ~10% of the
     * proxy's CPU at 100 KB. Fixed thresholds keep them; on_trim still gives memory back
     * every 2 s after connection churn (the held-connection figure depends on it). */
    mallopt(M_TRIM_THRESHOLD, 32 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);

    rc = uv_loop_init(&p->loop);
    if (rc != 0) {
        et_error_set(e, ET_EIO, "uv_loop_init: %s", uv_strerror(rc));
        et__policy_free(p);
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
    uv_check_init(&p->loop, &p->flusher);
    p->flusher.data = p;
    uv_check_start(&p->flusher, on_check);
    uv_unref((uv_handle_t *)&p->flusher);
    uv_prepare_init(&p->loop, &p->flusher_pre);
    p->flusher_pre.data = p;
    uv_prepare_start(&p->flusher_pre, on_prepare);
    uv_unref((uv_handle_t *)&p->flusher_pre);

    if ((rc = et__tls_setup(p, e)) != 0)
        goto fail_loop;
    if ((rc = et__rev_init(p, e)) != 0)
        goto fail_loop;
    if ((rc = et__worker_start(p)) != 0) {
        et_error_set(e, rc, "cannot start the worker thread");
        goto fail_loop;
    }

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(p->o.listen_addr, p->o.listen_port, (struct sockaddr_in *)(void *)&ss) != 0 &&
        uv_ip6_addr(p->o.listen_addr, p->o.listen_port, (struct sockaddr_in6 *)(void *)&ss) != 0) {
        et_error_set(e, ET_EINVAL, "bad listen address '%s'", p->o.listen_addr);
        rc = ET_EINVAL;
        goto fail_loop;
    }
    et__policy_load_interfaces(p);
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
    et_sockaddr_format((const struct sockaddr *)&bound, p->listen_str, sizeof(p->listen_str));
    p->port = ntohs(bound.ss_family == AF_INET
                        ? ((struct sockaddr_in *)(void *)&bound)->sin_port
                        : ((struct sockaddr_in6 *)(void *)&bound)->sin6_port);
    *out = p;
    return 0;
fail_loop:
    et_proxy_free(p);
    return rc;
fail:
    et__policy_free(p);
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
    et__worker_stop(p); /* every exchange has reached on_exchange_worker */
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
    et__worker_free(p);
    uv_loop_close(&p->loop);
    while (p->free_chunks != NULL) {
        struct et__chunk *c = p->free_chunks;
        p->free_chunks = c->next;
        et_free(c);
    }
    while (p->free_wreqs != NULL) {
        struct et__wreq *w = p->free_wreqs;
        p->free_wreqs = w->next_free;
        et_free(w);
    }
    et__tls_free(p);
    et__rev_free(p);
    et__policy_free(p);
    et_free(p);
}
