"""Offline quality testbed: synthetic video world, tiny CLIP trained on it, quality table (issue 6)."""
