"""Fuzz every command: each hostile value in each argument slot, one slot at a time (the other
required slots valid), run in process in a fresh copy of a folder of inputs, 20 s each.

    .venv/bin/python tools/fuzz.py /tmp/fuzz

Prints the counts (cases, ok, clean errors, internal errors, timeouts, cases that changed a file
of the folder) and the cases that went wrong. Commands that train, benchmark or serve are left
out: their valid paths run for minutes. A named output that exists and is written again (a rerun)
counts as a changed file; look at the list."""

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import sys
from pathlib import Path

from adamesh.cli import build_parser, main


class Timeout(BaseException):
    pass


def on_alarm(*a):
    raise Timeout()


signal.signal(signal.SIGALRM, on_alarm)

root = Path(sys.argv[1]).resolve()
root.mkdir(parents=True, exist_ok=True)
base = root / "base"
base.mkdir(exist_ok=True)
os.chdir(base)
main(["motion", "demo", "--out", "m.npz", "--seconds", "1"])
main(["export", "m.npz", "--format", "glb", "--rig", "builtin", "--out", "avatar.glb"])
(base / "text.txt").write_text("hello\n")
(base / "empty.bin").write_bytes(b"")
(base / "junk.bin").write_bytes(os.urandom(3000))
(base / "folder").mkdir(exist_ok=True)

HOSTILE = [
    "",
    "-1",
    "0",
    "nan",
    "inf",
    "1e309",
    "99999999999999999999",
    "/dev/null",
    "/dev/zero",
    "/nonexistent/x",
    "folder",
    "text.txt",
    "empty.bin",
    "junk.bin",
    "gltf:junk.bin",
    "flame:text.txt",
    "a\nb",
    "../../../../etc/passwd",
    "m.npz",
    "m.wav",
]
VALID = {
    "motion": "m.npz",
    "audio": "m.wav",
    "reference": "m.npz",
    "out": "out.npz",
    "format": "csv",
    "rig": "builtin",
    "video": "m.wav",
    "data": "folder",
    "folder": "folder",
    "corpus": "folder",
    "name": "ict-facekit",
    "source": "junk.bin",
}
SKIP = {"serve", "train expression", "train pose", "corpus", "demo"} | {
    f"bench {b}"
    for b in [
        "render",
        "frontends",
        "corpus",
        "expression",
        "pose",
        "prior",
        "lipsync",
        "probe",
        "stream",
        "speed",
        "long",
        "video",
        "people",
    ]
}


def leaves(parser, prefix):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
        return
    for name, sp in subs[0].choices.items():
        yield from leaves(sp, prefix + [name])


def snapshot(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


counts = {
    "cases": 0,
    "ok": 0,
    "clean error": 0,
    "internal error": 0,
    "timeout": 0,
    "other": 0,
    "inputs changed": 0,
}
internal = []
for path, sp in leaves(build_parser(), []):
    cmd = " ".join(path)
    if cmd in SKIP:
        continue
    slots = [a for a in sp._actions if a.dest != "help"]
    required = [a for a in slots if a.required or not a.option_strings]

    def argv(override_dest=None, value=None):
        out = list(path)
        for a in slots:
            if a.dest == override_dest:
                v = value
            elif a in required:
                v = VALID.get(a.dest, "x")
                if a.choices:
                    v = list(a.choices)[0]
            else:
                continue
            out += ([a.option_strings[-1]] if a.option_strings else []) + ([] if a.nargs == 0 else [v])
        return out

    for slot in slots:
        for value in HOSTILE if slot.nargs != 0 else [None]:
            args = argv(slot.dest, value)
            case = root / f"case{counts['cases']}"
            shutil.copytree(base, case)
            os.chdir(case)
            before = snapshot(case)
            err = io.StringIO()
            signal.alarm(20)
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    rc = main([a for a in args if a is not None])
            except Timeout:
                rc = "timeout"
            except SystemExit as e:
                rc = f"exit {e.code}"
            finally:
                signal.alarm(0)
            after = snapshot(case)
            changed = [k for k in before if before[k] != after.get(k)]
            counts["cases"] += 1
            key = {0: "ok", 1: "clean error", 3: "internal error", "timeout": "timeout"}.get(rc, "other")
            counts[key] += 1
            if changed:
                counts["inputs changed"] += 1
                internal.append(("changed", args, changed))
            if key in ("internal error", "other"):
                internal.append((rc, args, err.getvalue().strip().splitlines()[-1:]))
            os.chdir(root)
            shutil.rmtree(case, ignore_errors=True)
print(json.dumps(counts))
for row in internal[:40]:
    print(row)
