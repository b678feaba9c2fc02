"""A webhook receiver on loopback: a real HTTP server in a thread that records every envelope posted to
it, and can answer 503 ("down") or hold each request unanswered ("held") until told otherwise."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.tools import free_port


class Receiver:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.envelopes: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.refusals = 0
        self.down = False
        # While set, each request waits (unanswered) until `release` is set; `held` counts them.
        self.holding = False
        self.held = 0
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.holding:
                    with receiver._lock:
                        receiver.held += 1
                    receiver.release.wait()
                with receiver._lock:
                    if receiver.down:
                        receiver.refusals += 1
                        status = 503
                    else:
                        receiver.envelopes.append(json.loads(body))
                        receiver.headers.append(dict(self.headers.items()))
                        status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [event for envelope in self.envelopes for event in envelope["events"]]

    def wait_for(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """Poll (with a deadline, not a fixed sleep) until `done(events)` holds; the events then."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events()
            if done(events):
                return events
            time.sleep(0.05)
        raise AssertionError(f"webhook receiver: condition not met in {timeout}s; got {self.events()}")


def endpoint_env(*receivers: Receiver, **options: Any) -> dict[str, str]:
    """The server environment sending every event to each receiver (named r0, r1, ...)."""
    endpoints = [
        {"name": f"r{i}", "url": receiver.url, "timeout": "2s", "backoff": "50ms", **options}
        for i, receiver in enumerate(receivers)
    ]
    return {"REGISTRY_NOTIFICATIONS_ENDPOINTS": json.dumps(endpoints)}
