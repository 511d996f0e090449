"""Model registry, load_clip (offline: tags fail fast, local checkpoints work), ImageEncoder, text encoding."""

import logging
import time

import numpy as np
import pytest
import torch

from vidseek.operators.encode import ImageEncoder, encode_images, encode_texts, load_clip, tokenize
from vidseek.operators.models import ModelLoadError, get_model_entry, list_models
from vidseek.operators.rows import EncodeFailure, FrameRows, VideoEnd, from_batch, to_batch


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)


def test_registry_lists_tiny_random_before_open_clip_names():
    names = list_models()
    assert "tiny-random" in names and names.index("tiny-random") < names.index("ViT-B-32")
    entry = get_model_entry("tiny-random")
    assert entry.arch == "tiny-random" and entry.default_pretrained == "none"


def test_tiny_random_shape_and_determinism(tiny_clip, frames):
    """Two loads of the seeded random model give identical features (store stamps rely on it)."""
    other = load_clip("tiny-random", device="cpu")
    a, b = encode_images(tiny_clip, frames), encode_images(other, frames)
    assert a.shape == (4, 64) and a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.allclose(a[0], a[1])  # different pictures, different vectors
    assert tiny_clip.preprocess.size == 64 and tiny_clip.embed_dim == 64
    assert tiny_clip.stamp() == other.stamp() and tiny_clip.stamp()["weights"] == "none"
    assert np.array_equal(encode_texts(tiny_clip, ["a dog"]), encode_texts(other, ["a dog"]))


def test_unknown_model_is_a_helpful_error():
    with pytest.raises(ModelLoadError, match=r"unknown model 'no-such-model'.*tiny-random"):
        load_clip("no-such-model")


def test_unknown_tag_lists_known_tags():
    with pytest.raises(ModelLoadError, match=r"no pretrained tag 'bogus'.*laion2b_s34b_b79k.*local checkpoint"):
        load_clip("ViT-B-32", pretrained="bogus")


def test_unreachable_tag_fails_fast_with_checkpoint_hint():
    """No hub here: a real tag must fail in seconds and say how to use a local checkpoint instead."""
    t0 = time.monotonic()
    try:
        load_clip("ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu")
        pytest.skip("these weights are in the local hub cache")
    except ModelLoadError as e:
        msg = str(e)
    assert time.monotonic() - t0 < 10
    assert "laion2b_s34b_b79k" in msg and "--pretrained /path/to/" in msg and ".safetensors" in msg


def test_missing_checkpoint_file():
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_clip("tiny-random", pretrained="/nonexistent/dir/weights.pt")


def test_local_checkpoint_loads_its_weights(tiny_clip, frames, tmp_path):
    """Weights saved to a .pt load back via pretrained=path; changed weights really change the output."""
    state = {k: v.clone() for k, v in tiny_clip.model.state_dict().items()}
    same = tmp_path / "same.pt"
    torch.save(state, same)
    loaded = load_clip("tiny-random", pretrained=str(same), device="cpu")
    assert np.array_equal(encode_images(loaded, frames), encode_images(tiny_clip, frames))
    stamp = loaded.stamp()
    assert stamp["weights"].startswith("sha256:") and stamp != tiny_clip.stamp()

    state["visual.proj"] = state["visual.proj"] * -2.0
    changed = tmp_path / "changed.pt"
    torch.save(state, changed)
    other = load_clip("tiny-random", pretrained=str(changed), device="cpu")
    assert np.allclose(encode_images(other, frames), -2.0 * encode_images(tiny_clip, frames), atol=1e-5)
    assert other.stamp()["weights"] != stamp["weights"]  # the content hash tells the files apart


@pytest.fixture(scope="module")
def encoder():
    return ImageEncoder("tiny-random", device="cpu", batch_size=2)


def test_image_encoder_encodes_frames(encoder, frames):
    emb = encoder(frames)
    assert emb.shape == (4, 64) and emb.dtype == np.float32 and np.abs(emb).sum(1).min() > 0
    assert np.allclose(emb, encode_images(encoder.clip, frames), atol=1e-5)
    assert encoder(frames[:0]).shape == (0, 64)


def _stage_batch(frames):
    rows = FrameRows.of_video("a", "a.mp4", np.arange(2), np.zeros(2), np.zeros(2), np.ones(2), frames[:2])
    more = FrameRows.of_video("b", "b.mp4", np.arange(2), np.zeros(2), np.zeros(2), np.ones(2), frames[2:])
    both = FrameRows(
        *(
            np.concatenate([getattr(rows, k), getattr(more, k)])
            for k in ("video_id", "path", "idx", "t", "t_start", "t_end", "payload")
        )
    )
    return to_batch(both, [VideoEnd("a", "a.mp4", "ok", n_frames=2)])


def test_encode_stage_encodes_frame_rows_and_passes_records(frames):
    from vidseek.pipeline.stages.encode import EncodeStage

    stage = EncodeStage(model="tiny-random", device="cpu", batch_size=2)
    encoded, records = from_batch(stage(_stage_batch(frames)))
    assert list(encoded.video_id) == ["a", "a", "b", "b"] and encoded.payload.shape == (4, 64)
    assert np.allclose(encoded.payload, encode_images(stage.encoder.clip, frames), atol=1e-5)
    assert records == [VideoEnd("a", "a.mp4", "ok", n_frames=2)]


def test_encode_stage_turns_an_encoder_error_into_the_videos_failures(frames, monkeypatch):
    from vidseek.pipeline.stages.encode import EncodeStage

    stage = EncodeStage(model="tiny-random", device="cpu")

    def out_of_memory(batch):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(stage, "encoder", type("Oom", (), {"__call__": staticmethod(out_of_memory), "embed_dim": 64})())
    encoded, records = from_batch(stage(_stage_batch(frames)))
    assert len(encoded) == 0 and encoded.payload.shape == (0, 64)
    assert records[0] == VideoEnd("a", "a.mp4", "ok", n_frames=2)
    assert [(r.video_id, r.path) for r in records[1:]] == [("a", "a.mp4"), ("b", "b.mp4")]
    assert all(isinstance(r, EncodeFailure) and "CUDA out of memory" in r.error for r in records[1:])


def test_image_encoder_other_sizes(encoder, tiny_clip):
    big = np.random.default_rng(1).integers(0, 256, (2, 96, 128, 3), dtype=np.uint8)
    out = encoder(big)  # 96x128 is resized to 64
    assert out.shape == (2, 64) and np.abs(out).sum(1).min() > 0
    with pytest.raises(ValueError, match="frames must be"):
        encode_images(tiny_clip, big[..., 0])


LONG = " ".join(["red", "green", "blue", "dog", "cat"] * 10)  # 50 one-token words; context is 32 tokens


def test_long_text_fixture_is_long(tiny_clip):
    assert tiny_clip.context_length == 32
    assert len(tiny_clip.tokenizer.encode(LONG)) == 50  # every word is one BPE token


def test_long_text_truncate_warns(tiny_clip, caplog):
    with caplog.at_level(logging.WARNING, logger="vidseek.operators.encode"):
        short = encode_texts(tiny_clip, ["a red dog"])
    assert not caplog.records and short.shape == (1, 64)
    with caplog.at_level(logging.WARNING, logger="vidseek.operators.encode"):
        out = encode_texts(tiny_clip, [LONG], long_text="truncate")
    assert any("query of 52 tokens truncated" in r.getMessage() for r in caplog.records)
    words = LONG.split()  # truncation keeps the first 30 words (+ start/end tokens)
    assert np.allclose(out, encode_texts(tiny_clip, [" ".join(words[:30])]), atol=1e-5)


def test_long_text_chunk_averages_normalised_windows(tiny_clip):
    words = LONG.split()
    tokens, owners = tokenize(tiny_clip, ["a cat", LONG], long_text="chunk")
    assert owners == [1, 2] and tokens.shape == (3, 32)
    out = encode_texts(tiny_clip, ["a cat", LONG], long_text="chunk")
    pieces = encode_texts(tiny_clip, [" ".join(words[:30]), " ".join(words[30:])])
    unit = pieces / np.linalg.norm(pieces, axis=1, keepdims=True)
    assert np.allclose(out[1], unit.mean(0), atol=1e-5)  # mean of unit vectors of 30- and 20-word windows
    short = encode_texts(tiny_clip, ["a cat"])[0]  # a text that fits stays raw, as in a batch without chunks
    assert np.allclose(out[0], short, atol=1e-5)


def test_long_text_error_raises(tiny_clip):
    with pytest.raises(ValueError, match="52 tokens, model context is 32"):
        encode_texts(tiny_clip, ["fine", LONG], long_text="error")
