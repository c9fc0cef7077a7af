"""Schedules (CONTRACT; see the package's service.py)."""
