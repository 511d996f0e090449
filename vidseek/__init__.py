"""vidseek: distributed video-text retrieval (Ray, decord, open_clip, Milvus).

This is the import namespace only. The code lives in the repository's top-level folders, one per layer
(docs/architecture.md), which pyproject.toml maps under it: ``vidseek.operators``, ``vidseek.store``,
``vidseek.retrieval``, ``vidseek.pipeline``, ``vidseek.apps``. Installed, vidseek adds only ``vidseek`` to
site-packages, so its folders never shadow (or are shadowed by) a user's own ``operators`` or ``pipeline``.
"""
