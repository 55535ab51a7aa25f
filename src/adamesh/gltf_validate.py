"""Validate exported glTF/GLB files with the pinned Khronos glTF validator.

The validator is a Node package pinned in ``tools/gltf-validator`` (install it once with
``make validator`` or ``cd tools/gltf-validator && npm ci``; after that it runs offline). This module
runs its ``validate.mjs`` script and returns the report summary it prints::

    {"file", "uri", "validatorVersion", "mimeType", "numErrors", "numWarnings", "numInfos",
     "numHints", "truncated", "errors": [{"code", "message", "pointer"?, "offset"?}], "warnings": [...]}

Set ``ADAMESH_GLTF_VALIDATOR`` to use a validator directory other than the one in this repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from adamesh.errors import AdameshError

ENV_VAR = "ADAMESH_GLTF_VALIDATOR"
INSTALL_HINT = "install it with: make validator (or: cd tools/gltf-validator && npm ci)"
_TIMEOUT_S = 120


def validator_dir() -> Path:
    """The directory holding ``validate.mjs`` and ``node_modules/gltf-validator``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    # src/adamesh/gltf_validate.py -> repository root is parents[2]
    return Path(__file__).resolve().parents[2] / "tools" / "gltf-validator"


def _node() -> str | None:
    return shutil.which("node")


def validator_available() -> bool:
    """True when ``node`` is on PATH and the pinned validator package is installed."""
    d = validator_dir()
    return (
        _node() is not None
        and (d / "validate.mjs").is_file()
        and (d / "node_modules" / "gltf-validator" / "package.json").is_file()
    )


def _why_unavailable() -> str:
    d = validator_dir()
    if _node() is None:
        return (
            "the glTF validator needs Node.js (`node` is not on PATH); install Node 18+, then " + INSTALL_HINT
        )
    if not (d / "validate.mjs").is_file():
        return f"the glTF validator script {d / 'validate.mjs'} is missing (check {ENV_VAR}); " + INSTALL_HINT
    return f"the glTF validator is not installed in {d}; " + INSTALL_HINT


def validate_gltf(path: str | os.PathLike) -> dict:
    """Validate one .glb/.gltf file and return the validator's report summary.

    The file is valid when ``report["numErrors"] == 0``. Raises `AdameshError` when the validator is
    not installed, the file cannot be read, or the validator fails to run.
    """
    if not validator_available():
        raise AdameshError(_why_unavailable())
    p = Path(path)
    if not p.is_file():
        raise AdameshError(f"cannot validate {p}: no such file")
    d = validator_dir()
    cmd = [_node(), str(d / "validate.mjs"), str(p.resolve())]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as e:
        raise AdameshError(f"the glTF validator took more than {_TIMEOUT_S} s on {p}") from e
    except OSError as e:
        raise AdameshError(f"cannot run the glTF validator ({e}); " + INSTALL_HINT) from e
    if proc.returncode not in (0, 1):
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise AdameshError(
            f"the glTF validator failed on {p} (exit {proc.returncode}): "
            + (detail[-1] if detail else "no output")
        )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    try:
        report = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError) as e:
        raise AdameshError(f"the glTF validator printed no report for {p}: {proc.stdout[-500:]!r}") from e
    if "ioError" in report:
        raise AdameshError(f"cannot validate {p}: {report['ioError']}")
    return report
