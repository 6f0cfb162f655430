"""Benchmarks of the fleet against its anchors: bare arq, a hand-written SQL reference, pt-archiver.

``python -m ops.bench`` runs them side by side and writes ``ops/bench/RESULTS.md``. None of them
fails on time: they measure and report the ratios against the targets of issue 8.
"""
