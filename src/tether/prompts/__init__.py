"""Prompt templates: versioned in git, rendered in a sandbox, evaluated, labelled."""
