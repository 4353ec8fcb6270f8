"""{{ project }}."""
