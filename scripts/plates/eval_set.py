#!/usr/bin/env python3
"""Plate-reading accuracy of `sightline anpr` on the labelled set (issue 13 figures).

    .venv-bench/bin/python scripts/plates/eval_set.py [--bin target/release/sightline]
        [--count 60] [--seed 1] [--set DIR]

Makes the set with make_set.py (unless --set names one), runs `sightline anpr --json` on
every image in one process, and prints: exact-plate accuracy, character error rate (edit
distance / true length, a missed plate counts its whole length), accuracy by character
height and by blur, and the median and p95 time per image. A read counts as exact when any
plate read on the image equals the label (the set has one plate per image); the CER uses the
read closest to the label.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def lev(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def bucket_height(h):
    return "<16 px" if h < 16 else "16-24 px" if h < 24 else "24-40 px" if h < 40 else ">=40 px"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(REPO, "target/release/sightline"))
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--set", help="an existing set (labels.json inside)")
    a = ap.parse_args()
    tmp = None
    if a.set:
        d = a.set
    else:
        tmp = tempfile.TemporaryDirectory()
        d = tmp.name
        subprocess.run([sys.executable, os.path.join(HERE, "make_set.py"), d,
                        "--count", str(a.count), "--seed", str(a.seed)], check=True,
                       stdout=subprocess.DEVNULL)
    labels = json.load(open(os.path.join(d, "labels.json")))
    if isinstance(labels, dict):
        labels = labels.get("images", labels.get("items", []))
    files = [os.path.join(d, l["file"]) for l in labels]
    env = dict(os.environ, RUST_LOG="error")
    out = subprocess.run([a.bin, "anpr", "--json", *files], capture_output=True, text=True,
                         env=env, cwd=REPO)
    reads = {}
    for line in out.stdout.splitlines():
        r = json.loads(line)
        reads[os.path.basename(r["image"])] = r
    n = exact = 0
    err = tot = 0
    ms = []
    by_h, by_blur, by_kind = {}, {}, {}
    for l in labels:
        truth = l["text"]
        r = reads.get(l["file"])
        texts = [p["text"] for p in r["plates"]] if r else []
        if r:
            ms.append(r["ms"])
        ok = truth in texts
        best = min((lev(t, truth) for t in texts), default=len(truth))
        n += 1
        exact += ok
        err += min(best, len(truth))
        tot += len(truth)
        for table, key in ((by_h, bucket_height(l["text_height_px"])),
                           (by_blur, "blur" if l.get("blur_sigma") else "sharp"),
                           (by_kind, "on a vehicle" if l["has_vehicle"] else "close-up")):
            t = table.setdefault(key, [0, 0])
            t[0] += ok
            t[1] += 1
    print(f"images: {n}  exact plates: {exact}/{n} = {exact / n:.1%}  CER: {err / tot:.1%}")
    for name, table in (("character height", by_h), ("blur", by_blur), ("picture", by_kind)):
        parts = ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(table.items()))
        print(f"  by {name}: {parts}")
    if ms:
        ms.sort()
        print(f"time per image (detector + plates, one process): median {statistics.median(ms):.0f} ms,"
              f" p95 {ms[int(0.95 * (len(ms) - 1))]:.0f} ms")
    if out.returncode != 0:
        print(f"sightline anpr exited {out.returncode}: {out.stderr[-500:]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
