"""Valid videos at the edges (tests/edge_corpus.py): every backend indexes each, and both give the rows of a
full decode through the sampling contract (docs/decoding.md, "What a sample is"), or the documented difference."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ffmpeg
from edge_corpus import CORPUS, DECORD_DIFFERS, build_edge_corpus, frames_of

from vidseek.operators.decode import DecodeSummary, VideoDecoder, _RgbScaler, check_backend
from vidseek.operators.preprocess import finish_frames, resize_plan
from vidseek.operators.sampling import SamplingPlan

PLANS = ["fps:1", "fps:4", "uniform:4"]


@pytest.fixture(scope="module")
def edge(tmp_path_factory, media) -> dict:
    return build_edge_corpus(tmp_path_factory.mktemp("edge"), ffmpeg)


def full_decode(path, cfg):
    """``edge_corpus.frames_of`` with every frame's model-input pixels, scaled as the decoders scale."""

    def image(stream):
        return _RgbScaler(resize_plan(stream.codec_context.width, stream.codec_context.height, cfg))

    times, end, header, images = frames_of(path, image)
    return times, end, header, finish_frames(np.stack(images), cfg)


def reference_rows(path, cfg, plan: str):
    """(t, start, end, pixels) per row, computed from the full decode: the frame on screen at each sample
    time, a frame shown at several samples kept once with their spans joined, the last span ending at the end."""
    times, end, header, pixels = full_decode(path, cfg)
    p = SamplingPlan.parse(plan)
    st, s0, s1 = p.spans(header if p.kind == "uniform" and header else end)
    shown = np.clip(np.searchsorted(times, st, side="right") - 1, 0, len(times) - 1)
    first = np.r_[True, shown[1:] != shown[:-1]]
    rows = np.flatnonzero(first)
    ends = np.r_[s1[rows[1:] - 1], end]  # a row's span ends where its last sample's does; the last row's at the end
    return times[shown[rows]], s0[rows], ends, pixels[shown[rows]]


def decoded(path, cfg, plan, backend):
    s = DecodeSummary()
    chunks = list(VideoDecoder(cfg, plan, backend=backend, chunk_frames=3).decode(str(path), s))
    cat = lambda name: np.concatenate([getattr(c, name) for c in chunks])  # noqa: E731
    return cat("t"), cat("t_start"), cat("t_end"), cat("frames"), s


@pytest.mark.parametrize("plan", PLANS)
@pytest.mark.parametrize("backend", ["auto", "pyav", "decord"])
@pytest.mark.parametrize("name", list(CORPUS))
def test_every_backend_gives_the_full_decodes_rows(edge, pre_cfg, name, backend, plan):
    """Chunks of 3 rows: a span that grows after its chunk would have gone out is caught too."""
    t, a, b, frames, s = decoded(edge[name], pre_cfg, plan, backend)
    rt, ra, rb, rpix = reference_rows(edge[name], pre_cfg, plan)
    assert s.lost == 0 and s.n_frames == len(t) >= 1
    np.testing.assert_allclose(t, rt, atol=1e-3)
    np.testing.assert_allclose(np.c_[a, b], np.c_[ra, rb], atol=1e-3)
    assert s.duration == pytest.approx(rb[-1], abs=1e-3)
    wrong = [i for i in range(len(t)) if not np.array_equal(frames[i], rpix[i])]
    if s.decoder == "decord" and name in DECORD_DIFFERS:
        assert wrong, f"decord now decodes {name} right: drop it from DECORD_DIFFERS and docs/decoding.md"
        assert backend == "decord", "auto must decode this file with PyAV"
    else:
        assert not wrong, f"{s.decoder} rows {wrong} are not the frames on screen"


def test_short_clips_get_one_sample_each(edge, pre_cfg):
    """A clip shorter than half a sampling window: one row, the last frame, spanning the whole clip."""
    for name in ("one_frame.mp4", "two_frames.mp4", "short_0.2s.mp4"):
        times, end, _, _ = full_decode(edge[name], pre_cfg)
        for backend in ("pyav", "decord"):
            t, a, b, _, _ = decoded(edge[name], pre_cfg, "fps:1", backend)
            assert (len(t), t[0], a[0]) == (1, pytest.approx(times[-1], abs=1e-3), 0.0)
            assert b[0] == pytest.approx(end, abs=1e-3)


def _no_frames(self, *args, **kwargs):
    return iter(())


def test_a_backend_that_gives_nothing_hands_the_file_to_the_other(edge, pre_cfg, monkeypatch):
    """The old miss: PyAV decoded nothing and lost nothing, so the video failed without trying decord."""
    path = edge["open_gop_bframes.mp4"]  # H.264 with B-frames: auto tries PyAV first
    monkeypatch.setattr(VideoDecoder, "_decode_pyav", _no_frames)
    _, _, _, frames, s = decoded(path, pre_cfg, "fps:1", "auto")
    assert s.decoder == "decord" and len(frames) == 4
    assert s.notes == ["pyav: decoded no frames (0 lost); used decord"]

    monkeypatch.setattr(VideoDecoder, "_decode_decord", _no_frames)
    (end,) = [r for r in VideoDecoder(pre_cfg, "fps:1").iter_video(str(path), "v") if hasattr(r, "status")]
    assert end.status == "failed" and end.n_frames == 0
    assert end.error == (
        f"{path}: no decodable frames (pyav: decoded no frames (0 lost); decord: decoded no frames (0 lost))"
    )


def test_keyframes_with_decord_is_refused_up_front():
    with pytest.raises(ValueError, match="keyframes sampling decodes with PyAV only"):
        check_backend("decord", SamplingPlan.parse("keyframes"))
    check_backend("auto", SamplingPlan.parse("keyframes"))  # the default takes it
