"""Benchmark output: CSV of every point, a Markdown summary, a recall-QPS plot."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

from hqi.benchmark.harness import BenchConfig, Point
from hqi.benchmark.systems import LEVELS

__all__ = ["best_at", "write_report"]


def best_at(points: list[Point], system: str, level: float) -> Point | None:
    """The highest-QPS point of ``system`` with recall >= ``level``."""
    ok = [p for p in points if p.system == system and p.recall >= level]
    return max(ok, key=lambda p: p.qps) if ok else None


def summary_markdown(
    points: list[Point],
    builds: dict[str, dict[str, float]],
    cfg: BenchConfig,
    data_name: str,
    shape: tuple[int, int],
) -> str:
    systems = list(dict.fromkeys(p.system for p in points))
    lines = [
        f"# Hybrid search benchmark: {data_name}",
        "",
        f"N = {shape[0]:,}, d = {shape[1]}, Q = {cfg.queries:,}, "
        f"k = {cfg.k}, threads = {cfg.threads}, median of {cfg.repeats} runs.",
        "",
        "Best queries/s at recall@k >= level (params in brackets); build time and the resident "
        "memory the build added.",
        "",
        "| system | " + " | ".join(f"QPS @ {lv:.2f}" for lv in LEVELS) + " | build s | memory MB |",
        "|---|" + "---|" * (len(LEVELS) + 2),
    ]
    for s in systems:
        cells = []
        for lv in LEVELS:
            p = best_at(points, s, lv)
            cells.append("–" if p is None else f"{p.qps:,.0f} ({_params(p)})")
        b = builds.get(s, {})
        lines.append(
            f"| {s} | "
            + " | ".join(cells)
            + f" | {b.get('build_s', 0):.1f} | {b.get('memory_mb', 0):.0f} |"
        )
    floor = builds.get("floor")
    exact = [p for p in points if p.system == "hqi" and p.params.get("exact")]
    if floor and exact:
        exact_s = cfg.queries / exact[0].qps
        lines += [
            "",
            f"Exact floor: 2 x d x {floor['qualifying_rows']:,.0f} qualifying rows / "
            f"{floor['gemm_flops'] / 1e9:.0f} GFLOP/s measured GEMM = {floor['floor_s']:.3f} s; "
            f"hqi exact: {exact_s:.3f} s ({exact_s / floor['floor_s']:.1f}x the floor).",
        ]
        first = builds.get("hqi", {}).get("first_exact_s")
        if first is not None:
            lines.append(
                f"hqi's first exact search of the process (untimed warm-up: the rows' "
                f"bfloat16 copy and the products' shapes, when they run in bfloat16): "
                f"{first:.3f} s."
            )
        if "floor_bf16_s" in floor:
            lines.append(
                f"With bfloat16 products on AMX (`hqi[amx]`, what exact search ran): "
                f"{floor['gemm_flops_bf16'] / 1e9:.0f} GFLOP/s measured, floor "
                f"{floor['floor_bf16_s']:.3f} s; hqi exact "
                f"{exact_s / floor['floor_bf16_s']:.1f}x that floor."
            )
    tuned = [p for p in points if p.system == "hqi" and "recall_target" in p.params]
    if tuned:
        lines += [
            "",
            "hqi self-tuned (`recall_target`, its calibration on a sample timed with the "
            "search): "
            + "; ".join(
                f"{p.params['recall_target']:.2f}: {p.qps:,.0f} q/s at recall {p.recall:.4f}"
                for p in tuned
            )
            + ".",
        ]
    if "hqi" in systems:
        lines += [
            "",
            "hqi's QPS as a multiple of each system's (same recall level):",
            "",
            "| system | " + " | ".join(f"@ {lv:.2f}" for lv in LEVELS) + " |",
            "|---|" + "---|" * len(LEVELS),
        ]
        for s in systems:
            if s == "hqi":
                continue
            cells = []
            for lv in LEVELS:
                ours, theirs = best_at(points, "hqi", lv), best_at(points, s, lv)
                cells.append(
                    "–" if ours is None or theirs is None else f"{ours.qps / theirs.qps:.1f}x"
                )
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _params(p: Point) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.params.items()) or "-"


def write_report(
    out: Path,
    points: list[Point],
    builds: dict[str, dict[str, float]],
    cfg: BenchConfig,
    data_name: str,
    shape: tuple[int, int],
) -> Path:
    """Write points.csv, summary.md, config.json and recall_qps.png under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "points.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["system", "params", "qps", "recall", "queries", "seconds"])
        for p in points:
            writer.writerow(
                [
                    p.system,
                    json.dumps(p.params),
                    f"{p.qps:.3f}",
                    f"{p.recall:.5f}",
                    p.queries,
                    json.dumps([round(t, 5) for t in p.seconds]),
                ]
            )
    (out / "config.json").write_text(
        json.dumps(
            {"config": asdict(cfg), "data": data_name, "shape": shape, "builds": builds}, indent=2
        )
    )
    (out / "summary.md").write_text(summary_markdown(points, builds, cfg, data_name, shape))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are optional: `pip install hqi[bench]`
        return out
    fig, ax = plt.subplots(figsize=(7, 4.5))
    tuned = [p for p in points if "recall_target" in p.params]
    for s in dict.fromkeys(p.system for p in points):
        swept = (p for p in points if p.system == s and p not in tuned)
        pts = sorted(swept, key=lambda p: p.recall)
        ax.plot([p.recall for p in pts], [p.qps for p in pts], marker="o", label=s)
    if tuned:  # hqi's self-tuned points, apart from its swept curve
        ax.scatter(
            [p.recall for p in tuned],
            [p.qps for p in tuned],
            marker="*",
            s=120,
            color="black",
            zorder=3,
            label="hqi, recall_target (calibration included)",
        )
    ax.set_yscale("log")
    ax.set_xlabel(f"recall@{cfg.k}")
    ax.set_ylabel("queries / second (log)")
    ax.set_title(f"{data_name}: {cfg.queries:,} hybrid queries, {cfg.threads} threads")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "recall_qps.png", dpi=120)
    plt.close(fig)
    return out
