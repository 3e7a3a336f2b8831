"""A small HTTP proxy in front of the service that misbehaves on purpose: it can forward a
request and then drop the answer (the client sees the connection close), or answer an
error status without forwarding. It records every request it saw."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


@dataclass
class Seen:
    """One request the proxy received, and what the service answered (when forwarded)."""

    method: str
    path: str
    body: bytes
    upstream_status: int | None = None
    upstream_body: bytes = b""


@dataclass
class Proxy:
    """The proxy's script and record. ``faults`` are consumed in order by requests whose
    method and path prefix match: ``"drop"`` forwards then closes without answering; an
    ``int`` answers that status without forwarding; ``"pass"`` forwards as usual."""

    upstream: str
    url: str = ""
    faults: list[tuple[str, str, str | int]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fault_for(self, method: str, path: str) -> str | int | None:
        with self.lock:
            for i, (m, prefix, fault) in enumerate(self.faults):
                if m == method and path.startswith(prefix):
                    del self.faults[i]
                    return fault
        return None


@contextmanager
def running(upstream: str) -> Iterator[Proxy]:
    """A proxy to ``upstream`` on a free port, stopped on exit."""
    proxy = Proxy(upstream)
    http = httpx.Client(base_url=upstream, timeout=60)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, body)
            with proxy.lock:
                proxy.seen.append(seen)
            fault = proxy.fault_for(self.command, self.path)
            if isinstance(fault, int):
                payload = (
                    b'{"type":"/problems/unavailable","title":"Unavailable","status":%d,"detail":"proxy"}'
                    % fault
                )
                self.send_response(fault)
                self.send_header("Content-Type", "application/problem+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in ("host", "content-length", "connection")
            }
            r = http.request(self.command, self.path, content=body, headers=headers)
            seen.upstream_status, seen.upstream_body = r.status_code, r.content
            if fault == "drop":
                self.close_connection = True
                return
            self.send_response(r.status_code)
            for k, v in r.headers.items():
                if k.lower() not in (
                    "content-length",
                    "transfer-encoding",
                    "connection",
                    "content-encoding",
                ):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(r.content)))
            self.end_headers()
            self.wfile.write(r.content)

        do_GET = do_POST = handle_any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        http.close()
