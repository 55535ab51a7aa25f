"""Live frames over the network, decoded by receivers that are not ours: Live Link Face packets by
`pylivelinkface`, VMC protocol bundles by a `python-osc` server, both on 127.0.0.1. What arrives
equals the stream API's frames for the same speech, look-ahead and seed."""

import socket
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from scipy.spatial.transform import Rotation

import adamesh
from adamesh.audio import SAMPLE_RATE
from adamesh.cli import main
from adamesh.data.synthetic.corpus import CorpusConfig, make_speakers, synthesize_clip
from adamesh.errors import AdameshError
from adamesh.eval.stream import streamed
from adamesh.live import stream_to
from adamesh.motion import ARKIT
from adamesh.senders import make_senders, parse_target

LOOKAHEAD_MS, SEED = 160.0, 3


@pytest.fixture(scope="module")
def model():
    return adamesh.load()


@pytest.fixture(scope="module")
def speech_file(tmp_path_factory):
    """About 2.5 s of synthetic speech from a held-out voice, as a file."""
    cfg = CorpusConfig()
    speakers = make_speakers(cfg)
    k = next(i for i, s in enumerate(speakers) if s.split == "heldout")
    audio = synthesize_clip(speakers[k], 0, cfg, k)[0].astype(np.float32)[: int(2.5 * SAMPLE_RATE)]
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    sf.write(path, audio, SAMPLE_RATE)
    return path, audio


@pytest.fixture(scope="module")
def expected(model, speech_file):
    return streamed(model.stream(lookahead_ms=LOOKAHEAD_MS, seed=SEED), speech_file[1])


def udp_receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    return sock


def lower_first(name: str) -> str:
    return name[0].lower() + name[1:]


def test_live_link_packets_decode_to_the_stream_frames_paced_at_the_frame_rate(model, speech_file, expected):
    from pylivelinkface import FaceBlendShape, PyLiveLinkFace

    sock = udp_receiver()
    port = sock.getsockname()[1]
    packets = []

    def receive():
        while True:
            try:
                data = sock.recv(4096)
            except TimeoutError:
                return
            packets.append((time.perf_counter(), data))
            if len(packets) == len(expected):
                return

    thread = threading.Thread(target=receive)
    thread.start()
    senders = make_senders([f"livelink=127.0.0.1:{port}"], subject="Tester")
    report = stream_to(
        model, str(speech_file[0]), None, lookahead_ms=LOOKAHEAD_MS, seed=SEED, senders=senders
    )
    thread.join()
    sock.close()
    assert report["frames"] == len(expected) == len(packets)
    faces = []
    for _, data in packets:
        ok, face = PyLiveLinkFace.decode(data)
        assert ok
        faces.append(face)
    assert [f._frames for f in faces] == list(range(len(expected)))
    assert all(f.name == "Tester" and f.fps == 25 and f._denominator == 1 for f in faces)
    assert len({f.uuid for f in faces}) == 1 and faces[0].uuid.startswith("$")
    got = np.array([f._blend_shapes for f in faces])
    for shape in FaceBlendShape:  # by name: the packet's order is not the CSV's
        name = lower_first(shape.name)
        if name in ARKIT.channels:
            np.testing.assert_allclose(got[:, shape.value], expected[:, ARKIT.index(name)], atol=1e-3)
    ch = {n: expected[:, ARKIT.index(n)] for n in ARKIT.channels}
    # eye angles from the eyeLook weights: yaw 0.60 rad per unit (towards the character's right),
    # pitch 0.61 (down), as docs/export.md gives them
    eyes = {
        "LeftEyeYaw": 0.60 * (ch["eyeLookInLeft"] - ch["eyeLookOutLeft"]),
        "RightEyeYaw": -0.60 * (ch["eyeLookInRight"] - ch["eyeLookOutRight"]),
        "LeftEyePitch": 0.61 * (ch["eyeLookDownLeft"] - ch["eyeLookUpLeft"]),
        "RightEyePitch": 0.61 * (ch["eyeLookDownRight"] - ch["eyeLookUpRight"]),
    }
    for name, value in eyes.items():
        np.testing.assert_allclose(got[:, FaceBlendShape[name].value], value, atol=1e-3)
    assert np.abs(got[:, [FaceBlendShape.LeftEyeRoll.value, FaceBlendShape.RightEyeRoll.value]]).max() == 0
    assert np.abs(got[:, FaceBlendShape.HeadYaw.value]).max() > 1e-3  # the head moves
    # paced: one packet every 40 ms, not the stream's batches of six
    arrivals = np.array([t for t, _ in packets])
    gaps = np.diff(arrivals)
    assert 0.030 < np.median(gaps) < 0.050
    assert np.mean(gaps < 0.010) < 0.2
    assert arrivals[-1] - arrivals[0] > 0.8 * (len(packets) - 1) / 25  # not rushed
    assert report["packet_latency_ms_median"] >= report["latency_ms_median"]


def test_vmc_bundles_reach_an_osc_server_with_the_stream_frames(model, speech_file, expected):
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer

    frames, current = [], {}

    def on_message(address, *args):
        if address == "/VMC/Ext/OK":
            current.clear()
            current["ok"] = args
        elif address == "/VMC/Ext/T":
            current["time"] = args[0]
        elif address == "/VMC/Ext/Blend/Val":
            current.setdefault("blend", {})[args[0]] = args[1]
        elif address == "/VMC/Ext/Blend/Apply":
            current["applied"] = True
        elif address == "/VMC/Ext/Bone/Pos":
            current["bone"] = args
            frames.append(dict(current))

    dispatcher = Dispatcher()
    dispatcher.set_default_handler(on_message)
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        senders = make_senders([f"vmc=127.0.0.1:{server.server_address[1]}"])
        stream_to(model, str(speech_file[0]), None, lookahead_ms=LOOKAHEAD_MS, seed=SEED, senders=senders)
        deadline = time.time() + 5
        while len(frames) < len(expected) and time.time() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
    assert len(frames) == len(expected)
    for t, (frame, want) in enumerate(zip(frames, expected)):
        assert frame["ok"] == (1,) and frame["applied"]
        assert frame["time"] == pytest.approx(t / 25, abs=1e-6)
        assert len(frame["blend"]) == 52
        got = np.array([frame["blend"][n] for n in frame["blend"]])
        names = [lower_first(n) for n in frame["blend"]]
        np.testing.assert_allclose(got, want[[ARKIT.index(n) for n in names]], atol=1e-3)
        name, *position, qx, qy, qz, qw = frame["bone"]
        assert name == "Head" and position == [0.0, 0.0, 0.0]
        # Unity: x to the avatar's right, y up, z forward, Euler angles applied z, x, y: our pitch
        # (face down) is +x, our yaw (to the character's left) is -y, our roll (towards the right
        # shoulder) is -z
        pitch, yaw, roll = (want[ARKIT.index(n)] for n in ("headPitch", "headYaw", "headRoll"))
        unity = Rotation.from_euler("YXZ", [-yaw, pitch, -roll]).as_quat()
        q = np.array([qx, qy, qz, qw])
        assert min(np.abs(q - unity).max(), np.abs(q + unity).max()) < 1e-3


def test_a_receiver_that_is_not_there_costs_one_warning_and_the_stream_goes_on(speech_file, capsys):
    sock = udp_receiver()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    rc = main(["stream", "--audio", str(speech_file[0]), "--send", f"livelink=127.0.0.1:{port}", "--fast"])
    err = capsys.readouterr().err
    assert rc in (0, None)
    assert err.count("nothing receives there yet") == 1
    assert "sent" in err and "frames" in err


@pytest.mark.parametrize(
    "spec, text",
    [
        ("livelink=nohost.invalid:11111", "does not resolve"),
        ("livelink=127.0.0.1:99999", "port must be a number from 1 to 65535"),
        ("vmc=:x", "port must be a number"),
        ("ndi", "send to livelink or vmc"),
    ],
)
def test_bad_targets_are_refused_with_one_clear_line(speech_file, capsys, spec, text):
    rc = main(["stream", "--audio", str(speech_file[0]), "--send", spec, "--fast"])
    err = capsys.readouterr().err
    assert rc == 1 and text in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_targets_default_to_the_receivers_ports():
    assert parse_target("livelink") == ("livelink", "127.0.0.1", 11111)
    assert parse_target("vmc") == ("vmc", "127.0.0.1", 39539)
    assert parse_target("vmc=192.168.1.7") == ("vmc", "192.168.1.7", 39539)
    assert parse_target("livelink=:9000") == ("livelink", "127.0.0.1", 9000)
    assert parse_target("livelink=[::1]:9000") == ("livelink", "::1", 9000)
    with pytest.raises(AdameshError):
        parse_target("livelink=host:0")
