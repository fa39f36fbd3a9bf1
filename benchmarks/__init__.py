"""Benchmarks: each module prints one JSON line (figure, same-run baseline, ratio)."""
