"""Frames into the programs where avatars live, as each frame is final: Live Link Face packets over
UDP (Unreal Engine's Live Link: MetaHuman and any ARKit-driven character) and the VMC protocol over
OSC (VSeeFace, Warudo, VNyan, VMagicMirror, EVMC4U in Unity). `adamesh stream --send` and the live
page of `adamesh serve` drive them through a `Pacer`, which sends each frame at its moment.

Live Link Face, one UDP packet a frame (version 6 of Epic's iPhone app, the layout the PyPI
package `pylivelinkface` decodes):

    uint32 LE   version, 6
    37 bytes    device id: "$" and a UUID (the same for the same subject name)
    int32 BE    length of the subject name, then the name in UTF-8
    int32 BE    frame number;  float32 BE  sub-frame (0)
    int32 BE    frame rate numerator and denominator (25, 1)
    uint8       61, then 61 float32 BE: the 52 ARKit weights in Apple's order, head yaw, pitch and
                roll, left eye yaw, pitch, roll, right eye yaw, pitch, roll, in radians, with the
                signs and scales of the Live Link CSV export (`export.live_link_values`)

VMC protocol (protocol.vmc.info), one OSC bundle a frame:

    /VMC/Ext/OK 1                      a model is loaded
    /VMC/Ext/T time                    seconds since the first frame
    /VMC/Ext/Blend/Val name weight     the 52 weights, named as ARKit names them with a capital
                                       first letter, as "perfect sync" avatars name their clips
    /VMC/Ext/Blend/Apply
    /VMC/Ext/Bone/Pos "Head" 0 0 0 qx qy qz qw
                                       the head's local rotation in Unity's axes (left-handed: x to
                                       the avatar's right, y up, z forward); no position is known,
                                       so it is zero: receivers should not apply bone positions

Sending never blocks the stream: a receiver that is not running yet, or goes away, costs a warning
(once) and the frames go on being sent, so Unreal or the VTuber app can be started at any time.
"""

from __future__ import annotations

import queue
import socket
import struct
import sys
import threading
import time
import uuid

import numpy as np
import torch
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from adamesh.errors import AdameshError
from adamesh.export import live_link_values
from adamesh.geometry import euler_to_matrix, matrix_to_quaternion
from adamesh.motion import ARKIT, ARKIT_BLENDSHAPES, Motion

LIVE_LINK_PORT, VMC_PORT = 11111, 39539  # Live Link Face's port; a VMC receiver's usual port
LIVE_LINK_VERSION = 6
DEFAULT_SUBJECT = "adamesh"
PERFECT_SYNC = [n[0].upper() + n[1:] for n in ARKIT_BLENDSHAPES]


def parse_target(spec: str) -> tuple[str, str, int]:
    """ "livelink", "vmc", "livelink=HOST:PORT", "vmc=HOST", "vmc=:PORT" -> (kind, host, port)."""
    kind, _, where = spec.partition("=")
    defaults = {"livelink": LIVE_LINK_PORT, "vmc": VMC_PORT}
    if kind not in defaults:
        raise AdameshError(
            f"--send {spec!r}: send to livelink or vmc, optionally =HOST:PORT (livelink=127.0.0.1:11111)"
        )
    host, port = "127.0.0.1", defaults[kind]
    if where:
        if where.startswith("["):  # [IPv6]:port
            host, _, rest = where[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
        elif where.count(":") == 1:
            host, _, port_text = where.partition(":")
        else:
            host, port_text = where, ""
        host = host or "127.0.0.1"
        if port_text:
            if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
                raise AdameshError(f"--send {spec!r}: the port must be a number from 1 to 65535")
            port = int(port_text)
    return kind, host, port


class UdpTarget:
    """A UDP socket to one receiver. Refused or failed sends warn once and are dropped."""

    def __init__(self, host: str, port: int, what: str, warn=None):
        self.where, self.what = f"{host}:{port}", what
        self.warn = warn or (lambda text: print(f"adamesh: {text}", file=sys.stderr, flush=True))
        try:
            family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except (socket.gaierror, UnicodeError) as e:
            raise AdameshError(
                f"cannot send {what} to {self.where}: the host does not resolve ({e})"
            ) from None
        self.sock = socket.socket(family, kind, proto)
        try:
            self.sock.connect(address)  # so the kernel reports a receiver that is not there
        except OSError as e:
            self.sock.close()
            raise AdameshError(f"cannot send {what} to {self.where} ({e.strerror or e})") from None
        self.warned = False

    def send(self, data: bytes) -> None:
        try:
            self.sock.send(data)
        except OSError as e:
            if not self.warned:
                self.warned = True
                reason = (
                    "nothing receives there yet" if isinstance(e, ConnectionRefusedError) else e.strerror or e
                )
                self.warn(f"{self.what} to {self.where}: {reason}; frames go on being sent")

    def close(self) -> None:
        self.sock.close()


class _Sender:
    """Encodes a frame of an ARKit motion (`encode`) and sends it to its `target`."""

    target: UdpTarget

    def encode(self, index: int, frame: np.ndarray, fps: float) -> bytes:
        raise NotImplementedError

    def send(self, index: int, frame: np.ndarray, fps: float) -> None:
        self.target.send(self.encode(index, frame, fps))

    def close(self) -> None:
        self.target.close()


class LiveLinkSender(_Sender):
    """Live Link Face packets (see the module's doc) of frames of an ARKit motion."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = LIVE_LINK_PORT, subject: str = DEFAULT_SUBJECT, warn=None
    ):
        name = subject.encode("utf-8")
        if not name or len(name) > 255:
            raise AdameshError("the Live Link subject name must have 1 to 255 bytes")
        device = "$" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"adamesh:{subject}"))
        self.header = (
            struct.pack("<I", LIVE_LINK_VERSION) + device.encode() + struct.pack(">i", len(name)) + name
        )
        self.target = UdpTarget(host, port, "Live Link", warn)

    def encode(self, index: int, frame: np.ndarray, fps: float) -> bytes:
        motion = Motion(frame[None].astype(np.float32), ARKIT, fps)
        values = live_link_values(motion, ARKIT_BLENDSHAPES)[0]
        return self.header + struct.pack(">ifiiB61f", index, 0.0, int(round(fps)), 1, 61, *values.tolist())


def unity_head_rotation(frame: np.ndarray) -> np.ndarray:
    """(4,) the head's rotation as a Unity quaternion (x, y, z, w). Unity's axes are ours with x
    mirrored (x to the avatar's right, not its left), so the rotation is M R M with M = diag(-1, 1, 1):
    the quaternion's y and z change sign."""
    pitch, yaw, roll = (torch.tensor(float(frame[ARKIT.index(n)]), dtype=torch.float64)
                        for n in ("headPitch", "headYaw", "headRoll"))  # fmt: skip
    x, y, z, w = matrix_to_quaternion(euler_to_matrix(pitch, yaw, roll).numpy())
    return np.array([x, -y, -z, w])


class VMCSender(_Sender):
    """VMC protocol bundles (see the module's doc) of frames of an ARKit motion."""

    def __init__(self, host: str = "127.0.0.1", port: int = VMC_PORT, warn=None):
        self.target = UdpTarget(host, port, "VMC", warn)

    def encode(self, index: int, frame: np.ndarray, fps: float) -> bytes:
        def message(address: str, *args) -> object:
            m = OscMessageBuilder(address)
            for a in args:
                m.add_arg(a)
            return m.build()

        bundle = OscBundleBuilder(IMMEDIATELY)
        bundle.add_content(message("/VMC/Ext/OK", 1))
        bundle.add_content(message("/VMC/Ext/T", index / fps))
        for name, value in zip(PERFECT_SYNC, frame[: ARKIT.n_expression]):
            bundle.add_content(message("/VMC/Ext/Blend/Val", name, float(value)))
        bundle.add_content(message("/VMC/Ext/Blend/Apply"))
        q = unity_head_rotation(frame)
        bundle.add_content(message("/VMC/Ext/Bone/Pos", "Head", 0.0, 0.0, 0.0, *map(float, q)))
        return bundle.build().dgram


def make_senders(specs: list[str], subject: str = DEFAULT_SUBJECT, warn=None) -> list:
    """Senders for `--send` values (see `parse_target`)."""
    senders = []
    try:
        for spec in specs:
            kind, host, port = parse_target(spec)
            senders.append(LiveLinkSender(host, port, subject, warn) if kind == "livelink"
                           else VMCSender(host, port, warn))  # fmt: skip
    except AdameshError:
        for s in senders:
            s.close()
        raise
    return senders


class Pacer:
    """Sends frames from a thread of its own, frame i at `start + (i - i0) / fps`, where frame i0 is
    the first one given and `start` when it was given: the frames a stream gives in batches leave
    one by one at the frame rate. A frame given after its moment leaves at once and moves `start`
    on by its lateness, so the frames after it keep their spacing: a jitter buffer that grows to the
    stream's batches (this thread waking late on busy cores moves nothing). It shrinks again when every frame of the last second was given ahead of its
    moment: `start` moves back by half the smallest margin (a hiccup costs latency for a while, not
    for good). `paced` False sends each frame as soon as it is given. `sent_at[i]` is when frame i
    left."""

    def __init__(self, senders: list, fps: float, paced: bool = True):
        self.senders, self.fps, self.paced = senders, fps, paced
        self.queue: queue.Queue = queue.Queue()
        self.sent_at: dict[int, float] = {}
        self.start: float | None = None
        self.first = 0
        self.margins: list[float] = []  # how long before its moment each frame of this second was given
        self.error: BaseException | None = None
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="adamesh-pacer", daemon=True)
        self.thread.start()

    def put(self, first: int, frames: np.ndarray) -> None:
        if self.error is not None:
            raise self.error
        if self.start is None:
            self.start, self.first = time.perf_counter(), first
        now = time.perf_counter()
        for j, frame in enumerate(frames):
            self.queue.put((first + j, np.array(frame), now))

    def _run(self) -> None:
        try:
            while (item := self.queue.get()) is not None:
                index, frame, given = item
                if self.paced:
                    due = self.start + (index - self.first) / self.fps
                    if given > due:  # came late: the clock moves on, the frames after it keep their spacing
                        self.start, due = self.start + given - due, given
                    self.margins.append(due - given)
                    if len(self.margins) >= self.fps:  # a calm second: give back half its smallest margin
                        back = min(self.margins) / 2
                        self.start, due = self.start - back, due - back
                        self.margins.clear()
                    # a late wake-up of this thread (busy cores) sends at once, but moves nothing
                    time.sleep(max(0.0, due - time.perf_counter()))
                for sender in self.senders:
                    sender.send(index, frame, self.fps)
                self.sent_at[index] = time.perf_counter()
        except BaseException as e:  # handed to the stream's thread at its next put
            self.error = e

    def close(self, drain: bool = True) -> None:
        """Send what is queued (at its moments; dropped unless `drain`), then close the senders."""
        if self.closed:
            return
        self.closed = True
        if not drain:
            while not self.queue.empty():
                self.queue.get_nowait()
        self.queue.put(None)
        self.thread.join()
        for sender in self.senders:
            sender.close()
        if self.error is not None:
            raise self.error
