"""Pixels for the synthetic testbed world: shapes, backgrounds, object motion, and H.264 files via PyAV.

A *track* is one object's life in a clip (a JSON-able dict, see ``world.py``): it appears at ``t_in``
(popping in, or sliding in from an edge), moves with constant velocity bouncing off the frame borders, and
leaves at ``t_out`` (popping out, or sliding out through an edge). Shapes are drawn from signed distance
functions with a one-pixel anti-aliased edge, by layer ``z`` (higher on top), then in order of appearance.
A track may be confined to a ``box`` (fractions of the frame: x0, y0, x1, y1) that it bounces in.

``render_clip`` also returns the ground truth *measured on the rendered pixels*: for every frame and track,
the fraction of the object's full area that is visible (inside the frame and not covered by a later
object). Captions and query ground truth are derived from these fractions, never from the schedule alone.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")
COLOURS = {
    "red": (225, 35, 35),
    "orange": (245, 140, 20),
    "yellow": (240, 225, 40),
    "green": (40, 185, 60),
    "cyan": (40, 210, 220),
    "blue": (45, 75, 235),
    "purple": (155, 55, 205),
    "white": (240, 240, 240),
}
SIZES = {"small": 0.095, "big": 0.19}  # radius as a fraction of the frame side (9 / 18 px at 96 px)
SLIDE_S = 1.0  # seconds an object takes to slide in or out through an edge
OPAQUE = 0.5  # coverage at which a pixel counts as showing the object


# -- shapes -----------------------------------------------------------------------------------------------
def _sdf(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Signed distance (px, negative inside) of a shape of radius ``r`` centred at the origin."""
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "circle":
        return np.hypot(dx, dy) - r
    if shape == "ring":
        return np.abs(np.hypot(dx, dy) - 0.72 * r) - 0.28 * r
    if shape == "square":
        return np.maximum(ax, ay) - 0.85 * r
    if shape == "diamond":
        return (ax + ay - 1.15 * r) / np.sqrt(2.0)
    if shape == "cross":
        arm, half = r, 0.34 * r
        return np.minimum(np.maximum(ax - arm, ay - half), np.maximum(ax - half, ay - arm))
    if shape == "triangle":  # pointing up (image y grows downwards), circumradius ~1.1 r
        rr = 1.1 * r
        up = -dy - rr  # top vertex direction: distance beyond the apex plane is handled by the two sides
        s1 = 0.866 * dx - 0.5 * dy - 0.5 * rr  # right side
        s2 = -0.866 * dx - 0.5 * dy - 0.5 * rr  # left side
        base = dy - 0.5 * rr
        return np.maximum(np.maximum(s1, s2), np.maximum(base, up))
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


def radius_px(size: str, side: int) -> float:
    return SIZES[size] * side


def full_area(shape: str, size: str, side: int) -> int:
    """Pixels an unoccluded, fully inside object covers at ``side`` resolution (coverage ≥ OPAQUE)."""
    r = radius_px(size, side)
    n = int(np.ceil(1.3 * r)) + 2
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1].astype(np.float32)
    return int((np.clip(0.5 - _sdf(shape, xx + 0.25, yy + 0.25, r), 0, 1) >= OPAQUE).sum())


# -- motion -----------------------------------------------------------------------------------------------
def _bounce(x: float, lo: float, hi: float) -> float:
    span = hi - lo
    if span <= 0:
        return (lo + hi) / 2
    y = (x - lo) % (2 * span)
    return lo + (y if y <= span else 2 * span - y)


def _inside_pos(track: dict, t: float, side: int) -> tuple[float, float]:
    r = 1.3 * radius_px(track["size"], side)
    x0, y0, x1, y1 = (v * side for v in track.get("box", (0, 0, 1, 1)))  # region it bounces in
    dt = t - track["t_in"]
    return (
        _bounce(track["p0"][0] + track["v"][0] * dt, x0 + r, x1 - r),
        _bounce(track["p0"][1] + track["v"][1] * dt, y0 + r, y1 - r),
    )


def track_position(track: dict, t: float, side: int) -> tuple[float, float] | None:
    """Centre (x, y) in px at time ``t``, or None when the object is not in the scene."""
    t_in, t_out = track["t_in"], track["t_out"]
    if not t_in <= t < t_out:
        return None
    if track["entry"] != "pop" and t < t_in + SLIDE_S:
        a = (t - t_in) / SLIDE_S
        tx, ty = _inside_pos(track, t_in + SLIDE_S, side)
        ex, ey = _edge_point(track["entry"], tx, ty, track["size"], side)
        return ex + a * (tx - ex), ey + a * (ty - ey)
    if track["exit"] != "pop" and t >= t_out - SLIDE_S:
        a = (t - (t_out - SLIDE_S)) / SLIDE_S
        sx, sy = _inside_pos(track, t_out - SLIDE_S, side)
        ex, ey = _edge_point(track["exit"], sx, sy, track["size"], side)
        return sx + a * (ex - sx), sy + a * (ey - sy)
    return _inside_pos(track, t, side)


def _edge_point(edge: str, x: float, y: float, size: str, side: int) -> tuple[float, float]:
    """Just outside the frame through ``edge`` (left/right/top/bottom), level with (x, y)."""
    off = 1.3 * radius_px(size, side) + 1
    return {"left": (-off, y), "right": (side + off, y), "top": (x, -off), "bottom": (x, side + off)}[edge]


# -- frames -----------------------------------------------------------------------------------------------
def background(rng: np.random.Generator, side: int) -> tuple[np.ndarray, dict]:
    """A dark plain or lightly textured background [side, side, 3] uint8 and its description."""
    base = rng.integers(20, 75, size=3).astype(np.float32)
    textured = bool(rng.random() < 0.5)
    img = np.broadcast_to(base, (side, side, 3)).copy()
    if textured:
        g = rng.normal(0, 7, size=(7, 7, 1)).astype(np.float32)  # coarse noise, upsampled smoothly
        xs = np.linspace(0, 6, side)
        i0 = np.minimum(xs.astype(int), 5)
        f = (xs - i0)[:, None]
        rows = g[i0] * (1 - f[..., None]) + g[i0 + 1] * f[..., None]  # [side, 7, 1]
        f2 = (xs - i0)[None, :, None]
        img += rows[:, i0] * (1 - f2) + rows[:, i0 + 1] * f2
    return np.clip(img, 0, 255).astype(np.uint8), {"base": base.astype(int).tolist(), "textured": textured}


def render_clip(tracks: list[dict], bg: np.ndarray, duration: float, fps: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 [N, S, S, 3] and visible fractions float32 [N, len(tracks)] (frame i shows time i/fps)."""
    side = bg.shape[0]
    n = int(round(duration * fps))
    frames = np.empty((n, side, side, 3), np.uint8)
    visible = np.zeros((n, len(tracks)), np.float32)
    order = sorted(range(len(tracks)), key=lambda k: (tracks[k].get("z", 0), tracks[k]["t_in"], k))
    areas = [full_area(tr["shape"], tr["size"], side) for tr in tracks]
    colours = [np.array(COLOURS[tr["colour"]], np.float32) for tr in tracks]
    for i in range(n):
        t = i / fps
        img = bg.astype(np.float32)
        owner = np.full((side, side), -1, np.int16)  # which track shows at each pixel
        for k in order:
            pos = track_position(tracks[k], t, side)
            if pos is None:
                continue
            r = radius_px(tracks[k]["size"], side)
            ext = int(np.ceil(1.3 * r)) + 2
            cx, cy = pos
            x0, x1 = max(0, int(cx) - ext), min(side, int(cx) + ext + 1)
            y0, y1 = max(0, int(cy) - ext), min(side, int(cy) + ext + 1)
            if x0 >= x1 or y0 >= y1:
                continue
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            cov = np.clip(0.5 - _sdf(tracks[k]["shape"], xx + 0.5 - cx, yy + 0.5 - cy, r), 0.0, 1.0)  # [h, w]
            win = img[y0:y1, x0:x1]
            win += (colours[k] - win) * cov[..., None]
            owner[y0:y1, x0:x1][cov >= OPAQUE] = k
        frames[i] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        counts = np.bincount(owner.ravel() + 1, minlength=len(tracks) + 1)[1:]  # [K]
        visible[i] = np.minimum(1.0, counts / np.maximum(areas, 1))
    return frames, visible


# -- files ------------------------------------------------------------------------------------------------
def write_mp4(path: str | Path, frames: np.ndarray, fps: int, crf: int = 20) -> None:
    """H.264 (libx264, yuv420p) mp4, single-threaded. The same frames decode to the same pictures; the bytes
    are not promised (rgb→yuv and x264 pick SIMD kernels by CPU, see tests/test_testbed.py)."""
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height = frames.shape[2], frames.shape[1]
        s.pix_fmt = "yuv420p"
        s.options = {"crf": str(crf), "preset": "fast", "threads": "1"}
        for arr in frames:
            for packet in s.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
