"""Benchmarks: ``make bench`` (``python -m bench.run``) writes bench/results.json and a table.

``bench.generator`` makes the seeded, realistic CloudTrail the benchmarks run over;
``bench.harness`` drives a local broker and ``exfilguard worker`` subprocesses.
"""
