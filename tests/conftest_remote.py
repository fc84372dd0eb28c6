"""A loopback HTTP server for remote-store tests (import the ``http_store`` fixture).

Python's ``http.server`` ignores ``Range`` headers, which fsspec and zarr's sharding codec use
for partial reads, so the handler here answers byte ranges itself.  Every requested path is
logged (to check which chunks a computation touched), and paths under ``/status500/`` or
``/status404/`` answer with that status.
"""

from __future__ import annotations

import functools
import http.server
import io
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["HttpStore", "http_store"]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class _Handler(http.server.SimpleHTTPRequestHandler):
    log: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_head(self) -> Any:
        self.log.append(self.path)
        for status in (404, 500):
            if self.path.startswith(f"/status{status}/"):
                self.send_error(status)
                return None
        rng = self.headers.get("Range")
        path = self.translate_path(self.path)
        if rng is None or os.path.isdir(path):
            return super().send_head()
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        return self._send_range(path, rng)

    def _send_range(self, path: str, rng: str) -> io.BytesIO | None:
        size = os.path.getsize(path)
        m = _RANGE.fullmatch(rng.strip())
        if m is None:
            self.send_error(416)
            return None
        a, b = m.groups()
        start, end = (max(0, size - int(b)), size - 1) if a == "" else (int(a), size - 1)
        if a != "" and b != "":
            end = min(int(b), size - 1)
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(max(0, end - start + 1))
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        return io.BytesIO(data)


@dataclass
class HttpStore:
    """A running server: ``url`` serves ``root``; ``log`` lists the requested paths."""

    root: Path
    url: str
    log: list[str] = field(default_factory=list)

    def chunk_requests(self) -> list[str]:
        """Requested paths that are not zarr metadata or directory listings."""
        meta = ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata")
        return [p for p in self.log if not p.endswith(meta) and not p.endswith("/")]


@pytest.fixture
def http_store(tmp_path: Path) -> Iterator[HttpStore]:
    """Serve ``tmp_path / 'www'`` on 127.0.0.1 (a free port) for the test's duration."""
    root = tmp_path / "www"
    root.mkdir()
    log: list[str] = []
    handler = type("Handler", (_Handler,), {"log": log})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield HttpStore(root, f"http://127.0.0.1:{server.server_port}", log)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
