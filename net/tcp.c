/* Blocking TCP helpers (see net.h). */
#include "eastrace/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

void et_net_set_timeout(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int et_net_connect(const char *host, int port, int timeout_ms, const char *what, char *peer,
                   size_t peerlen, struct et_error *e)
{
    struct addrinfo hints, *res = NULL;
    char ps[16], tried[INET6_ADDRSTRLEN + 16] = "", suffix[sizeof(tried) + 32] = "";
    const char *pre = what != NULL ? what : "", *colon = what != NULL ? ": " : "";
    int gai, last = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(ps, sizeof(ps), "%d", port);
    gai = getaddrinfo(host, ps, &hints, &res);
    if (gai != 0) {
        et_error_set(e, ET_EDNS, "%s%scannot resolve %s: %s", pre, colon, host,
                     gai_strerror(gai));
        return ET_EDNS;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        et_sockaddr_format(ai->ai_addr, tried, sizeof(tried));
        if (peer != NULL)
            snprintf(peer, peerlen, "%s", tried);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int soerr = 0, pr;
            socklen_t sl = sizeof(soerr);
            if (errno != EINPROGRESS) {
                last = errno;
                close(fd);
                continue;
            }
            do
                pr = poll(&p, 1, timeout_ms);
            while (pr < 0 && errno == EINTR);
            if (pr == 0) {
                last = ETIMEDOUT;
                close(fd);
                continue;
            }
            if (pr < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
                last = soerr ? soerr : errno;
                close(fd);
                continue;
            }
        }
        (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        et_net_set_timeout(fd, timeout_ms);
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        freeaddrinfo(res);
        return fd;
    }
    freeaddrinfo(res);
    if (peer != NULL && tried[0] != '\0')
        snprintf(suffix, sizeof(suffix), " (last address tried %s)", tried);
    if (last == ECONNREFUSED) {
        et_error_set(e, ET_ECONNREFUSED,
                     "%s%scannot connect to %s port %d: connection refused (is the server "
                     "running there?)%s", pre, colon, host, port, suffix);
        return ET_ECONNREFUSED;
    }
    if (last == ETIMEDOUT) {
        et_error_set(e, ET_ETIMEDOUT, "%s%scannot connect to %s port %d: timed out after %d ms%s",
                     pre, colon, host, port, timeout_ms, suffix);
        return ET_ETIMEDOUT;
    }
    et_error_set(e, ET_EIO, "%s%scannot connect to %s port %d: %s%s", pre, colon, host, port,
                 strerror(last ? last : EIO), suffix);
    return ET_EIO;
}

int et_net_write_all(int fd, const void *p, size_t n, const char *what, struct et_error *e)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int timed = errno == EAGAIN || errno == EWOULDBLOCK;
            int reset = errno == EPIPE || errno == ECONNRESET;
            et_error_set(e, timed ? ET_ETIMEDOUT : reset ? ET_ECONNRESET : ET_EIO,
                         "%s: write failed: %s", what, timed ? "timed out" : strerror(errno));
            return e->code;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

long et_net_read(int fd, void *p, size_t n, const char *what, struct et_error *e)
{
    for (;;) {
        ssize_t r = recv(fd, p, n, 0);
        if (r >= 0)
            return (long)r;
        if (errno == EINTR)
            continue;
        int timed = errno == EAGAIN || errno == EWOULDBLOCK;
        et_error_set(e, timed ? ET_ETIMEDOUT : ET_EIO, "%s: read failed: %s", what,
                     timed ? "timed out waiting for an answer" : strerror(errno));
        return e->code;
    }
}
