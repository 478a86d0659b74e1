"""NanoDet-m 416 (COCO) in Python: a port of the reference decoder that came with the converted model
(`models/tools/test_nanodet.py` of the model set; see models/PROVENANCE.md).

Input BGR, plain resize to 416x416, (x - [103.53,116.28,123.675]) / [57.375,57.12,58.395]
(models/PROVENANCE.md). Used by the plate scripts to pick vehicle frames and to check
that the test clips' vehicles are detected.
"""
import os

import cv2
import numpy as np
import onnxruntime as ort

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "models", "nanodet-m-416", "model.onnx")
S = 416
MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)
# COCO 0-based ids (as in the model set's models/tools/coco.py)
CAR, MOTORCYCLE, BUS, TRUCK = 2, 3, 5, 7
VEHICLES = {CAR: "car", MOTORCYCLE: "motorcycle", BUS: "bus", TRUCK: "truck"}


class NanoDet:
    def __init__(self, model=MODEL, threads=2):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        self.outs = self.s.get_outputs()
        self.names = [o.name for o in self.outs]

    def detect(self, img_bgr, thr=0.35, iou=0.5):
        """[(score, class_id, x1, y1, x2, y2)] in image pixels, best first, NMS per class."""
        H, W = img_bgr.shape[:2]
        x = (cv2.resize(img_bgr, (S, S)).astype(np.float32) - MEAN) / STD
        x = x.transpose(2, 0, 1)[None].astype(np.float32)
        res = self.s.run(self.names, {"input_1:0": x})
        byn = {}
        for o, r in zip(self.outs, res):
            byn.setdefault(o.shape[1], {})["cls" if o.shape[2] == 80 else "reg"] = r[0]
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
                dets.append((float(sc[i]), int(ci[i]),
                             float(cx[i] - dist[i, 0]) * W / S, float(cy[i] - dist[i, 1]) * H / S,
                             float(cx[i] + dist[i, 2]) * W / S, float(cy[i] + dist[i, 3]) * H / S))
        dets.sort(key=lambda t: -t[0])
        keep = []
        for d in dets:
            ok = True
            for k in keep:
                if k[1] != d[1]:
                    continue
                xx1, yy1 = max(d[2], k[2]), max(d[3], k[3])
                xx2, yy2 = min(d[4], k[4]), min(d[5], k[5])
                inter = max(0.0, xx2 - xx1) * max(0.0, yy2 - yy1)
                u = (d[4] - d[2]) * (d[5] - d[3]) + (k[4] - k[2]) * (k[5] - k[3]) - inter
                if u > 0 and inter / u > iou:
                    ok = False
                    break
            if ok:
                keep.append(d)
        return keep

    def vehicles(self, img_bgr, thr=0.35):
        return [d for d in self.detect(img_bgr, thr) if d[1] in VEHICLES]
