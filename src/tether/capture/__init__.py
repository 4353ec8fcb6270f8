"""Capture of a run's four pillars: code, data, environment and parameters."""
