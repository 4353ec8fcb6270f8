"""Reproduce: rebuild a past run in a clean worktree, re-run it, and return a verdict."""
