"""The pose adapter's front-end: recognised phones + log-mel + prosody, with no downloaded weights.

pocketsphinx ships a US-English acoustic model trained on many human voices, and a phone language
model; its phone recogniser turns any voice into the same 40 phone classes, which is what lets a
model trained on synthetic voices work on real ones. Log-mel keeps what phones miss (how wide a
vowel is, loudness); energy and pitch carry the stress and intonation that head motion follows.

Per motion frame: a soft one-hot of the phone (interpolated at phone boundaries, 40), log-mel at
the frame centre (80), log energy, pitch in semitones about the utterance median (0 when
unvoiced) and a voicing score (3). Units: the recognised phone.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from adamesh.audio import SAMPLE_RATE
from adamesh.errors import AdameshError
from adamesh.frontends.base import Features, FrontEnd, frame_times, nearest_rows, sample_rows
from adamesh.frontends.mel import ANALYSIS_RATE, HOP, log_mel
from adamesh.phones import PHONE_INDEX, PHONES

PITCH_WINDOW = 640  # 40 ms: two periods of a 50 Hz voice
F0_MIN, F0_MAX = 60.0, 400.0


@functools.lru_cache(maxsize=1)
def _phone_decoder():
    try:
        from pocketsphinx import Decoder, get_model_path
    except ImportError:
        raise AdameshError("the phonetic front-end needs pocketsphinx; reinstall adamesh") from None
    model = os.path.join(get_model_path(), "en-us")
    return Decoder(
        hmm=os.path.join(model, "en-us"),
        allphone=os.path.join(model, "en-us-phone.lm.bin"),
        lm=None,
        beam=1e-20,
        pbeam=1e-20,
        lw=2.0,
        loglevel="FATAL",
    )


def recognise_phones(audio: np.ndarray) -> np.ndarray:
    """Phone index per 10 ms frame (pocketsphinx allphone decoding); SIL where nothing is found."""
    n = int(np.ceil(len(audio) / HOP))
    labels = np.zeros(n, np.int64)  # SIL
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    if len(audio) < 2 * PITCH_WINDOW or not pcm.any():  # too short, or digital silence (decoded as noise)
        return labels
    decoder = _phone_decoder()
    decoder.reinit_feat()  # its front-end keeps state across utterances: results depended on the last file
    pcm = pcm.tobytes()
    try:
        decoder.start_utt()
    except RuntimeError:  # an interrupted call (Ctrl-C, a timeout) left the shared decoder in its utterance
        decoder.end_utt()
        decoder.start_utt()
    try:
        decoder.process_raw(pcm, full_utt=True)
    finally:
        decoder.end_utt()
    for seg in decoder.seg():
        labels[max(seg.start_frame, 0) : min(seg.end_frame + 1, n)] = PHONE_INDEX.get(seg.word, 0)
    return labels


def prosody(audio: np.ndarray) -> np.ndarray:
    """(n, 3) at 100 Hz: log energy (dB / 20), pitch (semitones about the median / 12), voicing 0..1.

    Pitch by normalised autocorrelation over 40 ms windows: the shortest lag between 60 and 400 Hz
    with a peak near the highest; a frame is voiced when that peak is strong and not near silence.
    """
    n = int(np.ceil(len(audio) / HOP))
    x = np.pad(np.asarray(audio, np.float64), (PITCH_WINDOW // 2, PITCH_WINDOW + HOP * n))
    frames = np.lib.stride_tricks.sliding_window_view(x, PITCH_WINDOW)[::HOP][:n]
    frames = frames - frames.mean(1, keepdims=True)
    rms = np.sqrt((frames**2).mean(1) + 1e-12)
    energy_db = 20 * np.log10(rms + 1e-5)
    spec = np.fft.rfft(frames, 2 * PITCH_WINDOW)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:, :PITCH_WINDOW]
    ac = ac / (ac[:, :1] + 1e-12) * PITCH_WINDOW / (PITCH_WINDOW - np.arange(PITCH_WINDOW))  # unbiased
    lo, hi = int(SAMPLE_RATE / F0_MAX), int(SAMPLE_RATE / F0_MIN)
    band = ac[:, lo:hi]
    # Every multiple of the period correlates as well as the period itself: take the shortest lag
    # whose local peak is within 10% of the best one, not the highest (an octave or more too low).
    peaks = np.zeros_like(band, bool)
    peaks[:, 1:-1] = (band[:, 1:-1] >= band[:, :-2]) & (band[:, 1:-1] >= band[:, 2:])
    peaks &= band >= 0.9 * band.max(1, keepdims=True)
    peaks[np.arange(n), band.argmax(1)] = True
    lag = lo + peaks.argmax(1)
    peak = ac[np.arange(n), lag]
    voicing = np.clip((peak - 0.3) / 0.5, 0, 1) * (energy_db > energy_db.max() - 35)
    f0 = SAMPLE_RATE / lag
    voiced = voicing > 0.5
    semitones = np.zeros(n)
    if voiced.any():
        semitones[voiced] = 12 * np.log2(f0[voiced] / np.median(f0[voiced]))
    return np.stack([energy_db / 20, semitones / 12, voicing], 1).astype(np.float32)


class PhoneticFrontEnd(FrontEnd):
    name = "phonetic"
    n_units = len(PHONES)
    version = 2  # 2: pitch octave errors, prosody 5 ms late, decoder state across files

    def __init__(self, n_mels: int = 80):
        self.n_mels = int(n_mels)
        self.dim = len(PHONES) + self.n_mels + 3

    def options(self) -> dict:
        return {"n_mels": self.n_mels}

    def compute(self, audio: np.ndarray, n_frames: int, fps: float) -> Features:
        t = frame_times(n_frames, fps)
        labels = recognise_phones(audio)
        onehot = np.eye(len(PHONES), dtype=np.float32)[labels]
        # pocketsphinx frame k covers [k, k + 1) * 10 ms, so its centre is at k * 10 ms + 5 ms
        half = 0.5 / ANALYSIS_RATE
        feats = np.concatenate(
            [
                sample_rows(onehot, ANALYSIS_RATE, t, offset=half),
                sample_rows(log_mel(audio, self.n_mels), ANALYSIS_RATE, t),
                sample_rows(prosody(audio), ANALYSIS_RATE, t),  # prosody row k is centred at k * 10 ms
            ],
            axis=1,
        )
        units = nearest_rows(labels, ANALYSIS_RATE, t)
        return Features(feats, units, fps)


def align_phones(audio: np.ndarray, text: str) -> np.ndarray | None:
    """Forced alignment of a transcript: phone index per 10 ms frame, or None if it fails.

    Used by the front-end benchmark as the reference; pocketsphinx aligns words from CMUdict, so
    a transcript with words outside the dictionary cannot be aligned.
    """
    from pocketsphinx import Decoder, get_model_path

    model = os.path.join(get_model_path(), "en-us")
    try:
        decoder = Decoder(
            hmm=os.path.join(model, "en-us"),
            dict=os.path.join(model, "cmudict-en-us.dict"),
            lm=None,
            bestpath=False,
            loglevel="FATAL",
        )
        decoder.set_align_text(text.lower())
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
        for _ in range(2):  # first pass finds the words, the second aligns their phones
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            if _ == 0:
                decoder.set_alignment()
        alignment = decoder.get_alignment()
    except (RuntimeError, ValueError, KeyError):
        return None
    labels = np.zeros(int(np.ceil(len(audio) / HOP)), np.int64)
    for p in alignment.phones():
        labels[p.start : p.start + p.duration] = PHONE_INDEX.get(p.name, 0)
    return labels
