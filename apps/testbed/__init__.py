"""Offline quality testbed: synthetic video world, tiny CLIP trained on it, quality table (apps/testbed/README.md)."""
