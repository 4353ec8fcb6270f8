"""Hash-chained event logs: append-only, tamper-evident histories (prompt labels, the registry).

:class:`EventLog` appends, reads, verifies, fast-forwards and merges one log; see ``chain.py``
(the log), ``format.py`` (an event's bytes), ``walk.py`` (the order its history is read in).
"""

from tether.events.chain import Event, EventLog, Verification

__all__ = ["Event", "EventLog", "Verification"]
