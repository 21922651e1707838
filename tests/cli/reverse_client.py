#!/usr/bin/env python3
"""A client for tests/cli/test_reverse_proxy.sh that sends exact bytes: optionally from a
given source address, optionally a PROXY protocol header (raw, before TLS, as a load balancer
sends it), then a request file, over TLS or plain; prints what came back (the response head and
body, or nothing when the connection was closed).

usage: reverse_client.py PORT REQFILE|- [--tls CAFILE] [--src ADDR] [--pp HEX] [--pause S]
  --pp HEX    bytes sent first (hex), e.g. a v2 header; --pp-text TEXT for a v1 line (\\r\\n
              written as the two characters is turned into CRLF)
  --pause S   wait S seconds after the PROXY bytes (a slow or silent load balancer)
"""
import socket
import ssl
import sys
import time

port, reqfile = int(sys.argv[1]), sys.argv[2]
args = sys.argv[3:]
opt = {}
while args:
    k = args.pop(0)
    opt[k] = args.pop(0)
pp = b""
if "--pp" in opt:
    pp = bytes.fromhex(opt["--pp"])
if "--pp-text" in opt:
    pp = opt["--pp-text"].replace("\\r\\n", "\r\n").encode()
s = socket.socket(socket.AF_INET)
if "--src" in opt:
    s.bind((opt["--src"], 0))
s.settimeout(10)
s.connect(("127.0.0.1", port))
out = b""
try:
    if pp:
        s.sendall(pp)
    if "--pause" in opt:
        time.sleep(float(opt["--pause"]))
    if "--tls" in opt:
        ctx = ssl.create_default_context(cafile=opt["--tls"])
        s = ctx.wrap_socket(s, server_hostname="localhost")
    if reqfile != "-":  # "-": nothing after the PROXY bytes (a stalled balancer)
        with open(reqfile, "rb") as f:
            s.sendall(f.read())
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
        # One response: its head and Content-Length body.
        if b"\r\n\r\n" in out:
            head, _, body = out.partition(b"\r\n\r\n")
            cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            if cl and len(body) >= int(cl[0].split(b":", 1)[1]):
                break
except (OSError, ssl.SSLError):
    pass
sys.stdout.buffer.write(out)
