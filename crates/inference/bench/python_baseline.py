"""The Python pipeline a user would write for the shipped detectors, used two ways.

* ``bench``: the baseline of ``sightline_inference::bench`` -- onnxruntime + OpenCV + the
  reference NanoDet decoder (``shared/models/tools/test_nanodet.py``, adapted to loop over
  frames with the one correct pre-processing variant), timed over the same ``vtest.avi``
  frames the Rust side uses. Prints one JSON object on stdout.
* ``golden``: run once to make the golden JSON committed under ``tests/fixtures/`` (the Rust
  tests compare against that JSON; no Python runs in CI).

Needs numpy, opencv-python(-headless) and onnxruntime (``scripts/setup`` makes
``.venv-bench/`` with them).
"""

import argparse
import json
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort

COCO = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
        "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
        "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
        "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
        "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
        "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
        "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
        "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
        "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
        "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
        "toothbrush"]


def session(path, threads):
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


class NanoDet:
    """Reference NanoDet-m 416 pipeline (BGR, mean/std, plain resize, NMS 0.5)."""

    S = 416
    MEAN = np.array([103.53, 116.28, 123.675], dtype=np.float32)
    STD = np.array([57.375, 57.12, 58.395], dtype=np.float32)

    def __init__(self, path, threads, thr=0.35, iou=0.5):
        self.s = session(path, threads)
        self.outs = [o.name for o in self.s.get_outputs()]
        self.thr, self.iou = thr, iou
        self.session_s = 0.0  # time inside session.run, for the report

    def __call__(self, img):
        H, W = img.shape[:2]
        x = (cv2.resize(img, (self.S, self.S)).astype(np.float32) - self.MEAN) / self.STD
        x = x.astype(np.float32).transpose(2, 0, 1)[None]
        t = time.perf_counter()
        res = self.s.run(self.outs, {"input_1:0": x})
        self.session_s += time.perf_counter() - t
        keep = self.decode(res)
        sx, sy = W / self.S, H / self.S
        return [(int(d[1]), float(d[0]), [float(d[2]) * sx, float(d[3]) * sy,
                                          float(d[4]) * sx, float(d[5]) * sy]) for d in keep]

    def decode(self, res):
        S, thr = self.S, self.thr
        byn = {o.shape[1]: {} for o in self.s.get_outputs()}
        for o, r in zip(self.s.get_outputs(), res):
            byn[o.shape[1]]["cls" if o.shape[2] == 80 else "reg"] = r[0]
        dets = []
        for n, d in byn.items():
            g = int(round(n ** 0.5))
            stride = S // g
            cls, reg = d["cls"], d["reg"].reshape(n, 4, 11)
            e = np.exp(reg - reg.max(-1, keepdims=True))
            p = e / e.sum(-1, keepdims=True)
            dist = (p * np.arange(11)).sum(-1) * stride
            ys, xs = np.divmod(np.arange(n), g)
            cx, cy = (xs + 0.5) * stride, (ys + 0.5) * stride
            sc = cls.max(1)
            ci = cls.argmax(1)
            for i in np.where(sc > thr)[0]:
                dets.append((sc[i], ci[i], cx[i] - dist[i, 0], cy[i] - dist[i, 1],
                             cx[i] + dist[i, 2], cy[i] + dist[i, 3]))
        dets.sort(key=lambda t: -t[0])
        keep = []
        for d in dets:
            ok = True
            for k in keep:
                if k[1] != d[1]:
                    continue
                xx1, yy1 = max(d[2], k[2]), max(d[3], k[3])
                xx2, yy2 = min(d[4], k[4]), min(d[5], k[5])
                inter = max(0, xx2 - xx1) * max(0, yy2 - yy1)
                u = (d[4] - d[2]) * (d[5] - d[3]) + (k[4] - k[2]) * (k[5] - k[3]) - inter
                if inter / u > self.iou:
                    ok = False
                    break
            if ok:
                keep.append(d)
        return keep


class CenterNet:
    """Reference CenterNet MobileNetV3 512 pipeline (RGB 0..255, NHWC, decoded [1,100,6])."""

    S = 512

    def __init__(self, path, threads, thr=0.3):
        self.s = session(path, threads)
        self.thr = thr
        self.session_s = 0.0

    def __call__(self, img):
        H, W = img.shape[:2]
        x = cv2.resize(img, (self.S, self.S))[:, :, ::-1].astype(np.float32)[None]
        t = time.perf_counter()
        det = self.s.run(["tower_0/detections:0"], {"tower_0/images:0": x})[0][0]
        self.session_s += time.perf_counter() - t
        det = det[det[:, 4] > self.thr]
        sx, sy = W / self.S, H / self.S
        return [(int(d[5]), float(d[4]), [float(d[0]) * sx, float(d[1]) * sy,
                                          float(d[2]) * sx, float(d[3]) * sy]) for d in det]


FAMILIES = {"nanodet": NanoDet, "centernet": CenterNet}


def golden(args):
    model = FAMILIES[args.family](args.model, args.threads)
    img = cv2.imread(args.image)
    dets = model(img)
    out = {
        "generator": "crates/inference/bench/python_baseline.py golden",
        "onnxruntime": ort.__version__,
        "opencv": cv2.__version__,
        "family": args.family,
        "image": args.image,
        "width": img.shape[1],
        "height": img.shape[0],
        "detections": [{"class_id": c, "class": COCO[c], "score": round(s, 5),
                        "bbox": [round(v, 3) for v in b]} for c, s, b in dets],
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def bench(args):
    cap = cv2.VideoCapture(args.video)
    frames = []
    while len(frames) < args.frames:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    if not frames:
        sys.exit("no frames decoded from " + args.video)
    model = FAMILIES[args.family](args.model, args.threads)
    for img in frames[: args.warmup]:
        model(img)
    n_dets = 0
    model.session_s = 0.0
    t0 = time.perf_counter()
    for img in frames:
        n_dets += len(model(img))
    dt = time.perf_counter() - t0
    print(json.dumps({
        "frames": len(frames),
        "seconds": dt,
        "ms_per_frame": dt * 1000.0 / len(frames),
        "session_ms_per_frame": model.session_s * 1000.0 / len(frames),
        "fps": len(frames) / dt,
        "detections": n_dets,
        "onnxruntime": ort.__version__,
        "opencv": cv2.__version__,
    }))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("golden")
    g.add_argument("--family", choices=FAMILIES, required=True)
    g.add_argument("--model", required=True)
    g.add_argument("--image", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--threads", type=int, default=0)
    b = sub.add_parser("bench")
    b.add_argument("--family", choices=FAMILIES, default="nanodet")
    b.add_argument("--model", required=True)
    b.add_argument("--video", required=True)
    b.add_argument("--frames", type=int, default=100)
    b.add_argument("--warmup", type=int, default=3)
    b.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    golden(args) if args.cmd == "golden" else bench(args)


if __name__ == "__main__":
    main()
