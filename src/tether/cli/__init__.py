"""The ``tether`` command: parse, call :mod:`tether.api`, render. Nothing else lives here."""
