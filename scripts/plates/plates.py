"""Plate rendering and compositing shared by make_set.py and make_clip.py.

A plate is drawn with Pillow from a real TTF font (fonts-dejavu-core, fonts-liberation),
then warped (rotation, perspective) and alpha-blended into a BGR picture with OpenCV.
"""
import json
import os
import re
import string

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SAMPLES = os.path.join(ROOT, "samples", "plates")

FONTS = {
    "DejaVuSans-Bold": "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "DejaVuSansMono-Bold": "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "LiberationSansNarrow-Bold": "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Bold.ttf",
    "LiberationSans-Bold": "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "LiberationMono-Bold": "/usr/share/fonts/truetype/liberation/LiberationMono-Bold.ttf",
}
PLATE_COLOURS = {"white": (242, 242, 236), "yellow": (248, 204, 32)}  # RGB
INK = (18, 18, 22)


def font_path(name):
    p = FONTS[name]
    if not os.path.exists(p):
        raise SystemExit(f"font {p} missing: apt-get install fonts-dejavu-core fonts-liberation "
                         "(scripts/setup installs them)")
    return p


def normalise(text):
    """The label form of a plate: upper case, A-Z 0-9 only."""
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def random_plate_text(rng):
    """A random plate string (with its display spaces), seeded by rng (np.random.Generator)."""
    # no I or O (as on most real plates: they read as 1 and 0), so a label is unambiguous
    letters = [c for c in string.ascii_uppercase if c not in "IO"]
    L = lambda n: "".join(rng.choice(letters, n))  # noqa: E731
    D = lambda n: "".join(rng.choice(list(string.digits), n))  # noqa: E731
    kind = rng.integers(0, 4)
    if kind == 0:  # Indian: KA01AB1234
        return f"{L(2)}{D(2)} {L(2)}{D(4)}"
    if kind == 1:  # British: AB12CDE
        return f"{L(2)}{D(2)} {L(3)}"
    if kind == 2:  # B123XYZ
        return f"{L(1)}{D(3)}{L(3)}" if rng.random() < 0.5 else f"{L(1)} {D(3)} {L(3)}"
    n = int(rng.integers(5, 11))  # free form, 5-10 alphanumerics, optional space
    s = "".join(rng.choice(letters + list(string.digits), n))
    if rng.random() < 0.5 and n >= 6:
        k = int(rng.integers(2, n - 2))
        s = s[:k] + " " + s[k:]
    return s


def render_plate(text, font="DejaVuSans-Bold", text_px=30, colour="white"):
    """RGBA plate whose capital letters/digits are text_px tall. Returns (PIL image, info)."""
    path = font_path(font)
    ref = ImageFont.truetype(path, 200)
    l, t, r, b = ref.getbbox("H0")
    size = max(4, int(round(200 * text_px / (b - t))))
    f = ImageFont.truetype(path, size)
    l, t, r, b = f.getbbox(text)
    tw, th = r - l, b - t
    padx, pady = max(3, round(0.35 * text_px)), max(2, round(0.28 * text_px))
    border = max(1, round(0.07 * text_px))
    W, H = tw + 2 * padx + 2 * border, th + 2 * pady + 2 * border
    img = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    rad = max(1, round(0.15 * text_px))
    d.rounded_rectangle([0, 0, W - 1, H - 1], radius=rad, fill=INK + (255,))
    d.rounded_rectangle([border, border, W - 1 - border, H - 1 - border], radius=max(1, rad - border),
                        fill=PLATE_COLOURS[colour] + (255,))
    d.text((border + padx - l, border + pady - t), text, font=f, fill=INK + (255,))
    return img, {"font": font, "font_size": size, "text_height_px": th, "plate_size": [W, H]}


def plate_quad(w, h, centre, angle_deg=0.0, tilt=0.0, yaw=0.0):
    """Destination corners (TL, TR, BR, BL) of a w x h plate centred at centre, rotated by
    angle_deg (clockwise on screen), with perspective: tilt>0 shrinks the top edge, yaw>0
    shrinks the right edge (fractions, e.g. 0.1 = 10 %)."""
    hw, hh = w / 2.0, h / 2.0
    pts = np.array([[-hw * (1 - max(tilt, 0)) , -hh * (1 - max(yaw, 0) * 0 )],
                    [hw * (1 - max(tilt, 0)), -hh],
                    [hw, hh],
                    [-hw, hh]], np.float64)
    # tilt<0 shrinks the bottom edge
    if tilt < 0:
        pts[2, 0] *= 1 + tilt
        pts[3, 0] *= 1 + tilt
    # yaw: scale the y of the right (yaw>0) or left (yaw<0) side
    if yaw > 0:
        pts[1, 1] *= 1 - yaw
        pts[2, 1] *= 1 - yaw
    elif yaw < 0:
        pts[0, 1] *= 1 + yaw
        pts[3, 1] *= 1 + yaw
    a = np.deg2rad(angle_deg)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return pts @ R.T + np.asarray(centre, np.float64)


def paste_plate(dst_bgr, plate_rgba, quad):
    """Warp the RGBA plate onto dst (in place) at the quad (TL, TR, BR, BL)."""
    w, h = plate_rgba.size
    arr = np.asarray(plate_rgba).astype(np.float32)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    M = cv2.getPerspectiveTransform(src, np.asarray(quad, np.float32))
    H, W = dst_bgr.shape[:2]
    # supersample x2 for clean edges
    S = np.diag([2.0, 2.0, 1.0])
    big = cv2.warpPerspective(arr, S @ M, (W * 2, H * 2), flags=cv2.INTER_CUBIC,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    warped = cv2.resize(big, (W, H), interpolation=cv2.INTER_AREA)
    alpha = np.clip(warped[:, :, 3:4] / 255.0, 0, 1)
    rgb = np.clip(warped[:, :, :3], 0, 255)[:, :, ::-1]  # RGB -> BGR
    out = dst_bgr.astype(np.float32) * (1 - alpha) + rgb * alpha
    dst_bgr[:] = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return dst_bgr


def load_vehicles():
    with open(os.path.join(SAMPLES, "vehicles", "vehicles.json")) as f:
        meta = json.load(f)
    out = {}
    for name, v in sorted(meta["vehicles"].items()):
        img = cv2.imread(os.path.join(SAMPLES, "vehicles", v["file"]))
        assert img is not None, v["file"]
        out[name] = dict(v, image=img)
    return out


def load_background():
    img = cv2.imread(os.path.join(SAMPLES, "background.jpg"))
    assert img is not None, "samples/plates/background.jpg missing"
    return img
