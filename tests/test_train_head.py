"""Temporal-head training (issue 5): loss, an order task meanP cannot solve, checkpoints, stamps, resume.

Order task: K random "object" directions; a video is 6 noisy frames of object X then 6 of object Y, captioned
"X then Y" (text vectors from the tiny model's frozen text tower). Reversing a video's frames gives an
instance of "Y then X" with the very same frame set, so meanP gives both the same vector and picks the same
caption for both: exactly 50% on {videos + their reversals}. A temporal head can tell them apart.
"""

import json

import numpy as np
import pytest
import torch

from vidseek.operators.aggregate import mean_pool
from vidseek.operators.encode import encode_texts
from vidseek.operators.frame_table import FrameTable
from vidseek.operators.heads import (
    HeadMismatchError,
    LearnedHead,
    head_id,
    learned_vector,
    learned_vectors,
    load_head,
    read_head,
    save_head,
)
from vidseek.operators.temporal import SeqLSTMHead, SeqTransfHead
from vidseek.pipeline.train_head import TrainConfig, contrastive_loss, lr_lambda, param_groups, train_head
from vidseek.store.video_store import VideoStore

WORDS = ["red", "green", "blue", "yellow"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: thread start-up costs more than it saves, and badly so on a shared machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


RUN = dict(frames=12, batch_size=32, lr=1e-3, warmup=0.1, val_fraction=0.0, progress=False, verbose=False)


def order_videos(rng, objects, n_per_pair, noise=0.05):
    """{(x, y): [n, 12, D]} raw frame vectors: 6 frames of object x then 6 of object y, plus noise."""
    out = {}
    for x in range(len(objects)):
        for y in range(len(objects)):
            if x != y:
                clean = np.concatenate([np.repeat(objects[x][None], 6, 0), np.repeat(objects[y][None], 6, 0)])
                out[(x, y)] = (clean[None] + noise * rng.standard_normal((n_per_pair, 12, objects.shape[1]))) * 3.0
    return out


@pytest.fixture(scope="module")
def order_task(tmp_path_factory, tiny_clip):
    """A Milvus Lite store of order-task training videos and its caption file (JSONL)."""
    root = tmp_path_factory.mktemp("order")
    rng = np.random.default_rng(0)
    objects = rng.standard_normal((len(WORDS), 64))
    objects /= np.linalg.norm(objects, axis=1, keepdims=True)
    train = order_videos(rng, objects, n_per_pair=8)
    store = VideoStore(str(root / "store.db"))
    store.ensure_model(tiny_clip.stamp())
    rows, lines = [], []
    for (x, y), vids in train.items():
        for i, v in enumerate(vids.astype(np.float32)):
            vid = f"o{x}{y}_{i}"
            t = np.arange(12, dtype=np.float32)
            store.insert_frames(vid, FrameTable.of(np.arange(12), t + 0.5, t, t + 1, v))
            rows.append(
                {
                    "video_id": vid,
                    "path": f"/videos/{vid}.mp4",
                    "n_frames": 12,
                    "duration": 12.0,
                    "mean_vec": mean_pool(torch.from_numpy(v)[None])[0].numpy(),
                }
            )
            lines.append(json.dumps({"video": vid, "caption": f"{WORDS[x]} then {WORDS[y]}"}))
    store.upsert_videos(rows)
    store.close()
    (root / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return {
        "root": root,
        "store": str(root / "store.db"),
        "dataset": str(root / "captions.jsonl"),
        "objects": objects,
        "rng": rng,
    }


def pair_accuracy(vectors, labels, text):
    """Share of videos whose own caption text[(x, y)] beats the reversed one text[(y, x)] (ties count wrong)."""
    ok = [float(v @ text[(x, y)] > v @ text[(y, x)]) for v, (x, y) in zip(vectors, labels)]
    return float(np.mean(ok))


def test_the_light_config_frames_default_is_the_heads():
    """pipeline/train_config.py repeats operators/heads.py DEFAULT_FRAMES so the CLI need not import torch."""
    from vidseek.operators.heads import DEFAULT_FRAMES
    from vidseek.pipeline import train_config

    assert train_config.DEFAULT_FRAMES == DEFAULT_FRAMES == TrainConfig("d").frames


def test_one_step_lowers_loss(tiny_clip):
    torch.manual_seed(0)
    head = SeqTransfHead.from_clip_text(tiny_clip.model)
    g = torch.Generator().manual_seed(0)
    frames, mask = torch.randn(8, 12, 64, generator=g), torch.ones(8, 12)
    mask[3, 5:] = 0
    text = torch.nn.functional.normalize(torch.randn(8, 64, generator=g), dim=-1)
    opt = torch.optim.AdamW(param_groups(head, 0.2), lr=1e-4, eps=1e-6)
    before = contrastive_loss(text, head(frames, mask), 100.0)
    opt.zero_grad()
    before.backward()
    torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
        after = contrastive_loss(text, head(frames, mask), 100.0)
    assert float(after) < float(before.detach())
    # weight decay only on matrices: biases, LayerNorm and position embeddings have none
    no_decay = {id(p) for p in param_groups(head, 0.2)[1]["params"]}
    assert id(head.frame_position_embeddings.weight) in no_decay and id(head.resblocks[0].ln_1.weight) in no_decay
    assert id(head.resblocks[0].attn.in_proj_weight) not in no_decay


def test_loss_is_symmetric_and_skips_identical_captions():
    g = torch.Generator().manual_seed(1)
    t = torch.nn.functional.normalize(torch.randn(4, 16, generator=g), dim=-1)
    v = torch.nn.functional.normalize(torch.randn(4, 16, generator=g), dim=-1)
    logits = 10 * t @ v.T
    ref = (
        torch.nn.functional.cross_entropy(logits, torch.arange(4))
        + torch.nn.functional.cross_entropy(logits.T, torch.arange(4))
    ) / 2
    assert torch.allclose(contrastive_loss(t, v, 10.0), ref)
    # two items with the same caption string are not each other's negatives
    masked = contrastive_loss(t, v, 10.0, torch.tensor([0, 0, 1, 2]))
    assert masked < contrastive_loss(t, v, 10.0, torch.tensor([0, 1, 2, 3]))


def test_schedule_warms_up_then_decays():
    f = lr_lambda(100, 10)
    assert 0 < f(0) < f(5) < f(9) <= 1 and f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5, abs=0.02) and f(99) < 0.01


def test_order_task_head_beats_mean_pooling(order_task, tiny_clip, tmp_path):
    """Trained from a real store; meanP is exactly 50% on videos + reversals, the head well above."""
    out = tmp_path / "head.pt"
    res = train_head(
        TrainConfig(
            dataset=order_task["dataset"],
            store=order_task["store"],
            out=str(out),
            epochs=15,
            seed=0,
            **{**RUN, "lr": 3e-3},
        )
    )
    assert res.finished and out.exists() and res.n_train_videos == 96
    losses = [h["loss"] for h in res.history]
    assert losses[-1] < 0.7 * losses[0]

    objects = order_task["objects"]
    test = order_videos(np.random.default_rng(123), objects, n_per_pair=4)
    videos, labels = [], []
    for (x, y), vids in test.items():
        for v in vids:
            videos += [v, v[::-1].copy()]  # the reversal: same frames, "y then x"
            labels += [(x, y), (y, x)]
    keys = sorted({k for k in labels})
    tv = encode_texts(tiny_clip, [f"{WORDS[x]} then {WORDS[y]}" for x, y in keys])
    text = {k: t / np.linalg.norm(t) for k, t in zip(keys, tv)}

    means = mean_pool(torch.from_numpy(np.stack(videos)).float()).numpy()
    np.testing.assert_allclose(means[0::2], means[1::2], atol=1e-6)  # identical frame sets: identical vectors
    mean_acc = pair_accuracy(means, labels, text)
    head, config = load_head(out, tiny_clip.stamp())
    assert config["n_frames"] == 12 and config["head_type"] == "seqTransf"
    head_acc = pair_accuracy(learned_vectors(head, videos), labels, text)
    print(
        f"order task: head {head_acc:.3f}, meanP {mean_acc:.3f}, losses {losses[0]:.3f} -> {losses[-1]:.3f}, "
        f"{res.clips_per_s:.0f} clips/s"
    )
    assert mean_acc == 0.5
    assert head_acc >= 0.9
    extra = read_head(out)["extra"]
    assert extra["train_config"]["epochs"] == 15 and len(extra["history"]) == 15


def test_validation_split_reports_head_and_meanp(order_task, tmp_path, capsys):
    res = train_head(
        TrainConfig(
            dataset=order_task["dataset"],
            store=order_task["store"],
            out=str(tmp_path / "h.pt"),
            epochs=2,
            seed=3,
            **{**RUN, "val_fraction": 0.25, "verbose": True},
        )
    )
    assert res.n_val_videos == 24 and res.n_train_videos == 72 and res.n_val_captions == 24
    for h in res.history:
        assert set(h["val"]) >= {"R@1", "R@5", "R@10", "MdR"} and h["val"]["n"] == 24
    assert res.baseline["n"] == 24
    printed = capsys.readouterr().out
    assert "epoch 2: loss" in printed and "val R@1" in printed and "meanP R@1" in printed
    extra = read_head(tmp_path / "h.pt")["extra"]
    assert extra["val"] == res.history[-1]["val"] and extra["val_mean_pool"] == res.baseline


def test_deterministic_and_resumable(order_task, tmp_path):
    cfg = dict(
        dataset=order_task["dataset"], store=order_task["store"], epochs=2, seed=7, **{**RUN, "val_fraction": 0.1}
    )
    a = train_head(TrainConfig(out=str(tmp_path / "a.pt"), **cfg))
    sa = read_head(tmp_path / "a.pt")["state_dict"]
    # an independent run of the first epoch, stopped, then resumed: the same curve and head, bit for bit
    c_out = tmp_path / "c.pt"
    first = train_head(TrainConfig(out=str(c_out), stop_after=1, **cfg))
    partial = tmp_path / "c.pt.partial"
    assert not first.finished and partial.exists() and not c_out.exists() and len(first.history) == 1
    with pytest.raises(ValueError, match="lr"):
        train_head(TrainConfig(out=str(c_out), resume=True, **{**cfg, "lr": 5e-4}))
    resumed = train_head(TrainConfig(out=str(c_out), resume=True, **cfg))
    assert resumed.finished and resumed.resumed_from == 1 and not partial.exists()
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in a.history]
    sc = read_head(c_out)["state_dict"]
    assert all(torch.equal(sa[k], sc[k]) for k in sa)


def test_missing_videos_named_or_decoded(order_task, tiny_clip, h264_mp4, tmp_path):
    ds = tmp_path / "caps.csv"
    ds.write_text(
        "video,caption\no01_0,red then green\no10_0,green then red\no02_1,red then blue\n"
        f"{h264_mp4.stem},a test pattern\n"
    )
    with pytest.raises(ValueError, match=h264_mp4.stem):
        train_head(TrainConfig(dataset=str(ds), store=order_task["store"], out=str(tmp_path / "x.pt"), epochs=1, **RUN))
    res = train_head(
        TrainConfig(
            dataset=str(ds),
            store=order_task["store"],
            video_root=str(h264_mp4.parent),
            out=str(tmp_path / "x.pt"),
            epochs=1,
            head_type="seqLSTM",
            **RUN,
        )
    )
    assert res.finished and res.n_train_videos == 4
    head, config = load_head(tmp_path / "x.pt", tiny_clip.stamp())
    assert isinstance(head, SeqLSTMHead) and config["head_type"] == "seqLSTM"


def test_save_load_round_trip_and_head_id(tiny_clip, tmp_path):
    torch.manual_seed(0)
    frames = torch.randn(2, 9, 64)
    mask = torch.ones(2, 9)
    mask[1, 4:] = 0
    for head in (SeqTransfHead.from_clip_text(tiny_clip.model), SeqLSTMHead(64)):
        path = tmp_path / f"{type(head).__name__}.pt"
        hid = save_head(path, head, {"n_frames": 8}, tiny_clip.stamp(), {"note": "x"})
        loaded, config = load_head(path, tiny_clip.stamp())
        assert config["n_frames"] == 8 and hid == head_id(path) and hid.startswith("sha256:")
        with torch.no_grad():
            assert torch.allclose(head.eval()(frames, mask), loaded(frames, mask), atol=1e-6)
        assert type(loaded) is type(head)
    assert head_id(tmp_path / "SeqTransfHead.pt") != head_id(tmp_path / "SeqLSTMHead.pt")


def test_learned_vector_samples_uniformly(tiny_clip):
    torch.manual_seed(0)
    head = SeqTransfHead.from_clip_text(tiny_clip.model).eval()
    vectors = np.random.default_rng(0).standard_normal((30, 64)).astype(np.float32)
    v = learned_vector(head, vectors, n_frames=12)
    idx = [1, 3, 6, 8, 11, 13, 16, 18, 21, 23, 26, 28]  # chunk midpoints of 30 frames in 12 chunks
    with torch.no_grad():
        ref = head(torch.from_numpy(vectors[idx])[None])[0].numpy()
    assert v.shape == (64,) and np.allclose(v, ref, atol=1e-6) and abs(np.linalg.norm(v) - 1) < 1e-5
    short = learned_vector(head, vectors[:5])  # fewer than 12 frames: all of them
    with torch.no_grad():
        assert np.allclose(short, head(torch.from_numpy(vectors[:5])[None])[0].numpy(), atol=1e-6)
    batch = learned_vectors(head, [vectors, vectors[:5]])  # padded together, same vectors
    assert np.allclose(batch, np.stack([v, short]), atol=1e-5)


def test_stamp_refusal_names_both_models(tiny_clip, tmp_path):
    path = tmp_path / "h.pt"
    save_head(path, SeqLSTMHead(64), {}, tiny_clip.stamp())
    other = {**tiny_clip.stamp(), "model": "testbed", "weights": "sha256:0123456789abcdef"}
    with pytest.raises(HeadMismatchError, match="tiny-random.*testbed"):
        load_head(path, other)
    with pytest.raises(ValueError, match="embed_dim"):
        LearnedHead(path, {**tiny_clip.stamp(), "embed_dim": 512})
    agg = LearnedHead(path, tiny_clip.stamp())
    vec, hid = agg(torch.randn(7, 64))  # what the index writer calls per video
    assert vec.shape == (64,) and hid == head_id(path)
    with pytest.raises(ValueError, match="not a vidseek head"):
        torch.save({"x": 1}, tmp_path / "junk.pt")
        load_head(tmp_path / "junk.pt")


def test_apply_head_to_store(order_task, tiny_clip, tmp_path):
    import shutil

    from vidseek.pipeline.learned import apply_head_to_store

    uri = str(tmp_path / "copy.db")
    shutil.copytree(order_task["store"], uri) if __import__("os").path.isdir(order_task["store"]) else shutil.copy(
        order_task["store"], uri
    )
    path = tmp_path / "h.pt"
    torch.manual_seed(0)
    save_head(path, SeqTransfHead.from_clip_text(tiny_clip.model), {}, tiny_clip.stamp())
    with VideoStore(uri) as store:
        before = store.get_videos(["o01_0"], ["video_id", "mean_vec", "path", "n_frames"])["o01_0"]
        agg = LearnedHead(path, store.model_stamp())
        assert apply_head_to_store(store, agg, batch=50) == 96
        assert apply_head_to_store(store, agg, only_missing=True) == 0
        after = store.get_videos(
            ["o01_0"], ["video_id", "mean_vec", "learned_vec", "learned_head", "path", "n_frames"]
        )["o01_0"]
        frames = store.frames_of(["o01_0"])["o01_0"].vectors
    assert after["learned_head"] == agg.id and after["path"] == before["path"] and after["n_frames"] == 12
    np.testing.assert_allclose(after["mean_vec"], before["mean_vec"], atol=1e-6)
    np.testing.assert_allclose(after["learned_vec"], agg(frames)[0], atol=1e-5)


def test_nearest_pair_order_batches_confusable_captions_together():
    from vidseek.pipeline.train_head import nearest_pair_order

    rng = np.random.default_rng(0)
    base = torch.nn.functional.normalize(torch.randn(6, 16), dim=-1)
    # three tight pairs (a caption and its near-twin, like "X then Y" / "Y then X"), plus an exact duplicate
    text = torch.cat([base, torch.nn.functional.normalize(base + 0.05 * torch.randn(6, 16), dim=-1), base[:1]])
    order = nearest_pair_order(text, rng)
    assert sorted(order.tolist()) == list(range(13))  # a permutation: no video dropped or repeated
    pairs = {frozenset(order[i : i + 2].tolist()) for i in range(0, 12, 2)}
    twins = {frozenset((i, i + 6)) for i in range(1, 6)}
    assert len(twins & pairs) >= 4, pairs  # near-twins end up side by side
    assert frozenset((0, 12)) not in pairs  # identical captions are never each other's negative


def test_the_cli_trains_the_head_its_options_describe(order_task, tmp_path):
    """`vidseek train` hands each option to TrainConfig (apps/cli/options.py TRAIN): non-default values give
    the very head train_head gives with them."""
    from typer.testing import CliRunner

    from vidseek.apps.cli.main import app

    values = dict(head_type="seqLSTM", epochs=2, batch_size=32, lr=1e-3, weight_decay=0.1, warmup=0.2, seed=7)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in values.items()]
    out = tmp_path / "cli.pt"
    args = ["train", "--dataset", order_task["dataset"], "--store", order_task["store"], "--out", str(out)]
    r = CliRunner().invoke(app, [*args, *flags, "--hard-negatives", "--val-fraction=0.25", "--json"])
    assert r.exit_code == 0, r.output
    cli = json.loads(r.stdout.splitlines()[-1])
    ref = train_head(
        TrainConfig(
            dataset=order_task["dataset"],
            store=order_task["store"],
            out=str(tmp_path / "ref.pt"),
            hard_negatives=True,
            val_fraction=0.25,
            progress=False,
            verbose=False,
            **values,
        )
    )
    assert [h["loss"] for h in cli["history"]] == [h["loss"] for h in ref.history] and cli["n_val_videos"] == 24
    got, want = read_head(out), read_head(tmp_path / "ref.pt")
    assert got["config"]["head_type"] == "seqLSTM" and got["extra"]["train_config"]["hard_negatives"] is True
    assert all(torch.equal(got["state_dict"][k], want["state_dict"][k]) for k in want["state_dict"])


def test_the_cli_names_a_missing_store_and_the_way_out(tmp_path, order_task):
    from typer.testing import CliRunner

    from vidseek.apps.cli.main import app

    missing = tmp_path / "nowhere.db"
    args = ["train", "--dataset", order_task["dataset"], "--store", str(missing), "--out", str(tmp_path / "h.pt")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and f"store {missing} does not exist" in r.output and "--video-root" in r.output
    assert not (tmp_path / "h.pt").exists()
