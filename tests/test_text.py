"""The sentence generator for the synthetic corpus: determinism, kinds, form, agreement, variety."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from adamesh.data.synthetic.text import KINDS, NAMES, Sentence, make_sentence, third_person, vocabulary

N = 2000
TARGETS = {"statement": 0.55, "question": 0.20, "wh_question": 0.15, "exclamation": 0.10}
WH_WORDS = {"where", "why", "how", "when", "what", "who", "which"}
YES_NO_STARTS = {"did", "do", "does", "can", "could", "will", "would", "should", "is", "are", "was",
                 "were", "has", "have"}  # fmt: skip


def draw(seed: int, n: int, **kw) -> list[Sentence]:
    rng = np.random.default_rng(seed)
    return [make_sentence(rng, **kw) for _ in range(n)]


@pytest.fixture(scope="module")
def corpus() -> list[Sentence]:
    return draw(2024, N)


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z']+", text)


def without_vocative(text: str) -> str:
    """The sentence with a leading "Name, " removed."""
    head, _, rest = text.partition(", ")
    return rest if head in NAMES else text


def test_deterministic_given_seed():
    assert draw(7, 200) == draw(7, 200)
    assert draw(7, 200) != draw(8, 200)
    # The generator's state, not global state, decides: interleaving another generator changes nothing.
    a, b = np.random.default_rng(7), np.random.default_rng(99)
    interleaved = []
    for _ in range(200):
        interleaved.append(make_sentence(a))
        make_sentence(b)
    assert interleaved == draw(7, 200)


def test_kind_shares_near_targets(corpus):
    counts = Counter(s.kind for s in corpus)
    assert set(counts) == set(KINDS) == set(TARGETS)
    for kind, target in TARGETS.items():
        assert abs(counts[kind] / N - target) < 0.035, (kind, counts[kind] / N)


def test_final_punctuation_matches_kind(corpus):
    ends = {"statement": ".", "question": "?", "wh_question": "?", "exclamation": "!"}
    for s in corpus:
        assert s.text[-1] == ends[s.kind], s
        assert not re.search(r"[.?!]", s.text[:-1].replace("o'clock", "")), s  # one sentence only


def test_questions_start_like_their_kind(corpus):
    for s in corpus:
        first = words(without_vocative(s.text))[0].lower()
        if s.kind == "wh_question":
            assert first in WH_WORDS, s
        elif s.kind == "question":
            assert first in YES_NO_STARTS, s


def test_word_counts_within_bounds(corpus):
    counts = [len(s.text.split()) for s in corpus]
    assert min(counts) >= 5 and max(counts) <= 14
    assert 6 <= np.mean(counts) <= 11
    narrow = draw(3, 200, min_words=9, max_words=10)
    assert all(9 <= len(s.text.split()) <= 10 for s in narrow)
    with pytest.raises(ValueError):
        make_sentence(np.random.default_rng(0), min_words=8, max_words=7)


def test_typography(corpus):
    for s in corpus:
        t = s.text
        assert t[0].isupper(), s
        assert t == t.strip() and "  " not in t, s
        assert not re.search(r"\s[,.?!]", t) and ",," not in t, s
        assert re.fullmatch(r"[A-Za-z' ,]+[.?!]", t), s
        assert not re.search(r",\S", t), s  # a space after every comma
        assert not re.search(r"\b(\w+) \1\b", t, flags=re.IGNORECASE), s  # no "the the"


def test_a_an_agreement(corpus):
    an_anyway = ("hour", "honest", "honor")  # silent h
    a_anyway = ("uni", "use", "usu", "uke", "euro", "one", "once")  # vowel letter, consonant sound
    pairs = 0
    for s in corpus:
        ws = words(s.text)
        for art, nxt in itertools.pairwise(ws):
            if art.lower() not in ("a", "an"):
                continue
            pairs += 1
            w = nxt.lower()
            vowel_sound = (w[0] in "aeiou" and not w.startswith(a_anyway)) or w.startswith(an_anyway)
            assert art.lower() == ("an" if vowel_sound else "a"), (art, nxt, s.text)
    assert pairs > 200


AUXILIARIES = ("did", "does", "do", "will", "can", "could", "should", "would")


def test_subject_verb_agreement(corpus):
    bad = [
        r"\bI (is|are|has|does)\b",
        r"\b(he|she|it) (are|were|am|have|do)\b",  # unless after an auxiliary: "does he do"
        r"\b(you|we|they) (is|was|am|has|does)\b",
        r"\b(" + "|".join(NAMES) + r") (are|were|am|have|do)\b",
        r"\b(is|was|does|has) (I|you|we|they)\b",
        r"\b(are|were|do|have) (he|she)\b",
        r"\bthere is (two|three|four|five|six|seven)\b",
        r"\bthere are (an?|one)\b",
    ]
    checked = 0
    for s in corpus:
        text = without_vocative(s.text)
        for pattern in bad:
            for m in re.finditer(pattern, text, flags=re.IGNORECASE):
                before = text[: m.start()].split()
                assert before and before[-1].lower() in AUXILIARIES, (pattern, s.text)
        checked += bool(re.search(r"\b(is|are|am|was|were|has|have|does|do)\b", text))
    assert checked > N / 4


def test_third_person_forms():
    cases = {
        "play chess": "plays chess",
        "go fishing": "goes fishing",
        "do the laundry": "does the laundry",
        "fly a kite": "flies a kite",
        "watch a movie": "watches a movie",
        "fix the roof": "fixes the roof",
        "wash": "washes",
        "enjoy the sunshine": "enjoys the sunshine",
        "have": "has",
        "miss": "misses",
        "study": "studies",
        "bake bread": "bakes bread",
    }
    for base, third in cases.items():
        assert third_person(base) == third


def test_variety(corpus):
    texts = [s.text for s in corpus]
    assert len(set(texts)) >= 1000
    assert len(vocabulary()) >= 400
    used = {w.lower() for t in texts for w in words(t)}
    assert len(used) >= 400
    # Phrase boundaries: commas in a good share of sentences, names as vocatives in some.
    assert sum("," in t for t in texts) / N > 0.2
    vocatives = sum(t.partition(", ")[0] in NAMES or t[:-1].rpartition(", ")[2] in NAMES for t in texts)
    assert 0.03 < vocatives / N < 0.2


_ESPEAK_SCRIPT = r"""
import ctypes, json, sys
import espeakng_loader as el
lib = ctypes.CDLL(el.get_library_path())
assert lib.espeak_Initialize(2, 0, el.get_data_path().encode(), 0) > 0
assert lib.espeak_SetVoiceByName(b"en-us") == 0
lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
out = []
for text in json.load(sys.stdin):
    buf = text.encode()
    p = ctypes.c_char_p(buf)
    clauses = []
    while p.value is not None:  # one call per clause; espeak advances p and sets it to NULL at the end
        clauses.append(lib.espeak_TextToPhonemes(ctypes.byref(p), 1, ord("_") << 8).decode())
    out.append(clauses)
json.dump(out, sys.stdout)
"""


def espeak_phonemes(texts: list[str]) -> list[list[str]]:
    """espeak-ng's phoneme mnemonics (en-us) for each text, clause by clause, phonemes separated by
    "_" and words by spaces. Run in a child process: espeak's global state stays out of this one."""
    pytest.importorskip("espeakng_loader")
    run = subprocess.run(
        [sys.executable, "-c", _ESPEAK_SCRIPT],
        input=json.dumps(texts),
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_espeak_reads_every_clause():
    (clauses,) = espeak_phonemes(["Maria, where did you put the blue shoes? Thank you."])
    assert len(clauses) == 3  # "Maria" / "where ... shoes" / "thank you"
    assert clauses[0].startswith("m_") and "S_'u:_z" in clauses[1] and clauses[2].startswith("T_")


@pytest.fixture(scope="module")
def espeak_result(corpus) -> tuple[list[str], list[list[str]]]:
    texts = [s.text for s in corpus[:300]]
    return texts, espeak_phonemes(texts)


def phoneme_counts(result: list[list[str]]) -> Counter:
    """espeak mnemonics without stress marks or "#"/"-" variant marks, counted."""
    return Counter(
        ph.lstrip("',").rstrip("#-")
        for clauses in result for clause in clauses for word in clause.split() for ph in word.split("_")
    )  # fmt: skip


def test_phonetic_coverage(espeak_result):
    texts, result = espeak_result
    assert len(result) == len(texts) and all(result)
    # Each sentence reads as one clause more than it has commas (espeak splits at , ? ! .).
    assert sum(len(c) for c in result) >= sum(t.count(",") + 1 for t in texts)
    phonemes = phoneme_counts(result)
    consonants = ["p", "b", "t", "d", "k", "g", "f", "v", "T", "D", "s", "z", "S", "Z", "tS", "dZ", "m", "n",
                  "N", "l", "r", "w", "j", "h"]  # fmt: skip
    vowels = ["i:", "I", "E", "a", "A:", "V", "@", "3:", "u:", "U", "O:", "0", "eI", "aI", "aU", "oU",
              "OI"]  # fmt: skip
    missing = [p for p in consonants + vowels if phonemes[p] == 0]
    assert not missing, f"missing espeak phonemes: {missing}"
    # The rarer sounds are not just present once: "zh" (measure), "oy" (boy), "th" (thin), "ch", "j".
    for p in ("Z", "OI", "T", "tS", "dZ"):
        assert phonemes[p] >= 5, (p, phonemes[p])


def test_covers_the_arpabet_inventory(espeak_result):
    """Every phone of the corpus's ARPAbet inventory (adamesh.phones) occurs in 300 sentences."""
    phones = pytest.importorskip("adamesh.phones")
    arpabet = {phones.espeak_phone(p)[0] for p in phoneme_counts(espeak_result[1])}
    missing = set(phones.PHONES) - {"SIL"} - arpabet
    assert not missing, sorted(missing)
