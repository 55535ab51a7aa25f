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
    """What three.js sees when it plays the first clip of `path`, adamesh's `speech` (head: the head node's
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


class Page:
    """A page in headless Chromium driven over the DevTools protocol (its WebSocket), for pages that
    must be clicked and watched rather than just loaded: `with Page(url, folder) as page: ...`."""

    def __init__(self, url: str, folder: Path):
        self.url, self.folder, self.next_id = url, Path(folder), 0

    def __enter__(self):
        import time
        import urllib.request

        from websockets.sync.client import connect

        profile = self.folder / ".chromium-devtools"
        (profile / "DevToolsActivePort").unlink(missing_ok=True)  # a stale one names a closed port
        self.browser = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
             "--autoplay-policy=no-user-gesture-required", "--remote-debugging-port=0", "--window-size=1100,700",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.time() > deadline:
                raise TimeoutError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json").read())
        page = next(t for t in targets if t["type"] == "page")
        self.socket = connect(page["webSocketDebuggerUrl"], max_size=None).__enter__()
        self.send("Page.enable")
        self.send("Page.navigate", url=self.url)
        return self

    def __exit__(self, *exc):
        import os
        import signal

        self.socket.close()
        os.killpg(self.browser.pid, signal.SIGKILL)  # its renderer and GPU processes too
        self.browser.wait()

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.socket.recv(timeout=TIMEOUT_S))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = TIMEOUT_S):
        import time

        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"waited {timeout} s for {expression}")

    def set_files(self, selector: str, *paths: Path) -> None:
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.send("DOM.setFileInputFiles", nodeId=node, files=[str(Path(p).resolve()) for p in paths])

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
