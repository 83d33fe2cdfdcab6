#!/usr/bin/env python3
"""The "cart" app of the sidecar mTLS example: plaintext HTTP/1.1 on 127.0.0.1:8081 (or the
address given as the first argument). GET or POST /cart... answers with what the app learns
of its caller: the method, the path and the x-forwarded-client-cert header its inbound
sidecar set. Anything else is 404."""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Cart(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cart-app"

    def answer(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.startswith("/cart"):
            status = 200
            body = (
                f"cart app: {self.command} {self.path}\n"
                f"x-forwarded-client-cert: {self.headers.get('x-forwarded-client-cert', '(none)')}\n"
            )
        else:
            status, body = 404, "not found\n"
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = answer

    def log_message(self, fmt, *args):
        sys.stderr.write("cart app: " + fmt % args + "\n")


if __name__ == "__main__":
    host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8081").rpartition(":")
    ThreadingHTTPServer((host or "127.0.0.1", int(port)), Cart).serve_forever()
