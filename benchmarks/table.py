"""Markdown tables of a harness run, as in the README's Performance section.

    python benchmarks/table.py benchmarks/results.json [one_thread.json]

The optional second file (a run with ``--threads 1``) adds a column of its ratios; the line under the
table names the machine the run is from (its record in results.json).
"""

from __future__ import annotations

import json
import sys


def machine_line(run):
    """The machine a run is from: its record's summary line (older results.json files hold only the arch)."""
    machine = run.get("machine")
    if isinstance(machine, dict):
        from convlayers._machine import summary
        return summary(machine)
    return " ".join(str(v) for v in (machine, run.get("processor")) if v) or "not recorded"


def main(path, one_thread=None):
    run = json.load(open(path))
    single = json.load(open(one_thread)) if one_thread else None
    by_name = {c["name"]: c for c in single["cases"]} if single else {}
    head = "| case | group | convlayers | PyTorch | ratio |" + (" ratio at 1 thread |" if single else "")
    print(head)
    print("| --- | --- | ---: | ---: | ---: |" + (" ---: |" if single else ""))
    for c in run["cases"]:
        row = f"| {c['name']} | {c['group']} | {c['ours_ms']:.2f} ms | {c['peer_ms']:.2f} ms | {c['ratio']:.2f} |"
        if single:
            one = by_name.get(c["name"])  # a row added after that run: no figure
            row += f" {one['ratio']:.2f} |" if one else " – |"
        print(row)
    print()
    print(f"Machine: {machine_line(run)}")
    print()
    for group, s in run["summary"].items():
        if "geomean" in s:
            extra = ""
            if single:
                t = single["summary"].get(group)
                if t and t.get("target") == s["target"]:  # the same rows and target in both runs
                    extra = f"; 1 thread: {t['geomean']:.2f} (worst {t['max']:.2f})"
            print(f"- {group}: geometric mean {s['geomean']:.2f}, worst {s['max']:.2f} — target {s['target']}: "
                  f"{'met' if s['met'] else 'NOT met'}{extra}")
    print()
    print("| filter | vs scipy.signal.convolve2d | vs scipy.ndimage.convolve | vs OpenCV filter2D |"
          + (" vs OpenCV, 1 thread |" if single else ""))
    print("| --- | ---: | ---: | ---: |" + (" ---: |" if single else ""))
    cells = {}
    for f in run["filters"]:
        cells.setdefault(f["name"], {})[f["peer"]] = f
    single_cv = {f["name"]: f for f in single["filters"] if f["peer"] == "opencv"} if single else {}
    for name, peers in cells.items():
        row = f"| {name} |"
        for peer in ("scipy.signal", "scipy.ndimage", "opencv"):
            f = peers.get(peer)
            row += f" {f['ours_ms']:.2f} / {f['peer_ms']:.2f} ms = {f['ratio']:.3f} |" if f else " – |"
        if single:
            f = single_cv.get(name)
            row += f" {f['ours_ms']:.2f} / {f['peer_ms']:.2f} ms = {f['ratio']:.3f} |" if f else " – |"
        print(row)


if __name__ == "__main__":
    main(*sys.argv[1:3])
