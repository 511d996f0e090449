"""Temporal alignment and copy detection over stored frame vectors (retrieval/alignment.py, retrieval/copies.py).

Planted stores: random-walk frame sequences (each frame a small step from the last, as a shot changes), their
copies with noise, an excerpt inside other footage, a faster copy (a speed change), unrelated videos, and
"black" frames shared by many videos. The same store tests run on Milvus Lite and on the 2.3.5 server.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from planted_copies import DIM, PARAMS, check_library_copies, noisy, plant_library, walk

from vidseek.retrieval.alignment import AlignParams, local_alignment, unit_rows
from vidseek.retrieval.copies import (
    RECORD_FIELDS,
    SHRINK,
    CopyParams,
    Whitening,
    align_pairs,
    candidate_pairs,
    chunks,
    find_copies,
    kind_of,
    library,
    library_whitening,
    probe_videos,
    write_copies,
)
from vidseek.store.video_store import VideoStore


# -- alignment ------------------------------------------------------------------------------------------
def reference_sw(w: np.ndarray, gap: float) -> float:
    """Smith-Waterman's best score by the textbook recursion, one cell at a time."""
    ta, tb = w.shape
    h = np.zeros((ta + 1, tb + 1))
    for i in range(1, ta + 1):
        for j in range(1, tb + 1):
            h[i, j] = max(0.0, h[i - 1, j - 1] + w[i - 1, j - 1], h[i - 1, j] - gap, h[i, j - 1] - gap)
    return float(h.max())


def test_alignment_score_and_span_match_the_textbook_recursion():
    rng = np.random.default_rng(0)
    for _ in range(150):
        sim = rng.uniform(-0.2, 1.0, size=(rng.integers(1, 14), rng.integers(1, 14)))
        p = AlignParams(threshold=0.6, gap=float(rng.uniform(0, 0.3)), extend=2.0)  # extend 2: no growing
        al = local_alignment(sim, p)
        best = reference_sw(sim - p.threshold, p.gap)
        if best == 0:
            assert al is None
            continue
        assert al.score == pytest.approx(best, abs=1e-9)
        # the path it reports starts and ends where the best path does: the same score inside that window
        (a0, a1), (b0, b1) = al.a, al.b
        assert reference_sw(sim[a0 : a1 + 1, b0 : b1 + 1] - p.threshold, p.gap) == pytest.approx(best, abs=1e-9)


def test_alignment_finds_an_excerpt_inside_other_footage():
    rng = np.random.default_rng(1)
    a = walk(rng, 40)
    b = np.concatenate([walk(rng, 7), noisy(rng, a[12:30]), walk(rng, 9)])  # a[12..29] at b[7..24]
    al = local_alignment(a @ b.T, AlignParams(threshold=0.9))
    assert al.a == (12, 29) and al.b == (7, 24)
    assert al.matches == 18 and al.similarity > 0.98  # the noise: cos ≈ 0.986


def test_alignment_follows_a_copy_played_faster():
    """b is a at 1.25× speed (every 5th frame of a dropped): the path skips frames of a, and still covers it."""
    rng = np.random.default_rng(2)
    a = walk(rng, 40, step=0.2)
    keep = [i for i in range(40) if i % 5 != 4]  # 32 frames
    b = noisy(rng, a[keep], 0.02)
    al = local_alignment(a @ b.T, AlignParams(threshold=0.9))
    assert al.a[0] <= 1 and al.a[1] >= 37 and al.b[0] <= 1 and al.b[1] >= 30
    assert al.similarity > 0.97


def test_neutral_frames_are_crossed_but_never_aligned_alone():
    rng = np.random.default_rng(3)
    black = unit_rows(rng.standard_normal((1, DIM)))
    a = np.concatenate([np.repeat(black, 10, 0), walk(rng, 10)])
    b = np.concatenate([np.repeat(black, 10, 0), walk(rng, 10)])  # the same black start, nothing else alike
    sim = a @ b.T
    assert local_alignment(sim, AlignParams(threshold=0.9)) is not None  # black matches black
    neutral = np.r_[np.ones(10, bool), np.zeros(10, bool)]
    assert local_alignment(sim, AlignParams(threshold=0.9), neutral, neutral) is None
    # a real shared shot after the black start: aligned, and grown back over the black frames both share
    shot = walk(rng, 10)
    a2, b2 = np.concatenate([a[:10], shot]), np.concatenate([b[:10], noisy(rng, shot, 0.02)])
    al = local_alignment(a2 @ b2.T, AlignParams(threshold=0.9), neutral, neutral)
    assert al.a == (0, 19) and al.b == (0, 19)


def test_kinds():
    assert kind_of(0.95, 0.9, 12, 12, 0.8) == "duplicate"
    assert kind_of(0.9, 0.3, 12, 40, 0.8) == "excerpt"  # most of the shorter (a) only
    assert kind_of(0.3, 0.9, 40, 12, 0.8) == "excerpt"
    assert kind_of(0.4, 0.3, 30, 40, 0.8) == "segment"


# -- a planted library ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lite(tmp_path_factory):
    store = VideoStore(str(tmp_path_factory.mktemp("copies") / "lib.db"))
    plant_library(store)
    yield store
    store.close()


@pytest.fixture(scope="module")
def lite_records(lite):
    return find_copies(lite, params=PARAMS)


def test_find_copies_on_lite(lite_records):
    check_library_copies(lite_records)


def test_chunked_steps_give_what_find_copies_gives(lite, lite_records):
    """What a Ray driver would do: probe chunks of videos, pair in the driver, align chunks of pairs."""
    params = PARAMS
    videos = library(lite)
    assert "failed" not in videos
    probes = {}
    for part in chunks(sorted(videos), 3):
        probes.update(probe_videos(lite, part, params, videos))
    assert probes["blackish0"].generic[:12].all() and not probes["blackish0"].generic[12:].any()
    pairs = candidate_pairs(probes, videos, params)
    generic = {v: p.generic for v, p in probes.items()}
    records = [r for part in chunks(pairs, 2) for r in align_pairs(lite, part, generic, videos, params)]
    assert sorted(records, key=lambda r: (r.a, r.b)) == sorted(lite_records, key=lambda r: (r.a, r.b))


def test_records_write_as_csv_jsonl_and_json(lite_records, tmp_path):
    records = lite_records
    write_copies(records, tmp_path / "c.csv")
    write_copies(records, tmp_path / "c.jsonl")
    write_copies(records, tmp_path / "c.json")
    with open(tmp_path / "c.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == RECORD_FIELDS and len(rows) == len(records)
    assert [float(r["a_start"]) for r in rows] == [r.a_start for r in records]
    lines = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert lines == json.loads((tmp_path / "c.json").read_text()) == [r.as_dict() for r in records]


def test_whitening_decorrelates_and_falls_back_to_plain_cosines():
    rng = np.random.default_rng(7)
    mix = rng.standard_normal((DIM, DIM)) * np.linspace(0.05, 3, DIM)  # strongly anisotropic frames
    unit = unit_rows(rng.standard_normal((4000, DIM)) @ mix + 5 * rng.standard_normal(DIM))
    w = Whitening.fit(unit, 1.0)
    z = (unit - w.mean) @ w.matrix
    cov = np.cov(z.T)
    assert np.allclose(cov - np.diag(np.diag(cov)), 0, atol=1e-4)  # no correlation left
    # each principal direction's variance λ becomes λ / (λ + ε·mean λ): 1 but where the shrinkage damps the
    # directions the frames barely vary in (unit-normalising flattens one)
    eig = np.linalg.eigvalsh(np.cov((unit - unit.mean(0)).T))
    assert np.allclose(np.sort(np.diag(cov)), np.sort(eig / (eig + SHRINK * eig.mean())), atol=1e-3)
    assert np.sort(np.diag(cov))[DIM // 2 :].min() > 0.99
    assert np.allclose(np.linalg.norm(w(unit * 7.0), axis=1), 1.0)  # raw features in, unit vectors out
    x = unit[:5]
    for plain in (Whitening.fit(unit, 0.0), Whitening.fit(unit[: 2 * DIM - 1], 1.0)):  # power 0, too few frames
        assert np.allclose(plain(x), x, atol=1e-6)


def test_library_whitening_reads_the_stored_frames(lite):
    w = library_whitening(lite, CopyParams())
    unit = unit_rows(np.concatenate([t.vectors for t in lite.frames_of(sorted(library(lite))).values()]))
    assert np.allclose(w.mean, unit.mean(0), atol=1e-4)  # every stored frame (the failed video has none)
    assert np.array_equal(library_whitening(lite, CopyParams(whiten=0.0)).matrix, np.eye(DIM))


def test_parameters_are_checked():
    with pytest.raises(ValueError):
        CopyParams(threshold=1.5).validate()
    with pytest.raises(ValueError):
        CopyParams(min_seconds=0).validate()


@pytest.mark.server
@pytest.mark.slow
def test_find_copies_on_the_server(milvus):
    with VideoStore(milvus, prefix="copies") as store:
        plant_library(store)
        check_library_copies(find_copies(store, params=PARAMS))
