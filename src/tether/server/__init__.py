"""The team server's HTTP shell (FastAPI): parse a request, check who sent it, call
:mod:`tether.api`, answer. Like the CLI it imports only the facade and the errors.
``tether.asgi`` builds the application; ``tether server`` runs it under uvicorn.
"""
