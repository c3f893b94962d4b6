"""Acme Analytics: the FastAPI example (``examples.fastapi_app.app:app``)."""
