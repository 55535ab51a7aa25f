"""Fuzz every command: each hostile value in each argument slot, one slot at a time (the other
required slots valid), run in process in a fresh copy of a folder of inputs.

    ADAMESH_DATA=../shared/data .venv/bin/python tools/fuzz.py /tmp/fuzz [--shard K/N] [--only CMD]

Prints the counts (cases, ok, clean errors, internal errors, timeouts, cases that changed a file
of the folder), per command and in all, and the cases that went wrong. A case has 20 s; commands
that train, benchmark, serve or build a corpus have `LONG_SECONDS`: their valid paths run for
minutes, so a timeout there means the value was accepted and the work had begun (what it would
do later is not seen). A named output that exists and is written again (a rerun) counts as a
changed file; look at the list."""

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
from pathlib import Path

from adamesh.cli import build_parser, main


class Timeout(BaseException):
    pass


def on_alarm(*a):
    raise Timeout()


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
    "data": "corpus",
    "folder": "folder",
    "corpus": "corpus",
    "name": "ict-facekit",
    "source": "junk.bin",
}
CASE_SECONDS, LONG_SECONDS = 20, 5
LONG = ("bench", "train", "serve", "corpus", "demo")


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


cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
cli.add_argument("root", type=Path)
cli.add_argument("--shard", default="1/1", help="K/N: every N-th command from the K-th")
cli.add_argument("--only", action="append", help="a command (repeat); default all")


def fuzz(opts) -> None:
    signal.signal(signal.SIGALRM, on_alarm)

    shard, shards = map(int, opts.shard.split("/"))
    root = opts.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    base = root / "base"
    base.mkdir(exist_ok=True)
    os.chdir(base)
    main(["motion", "demo", "--out", "m.npz", "--seconds", "1"])
    main(["export", "m.npz", "--format", "glb", "--rig", "builtin", "--out", "avatar.glb"])
    if not (base / "corpus").is_dir():
        main("corpus --out corpus --speakers 3 --sentences 2 --heldout 1 --workers 1".split())
    (base / "text.txt").write_text("hello\n")
    (base / "empty.bin").write_bytes(b"")
    (base / "junk.bin").write_bytes(os.urandom(3000))
    (base / "folder").mkdir(exist_ok=True)
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
    per_command = {}
    commands = [(p, sp) for p, sp in leaves(build_parser(), []) if not opts.only or " ".join(p) in opts.only]
    for path, sp in commands[shard - 1 :: shards]:
        cmd = " ".join(path)
        seconds = LONG_SECONDS if path[0] in LONG else CASE_SECONDS
        mine = per_command.setdefault(cmd, dict.fromkeys(counts, 0))
        slots = [a for a in sp._actions if a.dest != "help"]
        required = [a for a in slots if a.required or not a.option_strings]

        def argv(override_dest=None, value=None, path=path, slots=slots, required=required):
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
                signal.alarm(seconds)
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
                key = {0: "ok", 1: "clean error", 3: "internal error", "timeout": "timeout"}.get(rc, "other")
                for c in (counts, mine):
                    c["cases"] += 1
                    c[key] += 1
                    c["inputs changed"] += bool(changed)
                if changed:
                    internal.append(("changed", args, changed))
                if key in ("internal error", "other"):
                    internal.append((rc, args, err.getvalue().strip().splitlines()[-1:]))
                os.chdir(root)
                shutil.rmtree(case, ignore_errors=True)
    for cmd, c in per_command.items():
        print(cmd, json.dumps(c))
    print("all", json.dumps(counts))
    for row in internal:
        print(row)


# spawned workers of the commands import this file again: only the main process fuzzes
if __name__ == "__main__":
    fuzz(cli.parse_args())
