"""Hash-chained event logs: append-only, tamper-evident histories (prompt labels, the registry).

:class:`EventLog` appends, reads, verifies and fast-forwards one chain; see ``chain.py``.
"""

from tether.events.chain import Event, EventLog, Verification

__all__ = ["Event", "EventLog", "Verification"]
