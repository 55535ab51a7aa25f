"""espeak-ng speech synthesis with per-phoneme timing, through its C API (ctypes).

The PyPI package espeakng-loader ships libespeak-ng and its data, so nothing is installed with
apt. The command-line tool gives phonemes without timing; the C API's synthesis callback reports a
phoneme event with the exact sample where each phoneme starts, which is what the corpus needs to
build animation that is in sync with the audio by construction. espeak keeps global state, so there
is one synthesiser per process (`Espeak.instance()`).
"""

from __future__ import annotations

import _ctypes
import ctypes
import threading
from dataclasses import dataclass

import numpy as np

from adamesh.errors import AdameshError

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_END, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Voice:
    """An espeak voice: a language voice plus a variant (e.g. en-us+m3), and prosody settings."""

    name: str = "en-us"
    rate: int = 165  # words per minute
    pitch: int = 50  # 0-100, espeak's base pitch
    range: int = 50  # 0-100, pitch range (monotone to lively)
    volume: int = 100


@dataclass
class Synthesis:
    """Audio (int16-range float32 in [-1, 1]) at `sample_rate`, espeak phonemes with their start
    sample and word index, and words as (text, first character, length)."""

    audio: np.ndarray
    sample_rate: int
    phonemes: list[tuple[str, int, int]]  # (mnemonic with stress marks, start sample, word index)
    words: list[tuple[int, int]]  # (text position, length) per word, 1-based positions


class Espeak:
    _instance: "Espeak | None" = None
    _lock = threading.Lock()

    def __init__(self):
        try:
            import espeakng_loader

            self._path = espeakng_loader.get_library_path()
            self._data = espeakng_loader.get_data_path().encode()
        except ImportError as e:
            raise AdameshError(
                f"espeak-ng is not available ({e}); reinstall adamesh "
                "(it needs the PyPI package espeakng-loader)"
            ) from None
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: ctypes must not free it
        self._chunks: list[np.ndarray] = []
        self._phonemes: list[tuple[str, int, int]] = []
        self._words: list[tuple[int, int]] = []
        self._load()  # fail here, not on first use
        self._unload()

    def _load(self) -> None:
        """Load and initialise the library. espeak keeps state from one utterance to the next in
        static variables (the phase of its pitch flutter, gain), so the same text came out a few
        samples different each time: every synthesis gets a freshly loaded copy instead."""
        try:
            self.lib = ctypes.CDLL(self._path)
        except OSError as e:
            raise AdameshError(
                f"espeak-ng is not available ({e}); reinstall adamesh "
                "(it needs the PyPI package espeakng-loader)"
            ) from None
        self.sample_rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, self._data, _INIT_PHONEME_EVENTS
        )
        if self.sample_rate <= 0:
            raise AdameshError("espeak-ng failed to initialise; its data folder may be damaged")
        self.lib.espeak_SetSynthCallback(self._callback)

    def _unload(self) -> None:
        self.lib.espeak_Terminate()
        close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
        if close is not None:  # the next CDLL maps it afresh, its static variables at their start values
            close(self.lib._handle)

    @classmethod
    def instance(cls) -> "Espeak":
        with cls._lock:
            if cls._instance is None:
                cls._instance = Espeak()
            return cls._instance

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_END:
            e = events[i]
            if e.type == _EVENT_WORD:
                self._words.append((e.text_position, e.length))
            elif e.type == _EVENT_PHONEME:
                self._phonemes.append(
                    (e.id.string.decode("ascii", "replace"), e.sample, len(self._words) - 1)
                )
            i += 1
        return 0

    def synthesize(self, text: str, voice: Voice = Voice()) -> Synthesis:
        with self._lock:
            self._load()
            try:
                return self._synthesize(text, voice)
            finally:
                self._unload()

    def _synthesize(self, text: str, voice: Voice) -> Synthesis:
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise AdameshError(f"espeak-ng has no voice {voice.name!r}")
        for param, value in (
            (_RATE, voice.rate),
            (_PITCH, voice.pitch),
            (_RANGE, voice.range),
            (_VOLUME, voice.volume),
        ):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._chunks, self._phonemes, self._words = [], [], []
        # Voices with breath noise (en+f2 ...) draw on espeak's own generator, seeded per process
        # otherwise: the same text must give the same samples in every run and worker.
        self.lib.espeak_ng_SetRandSeed(ctypes.c_long(0))
        blob = text.encode("utf-8")
        status = self.lib.espeak_Synth(blob, len(blob) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if status != 0:
            raise AdameshError(f"espeak-ng could not synthesise {text!r} (status {status})")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return Synthesis(
            audio.astype(np.float32) / 32768.0, self.sample_rate, list(self._phonemes), list(self._words)
        )
