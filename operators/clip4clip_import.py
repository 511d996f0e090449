"""``vidseek import-clip4clip``: official CLIP4Clip checkpoints → an open_clip encoder + a vidseek head.

The official ``pytorch_model.bin`` (github.com/ArrowLuo/CLIP4Clip) holds
- ``clip.*``: the CLIP model in OpenAI's layout (``clip.visual.*``, ``clip.transformer.resblocks.*``,
  ``clip.token_embedding.weight``, ``clip.positional_embedding``, ``clip.ln_final.*``, ``clip.text_projection``,
  ``clip.logit_scale``). open_clip's ``CLIP`` uses the very same names (its OpenAI loader,
  ``build_model_from_openai_state_dict``, loads such a state dict as is), so the prefix is dropped and every
  tensor is checked against an open_clip model of the matching ``-quickgelu`` architecture (OpenAI weights
  were trained with QuickGELU);
- seqTransf: ``frame_position_embeddings.weight`` [77, width] and ``transformerClip.resblocks.{0..3}.*``
  (``attn.in_proj_weight/bias``, ``attn.out_proj.*``, ``ln_1``, ``mlp.c_fc``, ``mlp.c_proj``, ``ln_2``; QuickGELU;
  ``heads = width // 64`` as the official code sets it) → ``SeqTransfHead`` with ``quick_gelu=True``;
  ``clip.input_resolution/context_length/vocab_size`` (JIT metadata, when present) are ignored;
- seqLSTM: ``lstm_visual.*`` → ``SeqLSTMHead`` (its ``frame_position_embeddings`` is unused by the official
  forward and reported as such); meanP: no head tensors (encoder only).

Outputs in ``out/``: ``encoder.safetensors`` (use with ``--model NAME --pretrained out/encoder.safetensors``),
``head.pt`` (``vidseek.operators.heads`` checkpoint stamped with that encoder) and ``import.json`` (the report).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from vidseek.operators.heads import save_head
from vidseek.operators.models import open_clip_module
from vidseek.operators.temporal import SeqLSTMHead, SeqTransfHead

open_clip = open_clip_module()  # open_clip, with vidseek's built-in architectures added

IGNORED = ("input_resolution", "context_length", "vocab_size")  # JIT-export metadata, not weights


@dataclass
class ImportReport:
    source: str
    model: str
    head_type: str  # seqTransf | seqLSTM | meanP (CLIP4Clip's sim_header)
    encoder: str
    head: str | None
    mapped: int
    encoder_keys: int
    head_keys: int
    unused: list[str] = field(default_factory=list)  # source tensors that went nowhere
    unmatched: list[str] = field(default_factory=list)  # target tensors without a source (import fails)
    shape_errors: list[str] = field(default_factory=list)
    stamp: dict = field(default_factory=dict)

    def render(self) -> str:
        lines = [
            f"{self.source}: CLIP4Clip {self.head_type}, encoder {self.model}",
            f"mapped {self.mapped} tensors ({self.encoder_keys} encoder, {self.head_keys} head); "
            f"unused {len(self.unused)}, unmatched {len(self.unmatched)}",
        ]
        lines += [f"  unused: {k}" for k in self.unused]
        lines += [f"  unmatched: {k}" for k in self.unmatched] + [f"  shape: {s}" for s in self.shape_errors]
        lines.append(f"encoder → {self.encoder}  (use --model {self.model} --pretrained {self.encoder})")
        if self.head:
            lines.append(f"head → {self.head}  (use --head {self.head})")
        return "\n".join(lines)


def load_official(path: str | Path) -> dict[str, torch.Tensor]:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not sd:
        raise ValueError(f"{path}: not a state dict")
    if all(k.startswith("module.") for k in sd):  # saved from DataParallel / DDP
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    if not any(k.startswith("clip.") for k in sd):
        raise ValueError(f"{path}: no 'clip.*' tensors: not a CLIP4Clip checkpoint")
    return sd


def _count_blocks(sd: dict, prefix: str) -> int:
    return len({k[len(prefix) :].split(".")[0] for k in sd if k.startswith(prefix)})


def openai_arch(clip_sd: dict) -> dict:
    """The architecture an OpenAI-layout CLIP state dict implies (as open_clip's OpenAI loader infers it)."""
    if "visual.proj" not in clip_sd:
        raise ValueError("only ViT CLIP4Clip checkpoints are supported (no clip.visual.proj)")
    patch = int(clip_sd["visual.conv1.weight"].shape[-1])
    grid = round((clip_sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    return {
        "embed_dim": int(clip_sd["text_projection"].shape[1]),
        "vision": {
            "width": int(clip_sd["visual.conv1.weight"].shape[0]),
            "patch_size": patch,
            "image_size": patch * grid,
            "layers": _count_blocks(clip_sd, "visual.transformer.resblocks."),
        },
        "text": {
            "width": int(clip_sd["ln_final.weight"].shape[0]),
            "context_length": int(clip_sd["positional_embedding"].shape[0]),
            "vocab_size": int(clip_sd["token_embedding.weight"].shape[0]),
            "layers": _count_blocks(clip_sd, "transformer.resblocks."),
        },
    }


def _config_matches(cfg: dict, arch: dict) -> bool:
    v, t = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    size = v.get("image_size")
    size = size[0] if isinstance(size, (list, tuple)) else size
    return (
        cfg.get("embed_dim") == arch["embed_dim"]
        and size == arch["vision"]["image_size"]
        and v.get("width") == arch["vision"]["width"]
        and v.get("patch_size") == arch["vision"]["patch_size"]
        and v.get("layers") == arch["vision"]["layers"]
        and t.get("width", 512) == arch["text"]["width"]
        and t.get("context_length", 77) == arch["text"]["context_length"]
        and t.get("vocab_size", 49408) == arch["text"]["vocab_size"]
        and t.get("layers", 12) == arch["text"]["layers"]
        and "hf_model_name" not in t
        and "timm_model_name" not in v
    )


def infer_model_name(clip_sd: dict) -> str:
    """The open_clip ``-quickgelu`` architecture (or registered config with quick_gelu) matching the weights."""
    arch = openai_arch(clip_sd)
    names = [
        n
        for n in open_clip.list_models()
        if (cfg := open_clip.get_model_config(n)) and cfg.get("quick_gelu") and _config_matches(cfg, arch)
    ]
    if not names:
        raise ValueError(
            f"no open_clip architecture with quick_gelu matches these weights ({arch}); register one "
            "(vidseek.operators.models.register_model) and pass its name"
        )
    return sorted(names, key=lambda n: (not n.endswith("-quickgelu"), len(n), n))[0]


def _map(src: dict, target: dict, dest_of, report: ImportReport) -> dict[str, torch.Tensor]:
    """src key -> target key via dest_of (None: unused); checks shapes; returns the mapped target state dict."""
    out: dict[str, torch.Tensor] = {}
    for k, v in src.items():
        d = dest_of(k)
        if d is None or d not in target:
            report.unused.append(k)
            continue
        v = v.reshape(target[d].shape) if v.numel() == target[d].numel() and v.ndim != target[d].ndim else v
        if tuple(v.shape) != tuple(target[d].shape):
            report.shape_errors.append(f"{k} {tuple(v.shape)} -> {d} {tuple(target[d].shape)}")
            continue
        out[d] = (v.float() if v.is_floating_point() else v).contiguous().clone()
    report.unmatched += [f"{k} (target)" for k in target if k not in out]
    return out


def import_clip4clip(
    state_dict_path: str | Path,
    out: str | Path,
    model_name: str | None = None,
    heads: int | None = None,
    n_frames: int = 12,
) -> ImportReport:
    """Map an official CLIP4Clip checkpoint onto vidseek; raises ValueError (with the report) when incomplete."""
    src = load_official(state_dict_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clip_sd, rest = _split_supported(src)
    if model_name is None:
        model_name = infer_model_name(clip_sd)
    arch, cfg = _quickgelu_config(model_name)
    kind = _head_kind(rest)
    report = ImportReport(
        source=str(state_dict_path),
        model=model_name,
        head_type=kind,
        encoder=str(out / "encoder.safetensors"),
        head=None,
        mapped=0,
        encoder_keys=0,
        head_keys=0,
    )
    enc = _map_encoder(clip_sd, arch, report)
    head, head_sd = _map_head(kind, rest, heads, cfg["embed_dim"], report)
    report.encoder_keys, report.head_keys = len(enc), len(head_sd)
    report.mapped = len(enc) + len(head_sd)
    if report.unmatched or report.shape_errors:
        raise ValueError("CLIP4Clip import incomplete:\n" + report.render())
    _write_outputs(out, enc, head, head_sd, n_frames, report)
    return report


def _split_supported(src: dict) -> tuple[dict, dict]:
    """(``clip.*`` tensors without the prefix, the other tensors); refuses the variants vidseek cannot index."""
    clip_sd = {k[len("clip.") :]: v for k, v in src.items() if k.startswith("clip.")}
    rest = {k: v for k, v in src.items() if not k.startswith("clip.")}
    if any(k.startswith(("cross.", "similarity_dense")) for k in rest):
        raise ValueError(
            "tightTransf checkpoints (cross.*, similarity_dense) are not supported: their scoring "
            "runs a transformer on every (text, video) pair and cannot be indexed"
        )
    if "visual.conv2.weight" in clip_sd:
        raise ValueError(
            "3D linear-patch checkpoints (CLIP4Clip --linear_patch 3d: clip.visual.conv2) are not "
            "supported: open_clip's ViT embeds each frame on its own"
        )
    return clip_sd, rest


def _quickgelu_config(model_name: str) -> tuple[str, dict]:
    """The open_clip architecture of ``model_name`` and its config, which must use QuickGELU."""
    from vidseek.operators.models import get_model_entry

    arch = get_model_entry(model_name).arch
    cfg = open_clip.get_model_config(arch)
    if not cfg.get("quick_gelu"):
        raise ValueError(
            f"{model_name}: its config does not use QuickGELU, but CLIP4Clip's OpenAI CLIP weights "
            f"were trained with it; use the '-quickgelu' variant (e.g. {arch}-quickgelu)"
        )
    return arch, cfg


def _head_kind(rest: dict) -> str:
    """CLIP4Clip's sim_header, from the tensors beside ``clip.*``."""
    if any(k.startswith("transformerClip.") for k in rest):
        return "seqTransf"
    return "seqLSTM" if any(k.startswith("lstm_visual.") for k in rest) else "meanP"


def _map_encoder(clip_sd: dict, arch: str, report: ImportReport) -> dict[str, torch.Tensor]:
    """The encoder's state dict: open_clip's CLIP uses OpenAI's names, so keys map to themselves."""
    target = _empty_model(arch).state_dict()
    enc = _map({k: v for k, v in clip_sd.items() if k not in IGNORED}, target, lambda k: k, report)
    report.unused = [f"clip.{k}" for k in report.unused]
    return enc


def _map_head(
    kind: str, rest: dict, heads: int | None, embed_dim: int, report: ImportReport
) -> tuple[torch.nn.Module | None, dict[str, torch.Tensor]]:
    """The vidseek head of ``kind`` and its mapped state dict (meanP: none, every other tensor unused)."""
    head, width, dest = _new_head(kind, rest, heads)
    if head is None:
        report.unused += list(rest)
        return None, {}
    if width != embed_dim:
        raise ValueError(f"head width {width} != embedding dim {embed_dim}: frames could not feed it")
    return head, _map(rest, head.state_dict(), dest, report)


def _new_head(
    kind: str, rest: dict, heads: int | None
) -> tuple[torch.nn.Module | None, int, Callable[[str], str | None] | None]:
    """(head of ``kind`` shaped as the checkpoint's, its width, source key -> head key or None)."""
    if kind == "seqTransf":
        pos = rest["frame_position_embeddings.weight"]
        width = int(pos.shape[1])
        layers = _count_blocks(rest, "transformerClip.resblocks.")
        head = SeqTransfHead(
            width, layers=layers, heads=heads or max(1, width // 64), max_frames=int(pos.shape[0]), quick_gelu=True
        )

        def dest(k: str) -> str | None:
            if k == "frame_position_embeddings.weight":
                return k
            return (
                "resblocks." + k[len("transformerClip.resblocks.") :]
                if k.startswith("transformerClip.resblocks.")
                else None
            )

        return head, width, dest
    if kind == "seqLSTM":

        def lstm_dest(k: str) -> str | None:
            return "lstm." + k[len("lstm_visual.") :] if k.startswith("lstm_visual.") else None

        width = int(rest["lstm_visual.weight_ih_l0"].shape[1])
        return SeqLSTMHead(width), width, lstm_dest
    return None, 0, None


def _write_outputs(
    out: Path, enc: dict, head: torch.nn.Module | None, head_sd: dict, n_frames: int, report: ImportReport
) -> None:
    """encoder.safetensors, head.pt (stamped with the encoder as loaded back) and import.json."""
    from safetensors.torch import save_file

    from vidseek.operators.encode import load_clip

    save_file(enc, report.encoder)
    clip = load_clip(report.model, pretrained=report.encoder, device="cpu")  # the same load path as --pretrained
    report.stamp = clip.stamp()
    if head is not None:
        head.load_state_dict(head_sd, strict=True)
        report.head = str(out / "head.pt")
        save_head(
            report.head,
            head,
            {"n_frames": n_frames, "head_type": report.head_type, "source": "clip4clip"},
            report.stamp,
            {"import": {k: v for k, v in asdict(report).items() if k != "stamp"}},
        )
    (out / "import.json").write_text(json.dumps(asdict(report), indent=1))


def _empty_model(arch: str) -> torch.nn.Module:
    """An open_clip model of ``arch`` with uninitialised storage (only names and shapes are needed)."""
    import logging

    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        with torch.device("meta"):
            return open_clip.create_model(arch, pretrained=None, device="meta")
    except Exception:  # noqa: BLE001 — some builds cannot run on meta tensors: build for real
        return open_clip.create_model(arch, pretrained=None, device="cpu")
    finally:
        logging.getLogger().setLevel(level)
