#!/usr/bin/env python3
"""Makes the hostile inputs of the security battery at run time (nothing big is committed).

  gen.py wbxml-strtbl OUT [TABLE_BYTES] [REFS]   string-table bomb: 03 01 6A, a string table,
                                                 REFS x STR_T 0 (83 00), END (01)
  gen.py wbxml-nested OUT [DEPTH] [FAN]          nested OPAQUE WBXML: FAN opaques per level,
                                                 DEPTH levels, a 4 MB string-table bomb at
                                                 the bottom (FAN^DEPTH x 4 MB of text)
  gen.py http-resp OUT CODING BODYFILE|-zeros:MIB   a raw HTTP response whose body is BODYFILE
                                                 (or MIB MiB of zeros) under Content-Encoding
                                                 CODING (gzip, deflate, identity)
  gen.py multipart OUT PARTS PART_MIB            a multipart WBXML response (MS-ASCMD 2.2.2.9)
                                                 with PARTS parts of PART_MIB MiB of zeros,
                                                 gzip-encoded as a whole
  gen.py saz OUT NAME=FILE...                    a zip with those entries (deflated)
  gen.py saz-bomb OUT N MIB [lie]                a .saz of N sessions whose response entries
                                                 inflate to MIB MiB each (about 300:1); "lie":
                                                 the zip headers claim 1000 bytes
  gen.py saz-many OUT N                          a .saz declaring N tiny entries
  gen.py har OUT REQFILE RESPFILE                a HAR 1.2 with one entry from two raw HTTP
                                                 messages (response body base64)
"""
import base64, gzip, io, json, struct, sys, zipfile, zlib

def mb_u_int32(v):
    out = [v & 0x7F]
    v >>= 7
    while v:
        out.append(0x80 | (v & 0x7F))
        v >>= 7
    return bytes(reversed(out))

def strtbl_bomb(table=524288, refs=200000):
    return (b"\x03\x01\x6a" + mb_u_int32(table) + b"A" * (table - 1) + b"\0" + b"\x45" +
            b"\x83\x00" * refs + b"\x01")

def deflate_stream(wbits, chunks):
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    out = [c.compress(ch) for ch in chunks]
    out.append(c.flush())
    return b"".join(out)

def sparse_chunk(seed=1):
    """1 MiB that deflates about 300:1 (a random byte every 2 KiB), so archives built from it
    pass a plain compression-ratio check the way real bombs do."""
    import random
    r = random.Random(seed)
    b = bytearray(1 << 20)
    for i in range(0, len(b), 2048):
        b[i + r.randrange(2048)] = r.randrange(1, 256)
    return bytes(b)

def zeros(mib):
    z = b"\0" * (1 << 20)
    return (z for _ in range(mib))

def encode(coding, chunks):
    if coding == "gzip":
        return deflate_stream(31, chunks)
    if coding == "deflate":
        return deflate_stream(15, chunks)
    return b"".join(chunks)

def http_resp(body, coding, ctype="application/vnd.ms-sync.wbxml", extra=b""):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype.encode() + b"\r\n"
    if coding != "identity":
        head += b"Content-Encoding: " + coding.encode() + b"\r\n"
    return head + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body

REQ = (b"POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=u&DeviceId=BOMB&DeviceType=t HTTP/1.1\r\n"
       b"Host: mail.example.com\r\nMS-ASProtocolVersion: 14.1\r\n"
       b"Content-Type: application/vnd.ms-sync.wbxml\r\nContent-Length: 0\r\n\r\n")

def meta(n):
    return ('<?xml version="1.0" encoding="utf-8"?>\r\n<Session SID="%d" BitFlags="0">'
            '<SessionTimers ClientConnected="2024-05-01T12:00:00.0000000+00:00" '
            'ClientBeginRequest="2024-05-01T12:00:0%d.0000000+00:00" '
            'ClientDoneResponse="2024-05-01T12:00:0%d.5000000+00:00"/>'
            '<SessionFlags><SessionFlag N="x-clientip" V="127.0.0.1"/></SessionFlags></Session>'
            % (n, n % 10, n % 10)).encode()

def main(a):
    cmd, out = a[0], a[1]
    if cmd == "wbxml-strtbl":
        data = strtbl_bomb(*[int(x) for x in a[2:4]])
    elif cmd == "wbxml-nested":
        depth = int(a[2]) if len(a) > 2 else 2
        fan = int(a[3]) if len(a) > 3 else 10
        data = strtbl_bomb(4096, 1000)  # 4 MB of text from 6 KB
        for _ in range(depth):
            # <Sync> holding FAN x <Data>OPAQUE</Data> on page 0 (AirSync: Sync 0x05,
            # Data 0x0F), each OPAQUE the level below: FAN^depth x 4 MB of text
            one = b"\x4f\xc3" + mb_u_int32(len(data)) + data + b"\x01"
            data = b"\x03\x01\x6a\x00\x45" + one * fan + b"\x01"
    elif cmd == "http-resp":
        coding, src = a[2], a[3]
        chunks = zeros(int(src[7:])) if src.startswith("-zeros:") else [open(src, "rb").read()]
        data = http_resp(encode(coding, chunks), coding)
    elif cmd == "multipart":
        parts, mib = int(a[2]), int(a[3])
        hdr = struct.pack("<i", parts) + b"".join(
            struct.pack("<ii", 4 + 8 * parts + i * (mib << 20), mib << 20) for i in range(parts))
        chunks = [hdr] + [b"\0" * (1 << 20) for _ in range(parts * mib)]
        data = http_resp(encode("gzip", chunks), "gzip", extra=b"MS-ASAcceptMultiPart: T\r\n")
        data = data.replace(b"application/vnd.ms-sync.wbxml", b"application/vnd.ms-sync.multipart")
    elif cmd == "saz":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for spec in a[2:]:
                name, path = spec.split("=", 1)
                z.writestr(name, open(path, "rb").read())
        data = buf.getvalue()
    elif cmd == "saz-bomb":
        n, mib = int(a[2]), int(a[3])
        lie = len(a) > 4 and a[4] == "lie"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for i in range(1, n + 1):
                z.writestr("raw/%02d_c.txt" % i, REQ)
                z.writestr("raw/%02d_m.xml" % i, meta(i))
                with z.open("raw/%02d_s.txt" % i, "w", force_zip64=not lie) as f:
                    f.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            b"Content-Length: %d\r\n\r\n" % (mib << 20))
                    ch = sparse_chunk(i)
                    for _ in range(mib):
                        f.write(ch)
        data = buf.getvalue()
        if lie:
            # Sizes that lie: every header says the response entries hold 1000 bytes.
            b = bytearray(data)
            for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
                i = b.find(sig)
                while i >= 0:
                    if struct.unpack_from("<I", b, i + off)[0] > (1 << 20):
                        struct.pack_into("<I", b, i + off, 1000)
                    i = b.find(sig, i + 4)
            data = bytes(b)
    elif cmd == "saz-many":
        n = int(a[2])
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for i in range(n):
                z.writestr("x/%d" % i, b"")
        data = buf.getvalue()
    elif cmd == "har":
        req, resp = open(a[2], "rb").read(), open(a[3], "rb").read()
        def split(msg):
            head, _, body = msg.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            hdrs = [dict(name=l.split(":", 1)[0], value=l.split(":", 1)[1].strip())
                    for l in lines[1:]]
            return lines[0], hdrs, body
        rl, rh, rb = split(req)
        sl, sh, sb = split(resp)
        method, url, _ = rl.split(" ", 2)
        if url.startswith("/"):
            url = "https://mail.example.com" + url
        ctype = next((h["value"] for h in sh if h["name"].lower() == "content-type"), "")
        entry = {
            "startedDateTime": "2024-05-01T12:00:00.000Z", "time": 50,
            "request": {"method": method, "url": url, "httpVersion": "HTTP/1.1", "headers": rh,
                        "queryString": [], "cookies": [], "headersSize": -1,
                        "bodySize": len(rb),
                        **({"postData": {"mimeType": "application/vnd.ms-sync.wbxml",
                                         "text": base64.b64encode(rb).decode(),
                                         "encoding": "base64"}} if rb else {})},
            "response": {"status": int(sl.split(" ")[1]), "statusText": "OK",
                         "httpVersion": "HTTP/1.1", "headers": sh, "cookies": [],
                         "content": {"size": len(sb), "mimeType": ctype,
                                     "text": base64.b64encode(sb).decode(), "encoding": "base64"},
                         "redirectURL": "", "headersSize": -1, "bodySize": len(sb)},
            "cache": {}, "timings": {"send": 0, "wait": 50, "receive": 0}}
        data = json.dumps({"log": {"version": "1.2", "creator": {"name": "gen.py", "version": "1"},
                                   "entries": [entry]}}).encode()
    else:
        sys.exit("gen.py: unknown command " + cmd)
    with open(out, "wb") as f:
        f.write(data)

main(sys.argv[1:])
