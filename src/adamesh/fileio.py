"""Safe file output: check the destination early, write to a temporary file, rename at the end.

A failed command must never leave a half-written file or clobber an earlier good result, so every
writer in adamesh goes through `atomic_output`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
from glob import escape as glob_escape
from pathlib import Path
from typing import Iterator

from adamesh.errors import AdameshError

LOW_SPACE = 16 << 20  # a write that fails with less free space than this is put down to a full disk
OUTPUT_MARK = ".adamesh-output"  # in every folder atomic_output writes: only those are replaced whole


def check_writable(path: str | os.PathLike, directory: bool = False, probe: bool = True) -> Path:
    """Fail fast, before any heavy work, if `path` cannot be created, or if writing it would
    replace something that is not an earlier output: a link, a device, a FIFO, a folder where
    a file is meant, or a folder of someone else's files. `probe` creates and removes a file
    beside it: permission bits do not tell (root, /proc, read-only mounts)."""
    if not os.fspath(path):
        raise AdameshError("the output name is empty; give a file name")
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_symlink():
        raise AdameshError(f"output path {path} is a symbolic link; give the path of a regular file")
    if directory and path.exists():
        if not path.is_dir():
            raise AdameshError(f"output folder {path} exists and is not a folder; choose another name")
        if any(path.iterdir()) and not (path / OUTPUT_MARK).is_file():
            raise AdameshError(
                f"output folder {path} already holds files adamesh did not write; choose a new "
                "folder (it would be replaced as a whole)"
            )
    elif path.is_dir():
        raise AdameshError(f"output path {path} is a directory; give a file name")
    elif path.exists() and not path.is_file():
        raise AdameshError(
            f"output path {path} is not a regular file (a device, FIFO or socket); give a file name"
        )
    if not parent.exists():
        raise AdameshError(f"cannot write {path}: folder {parent} does not exist")
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise AdameshError(f"cannot write {path}: folder {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise AdameshError(f"cannot write {path}: the existing file is read-only")
    if probe:
        try:
            fd, name = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.probe-")
            os.close(fd)
            os.unlink(name)
        except OSError as e:
            raise AdameshError(f"cannot write {path}: {e.strerror} in folder {parent}") from None
    return path


VIDEO_SUFFIXES = (".mp4", ".m4v")  # the renderer writes MP4


def check_suffix(path: str | os.PathLike, suffixes: tuple[str, ...], what: str) -> None:
    """An output must end as the kind of file it will be: a slip (--out speech.wav for a video)
    must not turn someone's recording into something else."""
    if Path(path).suffix.lower() not in suffixes:
        raise AdameshError(f"output {path} must end in {' or '.join(suffixes)} ({what})")


def check_output_folder(path: str | os.PathLike, own: tuple[str, ...], what: str) -> Path:
    """A folder a command writes several files into, checked before any work: new, empty, or
    holding only names that end as the command's own do (`own`: an earlier run's outputs). A
    folder of other files (the user's videos, say) is refused rather than written into."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise AdameshError(f"output folder {path} is a file; give a folder for the {what}")
    ours = own + (OUTPUT_MARK,)
    others = (
        [p.name for p in path.iterdir() if not p.name.endswith(ours) and not _partial(p.name)]
        if path.is_dir()
        else []
    )
    others.sort()
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise AdameshError(
            f"output folder {path} holds files that are not {what} ({shown}); give a new or empty folder"
        )
    return path


def _partial(name: str) -> bool:
    """A partial output of `atomic_output` (one a killed run left is removed by the next)."""
    return name.startswith(".") and ".partial-" in name


def npz_reason(e: Exception) -> str:
    """Why np.load(allow_pickle=False) failed, without numpy's advice to allow pickles."""
    if "pickle" in str(e):
        return "it holds pickled Python objects, which are refused (loading them could run code)"
    return str(e)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds.

    The temporary name keeps the suffix so libraries that choose a format by extension still work.
    With ``directory=True`` a temporary folder is yielded and replaces `path` as a whole.
    """
    path = check_writable(path, directory, probe=False)  # the partial file below is the probe
    parent = path.parent
    prefix = f".{path.name if directory else path.stem}.partial-"
    _remove_orphans(parent, prefix)
    prefix += f"{os.getpid()}-"
    if directory:
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
        (tmp / OUTPUT_MARK).write_text("written by adamesh; replaced whole when written again\n")
    else:
        fd, name = tempfile.mkstemp(dir=parent, prefix=prefix, suffix=path.suffix)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory:
            if path.exists():
                old = Path(tempfile.mkdtemp(dir=parent, prefix=f".{path.name}.old-"))
                os.replace(path, old / path.name)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        else:
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
    except BaseException as e:
        if directory:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(e, Exception) and not isinstance(e, AdameshError):
            free = shutil.disk_usage(parent).free
            if free < LOW_SPACE:  # libraries say "System error." or name no file: say what it was
                raise AdameshError(
                    f"cannot write {path}: its device is full ({free // 1024:,} KB free); free some space"
                ) from e
        if isinstance(e, OSError) and not e.filename and e.errno:
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise


@contextlib.contextmanager
def atomic_outputs(paths: list, directories: frozenset | set = frozenset()) -> Iterator[list[Path]]:
    """`atomic_output` for several outputs at once (those in `directories` are folders): all are
    moved into place together when the block succeeds, none if it fails or is killed, so a run's
    outputs never mix with an earlier run's."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_output(p, directory=p in directories)) for p in paths]


def _remove_orphans(folder: Path, prefix: str) -> None:
    """Partial outputs `prefix<pid>-...` left by a process that no longer runs (killed with -9)."""
    for stale in folder.glob(glob_escape(prefix) + "*"):
        pid = stale.name[len(prefix) :].split("-", 1)[0]
        if not pid.isdigit() or _running(int(pid)):
            continue
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                stale.unlink()


def remove_partials(folder: str | os.PathLike) -> None:
    """Every partial output in `folder` whose writer no longer runs (workers killed with the run)."""
    for stale in Path(folder).glob(".*.partial-*"):
        _remove_orphans(stale.parent, stale.name[: stale.name.rindex(".partial-") + len(".partial-")])


def worker_pool(workers: int | None, initializer=None, initargs=()) -> mp.pool.Pool:
    """A pool of forked worker processes (spawned where fork is missing) that die at once on
    SIGTERM. A forked worker would inherit the command's Python SIGTERM handler, and Python runs a
    handler only between bytecodes: a SIGTERM that lands just before a worker blocks in the pool's
    queue is never handled, and Pool.terminate waits for that worker for ever. The parent removes
    what its workers left (`remove_partials`)."""
    return mp.get_context("fork" if hasattr(os, "fork") else "spawn").Pool(
        workers, _start_worker, (initializer, initargs)
    )


def _start_worker(initializer, initargs) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if initializer is not None:
        initializer(*initargs)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:  # a killed process nobody has reaped yet (a zombie) still answers kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return True


def check_outputs(outputs: list, inputs: list) -> None:
    """Refuse outputs that are one of the inputs, or that name the same file twice."""

    def key(p):
        return os.path.realpath(os.fspath(p))

    sources = {key(p): p for p in inputs if p is not None}
    seen = {}
    for out in outputs:
        k = key(out)
        if k in sources:
            raise AdameshError(
                f"output {out} is the input {sources[k]}; writing it would destroy the input, "
                "so choose another output name"
            )
        if k in seen:
            raise AdameshError(f"outputs {seen[k]} and {out} are the same file; give each its own name")
        seen[k] = out


def check_companion(audio: Path, motion: Path) -> None:
    """Refuse to overwrite an existing audio file unless it is the one an earlier `motion` output
    beside it was written with (a rerun); otherwise it may be someone's recording."""
    if not audio.exists():
        return
    try:
        import numpy as np

        with np.load(motion, allow_pickle=False) as z:  # motion files keep it relative to themselves
            ours = os.path.realpath(motion.parent / str(z["audio"])) == os.path.realpath(audio)
    except (OSError, KeyError, ValueError):
        ours = False
    if not ours:
        raise AdameshError(
            f"{audio} already exists and is not the audio of an earlier {motion.name}; move it, or "
            "choose another output name"
        )


def check_input_file(path: str | os.PathLike, kind: str, accepted: str, empty_hint: str) -> str:
    """The path as a string, or one clear error if it is a folder, missing or empty.
    `kind` names the file ("audio"), `accepted` what may be given ("an audio or video file")."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise AdameshError(f"{name} is a directory; give the path of {accepted}")
    if os.path.exists(name) and not os.path.isfile(name):
        raise AdameshError(
            f"{name} is not a regular file (a device, FIFO or socket); give the path of {accepted}"
        )
    if not os.path.isfile(name):
        raise AdameshError(f"{kind} file {name} does not exist; check the path")
    if os.path.getsize(name) == 0:
        raise AdameshError(f"{name} is empty (0 bytes); {empty_hint}")
    return name


def cache_dir() -> Path:
    """Where installed rigs and other caches live: $ADAMESH_CACHE, else ~/.cache/adamesh."""
    root = os.environ.get("ADAMESH_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "adamesh"


@functools.cache
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content. Cached by path, size and mtime: a weight file (up to ~1 GB) is
    read once per process, yet an edited file is always read again."""
    st = os.stat(path)
    return _sha256(os.fspath(path), st.st_size, st.st_mtime_ns)
