"""Pipelines: stages in pipeline.yaml, a lock, a run cache, each stage a run."""
