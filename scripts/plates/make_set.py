#!/usr/bin/env python3
"""Make a labelled licence-plate image set: plates rendered with real TTF fonts, pasted on the
real vehicle pictures of samples/plates/vehicles/ (upscaled crops of samples/vtest.avi) or
shown close up on a plain or real textured background (patches of samples/plates/background.jpg).

    .venv-bench/bin/python scripts/plates/make_set.py OUT_DIR [--count 60] [--seed 1]

Writes OUT_DIR/plate_NNN.{png,jpg}, OUT_DIR/labels.json and OUT_DIR/labels.csv. The same seed
gives the same files. Label `text` is normalised (upper case, A-Z 0-9 only); `display` is the
string as drawn (with its space). Coordinates are pixels of the written image; `plate_quad` is
TL, TR, BR, BL of the plate's outer border.
"""
import argparse
import csv
import json
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plates  # noqa: E402

FONT_NAMES = sorted(plates.FONTS)


def r2(v):
    return round(float(v), 2)


def make_one(rng, idx, vehicles, bg):
    display = plates.random_plate_text(rng)
    font = FONT_NAMES[int(rng.integers(len(FONT_NAMES)))]
    colour = "yellow" if rng.random() < 0.4 else "white"
    text_px = int(rng.integers(12, 57))  # cap height; a Q tail or J adds a little
    angle = r2(rng.uniform(-8, 8))
    tilt = r2(rng.uniform(-0.1, 0.1)) if rng.random() < 0.5 else 0.0
    yaw = r2(rng.uniform(-0.1, 0.1)) if rng.random() < 0.5 else 0.0
    has_vehicle = rng.random() < 0.7
    rec = {"file": None, "text": plates.normalise(display), "display": display,
           "has_vehicle": has_vehicle, "vehicle": None, "vehicle_box": None, "scale": None,
           "background": None, "font": font, "plate_colour": colour,
           "angle_deg": angle, "tilt": tilt, "yaw": yaw}
    if has_vehicle:
        name = sorted(vehicles)[int(rng.integers(len(vehicles)))]
        v = vehicles[name]
        vx1, vy1, vx2, vy2 = v["vehicle_box"]
        vw = vx2 - vx1
        # the plate must look like it belongs: at most ~65 % of the vehicle's width
        probe, _ = plates.render_plate(display, font, text_px, colour)
        need = probe.size[0] / (0.65 * vw)
        scale = r2(min(6.0, max(2.0, need, rng.uniform(2.0, 4.0))))
        if probe.size[0] > 0.65 * vw * scale:  # still too wide at x6: smaller text
            text_px = max(12, int(text_px * 0.65 * vw * scale / probe.size[0]))
        img = cv2.resize(v["image"], None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        centre = np.array(v["plate_anchor"]) * scale + rng.uniform(-0.03, 0.03, 2) * vw * scale
        rec.update(vehicle=name, scale=scale,
                   vehicle_box=[r2(c * scale) for c in v["vehicle_box"]])
    else:
        Hb, Wb = bg.shape[:2]
        kind = "plain" if rng.random() < 0.35 else "texture"
        probe, _ = plates.render_plate(display, font, text_px, colour)
        w = int(min(640, max(probe.size[0] * rng.uniform(1.3, 2.0), 160)))
        h = int(min(480, max(probe.size[1] * rng.uniform(2.0, 4.0), 120)))
        if kind == "plain":
            base = rng.integers(40, 220, 3)
            img = np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
            rec["background"] = "plain"
        else:
            pw, ph = int(rng.integers(120, 400)), int(rng.integers(90, 300))
            x0, y0 = int(rng.integers(0, Wb - pw)), int(rng.integers(0, Hb - ph))
            img = cv2.resize(bg[y0:y0 + ph, x0:x0 + pw], (w, h), interpolation=cv2.INTER_CUBIC)
            rec["background"] = f"texture background.jpg[{y0}:{y0 + ph},{x0}:{x0 + pw}]"
        centre = np.array([w / 2, h / 2]) + rng.uniform(-0.08, 0.08, 2) * [w, h]
    plate, info = plates.render_plate(display, font, text_px, colour)
    quad = plates.plate_quad(*plate.size, centre, angle, tilt, yaw)
    H, W = img.shape[:2]
    # keep the whole plate in the picture
    shift = np.zeros(2)
    lo, hi = quad.min(0), quad.max(0)
    shift -= np.minimum(lo - 2, 0)
    shift -= np.maximum(hi - [W - 2, H - 2], 0)
    quad = quad + shift
    img = img.copy()
    plates.paste_plate(img, plate, quad)
    # photometric: brightness/contrast, blur, noise, JPEG
    gain = r2(rng.uniform(0.6, 1.3))
    bias = r2(rng.uniform(-25, 25))
    img = np.clip(img.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    sigma = 0.0 if rng.random() < 0.35 else r2(rng.uniform(0.5, 1.5))
    if sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    jpeg = int(rng.integers(35, 91)) if rng.random() < 0.4 else None
    rec.update(text_height_px=info["text_height_px"], font_size=info["font_size"],
               plate_size=info["plate_size"], plate_quad=[[r2(x), r2(y)] for x, y in quad],
               plate_box=[r2(quad[:, 0].min()), r2(quad[:, 1].min()),
                          r2(quad[:, 0].max()), r2(quad[:, 1].max())],
               width=W, height=H, blur_sigma=sigma, brightness_gain=gain, brightness_bias=bias,
               jpeg_quality=jpeg)
    rec["file"] = f"plate_{idx:03d}." + ("jpg" if jpeg else "png")
    return img, rec


def main():
    ap = argparse.ArgumentParser(description="labelled licence-plate image set")
    ap.add_argument("out_dir")
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    vehicles = plates.load_vehicles()
    for v in vehicles.values():
        v.pop("nanodet", None)
    bg = plates.load_background()
    os.makedirs(a.out_dir, exist_ok=True)
    recs = []
    for i in range(a.count):
        img, rec = make_one(rng, i, vehicles, bg)
        path = os.path.join(a.out_dir, rec["file"])
        if rec["jpeg_quality"]:
            cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, rec["jpeg_quality"]])
        else:
            cv2.imwrite(path, img, [cv2.IMWRITE_PNG_COMPRESSION, 6])
        recs.append(rec)
    with open(os.path.join(a.out_dir, "labels.json"), "w") as f:
        json.dump({"seed": a.seed, "count": a.count, "images": recs}, f, indent=1)
        f.write("\n")
    cols = ["file", "text", "display", "has_vehicle", "vehicle", "vehicle_box", "scale",
            "background", "plate_quad", "plate_box", "text_height_px", "plate_size", "width",
            "height", "angle_deg", "tilt", "yaw", "blur_sigma", "brightness_gain",
            "brightness_bias", "jpeg_quality", "font", "font_size", "plate_colour"]
    with open(os.path.join(a.out_dir, "labels.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in recs:
            w.writerow([json.dumps(r[c]) if isinstance(r[c], list) else
                        ("" if r[c] is None else r[c]) for c in cols])
    nv = sum(r["has_vehicle"] for r in recs)
    hs = [r["text_height_px"] for r in recs]
    print(f"{a.count} images in {a.out_dir}: {nv} on a vehicle, {a.count - nv} close-up; "
          f"text height {min(hs)}-{max(hs)} px")


if __name__ == "__main__":
    main()
