"""The web UI: server-rendered pages (Jinja2, every value escaped) over :mod:`tether.api`,
served by the team server at ``/`` and locally by ``tether ui``; small modules draw charts with
the vendored uPlot. Like the CLI and the server it is a thin shell: it imports the facade only."""
