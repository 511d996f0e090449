"""Ray-free building blocks of vidseek: decode, encode, aggregate.

Each operator is a callable class (heavy setup in ``__init__``, ``__call__(batch: dict)``) that works on a
plain dict of numpy arrays, so it can be used and tested without Ray; ``pipeline/`` wires them into Ray.
"""
