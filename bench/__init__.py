"""Benchmarks that print tables (`python bench/throughput.py`); never collected by pytest."""
