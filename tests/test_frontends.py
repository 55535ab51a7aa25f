"""Speech front-ends without weights (mel, phonetic): row counts, timing, content, cache, units."""

from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import DATA

from adamesh.audio import SAMPLE_RATE, frame_count, load_audio
from adamesh.errors import AdameshError
from adamesh.frontends import FeatureCache, Features, load_frontend, make_frontend, save_frontend
from adamesh.frontends.base import frame_times, nearest_rows
from adamesh.frontends.mel import ANALYSIS_RATE
from adamesh.frontends.phonetic import align_phones, prosody, recognise_phones
from adamesh.phones import PHONES

LIBRIVOX = DATA / "speech" / "librivox"
SR = SAMPLE_RATE
N_PHONES = len(PHONES)
ENERGY, PITCH, VOICING = N_PHONES + 80, N_PHONES + 81, N_PHONES + 82  # phonetic columns (n_mels=80)


def noise(n: int, std: float = 0.05, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, std, n).astype(np.float32)


def harmonic(f0: float, seconds: float, amp: float = 0.3) -> np.ndarray:
    """A voiced-like tone: four harmonics of f0, falling in level."""
    t = np.arange(round(seconds * SR)) / SR
    return sum(amp / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 5)).astype(np.float32)


@pytest.fixture(scope="module")
def mel():
    return make_frontend("mel")


@pytest.fixture(scope="module")
def phonetic():
    return make_frontend("phonetic")


@pytest.fixture(scope="module")
def speech():
    """Two short espeak sentences at 16 kHz (the front-ends' rate)."""
    from adamesh.audio import resample
    from adamesh.data.synthetic.espeak import Espeak, Voice

    out = []
    for text, voice in (
        ("The quick brown fox jumps over the lazy dog.", Voice("en-us+m1")),
        ("Would you bring me a cup of warm milk, please?", Voice("en-us+f2", pitch=60)),
    ):
        syn = Espeak.instance().synthesize(text, voice)
        out.append(resample(syn.audio, syn.sample_rate, SR))
    return out


# --------------------------------------------------------------------------- row counts


EDGE_LENGTHS = [
    1,
    160,
    319,
    320,
    321,
    639,
    640,
    641,
    10 * 640 - 1,
    10 * 640,
    10 * 640 + 1,
    10 * 640 + 319,
    10 * 640 + 320,
    10 * 640 + 321,
    10 * 640 + 639,
]


@pytest.mark.parametrize("name", ["mel", "phonetic", "whisper"])
@pytest.mark.parametrize("fps", [25, 30, 29.97])
def test_one_row_per_motion_frame_at_clip_end_edge_cases(name, fps):
    fe = make_frontend(name)
    for n in EDGE_LENGTHS:
        audio = noise(n, seed=n)
        feats = fe(audio, fps)
        expected = frame_count(n, SR, fps)
        # halves rounded up, at least one frame: checked independently of frame_count
        rate = Fraction(str(fps))
        assert expected == max(1, int(n * rate / SR + Fraction(1, 2)))
        assert feats.features.shape == (expected, fe.dim), (name, fps, n)
        assert feats.units.shape == (expected,) and feats.units.dtype == np.int64
        assert feats.features.dtype == np.float32 and np.isfinite(feats.features).all()
        assert feats.fps == fps
        assert len(fe(audio, fps, n_frames=expected + 3)) == expected + 3


def test_half_frame_rounds_up_at_25_fps(mel):
    # 10 frames of 640 samples, then 319 / 320 / 321 samples of an 11th: rounded down, up, up
    assert [len(mel(noise(6400 + k), 25)) for k in (319, 320, 321)] == [10, 11, 11]
    assert len(mel(noise(1), 25)) == 1 and len(mel(np.zeros(0, np.float32), 25)) == 1


def test_features_fit_trims_and_edge_pads():
    rng = np.random.default_rng(0)
    f = Features(rng.normal(size=(5, 3)).astype(np.float32), np.arange(5), 25.0)
    assert f.fit(5) is f
    short = f.fit(3)
    np.testing.assert_array_equal(short.features, f.features[:3])
    np.testing.assert_array_equal(short.units, [0, 1, 2])
    long = f.fit(8)
    np.testing.assert_array_equal(long.features[:5], f.features)
    np.testing.assert_array_equal(long.features[5:], np.repeat(f.features[4:], 3, 0))
    np.testing.assert_array_equal(long.units, [0, 1, 2, 3, 4, 4, 4, 4])
    assert long.fps == 25.0


# --------------------------------------------------------------------------- timing over a long file


def bursts(fps: float, n_samples: int) -> tuple[np.ndarray, list[float]]:
    """Quiet noise with 8 ms 2 kHz bursts every ~7.3 s, and one in the second-to-last frame.

    Each burst sits 0.3, 0.5 or 0.7 of the way through a frame, so the frame it belongs to is
    unambiguous; returns the audio and the burst times.
    """
    n_frames = frame_count(n_samples, SR, fps)
    times = [(np.floor((0.3 + 7.3 * k) * fps) + (0.3, 0.5, 0.7)[k % 3]) / fps for k in range(17)]
    times.append((n_frames - 1.5) / fps)
    audio = noise(n_samples, 1e-3)
    win = np.hanning(129)
    for t in times:
        c = round(t * SR)
        audio[c - 64 : c + 65] += 0.5 * win * np.sin(2 * np.pi * 2000 * np.arange(-64, 65) / SR)
    return audio, times


def peak_frames(energy: np.ndarray, times: list[float], fps: float) -> tuple[list[int], list[int]]:
    found, expected = [], []
    for t in times:
        i = int(np.floor(t * fps))
        lo = max(0, i - 6)
        found.append(lo + int(np.argmax(energy[lo : i + 7])))
        expected.append(i)
    return found, expected


@pytest.mark.parametrize("fps", [25, 30, 29.97])
def test_mel_does_not_drift_over_two_minutes(mel, fps):
    audio, times = bursts(fps, 120 * SR)
    feats = mel(audio, fps)
    assert len(feats) == frame_count(len(audio), SR, fps)
    found, expected = peak_frames(feats.features.sum(1), times, fps)
    assert found == expected
    assert expected[-1] == len(feats) - 2  # the last burst, at the very end of the file


def test_phonetic_energy_does_not_drift_over_two_minutes(phonetic):
    fps = 29.97  # a rate where a rounding error in frame timing adds up: 3.6 frames over 120 s at 30
    audio, times = bursts(fps, 120 * SR)
    feats = phonetic(audio, fps)
    assert len(feats) == frame_count(len(audio), SR, fps)
    found, expected = peak_frames(feats.features[:, ENERGY], times, fps)
    assert found == expected


@pytest.mark.parametrize("fps", [25, 29.97])
def test_prosody_is_centred_on_the_frame(phonetic, fps):
    """Noise whose level rises 30 dB/s: the energy feature must be the energy of the 40 ms around
    each frame centre (a feature late by 5 ms would read 0.15 dB low)."""
    t = np.arange(2 * SR) / SR
    audio = noise(len(t), 1.0, seed=3) * (1e-4 * 10 ** (30 * t / 20)).astype(np.float32)
    feats = phonetic(audio, fps)
    centres = frame_times(len(feats), fps)
    keep = (centres > 0.1) & (centres < 1.9)

    def energy_db(c):
        w = audio[round(c * SR) - 320 : round(c * SR) + 320].astype(np.float64)
        return 20 * np.log10(np.sqrt(((w - w.mean()) ** 2).mean()) + 1e-5)

    reference = np.array([energy_db(c) for c in centres[keep]])
    error = feats.features[keep, ENERGY] * 20 - reference
    assert abs(error.mean()) < 0.03, error.mean()
    assert np.abs(error).max() < 0.5


# --------------------------------------------------------------------------- phonetic content


def librivox_clips(n: int):
    transcript = LIBRIVOX / "transcription"
    if not transcript.is_file():
        pytest.skip(f"LibriVox speech not found at {LIBRIVOX} (../shared/data is absent)")
    texts = {}
    for line in transcript.read_text().splitlines():
        m = re.match(r"\s*<s>\s*(.*?)\s*</s>\s*\(([^)]+)\)\s*$", line)
        if m:
            texts[m.group(2)] = m.group(1)
    wavs = sorted((p for p in LIBRIVOX.glob("*.wav") if p.stem in texts), key=lambda p: p.stat().st_size)
    if not wavs:
        pytest.skip(f"no transcribed LibriVox wav files in {LIBRIVOX}")
    return [(load_audio(w)[0], texts[w.stem]) for w in wavs[:n]]


def test_phonetic_units_follow_the_forced_alignment_of_real_speech(phonetic):
    agree, silence, frames = 0, 0, 0
    for audio, text in librivox_clips(2):
        labels = align_phones(audio, text)
        assert labels is not None, text
        feats = phonetic(audio, 25)
        reference = nearest_rows(labels, ANALYSIS_RATE, frame_times(len(feats), 25))
        agree += int((feats.units == reference).sum())
        silence += int((reference == 0).sum())
        frames += len(feats)
    assert agree / frames > 0.4, agree / frames
    assert agree / frames > 3 * silence / frames  # always answering SIL scores ~0.1


def test_phonetic_units_match_the_soft_one_hot(phonetic, speech):
    feats = phonetic(speech[0], 25)
    onehot = feats.features[:, :N_PHONES]
    assert np.allclose(onehot.sum(1), 1, atol=1e-5) and (onehot >= 0).all()
    # the unit is one of the two phones the frame's one-hot interpolates between, mostly the larger
    assert (onehot[np.arange(len(feats)), feats.units] > 0).all()
    assert (onehot.argmax(1) == feats.units).mean() > 0.8
    assert len(set(feats.units.tolist())) > 8  # a sentence has many phones


@pytest.mark.parametrize("silence", ["digital", "noise floor"])
def test_silence_is_sil_and_unvoiced(phonetic, speech, silence):
    quiet = np.zeros(2 * SR, np.float32) if silence == "digital" else noise(2 * SR, 1e-4)
    for before in [None, *speech]:  # whatever was decoded before
        if before is not None:
            phonetic(before, 25)
        feats = phonetic(quiet, 25)
        assert (feats.units == 0).all(), np.unique(feats.units)
        assert (feats.features[:, VOICING] == 0).all() and (feats.features[:, PITCH] == 0).all()
        np.testing.assert_allclose(feats.features[:, :N_PHONES].sum(1), 1, atol=1e-6)
        assert (feats.features[:, 0] > 0.999).all()  # the SIL one-hot


def test_recognised_phones_do_not_depend_on_the_previous_file(speech):
    from adamesh.frontends import phonetic as module

    module._phone_decoder.cache_clear()
    first = [recognise_phones(a) for a in speech]
    for order in (speech, speech[::-1], speech):
        again = {id(a): recognise_phones(a) for a in order}
        for a, labels in zip(speech, first):
            np.testing.assert_array_equal(again[id(a)], labels)


def test_a_decoder_left_inside_an_utterance_still_recognises(speech):
    from adamesh.frontends.phonetic import _phone_decoder

    first = recognise_phones(speech[0])
    _phone_decoder().start_utt()  # what an interrupted call leaves behind
    np.testing.assert_array_equal(recognise_phones(speech[0]), first)


@pytest.mark.parametrize("f0s", [(150, 300), (200, 100), (110, 330)])
def test_pitch_in_semitones(phonetic, f0s):
    """A tone that jumps from f0s[0] to f0s[1] halfway: the pitch feature (semitones / 12 about the
    median) jumps by log2 of their ratio, and both halves are voiced."""
    audio = np.concatenate([harmonic(f0s[0], 1.0), harmonic(f0s[1], 1.0)])
    feats = phonetic(audio, 25)
    first, second = feats.features[3:22], feats.features[28:47]
    for half in (first, second):
        assert (half[:, VOICING] > 0.9).all()
        assert np.ptp(half[:, PITCH]) < 0.05  # steady within each half (whole-sample lags at 330 Hz)
    jump = second[:, PITCH].mean() - first[:, PITCH].mean()
    assert jump == pytest.approx(np.log2(f0s[1] / f0s[0]), abs=0.04)
    # about the median: one half sits at 0 or both straddle it
    assert first[:, PITCH].mean() * second[:, PITCH].mean() <= 1e-6


def test_prosody_pitch_of_steady_voices():
    for f0 in (80, 120, 200, 350):
        p = prosody(harmonic(f0, 0.5))
        inner = p[5:-5]
        assert (inner[:, 2] > 0.9).all(), f0
        np.testing.assert_allclose(
            inner[:, 1], 0, atol=0.03
        )  # one pitch: all at the median (whole-sample lags)


# --------------------------------------------------------------------------- mel content


def test_mel_mean_normalisation_ignores_the_level(mel, speech):
    audio = 0.05 * speech[0] / np.abs(speech[0]).max() + noise(len(speech[0]), 1e-3)
    a, b = mel(audio, 25).features, mel(10 * audio, 25).features
    assert np.abs(a).max() > 1  # the features are not trivially zero
    assert np.abs(a - b).mean() < 1e-3 and np.abs(a - b).max() < 0.02  # the 1e-8 power floor aside


def test_mel_tone_lights_its_band(mel):
    audio = np.concatenate(
        [
            noise(SR, 1e-3),
            noise(SR, 1e-3, seed=1) + 0.3 * np.sin(2 * np.pi * 1000 * np.arange(SR) / SR).astype(np.float32),
        ]
    )
    feats = mel(audio, 25).features
    n_mels = 80
    change = feats[30:48].mean(0) - feats[2:20].mean(0)  # tone on minus tone off
    # HTK mel scale, 20-7600 Hz: the band whose centre is nearest 1 kHz
    to_mel = lambda f: 2595 * np.log10(1 + f / 700)
    centres = 700 * (10 ** (np.linspace(to_mel(20), to_mel(7600), n_mels + 2)[1:-1] / 2595) - 1)
    band = int(np.argmin(np.abs(centres - 1000)))
    assert int(np.argmax(change[:n_mels])) == band
    assert int(np.argmax(change[n_mels:])) == band
    far = np.abs(centres - 1000) > 1000
    assert change[band] > change[:n_mels][far].max() + 5  # log power: far bands barely move


# --------------------------------------------------------------------------- feature cache


def write_wav(path: Path, audio: np.ndarray) -> Path:
    sf.write(path, audio, SR, subtype="PCM_16")
    return path


def forbid_compute(monkeypatch, fe):
    def compute(*args, **kwargs):
        raise AssertionError("computed again instead of read from the cache")

    monkeypatch.setattr(fe, "compute", compute)


def count_compute(monkeypatch, fe) -> list:
    calls = []
    original = type(fe).compute

    def compute(audio, n_frames, fps):
        calls.append(n_frames)
        return original(fe, audio, n_frames, fps)

    monkeypatch.setattr(fe, "compute", compute)
    return calls


def test_cache_computes_once_then_reads_from_disk(tmp_path, monkeypatch, speech):
    wav = write_wav(tmp_path / "a.wav", speech[0])
    fe = make_frontend("mel")
    cache = FeatureCache(tmp_path / "cache")
    calls = count_compute(monkeypatch, fe)
    first = cache.get(fe, wav, 25)
    assert calls == [frame_count(len(load_audio(wav)[0]), SR, 25)]
    entry = cache.path_for(fe, wav, 25)
    assert entry.is_file() and entry.is_relative_to(tmp_path / "cache")
    forbid_compute(monkeypatch, fe)
    second = cache.get(fe, wav, 25)
    np.testing.assert_array_equal(first.features, second.features)
    np.testing.assert_array_equal(first.units, second.units)
    np.testing.assert_array_equal(first.features, make_frontend("mel")(load_audio(wav)[0], 25).features)
    assert len(cache.get(fe, wav, 25, n_frames=len(first) + 2)) == len(first) + 2


def test_cache_key_follows_the_configuration(tmp_path, monkeypatch, speech):
    wav = write_wav(tmp_path / "a.wav", speech[0])
    cache = FeatureCache(tmp_path / "cache")
    assert make_frontend("mel").key() == make_frontend("mel").key()
    keys = {
        make_frontend("mel").key(),
        make_frontend("mel", n_mels=40).key(),
        make_frontend("phonetic").key(),
    }
    assert len(keys) == 3
    cache.get(make_frontend("mel"), wav, 25)
    small = make_frontend("mel", n_mels=40)
    calls = count_compute(monkeypatch, small)
    feats = cache.get(small, wav, 25)
    assert len(calls) == 1 and feats.features.shape[1] == 80
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 2
    # the frame rate is part of the entry
    at30 = cache.get(small, wav, 30)
    assert len(calls) == 2 and len(at30) == frame_count(len(load_audio(wav)[0]), SR, 30)


def test_new_audio_content_gives_a_new_entry(tmp_path, monkeypatch, speech):
    wav = write_wav(tmp_path / "a.wav", speech[0])
    fe = make_frontend("mel")
    cache = FeatureCache(tmp_path / "cache")
    old_entry = cache.path_for(fe, wav, 25)
    old = cache.get(fe, wav, 25)
    write_wav(wav, speech[1])  # same name, other speech
    assert cache.path_for(fe, wav, 25) != old_entry
    calls = count_compute(monkeypatch, fe)
    new = cache.get(fe, wav, 25)
    assert len(calls) == 1
    assert len(new) != len(old) or not np.array_equal(new.features, old.features)
    np.testing.assert_array_equal(new.features, make_frontend("mel")(load_audio(wav)[0], 25).features)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_cache_entry_is_recomputed(tmp_path, monkeypatch, speech, damage):
    wav = write_wav(tmp_path / "a.wav", speech[0])
    fe = make_frontend("mel")
    cache = FeatureCache(tmp_path / "cache")
    good = cache.get(fe, wav, 25)
    entry = cache.path_for(fe, wav, 25)
    blob = entry.read_bytes()
    entry.write_bytes(
        {"garbage": b"not an npz at all", "truncated": blob[: len(blob) // 2], "empty": b""}[damage]
    )
    calls = count_compute(monkeypatch, fe)
    again = cache.get(fe, wav, 25)
    assert len(calls) == 1
    np.testing.assert_array_equal(again.features, good.features)
    forbid_compute(monkeypatch, fe)  # and the entry is whole again
    np.testing.assert_array_equal(cache.get(fe, wav, 25).features, good.features)


def test_from_file_goes_through_the_cache(tmp_path, monkeypatch, speech):
    wav = write_wav(tmp_path / "a.wav", speech[1] * 0.9)  # content no other test caches
    fe = make_frontend("mel")
    first = fe.from_file(wav, 25)
    default_root = Path(os.environ["ADAMESH_CACHE"]) / "features"
    assert FeatureCache().root == default_root
    assert FeatureCache().path_for(fe, wav, 25).is_file()
    forbid_compute(monkeypatch, fe)
    np.testing.assert_array_equal(fe.from_file(wav, 25).features, first.features)
    assert len(fe.from_file(wav, 25, n_frames=7)) == 7
    own = FeatureCache(tmp_path / "own")
    with pytest.raises(AssertionError, match="computed again"):
        fe.from_file(wav, 25, cache=own)  # another cache: not there yet


# --------------------------------------------------------------------------- k-means units


def test_mel_kmeans_units_and_save_load_round_trip(tmp_path, monkeypatch, speech):
    fe = make_frontend("mel")
    feats = [fe(a, 25) for a in speech]
    assert all((f.units == 0).all() for f in feats) and fe.units_model is None  # not fitted yet
    fe.fit_units(feats, k=8, seed=0)
    assert fe.n_units == 8 and fe.units_model.centroids.shape == (8, fe.dim)
    units = fe(speech[0], 25).units
    assert units.min() >= 0 and units.max() < 8 and len(np.unique(units)) >= 4
    # each frame's unit is its nearest centroid
    d = ((feats[0].features[:, None, :] - fe.units_model.centroids[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(units, d.argmin(1))

    save_frontend(fe, tmp_path)
    assert (tmp_path / "frontend_units.safetensors").is_file()
    loaded = load_frontend(tmp_path)
    assert loaded.name == "mel" and loaded.n_units == 8 and loaded.options() == fe.options()
    np.testing.assert_array_equal(loaded.units_model.centroids, fe.units_model.centroids)
    for a in speech:
        np.testing.assert_array_equal(loaded(a, 25).units, fe(a, 25).units)
    assert loaded.key() == fe.key()  # fitted units are applied after the cache: entries are shared

    # through the cache: the raw features are stored, the units applied on the way out
    wav = write_wav(tmp_path / "a.wav", speech[1])
    cache = FeatureCache(tmp_path / "cache")
    plain = cache.get(make_frontend("mel"), wav, 25)
    assert (plain.units == 0).all()
    forbid_compute(monkeypatch, loaded)
    np.testing.assert_array_equal(cache.get(loaded, wav, 25).units, fe(load_audio(wav)[0], 25).units)


def test_unfitted_and_unknown_front_ends(tmp_path):
    save_frontend(make_frontend("phonetic", n_mels=40), tmp_path)
    assert not (tmp_path / "frontend_units.safetensors").exists()
    loaded = load_frontend(tmp_path)
    assert loaded.name == "phonetic" and loaded.n_mels == 40 and loaded.dim == N_PHONES + 40 + 3
    with pytest.raises(AdameshError, match="unknown speech front-end"):
        make_frontend("mfcc")
    with pytest.raises(AdameshError, match="cannot read"):
        load_frontend(tmp_path / "missing")
    with pytest.raises(AdameshError, match="cannot fit 50 units"):
        make_frontend("mel").fit_units([make_frontend("mel")(noise(6400), 25)], k=50)
