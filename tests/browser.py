"""Playing exported glb files in a real viewer: three.js (tools/threejs, pinned from npm) in
Debian's headless Chromium. `play_glb` serves the page and the file on a local port, waits for the
page to post what it measured, and returns it (see tools/threejs/play.html)."""

from __future__ import annotations

import base64
import http.server
import json
import shutil
import subprocess
import threading
from functools import partial
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
THREE = ROOT / "tools" / "threejs"
TIMEOUT_S = 120


def missing() -> str | None:
    """Why a browser check cannot run here, or None."""
    if not shutil.which("chromium"):
        return "Debian's chromium is not installed (apt-get install chromium)"
    if not (THREE / "node_modules" / "three" / "build" / "three.module.js").is_file():
        return "three.js is not installed (make viewer: npm ci in tools/threejs)"
    return None


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, files: dict, results: list, done: threading.Event, **kwargs):
        self.files, self.results, self.done = files, results, done
        super().__init__(*args, directory=str(THREE), **kwargs)

    def translate_path(self, path):
        name = path.split("?", 1)[0].lstrip("/")
        if name in self.files:
            return str(self.files[name])
        if name.startswith("three/"):
            return str(THREE / "node_modules" / name)
        return super().translate_path(path)

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.results.append(json.loads(body))
        self.send_response(204)
        self.end_headers()
        self.done.set()

    def log_message(self, *args):
        pass


def play_glb(path: Path, head: str | None = None, screenshot: Path | None = None) -> dict:
    """What three.js sees when it plays the `adamesh` animation of `path` (head: the head node's
    name); the face at its widest mouth saved to `screenshot` (PNG) when given."""
    results, done = [], threading.Event()
    files = {"avatar.glb": Path(path).resolve()}
    handler = partial(_Handler, files=files, results=results, done=done)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/play.html?file=avatar.glb" + (
        f"&head={quote(head)}" if head else ""
    )
    browser = subprocess.Popen(
        ["chromium", "--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--user-data-dir=" + str(Path(path).resolve().parent / ".chromium"), url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        if not done.wait(TIMEOUT_S):
            raise TimeoutError(f"three.js reported nothing on {path} within {TIMEOUT_S} s")
    finally:
        browser.kill()
        browser.wait()
        server.shutdown()
        server.server_close()
    result = results[0]
    if "error" in result:
        raise RuntimeError(f"three.js failed on {path}: {result['error']}")
    png = result.pop("png")
    if screenshot is not None:
        screenshot.write_bytes(base64.b64decode(png.split(",", 1)[1]))
    return result
