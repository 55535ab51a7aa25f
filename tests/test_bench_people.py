"""`adamesh bench people` at toy scale: speakers, the reference/test split, the measures, the outputs."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import soundfile as sf

from adamesh.adapt.expression import AdaptConfig
from adamesh.audio import SAMPLE_RATE
from adamesh.data.synthetic.corpus import CorpusConfig, make_speakers, synthesize_clip
from adamesh.errors import AdameshError
from adamesh.eval.people import Clip, _split, bench_people, find_speakers, score
from adamesh.motion import ARKIT, load_motion

CFG = CorpusConfig()
HELD_OUT = next(i for i, s in enumerate(make_speakers(CFG)) if s.split == "heldout")


@pytest.fixture(scope="module")
def person(tmp_path_factory):
    """A clip folder of one speaker (5 synthetic sentences with their speech), as `adamesh track` writes."""
    folder = tmp_path_factory.mktemp("person")
    speaker = make_speakers(CFG)[HELD_OUT]
    for k in range(5):
        audio, motion = synthesize_clip(speaker, k, CFG, HELD_OUT)
        sf.write(folder / f"clip{k}.wav", audio, SAMPLE_RATE)
        motion.audio = str(folder / f"clip{k}.wav")
        motion.meta["speaker"] = "them"
        motion.save(folder / f"clip{k}.npz")
    return folder


def test_the_truth_scores_perfectly_and_a_worse_guess_worse(builtin):
    rng = np.random.default_rng(0)
    truth = np.zeros((200, ARKIT.dim), np.float32)
    truth[:, ARKIT.channels.index("jawOpen")] = 0.3 * (1 + np.sin(np.arange(200) / 3)) / 2
    truth[:, ARKIT.channels.index("mouthSmileLeft")] = 0.2
    truth[:, ARKIT.rotation[0] : ARKIT.rotation[1]] = np.radians(rng.normal(0, 3, (200, 3))).cumsum(0) * 0.1
    same = score(truth, truth, builtin, 25.0)
    assert same["lip_r"] == pytest.approx(1.0) and same["lve_mm"] == 0 and same["style_err"] == 0
    assert (
        same["pose_std_err_deg"] == 0
        and same["posture_err_deg"] == 0
        and same["pose_fd"] == pytest.approx(0, abs=1e-6)
    )
    guess = truth.copy()
    guess[:, ARKIT.channels.index("jawOpen")] = np.roll(guess[:, ARKIT.channels.index("jawOpen")], 5)
    guess[:, ARKIT.channels.index("mouthSmileLeft")] = 0.0  # a person who smiles on one side, guessed without
    guess[:, ARKIT.rotation[0]] += np.radians(5)
    worse = score(guess, truth, builtin, 25.0)
    assert worse["lip_r"] < 0.9 and worse["lve_mm"] > 0.1 and worse["l1_mouth"] > 0
    assert worse["style"]["smile"] == pytest.approx(0.1, abs=1e-6)  # half of 0.2 in the mean, std unchanged
    assert worse["style"]["lopsided smile"] == pytest.approx(0.2, abs=1e-6)
    assert worse["posture_err_deg"] == pytest.approx(5.0, abs=1e-3) and worse["l1_brows"] == 0


def test_the_test_is_whole_clips_after_the_reference():
    clips = [Clip(f"c{k}", None, np.zeros(0), None) for k in range(4)]

    class M:
        def __init__(self, n):
            self.n_frames, self.params = n, np.arange(n)[:, None] + 1000 * n

    for c, n in zip(clips, (100, 100, 100, 100)):
        c.motion, c.speech = M(n), np.zeros(n * 640, np.float32)
    (ref, _), (test, speech) = _split(clips, 6.0, 1, 25.0)  # 150 frames: half of the second clip
    assert len(ref) == 150 and len(test) == 150 and len(speech) == 150 * 640  # its rest and one whole clip
    (ref, _), (test, _) = _split(clips, 8.0, 1, 25.0)  # on a boundary: exactly one clip
    assert len(ref) == 200 and len(test) == 100
    (_, _), (test, _) = _split(clips, 6.0, None, 25.0)
    assert len(test) == 250


def test_speakers_come_from_clips_csv_subfolders_or_clip_folders(person, tmp_path):
    named = tmp_path / "named"
    named.mkdir()
    for f in ("a1.mp4", "a2.mp4", "b.mp4"):
        (named / f).write_bytes(b"")
    (named / "clips.csv").write_text("file,speaker\na1.mp4,ann\na2.mp4,ann\nb.mp4,bob\n")
    nested = tmp_path / "nested"
    for spk in ("cat", "dan"):
        (nested / spk).mkdir(parents=True)
        (nested / spk / "x.mp4").write_bytes(b"")
    flat = tmp_path / "eve"
    flat.mkdir()
    for f in ("s2.mp4", "s1.mp4"):
        (flat / f).write_bytes(b"")
    found = find_speakers([str(named), str(nested), str(person), str(flat)])
    assert {k: [p.name for _, p in v] for k, v in found.items()} == {
        "ann": ["a1.mp4", "a2.mp4"],
        "bob": ["b.mp4"],
        "cat": ["x.mp4"],
        "dan": ["x.mp4"],
        "them": [f"clip{k}.npz" for k in range(5)],
        "eve": ["s1.mp4", "s2.mp4"],
    }
    with pytest.raises(AdameshError, match="does not exist"):
        find_speakers([str(tmp_path / "nowhere")])


def test_bench_people_end_to_end(person, tmp_path):
    out = tmp_path / "out"
    quick = AdaptConfig(max_steps=8, min_steps=4, members=1, eval_every=4)
    result = bench_people(
        [str(person)],
        str(out),
        reference_seconds=(5.0, 100.0),
        methods=("none", "molora"),
        rig="builtin",
        renders=1,
        adapt_config=quick,
        log=lambda *a: None,
    )
    assert (
        result["skipped"] == {"them": [result["skipped"]["them"][0]]}
        and "100" in result["skipped"]["them"][0]
    )
    assert [(r["method"], r["reference_s"]) for r in result["rows"]] == [("none", 5.0), ("molora", 5.0)]
    # the truth is the person's own motion after the first 5 s (125 frames)
    joined = np.concatenate([load_motion(person / f"clip{k}.npz").params for k in range(5)])
    truth = load_motion(out / "speakers" / "them" / "5s" / "truth.npz")
    np.testing.assert_allclose(truth.params, joined[125:], atol=1e-6)
    assert sf.info(str(out / "speakers" / "them" / "5s" / "reference.wav")).frames == 125 * 640
    generic, personal = result["rows"]
    assert generic["adapt_s"] == 0 and personal["adapt_s"] > 0
    assert 0.3 < generic["lip_r"] <= 1 and generic["style_err"] > 0  # the shipped model on a held-out voice
    saved = json.loads((out / "results.json").read_text())
    assert saved["mean"][0]["method"] == "none" and saved["rows"][1]["lip_r"] == personal["lip_r"]
    table = (out / "table.md").read_text()
    assert "| them | 5 |" in table and "Skipped: them" in table
    assert (out / "speakers" / "them" / "5s" / "channels.png").stat().st_size > 10_000
    with av.open(str(out / "speakers" / "them" / "5s" / "side_by_side.mp4")) as video:
        stream = video.streams.video[0]
        assert stream.width == 3 * 320 and video.streams.audio  # tracked | generic | molora, no video here
    # with test_clips: the rest of the clip the reference ends in, and one whole clip more
    ends = np.cumsum([load_motion(person / f"clip{k}.npz").n_frames for k in range(5)])
    inside = int(np.searchsorted(ends, 125))
    bench_people(
        [str(person)],
        str(tmp_path / "o1"),
        reference_seconds=(5.0,),
        methods=("none",),
        rig="builtin",
        renders=0,
        test_clips=1,
        log=lambda *a: None,
    )
    truth = load_motion(tmp_path / "o1" / "speakers" / "them" / "5s" / "truth.npz")
    np.testing.assert_allclose(truth.params, joined[125 : ends[inside + 1]], atol=1e-6)
    with pytest.raises(AdameshError, match="no speaker has enough material"):
        bench_people(
            [str(person)],
            str(tmp_path / "o2"),
            reference_seconds=(100.0,),
            methods=("none",),
            rig="builtin",
            log=lambda *a: None,
        )
