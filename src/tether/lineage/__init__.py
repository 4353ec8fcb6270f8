"""Lineage: what a result came from and what was built from it, and standard exports."""
