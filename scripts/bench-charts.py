#!/usr/bin/env python3
"""Turn `chatbox-load` result files (JSON, `--out`) into SVG charts.

Usage: scripts/bench-charts.py [--out-dir docs/img] results/*.json

Python standard library only; the SVG is written by hand. Each file's `subcommand`
and `target` say what it measured; charts are drawn only for what the files hold:

- bench-memory.svg   server memory per idle socket: chatbox (connected, and with a
                     session each), the floor server, Centrifugo, by socket count;
- bench-cpu.svg      server CPU time per streamed token, by concurrency (one bar per
                     run label: before, after, the floor);
- bench-latency.svg  token latency p50/p99/p999, gateway vs direct readers of the
                     mock, steady state, by concurrency (log scale);
- bench-throughput.svg  fan-out frames/s and churn connects/s, chatbox vs floor.
"""

import json
import math
import os
import sys
from xml.sax.saxutils import escape

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"]
WIDTH, HEIGHT = 760, 430
LEFT, RIGHT, TOP, BOTTOM = 80, 20, 50, 120


def nice_ceiling(value):
    """The smallest 1, 2, 2.5, 5 × 10^k at or above value."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * 10 ** exponent >= value:
            return step * 10 ** exponent
    return 10 ** (exponent + 1)


def fmt(value):
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def bar_chart(title, unit, groups, log=False):
    """groups: [(label, [(series, value), ...]), ...] -> SVG text."""
    series = []
    for _, bars in groups:
        for name, _ in bars:
            if name not in series:
                series.append(name)
    values = [v for _, bars in groups for _, v in bars if v is not None]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    if log:
        low = 10 ** math.floor(math.log10(max(min(v for v in values if v > 0), 1e-3))) if values else 1
        high = 10 ** math.ceil(math.log10(max(values))) if values else 10
        span = math.log10(high) - math.log10(low)

        def y_of(v):
            v = max(v, low)
            return TOP + plot_h - plot_h * (math.log10(v) - math.log10(low)) / span

        ticks = [low * 10 ** k for k in range(int(round(span)) + 1)]
    else:
        high = nice_ceiling(max(values) if values else 1)

        def y_of(v):
            return TOP + plot_h - plot_h * v / high

        ticks = [high * k / 5 for k in range(6)]
    for tick in ticks:
        y = y_of(tick)
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(tick)}</text>')
    out.append(
        f'<text x="18" y="{TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {TOP + plot_h / 2})">{escape(unit)}</text>'
    )
    slot = plot_w / max(len(groups), 1)
    bar_w = min(48, slot * 0.8 / max(len(series), 1))
    for g, (label, bars) in enumerate(groups):
        start = LEFT + g * slot + (slot - bar_w * len(bars)) / 2
        for b, (name, value) in enumerate(bars):
            if value is None:
                continue
            x = start + b * bar_w
            y = y_of(value)
            color = PALETTE[series.index(name) % len(PALETTE)]
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{TOP + plot_h - y:.1f}" fill="{color}">'
                f"<title>{escape(name)}: {fmt(value)} {escape(unit)}</title></rect>"
            )
            out.append(f'<text x="{x + bar_w / 2 - 1:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="10">{fmt(value)}</text>')
        out.append(f'<text x="{LEFT + g * slot + slot / 2:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{escape(label)}</text>')
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#333"/>')
    legend_y = HEIGHT - BOTTOM + 48
    x = LEFT
    for i, name in enumerate(series):
        if x + 24 + 7 * len(name) > WIDTH - RIGHT:
            x, legend_y = LEFT, legend_y + 20
        out.append(f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>')
        out.append(f'<text x="{x + 16}" y="{legend_y}">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def memory_chart(results):
    groups = {}
    for r in results:
        if r.get("subcommand") != "idle":
            continue
        label = f"{r['sockets']:,} sockets"
        bars = groups.setdefault(label, [])
        if r["target"] == "chatbox" and not r.get("label"):
            bars.append(("chatbox, connected", r.get("kib_per_socket_connected")))
            if r.get("kib_per_socket_with_session") is not None:
                bars.append(("chatbox, with a session", r["kib_per_socket_with_session"]))
        else:
            bars.append((r.get("label") or r["target"], r.get("kib_per_socket_connected")))
    if not groups:
        return None
    ordered = sorted(groups.items(), key=lambda item: int(item[0].split()[0].replace(",", "")))
    return bar_chart("Server memory per idle socket (RSS growth)", "KiB per socket", ordered)


def streams(results):
    return sorted((r for r in results if r.get("subcommand") == "stream"), key=lambda r: r["concurrency"])


def cpu_chart(results):
    runs = streams(results)
    if not runs:
        return None
    groups = {}
    for r in runs:
        bars = groups.setdefault(f"{r['concurrency']:,} streams", [])
        bars.append((r.get("label") or r["target"], r["server_cpu"]["us_per_token"]))
    return bar_chart("Server CPU time per streamed token", "µs per token", list(groups.items()))


def latency_chart(results):
    runs = streams(results)
    if not runs:
        return None
    groups = []
    for r in runs:
        bars = []
        for q in ("p50", "p99", "p999"):
            bars.append((f"direct {q}", r["direct"]["steady"][f"{q}_us"]))
            bars.append((f"gateway {q}", r["gateway"]["steady"][f"{q}_us"]))
        name = f"{r['concurrency']:,} streams, {r['rate_per_answer']:g} tok/s"
        groups.append((f"{r['label']}, {name}" if r.get("label") else name, bars))
    return bar_chart("Token latency, steady state (send → receive)", "µs (log scale)", groups, log=True)


def throughput_chart(results):
    groups = {}
    for r in results:
        if r.get("subcommand") == "fanout":
            label = f"fan-out, {r['watchers']} sockets (frames/s)"
            groups.setdefault(label, []).append((r.get("label") or r["target"], r["frames_per_s"]))
        elif r.get("subcommand") == "churn":
            groups.setdefault("churn (connects/s)", []).append((r.get("label") or r["target"], r["connects_per_s"]))
    if not groups:
        return None
    return bar_chart("Throughput, chatbox vs floor", "per second", list(groups.items()), log=True)


def main(argv):
    out_dir = "docs/img"
    files = []
    args = iter(argv)
    for arg in args:
        if arg == "--out-dir":
            out_dir = next(args)
        else:
            files.append(arg)
    if not files:
        print(__doc__)
        return 2
    results = []
    for path in files:
        with open(path, encoding="utf-8") as handle:
            results.append(json.load(handle))
    os.makedirs(out_dir, exist_ok=True)
    for name, chart in (("memory", memory_chart), ("cpu", cpu_chart), ("latency", latency_chart), ("throughput", throughput_chart)):
        svg = chart(results)
        if svg is None:
            continue
        path = os.path.join(out_dir, f"bench-{name}.svg")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(svg)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
