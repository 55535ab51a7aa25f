"""The synthetic corpus: determinism, resuming, ground truth against phone timing, styles, roles, CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import fields, replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from adamesh.audio import SAMPLE_RATE, frame_count
from adamesh.cli import main
from adamesh.data.synthetic.animation import (
    INHALE_SECONDS,
    ExpressionStyle,
    Phone,
    PoseStyle,
    animate,
    inhalation,
)
from adamesh.data.synthetic.corpus import (
    CorpusConfig,
    Speaker,
    generate_corpus,
    make_speakers,
    synthesize_clip,
)
from adamesh.data.synthetic.espeak import Espeak, Voice
from adamesh.errors import AdameshError
from adamesh.motion import ARKIT, load_motion
from adamesh.phones import PHONES

TINY = CorpusConfig(speakers=3, sentences=3, heldout=1)
SMALL = CorpusConfig(speakers=3, sentences=8, heldout=1)  # enough clips for a full reference set


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    generate_corpus(out, TINY, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("small")
    return out, generate_corpus(out, SMALL, workers=2, progress=False)


def clips_of(root: Path) -> list[dict]:
    return json.loads((root / "manifest.json").read_text())["clips"]


# --------------------------------------------------------------------------- determinism and resuming


def test_same_corpus_whatever_the_number_of_workers(tiny, tmp_path):
    again = tmp_path / "again"
    generate_corpus(again, TINY, workers=2, progress=False)
    a, b = (json.loads((d / "manifest.json").read_text()) for d in (tiny, again))
    assert a["stats"]["workers"] == 1 and b["stats"]["workers"] == 2
    assert a["stats"]["clips"] == b["stats"]["clips"] == 9 and a["stats"]["hours"] == b["stats"]["hours"]
    for m in (a, b):
        del m["stats"]
    assert a == b
    for clip in a["clips"]:
        assert (tiny / clip["audio"]).read_bytes() == (again / clip["audio"]).read_bytes()
        m1, m2 = load_motion(tiny / clip["motion"]), load_motion(again / clip["motion"])
        np.testing.assert_array_equal(m1.params, m2.params)
        assert m1.meta == m2.meta and m1.fps == m2.fps
        assert Path(m2.audio) == (again / clip["audio"]).resolve()


def test_another_seed_gives_other_sentences_and_voices(tiny, tmp_path):
    other = generate_corpus(tmp_path / "seed1", replace(TINY, seed=1), workers=2, progress=False)
    texts = {c["text"] for c in clips_of(tiny)}
    assert len(texts) == 9  # no sentence twice in one corpus
    assert len(texts & {c["text"] for c in other["clips"]}) <= 1
    voices = {
        json.dumps(sp["voice"])
        for sp in json.loads((tiny / "manifest.json").read_text())["speakers"].values()
    }
    assert not voices & {json.dumps(sp["voice"]) for sp in other["speakers"].values()}


def test_interrupted_run_resumes_with_only_the_missing_clip(tiny, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(tiny, out)
    clips = clips_of(out)
    victim = clips[4]
    original = load_motion(out / victim["motion"])
    original_wav = (out / victim["audio"]).read_bytes()
    (out / victim["motion"]).unlink()  # as if killed between the wav and the motion file
    (out / victim["audio"]).write_bytes(b"half a wav")
    stamps = {c["id"]: (out / c["motion"]).stat().st_mtime_ns for c in clips if c is not victim}
    manifest = generate_corpus(out, TINY, workers=2, progress=False)
    assert len(manifest["clips"]) == 9
    for c in clips:
        if c is not victim:  # untouched
            assert (out / c["motion"]).stat().st_mtime_ns == stamps[c["id"]]
    redone = load_motion(out / victim["motion"])
    np.testing.assert_array_equal(redone.params, original.params)
    assert redone.meta == original.meta
    assert (out / victim["audio"]).read_bytes() == original_wav


KILLED = CorpusConfig(speakers=3, sentences=40, heldout=1)


def _corpus_until(out: Path, clips: int) -> subprocess.Popen:
    """`adamesh corpus` with two workers, in its own process group, once `clips` clips are written."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adamesh",
            "corpus",
            "--out",
            str(out),
            "--speakers",
            "3",
            "--sentences",
            "40",
            "--heldout",
            "1",
            "--workers",
            "2",
        ],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while len(list(out.glob("clips/*/*.npz"))) < clips:
        assert proc.poll() is None and time.time() < deadline, "finished or stuck before the kill"
        time.sleep(0.01)
    return proc


def test_killed_corpus_runs_leave_no_partial_and_resume_to_the_same_bytes(tmp_path):
    reference = tmp_path / "reference"
    generate_corpus(reference, KILLED, workers=1, progress=False)
    out = tmp_path / "killed"
    proc = _corpus_until(out, 5)
    os.kill(proc.pid, signal.SIGTERM)  # the parent only: it stops its workers and cleans up
    assert proc.wait(60) == 143 and proc.stderr.read().endswith("adamesh: terminated\n")
    assert not list(out.rglob(".*partial*")) and not (out / "manifest.json").exists()
    proc = _corpus_until(out, 60)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: nothing runs, nothing cleans up
    proc.wait(60)
    assert (
        main(
            [
                "corpus",
                "--out",
                str(out),
                "--speakers",
                "3",
                "--sentences",
                "40",
                "--heldout",
                "1",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    assert not list(out.rglob(".*partial*"))
    a, b = (json.loads((d / "manifest.json").read_text()) for d in (reference, out))
    for m in (a, b):
        del m["stats"]
    assert a == b and len(a["clips"]) == 120
    for clip in a["clips"]:
        assert (reference / clip["audio"]).read_bytes() == (out / clip["audio"]).read_bytes(), clip["id"]
        m1, m2 = load_motion(reference / clip["motion"]), load_motion(out / clip["motion"])
        np.testing.assert_array_equal(m1.params, m2.params)
        assert m1.meta == m2.meta


def test_a_run_that_fails_before_its_first_clip_leaves_nothing(tmp_path, monkeypatch):
    def broken(self, text, voice):
        raise AdameshError("espeak-ng failed")

    monkeypatch.setattr(Espeak, "synthesize", broken)  # the forked worker inherits it
    with pytest.raises(AdameshError, match="espeak-ng failed"):
        generate_corpus(tmp_path / "c", TINY, workers=1, progress=False)
    assert not (tmp_path / "c").exists()
    mine = tmp_path / "mine"  # a folder that was there before keeps what it had
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(AdameshError):
        generate_corpus(mine, TINY, workers=1, progress=False)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_other_settings_in_the_same_folder_are_refused(tiny, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(tiny, out)
    settings = (out / "corpus.json").read_text()
    for cfg in (replace(TINY, sentences=4), replace(TINY, seed=7), replace(TINY, fps=30.0)):
        with pytest.raises(AdameshError, match="other settings"):
            generate_corpus(out, cfg, workers=1, progress=False)
    assert (out / "corpus.json").read_text() == settings


@pytest.mark.parametrize(
    "cfg",
    [
        CorpusConfig(speakers=1, heldout=1),
        CorpusConfig(speakers=3, heldout=0),
        CorpusConfig(speakers=3, heldout=3),
        CorpusConfig(speakers=3, sentences=1, heldout=1),
    ],
)
def test_impossible_configurations(cfg, tmp_path):
    with pytest.raises(AdameshError):
        generate_corpus(tmp_path / "c", cfg, workers=1, progress=False)
    assert not (tmp_path / "c").exists()


def test_espeak_says_the_same_text_the_same_way_every_time():
    """espeak keeps state between utterances (its pitch flutter phase): without care the same
    sentence came out a few samples longer or shorter depending on what was said before."""
    engine = Espeak.instance()
    text, voice = "Would you bring me a cup of warm milk, please?", Voice("en-us+m3", rate=170)
    first = engine.synthesize(text, voice)
    for other in ("Something else, said first.", "And a third thing"):
        engine.synthesize(other, Voice("en-gb-scotland+f2", pitch=70))
        again = engine.synthesize(text, voice)
        np.testing.assert_array_equal(again.audio, first.audio)
        assert again.phonemes == first.phonemes and again.words == first.words
    assert len(first.words) == 10 and first.phonemes[0][1] == 0


def test_every_voice_says_a_sentence_the_same_way_in_every_process_and_order():
    """en+f2 breathes: its noise came from a generator seeded per process, so every run (and
    every worker) made other samples. Two processes, each voice of the corpus in opposite orders."""
    code = (
        "import hashlib, json, sys; from adamesh.data.synthetic.corpus import ACCENTS, VARIANTS; "
        "from adamesh.data.synthetic.espeak import Espeak, Voice; "
        "names = [f'{a}+{v}' for a in sorted(set(ACCENTS)) for v in VARIANTS]; "
        "names = names[::-1] if sys.argv[1] == 'reversed' else names; "
        "print(json.dumps({n: hashlib.sha256(Espeak.instance().synthesize('Bring me a cup of warm milk.', Voice(n))"
        ".audio.tobytes()).hexdigest() for n in names}))"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code, order], capture_output=True, text=True, check=True).stdout
        for order in ("forward", "reversed")
    ]
    forward, backward = (json.loads(r) for r in runs)
    assert len(forward) == 4 * 30 and forward == backward


# --------------------------------------------------------------------------- ground truth vs phone timing


@pytest.fixture(scope="module")
def clips(small):
    root, manifest = small
    out = []
    for c in manifest["clips"]:
        audio, rate = sf.read(root / c["audio"], dtype="float32")
        assert rate == SAMPLE_RATE
        out.append((c, audio, load_motion(root / c["motion"])))
    return out


def centre_frames(motion, names) -> list[int]:
    """The frame that shows the middle of each phone in `names`: the face leads the sound by
    ARTICULATORY_LEAD, so the frame containing that much before the phone's middle."""
    from adamesh.data.synthetic.animation import ARTICULATORY_LEAD

    return [
        int(np.floor((0.5 * (s + e) - ARTICULATORY_LEAD) * motion.fps))
        for p, s, e, _ in motion.meta["phones"]
        if p in names
    ]


def test_lips_close_on_every_bilabial(clips):
    jaw, close = ARKIT.index("jawOpen"), ARKIT.index("mouthClose")
    n = 0
    for _, _, m in clips:
        for i in centre_frames(m, {"P", "B", "M"}):
            gap = m.params[i, jaw] - m.params[i, close]
            assert gap < 0.03, (m.meta["text"], i, gap)
            n += 1
    assert n >= 10  # the test saw bilabials


def test_open_vowels_open_the_jaw_and_rounded_phones_round_the_lips(clips):
    def mean(names, value):
        v = [value(m.params[i]) for _, _, m in clips for i in centre_frames(m, names)]
        assert len(v) >= 3, names
        return float(np.mean(v))

    def jaw(p):
        return p[ARKIT.index("jawOpen")]

    def rounding(p):
        return p[ARKIT.index("mouthPucker")] + p[ARKIT.index("mouthFunnel")]

    assert mean({"AA", "AE"}, jaw) > mean({"SIL"}, jaw) + 0.2
    assert mean({"AA", "AE"}, jaw) > mean({"IY"}, jaw)
    assert mean({"UW", "OW", "W"}, rounding) > mean({"IY"}, rounding) + 0.2


def test_clip_files_agree_with_each_other(clips, small):
    cfg = small[1]["config"]
    long_pauses = 0
    for c, audio, m in clips:
        assert m.n_frames == frame_count(len(audio), SAMPLE_RATE, m.fps) and m.fps == cfg["fps"]
        assert c["seconds"] == pytest.approx(m.duration, abs=1e-3)
        assert (
            cfg["min_seconds"]
            <= len(audio) / SAMPLE_RATE
            <= cfg["max_seconds"] + cfg["long_pause_seconds"] + 0.2
        )
        lo, hi = np.array(ARKIT.lower), np.array(ARKIT.upper)
        assert (m.params >= lo).all() and (m.params <= hi).all() and np.isfinite(m.params).all()
        assert m.meta["speaker"] == c["speaker"] and m.meta["text"] == c["text"]
        phones = m.meta["phones"]
        assert all(p[0] in PHONES for p in phones) and phones[0][0] == phones[-1][0] == "SIL"
        assert phones[0][1] == 0 and phones[-1][2] == pytest.approx(len(audio) / SAMPLE_RATE, abs=1e-3)
        for k, (a, b) in enumerate(pairwise(phones)):
            assert a[1] < a[2] <= b[1] + 2e-4
            assert abs(b[1] - a[2]) < 2e-4, (k, a, b)  # contiguous
        # the audio is quiet before the first phone (the lead silence and the few ms before espeak's
        # first phoneme event), silent in the tail, and speech in between
        lead = int(phones[0][2] * SAMPLE_RATE)
        assert np.abs(audio[: lead - 1]).max() < 0.02 and not audio[-int(0.19 * SAMPLE_RATE) :].any()
        assert np.abs(audio[lead:]).max() > 0.05
        # in the lead silence the jaw only opens to breathe in (up to the speaker's inhale); it moves in speech
        jaw = m.channel("jawOpen")
        inhale = small[1]["speakers"][c["speaker"]]["expression_style"]["inhale"]
        lead_silence = (np.arange(m.n_frames) + 0.5) / m.fps < phones[0][2] - 0.12
        assert lead_silence.any() and jaw[lead_silence].max() < inhale + 0.05
        assert np.ptp(jaw) > 0.1
        # ... and stays closed through a long pause after the sentence
        tail_silence = (np.arange(m.n_frames) + 0.5) / m.fps > phones[-1][1] + 0.3
        assert not tail_silence.any() or jaw[tail_silence].max() < 0.05
        long_pauses += phones[0][2] - phones[0][1] > 1.2 or phones[-1][2] - phones[-1][1] > 1.2
    assert 0 < long_pauses < len(clips) / 2  # some clips pause for seconds, most do not


# --------------------------------------------------------------------------- speakers and styles


def test_default_speakers_use_many_real_voices():
    speakers = make_speakers(CorpusConfig())
    assert len(speakers) == 48 and len({s.id for s in speakers}) == 48
    names = {s.voice.name for s in speakers}
    assert len(names) >= 24
    assert sum(s.split == "heldout" for s in speakers) == 8
    engine = Espeak.instance()
    for name in sorted(names):  # every voice exists in espeak-ng and speaks
        assert np.abs(engine.synthesize("Hello.", Voice(name)).audio).max() > 0.01, name
    styles = np.array([[getattr(s.expression, f.name) for f in fields(ExpressionStyle)] for s in speakers])
    assert (styles.std(0) > 0).all()  # every parameter varies between speakers
    for s in speakers:
        for style in (s.expression, s.pose):
            for k, (lo, hi) in style.RANGES.items():
                assert lo <= getattr(style, k) <= hi


def test_manifest_stores_every_style_parameter(small):
    manifest = small[1]
    for sp in make_speakers(SMALL):
        entry = manifest["speakers"][sp.id]
        assert len(entry["expression_style"]) >= 6 and len(entry["pose_style"]) >= 5
        for key, value in entry["expression_style"].items():
            assert value == pytest.approx(getattr(sp.expression, key), abs=1e-5)
        for key, value in entry["pose_style"].items():
            assert value == pytest.approx(getattr(sp.pose, key), abs=1e-5)
        assert entry["voice"]["name"] == sp.voice.name and entry["split"] == sp.split


MOUTH = [i for i, c in enumerate(ARKIT.channels) if c.startswith(("mouth", "jaw"))]
HEAD = list(range(*ARKIT.rotation)) + list(range(*ARKIT.translation))


def speaker(expression: ExpressionStyle | None = None, pose: PoseStyle | None = None) -> Speaker:
    return Speaker(
        "x", "train", Voice("en-us+m3", rate=170), expression or ExpressionStyle(), pose or PoseStyle()
    )


def test_expression_style_changes_the_mouth_and_personalisation_beats_the_average():
    cfg = CorpusConfig()
    styles = {
        a: ExpressionStyle(articulation=a, inhale=0.0) for a in (0.6, 1.0, 1.4)
    }  # the breath is not scaled
    motion = {
        (a, k): synthesize_clip(speaker(s), k, cfg, 0)[1].params for a, s in styles.items() for k in (0, 1)
    }
    assert (
        synthesize_clip(speaker(styles[0.6]), 0, cfg, 0)[0].shape
        == synthesize_clip(speaker(styles[1.4]), 0, cfg, 0)[0].shape
    )  # the same sentence and voice
    lo, avg, hi = motion[0.6, 0], motion[1.0, 0], motion[1.4, 0]
    np.testing.assert_array_equal(lo[:, HEAD], hi[:, HEAD])  # the head does not depend on the face style
    assert np.abs(lo[:, MOUTH] - hi[:, MOUTH]).mean() > 0.01
    jaw = ARKIT.index("jawOpen")
    assert np.ptp(hi[:, jaw]) > 2 * np.ptp(lo[:, jaw])
    # articulation scales all mouth movement: 1.4 / 0.6 where nothing clips
    ok = hi[:, jaw] < 0.99
    np.testing.assert_allclose(hi[ok, jaw], lo[ok, jaw] * 1.4 / 0.6, atol=1e-4)

    def error(a, b):
        return float(np.abs(a[:, MOUTH] - b[:, MOUTH]).mean())

    for a in (0.6, 1.4):
        own = motion[a, 0]
        agnostic = error(avg, own)  # one motion for everybody: the mean style
        # the speaker's scale, estimated on another sentence (a reference clip) and applied to this one
        ref, ref_avg = motion[a, 1][:, jaw], motion[1.0, 1][:, jaw]
        scale = float(ref @ ref_avg / (ref_avg @ ref_avg))
        assert scale == pytest.approx(a, rel=0.05)
        personal = error(np.clip(avg * scale, 0, 1), own)
        assert agnostic > 0.005 and personal < 0.2 * agnostic, (a, agnostic, personal)
        assert error(synthesize_clip(speaker(styles[a]), 0, cfg, 0)[1].params, own) == 0


def test_nod_amplitude_moves_the_head_more():
    cfg = CorpusConfig()
    still = synthesize_clip(speaker(pose=PoseStyle(nod=0.0)), 2, cfg, 1)[1]
    nodding = synthesize_clip(speaker(pose=PoseStyle(nod=0.12)), 2, cfg, 1)[1]
    np.testing.assert_array_equal(still.params[:, :52], nodding.params[:, :52])  # the face is the same
    pitch = ARKIT.index("headPitch")
    assert np.std(nodding.params[:, pitch]) > np.std(still.params[:, pitch]) + 0.01
    assert nodding.params[:, pitch].max() > still.params[:, pitch].max() + 0.05  # nods go face down
    for name in ("headYaw", "headRoll"):  # a nod is a pitch movement only
        np.testing.assert_array_equal(still.channel(name), nodding.channel(name))


def test_roles_of_held_out_and_training_speakers(small):
    manifest = small[1]
    cfg = SMALL
    for sp_id, sp in manifest["speakers"].items():
        clips = [c for c in manifest["clips"] if c["speaker"] == sp_id]
        assert len(clips) == cfg.sentences
        roles = [c["role"] for c in clips]
        if sp["split"] == "heldout":
            n_ref = roles.count("reference")
            assert roles == ["reference"] * n_ref + ["test"] * (len(roles) - n_ref)
            assert 1 <= n_ref < len(roles)
            ref = sum(c["seconds"] for c in clips[:n_ref])
            assert ref >= cfg.reference_seconds  # 8 clips of 2-6 s: there is enough for a full set
            assert ref - clips[n_ref - 1]["seconds"] < cfg.reference_seconds  # and no more than needed
        else:
            assert roles[-1] == "val" and roles.count("val") == max(1, round(cfg.val_fraction * len(roles)))
            assert set(roles) == {"train", "val"} and roles.index("val") == roles.count("train")
    assert sorted(manifest["speakers"]) == ["spk000", "spk001", "spk002"]
    assert manifest["speakers"]["spk002"]["split"] == "heldout"


def test_held_out_speakers_keep_a_test_clip_in_small_corpora(tiny):
    held = [c["role"] for c in clips_of(tiny) if c["speaker"] == "spk002"]
    assert held[0] == "reference" and held[-1] == "test"  # 3 clips are under 20 s: still one to test


# --------------------------------------------------------------------------- command line


def test_cli_writes_a_corpus(tmp_path, capsys):
    out = tmp_path / "corpus"
    assert (
        main(
            [
                "corpus",
                "--out",
                str(out),
                "--speakers",
                "3",
                "--sentences",
                "2",
                "--heldout",
                "1",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["clips"]) == 6 and manifest["config"]["seed"] == 0
    assert all((out / c["audio"]).is_file() and (out / c["motion"]).is_file() for c in manifest["clips"])
    assert {c["role"] for c in manifest["clips"] if c["speaker"] == "spk002"} == {"reference", "test"}
    printed = capsys.readouterr().out
    assert "6 clips" in printed and "2 training, 1 held out" in printed and "manifest.json" in printed


@pytest.mark.parametrize(
    "args",
    [
        ["--speakers", "3", "--heldout", "5"],
        ["--speakers", "1", "--heldout", "1"],
        ["--speakers", "3", "--sentences", "1", "--heldout", "1"],
    ],
)
def test_cli_refuses_impossible_corpora(tmp_path, capsys, args):
    out = tmp_path / "corpus"
    assert main(["corpus", "--out", str(out), "--workers", "1", *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("adamesh: error:"), err
    assert not out.exists()


def test_breath_before_each_phrase():
    """The mouth opens to breathe in before the first phrase and after long pauses, not short ones."""
    phones = [
        Phone("SIL", 0.0, 0.7),
        Phone("AA", 0.7, 1.0),
        Phone("SIL", 1.0, 1.1),
        Phone("AA", 1.1, 1.4),
        Phone("SIL", 1.4, 1.8),
        Phone("AA", 1.8, 2.1),
        Phone("SIL", 2.1, 2.5),
    ]
    t = np.arange(0, 2.5, 0.01) + 0.005
    breath = inhalation(phones, t)
    assert breath.max() == pytest.approx(1, abs=1e-3) and breath.min() == 0
    peak = t[np.argmax(np.where(t < 0.7, breath, 0))]
    assert peak == pytest.approx(0.7 - INHALE_SECONDS / 2, abs=0.01)
    assert (breath[t < 0.7 - INHALE_SECONDS] == 0).all() and (breath[(t > 0.7) & (t < 1.1)] == 0).all()
    assert breath[(t > 1.4) & (t < 1.8)].max() > 0.9  # a 0.4 s pause: a (shorter) breath
    assert (breath[t > 1.8] == 0).all()
    # it opens the jaw by the speaker's inhale, and only then
    style = ExpressionStyle(inhale=0.3)
    params = animate(phones, 62, 25.0, style, PoseStyle(), "statement", np.random.default_rng(0))
    frame = int((0.7 - INHALE_SECONDS / 2) * 25)
    assert params[frame, ARKIT.index("jawOpen")] == pytest.approx(0.3, abs=0.05)
    quiet = animate(
        phones, 62, 25.0, replace(style, inhale=0.0), PoseStyle(), "statement", np.random.default_rng(0)
    )
    assert quiet[frame, ARKIT.index("jawOpen")] < 0.05


def test_the_shipped_timing_speech_is_what_the_generator_makes():
    from adamesh.adapt.timing import TIMING_SPEECH
    from adamesh.data.synthetic.corpus import timing_sentences

    made = timing_sentences()
    with np.load(TIMING_SPEECH, allow_pickle=False) as shipped:
        assert len(shipped.files) == len(made) == 8
        for i, x in enumerate(made):
            # after a change to the corpus generator: adamesh.data.synthetic.corpus.write_timing_speech()
            np.testing.assert_array_equal(shipped[f"arr_{i}"], x)
    assert all(2.5 < len(x) / 16000 < 10 for x in made)
