"""Fixtures shared by the tests: a real shell with voxmagic loaded, and a real HTTP file server
(the offline API server and isolation come from ``voxmagic.testing.pytest_plugin``)."""
from __future__ import annotations

import http.server
import threading
from dataclasses import dataclass, field

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

SECRET = "sk-or-v1-SECRET-do-not-print"


@pytest.fixture
def shell(server, monkeypatch, tmp_path):
    """A real InteractiveShell with voxmagic loaded fresh, pointed at the local server, working
    in an empty folder, with a key that must never be printed."""
    monkeypatch.setenv("OPENROUTER_API_KEY", SECRET)
    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    if "voxmagic" in ip.extension_manager.loaded:
        ip.run_line_magic("unload_ext", "voxmagic")
    ip.config.pop("VoxtralMagics", None)
    ip.run_line_magic("load_ext", "voxmagic")
    ip.run_line_magic("config", f"VoxtralMagics.base_url = {server.base_url!r}")
    before = set(ip.user_ns)
    yield ip
    for name in set(ip.user_ns) - before:
        ip.user_ns.pop(name, None)


def run(ip, cell):
    """Run a cell as a user would; returns (stdout, stderr)."""
    with capture_output() as cap:
        ip.run_cell(cell)
    return cap.stdout, cap.stderr


@dataclass
class FileServer:
    """A real HTTP server on 127.0.0.1 serving ``root``; ``/drip`` sends 1 KB every 0.1 s (100 MB
    announced) and counts its open connections, which drop as soon as the client's socket closes."""

    root: object
    url: str
    open_drips: int = 0
    drips_started: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)
    stop: threading.Event = field(default_factory=threading.Event)

    def __iter__(self):  # root, url = file_server
        return iter((self.root, self.url))

    def wait_for(self, predicate, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), timeout)

    def drip(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "audio/mpeg")
        handler.send_header("Content-Length", str(100_000_000))
        handler.end_headers()
        with self.changed:
            self.open_drips += 1
            self.drips_started += 1
            self.changed.notify_all()
        try:
            while not self.stop.wait(0.1):
                handler.wfile.write(b"\xff" * 1024)  # fails once the client has closed its socket
        except OSError:
            pass
        finally:
            with self.changed:
                self.open_drips -= 1
                self.changed.notify_all()


@pytest.fixture
def file_server(tmp_path):
    server = FileServer(tmp_path, "")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def do_GET(self):
            return server.drip(self) if self.path.startswith("/drip") else super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.stop.set()
    httpd.shutdown()
    httpd.server_close()
