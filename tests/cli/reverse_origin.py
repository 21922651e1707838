#!/usr/bin/env python3
"""A recording origin for tests/cli/test_reverse_proxy.sh: an HTTPS (or HTTP) server on
127.0.0.1 that writes the exact bytes of every request it receives to DIR/N.req (N from 1,
in arrival order), then answers 200 with a small body naming N. "X-Test-Delay: S" holds the
answer S seconds (a long poll). Keep-alive; Content-Length bodies only (EAS clients send them).

usage: reverse_origin.py PORTFILE DIR [CERT KEY]   (no CERT: plain HTTP)
"""
import os
import socket
import ssl
import sys
import threading
import time

portfile, outdir = sys.argv[1], sys.argv[2]
ctx = None
if len(sys.argv) > 4:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
lock = threading.Lock()
count = [0]


def read_request(f):
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = f.readline(65536)
        if not line:
            return None
        head += line
    n = 0
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":", 1)[1].strip())
    body = f.read(n) if n else b""
    return head, body


def serve(conn):
    try:
        if ctx is not None:
            conn = ctx.wrap_socket(conn, server_side=True)
        f = conn.makefile("rb")
        while True:
            r = read_request(f)
            if r is None:
                return
            head, body = r
            with lock:
                count[0] += 1
                n = count[0]
            with open(os.path.join(outdir, "%d.req" % n), "wb") as o:
                o.write(head + body)
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"x-test-delay:"):
                    time.sleep(float(line.split(b":", 1)[1]))
            msg = b"origin request %d\n" % n
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                         b"MS-Server-ActiveSync: 14.3\r\n\r\n%s" % (len(msg), msg))
    except (OSError, ssl.SSLError, ValueError):
        pass
    finally:
        conn.close()


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(64)
with open(portfile + ".tmp", "w") as pf:
    pf.write(str(s.getsockname()[1]))
os.rename(portfile + ".tmp", portfile)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
