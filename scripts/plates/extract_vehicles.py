#!/usr/bin/env python3
"""Extract the real vehicle pictures of the plate test data from samples/vtest.avi.

Writes samples/plates/vehicles/{van,car}.png (NanoDet boxes plus a margin, at the original
resolution), samples/plates/vehicles/vehicles.json (box of the vehicle inside each crop, where
the plate goes) and samples/plates/background.jpg (the frame with the parked vehicles painted
out by cv2.inpaint, the backdrop of the clips and of the close-ups). The outputs are
committed; run this only to regenerate them:

    .venv-bench/bin/python scripts/plates/extract_vehicles.py
"""
import json
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nanodet import ROOT, VEHICLES, NanoDet  # noqa: E402

FRAME = 100  # the van and the car are parked for the whole clip; frame 100 is a clean one
MARGIN = 10
OUT = os.path.join(ROOT, "samples", "plates")


def main():
    cap = cv2.VideoCapture(os.path.join(ROOT, "samples", "vtest.avi"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, FRAME)
    ok, frame = cap.read()
    assert ok, "cannot read samples/vtest.avi"
    H, W = frame.shape[:2]
    dets = NanoDet().vehicles(frame, thr=0.35)
    # the van (NanoDet: truck) and the car beside it (cut by the right edge of the frame)
    picks = {}
    for d in dets:
        name = {7: "van", 2: "car"}.get(d[1])
        if name and name not in picks:
            picks[name] = d
    assert set(picks) == {"van", "car"}, f"expected a van and a car on frame {FRAME}: {dets}"
    os.makedirs(os.path.join(OUT, "vehicles"), exist_ok=True)
    meta = {"source": f"samples/vtest.avi frame {FRAME}", "vehicles": {}}
    mask = np.zeros((H, W), np.uint8)
    for name, d in sorted(picks.items()):
        x1, y1, x2, y2 = [int(round(v)) for v in d[2:]]
        if name == "car":
            x1 = max(x1, int(round(picks["van"][4])))  # keep the van out of the car's crop
        cx1, cy1 = max(0, x1 - MARGIN), max(0, y1 - MARGIN)
        if name == "car":
            cx1 = max(cx1, int(round(picks["van"][4])) + 2)
        cx2, cy2 = min(W, x2 + MARGIN), min(H, y2 + MARGIN)
        crop = frame[cy1:cy2, cx1:cx2]
        cv2.imwrite(os.path.join(OUT, "vehicles", f"{name}.png"), crop)
        vx1, vy1, vx2, vy2 = x1 - cx1, y1 - cy1, min(x2, W) - cx1, min(y2, H) - cy1
        meta["vehicles"][name] = {
            "file": f"{name}.png",
            "nanodet": {"class": VEHICLES[d[1]], "score": round(d[0], 3)},
            "crop_in_frame": [cx1, cy1, cx2, cy2],
            "vehicle_box": [vx1, vy1, vx2, vy2],
            # lower-middle of the vehicle's rear: where the pasted plate is centred
            "plate_anchor": [round((vx1 + vx2) / 2, 1), round(vy1 + 0.72 * (vy2 - vy1), 1)],
        }
        mask[max(0, y1 - 8):min(H, y2 + 8), max(0, x1 - 8):min(W, x2 + 8)] = 255
    with open(os.path.join(OUT, "vehicles", "vehicles.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    bg = cv2.inpaint(frame, mask, 7, cv2.INPAINT_TELEA)
    cv2.imwrite(os.path.join(OUT, "background.jpg"), bg, [cv2.IMWRITE_JPEG_QUALITY, 90])
    left = NanoDet().vehicles(bg, thr=0.2)
    print(json.dumps(meta, indent=2))
    print("vehicles left on the background (thr 0.2):", left)


if __name__ == "__main__":
    main()
