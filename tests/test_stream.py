"""Streaming animation on the shipped model: frames as speech arrives, converging to `animate`."""

import warnings

import numpy as np
import pytest
import torch

import adamesh
from adamesh.audio import SAMPLE_RATE
from adamesh.data.synthetic.corpus import CorpusConfig, make_speakers, synthesize_clip
from adamesh.errors import AdameshError
from adamesh.eval.stream import streamed
from adamesh.models.pose import CodeSampler
from adamesh.motion import ARKIT

CFG = CorpusConfig()
BLINKS = [ARKIT.index("eyeBlinkLeft"), ARKIT.index("eyeBlinkRight")]


@pytest.fixture(scope="module")
def model():
    return adamesh.load()


@pytest.fixture(scope="module")
def speech():
    """About 8 s of synthetic speech: three sentences of one held-out voice (not the reference's)."""
    speakers = make_speakers(CFG)
    k = next(i for i, s in enumerate(speakers) if s.split == "heldout")
    return np.concatenate(
        [synthesize_clip(speakers[k], j, CFG, k)[0] for j in range(CFG.sentences - 3, CFG.sentences)]
    ).astype(np.float32)


def test_a_stream_gives_the_frames_animate_gives_in_bounds_and_repeatably(model, speech):
    offline = model.animate(speech, seed=1)
    a = streamed(model.stream(seed=1), speech)
    assert a.shape == offline.params.shape
    np.testing.assert_array_equal(a, streamed(model.stream(seed=1), speech))
    assert not np.array_equal(a[:, 52:55], streamed(model.stream(seed=2), speech)[:, 52:55])
    assert np.all(a >= np.array(ARKIT.lower)) and np.all(a <= np.array(ARKIT.upper))
    jaw, close = a[:, ARKIT.index("jawOpen")], a[:, ARKIT.index("mouthClose")]
    assert np.all(close <= jaw)
    # blinks are drawn from the same process as animate's: the same times for the same seed
    np.testing.assert_allclose(a[:, BLINKS], offline.params[:, BLINKS], atol=1e-6)
    assert a[:, BLINKS].max() > 0.9
    # the lips follow the offline lips
    assert np.corrcoef(jaw, offline.channel("jawOpen"))[0, 1] > 0.9


def test_the_stream_converges_to_animate_as_the_lookahead_grows(model, speech):
    offline = model.animate(speech, seed=0).params
    keep = np.setdiff1d(np.arange(52), BLINKS)
    errors = []
    for lookahead in (80, 320, 2000):
        s = model.stream(lookahead_ms=lookahead, window_s=lookahead / 1000 + 4, seed=0)
        errors.append(np.abs(streamed(s, speech)[:, keep] - offline[:, keep]).mean())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.5 * errors[0]


def test_the_first_frame_comes_once_its_lookahead_has_arrived(model, speech):
    s = model.stream(lookahead_ms=80, hop_ms=160)
    received = 0
    for i in range(0, len(speech), 320):
        frames = s.push(speech[i : i + 320])
        received += len(speech[i : i + 320])
        if len(frames):
            break
    # frame 0's moment is 20 ms in: 100 ms of speech make it final, and it comes at once
    assert received == int(0.1 * SAMPLE_RATE) and len(frames) == 1
    # then a hop's frames at a time
    counts = [len(s.push(speech[j : j + 320])) for j in range(i + 320, i + 320 * 40, 320)]
    assert set(counts) == {0, 4}


def test_code_sampler_fed_step_by_step_gives_the_codes_of_generate(model, speech):
    gpt = model.pose.gpt
    _, feats = model.speech_features(speech)
    feats = torch.from_numpy(feats.features)
    codes = gpt.generate(feats, gpt.null_style, temperature=0.8, seed=5)
    assert len(codes) > gpt.config.context  # the window is primed again at least once
    steps = gpt.speech(feats[None])[0]
    sampler = CodeSampler(gpt, gpt.null_style, temperature=0.8, seed=5)
    for n in range(len(steps)):  # each code once the step after it is heard, as a stream does
        sampler.hear(torch.full_like(steps[n : n + 2], 9.0), n)  # a first guess, revised below
        sampler.hear(steps[n : n + 2], n)
        sampler.next()
    np.testing.assert_array_equal(np.array(sampler.codes), codes.numpy())


def test_the_stream_places_its_head_motion_as_animate_does(model, speech):
    rest = model.pose.vq.pose_mean.numpy()
    still = streamed(model.stream(pose_amplitude=0, seed=0), speech)[:, 52:]
    np.testing.assert_allclose(still, np.broadcast_to(rest, still.shape), atol=1e-6)
    np.testing.assert_allclose(
        model.animate(speech, seed=0, pose_amplitude=0).params[:, 52:], still, atol=1e-6
    )
    # frame by frame: twice the amplitude is twice the motion about the resting pose
    once = streamed(model.stream(seed=0), speech)[:, 52:55] - rest[:3]
    twice = streamed(model.stream(seed=0, pose_amplitude=2), speech)[:, 52:55] - rest[:3]
    assert np.abs(once).max() > np.radians(0.5)
    np.testing.assert_allclose(twice, 2 * once, atol=1e-5)


@pytest.mark.slow
def test_a_profile_styles_the_stream(model, speech, tmp_path):
    from tests.test_api import _clips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short reference
        profile = model.adapt(_clips(tmp_path, range(3)))
    generic = streamed(model.stream(seed=0), speech)
    personal = streamed(model.stream(profile, seed=0), speech)
    offline = model.animate(speech, profile, seed=0).params
    keep = np.setdiff1d(np.arange(52), BLINKS)
    assert np.abs(personal - offline)[:, keep].mean() < 0.5 * np.abs(generic - offline)[:, keep].mean()
    # the head rests at the reference's posture
    rot = slice(*ARKIT.rotation)
    np.testing.assert_allclose(personal[:, rot].mean(0), offline[:, rot].mean(0), atol=0.03)


def test_bad_stream_use_gets_clear_errors(model, speech):
    with pytest.raises(AdameshError, match="look-ahead"):
        model.stream(lookahead_ms=-5)
    with pytest.raises(AdameshError, match="too short"):
        model.stream(lookahead_ms=3000, window_s=2)
    with pytest.raises(AdameshError, match="style strength"):
        model.stream(style_strength=9)
    s = model.stream()
    with pytest.raises(AdameshError, match="mono float"):
        s.push((speech * 32767).astype(np.int16))
    assert len(s.close()) == 0  # nothing pushed, nothing to give
    with pytest.raises(AdameshError, match="closed"):
        s.push(speech[:320])


def test_the_stream_command_writes_frames_from_a_file_and_from_stdin(speech, tmp_path):
    import json
    import subprocess
    import sys

    import soundfile as sf

    from adamesh.cli import main
    from adamesh.export import LIVE_LINK_HEADER

    wav = tmp_path / "speech.wav"
    sf.write(wav, speech, SAMPLE_RATE)
    n = adamesh.load().animate(speech).n_frames
    out = tmp_path / "frames.csv"
    assert main(["stream", "--audio", str(wav), "--format", "csv", "--out", str(out), "--fast"]) == 0
    lines = out.read_text().splitlines()
    assert lines[0].split(",") == LIVE_LINK_HEADER and len(lines) == n + 1
    assert lines[1].startswith("00:00:00:00.000,61,") and not (tmp_path / "frames.csv.part").exists()
    # raw 16-bit PCM on stdin, read as it comes, JSON lines on stdout, latency on stderr
    pcm = (np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes()
    run = subprocess.run([sys.executable, "-m", "adamesh", "stream", "--audio", "-", "--lookahead-ms", "80"],
                         input=pcm, capture_output=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    frames = [json.loads(line) for line in run.stdout.decode().splitlines()]
    assert [f["frame"] for f in frames] == list(range(n))
    assert set(frames[0]["blendshapes"]) == set(ARKIT.channels[:52]) and len(frames[0]["head_rotation"]) == 3
    assert "frame latency median" in run.stderr.decode()
    # three odd bytes, less than a frame of speech: one clear line, no frame
    run = subprocess.run([sys.executable, "-m", "adamesh", "stream", "--audio", "-"], input=b"abc",
                         capture_output=True, timeout=300)  # fmt: skip
    assert run.returncode == 1 and run.stdout == b""
    assert run.stderr.decode().strip().splitlines()[-1].startswith("adamesh: error: 1 samples of speech")
    # a missing file: one clear line, no output
    assert main(["stream", "--audio", str(tmp_path / "none.wav"), "--out", str(tmp_path / "x.jsonl")]) == 1
    assert not (tmp_path / "x.jsonl").exists()
