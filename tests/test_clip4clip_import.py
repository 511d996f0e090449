"""Import of official CLIP4Clip checkpoints, checked on a state dict written in the official key layout.

The layout below is spelled out from OpenAI's CLIP ``model.py`` and CLIP4Clip's ``modeling.py`` /
``module_cross.py`` (not derived from open_clip), at a small width: ViT with 2 layers of width 64, a text
tower of 4 layers of width 64, embed dim 64, and a 4-block ``transformerClip``. The head's output is compared
with a numpy re-computation of the official seqTransf forward pass.
"""

import numpy as np
import pytest
import torch

from vidseek.operators.clip4clip_import import import_clip4clip, infer_model_name
from vidseek.operators.heads import HeadMismatchError, load_head, read_head
from vidseek.operators.models import ModelEntry, register_model
from vidseek.operators.temporal import SeqLSTMHead, SeqTransfHead

W, EMBED, PATCH, IMAGE, CTX, VOCAB = 64, 64, 16, 32, 77, 49408
NAME = "c4c-small-test"
CONFIG = {
    "embed_dim": EMBED,
    "quick_gelu": True,
    "vision_cfg": {"image_size": IMAGE, "layers": 2, "width": W, "patch_size": PATCH, "head_width": 32},
    "text_cfg": {"context_length": CTX, "vocab_size": VOCAB, "width": W, "heads": 2, "layers": 4},
}


def block_shapes(prefix: str, w: int) -> dict:
    """One CLIP ResidualAttentionBlock (nn.MultiheadAttention + ln_1 + mlp c_fc/c_proj + ln_2)."""
    return {
        f"{prefix}.attn.in_proj_weight": (3 * w, w),
        f"{prefix}.attn.in_proj_bias": (3 * w,),
        f"{prefix}.attn.out_proj.weight": (w, w),
        f"{prefix}.attn.out_proj.bias": (w,),
        f"{prefix}.ln_1.weight": (w,),
        f"{prefix}.ln_1.bias": (w,),
        f"{prefix}.mlp.c_fc.weight": (4 * w, w),
        f"{prefix}.mlp.c_fc.bias": (4 * w,),
        f"{prefix}.mlp.c_proj.weight": (w, 4 * w),
        f"{prefix}.mlp.c_proj.bias": (w,),
        f"{prefix}.ln_2.weight": (w,),
        f"{prefix}.ln_2.bias": (w,),
    }


def official_shapes(
    head: str = "seqTransf",
    W=W,
    EMBED=EMBED,
    PATCH=PATCH,
    IMAGE=IMAGE,
    vision_layers=2,
    text_layers=4,
    vision_width=None,
) -> dict:
    VW = vision_width or W
    s = {
        "clip.visual.class_embedding": (VW,),
        "clip.visual.positional_embedding": ((IMAGE // PATCH) ** 2 + 1, VW),
        "clip.visual.conv1.weight": (VW, 3, PATCH, PATCH),
        "clip.visual.ln_pre.weight": (VW,),
        "clip.visual.ln_pre.bias": (VW,),
        "clip.visual.ln_post.weight": (VW,),
        "clip.visual.ln_post.bias": (VW,),
        "clip.visual.proj": (VW, EMBED),
        "clip.positional_embedding": (CTX, W),
        "clip.token_embedding.weight": (VOCAB, W),
        "clip.ln_final.weight": (W,),
        "clip.ln_final.bias": (W,),
        "clip.text_projection": (W, EMBED),
        "clip.logit_scale": (),
    }
    for i in range(vision_layers):
        s.update(block_shapes(f"clip.visual.transformer.resblocks.{i}", VW))
    for i in range(text_layers):
        s.update(block_shapes(f"clip.transformer.resblocks.{i}", W))
    if head in ("seqTransf", "seqLSTM"):
        s["frame_position_embeddings.weight"] = (CTX, W)  # nn.Embedding(context_length, hidden_size)
    if head == "seqTransf":
        for i in range(4):
            s.update(block_shapes(f"transformerClip.resblocks.{i}", W))
    if head == "seqLSTM":
        s.update(
            {
                "lstm_visual.weight_ih_l0": (4 * W, W),
                "lstm_visual.weight_hh_l0": (4 * W, W),
                "lstm_visual.bias_ih_l0": (4 * W,),
                "lstm_visual.bias_hh_l0": (4 * W,),
            }
        )
    return s


def official_state_dict(head: str = "seqTransf", seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in official_shapes(head).items():
        if k.endswith("logit_scale"):
            sd[k] = torch.tensor(float(np.log(100.0)))
        elif ".ln_" in k or k.startswith(("clip.ln_", "clip.visual.ln_")):
            sd[k] = (1.0 if k.endswith("weight") else 0.0) + 0.1 * torch.randn(shape, generator=g)
        else:
            fan_in = shape[-1] if len(shape) > 1 else W
            sd[k] = torch.randn(shape, generator=g) / np.sqrt(fan_in)
    sd["clip.visual.proj"] = sd["clip.visual.proj"].half()  # OpenAI weights come partly in fp16
    return sd


@pytest.fixture(scope="module", autouse=True)
def small_model():
    """Register the small configs for this module only (the registry is process-wide)."""
    import open_clip

    from vidseek.operators import models

    register_model(ModelEntry(name=NAME, arch=NAME, description="test: small OpenAI-layout CLIP"), config=CONFIG)
    register_model(ModelEntry(name=NAME + "-gelu", arch=NAME + "-gelu"), config={**CONFIG, "quick_gelu": False})
    yield
    for name in (NAME, NAME + "-gelu"):
        models._REGISTRY.pop(name, None)
        open_clip.factory._MODEL_CONFIGS.pop(name, None)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("c4c")
    sd = official_state_dict()
    torch.save(sd, root / "pytorch_model.bin")
    report = import_clip4clip(root / "pytorch_model.bin", root / "out", model_name=NAME, heads=2)
    return sd, report


# -------------------------------------------------------------- numpy reference of the official forward
def _ln(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def official_seqtransf_numpy(sd: dict, frames: np.ndarray, mask: np.ndarray, heads: int) -> np.ndarray:
    """CLIP4Clip ``_loose_similarity`` with sim_header == "seqTransf", video side, in float64 numpy."""
    p = {k: v.double().numpy() for k, v in sd.items() if not k.startswith("clip.")}
    b, t, d = frames.shape
    dh = d // heads
    x = frames + p["frame_position_embeddings.weight"][:t]
    key_bias = ((1.0 - mask) * -1000000.0)[:, None, None, :]  # extended_video_mask, on keys, every head
    n_blocks = len({k.split(".")[2] for k in p if k.startswith("transformerClip.")})
    for i in range(n_blocks):
        q = lambda name: p[f"transformerClip.resblocks.{i}.{name}"]  # noqa: E731
        y = _ln(x, q("ln_1.weight"), q("ln_1.bias"))
        qkv = y @ q("attn.in_proj_weight").T + q("attn.in_proj_bias")
        qq, kk, vv = (z.reshape(b, t, heads, dh).transpose(0, 2, 1, 3) for z in np.split(qkv, 3, axis=-1))
        s = qq @ kk.transpose(0, 1, 3, 2) / np.sqrt(dh) + key_bias
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        y = (a @ vv).transpose(0, 2, 1, 3).reshape(b, t, d)
        x = x + y @ q("attn.out_proj.weight").T + q("attn.out_proj.bias")
        y = _ln(x, q("ln_2.weight"), q("ln_2.bias"))
        h = y @ q("mlp.c_fc.weight").T + q("mlp.c_fc.bias")
        h = h * (1.0 / (1.0 + np.exp(-1.702 * h)))  # QuickGELU
        x = x + h @ q("mlp.c_proj.weight").T + q("mlp.c_proj.bias")
    out = x + frames  # residual to the original visual output
    out = out / np.linalg.norm(out, axis=-1, keepdims=True)
    m = mask[..., None]
    pooled = (out * m).sum(1) / m.sum(1)  # _mean_pooling_for_similarity_visual
    return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)


def frames_and_mask(seed: int = 0):
    rng = np.random.default_rng(seed)
    frames = rng.standard_normal((3, 12, W)) * 2.0
    mask = np.zeros((3, 12))
    for i, n in enumerate([12, 7, 1]):
        mask[i, :n] = 1.0
    return frames * mask[..., None], mask


# -------------------------------------------------------------- tests
def test_every_key_mapped_no_unused(imported):
    sd, report = imported
    assert report.unused == [] and report.unmatched == [] and report.shape_errors == []
    assert report.mapped == len(sd)
    assert report.head_keys == 1 + 4 * 12 and report.encoder_keys == len(sd) - report.head_keys
    assert report.head_type == "seqTransf" and report.model == NAME


def test_encoder_loads_with_pretrained_path_and_keeps_values(imported):
    from vidseek.operators.encode import load_clip

    sd, report = imported
    clip = load_clip(NAME, pretrained=report.encoder, device="cpu")
    model_sd = clip.model.state_dict()
    for k, v in sd.items():
        if k.startswith("clip."):
            assert model_sd[k[5:]].shape == v.shape and torch.equal(model_sd[k[5:]], v.float()), k
    assert report.stamp == clip.stamp() and report.stamp["weights"].startswith("sha256:")
    from open_clip.transformer import QuickGELU

    assert isinstance(clip.model.transformer.resblocks[0].mlp.gelu, QuickGELU)


def test_head_matches_numpy_official_forward(imported):
    sd, report = imported
    head, config = load_head(report.head, report.stamp)
    assert isinstance(head, SeqTransfHead) and head.heads == 2 and config["n_frames"] == 12
    for k, v in head.state_dict().items():
        src = "frame_position_embeddings.weight" if k.startswith("frame_") else "transformerClip." + k
        assert torch.equal(v, sd[src]), k
    frames, mask = frames_and_mask()
    with torch.no_grad():
        ours = head(torch.from_numpy(frames).float(), torch.from_numpy(mask).float()).double().numpy()
    ref = official_seqtransf_numpy(sd, frames, mask, heads=2)
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    assert not np.allclose(ref, official_seqtransf_numpy(sd, frames, mask, heads=1), atol=1e-3)  # heads matter


def test_default_heads_follow_official_rule(imported, tmp_path):
    """The official code uses heads = width // 64: one head at width 64."""
    sd, _ = imported
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "ddp.bin")  # DataParallel prefix too
    report = import_clip4clip(tmp_path / "ddp.bin", tmp_path / "out")  # model inferred from the weights
    assert report.model == NAME
    head, _ = load_head(report.head)
    assert head.heads == 1
    frames, mask = frames_and_mask(1)
    with torch.no_grad():
        ours = head(torch.from_numpy(frames).float(), torch.from_numpy(mask).float()).double().numpy()
    np.testing.assert_allclose(ours, official_seqtransf_numpy(sd, frames, mask, heads=1), atol=1e-4)


def test_head_refuses_other_encoder(imported, tiny_clip):
    _, report = imported
    with pytest.raises(HeadMismatchError, match=f"{NAME}.*tiny-random"):
        load_head(report.head, tiny_clip.stamp())
    assert read_head(report.head)["extra"]["import"]["mapped"] == report.mapped


def test_seqlstm_checkpoint(tmp_path):
    """seqLSTM maps onto SeqLSTMHead; its frame position embeddings are unused by the official forward."""
    sd = official_state_dict("seqLSTM")
    torch.save(sd, tmp_path / "lstm.bin")
    report = import_clip4clip(tmp_path / "lstm.bin", tmp_path / "out", model_name=NAME)
    assert report.head_type == "seqLSTM" and report.unused == ["frame_position_embeddings.weight"]
    head, _ = load_head(report.head, report.stamp)
    assert isinstance(head, SeqLSTMHead)
    # official: pack_padded_sequence → LSTM → pad_packed_sequence, + original, meanP
    frames, mask = (torch.from_numpy(a).float() for a in frames_and_mask(2))
    lstm = torch.nn.LSTM(W, W, batch_first=True)
    lstm.load_state_dict({k[len("lstm_visual.") :]: v for k, v in sd.items() if k.startswith("lstm_visual.")})
    with torch.no_grad():
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            frames, mask.sum(-1).long(), batch_first=True, enforce_sorted=False
        )
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=12)
        x = torch.nn.functional.normalize(out + frames, dim=-1) * mask[..., None]
        ref = torch.nn.functional.normalize(x.sum(1) / mask.sum(1, keepdim=True), dim=-1)
        assert torch.allclose(head(frames, mask), ref, atol=1e-5)


def test_meanp_checkpoint_gives_encoder_only(tmp_path):
    sd = official_state_dict("meanP")
    torch.save(sd, tmp_path / "meanp.bin")
    report = import_clip4clip(tmp_path / "meanp.bin", tmp_path / "out", model_name=NAME)
    assert report.head_type == "meanP" and report.head is None and report.unused == []
    assert (tmp_path / "out" / "encoder.safetensors").exists() and (tmp_path / "out" / "import.json").exists()


def test_incomplete_or_wrong_checkpoints_are_reported(tmp_path):
    sd = official_state_dict()
    broken = {k: v for k, v in sd.items() if k != "clip.ln_final.bias"}
    broken["transformerClip.resblocks.0.ln_1.weight"] = torch.ones(W + 1)
    broken["clip.extra_thing"] = torch.ones(3)
    torch.save(broken, tmp_path / "broken.bin")
    with pytest.raises(ValueError) as e:
        import_clip4clip(tmp_path / "broken.bin", tmp_path / "out", model_name=NAME)
    msg = str(e.value)
    assert "ln_final.bias (target)" in msg and "clip.extra_thing" in msg and "ln_1.weight (65,)" in msg
    torch.save(sd, tmp_path / "ok.bin")
    with pytest.raises(ValueError, match="QuickGELU"):  # OpenAI weights with exact GELU would be wrong
        import_clip4clip(tmp_path / "ok.bin", tmp_path / "out2", model_name=NAME + "-gelu")
    assert infer_model_name({k[5:]: v for k, v in sd.items() if k.startswith("clip.")}) == NAME
    for extra, why in (("clip.visual.conv2.weight", "3D linear-patch"), ("similarity_dense.weight", "tightTransf")):
        torch.save({**sd, extra: torch.ones(2)}, tmp_path / "other.bin")
        with pytest.raises(ValueError, match=why):
            import_clip4clip(tmp_path / "other.bin", tmp_path / "out3", model_name=NAME)


@pytest.mark.parametrize("patch,name", [(32, "ViT-B-32-quickgelu"), (16, "ViT-B-16-quickgelu")])
def test_infers_real_openai_architectures(patch, name):
    """Full-size official layouts (meta tensors: shapes only) resolve to open_clip's QuickGELU configs."""
    shapes = official_shapes(
        "seqTransf", W=512, EMBED=512, PATCH=patch, IMAGE=224, vision_layers=12, text_layers=12, vision_width=768
    )
    sd = {k[5:]: torch.empty(v, device="meta") for k, v in shapes.items() if k.startswith("clip.")}
    assert infer_model_name(sd) == name
