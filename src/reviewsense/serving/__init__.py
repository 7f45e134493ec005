"""Serving: the HTTP API and web page (``reviewsense serve``). Needs FastAPI and uvicorn."""
