#!/usr/bin/env python3
"""Make the plate test clips: a real vehicle picture with a rendered plate moving across a
real background, encoded with ffmpeg (libx264, yuv420p, no B-frames, 10 fps).

    .venv-bench/bin/python scripts/plates/make_clip.py            # both clips + ground truth
    .venv-bench/bin/python scripts/plates/make_clip.py --check    # and NanoDet on every frame

Vehicle: samples/plates/vehicles/van.png (the van of samples/vtest.avi, which NanoDet calls
a truck), upscaled x4 with cv2.INTER_CUBIC; background: samples/plates/background.jpg.
Writes samples/plates/plate_car.mp4 (KA01AB1234), plate_car2.mp4 (KA01AB1234, then the
mirrored van with MH12DE1433) and a <clip>.json with the per-frame ground truth (vehicle box,
plate quad, text). Deterministic: no randomness, fixed encoder settings.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plates  # noqa: E402

FPS = 10
W, H = 768, 576
SCALE = 4.0
FONT = "LiberationSansNarrow-Bold"
TEXT_PX = 28


def vehicle_sprite(v, text, colour, mirror=False):
    """Upscaled vehicle crop with its plate; returns (img, vehicle_box, plate_quad) in sprite px."""
    img = cv2.resize(v["image"], None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_CUBIC)
    box = np.array(v["vehicle_box"], np.float64) * SCALE
    ax, ay = np.array(v["plate_anchor"]) * SCALE
    if mirror:
        img = img[:, ::-1].copy()
        w = img.shape[1]
        box = np.array([w - box[2], box[1], w - box[0], box[3]])
        ax = w - ax
    plate, info = plates.render_plate(text, FONT, TEXT_PX, colour)
    quad = plates.plate_quad(*plate.size, (ax, ay), angle_deg=0.0)
    plates.paste_plate(img, plate, quad)
    return img, box, quad, info


def compose(bg, sprite, x0, y0):
    """Paste the sprite at (x0, y0) (may be partly outside); returns the frame."""
    f = bg.copy()
    h, w = sprite.shape[:2]
    sx1, sy1 = max(0, -x0), max(0, -y0)
    dx1, dy1 = max(0, x0), max(0, y0)
    dx2, dy2 = min(W, x0 + w), min(H, y0 + h)
    if dx2 > dx1 and dy2 > dy1:
        # feather the sprite's rectangle edge into the background (4 px)
        patch = sprite[sy1:sy1 + dy2 - dy1, sx1:sx1 + dx2 - dx1].astype(np.float32)
        m = np.zeros((h, w), np.float32)
        m[4:-4, 4:-4] = 1
        m = cv2.GaussianBlur(m, (9, 9), 3)[sy1:sy1 + dy2 - dy1, sx1:sx1 + dx2 - dx1, None]
        region = f[dy1:dy2, dx1:dx2].astype(np.float32)
        f[dy1:dy2, dx1:dx2] = np.round(region * (1 - m) + patch * m).astype(np.uint8)
    return f


def clip(bg, segments, n_frames):
    """segments: [(sprite, box, quad, text, first, last, x_start, x_end, y)]"""
    frames, truth = [], []
    for i in range(n_frames):
        f = bg
        gt = {"frame": i, "t": round(i / FPS, 2), "vehicles": []}
        for sp, box, quad, text, first, last, xs, xe, y in segments:
            if not first <= i <= last:
                continue
            k = (i - first) / max(1, last - first)
            x0 = int(round(xs + (xe - xs) * k))
            f = compose(f, sp, x0, y)
            b = [max(0, box[0] + x0), max(0, box[1] + y), min(W, box[2] + x0), min(H, box[3] + y)]
            q = (quad + [x0, y]).round(1).tolist()
            gt["vehicles"].append({
                "text": plates.normalise(text), "display": text,
                "vehicle_box": [round(float(v), 1) for v in b], "plate_quad": q,
                "plate_fully_visible": bool(min(p[0] for p in q) >= 0 and max(p[0] for p in q) <= W),
            })
        frames.append(f)
        truth.append(gt)
    return frames, truth


def encode(frames, path):
    tmp = tempfile.mkdtemp(prefix="plateclip")
    try:
        for i, f in enumerate(frames):
            cv2.imwrite(os.path.join(tmp, f"{i:04d}.png"), f)
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-framerate", str(FPS),
                        "-i", os.path.join(tmp, "%04d.png"), "-c:v", "libx264", "-preset", "medium",
                        "-crf", "23", "-bf", "0", "-g", str(2 * FPS), "-pix_fmt", "yuv420p",
                        "-threads", "1", "-flags", "+bitexact", "-fflags", "+bitexact",
                        "-map_metadata", "-1", "-movflags", "+faststart", path], check=True)
    finally:
        shutil.rmtree(tmp)


def check(path, truth, thr=0.35):
    """NanoDet on every decoded frame: is each true vehicle matched (IoU >= 0.5) by a
    car/motorcycle/bus/truck detection with score >= thr?"""
    from nanodet import VEHICLES, NanoDet
    nd = NanoDet()
    cap = cv2.VideoCapture(path)
    hit = tot = frames_all = frames_ok = 0
    scores, classes, extra = [], {}, 0
    i = 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        dets = nd.vehicles(f, thr)
        gts = truth[i]["vehicles"]
        all_ok = True
        used = set()
        for g in gts:
            gb = g["vehicle_box"]
            best, bj = None, None
            for j, d in enumerate(dets):
                iou = _iou(gb, d[2:])
                if iou >= 0.5 and (best is None or d[0] > best[0]):
                    best, bj = d, j
            tot += 1
            if best:
                hit += 1
                used.add(bj)
                scores.append(best[0])
                classes[VEHICLES[best[1]]] = classes.get(VEHICLES[best[1]], 0) + 1
            else:
                all_ok = False
        extra += len([j for j in range(len(dets)) if j not in used])
        if gts:
            frames_all += 1
            frames_ok += all_ok
        i += 1
    assert i == len(truth), (i, len(truth))
    return {"frames": i, "frames_with_vehicle": frames_all, "frames_all_detected": frames_ok,
            "vehicle_instances": tot, "detected": hit,
            "rate": round(hit / max(1, tot), 3),
            "score_min": round(min(scores), 3) if scores else None,
            "score_mean": round(float(np.mean(scores)), 3) if scores else None,
            "classes": classes, "unmatched_detections": extra, "threshold": thr}


def _iou(a, b):
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / u if u > 0 else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=plates.SAMPLES)
    ap.add_argument("--check", action="store_true", help="run NanoDet on every frame")
    a = ap.parse_args()
    bg = plates.load_background()
    van = plates.load_vehicles()["van"]
    s1, b1, q1, info = vehicle_sprite(van, "KA01 AB1234", "yellow")
    s2, b2, q2, _ = vehicle_sprite(van, "MH12 DE1433", "white", mirror=True)
    h, w = s1.shape[:2]
    y = H - h - 30
    clips = {
        # one van, 5 s, left to right, fully in the frame all the time
        "plate_car": ([(s1, b1, q1, "KA01 AB1234", 0, 49, -20, W - w + 20, y)], 50),
        # the van with KA01AB1234 (frames 0-39), nothing (40-49), the mirrored van with
        # MH12DE1433 (50-89), right to left
        "plate_car2": ([(s1, b1, q1, "KA01 AB1234", 0, 39, -20, W - w + 20, y),
                        (s2, b2, q2, "MH12 DE1433", 50, 89, W - w + 20, -20, y)], 90),
    }
    report = {}
    for name, (segs, n) in clips.items():
        frames, truth = clip(bg, segs, n)
        path = os.path.join(a.out, name + ".mp4")
        encode(frames, path)
        meta = {"clip": name + ".mp4", "fps": FPS, "size": [W, H], "frames": n,
                "codec": "H.264 (libx264, yuv420p, no B-frames, GOP 20)",
                "vehicle": "samples/plates/vehicles/van.png x%.1f (INTER_CUBIC)" % SCALE,
                "plate_font": FONT, "plate_text_height_px": info["text_height_px"],
                "plate_size_px": info["plate_size"],
                "plates": [{"text": plates.normalise(s[3]), "display": s[3],
                            "first_frame": s[4], "last_frame": s[5]} for s in segs],
                "per_frame": truth}
        if a.check:
            meta["nanodet_check"] = report[name] = check(path, truth)
        with open(os.path.join(a.out, name + ".json"), "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")
        print(name, os.path.getsize(path), "bytes", report.get(name, ""))


if __name__ == "__main__":
    main()
