"""vidseek: distributed video-text retrieval (Ray, decord, open_clip, Milvus).

This is the import namespace only. The code lives in the repository's top-level folders, one per layer
(docs/architecture.md), which pyproject.toml maps under it: ``vidseek.operators``, ``vidseek.store``,
``vidseek.retrieval``, ``vidseek.pipeline``, ``vidseek.apps``. Installed, vidseek adds only ``vidseek`` to
site-packages, so its folders never shadow (or are shadowed by) a user's own ``operators`` or ``pipeline``.
"""

import os as _os

# A checkout used without installing (``PYTHONPATH=checkout``, e.g. a GPU machine that reaches no package
# registry, bench/gpu_check.sh): the layer folders are beside this one, so look for subpackages there too.
# An installed wheel has them inside this folder and never takes this branch.
_checkout = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "operators")) and _os.path.isfile(
    _os.path.join(_checkout, "operators", "rows.py")
):
    __path__.append(_checkout)  # noqa: F821 — a package's own __path__
