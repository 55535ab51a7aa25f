"""`adamesh bench stream`: latency, compute and lip sync of streaming animation, per look-ahead,
and several streams at once on one machine."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from adamesh import api
from adamesh.audio import SAMPLE_RATE, energy_envelope, load_audio
from adamesh.eval.lipsync import pooled_closures, speaker_clips, tracked_opening
from adamesh.eval.metrics import closure_scores, pearson, speech_mask
from adamesh.fileio import atomic_output
from adamesh.live import stream_to
from adamesh.motion import ARKIT, lip_gap
from adamesh.senders import make_senders
from adamesh.stream import DEFAULT_HOP_MS, SHARED_HOP_MS


class _Sink:
    """A UDP receiver on 127.0.0.1 that reads and drops what arrives: the streams' Live Link
    packets leave as they would for Unreal, so the time to a packet leaving is measured."""

    def __enter__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.target = f"livelink=127.0.0.1:{self.sock.getsockname()[1]}"
        self.open = True
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()
        return self

    def _drain(self):
        while self.open:
            try:
                self.sock.recv(4096)
            except TimeoutError:
                pass

    def __exit__(self, *exc):
        self.open = False
        self.thread.join()
        self.sock.close()


def streamed(stream, speech: np.ndarray, chunk_ms: float = 20.0) -> np.ndarray:
    """All frames of `speech` pushed in chunks of `chunk_ms` (what they are does not depend on when
    the chunks come, only on their sizes)."""
    size = int(round(chunk_ms / 1000 * SAMPLE_RATE))
    return np.concatenate(
        [stream.push(speech[i : i + size]) for i in range(0, len(speech), size)] + [stream.close()]
    )


def bench_stream(
    model: str | None,
    audio: list[str],
    videos: list[str],
    lookaheads=(80.0, 160.0, 320.0),
    hop_ms: float = DEFAULT_HOP_MS,
    chunk_ms: float = 20.0,
    out: str | None = None,
    streams=(1, 2, 4, 8),
    log=print,
) -> dict:
    """For each look-ahead: latency (to the frame, and to its Live Link packet leaving) and compute
    on the `audio` files, each pushed in real time as a live source delivers it (`live.stream_to`);
    `streams` at once at the first look-ahead (`concurrent_streams`); lip sync (Pearson r of the lip gap with the mouth
    opening tracked in the `videos`, generic style) and lip closures (`bench lipsync`'s recall and
    precision, all clips of a set pooled: a closure needs its look-ahead) streamed beside `animate`
    on the same clips."""
    animator = api.load(model)
    stream_to(animator, audio[0], io.StringIO(), fast=True)  # warm-up: threads started
    rows = []
    for lookahead in lookaheads:
        with _Sink() as sink:
            runs = [
                stream_to(
                    animator,
                    a,
                    None,
                    lookahead_ms=lookahead,
                    hop_ms=hop_ms,
                    chunk_ms=chunk_ms,
                    senders=make_senders([sink.target]),
                )  # fmt: skip
                for a in audio
            ]
        latency = np.concatenate([r["latency_ms"] for r in runs])
        packet = np.concatenate([r["packet_latency_ms"] for r in runs])
        seconds = sum(r["seconds"] for r in runs)
        first = float(np.median([r["first_frame_ms"] for r in runs]))
        rows.append({
            "lookahead_ms": lookahead,
            "hop_ms": hop_ms,
            "chunk_ms": chunk_ms,
            "first_frame_ms": first,
            "first_frame_after_first_chunk_ms": first - chunk_ms,
            "latency_ms": {"median": float(np.median(latency)), "p95": float(np.percentile(latency, 95))},
            "packet_latency_ms": {"median": float(np.median(packet)), "p95": float(np.percentile(packet, 95))},
            "compute_per_second": sum(r["compute_per_second"] * r["seconds"] for r in runs) / seconds,
        })  # fmt: skip
        r = rows[-1]
        log(
            f"look-ahead {lookahead:g} ms: first frame {r['first_frame_ms']:.0f} ms after the speech began, "
            f"latency median {r['latency_ms']['median']:.0f} / p95 {r['latency_ms']['p95']:.0f} ms "
            f"(to the packet leaving {r['packet_latency_ms']['median']:.0f} / {r['packet_latency_ms']['p95']:.0f}), "
            f"{r['compute_per_second']:.3f} s of compute per s of speech"
        )
    together = [
        row
        for hop in sorted({hop_ms, SHARED_HOP_MS})
        for row in concurrent_streams(animator, audio, streams, lookaheads[0], hop, chunk_ms, log)
    ]

    names = ARKIT.channels[: ARKIT.n_expression]
    clips = speaker_clips(videos)
    columns = ["offline", *(f"stream {la:g} ms" for la in lookaheads)]
    per_clip = []
    for clip in clips:
        opening, valid = tracked_opening(clip["path"])
        heard = load_audio(clip["path"], SAMPLE_RATE)[0]
        speech = speech_mask(energy_envelope(heard, SAMPLE_RATE, db=True)[: len(opening)]) & valid
        motions = {"offline": animator.animate(heard).params}
        for la in lookaheads:
            motions[f"stream {la:g} ms"] = streamed(animator.stream(lookahead_ms=la, hop_ms=hop_ms), heard)
        r, closures = {}, {}
        for name, params in motions.items():
            n = min(len(params), len(opening))
            gap = lip_gap(params[:n, : len(names)], names)
            r[name] = pearson(gap[valid[:n]], opening[:n][valid[:n]])
            closures[name] = closure_scores(opening[:n], gap, speech[:n])
        per_clip.append({
            "clip": clip["path"].name, "group": clip["group"], "speaker": clip["speaker"], "r": r,
            "closures": closures,
        })  # fmt: skip
        log(f"{clip['path'].name}: " + ", ".join(f"{k} r={v:.3f}" for k, v in r.items()))
    speakers = {}
    for row in per_clip:
        speakers.setdefault((row["group"], row["speaker"]), []).append(row["r"])
    per_speaker = [
        {
            "group": g,
            "speaker": s,
            "clips": len(v),
            "r": {c: float(np.mean([x[c] for x in v])) for c in columns},
        }
        for (g, s), v in speakers.items()
    ]
    groups = {}
    for sp in per_speaker:
        groups.setdefault(sp["group"], []).append(sp["r"])
    means = {g: {c: float(np.mean([x[c] for x in v])) for c in columns} for g, v in groups.items()}
    closures = {
        g: {
            c: pooled_closures([row["closures"][c] for row in per_clip if row["group"] == g]) for c in columns
        }
        for g in groups
    }
    result = {
        "model": str(animator.folder),
        "cores": os.cpu_count(),
        "audio": audio,
        "speed": rows,
        "concurrent": together,
        "lipsync": {
            "columns": columns,
            "clips": per_clip,
            "speakers": per_speaker,
            "means": means,
            "closures": closures,
        },
    }
    table = _markdown(result)
    log(table)
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_output(folder / "results.json") as tmp:
            tmp.write_text(json.dumps(result, indent=1))
        with atomic_output(folder / "table.md") as tmp:
            tmp.write_text(table)
        log(f"wrote {folder / 'results.json'} and {folder / 'table.md'}")
    return result


def _markdown(result: dict) -> str:
    speed = result["speed"]
    lines = [
        f"Streaming on {result['cores']} CPU cores, {len(result['audio'])} files pushed in real time in "
        f"{speed[0]['chunk_ms']:g} ms chunks, a step every {speed[0]['hop_ms']:g} ms. First frame: after the "
        "speech began (after its first chunk arrived); a frame's latency: from the arrival of the speech at "
        "its moment to the frame.",
        "",
        "| look-ahead | first frame | latency median | latency p95 | to the packet leaving: median | p95 | compute per s of speech |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in speed:
        lines.append(
            f"| {r['lookahead_ms']:g} ms | {r['first_frame_ms']:.0f} ms ({r['first_frame_after_first_chunk_ms']:.0f} ms) | "
            f"{r['latency_ms']['median']:.0f} ms | {r['latency_ms']['p95']:.0f} ms | "
            f"{r['packet_latency_ms']['median']:.0f} ms | {r['packet_latency_ms']['p95']:.0f} ms | "
            f"{r['compute_per_second']:.3f} s |"
        )
    lines += ["", _concurrent_table(result["concurrent"])]
    lip = result["lipsync"]
    head = " | ".join(lip["columns"])
    lines += [
        "",
        "Lip sync (Pearson r of the lip gap with the tracked mouth opening, generic style), mean per speaker:",
        "",
        f"| set | speaker | clips | {head} |",
        "|---|---|---|" + "---|" * len(lip["columns"]),
    ]
    for sp in lip["speakers"]:
        cells = " | ".join(f"{sp['r'][c]:.3f}" for c in lip["columns"])
        lines.append(f"| {sp['group']} | {sp['speaker']} | {sp['clips']} | {cells} |")
    lines += ["", f"| set (mean over speakers) | {head} |", "|---|" + "---|" * len(lip["columns"])]
    for group, m in lip["means"].items():
        lines.append(f"| {group} | " + " | ".join(f"{m[c]:.3f}" for c in lip["columns"]) + " |")

    def pair(p):
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        return f"{fmt(p['recall'])} / {fmt(p['precision'])}"

    lines += [
        "",
        "Lip closures (bench lipsync's), recall / precision, all clips of a set pooled:",
        "",
        f"| set (true closures) | {head} |",
        "|---|" + "---|" * len(lip["columns"]),
    ]
    for group, by in lip["closures"].items():
        count = by[lip["columns"][0]]["closures"]
        lines.append(f"| {group} ({count}) | " + " | ".join(pair(by[c]) for c in lip["columns"]) + " |")
    return "\n".join(lines) + "\n"


def concurrent_streams(animator, audio: list[str], counts, lookahead_ms: float, hop_ms: float,
                       chunk_ms: float = 20.0, log=print) -> list[dict]:  # fmt: skip
    """`n` streams at once for each n in `counts`, each pushing one of the `audio` files in real
    time and sending its frames as Live Link packets, in threads of one process (as `serve` runs
    them). A stream keeps real time when it does not fall behind: the median latency of its last
    quarter of frames is within one hop of its second quarter's. Cores busy: the process's CPU
    seconds over the wall time."""
    rows = []
    for n in counts:
        cpu, wall = time.process_time(), time.perf_counter()
        with _Sink() as sink, ThreadPoolExecutor(n) as pool:
            runs = list(pool.map(lambda k: stream_to(  # noqa: B023 (called in this iteration)
                animator, audio[k % len(audio)], None, lookahead_ms=lookahead_ms, hop_ms=hop_ms,
                chunk_ms=chunk_ms, senders=make_senders([sink.target]), seed=k), range(n)))  # fmt: skip
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall

        def behind(latency: np.ndarray) -> float:
            q = len(latency) // 4
            return float(np.median(latency[-q:]) - np.median(latency[q : 2 * q]))

        packet = np.concatenate([r["packet_latency_ms"] for r in runs])
        rows.append({
            "streams": n,
            "lookahead_ms": lookahead_ms,
            "hop_ms": hop_ms,
            "real_time": all(behind(r["packet_latency_ms"]) <= hop_ms for r in runs),
            "falls_behind_ms": max(behind(r["packet_latency_ms"]) for r in runs),
            "packet_latency_ms": {"median": float(np.median(packet)), "p95": float(np.percentile(packet, 95))},
            "cores_busy": cpu / wall,
            "speech_seconds": sum(r["seconds"] for r in runs),
        })  # fmt: skip
        r = rows[-1]
        log(
            f"{n} streams at once, a step every {hop_ms:g} ms: real time {'kept' if r['real_time'] else 'NOT kept'}, packet latency median "
            f"{r['packet_latency_ms']['median']:.0f} / p95 {r['packet_latency_ms']['p95']:.0f} ms, "
            f"{r['cores_busy']:.2f} cores busy"
        )
    return rows


def _concurrent_table(rows: list[dict]) -> str:
    lines = [
        f"Streams at once ({rows[0]['lookahead_ms']:g} ms look-ahead, threads of one process, each sending "
        "Live Link packets): latency from a chunk's arrival to the packet of its frame leaving.",
        "",
        "| streams | a step every | real time kept | last quarter behind the second by | packet latency median | p95 | cores busy |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['streams']} | {r['hop_ms']:g} ms | {'yes' if r['real_time'] else 'no'} | "
            f"{r['falls_behind_ms']:.0f} ms | {r['packet_latency_ms']['median']:.0f} ms | "
            f"{r['packet_latency_ms']['p95']:.0f} ms | {r['cores_busy']:.2f} |"
        )
    return "\n".join(lines)
