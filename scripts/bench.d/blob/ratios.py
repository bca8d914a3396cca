"""stagehand against the other tools, per data shape and direction.

  python3 ratios.py RESULTS_DIR

For each `down-*-DATASET` / `up-*-DATASET` group in RESULTS_DIR (blob.sh's results):
stagehand's median wall time, the best other tool's, their ratio (above 1: stagehand is
faster), stagehand's share of the emulator's ceiling (curl to /dev/null) and of the
ceiling with the bytes landing on disk (curl to files) where they were measured, and
peak RSS of stagehand beside the others'.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
from table import rows  # noqa: E402

CEILING = {
    ("down", "big"): "ceiling-curl-big-x16",
    ("down", "medium"): "ceiling-curl-medium-p16",
    ("down", "small"): "ceiling-curl-small-p32",
    ("up", "big"): "ceiling-up-curl-big-x16",
    ("up", "medium"): "ceiling-up-curl-medium-p16",
    ("up", "small"): "ceiling-up-curl-small-p32",
}

DISK_CEILING = {
    ("down", "big"): "ceiling-curl-big-x16-disk",
    ("down", "medium"): "ceiling-curl-medium-p16-disk",
    ("down", "small"): "ceiling-curl-small-p32-disk",
}


def main(d):
    res = {}
    for f in os.listdir(d):
        m = re.match(r"^(down|up)-(.+)-(big|medium|small)\.txt$", f)
        if m:
            r, _ = rows(os.path.join(d, f))
            if "wall s" in r:
                res.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = (r["wall s"][1], r["peak MiB"][1])
    def walls(names):
        out = {}
        for k, name in names.items():
            p = os.path.join(d, name + ".txt")
            if os.path.exists(p):
                r, _ = rows(p)
                if "wall s" in r:
                    out[k] = r["wall s"][1]
        return out

    def share(ceiling, wall):
        return f"{ceiling / wall:.0%}" if ceiling else "-"

    ceil, disk = walls(CEILING), walls(DISK_CEILING)
    print("| direction | data | stagehand s | best other (s) | best/stagehand | ceiling/stagehand | disk ceiling/stagehand | stagehand RSS MiB | others' RSS MiB |")
    print("|---|---|---:|---|---:|---:|---:|---:|---|")
    for (direction, ds), tools in sorted(res.items()):
        if "stagehand" not in tools:
            continue
        sh, rss = tools["stagehand"]
        others = {t: v for t, v in tools.items() if not t.startswith("stagehand")}
        if others:
            bt, (bw, _) = min(others.items(), key=lambda kv: kv[1][0])
            best = f"{bt} ({bw:.2f})"
            ratio = f"{bw / sh:.2f}"
        else:
            best, ratio = "-", "-"
        c, dc = ceil.get((direction, ds)), disk.get((direction, ds))
        orss = ", ".join(f"{t} {v[1]:.0f}" for t, v in sorted(others.items()))
        print(f"| {direction} | {ds} | {sh:.2f} | {best} | {ratio} | {share(c, sh)} | {share(dc, sh)} | {rss:.0f} | {orss} |")
        for variant, label in (("stagehand-md5all", "every MD5 checked"), ("stagehand-nomd5", "no MD5 check")):
            if variant in tools:
                nw, nrss = tools[variant]
                r = f"{bw / nw:.2f}" if others else "-"
                print(f"| {direction} | {ds} ({label}) | {nw:.2f} | {best} | {r} | {share(c, nw)} | {share(dc, nw)} | {nrss:.0f} | |")

if __name__ == "__main__":
    main(sys.argv[1])
