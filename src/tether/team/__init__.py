"""The team server's domain, without HTTP: accounts and roles, projects, verified objects and each
project's run index. :mod:`tether.server` is the HTTP shell over it (through :mod:`tether.api`);
:mod:`.client` and :mod:`.upload` are the other side, a project talking to a server.
"""
