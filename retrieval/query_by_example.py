"""Query by example: an image (alone or with text) and a video clip, over a store, through a ``Searcher``.

- Image: decoded with Pillow (JPEG, PNG, WebP; EXIF orientation applied), resized with FFmpeg's ``scale``
  filter to the size the store's decoder resizes frames to (``resize_plan``), cropped or padded by
  ``finish_frames``, encoded by the image tower of the store's own model and unit-normalised: the query goes
  through what every indexed frame went through. Then ``Searcher.search_vectors``: the same first stage,
  aggregation, CLIPRerank and moments as text search.
- Text + image: one query vector, normalise((1 − w)·t + w·i) of the two unit vectors, w = ``DEFAULT_WEIGHT``.
  Its cosine with a unit frame f is ((1 − w)·cos(t, f) + w·cos(i, f)) / |(1 − w)·t + w·i|: the weighted sum of
  the two cosines, up to a constant common to every frame, so every stage of search ranks by score fusion
  without knowing there were two queries (docs/copies.md, "Text and image together").
- Clip: decoded with the store's sampling and preprocessing between ``start`` and ``end``, in a child
  process under the caller's time limit, and only up to ``end`` (``retrieval/clip_frames.py``), encoded; candidates are the videos of each query frame's grouped
  frame ANN; each candidate's stored frames are aligned with the query's (``retrieval/alignment.py``) and
  hits are ranked by the alignment's score, with the aligned segment in the video and in the clip.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vidseek.operators.encode import LoadedClip, encode_images
from vidseek.operators.frame_table import FrameTable
from vidseek.operators.isolated_decode import DecodeLimit
from vidseek.operators.preprocess import PreprocessConfig, finish_frames, resize_frames_torch, resize_plan
from vidseek.retrieval.alignment import AlignParams, local_alignment, unit_rows
from vidseek.retrieval.backends import where_for
from vidseek.retrieval.clip_frames import clip_frames
from vidseek.retrieval.params import IMAGE_WEIGHT, ClipSearchParams, SearchParams  # light: the CLI reads them
from vidseek.retrieval.search import Hit, Searcher
from vidseek.store.video_store import VideoStore

DEFAULT_WEIGHT = IMAGE_WEIGHT  # the image's share in a text + image query
IMAGE_FORMATS = ("JPEG", "MPO", "PNG", "WEBP")  # MPO: what Pillow calls a camera's JPEG with a second picture
MAX_IMAGE_PIXELS = 64_000_000  # checked from the header before decoding; Pillow's global is left as it is


def no_frames_message(store: str) -> str:
    """What the CLI and the service say for a store (named by ``store``) that holds no frame vectors."""
    return f"{store} holds no frame vectors: an image or clip query is compared with stored frames; index videos first"


class QueryImageError(ValueError):
    """An image that cannot be a query; the message names it and says why."""


# -- image ----------------------------------------------------------------------------------------------
def load_image(image: str | Path | bytes) -> np.ndarray:
    """A JPEG (a camera's MPO too: its first picture), PNG or WebP file (or its bytes) as RGB uint8 [H, W, 3],
    EXIF orientation applied. Refused before its pixels are decoded: more than ``MAX_IMAGE_PIXELS``."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    name = "uploaded image" if isinstance(image, bytes) else str(image)
    try:
        with Image.open(io.BytesIO(image) if isinstance(image, bytes) else image) as im:
            if im.format not in IMAGE_FORMATS:
                raise QueryImageError(f"{name}: {im.format} image; use JPEG, PNG or WebP")
            check_pixels(name, *im.size)  # the header's size: before load() decodes (and allocates) anything
            im = ImageOps.exif_transpose(im)  # an MPO's current picture is its first
            return np.asarray(im.convert("RGB"), np.uint8)
    except Image.DecompressionBombError as e:  # Pillow's own guard, at twice its (process-wide) limit
        raise QueryImageError(
            f"{name}: over the {MAX_IMAGE_PIXELS} pixels a query image may have ({e}); send a smaller image"
        ) from e
    except (UnidentifiedImageError, OSError) as e:
        raise QueryImageError(f"{name}: not a readable image ({type(e).__name__}: {e}); use JPEG, PNG or WebP") from e


def check_pixels(name: str, width: int, height: int) -> None:
    """QueryImageError for an image larger than ``MAX_IMAGE_PIXELS`` (a decompression bomb, or just too big)."""
    if width * height > MAX_IMAGE_PIXELS:
        raise QueryImageError(
            f"{name}: over the {MAX_IMAGE_PIXELS} pixels a query image may have ({width}×{height}); "
            "send a smaller image"
        )


def prepare_image(rgb: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """RGB [H, W, 3] -> [S, S, 3] as the decoder prepares a frame: converted to yuv420p (what a decoded
    frame is), FFmpeg ``scale`` to ``resize_plan``'s size (the decoder's own resize) and back to RGB, then
    ``finish_frames`` (centre crop or pad). A PNG of a video's frame comes out within ~1 grey level of the
    decoder's sample (tests/test_query_by_example.py)."""
    import av

    h, w = rgb.shape[:2]
    tw, th = resize_plan(w, h, cfg)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    graph = av.filter.Graph()
    src = graph.add_buffer(width=w, height=h, format="rgb24", time_base=1)
    # through yuv420p first, as a video frame is: the decoder scales the decoded yuv420p picture, then converts
    chain = [graph.add("format", "yuv420p"), graph.add("scale", f"{tw}:{th}"), graph.add("format", "rgb24")]
    for a, b in zip([src, *chain], [*chain, graph.add("buffersink")]):
        a.link_to(b)
    graph.configure()
    graph.push(frame)
    out = graph.pull().to_ndarray()[None]  # [1, th, tw, 3]
    if out.shape[1] < cfg.size or out.shape[2] < cfg.size:
        return resize_frames_torch(out, cfg)[0]
    return finish_frames(out, cfg)[0]


def image_vectors(clip: LoadedClip, images: list[str | Path | bytes | np.ndarray]) -> np.ndarray:
    """Unit image-tower vectors [N, D] of query images: paths, bytes, or RGB arrays [H, W, 3] as loaded
    (each is prepared here: pass no ``prepare_image`` output, it would be scaled twice)."""
    prepared = [prepare_image(im if isinstance(im, np.ndarray) else load_image(im), clip.preprocess) for im in images]
    return unit_rows(encode_images(clip, np.stack(prepared)))


def fuse(text_vec: np.ndarray, image_vec: np.ndarray, weight: float = DEFAULT_WEIGHT) -> np.ndarray:
    """normalise((1 − weight)·t + weight·i) of unit vectors [D] or [Q, D] (see the module doc)."""
    if not 0 <= weight <= 1:
        raise ValueError("the image weight must be in [0, 1]")
    v = (1.0 - weight) * unit_rows(np.atleast_2d(text_vec)) + weight * unit_rows(np.atleast_2d(image_vec))
    return unit_rows(v)


def search_image(
    searcher: Searcher,
    image: str | Path | bytes | np.ndarray,
    params: SearchParams | None = None,
    text: str | None = None,
    weight: float = DEFAULT_WEIGHT,
) -> list[Hit]:
    """Hits for one query image (a path, its bytes, or RGB [H, W, 3]); with ``text``, the fused query."""
    params = (params or SearchParams()).validate()
    q = image_vectors(searcher.clip, [image])  # [1, D]
    if text is not None:
        if not text.strip():
            raise ValueError("empty query")
        q = fuse(searcher.encode_queries([text]), q, weight)
    return searcher.search_vectors(q.astype(np.float32), params)[0]


# -- video clip -----------------------------------------------------------------------------------------
@dataclass
class ClipHit:
    video_id: str
    path: str
    score: float  # alignment score per query frame: Σ (cos − θ) over the path, less gaps, / query frames
    similarity: float  # mean cosine of the aligned frame pairs
    segment: tuple[float, float]  # the aligned segment in the video (s)
    query_segment: tuple[float, float]  # and in the query clip (s, on the clip's own time line)
    coverage: float  # share of the query's frames inside the aligned segment
    aligned: bool = True  # False: no frame pair passed θ; segment = the best frame's span
    metadata: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["segment"], d["query_segment"] = list(self.segment), list(self.query_segment)
        return d


def store_sampling(store: VideoStore) -> str:
    """The sampling plan most of the store's ok videos were indexed with (what a query clip is decoded with)."""
    rows = store.video_records('status == "ok"', fields=["video_id", "sampling"])
    counts = Counter(r.get("sampling") or "" for r in rows)
    counts.pop("", None)
    if not counts:
        raise ValueError(f"store {store.uri} has no indexed video: nothing to take a sampling plan from")
    return counts.most_common(1)[0][0]


def search_clip(
    searcher: Searcher,
    path: str | Path,
    start: float | None = None,
    end: float | None = None,
    params: ClipSearchParams | None = None,
    sampling: str | None = None,
    limit: DecodeLimit = DecodeLimit(),
    max_frames: int | None = None,
) -> list[ClipHit]:
    """Videos holding the clip (or a part of it), best first, with the aligned segments (see module doc).

    ``sampling``: how to sample the clip; None: the store's own (``store_sampling``). ``limit`` and
    ``max_frames``: the clip's decode time limit and most sampled frames (``retrieval/clip_frames.py``)."""
    params = (params or ClipSearchParams()).validate()
    plan = sampling or store_sampling(searcher.store)
    query, _ = clip_frames(searcher.clip, path, plan, start, end, limit, max_frames)
    return search_clip_frames(searcher, query, params)


def search_clip_frames(searcher: Searcher, query: FrameTable, params: ClipSearchParams) -> list[ClipHit]:
    """``search_clip`` for a query already decoded and encoded (its frame table)."""
    q = unit_rows(query.vectors)
    ranked = _frame_candidates(searcher, q, params)
    if not ranked:
        return []
    videos, frames = _videos_and_frames(searcher, ranked)
    hits = [_align_hit(vid, q, query, frames[vid], videos[vid], params) for vid in ranked if vid in frames]
    hits.sort(key=lambda h: (not h.aligned, -h.score, -h.similarity))
    return hits[: params.k]


def _frame_candidates(searcher: Searcher, q: np.ndarray, params: ClipSearchParams) -> list[str]:
    """The videos the query's frames hit most: Σ over query frames of the video's best frame cosine."""
    where = where_for(searcher.store, params.filter)
    weight: Counter = Counter()
    for i in range(0, len(q), 256):
        for found in searcher.backend.search_frames_grouped(q[i : i + 256], params.per_frame, where):
            for h in found:
                weight[h["video_id"]] += max(float(h["score"]), 0.0)
    return [v for v, _ in weight.most_common(params.candidates)]


def _videos_and_frames(searcher: Searcher, ids: list[str]) -> tuple[dict, dict[str, FrameTable]]:
    source = searcher.store if searcher.replica is None else searcher.replica
    videos = source.get_videos(ids, ["video_id", "path", "status", "metadata"])
    ok = [v for v in ids if videos.get(v, {}).get("status") == "ok"]
    return videos, searcher.frames.get(ok)


def _align_hit(vid: str, q: np.ndarray, query: FrameTable, frames: FrameTable, row: dict, params) -> ClipHit:
    sim = q @ unit_rows(frames.vectors).T  # [Tq, Tc]
    al = local_alignment(sim, AlignParams(threshold=params.threshold, gap=params.gap))
    path, meta = row.get("path", ""), dict(row.get("metadata") or {})
    if al is None:  # nothing passed θ: the best single frame pair, unaligned
        i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
        seg = (float(frames.t_start[j]), float(frames.t_end[j]))
        qseg = (float(query.t_start[i]), float(query.t_end[i]))
        return ClipHit(vid, path, 0.0, float(sim[i, j]), seg, qseg, 1 / len(q), False, meta)
    return ClipHit(
        vid,
        path,
        al.score / len(q),
        al.similarity,
        al.b_span(frames),
        al.a_span(query),
        (al.a[1] - al.a[0] + 1) / len(q),
        True,
        meta,
    )
