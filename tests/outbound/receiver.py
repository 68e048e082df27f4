#!/usr/bin/env python3
"""A webhook receiver for firehook's outbound tests.

Every message is verified with the `standardwebhooks` library against each configured
secret. Prints `PORT <n>` once listening on 127.0.0.1, then serves until killed.

  POST /<any path>?fail=N&delay_ms=M&status=S
      a message: answers 401 if no secret verifies it, 500 to its first N attempts (per
      webhook-id), else S (default 200), after M milliseconds.
  PUT /secrets   {"secrets": ["whsec_...", ...]}   the secrets to verify with
  GET /log       {"messages": [...], "maxConcurrentPerId": n, "maxConcurrent": n}
"""

import json
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from standardwebhooks import Webhook

lock = threading.Lock()
secrets = []
messages = []
attempts = defaultdict(int)
in_flight = defaultdict(int)
max_concurrent = 0
total_in_flight = 0
max_total = 0


def verifies(secret, body, headers):
    try:
        Webhook(secret).verify(body, headers)
        return True
    except Exception:
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        return self.rfile.read(int(self.headers.get("content-length", 0)))

    def do_PUT(self):
        global secrets
        with lock:
            secrets = json.loads(self.body())["secrets"]
        self.reply(200, {"ok": True})

    def do_GET(self):
        with lock:
            self.reply(200, {
                "messages": messages,
                "maxConcurrentPerId": max_concurrent,
                "maxConcurrent": max_total,
            })

    def do_POST(self):
        global max_concurrent, total_in_flight, max_total
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        raw = self.body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        webhook_id = headers.get("webhook-id", "")
        with lock:
            current = list(secrets)
            attempts[webhook_id] += 1
            attempt = attempts[webhook_id]
            in_flight[webhook_id] += 1
            max_concurrent = max(max_concurrent, in_flight[webhook_id])
            total_in_flight += 1
            max_total = max(max_total, total_in_flight)
        try:
            time.sleep(int(query.get("delay_ms", 0)) / 1000)
            verified = [verifies(s, raw, headers) for s in current]
            if not any(verified):
                status = 401
            elif attempt <= int(query.get("fail", 0)):
                status = 500
            else:
                status = int(query.get("status", 200))
            try:
                message = json.loads(raw)
            except ValueError:
                message = {}
            with lock:
                messages.append({
                    "path": url.path,
                    "webhookId": webhook_id,
                    "attempt": attempt,
                    "status": status,
                    "verified": verified,
                    "id": message.get("id"),
                    "type": message.get("type"),
                    "data": message.get("data"),
                })
            self.reply(status, {"attempt": attempt})
        finally:
            with lock:
                in_flight[webhook_id] -= 1
                total_in_flight -= 1


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A gateway killed mid-request resets its connections; that is the test, not a fault.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def main():
    server = Server(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
