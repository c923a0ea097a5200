#!/usr/bin/env python3
"""A stand-in OTLP/HTTP collector for measuring what trace export costs (docs/performance.md,
"What observability costs"): answers 200 to every POST (/v1/traces), discards the spans, and
prints every 5 s how many requests and bytes it took. Listens on 127.0.0.1:PORT (default 4318).

    python3 scripts/otlp-sink.py &
    RUST_LOG=info OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 target/release/sagactl bench ...
"""
import http.server
import sys
import threading
import time

counts = {"requests": 0, "bytes": 0}
lock = threading.Lock()


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        size = int(self.headers.get("content-length", 0))
        self.rfile.read(size)
        with lock:
            counts["requests"] += 1
            counts["bytes"] += size
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def report():
    while True:
        time.sleep(5)
        with lock:
            print(f"requests {counts['requests']} bytes {counts['bytes']}", flush=True)


port = int(sys.argv[1]) if len(sys.argv) > 1 else 4318
threading.Thread(target=report, daemon=True).start()
http.server.ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()
