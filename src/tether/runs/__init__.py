"""Run tracking: lifecycle, journal, sealing, search, diff."""
