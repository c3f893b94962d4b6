"""Shotter: the Litestar example (``examples.litestar_app.app:app``)."""
