#!/usr/bin/env python3
"""Static INT8 (QDQ) copy of a shipped detector, gated on agreement with the fp32 model.

    .venv-bench/bin/python scripts/quantize/quantize.py \\
        --model-dir models/nanodet-m-416 --calibration samples/vtest.avi \\
        --out models/nanodet-m-416-int8 --name nanodet-m-416-int8

Steps: read the fp32 model's manifest.toml; pick calibration frames and *held-back* evaluation
frames (never the same frames) from a clip or a folder of images; pre-process them exactly as
the manifest says; fold any Pad(-inf) -> MaxPool pair into the MaxPool (see below); run
onnxruntime's `quantize_static` (QDQ, uint8 activations, int8 per-channel weights, MinMax
calibration with moving-average ranges); then run both models on the evaluation frames,
decode + NMS with the manifest's thresholds and compare: int8 detections are matched greedily
(best score first) to fp32 detections of the same class with IoU >= 0.5; fp32 is the reference,
so precision = matched / int8 detections, recall = matched / fp32 detections. Both models are
also timed (same session options, 1 intra-op thread by default, median of N runs after
warm-up, the two models interleaved so background load hits both alike).

If F1 < --min-f1 the tool explains, exits with status 2 and leaves no output folder (it writes
into a temporary folder beside --out and renames it at the end). Otherwise --out gets
model.onnx, manifest.toml (the fp32 manifest with the new name/description and a comment
header saying how it was made: comments only, the Rust parser refuses unknown keys) and
quantization.json (the full report).

`--report-only` re-evaluates an existing --out folder against --model-dir (on the evaluation
frames recorded in its quantization.json) and applies the same gate; it writes nothing.

Exit status: 0 ok, 2 accuracy gate failed, 1 usage / input error.

Evaluation compares detections in model-input pixels: both models see the same tensor, and IoU
is unchanged by the per-axis scaling (and letterbox offset) that maps them back to the frame.
The Pad(-inf) -> MaxPool trap of TF-converted graphs (see scripts/quantize/README.md): the -inf
padding makes calibration produce infinite ranges and NaN scales, and the quantised model then
detects nothing. By default the Pad is folded into the MaxPool's own `pads` (identical fp32
outputs, checked); `--pad-maxpool exclude` keeps both nodes fp32 instead.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import tomllib

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOOL = "scripts/quantize/quantize.py"
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MATCH_IOU = 0.5  # a matched int8 box overlaps its fp32 box at least this much
NAME_RE = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9._\-]{0,63}$")  # as the Rust registry checks

# The COCO class names of the Python baseline (one list for the repository's Python tools).
sys.path.insert(0, os.path.join(ROOT, "crates", "inference", "bench"))
from python_baseline import COCO  # noqa: E402


class UsageError(Exception):
    pass


def rel(path):
    """Path relative to the repository root when inside it (for reports)."""
    p = os.path.abspath(path)
    return os.path.relpath(p, ROOT) if p.startswith(ROOT + os.sep) else p


# --- manifest -------------------------------------------------------------------------------

def load_manifest(model_dir):
    path = os.path.join(model_dir, "manifest.toml")
    if not os.path.isfile(path) or not os.path.isfile(os.path.join(model_dir, "model.onnx")):
        raise UsageError(f"{model_dir}: needs model.onnx and manifest.toml")
    with open(path, "rb") as f:
        raw = f.read()
    m = tomllib.loads(raw.decode())
    if m.get("task", "detect") != "detect":
        raise UsageError(f"{path}: task {m.get('task')!r}: only detectors can be evaluated")
    inp = m.get("input", {})
    for k in ("width", "height"):
        if k not in inp:
            raise UsageError(f"{path}: [input] {k} missing")
    return m, raw.decode()


def class_names(m):
    c = m.get("classes")
    if c == "coco":
        return COCO
    if isinstance(c, list):
        return [str(x) for x in c]
    raise UsageError(f"classes {c!r}: expected \"coco\" or a list")


def int8_manifest_text(fp32_text, name, description, header_lines):
    """The fp32 manifest with new top-level name/description and a new leading comment block.

    Edits text (keeps the [input] comments); only keys the Rust parser already accepts."""
    lines = fp32_text.splitlines()
    i = 0
    while i < len(lines) and (lines[i].startswith("#") or not lines[i].strip()):
        i += 1
    body = lines[i:]
    first_table = next((j for j, ln in enumerate(body) if ln.lstrip().startswith("[")), len(body))
    top, rest = body[:first_table], body[first_table:]
    q = lambda s: json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    out, seen_desc = [], False
    for ln in top:
        if re.match(r"^\s*name\s*=", ln):
            out.append(f"name = {q(name)}")
            if not any(re.match(r"^\s*description\s*=", x) for x in top):
                out.append(f"description = {q(description)}")
                seen_desc = True
        elif re.match(r"^\s*description\s*=", ln):
            out.append(f"description = {q(description)}")
            seen_desc = True
        else:
            out.append(ln)
    if not seen_desc:
        raise UsageError("fp32 manifest has no top-level name")
    header = ["# " + h if h else "#" for h in header_lines]
    return "\n".join(header + out + rest) + "\n"


# --- frames ---------------------------------------------------------------------------------

class Frames:
    """Frames of a clip (by index) or images of a folder (sorted by name)."""

    def __init__(self, source):
        self.source = source
        if os.path.isdir(source):
            self.files = sorted(f for f in os.listdir(source) if f.lower().endswith(IMAGE_EXT))
            self.count = len(self.files)
            self.kind = "images"
        elif os.path.isfile(source):
            self.files = None
            cap = cv2.VideoCapture(source)
            if not cap.isOpened():
                raise UsageError(f"{source}: cannot open as a video")
            n = 0
            while cap.grab():
                n += 1
            cap.release()
            self.count = n
            self.kind = "video"
        else:
            raise UsageError(f"{source}: no such file or folder")
        if self.count == 0:
            raise UsageError(f"{source}: no frames")

    def read(self, indices):
        """{index: BGR uint8 image} for the wanted indices."""
        want = set(int(i) for i in indices)
        out = {}
        if self.files is not None:
            for i in sorted(want):
                img = cv2.imread(os.path.join(self.source, self.files[i]), cv2.IMREAD_COLOR)
                if img is None:
                    raise UsageError(f"{self.files[i]}: cannot read")
                out[i] = img
            return out
        cap = cv2.VideoCapture(self.source)
        i, last = 0, max(want)
        while i <= last:
            if i in want:
                ok, img = cap.read()
                if not ok:
                    break
                out[i] = img
            elif not cap.grab():
                break
            i += 1
        cap.release()
        missing = want - set(out)
        if missing:
            raise UsageError(f"{self.source}: could not decode frames {sorted(missing)[:5]}")
        return out


def split_frames(total, n_calib, n_eval):
    """Disjoint calibration / evaluation frame indices, both spread over the whole source.

    2*max(n_calib, n_eval) evenly spaced positions; calibration takes (evenly spread) ones at
    even positions, evaluation ones at odd positions, so no frame is used for both."""
    k = max(n_calib, n_eval)
    if n_calib < 1 or n_eval < 1:
        raise UsageError("--calib-frames and --eval-frames must be >= 1")
    if 2 * k > total:
        raise UsageError(f"source has {total} frames; needs at least {2 * k} "
                         f"(2 x max(--calib-frames, --eval-frames))")
    pos = np.unique(np.round(np.linspace(0, total - 1, 2 * k)).astype(int))
    even, odd = pos[0::2], pos[1::2]
    pick = lambda arr, n: [int(arr[j]) for j in np.unique(np.round(np.linspace(0, len(arr) - 1, n)).astype(int))]
    calib, ev = pick(even, n_calib), pick(odd, n_eval)
    assert not set(calib) & set(ev)
    return calib, ev


# --- pre-processing (as crates/inference/src/preprocess.rs) ---------------------------------

def fit(img_bgr, inp):
    """Resize / letterbox into the input size (INTER_LINEAR), in the model's colour order."""
    W, H = int(inp["width"]), int(inp["height"])
    img = img_bgr if inp.get("color", "rgb") == "bgr" else img_bgr[:, :, ::-1]
    sh, sw = img.shape[:2]
    if inp.get("resize", "stretch") == "stretch":
        return np.ascontiguousarray(cv2.resize(img, (W, H), interpolation=cv2.INTER_LINEAR))
    r = min(W / sw, H / sh)
    cw, ch = min(max(round(sw * r), 1), W), min(max(round(sh * r), 1), H)
    px, py = (W - cw) // 2, (H - ch) // 2
    out = np.full((H, W, 3), int(inp.get("pad_value", 114)), np.uint8)
    out[py:py + ch, px:px + cw] = cv2.resize(np.ascontiguousarray(img), (cw, ch), interpolation=cv2.INTER_LINEAR)
    return out


def normalise(fitted, inp):
    scale = np.float32(inp.get("scale", 1.0))
    mean = np.array(inp.get("mean", [0, 0, 0]), np.float32)
    std = np.array(inp.get("std", [1, 1, 1]), np.float32)
    x = (fitted.astype(np.float32) * scale - mean) / std
    if inp.get("layout", "nchw") == "nchw":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None], dtype=np.float32)


# --- inference + decoding -------------------------------------------------------------------

def session_options(threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


class Detector:
    def __init__(self, path, manifest, threads):
        self.m = manifest
        self.s = ort.InferenceSession(path, session_options(threads), providers=["CPUExecutionProvider"])
        inp = manifest["input"]
        self.input_name = inp.get("name") or self.s.get_inputs()[0].name
        outs = {o.name: o for o in self.s.get_outputs()}
        names = manifest.get("outputs") or list(outs)
        for n in names:
            if n not in outs:
                raise UsageError(f"{path}: no output {n!r}")
        self.outs = [outs[n] for n in names]
        self.names = names
        self.family = manifest["family"]
        self.ncls = len(class_names(manifest))
        self.W, self.H = int(inp["width"]), int(inp["height"])
        if self.family not in ("nanodet", "centernet", "yolov10", "end2end"):
            raise UsageError(f"family {self.family!r}: evaluation decodes nanodet, centernet "
                             "and yolov10 (decoded [1,K,6]) outputs only")

    def run(self, x):
        return self.s.run(self.names, {self.input_name: x})

    def detect(self, res):
        """[(score, class, x1, y1, x2, y2)] in input pixels, best first, per-class NMS."""
        thr = float(self.m["score_threshold"])
        if self.family == "nanodet":
            dets = self._nanodet(res, thr)
            dets = nms(dets, float(self.m["iou_threshold"]))
        else:  # already decoded [1,K,6] = x1,y1,x2,y2,score,class; the engine applies no NMS
            a = np.asarray(res[0])[0]
            dets = [(float(r[4]), int(r[5]), *map(float, r[:4])) for r in a if r[4] >= thr]
            dets.sort(key=lambda t: -t[0])
        return dets[: int(self.m.get("max_detections", 300))]

    def _nanodet(self, res, thr):
        byn = {}
        for o, r in zip(self.outs, res):
            r = np.asarray(r)[0]
            byn.setdefault(r.shape[0], []).append(r)
        dets = []
        for n, pair in byn.items():
            if len(pair) != 2:
                raise UsageError(f"nanodet: {len(pair)} outputs with {n} cells (expected 2)")
            a, b = pair
            # class scores have C columns; the other has 4*(R+1) (if both fit, C is first)
            cls, reg = (a, b) if a.shape[1] == self.ncls else (b, a)
            if cls.shape[1] != self.ncls or reg.shape[1] % 4:
                raise UsageError(f"nanodet: unexpected head shapes {a.shape}, {b.shape}")
            bins = reg.shape[1] // 4
            g = int(round(n ** 0.5))
            if self.W != self.H or g * g != n:
                raise UsageError("nanodet: only square inputs are evaluated")
            stride = self.W / g
            gw = g
            reg = reg.reshape(n, 4, bins)
            e = np.exp(reg - reg.max(-1, keepdims=True))
            p = e / e.sum(-1, keepdims=True)
            dist = (p * np.arange(bins)).sum(-1) * stride
            ys, xs = np.divmod(np.arange(n), gw)
            cx, cy = (xs + 0.5) * stride, (ys + 0.5) * stride
            sc, ci = cls.max(1), cls.argmax(1)
            for i in np.where(sc > thr)[0]:
                dets.append((float(sc[i]), int(ci[i]), float(cx[i] - dist[i, 0]), float(cy[i] - dist[i, 1]),
                             float(cx[i] + dist[i, 2]), float(cy[i] + dist[i, 3])))
        return dets


def iou(a, b):
    xx1, yy1, xx2, yy2 = max(a[2], b[2]), max(a[3], b[3]), min(a[4], b[4]), min(a[5], b[5])
    inter = max(0.0, xx2 - xx1) * max(0.0, yy2 - yy1)
    u = (a[4] - a[2]) * (a[5] - a[3]) + (b[4] - b[2]) * (b[5] - b[3]) - inter
    return inter / u if u > 0 else 0.0


def nms(dets, thr):
    dets = sorted(dets, key=lambda t: -t[0])
    keep = []
    for d in dets:
        if all(k[1] != d[1] or iou(d, k) <= thr for k in keep):
            keep.append(d)
    return keep


def match(ref, test):
    """Greedy matching, test detections best score first, each to the unmatched reference box
    of the same class with the highest IoU >= MATCH_IOU. Returns [(test_i, ref_i, iou)]."""
    used, pairs = set(), []
    for ti, t in sorted(enumerate(test), key=lambda p: -p[1][0]):
        best, bi = MATCH_IOU, None
        for ri, r in enumerate(ref):
            if ri in used or r[1] != t[1]:
                continue
            v = iou(t, r)
            if v >= best:
                best, bi = v, ri
        if bi is not None:
            used.add(bi)
            pairs.append((ti, bi, best))
    return pairs


def prf(tp, n_test, n_ref):
    p = tp / n_test if n_test else (1.0 if n_ref == 0 else 0.0)
    r = tp / n_ref if n_ref else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def evaluate(fp32_path, int8_path, manifest, frames, threads, warmup, runs):
    """Accuracy of int8 against fp32 on {index: BGR image}, and timings."""
    inp = manifest["input"]
    names = class_names(manifest)
    ref_m, q_m = Detector(fp32_path, manifest, threads), Detector(int8_path, manifest, threads)
    tensors = {i: normalise(fit(img, inp), inp) for i, img in sorted(frames.items())}
    per_class, ious, per_frame = {}, [], []
    tot_tp = tot_ref = tot_q = 0
    for i, x in tensors.items():
        ref, q = ref_m.detect(ref_m.run(x)), q_m.detect(q_m.run(x))
        pairs = match(ref, q)
        tot_tp, tot_ref, tot_q = tot_tp + len(pairs), tot_ref + len(ref), tot_q + len(q)
        ious += [p[2] for p in pairs]
        per_frame.append({"frame": i, "fp32": len(ref), "int8": len(q), "matched": len(pairs)})
        for c in {d[1] for d in ref} | {d[1] for d in q}:
            pc = per_class.setdefault(c, {"fp32": 0, "int8": 0, "matched": 0})
            pc["fp32"] += sum(1 for d in ref if d[1] == c)
            pc["int8"] += sum(1 for d in q if d[1] == c)
            pc["matched"] += sum(1 for ti, _, _ in pairs if q[ti][1] == c)
    classes = {}
    for c in sorted(per_class, key=lambda c: -per_class[c]["fp32"]):
        pc = per_class[c]
        p, r, f = prf(pc["matched"], pc["int8"], pc["fp32"])
        classes[names[c] if c < len(names) else str(c)] = {
            **pc, "precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}
    p, r, f = prf(tot_tp, tot_q, tot_ref)

    # Timing: same options for both, the two models interleaved run by run.
    xs = list(tensors.values())
    for k in range(warmup):
        ref_m.run(xs[k % len(xs)])
        q_m.run(xs[k % len(xs)])
    t_ref, t_q = [], []
    for k in range(runs):
        x = xs[k % len(xs)]
        t0 = time.perf_counter()
        ref_m.run(x)
        t1 = time.perf_counter()
        q_m.run(x)
        t2 = time.perf_counter()
        t_ref.append((t1 - t0) * 1e3)
        t_q.append((t2 - t1) * 1e3)
    med_ref, med_q = statistics.median(t_ref), statistics.median(t_q)
    return {
        "matching": f"int8 boxes best-first, each to the unmatched fp32 box of the same class "
                    f"with the highest IoU >= {MATCH_IOU} (model-input pixels); fp32 is the reference",
        "fp32_detections": tot_ref,
        "int8_detections": tot_q,
        "matched": tot_tp,
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(f, 4),
        "mean_iou_matched": round(float(np.mean(ious)), 4) if ious else None,
        "per_class": classes,
        "per_frame": per_frame,
        "timing": {
            "threads": threads,
            "warmup": warmup,
            "runs": runs,
            "fp32_median_ms": round(med_ref, 2),
            "int8_median_ms": round(med_q, 2),
            "speedup": round(med_ref / med_q, 2) if med_q else None,
            "note": "median per frame, both models interleaved run by run, same session options "
                    "(intra-op threads as given, 1 inter-op thread, no spinning); measured while "
                    "the machine may have been busy",
        },
    }


# --- graph surgery helpers ------------------------------------------------------------------

def pad_maxpool_nodes(model):
    """Pad nodes that feed a MaxPool, and those MaxPools. A TF-converted max pool with SAME
    padding pads with -inf first; calibrating that tensor gives an infinite range, NaN scales,
    and a quantised graph that detects nothing."""
    producer = {o: n for n in model.graph.node for o in n.output}
    out = []
    for n in model.graph.node:
        if n.op_type == "MaxPool" and n.input and n.input[0] in producer:
            p = producer[n.input[0]]
            if p.op_type == "Pad":
                out += [p.name, n.name]
    return out


def fold_pad_maxpool(model):
    """Rewrites each Pad(-inf) -> MaxPool pair as one MaxPool with `pads` (ONNX MaxPool never
    picks a padded position, exactly what padding with -inf does). Returns [(pad, maxpool)]
    folded; pairs that do not fit the pattern are left alone (and reported by the caller)."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in g.output}
    attr = lambda n, k, d=None: next((onnx.helper.get_attribute_value(a) for a in n.attribute if a.name == k), d)
    folded = []
    for mp in list(g.node):
        if mp.op_type != "MaxPool" or not mp.input or mp.input[0] not in producer:
            continue
        pad = producer[mp.input[0]]
        if pad.op_type != "Pad" or len(consumers.get(pad.output[0], [])) != 1 or pad.output[0] in graph_outputs:
            continue
        mode = attr(pad, "mode", b"constant")
        if (mode.decode() if isinstance(mode, bytes) else mode) != "constant":
            continue
        if len(pad.input) >= 2:  # opset >= 11: pads (and value) are inputs
            if pad.input[1] not in inits or (len(pad.input) > 2 and pad.input[2] and pad.input[2] not in inits):
                continue
            if len(pad.input) > 3 and pad.input[3]:  # axes
                continue
            pads = onnx.numpy_helper.to_array(inits[pad.input[1]]).tolist()
            value = float(onnx.numpy_helper.to_array(inits[pad.input[2]])) if len(pad.input) > 2 and pad.input[2] else 0.0
        else:
            pads, value = list(attr(pad, "pads", [])), float(attr(pad, "value", 0.0))
        if len(pads) != 8 or value != float("-inf") or any(pads[k] for k in (0, 1, 4, 5)):
            continue
        auto_pad = attr(mp, "auto_pad", b"NOTSET")
        if (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad) != "NOTSET":
            continue
        old = list(attr(mp, "pads", [0, 0, 0, 0]))
        new = [pads[2] + old[0], pads[3] + old[1], pads[6] + old[2], pads[7] + old[3]]
        for a in list(mp.attribute):
            if a.name == "pads":
                mp.attribute.remove(a)
        mp.attribute.append(onnx.helper.make_attribute("pads", new))
        mp.input[0] = pad.input[0]
        g.node.remove(pad)
        folded.append((pad.name, mp.name))
    return folded


def check_nodes(model, names):
    known = {n.name for n in model.graph.node}
    bad = [n for n in names if n not in known]
    if bad:
        raise UsageError(f"--exclude-nodes: no node named {bad}")


def nan_scales(model):
    """Names of quantisation scale initialisers that are not finite (the symptom of the trap)."""
    bad = []
    for t in model.graph.initializer:
        if t.name.endswith("_scale") and t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            a = onnx.numpy_helper.to_array(t)
            if not np.all(np.isfinite(a)):
                bad.append(t.name)
    return bad


def max_output_diff(path_a, path_b, manifest, fitted):
    inp = manifest["input"]
    sa = ort.InferenceSession(path_a, session_options(1), providers=["CPUExecutionProvider"])
    sb = ort.InferenceSession(path_b, session_options(1), providers=["CPUExecutionProvider"])
    name = inp.get("name") or sa.get_inputs()[0].name
    outs = [o.name for o in sa.get_outputs()]
    d = 0.0
    for f in fitted:
        x = normalise(f, inp)
        for u, v in zip(sa.run(outs, {name: x}), sb.run(outs, {name: x})):
            d = max(d, float(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64)).max()))
    return d


class Reader(CalibrationDataReader):
    def __init__(self, input_name, fitted, inp):
        self.input_name, self.fitted, self.inp, self.i = input_name, fitted, inp, 0

    def get_next(self):
        if self.i >= len(self.fitted):
            return None
        x = normalise(self.fitted[self.i], self.inp)
        self.i += 1
        return {self.input_name: x}

    def rewind(self):
        self.i = 0


# --- commands -------------------------------------------------------------------------------

def summary(ev, min_f1):
    t = ev["timing"]
    lines = [
        f"  fp32 detections {ev['fp32_detections']}, int8 {ev['int8_detections']}, matched {ev['matched']}"
        f" (IoU >= {MATCH_IOU}, same class); mean IoU of matches {ev['mean_iou_matched']}",
        f"  precision {ev['precision']:.4f}  recall {ev['recall']:.4f}  F1 {ev['f1']:.4f}  (gate: F1 >= {min_f1})",
    ]
    for c, pc in list(ev["per_class"].items())[:8]:
        lines.append(f"    {c:<14} fp32 {pc['fp32']:>4}  int8 {pc['int8']:>4}  matched {pc['matched']:>4}  F1 {pc['f1']:.3f}")
    lines.append(f"  timing ({t['threads']} thread(s), median of {t['runs']}): fp32 {t['fp32_median_ms']:.1f} ms, "
                 f"int8 {t['int8_median_ms']:.1f} ms  (x{t['speedup']})")
    return "\n".join(lines)


def cmd_quantize(a):
    manifest, fp32_text = load_manifest(a.model_dir)
    if not NAME_RE.match(a.name):
        raise UsageError(f"--name {a.name!r}: 1-64 characters from A-Z a-z 0-9 . _ -, not starting with '.'")
    out = os.path.abspath(a.out)
    if os.path.exists(out) and not a.force:
        raise UsageError(f"{a.out} exists (use --force to replace it)")
    fp32_path = os.path.join(a.model_dir, "model.onnx")
    inp = manifest["input"]
    src = Frames(a.calibration)
    calib_idx, eval_idx = split_frames(src.count, a.calib_frames, a.eval_frames)
    print(f"source {rel(a.calibration)}: {src.count} frames; calibration {len(calib_idx)} frames "
          f"({calib_idx[0]}..{calib_idx[-1]}), evaluation {len(eval_idx)} held-back frames "
          f"({eval_idx[0]}..{eval_idx[-1]})")

    model = onnx.load(fp32_path)
    exclude = list(a.exclude_nodes)
    check_nodes(model, exclude)
    input_name = inp.get("name") or model.graph.input[0].name
    folded = []
    if a.pad_maxpool == "fold":
        folded = fold_pad_maxpool(model)
        print(f"folded Pad(-inf)->MaxPool into MaxPool pads: {folded or 'none found'}")
    if a.pad_maxpool in ("fold", "exclude"):
        auto = [n for n in pad_maxpool_nodes(model) if n not in exclude]  # what fold could not take
        exclude += auto
        if a.pad_maxpool == "exclude" or auto:
            print(f"excluded Pad->MaxPool nodes: {auto or 'none found'}")

    frames = src.read(calib_idx + eval_idx)
    fitted = [fit(frames[i], inp) for i in calib_idx]
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-quantize-", dir=parent)
    try:
        q_path = os.path.join(tmp, "model.onnx")
        # quantize_static writes a shape-inferred copy beside its input: give it a copy in tmp,
        # never the shipped fp32 folder
        src_path = os.path.join(tmp, "fp32-input.onnx")
        onnx.checker.check_model(model)
        onnx.save(model, src_path)
        if folded:
            diff = max_output_diff(fp32_path, src_path, manifest, fitted[: min(4, len(fitted))])
            print(f"folded fp32 graph vs original: max |output diff| {diff:.3g}")
            if diff > 1e-4:
                raise UsageError(f"folding Pad into MaxPool changed the outputs ({diff}); use --pad-maxpool exclude")
        del model
        extra = {}
        if a.calibrate_method == "MinMax" and a.calib_moving_average:
            extra["CalibMovingAverage"] = True
        t0 = time.time()
        quantize_static(
            src_path, q_path, Reader(input_name, fitted, inp),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=exclude,
            calibrate_method=getattr(CalibrationMethod, a.calibrate_method),
            extra_options=extra,
        )
        print(f"quantize_static: {time.time() - t0:.1f} s")
        bad = nan_scales(onnx.load(q_path))
        if bad:
            print(f"warning: {len(bad)} non-finite quantisation scales, e.g. {bad[:3]} "
                  "(a -inf Pad before a MaxPool not excluded?)")
        ev = evaluate(fp32_path, q_path, manifest, {i: frames[i] for i in eval_idx},
                      a.threads, a.warmup, a.timing_runs)
        print(summary(ev, a.min_f1))
        if ev["fp32_detections"] == 0:
            print("FAIL: the fp32 model detects nothing on the evaluation frames: no evidence either way",
                  file=sys.stderr)
            return 2
        if ev["f1"] < a.min_f1:
            print(f"FAIL: F1 {ev['f1']:.4f} < --min-f1 {a.min_f1}: the int8 model disagrees with fp32 "
                  f"(precision {ev['precision']:.3f}: int8 boxes fp32 lacks; recall {ev['recall']:.3f}: "
                  f"fp32 boxes int8 misses). Nothing written."
                  + (" Non-finite scales found: exclude the nodes that produce them." if bad else ""),
                  file=sys.stderr)
            return 2

        t = ev["timing"]
        size = os.path.getsize(q_path)
        made = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        cmd = " ".join(["python", TOOL] + [rel(x) if os.path.exists(x) else x for x in sys.argv[1:]])
        report = {
            "model": a.name,
            "source_model": {"dir": rel(a.model_dir), "name": manifest["name"],
                             "sha256": sha256(fp32_path), "size_bytes": os.path.getsize(fp32_path)},
            "int8_model": {"sha256": sha256(q_path), "size_bytes": size},
            "made": made,
            "command": cmd,
            "quantization": {
                "tool": "onnxruntime.quantization.quantize_static",
                "format": "QDQ", "activations": "uint8 (QUInt8, asymmetric)",
                "weights": "int8 (QInt8, symmetric, per channel)",
                "calibrate_method": a.calibrate_method,
                "extra_options": extra,
                "pad_maxpool": a.pad_maxpool,
                "pad_maxpool_folded": [{"pad": p_, "maxpool": m_} for p_, m_ in folded],
                "nodes_excluded": exclude,
                "non_finite_scales": bad,
            },
            "calibration": {"source": rel(a.calibration), "source_frames": src.count,
                            "frames": calib_idx},
            "evaluation": {"source": rel(a.calibration), "frames": eval_idx,
                           "held_back": "no evaluation frame is a calibration frame",
                           "score_threshold": manifest["score_threshold"],
                           "iou_threshold": manifest["iou_threshold"],
                           "match_iou": MATCH_IOU, "min_f1": a.min_f1, **ev},
            "versions": {"onnxruntime": ort.__version__, "onnx": onnx.__version__,
                         "numpy": np.__version__, "opencv": cv2.__version__,
                         "python": sys.version.split()[0]},
        }
        desc = a.description or (
            f"{manifest.get('description', manifest['name']).split(';')[0].strip()}; static INT8 (QDQ) "
            f"copy of {manifest['name']}, F1 {ev['f1']:.2f} vs fp32, {t['speedup']}x faster on 1 thread here")
        header = [
            f"{a.name}: static INT8 (QDQ) copy of {manifest['name']}, made by {TOOL} ({made}).",
            f"  {cmd}",
            f"Source model: ../{os.path.basename(os.path.abspath(a.model_dir))}/model.onnx (sha256 {report['source_model']['sha256'][:16]}...);",
            "same input, outputs, decoding and licence. Provenance and licence: ../PROVENANCE.md",
            f"onnxruntime {ort.__version__} quantize_static: uint8 activations, int8 per-channel weights, "
            f"{a.calibrate_method}{' (moving average)' if extra.get('CalibMovingAverage') else ''} calibration",
            f"on {len(calib_idx)} frames of {rel(a.calibration)} ({calib_idx[0]}..{calib_idx[-1]}, see quantization.json).",
            *([f"Pad(-inf) folded into MaxPool pads first (same fp32 outputs): {', '.join(p_ for p_, _ in folded)}."]
              if folded else []),
            f"Not quantised (kept fp32): {', '.join(exclude) if exclude else 'none'}.",
            f"Against fp32 on {len(eval_idx)} held-back frames: precision {ev['precision']:.3f}, "
            f"recall {ev['recall']:.3f}, F1 {ev['f1']:.3f}",
            f"(thresholds {manifest['score_threshold']}/{manifest['iou_threshold']}, match IoU >= {MATCH_IOU}); "
            f"{t['threads']} thread: fp32 {t['fp32_median_ms']:.1f} ms, int8 {t['int8_median_ms']:.1f} ms per frame.",
            "Fast where the CPU has AVX512-VNNI / AMX-INT8 (or AVX-VNNI); elsewhere it may be slower than fp32.",
            f"Re-check: python {TOOL} --report-only --model-dir {rel(a.model_dir)} --out {rel(out)}",
        ]
        text = int8_manifest_text(fp32_text, a.name, desc, header)
        m2 = tomllib.loads(text)
        same = {k: v for k, v in manifest.items() if k not in ("name", "description")}
        assert {k: v for k, v in m2.items() if k not in ("name", "description")} == same, "manifest edit changed keys"
        with open(os.path.join(tmp, "manifest.toml"), "w") as f:
            f.write(text)
        with open(os.path.join(tmp, "quantization.json"), "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
        # model.onnx and the calibration leftovers: keep only our three files
        for fn in os.listdir(tmp):
            if fn not in ("model.onnx", "manifest.toml", "quantization.json"):
                p = os.path.join(tmp, fn)
                shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
        os.chmod(tmp, 0o755)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.rename(tmp, out)
        tmp = None
    finally:
        if tmp and os.path.exists(tmp):
            shutil.rmtree(tmp)
    print(f"OK: wrote {rel(out)}/ (model.onnx {size / 1e6:.2f} MB, manifest.toml, quantization.json)")
    return 0


def cmd_report(a):
    manifest, _ = load_manifest(a.model_dir)
    out = a.out
    rep_path = os.path.join(out, "quantization.json")
    if not os.path.isfile(os.path.join(out, "model.onnx")):
        raise UsageError(f"{out}: no model.onnx")
    recorded = None
    if os.path.isfile(rep_path):
        with open(rep_path) as f:
            recorded = json.load(f)
    q_manifest, _ = load_manifest(out)
    for k in ("input", "family", "classes", "score_threshold", "iou_threshold", "outputs"):
        if manifest.get(k) != q_manifest.get(k):
            print(f"note: manifests differ in {k!r}; evaluating both with {a.model_dir}'s")
    calib_src = a.calibration or (recorded and os.path.join(ROOT, recorded["evaluation"]["source"]))
    if not calib_src:
        raise UsageError("--calibration needed (no quantization.json to take the source from)")
    src = Frames(calib_src)
    same_src = recorded and os.path.abspath(calib_src) == os.path.join(ROOT, recorded["evaluation"]["source"])
    if same_src:
        if recorded["calibration"]["source_frames"] != src.count:
            raise UsageError(f"{calib_src}: {src.count} frames, quantization.json recorded "
                             f"{recorded['calibration']['source_frames']}")
        eval_idx = recorded["evaluation"]["frames"]
    else:
        _, eval_idx = split_frames(src.count, a.calib_frames, a.eval_frames)
    frames = src.read(eval_idx)
    ev = evaluate(os.path.join(a.model_dir, "model.onnx"), os.path.join(out, "model.onnx"),
                  manifest, frames, a.threads, a.warmup, a.timing_runs)
    print(f"report: {rel(out)} vs {rel(a.model_dir)} on {len(eval_idx)} frames of {rel(calib_src)}")
    print(summary(ev, a.min_f1))
    if recorded:
        r = recorded["evaluation"]
        same = (r["matched"], r["fp32_detections"], r["int8_detections"]) == (ev["matched"], ev["fp32_detections"], ev["int8_detections"])
        print(f"  recorded in quantization.json: F1 {r['f1']:.4f} "
              f"({'reproduced exactly' if same else 'differs: counts ' + str((r['matched'], r['fp32_detections'], r['int8_detections']))})")
        if recorded["int8_model"]["sha256"] != sha256(os.path.join(out, "model.onnx")):
            print("  note: model.onnx is not the file quantization.json describes (sha256 differs)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(ev, f, indent=1)
    if ev["fp32_detections"] == 0:
        print("FAIL: the fp32 model detects nothing on these frames", file=sys.stderr)
        return 2
    if ev["f1"] < a.min_f1:
        print(f"FAIL: F1 {ev['f1']:.4f} < --min-f1 {a.min_f1}", file=sys.stderr)
        return 2
    print(f"OK: F1 {ev['f1']:.4f} >= {a.min_f1}")
    return 0


def sha256(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True, help="fp32 model folder (model.onnx, manifest.toml)")
    p.add_argument("--calibration", help="a clip or a folder of images (calibration + held-back evaluation)")
    p.add_argument("--out", required=True, help="output folder (with --report-only: the int8 folder to check)")
    p.add_argument("--name", help="registry name of the int8 model (default: <fp32 name>-int8)")
    p.add_argument("--description", help="manifest description (default: derived)")
    p.add_argument("--calib-frames", type=int, default=100)
    p.add_argument("--eval-frames", type=int, default=60)
    p.add_argument("--exclude-nodes", nargs="*", default=[], metavar="NAME",
                   help="graph nodes to keep in fp32 (added to the automatic ones)")
    p.add_argument("--pad-maxpool", choices=["fold", "exclude", "keep"], default="fold",
                   help="the Pad(-inf) -> MaxPool trap: fold the Pad into the MaxPool's pads (default; "
                        "pairs that cannot be folded are excluded), exclude both nodes from "
                        "quantisation (keep them fp32), or keep them (breaks TF-converted models)")
    p.add_argument("--auto-exclude-pad-maxpool", dest="pad_maxpool", action="store_const", const="exclude",
                   help="same as --pad-maxpool exclude")
    p.add_argument("--no-auto-exclude-pad-maxpool", dest="pad_maxpool", action="store_const", const="keep",
                   help="same as --pad-maxpool keep")
    p.add_argument("--calibrate-method", choices=["MinMax", "Entropy", "Percentile", "Distribution"], default="MinMax")
    p.add_argument("--calib-moving-average", action=argparse.BooleanOptionalAction, default=True,
                   help="MinMax: average the per-frame min/max instead of the extremes "
                        "(onnxruntime CalibMovingAverage; default on)")
    p.add_argument("--min-f1", type=float, default=0.95, help="accuracy gate (F1 of int8 vs fp32 detections)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (evaluation and timing)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--timing-runs", type=int, default=40)
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--report-only", action="store_true",
                   help="evaluate an existing --out against --model-dir; writes nothing")
    p.add_argument("--json", help="with --report-only: write the evaluation here")
    a = p.parse_args(argv)
    try:
        if a.report_only:
            return cmd_report(a)
        if not a.calibration:
            raise UsageError("--calibration is required")
        if not a.name:
            a.name = load_manifest(a.model_dir)[0]["name"] + "-int8"
        return cmd_quantize(a)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
