"""The benchmark command (bench/run.py): its smoke size runs in CI; figures are not checked."""
