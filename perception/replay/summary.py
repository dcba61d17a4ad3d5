"""The one-page summary of a replay: frames, modalities present per frame, what was dropped or
skipped, latency per stage, throughput (``summary.json`` and ``summary.md``).

The latencies and the throughput are wall-clock measurements, so the summary differs from run
to run; the bag and ``metrics.json`` do not.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..align import SensorStats
from ..pipeline import PipelineOutput

STAGES = ("sync_wait_ms", "accumulate_ms", "collate_ms", "model_ms", "decode_ms", "track_ms",
          "processing_ms")


def _modalities(values: frozenset) -> str:
    return "+".join(sorted(m.value for m in values)) or "none"


@dataclass
class FrameRow:
    """One replayed frame in the summary."""

    stamp_ns: int
    present: str
    used: str
    missing: list[str]
    motion_compensated: bool | None
    detections: int
    tracks: int | None


@dataclass
class ReplaySummary:
    """Everything the summary reports (see the module doc)."""

    log: str
    kind: str
    model: str
    frames: int = 0
    interrupted: bool = False
    truncated_log: bool = False
    ego_pose: bool = False
    notes: list[str] = field(default_factory=list)
    rows: list[FrameRow] = field(default_factory=list)
    timings: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    sensors: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)

    def add(self, output: PipelineOutput) -> None:
        self.frames += 1
        self.rows.append(FrameRow(
            int(output.stamp_ns), _modalities(output.frame.modalities),
            _modalities(output.modalities), list(output.missing), output.motion_compensated,
            len(output.detections), None if output.tracks is None else len(output.tracks)))
        t = output.timings
        for stage in STAGES:
            self.timings[stage].append(float(getattr(t, stage)))

    def set_sensor_stats(self, stats: dict[str, SensorStats]) -> None:
        self.sensors = {name: {**asdict(s), "dropped": s.dropped}
                        for name, s in sorted(stats.items())}

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def latency(self) -> dict[str, dict[str, float]]:
        out = {}
        for stage, values in self.timings.items():
            v = np.asarray(values) if values else np.zeros(1)
            out[stage] = {"mean": float(v.mean()), "p50": float(np.percentile(v, 50)),
                          "p95": float(np.percentile(v, 95))}
        return out

    def to_json(self) -> dict:
        return {
            "log": self.log, "kind": self.kind, "model": self.model, "frames": self.frames,
            "interrupted": self.interrupted, "truncated_log": self.truncated_log,
            "ego_pose": self.ego_pose, "notes": self.notes,
            "modalities_present": dict(sorted(Counter(r.present for r in self.rows).items())),
            "modalities_used": dict(sorted(Counter(r.used for r in self.rows).items())),
            "sensors": self.sensors, "skipped_messages": self.skipped,
            "latency_ms": self.latency(), "wall_s": self.wall_s,
            "frames_per_s": self.frames_per_s, "metrics": self.metrics,
            "outputs": self.outputs, "per_frame": [asdict(r) for r in self.rows],
        }

    def markdown(self) -> str:
        lines = [f"# Replay of {self.log}", "",
                 f"{self.kind}, model {self.model}: **{self.frames} frames** in "
                 f"{self.wall_s:.1f} s ({self.frames_per_s:.2f} frames/s)"
                 + (", **interrupted**" if self.interrupted else "")
                 + (", **the log ends early** (truncated file)" if self.truncated_log else ""),
                 ""]
        lines += [f"- {note}" for note in self.notes] + ([""] if self.notes else [])
        lines += ["| modalities present | frames |", "|---|---|"]
        for combo, n in sorted(Counter(r.present for r in self.rows).items()):
            lines.append(f"| {combo} | {n} |")
        lines += ["", "| sensor | received | used | dropped | missing in frames |",
                  "|---|---|---|---|---|"]
        for name, s in self.sensors.items():
            lines.append(f"| {name} | {s['received']} | {s['used']} | {s['dropped']} | "
                         f"{s['missing']} |")
        skipped = sum(sum(r.values()) for r in self.skipped.values())
        lines += ["", f"Skipped messages: {skipped}"]
        lines += [f"- {topic}: " + ", ".join(f"{reason} {n}" for reason, n in reasons.items())
                  for topic, reasons in self.skipped.items()]
        lines += ["", "| stage (ms per frame) | mean | p50 | p95 |", "|---|---|---|---|"]
        for stage, v in self.latency().items():
            lines.append(f"| {stage.removesuffix('_ms')} | {v['mean']:.1f} | {v['p50']:.1f} | "
                         f"{v['p95']:.1f} |")
        if self.metrics:
            lines += ["", "| metric | value |", "|---|---|"]
            lines += [f"| {k} | {v:.4f} |" for k, v in self.metrics.items()]
        lines += ["", "Outputs: " + ", ".join(f"`{v}`" for v in self.outputs.values()), ""]
        return "\n".join(lines)

    def write(self, out_dir: Path) -> None:
        """``summary.json`` and ``summary.md`` in ``out_dir`` (each written atomically)."""
        write_text(out_dir / "summary.json",
                   json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
        write_text(out_dir / "summary.md", self.markdown())


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary name, then rename it into place."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def headline_metrics(metrics: dict) -> dict[str, float]:
    """A few numbers of ``metrics.json`` for the summary: LEVEL_1 AP per class, and MOTA."""
    out = {}
    for key, value in sorted(metrics.items()):
        if key.endswith("_LEVEL_1") and isinstance(value, dict) and "AP" in value:
            out[f"{key} AP"] = float(value["AP"])
    for key, value in sorted((metrics.get("tracking") or {}).items()):
        if key.endswith("_LEVEL_1") and isinstance(value, dict) and "MOTA" in value:
            out[f"{key} MOTA"] = float(value["MOTA"])
    return out
