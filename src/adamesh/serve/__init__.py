"""`adamesh serve`: a local page where an avatar speaks live, frames streamed as they are final.

The page (page.html; three.js 0.187.0, MIT, vendored in ./three) loads an avatar (ICT-FaceKit's
head when installed, else the built-in head, or the user's .glb) and takes speech from an upload
or the microphone. It sends the speech over a
WebSocket as 16 kHz mono float32 chunks, paced in real time, and plays it back delayed by the
stream's latency; the server runs a `Stream` and sends every batch of final frames as the avatar's
morph weights and head rotation (`AvatarDriver`), which the page shows at the audio's time.
Profiles come from `--profile` files, an uploaded profile, or a reference video uploaded on the
page (tracked and adapted in the background, its stage shown).

WebSocket /ws protocol: the page sends {"type": "start", "avatar": ID, "profile": ID or null,
"lookahead_ms": N, "send": ["livelink=HOST:PORT", "vmc", ...] (optional: the frames also go to
those receivers from the server, at their moments; `adamesh.senders`), "subject": NAME (optional)},
then binary chunks, then {"type": "end"}; the server answers {"type": "ready",
"fps": F, "delay_ms": D}, {"type": "frames", "first": I, "weights": {node: [[w, ...], ...]},
"head": [[x, y, z, w], ...] or null, "jaw": [...]} as frames become final, and {"type": "done",
...} with the latency it measured, {"type": "warning", "message": ...} when a receiver is not
there, or {"type": "error", "message": ...} for bad input (the socket stays open for the next
start).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request, UploadFile, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from adamesh.audio import SAMPLE_RATE
from adamesh.errors import AdameshError
from adamesh.senders import DEFAULT_SUBJECT, Pacer, make_senders
from adamesh.stream import SHARED_HOP_MS

HERE = Path(__file__).parent
KEEP_SPEECH = 4  # uploaded speech files kept for playing (again)
LIMITS_MB = {"avatar": 64, "video": 200, "speech": 50, "profile": 16}
MAX_SPEECH_SECONDS = 600.0
MAX_CHUNK_SAMPLES = SAMPLE_RATE  # one message carries at most a second of speech
MAX_TARGETS = 4  # receivers one stream may send to


class Server:
    """What the page works on: the model, and the avatars, profiles, speech and jobs of this run."""

    def __init__(self, model=None, profiles=(), avatars=(), lookahead_ms: float | None = None, workdir=None):
        from adamesh.api import load
        from adamesh.profile import Profile
        from adamesh.rigs import default_rig
        from adamesh.stream import DEFAULT_LOOKAHEAD_MS

        self.animator = load(model)
        self.lookahead_ms = DEFAULT_LOOKAHEAD_MS if lookahead_ms is None else lookahead_ms
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="adamesh-serve-")
        self.workdir = Path(workdir or self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.avatars: dict[str, dict] = {}
        self.profiles: dict[str, dict] = {}
        self.speech: dict[str, np.ndarray] = {}
        self.jobs: dict[str, dict] = {}
        # stream steps run on one thread each: as many at once as there are cores, the others wait
        self.lock = threading.Semaphore(os.cpu_count() or 1)
        rig = default_rig()
        self.add_avatar(
            self._rig_glb(rig), "ICT-FaceKit head" if rig.name.startswith("ict") else "built-in head"
        )
        for path in avatars:
            self.add_avatar(Path(path), Path(path).name)
        for path in profiles:
            self.add_profile(Profile.load(path), Path(path).name)

    def _rig_glb(self, rig) -> Path:
        """The rig (ICT-FaceKit when installed, else the built-in head) as an avatar the page can drive."""
        from adamesh.export import export
        from adamesh.motion import ARKIT, Motion

        path = self.workdir / "head.glb"
        export(Motion(np.zeros((1, ARKIT.dim), np.float32), ARKIT, 25.0), "glb", path, rig)
        return path

    def add_avatar(self, path: Path, name: str) -> str:
        from adamesh.avatar import AvatarDriver, check_avatar

        doc, _, meshes = check_avatar(path)
        key = f"a{len(self.avatars)}"
        self.avatars[key] = {"name": name, "path": path, "driver": AvatarDriver(doc, meshes)}
        return key

    def add_profile(self, profile, name: str) -> str:
        self.animator.check(profile)
        key = f"p{len(self.profiles)}"
        self.profiles[key] = {"name": name, "profile": profile}
        return key

    def state(self) -> dict:
        return {
            "fps": self.animator.fps,
            "lookahead_ms": self.lookahead_ms,
            "avatars": [{"id": k, "name": v["name"]} for k, v in self.avatars.items()],
            "profiles": [{"id": k, "name": v["name"]} for k, v in self.profiles.items()],
            "limits_mb": LIMITS_MB,
            "max_speech_seconds": MAX_SPEECH_SECONDS,
        }

    def frames_message(self, driver, first: int, frames: np.ndarray) -> dict:
        from adamesh.motion import ARKIT

        weights = driver.weights(frames)
        return {
            "type": "frames",
            "first": first,
            "weights": {str(node): np.round(weights[mesh], 4).tolist() for node, mesh in driver.nodes},
            "head": None if driver.head is None else np.round(driver.head_rotation(frames), 5).tolist(),
            "jaw": np.round(frames[:, ARKIT.index("jawOpen")], 4).tolist(),
        }

    def make_profile_job(self, video: Path, name: str) -> str:
        key = uuid.uuid4().hex[:12]
        job = self.jobs[key] = {"stage": "waiting", "started": time.time(), "done": False}

        def run():
            from adamesh.tracking import track_video

            try:
                job["stage"] = "tracking the face"
                clips = self.workdir / f"clip-{key}"
                track_video(video, clips, overlay=False, progress=False)
                job["stage"] = "learning the style"
                profile = self.animator.adapt(clips, progress=False)
                job["profile"] = self.add_profile(profile, name)
                job["stage"] = "done"
            except AdameshError as e:
                job["error"] = str(e)
            except Exception as e:  # a bug: shown on the page rather than lost in a thread
                job["error"] = f"internal error: {type(e).__name__}: {e}"
            job["done"] = True

        threading.Thread(target=run, daemon=True).start()
        return key


def create_app(server: Server):
    app = FastAPI(title="adamesh", docs_url=None, redoc_url=None)
    app.mount("/three", StaticFiles(directory=HERE / "three"), name="three")

    @app.exception_handler(AdameshError)
    async def _user_error(request: Request, e: AdameshError):
        return JSONResponse({"error": str(e)}, status_code=400)

    @app.get("/")
    async def page():
        return FileResponse(HERE / "page.html", media_type="text/html")

    @app.get("/api/state")
    async def state():
        return server.state()

    @app.get("/avatars/{key}.glb")
    async def avatar_file(key: str):
        if key not in server.avatars:
            return JSONResponse({"error": f"no avatar {key}"}, status_code=404)
        return FileResponse(server.avatars[key]["path"], media_type="model/gltf-binary")

    @app.get("/api/avatars/{key}")
    async def avatar_info(key: str):
        if key not in server.avatars:
            return JSONResponse({"error": f"no avatar {key}"}, status_code=404)
        d = server.avatars[key]["driver"]
        return {"nodes": [n for n, _ in d.nodes], "head": d.head}

    async def save(upload: UploadFile, kind: str, suffixes: tuple[str, ...]) -> Path:
        name = Path(upload.filename or "upload").name
        if not name.lower().endswith(suffixes):
            article = "an" if kind[0] in "aeiou" else "a"
            raise AdameshError(f"{name} is not {article} {kind} file: give one of {', '.join(suffixes)}")
        limit = LIMITS_MB[kind] * 2**20
        path = server.workdir / f"{kind}-{uuid.uuid4().hex[:12]}{Path(name).suffix.lower()}"
        size = 0
        with open(path, "wb") as f:
            while block := await upload.read(1 << 20):
                size += len(block)
                if size > limit:
                    f.close()
                    path.unlink()
                    raise AdameshError(f"{name} is larger than the {LIMITS_MB[kind]} MB allowed for a {kind}")
                f.write(block)
        return path

    @app.post("/api/avatars")
    async def upload_avatar(file: UploadFile):
        path = await save(file, "avatar", (".glb", ".vrm"))
        with _as_uploaded(path, file, remove=True):
            key = await asyncio.to_thread(server.add_avatar, path, Path(file.filename).name)
        return {"id": key, **server.state()}

    @app.post("/api/profiles")
    async def upload_profile(file: UploadFile):
        from adamesh.profile import Profile

        path = await save(file, "profile", (".profile", ".safetensors"))
        with _as_uploaded(path, file, remove=True):
            key = await asyncio.to_thread(
                lambda: server.add_profile(Profile.load(path), Path(file.filename).name)
            )
        return {"id": key, **server.state()}

    @app.post("/api/references")
    async def upload_reference(file: UploadFile):
        path = await save(file, "video", (".mp4", ".mov", ".mkv", ".webm", ".avi", ".mpg"))
        from adamesh.tracking import probe

        with _as_uploaded(path, file, remove=True):
            has_audio = (await asyncio.to_thread(probe, str(path)))[0]
        if not has_audio:
            raise AdameshError(f"{file.filename} has no sound; the reference video needs the person's speech")
        return {"job": server.make_profile_job(path, Path(file.filename or "reference").stem)}

    @app.get("/api/jobs/{key}")
    async def job(key: str):
        if key not in server.jobs:
            return JSONResponse({"error": f"no job {key}"}, status_code=404)
        j = server.jobs[key]
        return {**j, "seconds": round(time.time() - j["started"], 1)}

    @app.post("/api/speech")
    async def upload_speech(file: UploadFile):
        from adamesh.audio import load_audio

        path = await save(file, "speech", (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".webm", ".mp4"))
        with _as_uploaded(path, file, remove=False):
            try:
                samples = (await asyncio.to_thread(load_audio, path, SAMPLE_RATE))[0]
            finally:
                path.unlink(missing_ok=True)
        if len(samples) > MAX_SPEECH_SECONDS * SAMPLE_RATE:
            raise AdameshError(
                f"{file.filename} is {len(samples) / SAMPLE_RATE:.0f} s long; at most {MAX_SPEECH_SECONDS:g} s"
            )
        key = uuid.uuid4().hex[:12]
        server.speech[key] = samples.astype(np.float32)
        while len(server.speech) > KEEP_SPEECH:  # the oldest goes: memory stays bounded
            server.speech.pop(next(iter(server.speech)))
        return {"id": key, "seconds": round(len(samples) / SAMPLE_RATE, 2)}

    @app.get("/api/speech/{key}.f32")
    async def speech(key: str):
        if key not in server.speech:
            return JSONResponse({"error": f"no speech {key}"}, status_code=404)
        return Response(server.speech[key].tobytes(), media_type="application/octet-stream")

    @app.websocket("/ws")
    async def ws(socket: WebSocket):
        await socket.accept()
        session = None
        try:
            while True:
                message = await socket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                try:
                    new = await _handle(server, socket, session, message)
                except AdameshError as e:
                    new = None
                    await socket.send_json({"type": "error", "message": str(e)})
                except Exception as e:  # a bug: said on the page, not a silently dropped connection
                    new = None
                    await socket.send_json(
                        {"type": "error", "message": f"internal error: {type(e).__name__}: {e}"}
                    )
                if session is not None and new is not session:
                    _stop_sending(session)
                session = new
        except WebSocketDisconnect:
            return
        finally:
            if session is not None:
                _stop_sending(session)

    return app


@contextlib.contextmanager
def _as_uploaded(path: Path, upload, remove: bool):
    """Errors about an upload name the user's file, not where the server keeps it (removed then)."""
    try:
        yield
    except AdameshError as e:
        if remove:
            path.unlink(missing_ok=True)
        raise AdameshError(str(e).replace(str(path), Path(upload.filename or "the upload").name)) from None


async def _handle(server: Server, socket, session: dict | None, message: dict) -> dict | None:
    """One WebSocket message: start a stream, feed it a chunk, or end it."""
    if message.get("text") is not None:
        try:
            command = json.loads(message["text"])
            kind = command["type"]
        except (ValueError, KeyError, TypeError):
            raise AdameshError("messages must be JSON with a type (start or end), or binary speech") from None
        if kind == "start":
            return await _start(server, socket, command)
        if kind == "end":
            if session is None:
                raise AdameshError("no stream to end: send start first")
            frames = await asyncio.to_thread(_locked, server, session["stream"].close)
            await _send_frames(server, socket, session, frames)
            if session["pacer"]:  # the last frames leave at their moments
                await asyncio.to_thread(session["pacer"].close)
            await _send_warnings(socket, session)
            lat = np.asarray(session["latency"]) * 1000
            await socket.send_json({
                "type": "done",
                "frames": session["emitted"],
                "seconds": round(session["received"] / SAMPLE_RATE, 2),
                "compute_per_second": round(session["compute"] / max(session["received"] / SAMPLE_RATE, 1e-9), 3),
                "push_ms_median": float(np.median(lat)) if len(lat) else None,
                "push_ms_p95": float(np.percentile(lat, 95)) if len(lat) else None,
            })  # fmt: skip
            return None
        raise AdameshError(f"unknown message type {kind!r}: send start, binary speech, then end")
    data = message.get("bytes")
    if session is None:
        raise AdameshError('speech before start: send {"type": "start", ...} first')
    if not data or len(data) % 4:
        raise AdameshError("speech chunks must be 16 kHz mono float32 samples (a multiple of 4 bytes)")
    samples = np.frombuffer(data, np.float32)
    if len(samples) > MAX_CHUNK_SAMPLES or not np.all(np.isfinite(samples)) or np.abs(samples).max() > 1.5:
        raise AdameshError(
            "speech chunks must be at most a second of finite 16 kHz float32 samples in [-1, 1]"
        )
    session["received"] += len(samples)
    if session["received"] > MAX_SPEECH_SECONDS * SAMPLE_RATE:
        raise AdameshError(f"a stream may last at most {MAX_SPEECH_SECONDS:g} s; start a new one")
    t0 = time.perf_counter()
    frames = await asyncio.to_thread(_locked, server, session["stream"].push, samples)
    spent = time.perf_counter() - t0
    session["compute"] += spent
    if len(frames):
        session["latency"].append(spent)
    await _send_frames(server, socket, session, frames)
    return session


async def _start(server: Server, socket, command: dict) -> dict:
    avatar = server.avatars.get(str(command.get("avatar")))
    if avatar is None:
        raise AdameshError(f"unknown avatar {command.get('avatar')!r}; pick one the page lists")
    profile = None
    if command.get("profile"):
        if command["profile"] not in server.profiles:
            raise AdameshError(f"unknown profile {command['profile']!r}; pick one the page lists")
        profile = server.profiles[command["profile"]]["profile"]
    try:
        lookahead = float(command.get("lookahead_ms", server.lookahead_ms))
    except (TypeError, ValueError):
        raise AdameshError("lookahead_ms must be a number of milliseconds") from None
    seed = command.get("seed", 0) or 0
    if type(seed) is not int or not 0 <= seed < 2**32:
        raise AdameshError(f"seed must be a whole number from 0 to {2**32 - 1}, not {seed!r}")
    targets, subject = command.get("send") or [], command.get("subject") or DEFAULT_SUBJECT
    if not (
        isinstance(targets, list) and len(targets) <= MAX_TARGETS and all(isinstance(t, str) for t in targets)
    ):
        raise AdameshError(
            f'send must be a list of at most {MAX_TARGETS} targets such as "livelink=HOST:PORT"'
        )
    if not isinstance(subject, str):
        raise AdameshError("subject must be a name (text)")
    warnings: list[str] = []
    senders = make_senders(targets, subject, warn=warnings.append)
    # the page's browser often runs on the same cores, and other pages may stream too: a step
    # every 240 ms keeps them all in real time (every 80 ms, a page and its server on 2 cores did not)
    stream = server.animator.stream(profile, lookahead_ms=lookahead, seed=seed, hop_ms=SHARED_HOP_MS)
    session = {"stream": stream, "driver": avatar["driver"], "emitted": 0, "received": 0, "compute": 0.0,
               "latency": [], "pacer": Pacer(senders, stream.fps) if senders else None,
               "warnings": warnings}  # fmt: skip
    # the page delays playback by what a frame waits for: its look-ahead, a hop, and the compute
    delay = lookahead + 1000 * stream.hop / stream.fps + 150
    await socket.send_json({"type": "ready", "fps": stream.fps, "delay_ms": delay})
    return session


async def _send_frames(server: Server, socket, session: dict, frames: np.ndarray) -> None:
    if len(frames):
        if session["pacer"]:
            session["pacer"].put(session["emitted"], frames)
        await socket.send_json(server.frames_message(session["driver"], session["emitted"], frames))
        session["emitted"] += len(frames)
    await _send_warnings(socket, session)


async def _send_warnings(socket, session: dict) -> None:
    while session["warnings"]:
        await socket.send_json({"type": "warning", "message": session["warnings"].pop(0)})


def _stop_sending(session: dict) -> None:
    if session.get("pacer"):
        session["pacer"].close(drain=False)


def _locked(server: Server, fn, *args):
    with server.lock:
        return fn(*args)


def check_address(host: str, port: int) -> bool:
    """Whether `host` is this machine only (a loopback address), after checking, before the model
    loads, that the server can listen on host:port."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError, OverflowError) as e:
        raise AdameshError(
            f"--host {host} is not an address to listen on ({e}); the default 127.0.0.1 serves this "
            "machine only"
        ) from None
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            raise AdameshError(
                f"cannot listen on {host}:{port} ({e.strerror}); choose another --port or --host"
            ) from None
    return ipaddress.ip_address(address[0]).is_loopback


def serve(host: str = "127.0.0.1", port: int = 8000, **options) -> None:
    """Run the page's server until interrupted (see the module docstring)."""
    import uvicorn

    if not check_address(host, port):
        print(
            f"adamesh: warning: --host {host} lets every machine that can reach this one use the "
            "server, upload files and read its answers, with no log-in and no encryption; keep the "
            "default 127.0.0.1 unless the network is yours",
            file=sys.stderr,
            flush=True,
        )
    server = Server(**options)
    print(f"adamesh: serving on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(create_app(server), host=host, port=port, log_level="warning")
