"""The root of trust: which keys hold which roles, and the policies in force, as TUF root
metadata signed by a threshold of admins (``root.py``), and what each clone pins (``pin.py``)."""
