"""Browser sessions: the cookie codec and the session stores (cookie-only, memory, Redis)."""

from __future__ import annotations

from asgi_sso.sessions.base import SessionInvalid, SessionRecord, SessionStore
from asgi_sso.sessions.codec import CookieCodec
from asgi_sso.sessions.cookie import CookieSessionStore
from asgi_sso.sessions.memory import MemorySessionStore

__all__ = [
    "CookieCodec",
    "CookieSessionStore",
    "MemorySessionStore",
    "SessionInvalid",
    "SessionRecord",
    "SessionStore",
]
