"""``vidseek train``: train a CLIP4Clip temporal head (seqTransf / seqLSTM) with CLIP frozen (docs/methods.md).

Data: a caption dataset in any ``load_captions`` layout. Frame vectors come from a store (the raw CLIP
image features the index wrote, matched to the dataset's videos by id, absolute path or file stem, like
``vidseek eval``); videos not in the store are decoded and encoded on the fly from ``video_root`` (kept in
memory for the process), else the run stops naming them. Per video, ``frames`` vectors are sampled at
uniform chunk midpoints (all of them, padded and masked, when a video has fewer). Caption features come
from the frozen text tower once, encoded exactly as ``vidseek search`` encodes queries (full context, no
CLIP4Clip 32-token cut), so that training and search see the same text vectors.

Loss: symmetric InfoNCE, mean of the cross-entropies over rows (text→video) and columns (video→text) of
logit_scale · cos(text, video), logit_scale = exp(CLIP's logit_scale) clamped ≤ 100 and frozen.

Batches: every epoch draws **one random caption per training video** and shuffles the videos, so a batch
never holds the same video twice (MSR-VTT has 20 captions per video: iterating over captions would put
duplicates of a video in one batch as false negatives). Off-diagonal pairs whose captions are the very same
string are left out of the negatives too (they are not negatives).

Hard negatives (``hard_negatives=True``, off by default as in CLIP4Clip): each epoch's order is built from
pairs of videos whose drawn captions are nearest neighbours in text space (greedy, from a shuffled start), so
every batch holds each video next to the one it is easiest to confuse with — e.g. "X then Y" beside
"Y then X". Random batches almost never hold such a pair once the dataset outgrows the batch.

Optimiser: AdamW (β 0.9/0.999, ε 1e-6 as CLIP4Clip's BertAdam), lr 1e-4, weight decay 0.2 on weight
matrices only (not biases, LayerNorm, or position embeddings), linear warm-up over the first 10% of steps
then cosine decay to 0, gradient-norm clip 1.0, batch 128, 5 epochs.

Validation: a seeded split by video (default 10%); each epoch reports text→video R@1/5/10 and MdR (ranks
pessimistic on ties) over the held-out captions against the held-out videos, for the head and for meanP
over the same sampled frames (the baseline the head has to beat).

Reproducible: the same seed gives the same loss curve (head init, split and each epoch's caption draw and
order derive from the seed and the epoch number) — bit for bit on CPU (tested); on CUDA deterministic
algorithms are requested (``CUBLAS_WORKSPACE_CONFIG`` is set when unset), not verified on a GPU here.
Resumable: after every epoch ``OUT.partial`` holds head, optimiser, scheduler, RNG state and history;
``resume=True`` continues from it and ends with the same head an uninterrupted run gives (a partial written
with other settings or other data is refused). The final checkpoint (``vidseek.operators.heads.save_head``) records
the embedding model stamp, the training config and the validation metrics; the partial is then removed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from vidseek.operators.aggregate import mean_pool, pad_frames
from vidseek.operators.contrastive import symmetric_infonce
from vidseek.operators.heads import HEAD_TYPES, new_head, sample_frames, save_head
from vidseek.operators.thinning import expand_merged
from vidseek.pipeline.index_config import IndexConfig
from vidseek.pipeline.train_config import TrainConfig
from vidseek.retrieval.datasets import find_video, load_captions
from vidseek.retrieval.metrics import ranks_from_scores, retrieval_metrics
from vidseek.store.video_store import VideoLookup

PARTIAL_FORMAT = "vidseek-train-partial"
_EMBEDDERS: dict[tuple, object] = {}  # on-the-fly frame vectors of unindexed files, per (model, sampling)


@dataclass
class TrainResult:
    out: str | None  # final checkpoint, None when stopped early (see partial)
    head_id: str
    history: list[dict]  # per epoch: epoch, loss, lr, val (metrics), seconds, clips_per_s
    baseline: dict | None  # meanP validation metrics over the same frames
    n_train_videos: int
    n_val_videos: int
    n_train_captions: int
    n_val_captions: int
    device: str
    clips_per_s: float
    resumed_from: int = 0
    finished: bool = True
    partial: str = ""
    skipped: list[str] = field(default_factory=list)  # videos that could not be decoded (left out)

    def render(self, epochs: bool = True) -> str:
        lines = [
            f"trained on {self.n_train_videos} videos ({self.n_train_captions} captions), validated on "
            f"{self.n_val_videos} videos ({self.n_val_captions} captions), {self.device}, "
            f"{self.clips_per_s:.0f} clips/s"
            + (f", resumed after epoch {self.resumed_from}" if self.resumed_from else "")
        ]
        lines += [format_epoch(h, self.baseline) for h in self.history] if epochs else []
        if self.skipped:
            lines.append(f"{len(self.skipped)} videos could not be decoded and were left out: {self.skipped[:5]}")
        lines.append(
            f"head → {self.out} ({self.head_id})"
            if self.finished
            else f"stopped after epoch {self.history[-1]['epoch'] if self.history else 0}; "
            f"continue with --resume (partial checkpoint {self.partial})"
        )
        return "\n".join(lines)


def format_epoch(h: dict, baseline: dict | None = None) -> str:
    s = f"epoch {h['epoch']}: loss {h['loss']:.4f}  lr {h['lr']:.2e}"
    if h.get("val"):
        v = h["val"]
        s += f" | val R@1 {v['R@1']:.1f} R@5 {v['R@5']:.1f} R@10 {v['R@10']:.1f} MdR {v['MdR']:g}"
        if baseline:
            s += (
                f" (meanP R@1 {baseline['R@1']:.1f} R@5 {baseline['R@5']:.1f} R@10 {baseline['R@10']:.1f} "
                f"MdR {baseline['MdR']:g})"
            )
    return s


# ---------------------------------------------------------------------------------------- data


def _embedder(clip, sampling: str):
    """One FileEmbedder per (model, sampling) for this process: frames of a file are encoded once."""
    key = (clip.name, clip.stamp()["weights"], sampling)
    if key not in _EMBEDDERS:
        from vidseek.operators.file_embedder import FileEmbedder

        _EMBEDDERS[key] = FileEmbedder(clip, sampling)
    return _EMBEDDERS[key]


def collect_frames(
    videos: list[str],
    clip,
    k: int,
    store=None,
    video_root: str | None = None,
    sampling: str = IndexConfig.sampling,
    dataset: str = "dataset",
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Sampled raw frame vectors [≤k, D] per dataset video, and the videos whose decoding failed."""
    out: dict[str, np.ndarray] = {}
    missing = list(videos)
    if store is not None:
        lookup = VideoLookup(store)
        found = {v: sid for v in videos if (sid := lookup.find(v)) is not None}
        ids = sorted(set(found.values()))
        frames: dict[str, dict] = {}
        for i in range(0, len(ids), 1024):
            frames.update(store.frames_of(ids[i : i + 1024]))
        for v, sid in found.items():
            if sid in frames and len(frames[sid]):
                out[v] = sample_frames(expand_merged(frames[sid].vectors, frames[sid].merged), k)
        missing = [v for v in videos if v not in out]
    failed: list[str] = []
    if missing and video_root is None:
        where = f"store {store.uri}" if store is not None else "no store given"
        raise ValueError(
            f"{len(missing)} of {len(videos)} videos of {dataset} have no frame vectors ({where}); "
            f"first: {missing[:10]}. Index them first (`vidseek index`) or pass --video-root to "
            "decode and encode them on the fly"
        )
    if missing:
        paths = {v: find_video(video_root, v) for v in missing}
        absent = [v for v, p in paths.items() if p is None]
        if absent:
            raise FileNotFoundError(
                f"{len(absent)} videos of {dataset} are neither in the store nor under "
                f"{video_root}; first: {absent[:10]}"
            )
        from vidseek.operators.decode import DecodeError

        for v, p in paths.items():
            try:
                out[v] = sample_frames(_embedder(clip, sampling)(p), k)
            except DecodeError:
                failed.append(v)
    return out, failed


def padded(per_video: list[np.ndarray], dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames [V, T, D] and the heads' float mask [V, T] (``vidseek.operators.aggregate.pad_frames``)."""
    frames, mask = pad_frames(per_video, dim)
    return frames, mask.float()


@torch.no_grad()
def text_features(clip, captions: list[str], batch: int = 512) -> torch.Tensor:
    from vidseek.operators.encode import encode_texts

    out = [torch.from_numpy(encode_texts(clip, captions[i : i + batch])) for i in range(0, len(captions), batch)]
    return F.normalize(torch.cat(out).float(), dim=-1)


# ---------------------------------------------------------------------------------------- training


def contrastive_loss(
    text: torch.Tensor, video: torch.Tensor, scale: float, caption_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE over unit text [B, D] and video [B, D] (pair i positive); pairs of one caption id
    are ignored, neither positive nor negative (operators/contrastive.py)."""
    return symmetric_infonce(text, video, scale, caption_ids, same_key="ignored")


def nearest_pair_order(text: torch.Tensor, rng: np.random.Generator, candidates: int = 8) -> np.ndarray:
    """A permutation of the rows of unit ``text`` [V, D] in which positions 2i and 2i+1 are (greedily) nearest
    neighbours with different vectors; slicing it into even-sized batches keeps every pair together."""
    v = len(text)
    m = min(candidates, v - 1)
    near = np.zeros((v, m), dtype=np.int64)
    for lo in range(0, v, 1024):  # [block, V] similarities at a time: memory O(V · block)
        sims = text[lo : lo + 1024] @ text.T
        sims[sims > 1 - 1e-6] = -2.0  # itself, and identical captions (not negatives of each other)
        near[lo : lo + 1024] = torch.topk(sims, m, dim=1).indices.cpu().numpy()
    placed = np.zeros(v, dtype=bool)
    out: list[int] = []
    for u in rng.permutation(v):
        if placed[u]:
            continue
        placed[u] = True
        out.append(int(u))
        partner = next((int(w) for w in near[u] if not placed[w]), None)
        if partner is not None:
            placed[partner] = True
            out.append(partner)
    return np.array(out, dtype=np.int64)


def param_groups(head: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices only: not on biases, LayerNorm or embeddings."""
    decay, no_decay = [], []
    for name, p in head.named_parameters():
        (no_decay if p.ndim < 2 or "embedding" in name or "ln_" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Linear warm-up to 1 over warmup_steps (never a zero-lr step), then cosine decay towards 0."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


@torch.no_grad()
def evaluate_split(video_vecs: torch.Tensor, text: torch.Tensor, gt: np.ndarray) -> dict:
    """R@1/5/10, MdR, MnR of captions [Q, D] against videos [V, D] (both unit), pessimistic ranks."""
    scores = (text @ video_vecs.T).double().cpu().numpy()
    return retrieval_metrics(ranks_from_scores(scores, gt))


@torch.no_grad()
def pool_with(head, frames: torch.Tensor, mask: torch.Tensor, device, batch: int = 512) -> torch.Tensor:
    head.eval()
    out = [
        head(frames[i : i + batch].to(device), mask[i : i + batch].to(device)).float().cpu()
        for i in range(0, len(frames), batch)
    ]
    return torch.cat(out) if out else torch.zeros(0, frames.shape[-1])


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _fingerprint(cfg: TrainConfig, stamp: dict) -> dict:
    """What a partial checkpoint must agree on to be resumed (anything that changes the run's course)."""
    keep = (
        "split",
        "head_type",
        "frames",
        "epochs",
        "batch_size",
        "lr",
        "weight_decay",
        "warmup",
        "grad_clip",
        "val_fraction",
        "seed",
        "sampling",
        "hard_negatives",
    )
    return {
        **{k: getattr(cfg, k) for k in keep},
        "dataset_sha256": _file_digest(cfg.dataset),
        "model": stamp.get("model"),
        "weights": stamp.get("weights"),
    }


def _save_partial(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _resume_state(partial: Path, fingerprint: dict, say) -> dict | None:
    """The partial checkpoint to continue from (None: start over); refuses one written with other settings."""
    if not partial.exists():
        say(f"no partial checkpoint at {partial}: starting from scratch")
        return None
    state = torch.load(partial, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != PARTIAL_FORMAT:
        raise ValueError(f"{partial}: not a vidseek training checkpoint")
    diff = sorted(k for k in fingerprint if state["fingerprint"].get(k) != fingerprint[k])
    if diff:
        raise ValueError(
            f"cannot resume from {partial}: it was written with other settings ({', '.join(diff)} "
            "differ); use the same options, or delete it to start over"
        )
    return state


def _load_clip_for(cfg: TrainConfig, store):
    from vidseek.operators.encode import load_clip
    from vidseek.store.video_store import check_same_model

    if store is None:
        return load_clip(cfg.model or IndexConfig.model, cfg.pretrained, cfg.device)
    store.require_ready()
    stamp = store.model_stamp()
    clip = load_clip(cfg.model or stamp["model"], cfg.pretrained if cfg.model else stamp.get("pretrained"), cfg.device)
    check_same_model(stamp, clip.stamp(), store.uri)
    return clip


@dataclass
class _Split:
    """The usable videos split by video (seeded), captions following their video, as training tensors."""

    train_videos: list[str]
    val_videos: list[str]
    text: torch.Tensor  # [C, D] unit caption features, frozen
    train_caps: list[np.ndarray]  # per training video: its caption rows in ``text``
    tr_frames: torch.Tensor  # [V, T, D]
    tr_mask: torch.Tensor  # [V, T]
    val_pairs: list[tuple[int, int]]  # (caption row, validation video column)
    val: tuple | None = None  # (frames, mask, text, gt) of the validation captions against their videos
    baseline: dict | None = None  # meanP over the validation videos' sampled frames

    @property
    def n_train_captions(self) -> int:
        return sum(len(c) for c in self.train_caps)


def _split_videos(cfg: TrainConfig, videos: list[str]) -> tuple[list[str], list[str]]:
    """(training videos, validation videos), a seeded split by video."""
    perm = np.random.default_rng(cfg.seed).permutation(len(videos))
    n_val = int(round(cfg.val_fraction * len(videos))) if cfg.val_fraction > 0 else 0
    if cfg.val_fraction > 0 and len(videos) >= 3:
        n_val = max(1, n_val)
    if len(videos) - n_val < 2:
        raise ValueError(f"{len(videos)} usable videos: need at least 2 for training after the validation split")
    return [videos[i] for i in sorted(perm[n_val:])], [videos[i] for i in sorted(perm[:n_val])]


def _split(cfg: TrainConfig, clip, pairs: list, frames_by_video: dict[str, np.ndarray]) -> _Split:
    videos = [v for v in dict.fromkeys(p.video for p in pairs) if v in frames_by_video]
    pairs = [p for p in pairs if p.video in frames_by_video]
    dim = clip.embed_dim
    train_videos, val_videos = _split_videos(cfg, videos)
    captions = list(dict.fromkeys(p.caption for p in pairs))
    cap_index = {c: i for i, c in enumerate(captions)}
    text = text_features(clip, captions)  # [C, D] unit, frozen
    caps_of: dict[str, list[int]] = {}
    for p in pairs:
        caps_of.setdefault(p.video, []).append(cap_index[p.caption])
    tr_frames, tr_mask = padded([frames_by_video[v] for v in train_videos], dim)
    split = _Split(train_videos, val_videos, text, [np.array(caps_of[v]) for v in train_videos], tr_frames, tr_mask, [])
    if val_videos:
        va_frames, va_mask = padded([frames_by_video[v] for v in val_videos], dim)
        col = {v: i for i, v in enumerate(val_videos)}
        split.val_pairs = [(c, col[v]) for v in val_videos for c in caps_of[v]]
        va_text = text[[c for c, _ in split.val_pairs]]
        va_gt = np.array([g for _, g in split.val_pairs], dtype=np.int64)
        split.val = (va_frames, va_mask, va_text, va_gt)
        split.baseline = evaluate_split(mean_pool(va_frames, va_mask), va_text, va_gt)
    return split


@dataclass
class _Run:
    """The head being trained, its optimiser and schedule, and where it stands."""

    head: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scale: float  # CLIP's logit scale, frozen
    steps_per_epoch: int
    data_digest: str  # which videos it trains and validates on (a resumed run must see the same)
    history: list[dict] = field(default_factory=list)
    start: int = 0  # epochs done before this process
    train_time: float = 0.0
    train_clips: int = 0


def _new_run(cfg: TrainConfig, clip, split: _Split) -> _Run:
    torch.manual_seed(cfg.seed)
    head = new_head(cfg.head_type, clip.model, width=clip.embed_dim).float().to(clip.device)
    head.requires_grad_(True)
    scale = float(clip.model.logit_scale.detach().float().exp().clamp(max=100.0))
    optimizer = torch.optim.AdamW(param_groups(head, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-6)
    steps_per_epoch = math.ceil(len(split.train_videos) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total, int(round(cfg.warmup * total))))
    digest = hashlib.sha256(json.dumps([split.train_videos, split.val_videos]).encode()).hexdigest()[:16]
    return _Run(head, optimizer, scheduler, scale, steps_per_epoch, digest)


def _resume(run: _Run, state: dict, partial: Path, say) -> None:
    if state.get("data_digest") != run.data_digest:
        raise ValueError(
            f"cannot resume from {partial}: the usable training/validation videos changed since "
            "(store or video root content); delete it to start over"
        )
    run.head.load_state_dict(state["head"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    run.history, run.start = list(state["history"]), int(state["epoch"])
    say(f"resuming from {partial} after epoch {run.start}")


def _train_epoch(cfg: TrainConfig, run: _Run, split: _Split, epoch: int, device, text_dev: torch.Tensor) -> dict:
    """One epoch (one random caption per training video, in a seeded order); its history entry."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng([cfg.seed, epoch])
    pick = torch.tensor([int(c[rng.integers(len(c))]) for c in split.train_caps], device=device)  # 1 per video
    order = torch.from_numpy(
        nearest_pair_order(split.text[pick.cpu()], rng)
        if cfg.hard_negatives
        else rng.permutation(len(split.train_videos))
    ).to(device)
    run.head.train()
    t0, losses = time.perf_counter(), []
    bar = tqdm(
        range(run.steps_per_epoch),
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        disable=not cfg.progress,
        leave=False,
        unit="step",
    )
    for s in bar:
        idx = order[s * cfg.batch_size : (s + 1) * cfg.batch_size]
        cap = pick[idx]
        video = run.head(split.tr_frames[idx], split.tr_mask[idx])
        loss = contrastive_loss(text_dev[cap], video, run.scale, cap)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.head.parameters(), cfg.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    run.train_time += seconds
    run.train_clips += len(split.train_videos)
    entry = {
        "epoch": epoch + 1,
        "loss": float(np.mean(losses)),
        "lr": float(run.scheduler.get_last_lr()[0]),
        "seconds": round(seconds, 3),
        "clips_per_s": round(len(split.train_videos) / max(seconds, 1e-9), 1),
        "val": None,
    }
    if split.val is not None:
        va_frames, va_mask, va_text, va_gt = split.val
        entry["val"] = evaluate_split(pool_with(run.head, va_frames, va_mask, device), va_text, va_gt)
    return entry


def _partial_state(run: _Run, fingerprint: dict, epoch: int) -> dict:
    return {
        "format": PARTIAL_FORMAT,
        "fingerprint": fingerprint,
        "data_digest": run.data_digest,
        "epoch": epoch,
        "head": {k: v.detach().cpu() for k, v in run.head.state_dict().items()},
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "history": run.history,
    }


def _train_epochs(cfg: TrainConfig, run: _Run, split: _Split, device, partial: Path, fingerprint: dict, say) -> None:
    """The epochs this run does (all left, or ``stop_after``), a partial checkpoint after each; the process's
    torch thread count and determinism setting are restored afterwards."""
    split.tr_frames, split.tr_mask = split.tr_frames.to(device), split.tr_mask.to(device)
    text_dev = split.text.to(device)
    last = cfg.epochs if cfg.stop_after is None else min(cfg.epochs, run.start + cfg.stop_after)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        for epoch in range(run.start, last):
            entry = _train_epoch(cfg, run, split, epoch, device, text_dev)
            run.history.append(entry)
            say(format_epoch(entry, split.baseline))
            _save_partial(partial, _partial_state(run, fingerprint, epoch + 1))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _frames_for_training(cfg: TrainConfig, videos: list[str], say):
    """(clip, the partial checkpoint to resume or None, sampled frames per video, videos that failed to
    decode), the store opened only while its frames are read."""
    store = None
    if cfg.store is not None:
        from vidseek.store.video_store import VideoStore

        store = VideoStore(cfg.store, cfg.prefix)
    try:
        clip = _load_clip_for(cfg, store)
        state = _resume_state(_partial_path(cfg), _fingerprint(cfg, clip.stamp()), say) if cfg.resume else None
        frames_by_video, skipped = collect_frames(
            videos, clip, cfg.frames, store, cfg.video_root, cfg.sampling, cfg.dataset
        )
    finally:
        if store is not None:
            store.close()  # Milvus Lite: one process per store; free it for search/index while we train
    return clip, state, frames_by_video, skipped


def _partial_path(cfg: TrainConfig) -> Path:
    out = Path(cfg.out)
    return out.with_name(out.name + ".partial")


def train_head(cfg: TrainConfig, echo: Callable[[str], None] | None = None) -> TrainResult:
    """Train (or resume) a temporal head; see the module notes. ``echo`` prints epoch summaries."""
    if cfg.head_type not in HEAD_TYPES:
        raise ValueError(f"unknown head type {cfg.head_type!r}; choose from {list(HEAD_TYPES)}")
    if cfg.frames < 1 or cfg.epochs < 1 or cfg.batch_size < 2 or not 0 <= cfg.val_fraction < 1:
        raise ValueError("need frames ≥ 1, epochs ≥ 1, batch size ≥ 2 and 0 ≤ val fraction < 1")
    say = echo or (print if cfg.verbose else (lambda s: None))
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (before its first use)
    pairs = load_captions(cfg.dataset, cfg.split)
    clip, state, frames_by_video, skipped = _frames_for_training(cfg, list(dict.fromkeys(p.video for p in pairs)), say)
    stamp, partial = clip.stamp(), _partial_path(cfg)
    fingerprint = _fingerprint(cfg, stamp)
    split = _split(cfg, clip, pairs, frames_by_video)
    run = _new_run(cfg, clip, split)
    if state is not None:
        _resume(run, state, partial, say)
    resumed_from = run.start
    _train_epochs(cfg, run, split, clip.device, partial, fingerprint, say)
    result = TrainResult(
        out=None,
        head_id="",
        history=run.history,
        baseline=split.baseline,
        n_train_videos=len(split.train_videos),
        n_val_videos=len(split.val_videos),
        n_train_captions=split.n_train_captions,
        n_val_captions=len(split.val_pairs),
        device=str(clip.device),
        clips_per_s=round(run.train_clips / run.train_time, 1) if run.train_time else 0.0,
        resumed_from=resumed_from,
        finished=bool(run.history) and run.history[-1]["epoch"] >= cfg.epochs,
        partial=str(partial),
        skipped=skipped,
    )
    if result.finished:
        _save_final(cfg, run, result, stamp, partial)
    return result


def _save_final(cfg: TrainConfig, run: _Run, result: TrainResult, stamp: dict, partial: Path) -> None:
    """The final checkpoint (stamp, config, validation metrics); the partial one is removed."""
    extra = {
        "train_config": asdict(cfg),
        "history": run.history,
        "val": run.history[-1]["val"],
        "val_mean_pool": result.baseline,
        "data": {
            "train_videos": result.n_train_videos,
            "val_videos": result.n_val_videos,
            "train_captions": result.n_train_captions,
            "val_captions": result.n_val_captions,
            "skipped": result.skipped,
        },
        "logit_scale": run.scale,
    }
    run.head.cpu()
    out = Path(cfg.out)
    result.head_id = save_head(out, run.head, {"n_frames": cfg.frames, "head_type": cfg.head_type}, stamp, extra)
    result.out = str(out)
    partial.unlink(missing_ok=True)
