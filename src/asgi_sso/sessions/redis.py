"""A Redis :class:`~asgi_sso.sessions.base.SessionStore` shared by every worker and host.

Keys (under a configurable prefix, default ``asgi_sso:``):

* ``session:<digest(id)>`` - the record as JSON; Redis expires it at the session's end.
* ``user:<digest(connection, subject)>`` - a set naming the session keys of one
  user, so deprovisioning ends every session at once.
* ``sub:<digest(issuer, sub)>`` and ``sid:<digest(issuer, sid)>`` - sets naming
  the session keys of one ID-token subject and of one IdP session of an issuer,
  so a back-channel logout ends exactly what it names (OIDC Back-Channel Logout
  1.0 §2.7: ``sid`` is unique only within its issuer).

A set lives as long as its longest-lived member.
* ``state:<digest(key)>`` - one-time sign-in state, taken with ``GETDEL`` so a
  replayed callback fails on every host.
* ``leases:<kind>`` - a sorted set of short leases per kind (``refresh``: one worker
  refreshes a session's tokens; ``signin``: a sign-in callback is taken once), scored
  by their end. Each holds at most ``max_leases`` members: ended ones are dropped
  first, then those ending soonest, so however many callbacks arrive, the sets stay
  bounded, and callbacks never push out a refresh in progress.

Multi-key writes run as Lua scripts, so they are atomic; the store needs a
single Redis (or a primary with replicas), not Redis Cluster. Expiry is also
checked against the injected clock, so tests advance time instead of sleeping.
"""

from __future__ import annotations

import struct

import msgspec
from redis.asyncio import Redis

from asgi_sso._redis import DEFAULT_PREFIX, check_prefix, client_from, digest, unavailable
from asgi_sso.config import Clock, SystemClock
from asgi_sso.errors import ConfigurationError
from asgi_sso.sessions.base import SessionRecord, lease_kind

__all__ = ["MAX_LEASES", "RedisSessionStore"]

MAX_LEASES = 100_000
"""Default bound on live leases (refreshes in progress, sign-in callbacks taken)."""

_WHAT = "session store"
_DEADLINE = struct.Struct(">d")
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SessionRecord)

# KEYS[1] = the session key, KEYS[2..] = index sets; ARGV[1] = record, ARGV[2] = ttl in ms.
_CREATE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local ttl = tonumber(ARGV[2])
for i = 2, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[1])
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return 1
"""

# KEYS = index sets: delete every session all of them name and drop it from each.
_DELETE_INDEXED = """
local n = 0
for _, key in ipairs(redis.call('SINTER', unpack(KEYS))) do
  n = n + redis.call('DEL', key)
  for i = 1, #KEYS do
    redis.call('SREM', KEYS[i], key)
  end
end
return n
"""

# KEYS[1] = the lease set; ARGV[1] = now, ARGV[2] = the lease's end, ARGV[3] = ttl in ms,
# ARGV[4] = the lease, ARGV[5] = most leases kept.
_CLAIM = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then
  return 0
end
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[5]) + 1
if excess > 0 then
  redis.call('ZPOPMIN', KEYS[1], excess)
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
"""


class RedisSessionStore:
    """Server-side sessions and one-time sign-in state in Redis.

    Args:
        redis: a ``redis://`` / ``rediss://`` URL (the store owns and closes the
            client) or an existing :class:`redis.asyncio.Redis` (left open).
        prefix: prepended to every key, so several apps can share one Redis.
        clock: wall time for expiry.
        max_leases: most leases of one kind kept at once (see ``leases:<kind>`` above).

    Every method raises :class:`~asgi_sso.errors.StoreUnavailable` when Redis
    cannot be reached; the middleware answers 503 and redis-py reconnects by
    itself once Redis is back.
    """

    def __init__(
        self,
        redis: Redis | str,
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Clock | None = None,
        max_leases: int = MAX_LEASES,
    ) -> None:
        if max_leases < 1:
            raise ConfigurationError("RedisSessionStore.max_leases must be positive")
        self._max_leases = max_leases
        self._prefix = check_prefix(prefix)
        self._redis, self._owned = client_from(redis)
        self._clock: Clock = clock or SystemClock()
        self._create = self._redis.register_script(_CREATE)
        self._delete_indexed = self._redis.register_script(_DELETE_INDEXED)
        self._claim = self._redis.register_script(_CLAIM)

    def __repr__(self) -> str:
        return f"RedisSessionStore(prefix={self._prefix!r})"

    async def create(self, record: SessionRecord) -> None:
        """Store ``record`` until its ``expires_at``, indexed by user, ``sub`` and ``sid``."""
        ttl = self._ttl_ms(record)
        if ttl <= 0:
            return
        keys = [
            self._session_key(record.id),
            self._user_key(record.connection, record.subject),
            self._sub_key(record.issuer, record.id_sub),
        ]
        if record.sid is not None:
            keys.append(self._sid_key(record.issuer, record.sid))
        with unavailable(_WHAT):
            await self._create(keys=keys, args=[_encoder.encode(record), ttl])

    async def get(self, session_id: str) -> SessionRecord | None:
        """Return the live session named ``session_id``, or ``None``."""
        with unavailable(_WHAT):
            raw = await self._redis.get(self._session_key(session_id))
        if raw is None:
            return None
        try:
            record = _decoder.decode(raw)
        except msgspec.DecodeError:  # written by something else: not a session of ours
            return None
        if record.id != session_id or record.expires_at <= self._clock.time():
            return None
        return record

    async def update(self, record: SessionRecord) -> None:
        """Replace a session that still exists (``SET … XX``); end it if it is past its end."""
        ttl = self._ttl_ms(record)
        if ttl <= 0:
            await self.delete(record.id)
            return
        with unavailable(_WHAT):
            await self._redis.set(
                self._session_key(record.id), _encoder.encode(record), px=ttl, xx=True
            )

    async def delete(self, session_id: str) -> None:
        """End one session and drop it from its indexes."""
        key = self._session_key(session_id)
        with unavailable(_WHAT):
            raw = await self._redis.getdel(key)
            if raw is None:
                return
            try:
                record = _decoder.decode(raw)
            except msgspec.DecodeError:
                return
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.srem(self._user_key(record.connection, record.subject), key)
                pipe.srem(self._sub_key(record.issuer, record.id_sub), key)
                if record.sid is not None:
                    pipe.srem(self._sid_key(record.issuer, record.sid), key)
                await pipe.execute()

    async def delete_user(self, connection: str, subject: str) -> int:
        """End every session of ``(connection, subject)``; return how many ended."""
        with unavailable(_WHAT):
            ended = await self._delete_indexed(keys=[self._user_key(connection, subject)])
        return int(ended)

    async def delete_by_provider(self, issuer: str, *, sub: str | None, sid: str | None) -> int:
        """End the sessions of ``issuer`` with that ``sub`` and/or ``sid`` (one atomic script)."""
        keys = [self._sub_key(issuer, sub)] if sub is not None else []
        if sid is not None:
            keys.append(self._sid_key(issuer, sid))
        if not keys:
            return 0
        with unavailable(_WHAT):
            ended = await self._delete_indexed(keys=keys)
        return int(ended)

    async def put_state(self, key: str, value: bytes, ttl: float) -> None:
        """Keep ``value`` under ``key`` for ``ttl`` seconds (by Redis and by the clock)."""
        if ttl <= 0:
            return
        deadline = _DEADLINE.pack(self._clock.time() + ttl)
        with unavailable(_WHAT):
            await self._redis.set(
                self._state_key(key), deadline + value, px=max(1, int(ttl * 1000))
            )

    async def pop_state(self, key: str) -> bytes | None:
        """Take the state under ``key`` atomically (``GETDEL``): only the first caller gets it."""
        with unavailable(_WHAT):
            raw = await self._redis.getdel(self._state_key(key))
        if not isinstance(raw, bytes) or len(raw) < _DEADLINE.size:
            return None
        (deadline,) = _DEADLINE.unpack_from(raw)
        if deadline <= self._clock.time():
            return None
        return bytes(raw[_DEADLINE.size :])

    async def claim(self, key: str, ttl: float) -> bool:
        """Take the lease ``key`` for ``ttl`` seconds (atomic check-and-set): one caller wins.

        Past ``max_leases`` live leases of its :func:`~asgi_sso.sessions.base.lease_kind`,
        the one of that kind ending soonest is dropped.
        """
        now = self._clock.time()
        args: list[str | int] = [
            repr(now),
            repr(now + ttl),
            max(1, int(ttl * 1000)),
            digest(key),
            self._max_leases,
        ]
        with unavailable(_WHAT):
            leases = f"{self._prefix}leases:{lease_kind(key)}"
            taken = await self._claim(keys=[leases], args=args)
        return bool(taken)

    async def ping(self) -> bool:
        """Whether Redis answers, for health checks (never raises)."""
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    async def close(self) -> None:
        """Close the client when the store created it."""
        if self._owned:
            await self._redis.aclose()

    def _ttl_ms(self, record: SessionRecord) -> int:
        return int((record.expires_at - self._clock.time()) * 1000)

    def _session_key(self, session_id: str) -> str:
        return f"{self._prefix}session:{digest(session_id)}"

    def _user_key(self, connection: str, subject: str) -> str:
        return f"{self._prefix}user:{digest(connection, subject)}"

    def _sub_key(self, issuer: str, sub: str) -> str:
        return f"{self._prefix}sub:{digest(issuer, sub)}"

    def _sid_key(self, issuer: str, sid: str) -> str:
        return f"{self._prefix}sid:{digest(issuer, sid)}"

    def _state_key(self, key: str) -> str:
        return f"{self._prefix}state:{digest(key)}"
