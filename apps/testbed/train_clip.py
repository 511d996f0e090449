"""Train the ``testbed`` CLIP on frame-level captions of a synthetic training world (no CLIP weights can be
downloaded here: docs/methods.md "Quality without real weights").

    python -m vidseek.apps.testbed.train_clip --out operators/weights/testbed.safetensors --seed 0

1. Generate a training world (seed ``1000 + seed``; the eval world uses another seed) of H.264 clips in
   which objects stream in and out, one to three at a time.
2. Decode every frame with the project's decoder (``vidseek.operators.decode``) at the model's own preprocessing,
   so training sees the same compression and resizing as indexing will.
3. Caption each frame from the measured ground truth: the objects present in the frame (at most two, "a big
   red circle and a small blue square", random order) or, half the time, one of them. Half the batches
   are colour-grouped (hard negatives that differ in shape and size).
4. Train open_clip's ``testbed`` architecture (``operators/model_configs/testbed.json``) with a symmetric
   InfoNCE in which every pair describing the same set of objects counts as a positive (a batch holds
   duplicates); AdamW, warm-up then cosine, gradient clipping; fixed seed and thread count (2 by default).
   A rerun in a new process does **not** reproduce the weights bit for bit: the decoded training frames
   differed between fresh processes (3 runs, 3 hashes; step-0 loss 2.859 vs 2.862) although the world's
   files were identical; the cause is not found. Within one process the same inputs give the same steps.
5. Save the weights in fp16 safetensors (open_clip loads them into an fp32 model).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidseek.apps.testbed.render import COLOURS
from vidseek.apps.testbed.world import TYPES, frame_objects, generate_training_world, phrase, type_key
from vidseek.operators.contrastive import symmetric_infonce
from vidseek.operators.decode import VideoDecoder
from vidseek.operators.models import open_clip_module
from vidseek.operators.preprocess import PreprocessConfig, normalize_frames

open_clip = open_clip_module()  # open_clip, with vidseek's built-in architectures added

ARCH = "testbed"
TRAIN_WORLD_SEED_OFFSET = 1000


def build_frames(world_dir: Path, manifest: dict, pre: PreprocessConfig) -> tuple[np.ndarray, list, np.ndarray]:
    """Decoded frames [N, S, S, 3] uint8, the object types present in each, and each frame's clip index."""
    fps = manifest["fps"]
    dec = VideoDecoder(pre, f"fps:{fps}", chunk_frames=256)
    frames, objs, clip_of = [], [], []
    for ci, clip in enumerate(manifest["clips"]):
        for chunk in dec.decode(str(world_dir / clip["video"])):
            for img, t in zip(chunk.frames, chunk.t):
                present = frame_objects(clip, int(round(float(t) * fps)))
                if not present:
                    continue  # nothing to describe
                frames.append(img)
                objs.append(tuple(sorted(TYPES.index(type_key(tr)) for tr in present)))
                clip_of.append(ci)
    return np.stack(frames), objs, np.array(clip_of)


def sample_captions(
    objs: list[tuple], rng: np.random.Generator, focus: list[int | None] | None = None, single: float = 0.5
) -> tuple[list[str], list[frozenset]]:
    """One caption per frame and the set of objects it names (the key that decides positives).

    With probability ``single`` a caption names one present object (``focus`` when given), else all of them
    (at most two, in random order, keeping ``focus``).
    """
    caps, keys = [], []
    for j, o in enumerate(objs):
        f = focus[j] if focus is not None else None
        if len(o) > 1 and rng.random() < single:
            o = (f if f is not None else o[int(rng.integers(len(o)))],)
        else:
            o = tuple(rng.permutation(o))
            if len(o) > 2:
                rest = [i for i in o if i != f]
                o = tuple(rng.permutation([f, rest[0]] if f is not None else o[:2]))
        caps.append(" and ".join(phrase(TYPES[i]) for i in o))
        keys.append(frozenset(o))
    return caps, keys


def hard_batch(rng: np.random.Generator, batch: int, by_colour: dict) -> tuple[np.ndarray, list[int]]:
    """Frames showing objects of two random colours, each captioned by such an object: the in-batch
    negatives then differ mostly in shape and size, which uniform batches (colour separates most pairs)
    teach slowly."""
    colours = rng.choice(len(by_colour), 2, replace=False)
    pool = np.concatenate([by_colour[int(c)] for c in colours])  # [(frame, type)] rows
    rows = pool[rng.integers(len(pool), size=batch)]
    return rows[:, 0], [int(t) for t in rows[:, 1]]


def multi_positive_infonce(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, keys: list) -> torch.Tensor:
    """Symmetric InfoNCE over a batch [B, D] x [B, D]; pairs with equal keys are all positives."""
    ids = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    kid = torch.tensor([ids[k] for k in keys])
    return symmetric_infonce(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), scale, kid, same_key="positive")


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


@torch.no_grad()
def heldout_accuracy(model, tokenizer, frames: torch.Tensor, objs: list, pre: PreprocessConfig) -> dict:
    """Held-out frames. ``full``: the best of all full captions of these frames names exactly the frame's
    objects; ``type`` (and per attribute): single-object frames, best of the 96 one-object phrases."""
    model.eval()
    img = torch.cat(
        [
            F.normalize(model.encode_image(normalize_frames(frames[lo : lo + 512], pre, torch.float32)), dim=-1)
            for lo in range(0, len(frames), 512)
        ]
    )  # [N, D]
    cands = sorted(set(objs))
    t = F.normalize(model.encode_text(tokenizer([" and ".join(phrase(TYPES[i]) for i in o) for o in cands])), dim=-1)
    best = (img @ t.T).argmax(1)
    out = {"full": float(np.mean([cands[int(b)] == o for b, o in zip(best, objs)]))}
    single = np.array([len(o) == 1 for o in objs])
    t1 = F.normalize(model.encode_text(tokenizer([phrase(x) for x in TYPES])), dim=-1)  # [96, D]
    pred = (img[torch.from_numpy(single)] @ t1.T).argmax(1).numpy()
    true = np.array([o[0] for o, s in zip(objs, single) if s])
    out["type"] = float(np.mean(pred == true))
    for j, name in enumerate(("size", "colour", "shape")):
        out[name] = float(np.mean([TYPES[a][j] == TYPES[b][j] for a, b in zip(pred, true)]))
    model.train()
    return {k: round(v, 4) for k, v in out.items()}


def train(
    out: Path,
    seed: int,
    steps: int,
    batch: int,
    lr: float,
    threads: int,
    n_clips: int,
    clip_s: float,
    world_dir: Path | None,
    hard: float = 0.5,
) -> dict:
    t_start, cpu0 = time.time(), time.process_time()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model, pre, frames_np, objs, clip_of = _world_and_model(seed, n_clips, clip_s, world_dir)
    t_data = time.time() - t_start
    held = clip_of >= n_clips - 2  # last two clips: held-out check
    frames = torch.from_numpy(frames_np)
    tr_idx = np.flatnonzero(~held)
    va_frames, va_objs = frames[held], [objs[i] for i in np.flatnonzero(held)]
    print(f"training frames {len(tr_idx)}, held-out {int(held.sum())}, data {t_data:.1f}s", flush=True)

    tokenizer = open_clip.get_tokenizer(ARCH)
    opt = _optimizer(model, lr)
    warmup = max(1, steps // 20)
    model.train()
    batches = _Batches(rng, tr_idx, objs, batch, hard)
    for step in range(steps):
        idx, focus = batches.draw()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup)
        loss = _train_step(model, opt, tokenizer, pre, frames, objs, idx, focus, rng)
        if step % 100 == 0 or step == steps - 1:
            if step % 400 == 0 and step:
                print("held-out", heldout_accuracy(model, tokenizer, va_frames, va_objs, pre), flush=True)
            print(
                f"step {step:4d} loss {loss.item():.3f} scale {model.logit_scale.exp().item():.1f} "
                f"t {time.time() - t_start:.0f}s",
                flush=True,
            )
    acc = heldout_accuracy(model, tokenizer, va_frames, va_objs, pre)
    wall = time.time() - t_start
    info = {
        "seed": seed,
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "hard": hard,
        "threads": threads,
        "n_clips": n_clips,
        "clip_s": clip_s,
        "train_frames": int(len(tr_idx)),
        "heldout": acc,
        "arch": ARCH,
        "command": f"python -m vidseek.apps.testbed.train_clip --out {out} --seed {seed}",
    }
    save(model, out, info)  # no wall time in the file: a rerun with the same arguments gives the same bytes
    print(json.dumps({**info, "wall_s": round(wall, 1), "cpu_s": round(time.process_time() - cpu0, 1)}), flush=True)
    return info


def _world_and_model(
    seed: int, n_clips: int, clip_s: float, world_dir: Path | None
) -> tuple[torch.nn.Module, PreprocessConfig, np.ndarray, list, np.ndarray]:
    """A freshly initialised model (under the caller's torch seed), its preprocessing, and the decoded frames
    of a training world generated in ``world_dir`` (default: a temporary directory, removed afterwards)."""
    tmp = None
    if world_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="vidseek-trainworld-"))
        world_dir = tmp
    try:
        manifest = generate_training_world(world_dir, TRAIN_WORLD_SEED_OFFSET + seed, n_clips=n_clips, duration=clip_s)
        model = open_clip.create_model(ARCH)  # random init under the seed above
        model.visual.to(memory_format=torch.channels_last)  # ~1.5x faster convolutions on CPU
        pre = PreprocessConfig.from_open_clip(open_clip.get_model_preprocess_cfg(model))
        frames_np, objs, clip_of = build_frames(world_dir, manifest, pre)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return model, pre, frames_np, objs, clip_of


def _optimizer(model: torch.nn.Module, lr: float) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (not biases, norms or embeddings)."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )


class _Batches:
    """Frame indices per step: with probability ``hard`` a colour-grouped batch (``hard_batch``, each frame
    captioned by its focus object), else the next slice of a shuffled pass over the training frames."""

    def __init__(self, rng: np.random.Generator, tr_idx: np.ndarray, objs: list, batch: int, hard: float) -> None:
        self.rng, self.tr_idx, self.batch, self.hard = rng, tr_idx, batch, hard
        colour_of = {i: list(COLOURS).index(t[1]) for i, t in enumerate(TYPES)}
        self.by_colour = {
            c: np.array([(i, k) for i in tr_idx for k in objs[i] if colour_of[k] == c]) for c in range(len(COLOURS))
        }
        self.order = rng.permutation(tr_idx)
        self.pos = 0

    def draw(self) -> tuple[np.ndarray, list[int] | None]:
        if self.rng.random() < self.hard:
            return hard_batch(self.rng, self.batch, self.by_colour)
        if self.pos + self.batch > len(self.order):
            self.order, self.pos = self.rng.permutation(self.tr_idx), 0
        idx = self.order[self.pos : self.pos + self.batch]
        self.pos += self.batch
        return idx, None


def _train_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    tokenizer,
    pre: PreprocessConfig,
    frames: torch.Tensor,
    objs: list,
    idx: np.ndarray,
    focus: list[int] | None,
    rng: np.random.Generator,
) -> torch.Tensor:
    """One optimiser step on the frames ``idx`` (captions drawn, frames mirrored at random); the loss."""
    caps, keys = sample_captions([objs[i] for i in idx], rng, focus)
    x = frames[idx]  # [B, S, S, 3] uint8
    flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
    x = torch.where(flip[:, None, None, None], x.flip(2), x)  # mirror left-right (no shape changes)
    uniq = list(dict.fromkeys(caps))
    where = torch.tensor([uniq.index(c) for c in caps])
    x = normalize_frames(x, pre, torch.float32).contiguous(memory_format=torch.channels_last)  # [B, 3, S, S]
    img = model.encode_image(x)  # [B, D]
    txt = model.encode_text(tokenizer(uniq))[where]  # [B, D]: each distinct caption encoded once
    loss = multi_positive_infonce(img, txt, model.logit_scale.exp(), keys)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))
    return loss


def save(model: torch.nn.Module, out: Path, info: dict) -> None:
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out), metadata={k: str(v) for k, v in info.items()})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="checkpoint path (.safetensors)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--n-clips", type=int, default=48, help="training-world clips")
    p.add_argument("--clip-s", type=float, default=45.0, help="seconds per training-world clip")
    p.add_argument("--hard", type=float, default=0.5, help="share of colour-grouped (hard-negative) batches")
    p.add_argument("--world-dir", type=Path, default=None, help="keep the training world here (default: temp)")
    a = p.parse_args(argv)
    train(a.out, a.seed, a.steps, a.batch, a.lr, a.threads, a.n_clips, a.clip_s, a.world_dir, a.hard)


if __name__ == "__main__":
    main()
