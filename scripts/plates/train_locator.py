#!/usr/bin/env python3
"""Train a tiny licence-plate locator and export it as a YOLOv8-layout ONNX detector with its
manifest, so the plate stage's `plate_detector` option (a plate detector the user owns) can be
exercised end to end with a real trained model.

    python scripts/plates/train_locator.py SET_DIR OUT_DIR [--epochs 16] [--seed 3]

SET_DIR is a labelled set made by make_set.py (use a seed other than the evaluation set's).
Writes OUT_DIR/plate-locator.onnx and OUT_DIR/plate-locator.toml (family yolov8, one class
"plate", 320x320 letterbox, RGB / 255). Needs PyTorch and onnx (not in the project's venvs:
`python3 -m venv /tmp/venv-train && /tmp/venv-train/bin/pip install torch onnx opencv-python-headless`).

This is a small single-scale network (stride 8, about 60 k parameters) trained for minutes on
a CPU on synthetic plates: it stands in for the YOLO plate detector a deployment would train
on its own cameras, it is not one. Its output is YOLOv8's: [1, 4 + 1, anchors] with box
centre, width and height in input pixels and a sigmoid class score per anchor.
"""
import argparse
import json
import os

import cv2
import numpy as np
import torch
from torch import nn

SIZE = 320
STRIDE = 8
GRID = SIZE // STRIDE


def letterbox(img):
    h, w = img.shape[:2]
    k = min(SIZE / w, SIZE / h)
    nw, nh = max(1, round(w * k)), max(1, round(h * k))
    out = np.full((SIZE, SIZE, 3), 114, np.uint8)
    x0, y0 = (SIZE - nw) // 2, (SIZE - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return out, k, x0, y0


def samples(set_dir, rng, per_image):
    """(image 320x320 RGB, plate box x1 y1 x2 y2 in its pixels): vehicle crops (as the plate
    stage sends them, with jittered margins) and whole images."""
    labels = json.load(open(os.path.join(set_dir, "labels.json")))["images"]
    out = []
    for rec in labels:
        img = cv2.imread(os.path.join(set_dir, rec["file"]))[:, :, ::-1]
        q = np.array(rec["plate_quad"], np.float32)
        px1, py1 = q.min(0)
        px2, py2 = q.max(0)
        H, W = img.shape[:2]
        for _ in range(per_image):
            r = rng.random()
            if r < 0.3:
                # A crop around the plate, the plate 30-85 % of its width: close vehicles
                # and tight vehicle boxes.
                pw = px2 - px1
                cw = pw / rng.uniform(0.3, 0.85)
                ch = cw * rng.uniform(0.5, 1.2)
                x1 = int(max(0, px1 - rng.uniform(0, cw - pw)))
                y1 = int(max(0, (py1 + py2) / 2 - ch * rng.uniform(0.2, 0.8)))
                x2, y2 = int(min(W, x1 + cw)), int(min(H, y1 + ch))
            elif rec.get("vehicle_box") and r < 0.85:
                vx1, vy1, vx2, vy2 = rec["vehicle_box"]
                mw, mh = (vx2 - vx1) * rng.uniform(0, 0.15), (vy2 - vy1) * rng.uniform(0, 0.15)
                x1, y1 = max(0, int(vx1 - mw)), max(0, int(vy1 - mh))
                x2, y2 = min(W, int(vx2 + mw)), min(H, int(vy2 + mh))
            else:
                x1, y1, x2, y2 = 0, 0, W, H
            x1, y1 = min(x1, int(px1)), min(y1, int(py1))
            x2, y2 = max(x2, int(np.ceil(px2))), max(y2, int(np.ceil(py2)))
            crop = np.ascontiguousarray(img[y1:y2, x1:x2])
            lb, k, ox, oy = letterbox(crop)
            box = np.array([(px1 - x1) * k + ox, (py1 - y1) * k + oy,
                            (px2 - x1) * k + ox, (py2 - y1) * k + oy], np.float32)
            out.append((lb, box))
    return out


def conv(cin, cout, s=1, d=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, s, d, dilation=d, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Locator(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(conv(3, 16, 2), conv(16, 24, 2), conv(24, 48, 2),
                                  conv(48, 48), conv(48, 64, d=2), conv(64, 64, d=4))
        self.head = nn.Conv2d(64, 5, 1)
        gy, gx = torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing="ij")
        self.register_buffer("gx", (gx.reshape(-1).float() + 0.5) * STRIDE)
        self.register_buffer("gy", (gy.reshape(-1).float() + 0.5) * STRIDE)

    def raw(self, x):
        return self.head(self.body(x)).flatten(2)  # [B, 5, GRID*GRID]

    def forward(self, x):
        r = self.raw(x)
        cx = self.gx + torch.tanh(r[:, 0]) * 2 * STRIDE
        cy = self.gy + torch.tanh(r[:, 1]) * 2 * STRIDE
        w = torch.exp(r[:, 2].clamp(-4, 4)) * 8 * STRIDE
        h = torch.exp(r[:, 3].clamp(-4, 4)) * 2 * STRIDE
        s = torch.sigmoid(r[:, 4])
        return torch.stack([cx, cy, w, h, s], 1)


def targets(boxes):
    """Per anchor: objectness (cells near the plate's centre, in its middle half)."""
    n = len(boxes)
    obj = np.zeros((n, GRID * GRID), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        gx = (np.arange(GRID) + 0.5) * STRIDE
        # Only cells that can reach the centre (the head moves it by at most 2 strides).
        inx = np.abs(gx - cx) <= min(max(w / 4, STRIDE / 2), 1.5 * STRIDE)
        iny = np.abs(gx - cy) <= min(max(h / 4, STRIDE / 2), 1.5 * STRIDE)
        obj[i] = (iny[:, None] & inx[None, :]).reshape(-1)
    return torch.from_numpy(obj)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("set_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--per-image", type=int, default=3)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    data = samples(a.set_dir, rng, a.per_image)
    rng.shuffle(data)
    hold = max(20, len(data) // 10)
    train, val = data[hold:], data[:hold]
    X = torch.from_numpy(np.stack([d[0] for d in train])).permute(0, 3, 1, 2).float() / 255
    B = np.stack([d[1] for d in train])
    T = targets(B)
    Bt = torch.from_numpy(B)
    net = Locator()
    opt = torch.optim.AdamW(net.parameters(), 3e-3, weight_decay=1e-4)
    steps = a.epochs * (len(train) // 32)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    bce = nn.BCEWithLogitsLoss(reduction="none")
    step = 0
    for ep in range(a.epochs):
        net.train()
        perm = torch.randperm(len(train))
        total = 0.0
        for j in range(0, len(train) - 31, 32):
            idx = perm[j:j + 32]
            x = X[idx]
            if rng.random() < 0.5:  # brightness / contrast jitter
                x = (x * float(rng.uniform(0.7, 1.3)) + float(rng.uniform(-0.1, 0.1))).clamp(0, 1)
            r = net.raw(x)
            t = T[idx]
            l_obj = bce(r[:, 4], t)
            l_obj = (l_obj * (1 + 20 * t)).mean()
            out = net(x)
            b = Bt[idx]
            want = torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2,
                                b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)  # [N, 4]
            pos = t > 0
            got = out[:, :4].permute(0, 2, 1)  # [N, A, 4]
            err = (got - want[:, None, :]).abs() / want[:, None, 2:3].clamp(min=8)
            l_box = (err.sum(-1) * pos).sum() / pos.sum().clamp(min=1)
            loss = l_obj + l_box
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step < steps - 1:
                sched.step()
            step += 1
            total += float(loss.detach())
        print(f"epoch {ep + 1}/{a.epochs}: loss {total / max(1, len(train) // 32):.3f}",
              flush=True)
    net.eval()
    hits = 0
    with torch.no_grad():
        for img, box in val:
            o = net(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)[0]
            k = int(o[4].argmax())
            cx, cy, w, h, s = (float(v) for v in o[:, k])
            p = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            ix = max(0, min(p[2], box[2]) - max(p[0], box[0]))
            iy = max(0, min(p[3], box[3]) - max(p[1], box[1]))
            inter = ix * iy
            union = (p[2] - p[0]) * (p[3] - p[1]) + (box[2] - box[0]) * (box[3] - box[1]) - inter
            hits += inter / union >= 0.5
    print(f"held-out crops: best box IoU >= 0.5 on {hits}/{len(val)}")
    os.makedirs(a.out_dir, exist_ok=True)
    onnx_path = os.path.join(a.out_dir, "plate-locator.onnx")
    torch.onnx.export(net, torch.zeros(1, 3, SIZE, SIZE), onnx_path, input_names=["images"],
                      output_names=["output0"], opset_version=17, dynamo=False)
    with open(os.path.join(a.out_dir, "plate-locator.toml"), "w") as f:
        f.write(f"""# A tiny plate locator trained by scripts/plates/train_locator.py on synthetic plates
# (make_set.py, seed other than the evaluation set's); held-out IoU>=0.5: {hits}/{len(val)}.
name = "plate-locator"
task = "detect"
family = "yolov8"
description = "Tiny single-class plate locator (test model, not a production detector)"
classes = ["plate"]
score_threshold = 0.3
iou_threshold = 0.4
max_detections = 10

[input]
name = "images"
width = {SIZE}
height = {SIZE}
layout = "nchw"
color = "rgb"
resize = "letterbox"
scale = 0.00392156862745098
""")
    print(f"wrote {onnx_path}")


if __name__ == "__main__":
    main()
