"""Benchmarks of asgi_sso against the JWT libraries and frameworks people use.

Run ``python -m benchmarks [verify|middleware|e2e|memory|all] [--quick] [--out DIR]``.
Every candidate runs in its own process; see ``benchmarks/README.md``.
"""
