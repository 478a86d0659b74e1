#!/usr/bin/env python3
"""Batch-job figures of issue 14, in one run, on a quiet machine (a benchmark, not a test).

    python3 scripts/bench/jobs_vs_live.py [--bin target/release/sightline] [--seconds 40]

With one `sightline` binary (build it with `cargo build --release -p sightline`), in a
temporary data directory (embedded SQLite) and the lean demo config (`configs/demo.toml`
without pictures and RTSP output: NanoDet on every frame, no encode):

1. the machine's limits for the clip: `sightline bench --max-streams 1` (decode-only fps,
   inference-only fps with one client and with two);
2. a job over the clip alone (`sightline jobs add … --wait` on a running `serve`): its fps and
   × real time, and their ratio to the one-client inference limit (issue goal: >= 0.9);
3. a live run — the clip looped with `pacing = live`, i.e. a camera — alone for `--seconds`:
   its dropped frames;
4. the same live run while a job runs beside it: its dropped frames over the job's duration
   (issue goal: 0 %), and the job's speed (it yields while the live run drops).

Prints one JSON report on stdout. Only Python's standard library; talks to the server over
its HTTP API on 127.0.0.1 and stops everything it started.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLIP = os.path.join(REPO, "samples", "vtest.avi")


def log(msg):
    print(f"jobs_vs_live: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lean_config():
    text = open(os.path.join(REPO, "configs", "demo.toml")).read()
    for a, b in [
        ("crops = true", "crops = false"),
        ("snapshots = true", "snapshots = false"),
        ("rtsp = true", "rtsp = false"),
    ]:
        if a not in text:
            sys.exit(f"configs/demo.toml no longer has {a!r}")
        text = text.replace(a, b, 1)
    return text


class World:
    def __init__(self, binary, data):
        self.binary = binary
        self.env = dict(os.environ)
        self.env.pop("SIGHTLINE_DATABASE_URL", None)
        self.env.pop("RUST_LOG", None)
        self.env.update(
            {
                "SIGHTLINE_DATA_DIR": data,
                "SIGHTLINE_LOG__FORMAT": "text",
                "SIGHTLINE_ENGINE__HEARTBEAT_S": "1",
                "SIGHTLINE_ENGINE__POLL_INTERVAL_MS": "300",
            }
        )
        self.data = data

    def cli(self, *args):
        out = subprocess.run(
            [self.binary, *args], env=self.env, cwd=REPO, capture_output=True, text=True
        )
        if out.returncode != 0:
            sys.exit(f"sightline {' '.join(args)} failed:\n{out.stderr[-3000:]}")
        return out.stdout


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.load(r)


def live_counts(port, run):
    """(frames_in, frames_dropped) of a run, from its live status."""
    d = get(port, f"/v1/runs/{run}")
    s = d.get("live") or d.get("run", {}).get("stats") or {}
    return s.get("frames_in", 0), s.get("frames_dropped", 0)


def drop_share(a, b):
    frames = (b[0] - a[0]) + (b[1] - a[1])
    return (b[1] - a[1]) / frames if frames else 0.0, frames


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "target", "release", "sightline"))
    ap.add_argument("--seconds", type=int, default=40, help="live run alone, seconds")
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary}: no such binary (cargo build --release -p sightline)")
    data = tempfile.mkdtemp(prefix="sightline-jobs-bench-")
    procs = []
    try:
        w = World(binary, data)
        cfg = os.path.join(data, "lean.toml")
        open(cfg, "w").write(lean_config())
        w.cli("migrate")
        w.cli("configs", "put", "lean", cfg)
        report = {"binary": binary, "clip": CLIP, "cores": os.cpu_count()}

        log("1/4 limits (sightline bench --max-streams 1)")
        b = json.loads(
            w.cli(
                "bench", "--max-streams", "1", "--seconds", "12", "--warmup", "2",
                "--config", cfg, "--json",
            )
        )
        lim = b["limits"]
        infer = dict((int(c), f) for c, f in lim["infer_fps"])
        report["limits"] = {
            "decode_fps": lim["decode_fps"],
            "infer_fps_1_client": infer.get(1),
            "infer_fps_2_clients": infer.get(2),
            "single_stream_fps_bench": b["single_stream_fps"],
        }

        port = free_port()
        srv_log = open(os.path.join(data, "serve.log"), "w")
        env = dict(w.env, SIGHTLINE_API__BIND=f"127.0.0.1:{port}")
        srv = subprocess.Popen(
            [binary, "serve", "--rtsp-port", "0"], env=env, cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=srv_log,
        )
        procs.append(srv)
        for _ in range(600):
            try:
                get(port, "/health")
                break
            except Exception:
                time.sleep(0.1)
        else:
            sys.exit("the server did not answer")

        def run_job(job):
            w.cli("jobs", "add", CLIP, "-c", "lean", "--id", job)
            while True:
                j = json.loads(w.cli("jobs", "show", job))
                if j["state"] in ("completed", "failed", "cancelled"):
                    return j
                time.sleep(0.5)

        log("2/4 a job alone")
        j = run_job("job-alone")
        p = j["progress"]
        # The job's speed: frames ÷ the attempt's wall time (its stats' fps is the last
        # second's rate, which may be the tail of the file).
        wall_s = p["position_s"] / p["x_realtime"]
        job_fps = p["frames_done"] / wall_s
        report["job_alone"] = {
            "state": j["state"],
            "frames": p["frames_done"],
            "x_realtime": p["x_realtime"],
            "wall_s": wall_s,
            "fps": job_fps,
            "of_infer_limit_1_client": job_fps / infer[1] if infer.get(1) else None,
            "of_infer_limit_2_clients": job_fps / infer[2] if infer.get(2) else None,
        }

        log(f"3/4 a live run alone ({a.seconds} s)")
        live = "live-camera"
        w.cli("runs", "add", CLIP, "-c", "lean", "--id", live, "--loop", "--pacing", "live")
        time.sleep(8)
        c0 = live_counts(port, live)
        time.sleep(a.seconds)
        c1 = live_counts(port, live)
        share, frames = drop_share(c0, c1)
        report["live_alone"] = {"seconds": a.seconds, "frames": frames, "dropped_share": share}

        log("4/4 the live run with a job beside it")
        c0 = live_counts(port, live)
        t0 = time.time()
        j = run_job("job-beside-live")
        took = time.time() - t0
        c1 = live_counts(port, live)
        share, frames = drop_share(c0, c1)
        p = j["progress"]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        yielded = re.search(r"^sightline_jobs_yielding_to_live (\S+)", metrics, re.M)
        report["live_with_job"] = {
            "seconds": took,
            "live_frames": frames,
            "live_dropped_share": share,
            "job_state": j["state"],
            "job_frames": p["frames_done"],
            "job_x_realtime": p["x_realtime"],
            "yielding_gauge_at_end": float(yielded.group(1)) if yielded else None,
        }
        print(json.dumps(report, indent=2))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("KEEP"):
            log(f"kept {data}")
        else:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
