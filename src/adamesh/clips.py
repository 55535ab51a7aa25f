"""The clip folder: clips (audio + motion + speaker) that training, evaluation and adaptation read.

The synthetic corpus is one such folder (with a manifest.json naming speakers, splits and roles);
a folder made from real data is another (`adamesh track` writes one): any tree of adamesh motion
files (.npz) whose `audio` points at their speech. Without a manifest the speaker is the motion's
meta["speaker"] or its parent folder's name, and every clip has the role "train".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from adamesh.errors import AdameshError
from adamesh.motion import load_motion


@dataclass
class ClipInfo:
    id: str
    speaker: str
    motion: Path
    audio: Path | None
    role: str = "train"


def scan_clips(root: str | os.PathLike, hold_out: int = 0) -> tuple[list[ClipInfo], dict]:
    """The clips of a folder and its manifest (an empty dict when there is none).

    `hold_out` n > 0: in a folder without any "val" clip, every n-th "train" clip becomes "val",
    so that every folder of a training set contributes to validation."""
    infos, manifest = _scan(Path(root))
    train = [c for c in infos if c.role == "train"]
    if hold_out and len(train) > 1 and not any(c.role == "val" for c in infos):
        for c in train[::hold_out]:
            c.role = "val"
    return infos, manifest


def _scan(root: Path) -> tuple[list[ClipInfo], dict]:
    if not root.is_dir():
        raise AdameshError(f"clip folder {root} does not exist")
    manifest_path = root / "manifest.json"
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
            clips = [
                ClipInfo(
                    c["id"],
                    c["speaker"],
                    root / c["motion"],
                    root / c["audio"] if c.get("audio") else None,
                    c.get("role", "train"),
                )
                for c in manifest["clips"]
            ]
        except (ValueError, KeyError, TypeError) as e:
            raise AdameshError(f"{manifest_path} is damaged ({e}); regenerate the corpus") from None
        return clips, manifest
    clips = []
    for path in sorted(root.rglob("*.npz")):
        motion = load_motion(path)
        audio = Path(motion.audio) if motion.audio else None
        speaker = str(motion.meta.get("speaker") or path.parent.name)
        clips.append(ClipInfo(path.stem, speaker, path, audio, str(motion.meta.get("role", "train"))))
    if not clips:
        raise AdameshError(f"{root} holds no motion files (.npz) and no manifest.json")
    return clips, {}
