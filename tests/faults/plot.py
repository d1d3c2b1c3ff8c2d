"""The run's picture: acknowledged sends per second and ack latency over time, with every
fault the nemesis injected shaded, so an outage can be matched to the fault that caused it.

matplotlib is imported inside `plot`, so the checker runs where it is not installed.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    k = max(0, math.ceil(q * len(sorted_values)) - 1)
    return sorted_values[k]


def _per_second(events: list[dict]):
    acks: dict[int, int] = defaultdict(int)
    latencies: dict[int, list[float]] = defaultdict(list)
    end = 0.0
    for e in events:
        t = e.get("t")
        if t is None:
            continue
        end = max(end, t)
        if e.get("f") == "send" and e.get("type") == "ok":
            second = int(t)
            acks[second] += 1
            if e.get("latency") is not None:
                latencies[second].append(e["latency"])
    seconds = list(range(0, int(end) + 1))
    throughput = [acks.get(s, 0) for s in seconds]
    p50, p99 = [], []
    for s in seconds:
        lat = sorted(latencies.get(s, ()))
        p50.append(_percentile(lat, 0.50) * 1000 if lat else math.nan)
        p99.append(_percentile(lat, 0.99) * 1000 if lat else math.nan)
    return seconds, throughput, p50, p99, end


def _fault_intervals(events: list[dict], end: float) -> list[tuple[str, float, float]]:
    """(fault kind, start, stop) per fault; one never healed lasts to the end of the run."""
    started: dict[tuple, list[int]] = defaultdict(list)
    intervals: list[list] = []
    nemesis = sorted((e for e in events if e.get("f") == "nemesis"), key=lambda e: e.get("t", 0.0))
    for e in nemesis:
        key = (e.get("fault"), json.dumps(e.get("targets"), sort_keys=True))
        if e.get("type") == "start":
            started[key].append(len(intervals))
            intervals.append([e.get("fault"), e.get("t", 0.0), end])
        elif e.get("type") == "stop" and started[key]:
            intervals[started[key].pop(0)][2] = e.get("t", end)
    return [tuple(i) for i in intervals]


def plot(events: list[dict], path_png, title: str) -> None:
    """Write a PNG of two stacked panels over run time: acknowledged sends per second, and
    ack latency p50/p99 (ms) per second; nemesis intervals shaded, one colour per fault kind."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    seconds, throughput, p50, p99, end = _per_second(events)
    intervals = _fault_intervals(events, end)

    fig = Figure(figsize=(14, 7), dpi=100)
    FigureCanvasAgg(fig)  # attaches itself to fig; no pyplot, so no global backend state
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.step(seconds, throughput, where="post", color="black", linewidth=0.9)
    top.set_ylabel("acknowledged sends / s")
    bottom.step(seconds, p50, where="post", color="tab:blue", linewidth=0.9, label="p50")
    bottom.step(seconds, p99, where="post", color="tab:red", linewidth=0.9, label="p99")
    bottom.set_ylabel("ack latency (ms)")
    bottom.set_xlabel("time since start (s)")
    if any(not math.isnan(x) and x > 0 for x in p99):
        bottom.set_yscale("log")

    palette = ["tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
               "tab:cyan", "tab:gray", "gold", "lightcoral", "teal", "navy"]
    colours: dict[str, str] = {}
    for kind, start, stop in intervals:
        colour = colours.setdefault(kind, palette[len(colours) % len(palette)])
        for ax in (top, bottom):
            ax.axvspan(start, stop, color=colour, alpha=0.25, linewidth=0)

    lines, labels = bottom.get_legend_handles_labels()
    faults = [Patch(color=c, alpha=0.4, label=k) for k, c in colours.items()]
    if faults:
        top.legend(handles=faults, loc="upper right", fontsize="small", title="faults")
    bottom.legend(lines, labels, loc="upper right", fontsize="small")
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
        ax.set_xlim(0, int(end) + 1)  # the last second's bucket is drawn in full
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(str(path_png), format="png")
