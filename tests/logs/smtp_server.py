#!/usr/bin/env python3
"""A real SMTP server on 127.0.0.1 for the mail tests (Python's stdlib smtpd, asyncore).

usage: smtp_server.py DIR
  Listens on 127.0.0.1, a free port, and writes the port to DIR/port once it accepts.
  Each accepted message is written to DIR/msg-N.eml (the DATA as received, dot-stuffing
  undone by the server) with DIR/msg-N.env holding "from ADDR" and one "rcpt ADDR" per line.
  Recipients whose local part starts with "refuse" get "550 5.1.1 ... User unknown".
  AUTH PLAIN and AUTH LOGIN are offered; the one account is alice / "s3cret pw".
  Every command line the server reads is appended to DIR/commands.log (AUTH data redacted).
  Stops on SIGTERM, or by itself after 120 s.
"""
import base64
import os
import signal
import sys
import warnings

warnings.simplefilter("ignore", DeprecationWarning)
import asyncore  # noqa: E402
import smtpd  # noqa: E402

out = sys.argv[1]
USER, PASSWORD = "alice", "s3cret pw"


class Channel(smtpd.SMTPChannel):
    auth_step = None

    def push(self, msg):
        if msg == "250 HELP":
            super().push("250-AUTH PLAIN LOGIN")
        super().push(msg)

    def found_terminator(self):
        if self.smtp_state == self.COMMAND:
            line = self._emptystring.join(self.received_lines)
            with open(os.path.join(out, "commands.log"), "a") as f:
                shown = line if not (self.auth_step or line.upper().startswith("AUTH")) \
                    else "AUTH (redacted)"
                f.write(shown + "\n")
            if self.auth_step is not None:
                self.received_lines = []
                self.auth_line(line)
                return
        super().found_terminator()

    def auth_line(self, line):
        try:
            value = base64.b64decode(line).decode()
        except Exception:
            self.auth_step = None
            self.push("501 5.5.2 cannot decode")
            return
        if self.auth_step == "user":
            self.auth_user = value
            self.auth_step = "pass"
            self.push("334 UGFzc3dvcmQ6")
        else:
            self.auth_step = None
            self.check(self.auth_user, value)

    def check(self, user, password):
        if user == USER and password == PASSWORD:
            self.authenticated = True
            self.push("235 2.7.0 Authentication successful")
        else:
            self.push("535 5.7.8 Authentication credentials invalid")

    def smtp_AUTH(self, arg):
        parts = (arg or "").split()
        if parts and parts[0].upper() == "PLAIN" and len(parts) == 2:
            try:
                _, user, password = base64.b64decode(parts[1]).decode().split("\0")
            except Exception:
                self.push("501 5.5.2 bad PLAIN data")
                return
            self.check(user, password)
        elif parts and parts[0].upper() == "LOGIN":
            self.auth_step = "user"
            self.push("334 VXNlcm5hbWU6")
        else:
            self.push("504 5.5.4 mechanism not supported")

    def smtp_RCPT(self, arg):
        addr = self._getaddr(self._strip_command_keyword("TO:", arg or ""))[0] if arg else None
        if addr and addr.split("@")[0].startswith("refuse"):
            self.push("550 5.1.1 <%s>: Recipient address rejected: User unknown" % addr)
            return
        super().smtp_RCPT(arg)


class Server(smtpd.SMTPServer):
    channel_class = Channel
    n = 0

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        Server.n += 1
        base = os.path.join(out, "msg-%d" % Server.n)
        with open(base + ".eml", "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        with open(base + ".env", "w") as f:
            f.write("from %s\n" % mailfrom)
            for r in rcpttos:
                f.write("rcpt %s\n" % r)
        return None


server = Server(("127.0.0.1", 0), None, decode_data=True)
with open(os.path.join(out, "port.tmp"), "w") as f:
    f.write("%d\n" % server.socket.getsockname()[1])
os.rename(os.path.join(out, "port.tmp"), os.path.join(out, "port"))
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
signal.alarm(120)
asyncore.loop(timeout=0.2)
