"""Benchmarks: `make bench` runs them all; each writes JSON and Markdown under benchmarks/results/."""
