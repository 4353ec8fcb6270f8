"""A project's side of a team server: the HTTP client, the index it serves
(:class:`~.client.HttpMetaStore`), and ``tether sync``, which uploads what the server has not
acknowledged yet. Below :mod:`tether.runs`, so a run can upload itself when it ends.
"""
