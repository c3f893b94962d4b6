"""Tests for the audit-log event sink."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso.observe import audit
from asgi_sso.observe.audit import AUDIT_FIELDS, AuditLogger
from asgi_sso.observe.events import Emitter, Event
from asgi_sso.testing import FakeClock

TOKEN = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0."
    "eyJzdWIiOiJ1c2VyLTEiLCJpc3MiOiJodHRwczovL2lkcCJ9."
    "c2lnbmF0dXJlLXNlY3JldA"
)


@pytest.fixture
def logger() -> logging.Logger:
    log = logging.getLogger("test.asgi_sso.audit")
    log.setLevel(logging.DEBUG)
    return log


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "test.asgi_sso.audit"]


def test_signin_writes_one_structured_record(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    sink = AuditLogger(logger)
    with caplog.at_level(logging.INFO, logger=logger.name):
        sink(
            Event(
                name="signin",
                outcome="ok",
                time=1_700_000_123.5,
                issuer="okta",
                connection="acme",
                subject="user-1",
                client_ip="203.0.113.9",
            )
        )
    (record,) = records(caplog)
    assert record.levelno == logging.INFO
    assert record.__dict__["event"] == "signin"
    assert record.__dict__["outcome"] == "ok"
    assert record.__dict__["time"] == 1_700_000_123.5
    assert record.__dict__["connection"] == "acme"
    assert record.__dict__["subject"] == "user-1"
    assert record.__dict__["client_ip"] == "203.0.113.9"
    assert record.__dict__["issuer"] == "okta"
    assert record.__dict__["reason"] is None
    for field in AUDIT_FIELDS:
        assert hasattr(record, field)
    assert "signin ok" in record.getMessage()
    assert "subject=user-1" in record.getMessage()


def test_refusal_is_logged_at_warning_with_its_reason(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    sink = AuditLogger(logger)
    with caplog.at_level(logging.INFO, logger=logger.name):
        sink(Event(name="refusal", outcome="refused", reason="expired", client_ip="10.0.0.1"))
    (record,) = records(caplog)
    assert record.levelno == logging.WARNING
    assert record.__dict__["reason"] == "expired"


@pytest.mark.parametrize(
    "name", ["signin", "refusal", "logout", "deprovision", "backchannel_logout"]
)
def test_every_audited_event_writes_exactly_one_record(
    name: str, logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    sink = AuditLogger(logger)
    with caplog.at_level(logging.INFO, logger=logger.name):
        sink(Event(name=name, subject="u", connection="c"))
    assert [r.__dict__["event"] for r in records(caplog)] == [name]


@pytest.mark.parametrize("name", ["verify", "cache.hit", "jwks.fetch", "session.created"])
def test_operational_events_are_not_audited(
    name: str, logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    sink = AuditLogger(logger)
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        sink(Event(name=name))
    assert records(caplog) == []


def test_time_comes_from_the_clock_when_the_event_has_none(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    sink = AuditLogger(logger, clock=FakeClock(42.0))
    with caplog.at_level(logging.INFO, logger=logger.name):
        sink(Event(name="logout"))
    assert records(caplog)[0].__dict__["time"] == 42.0


def test_a_token_never_reaches_the_record(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    sink = AuditLogger(logger)
    with caplog.at_level(logging.INFO, logger=logger.name):
        sink(
            Event(
                name="refusal",
                outcome="refused",
                reason=f"bad {TOKEN}",
                subject=TOKEN,
                detail={"token": TOKEN, "cookie": "s3cr3t", "kind": TOKEN, "path": "/api"},
            )
        )
    (record,) = records(caplog)
    dumped = json.dumps({k: record.__dict__[k] for k in AUDIT_FIELDS}, default=str)
    dumped += record.getMessage()
    assert "eyJ" not in dumped
    assert "c2lnbmF0dXJl" not in dumped
    assert "s3cr3t" not in dumped
    assert record.__dict__["detail"] == {"kind": "[redacted]", "path": "/api"}


def test_long_values_are_truncated(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    sink = AuditLogger(logger)
    with caplog.at_level(logging.INFO, logger=logger.name):
        sink(Event(name="signin", subject="x" * 10_000))
    assert len(records(caplog)[0].__dict__["subject"]) == 256


def test_disabled_logger_costs_no_record(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    logger.setLevel(logging.ERROR)
    sink = AuditLogger(logger)
    with caplog.at_level(logging.ERROR, logger=logger.name):
        sink(Event(name="signin"))
        sink(Event(name="refusal"))
    assert records(caplog) == []


def test_event_selection_and_logger_by_name(caplog: pytest.LogCaptureFixture) -> None:
    sink = AuditLogger("test.asgi_sso.audit", events={"logout"})
    assert sink.logger.name == "test.asgi_sso.audit"
    with caplog.at_level(logging.INFO, logger="test.asgi_sso.audit"):
        sink(Event(name="signin"))
        sink(Event(name="logout"))
    assert [r.__dict__["event"] for r in records(caplog)] == ["logout"]


def test_records_format_as_json_with_a_plain_formatter(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    class JSONFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return json.dumps({k: getattr(record, k) for k in AUDIT_FIELDS})

    sink = AuditLogger(logger)
    with caplog.at_level(logging.INFO, logger=logger.name):
        Emitter([sink]).emit(Event(name="deprovision", subject="u1", detail={"kind": "scim"}))
    line = JSONFormatter().format(records(caplog)[0])
    assert json.loads(line)["detail"] == {"kind": "scim"}


# The token-shape pattern before it was made linear: the reference for what is redacted.
_QUADRATIC_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.")


@given(st.text(alphabet="eyJAa0_-./ ", max_size=40))
@example("eyJeyJeyJ.x.")
@example("aeyJabcd..")
@example("eyJabc.x.")
@example("x.eyJabcd.y.")
def test_the_linear_token_search_finds_what_the_reference_pattern_finds(text: str) -> None:
    assert audit._looks_like_token(text) == bool(_QUADRATIC_SHAPE.search(text))


class _SpyPattern:
    """Records the length of every text the token-shape pattern is run over."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.lengths: list[int] = []

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        self.lengths.append(len(text))
        return self.pattern.finditer(text)


@pytest.mark.parametrize(
    "hostile",
    ["/" + "eyJ" * 34_000, "/api/" + "a" * 100_000, "eyJhbGciOi" + "x" * 100_000 + ".y."],
)
def test_a_100_kb_value_is_cut_before_any_pattern_sees_it(
    hostile: str,
    logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = _SpyPattern(audit._TOKEN_SHAPE)
    monkeypatch.setattr(audit, "_TOKEN_SHAPE", spy)
    sink = AuditLogger(logger)
    with caplog.at_level(logging.INFO, logger=logger.name):
        sink(
            Event(
                name="refusal",
                outcome="refused",
                reason=hostile,
                client_ip=hostile,
                detail={"path": hostile, "scopes": [hostile] * 1000},
            )
        )
    (record,) = records(caplog)
    assert spy.lengths
    assert max(spy.lengths) <= audit._MAX_VALUE_LENGTH + 2
    assert len(spy.lengths) == 4 + 32  # outcome, reason, client_ip, path, 32 of the scopes
    assert len(record.__dict__["detail"]["path"]) <= audit._MAX_VALUE_LENGTH


def test_a_token_cut_by_the_truncation_is_still_redacted(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    sink = AuditLogger(logger)
    for offset in (200, 240, 248):  # 248: "eyJhbGc" is all that is left of it
        with caplog.at_level(logging.INFO, logger=logger.name):
            sink(Event(name="refusal", outcome="refused", reason="p" * offset + " " + TOKEN))
    assert [r.__dict__["reason"] for r in records(caplog)] == ["[redacted]"] * 3


def test_nested_and_huge_collections_are_bounded(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    nested: list[object] = ["leaf"]
    for _ in range(5000):
        nested = [nested]
    sink = AuditLogger(logger)
    with caplog.at_level(logging.INFO, logger=logger.name):
        sink(Event(name="signin", detail={"scopes": nested, "count": 1}))
        sink(Event(name="signin", detail={"scopes": set(range(1_000_000))}))
    first, second = (r.__dict__["detail"]["scopes"] for r in records(caplog))
    assert first == [["[...]"]]
    assert len(second) == 32
