/*
 * Blocking TCP for the command-line clients (the ClickHouse engine, the SMTP client, the
 * probe): resolve, connect with a deadline, and read/write with per-call timeouts. One error
 * convention: a negative ET_E* code with e saying what failed, where. Never used on an event
 * loop.
 */
#ifndef ET_NET_NET_H
#define ET_NET_NET_H

#include <stddef.h>

#include "eastrace/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Connects to host:port (every address getaddrinfo gives, in order), waiting at most
 * timeout_ms per address; the socket then has SO_RCVTIMEO/SO_SNDTIMEO of timeout_ms and
 * TCP_NODELAY. what names the peer in messages ("ClickHouse"; NULL: no prefix). peer, when
 * not NULL, receives the address connected to, or the last one tried ("192.0.2.1:443",
 * "[2001:db8::1]:443"), and failures name it. Returns the descriptor, or ET_EDNS (resolution
 * failed) / ET_ECONNREFUSED / ET_ETIMEDOUT / ET_EIO with e saying which host and port.
 */
int et_net_connect(const char *host, int port, int timeout_ms, const char *what, char *peer,
                   size_t peerlen, struct et_error *e);
/* Sets the socket's SO_RCVTIMEO and SO_SNDTIMEO to ms (a request with its own timeout). */
void et_net_set_timeout(int fd, int ms);
/* Writes all n bytes. Returns 0, ET_ETIMEDOUT or ET_ECONNRESET / ET_EIO (e set). */
int et_net_write_all(int fd, const void *p, size_t n, const char *what, struct et_error *e);
/* One read into p (at most n). Returns the count (0: the peer closed), or ET_ETIMEDOUT /
 * ET_EIO (e set). */
long et_net_read(int fd, void *p, size_t n, const char *what, struct et_error *e);

#ifdef __cplusplus
}
#endif
#endif
