"""The benchmark suite: `python3 bench/run.py [--size smoke|full]` (see README, Benchmarks)."""
