"""A real HTTP server for tests: 127.0.0.1, ephemeral port, bounded in requests and time.

Subclasses (openai_fake.py, serper_fake.py) implement `respond(method, path, headers, body)`
returning (status, headers_dict, body_bytes), or raise Hang to keep the client waiting.
The server refuses work past `max_requests` (503) and shuts itself down after `max_seconds`,
so a buggy client loop can never run forever.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hang(Exception):
    """Raised by respond() to hold the connection open without answering."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes; with Nagle on, the body waits for a delayed ACK
    # (~40 ms a request). Real servers set TCP_NODELAY; so do we.
    disable_nagle_algorithm = True

    def log_message(self, *args):  # keep test output clean
        pass

    def _serve(self):
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with fake.lock:
            fake.request_count += 1
            over = fake.request_count > fake.max_requests
            fake.requests.append({"method": self.command, "path": self.path,
                                  "headers": dict(self.headers), "body": body, "t": time.monotonic()})
        if over:
            status, headers, out = 503, {}, b'{"error": {"message": "test server request budget spent"}}'
        else:
            try:
                status, headers, out = fake.respond(self.command, self.path, dict(self.headers), body)
            except Hang:
                fake.stopped.wait(fake.max_seconds)
                return
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", **headers}.items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        try:
            self.wfile.write(out)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = _serve


class _Server(ThreadingHTTPServer):
    # the stdlib listens with a backlog of 5: a burst of 10+ new connections would see dropped
    # SYNs and 1 s retransmits, a delay no real provider has
    request_queue_size = 256
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that hung up (a run stopped early, a timeout) is normal here, not a traceback."""
        import sys
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class FakeServer:
    """Start with `with Sub(...) as srv:`; `srv.url` is the base URL."""

    def __init__(self, max_requests=10_000, max_seconds=120):
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.lock = threading.Lock()
        self.request_count = 0
        self.requests = []
        self.stopped = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def respond(self, method, path, headers, body):
        raise NotImplementedError

    @staticmethod
    def json_body(obj, status=200, headers=None):
        return status, headers or {}, json.dumps(obj).encode()

    def start(self):
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self._timer = threading.Timer(self.max_seconds, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self):
        if not self.stopped.is_set():
            self.stopped.set()
            self._timer.cancel()
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
