"""The phone inventory shared by the corpus, the phonetic front-end and the metrics.

CMU/ARPAbet phones without stress (39 + SIL), the set of CMUdict and pocketsphinx's US-English
acoustic model. espeak-ng reports its own mnemonics (``'aI``, ``@2``, ``tS`` ...), mapped here.
"""

from __future__ import annotations

PHONES: tuple[str, ...] = (
    "SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
    "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH",
    "UW", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
PHONE_INDEX = {p: i for i, p in enumerate(PHONES)}
VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"})
BILABIALS = frozenset({"P", "B", "M"})

# espeak-ng English mnemonics (stress marks and length marks removed) to ARPAbet.
_ESPEAK = {
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "f": "F", "v": "V", "T": "TH",
    "D": "DH", "s": "S", "z": "Z", "S": "SH", "Z": "ZH", "h": "HH", "m": "M", "n": "N", "N": "NG",
    "l": "L", "r": "R", "w": "W", "j": "Y", "tS": "CH", "dZ": "JH", "x": "K", "?": "T", "t#": "T",
    "t[": "T", "r-": "R", "n-": "N", "l-": "L", "m-": "M", "@L": "L", "W": "W",
    "a": "AE", "aa": "AE", "a#": "AH", "A": "AA", "A:": "AA", "A@": "AA", "0": "AA", "@": "AH",
    "@2": "AH", "@5": "AH", "V": "AH", "3": "ER", "3:": "ER", "i": "IY", "i:": "IY", "i@": "IY",
    "i@3": "IY", "I": "IH", "I2": "IH", "I#": "IH", "e": "EH", "E": "EH", "e@": "EH", "eI": "EY",
    "aI": "AY", "aI@": "AY", "aI3": "AY", "aU": "AW", "aU@": "AW", "oU": "OW", "o@": "AO",
    "O": "AO", "O:": "AO", "O@": "AO", "OI": "OY", "u:": "UW", "u": "UW", "U": "UH", "U@": "UH",
    "_": "SIL", "_:": "SIL", "_!": "SIL", "_;": "SIL", "_^_": "SIL", "": "SIL",
}  # fmt: skip


def espeak_phone(mnemonic: str) -> tuple[str | None, int]:
    """(ARPAbet phone, stress) for an espeak mnemonic; phone None for modifiers with no sound.

    Stress: 1 primary (``'``), 2 secondary (``,``), 0 none.
    """
    stress = 1 if mnemonic.startswith("'") else 2 if mnemonic.startswith(",") else 0
    sym = mnemonic.lstrip("',")
    if sym in (";", ":", "#"):  # palatalisation and length modifiers of the previous phoneme
        return None, 0
    if sym in _ESPEAK:
        return _ESPEAK[sym], stress
    base = sym.rstrip("0123456789#;")
    if base in _ESPEAK:
        return _ESPEAK[base], stress
    return ("AH" if sym[:1] in "aeiouAEIOU@03V" else "SIL"), stress
