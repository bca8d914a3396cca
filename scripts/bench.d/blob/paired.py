"""stagehand's share of the emulator's ceiling, round by round.

  python3 paired.py RESULTS_DIR/paired.tsv

Each line of paired.tsv (blob.sh's `paired` section) is one round: direction, dataset,
round, the ceiling's wall seconds (curl to /dev/null, or curl's uploads), the disk
ceiling's (curl to files; downloads only) and stagehand's, all measured within seconds
of each other. The share is ceiling / stagehand for each round (above 100%: stagehand
is faster than curl); the table gives the median round and the range.
"""

import statistics
import sys


def share(ceiling, own):
    return ceiling / own if own > 0 else float("nan")


def main(path):
    groups = {}
    for line in open(path):
        direction, ds, _, c, k, s = line.rstrip("\n").split("\t")
        groups.setdefault((direction, ds), []).append(
            (float(c), float(k) if k else None, float(s))
        )
    print("| direction | data | rounds | ceiling s | stagehand s | share of ceiling: median (range) | share of disk ceiling: median (range) |")
    print("|---|---|---:|---:|---:|---|---|")
    for (direction, ds), rounds in groups.items():
        cells = []
        for k in (0, 1):
            vals = [share(r[k], r[2]) for r in rounds if r[k] is not None]
            cells.append(
                f"{statistics.median(vals):.0%} ({min(vals):.0%}-{max(vals):.0%})" if vals else "-"
            )
        print(
            f"| {direction} | {ds} | {len(rounds)} "
            f"| {statistics.median(r[0] for r in rounds):.2f} "
            f"| {statistics.median(r[2] for r in rounds):.2f} | {cells[0]} | {cells[1]} |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
