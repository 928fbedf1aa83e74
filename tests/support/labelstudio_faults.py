"""A fault-injecting HTTP proxy for Label Studio (127.0.0.1, ephemeral port).

It forwards every request unchanged to a real server, except those a `Fault` matches: they get a wrong-shaped
answer (a transform of the real one, or a fixed body), an error status, a late answer, or an answer lost after
the real server acted on the request (`forward=True`). Without an upstream, unmatched requests get HTTP 502.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "server"}


@dataclass
class Fault:
    """What to do to matching requests: `after` matching ones pass first, then `times` of them get the fault."""

    method: str
    path: str  # a regular expression the whole path (without query) must match
    status: int = 200
    body: Any = None  # JSON to send, or a function of the real answer's JSON returning what to send
    raw: bytes | None = None  # bytes to send as they are (not JSON)
    forward: bool = False  # let the real server act on the request first, then answer with the fault
    delay: float = 0.0  # seconds to wait before answering
    after: int = 0
    times: int = 1
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if method != self.method or not re.fullmatch(self.path, path):
            return False
        self.seen += 1
        if self.seen <= self.after or self.fired >= self.times:
            return False
        self.fired += 1
        return True


class FaultProxy:
    """The proxy; `faults` may be changed while it runs, `log` lists (method, path?query, status) answered."""

    def __init__(self, upstream: str | None = None) -> None:
        self.upstream = upstream.rstrip("/") if upstream else None
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, *faults: Fault) -> FaultProxy:
        with self._lock:
            self.faults.extend(faults)
        return self

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _match(self, method: str, path: str) -> Fault | None:
        with self._lock:
            return next((f for f in self.faults if f.matches(method, path)), None)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                fault = proxy._match(self.command, path)
                upstream: requests.Response | None = None
                if proxy.upstream and (fault is None or fault.forward or callable(fault.body)):
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS | {"host"}}
                    upstream = requests.request(
                        self.command, proxy.upstream + self.path, headers=headers, data=body, timeout=120
                    )
                if fault is not None and fault.delay:
                    time.sleep(fault.delay)
                if fault is None and upstream is None:
                    status, content, headers = 502, b'{"detail": "no upstream and no fault for this request"}', {}
                elif fault is None:
                    assert upstream is not None
                    status, content, headers = upstream.status_code, upstream.content, dict(upstream.headers)
                elif fault.raw is not None:
                    status, content, headers = fault.status, fault.raw, {"Content-Type": "application/json"}
                else:
                    answer = fault.body(upstream.json()) if callable(fault.body) and upstream else fault.body
                    date = (
                        {"Date": upstream.headers["date"]}
                        if upstream is not None and "date" in upstream.headers
                        else {}
                    )
                    status, content = fault.status, json.dumps(answer).encode()
                    headers = {"Content-Type": "application/json", **date}
                # logged before the answer goes out: a client that has its answer may read the log at once
                proxy.log.append((self.command, self.path, status))
                self._send(status, content, headers)

            def _send(self, status: int, content: bytes, headers: dict[str, str]) -> None:
                self.send_response_only(status)
                for key, value in headers.items():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                if not any(k.lower() == "date" for k in headers):
                    self.send_header("Date", self.date_time_string())
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        return Handler
