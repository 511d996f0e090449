"""A seeded synthetic video world with ground truth for three query families (docs/methods.md "Quality without
real weights": no model hub is reachable, so quality is measured on a world whose truth is known).

Objects are (size × colour × shape): 2 × 8 × 6 = 96 types, named by phrases such as "a big red circle".
Every clip is a real H.264 mp4 (``render.py``). Three families share one gallery and one vocabulary:

- ``content``: a 12 s clip whose two main objects are on screen for most of it (plus, half the time, a brief
  extra object). Query: "a big red circle and a small blue square".
- ``brief``: a 60 s clip of long-running distractors (one or two on screen at any time) in which the target
  object is visible (any pixel) in ≤ 10% of the frames. Query: the target, e.g. "a small yellow triangle".
  Targets appear in no other clip; distractors come from the shared vocabulary, so other clips hold them —
  and, by chance, objects that share two of three attributes with some target. Mean pooling dilutes the
  target's few frames among the distractors; nothing else is arranged to favour any method.
- ``order``: pairs of 16 s clips, "X then Y" and "Y then X" (the same two objects, opposite order).

Ground truth holds over the whole gallery: a content pair of objects is on screen together in only its clip,
an order pair's two objects occur together in only its two clips, a brief target occurs in only its clip.
Presence is measured on the rendered pixels (≥ 50% of an object visible), and ``check_world`` re-verifies
every rule from those measurements.

Outputs in ``out_dir``: the mp4 files, ``manifest.json`` (clips, tracks, per-track presence intervals,
queries), ``queries.jsonl`` ({"query_id", "family", "query", "video", ...}) and ``captions.csv``
(video, caption: one row per query, a dataset in the MSR-VTT style).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from vidseek.apps.testbed.render import COLOURS, SHAPES, SIZES, background, render_clip, write_mp4

TYPES: list[tuple[str, str, str]] = [(s, c, h) for s in SIZES for c in COLOURS for h in SHAPES]
PRESENT = 0.5  # visible fraction at which an object counts as present in a frame
EDGES = ("left", "right", "top", "bottom")
VERSION = 1


def phrase(t: tuple[str, str, str] | dict) -> str:
    s, c, h = (t["size"], t["colour"], t["shape"]) if isinstance(t, dict) else t
    return f"a {s} {c} {h}"


def type_key(t: dict) -> tuple[str, str, str]:
    return t["size"], t["colour"], t["shape"]


def make_track(
    rng: np.random.Generator,
    typ: tuple[str, str, str],
    t_in: float,
    t_out: float,
    side: int,
    slide: bool = True,
    box: tuple = (0.0, 0.0, 1.0, 1.0),
    z: int | None = None,
) -> dict:
    """One object's life: appear at t_in (pop or slide in), drift and bounce in ``box``, leave at t_out.

    Layer ``z`` defaults to small objects above big ones, so that a small object is never hidden.
    """
    size, colour, shape = typ
    r = 1.3 * SIZES[size] * side
    x0, y0, x1, y1 = (v * side for v in box)
    speed = 0.0 if rng.random() < 0.2 else float(rng.uniform(0.03, 0.15) * side)  # px/s
    ang = float(rng.uniform(0, 2 * np.pi))
    long_enough = t_out - t_in >= 3.0
    entry = str(rng.choice(EDGES)) if slide and long_enough and rng.random() < 0.5 else "pop"
    exit_ = str(rng.choice(EDGES)) if slide and long_enough and rng.random() < 0.5 else "pop"
    return {
        "size": size,
        "colour": colour,
        "shape": shape,
        "t_in": round(float(t_in), 3),
        "t_out": round(float(t_out), 3),
        "entry": entry,
        "exit": exit_,
        "p0": [
            round(float(rng.uniform(x0 + r, max(x0 + r, x1 - r))), 2),
            round(float(rng.uniform(y0 + r, max(y0 + r, y1 - r))), 2),
        ],
        "v": [round(speed * np.cos(ang), 3), round(speed * np.sin(ang), 3)],
        "box": [float(v) for v in box],
        "z": int(z if z is not None else (1 if size == "small" else 0)),
    }


def halves(rng: np.random.Generator) -> tuple[tuple, tuple]:
    """Two boxes splitting the frame left/right or top/bottom (random), in random order."""
    if rng.random() < 0.5:
        a, b = (0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0)
    else:
        a, b = (0.0, 0.0, 1.0, 0.5), (0.0, 0.5, 1.0, 1.0)
    return (a, b) if rng.random() < 0.5 else (b, a)


def _intervals(mask: np.ndarray) -> list[list[int]]:
    """[[first, last], ...] frame runs where ``mask`` is true (inclusive)."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    return [[int(a), int(b)] for a, b in zip(starts, ends)]


def render_manifest_clip(clip: dict, side: int, fps: int) -> tuple[np.ndarray, np.ndarray]:
    """Re-render a clip from its manifest entry alone: frames [N, S, S, 3] and visible fractions [N, K]."""
    bg, _ = background(np.random.default_rng(clip["background"]["seed"]), side)
    return render_clip(clip["tracks"], bg, clip["duration"], fps)


def _finish_clip(out_dir: Path, clip: dict, rng: np.random.Generator, side: int, fps: int, write: bool = True) -> None:
    """Render, write the mp4 and add the measured presence of every track to the manifest entry."""
    bg_seed = int(rng.integers(2**31))
    _, bg_info = background(np.random.default_rng(bg_seed), side)
    clip["background"] = {"seed": bg_seed, **bg_info}
    frames, vis = render_manifest_clip(clip, side, fps)
    clip["n_frames"] = len(frames)
    for k, tr in enumerate(clip["tracks"]):
        tr["present"] = _intervals(vis[:, k] >= PRESENT)
        tr["n_present"] = int((vis[:, k] >= PRESENT).sum())
        tr["n_visible"] = int((vis[:, k] > 0).sum())
    if write:
        write_mp4(out_dir / clip["video"], frames, fps)


class _Vocab:
    """Draws object types under the gallery-wide uniqueness rules."""

    def __init__(self, rng: np.random.Generator, n_targets: int):
        if n_targets > len(TYPES) - 8:
            raise ValueError(f"at most {len(TYPES) - 8} brief targets fit the {len(TYPES)}-type vocabulary")
        self.rng = rng
        perm = rng.permutation(len(TYPES))
        self.targets = [TYPES[i] for i in perm[:n_targets]]
        self.pool = [TYPES[i] for i in sorted(perm[n_targets:])]
        self.reserved: set[frozenset] = set()  # object pairs that identify a content or order clip

    def new_pair(self) -> tuple[tuple, tuple]:
        while True:
            a, b = (self.pool[i] for i in self.rng.choice(len(self.pool), 2, replace=False))
            if frozenset((a, b)) not in self.reserved:
                self.reserved.add(frozenset((a, b)))
                return a, b

    def distractor(self, in_clip: set, own_pair: frozenset | None = None) -> tuple:
        """A pool type not in the clip that forms no reserved pair with what the clip already holds."""
        while True:
            x = self.pool[int(self.rng.integers(len(self.pool)))]
            if x in in_clip:
                continue
            if any(frozenset((x, y)) in self.reserved and frozenset((x, y)) != own_pair for y in in_clip):
                continue
            return x


def _content_clip(rng, vocab: _Vocab, i: int, pair: tuple, side: int, dur: float = 12.0) -> tuple[dict, dict]:
    a, b = pair
    boxes = halves(rng)  # the two main objects keep to their own halves and never hide each other
    tracks = [
        make_track(rng, t, rng.uniform(0, 1.0), dur - rng.uniform(0, 1.0), side, box=box)
        for t, box in zip((a, b), boxes)
    ]
    if rng.random() < 0.5:  # a brief extra object, as in real footage
        x = vocab.distractor({a, b}, frozenset((a, b)))
        d = rng.uniform(2.0, 3.0)
        t0 = rng.uniform(0.5, dur - d - 0.5)
        tracks.append(make_track(rng, x, t0, t0 + d, side, slide=False))
    clip = {"video": f"content_{i:03d}.mp4", "family": "content", "duration": dur, "tracks": tracks}
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    query = {
        "query_id": f"content-{i:03d}",
        "family": "content",
        "query": f"{phrase(first)} and {phrase(second)}",
        "video": clip["video"],
        "objects": [phrase(a), phrase(b)],
    }
    return clip, query


def _brief_clip(rng, vocab: _Vocab, i: int, side: int, fps: int, dur: float = 60.0) -> tuple[dict, dict]:
    target = vocab.targets[i]
    held: set = set()
    tracks = []
    lane1, lane2 = halves(rng)
    t = 0.0
    while t < dur:  # lane 1: distractors back to back over the whole clip
        x = vocab.distractor(held)
        held.add(x)
        end = min(dur, t + rng.uniform(12.0, 30.0))
        end = dur if dur - end < 6.0 else end
        tracks.append(make_track(rng, x, t, end, side, box=lane1))
        t = end - rng.uniform(0.0, 1.0) if end < dur else dur
    for _ in range(int(rng.integers(1, 3))):  # lane 2: overlapping distractors
        x = vocab.distractor(held)
        held.add(x)
        d = rng.uniform(10.0, 25.0)
        t0 = rng.uniform(0.0, dur - d)
        tracks.append(make_track(rng, x, t0, t0 + d, side, box=lane2))
    d = min(rng.uniform(3.0, 4.5), 0.1 * dur - 1.0 / fps)  # ≤ 10% of the frames, edges included
    t0 = rng.uniform(8.0, dur - 8.0 - d)
    tracks.append(make_track(rng, target, t0, t0 + d, side, slide=False, z=2))  # the event, in front
    clip = {
        "video": f"brief_{i:03d}.mp4",
        "family": "brief",
        "duration": dur,
        "tracks": tracks,
        "target": len(tracks) - 1,
    }
    query = {
        "query_id": f"brief-{i:03d}",
        "family": "brief",
        "query": phrase(target),
        "video": clip["video"],
        "objects": [phrase(target)],
    }
    return clip, query


def _order_pair(rng, i: int, pair: tuple, side: int, dur: float = 16.0) -> tuple[list[dict], list[dict]]:
    a, b = pair
    clips, queries = [], []
    for j, (x, y) in enumerate(((a, b), (b, a))):
        half = dur / 2
        tracks = [
            make_track(rng, x, rng.uniform(0, 0.8), half - rng.uniform(0.2, 1.0), side),
            make_track(rng, y, half + rng.uniform(0.2, 1.0), dur - rng.uniform(0, 0.8), side),
        ]
        video = f"order_{i:03d}{'ab'[j]}.mp4"
        partner = f"order_{i:03d}{'ba'[j]}.mp4"
        clips.append({"video": video, "family": "order", "duration": dur, "tracks": tracks, "partner": partner})
        queries.append(
            {
                "query_id": f"order-{i:03d}{'ab'[j]}",
                "family": "order",
                "query": f"{phrase(x)} then {phrase(y)}",
                "video": video,
                "partner": partner,
                "objects": [phrase(x), phrase(y)],
            }
        )
    return clips, queries


def world_pairs(world_dir: str | Path) -> set[frozenset]:
    """The object-type pairs that identify a world's content and order clips."""
    by_phrase = {phrase(t): t for t in TYPES}
    return {
        frozenset(by_phrase[o] for o in q["objects"])
        for q in load_manifest(world_dir)["queries"]
        if len(q["objects"]) == 2
    }


def generate_world(
    out_dir: str | Path,
    seed: int,
    n_content: int = 50,
    n_brief: int = 40,
    n_order: int = 25,
    side: int = 96,
    fps: int = 4,
    brief_s: float = 60.0,
    write: bool = True,
    exclude_pairs: set[frozenset] | None = None,
) -> dict:
    """Write the eval world (videos, manifest.json, queries.jsonl, captions.csv); return the manifest.

    ``n_order`` counts *pairs* (2 clips, 2 queries each). ``write=False`` renders and measures without
    writing files (the manifest is identical). ``exclude_pairs``: object-type pairs no clip may hold together
    (``world_pairs`` of the worlds a model trained on this one will be evaluated on).
    """
    out = Path(out_dir)
    if write:
        out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocab = _Vocab(rng, n_brief)
    vocab.reserved |= set(exclude_pairs or ())  # never drawn as a pair, never completed by a distractor
    # Reserve every identifying pair first, so that no distractor drawn later completes one elsewhere.
    content_pairs = [vocab.new_pair() for _ in range(n_content)]
    order_pairs = [vocab.new_pair() for _ in range(n_order)]
    clips, queries = [], []
    for i, pair in enumerate(content_pairs):
        c, q = _content_clip(rng, vocab, i, pair, side)
        clips.append(c), queries.append(q)
    for i, pair in enumerate(order_pairs):
        cs, qs = _order_pair(rng, i, pair, side)
        clips += cs
        queries += qs
    for i in range(n_brief):
        c, q = _brief_clip(rng, vocab, i, side, fps, brief_s)
        clips.append(c), queries.append(q)
    for clip in clips:
        _finish_clip(out, clip, rng, side, fps, write)
    manifest = {
        "version": VERSION,
        "kind": "eval",
        "seed": seed,
        "side": side,
        "fps": fps,
        "clips": clips,
        "queries": queries,
    }
    check_world(manifest)
    if write:
        _write_files(out, manifest)
    return manifest


def generate_training_world(
    out_dir: str | Path,
    seed: int,
    n_clips: int = 40,
    duration: float = 45.0,
    side: int = 96,
    fps: int = 4,
    write: bool = True,
) -> dict:
    """Clips of a steady stream of objects (all 96 types, one to three on screen) for frame-level training."""
    out = Path(out_dir)
    if write:
        out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n_clips):
        tracks: list[dict] = []
        t = 0.0
        while t < duration - 1.0:
            d = rng.uniform(1.5, 9.0)
            active = sum(tr["t_in"] <= t < tr["t_out"] for tr in tracks)
            if active < 3:
                typ = TYPES[int(rng.integers(len(TYPES)))]
                tracks.append(make_track(rng, typ, t, min(duration, t + d), side))
            t += rng.uniform(0.5, 2.5)
        clips.append({"video": f"train_{i:03d}.mp4", "family": "train", "duration": duration, "tracks": tracks})
    for clip in clips:
        _finish_clip(out, clip, rng, side, fps, write)
    manifest = {
        "version": VERSION,
        "kind": "train",
        "seed": seed,
        "side": side,
        "fps": fps,
        "clips": clips,
        "queries": [],
    }
    if write:
        (out / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def frame_objects(clip: dict, frame: int) -> list[dict]:
    """Tracks present (≥ 50% visible) in frame ``frame`` of a clip, from the measured intervals."""
    return [tr for tr in clip["tracks"] if any(a <= frame <= b for a, b in tr["present"])]


def clip_types(clip: dict) -> set[tuple[str, str, str]]:
    """Object types present in at least one frame of the clip."""
    return {type_key(tr) for tr in clip["tracks"] if tr["n_present"] > 0}


def check_world(manifest: dict) -> None:
    """Re-verify every ground-truth rule from the measured presence; raises AssertionError naming the clip."""
    by_video = {c["video"]: c for c in manifest["clips"]}
    types = {v: clip_types(c) for v, c in by_video.items()}
    for q in manifest["queries"]:
        clip = by_video[q["video"]]
        if q["family"] == "content":
            main = clip["tracks"][:2]
            for tr in main:
                assert tr["n_present"] >= 0.6 * clip["n_frames"], f"{q['video']}: main object on screen < 60%"
            pair = {type_key(tr) for tr in main}
            others = [v for v, ts in types.items() if v != q["video"] and pair <= ts]
            assert not others, f"{q['video']}: its object pair also occurs in {others}"
        elif q["family"] == "brief":
            tr = clip["tracks"][clip["target"]]
            assert tr["n_present"] > 0, f"{q['video']}: brief target never visible"
            assert tr["n_visible"] <= 0.1 * clip["n_frames"], f"{q['video']}: target in > 10% of frames"
            others = [v for v, ts in types.items() if v != q["video"] and type_key(tr) in ts]
            assert not others, f"{q['video']}: brief target also occurs in {others}"
        elif q["family"] == "order":
            x, y = clip["tracks"][0], clip["tracks"][1]
            assert x["n_present"] and y["n_present"], f"{q['video']}: order object not visible"
            assert x["present"][-1][1] < y["present"][0][0], f"{q['video']}: objects not in order"
            pair = {type_key(x), type_key(y)}
            holders = sorted(v for v, ts in types.items() if pair <= ts)
            assert holders == sorted([q["video"], q["partner"]]), f"{q['video']}: pair occurs in {holders}"
            px = by_video[q["partner"]]["tracks"]
            assert (type_key(px[0]), type_key(px[1])) == (type_key(y), type_key(x)), f"{q['video']}: bad partner"


def _write_files(out: Path, manifest: dict) -> None:
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    with open(out / "queries.jsonl", "w") as f:
        for q in manifest["queries"]:
            f.write(json.dumps(q) + "\n")
    with open(out / "captions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "caption"])
        for q in manifest["queries"]:
            w.writerow([q["video"], q["query"]])


def query_spans(manifest: dict, query: dict) -> tuple[tuple[float, float], ...]:
    """Where a query's caption holds in its clip, in seconds, from the measured presence intervals.

    brief: the target's presence; content: where both objects are present at once; order: none (its truth
    is a sequence, not a span). Frame intervals are inclusive; frame i covers [i/fps, (i+1)/fps).
    """
    if query["family"] not in ("brief", "content"):
        return ()
    fps = manifest["fps"]
    clip = next(c for c in manifest["clips"] if c["video"] == query["video"])

    def seconds(track: dict) -> list[tuple[float, float]]:
        return [(a / fps, (b + 1) / fps) for a, b in track["present"]]

    if query["family"] == "brief":
        return tuple(seconds(clip["tracks"][clip["target"]]))
    x, y = ([t for t in clip["tracks"] if phrase(t) == obj] for obj in query["objects"])
    both = [(max(a0, b0), min(a1, b1)) for tx in x for ty in y for a0, a1 in seconds(tx) for b0, b1 in seconds(ty)]
    return tuple(sorted((a, b) for a, b in both if a < b))


def load_manifest(world_dir: str | Path) -> dict:
    return json.loads((Path(world_dir) / "manifest.json").read_text())


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="write a testbed world: mp4 clips, manifest, queries, captions")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=7, help="7 is the eval world of the quality table")
    p.add_argument("--n-content", type=int, default=50)
    p.add_argument("--n-brief", type=int, default=40)
    p.add_argument("--n-order", type=int, default=25, help="pairs (two clips each)")
    p.add_argument(
        "--exclude-world",
        type=Path,
        action="append",
        default=[],
        help="a world whose identifying object pairs this one must not use (repeatable)",
    )
    a = p.parse_args(argv)
    exclude = set().union(*(world_pairs(w) for w in a.exclude_world))
    m = generate_world(a.out, a.seed, a.n_content, a.n_brief, a.n_order, exclude_pairs=exclude)
    print(f"{len(m['clips'])} clips, {len(m['queries'])} queries in {a.out}")


if __name__ == "__main__":
    main()
