"""Parley's benchmark (`python -m bench`): measurements against baselines taken in the same run."""
