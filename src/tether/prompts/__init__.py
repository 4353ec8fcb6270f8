"""Prompt templates: versioned in git, rendered in a sandbox, evaluated, labelled."""

from tether.prompts.runtime import StalePromptWarning, load

__all__ = ["StalePromptWarning", "load"]
