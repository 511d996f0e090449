"""Ray-free building blocks of vidseek: decode, encode, pool, temporal heads, the rows between stages.

Each operator is a callable (heavy setup in ``__init__``) over numpy arrays or typed rows (``rows.py``), so
it can be used and tested without Ray; ``pipeline/`` wires them into Ray.
"""
