"""The whole browser sign-in flow in process: BrowserLogin in an ASGI harness against the DevIdP."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from _browser_env import APP, IDP, KEY_NEW, KEY_OLD, Env

from asgi_sso.identity.revocation import Revocation
from asgi_sso.login.callback import MAX_PENDING_SIGNINS
from asgi_sso.sessions import MemorySessionStore, SessionInvalid
from asgi_sso.testing import DevUser, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["cookie", "memory"])
def env(request: pytest.FixtureRequest, clock: FakeClock) -> Env:
    store = MemorySessionStore(clock=clock) if request.param == "memory" else None
    return Env(clock, store=store)


async def test_sign_in_lands_on_return_to_with_a_session(env: Env) -> None:
    response = await env.sign_in("/reports?q=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/reports?q=1"
    assert env.session_cookies()
    assert not any(k.startswith("__Secure-sso_state.") for k in env.cookies)
    page = await env.get("/reports?q=1")
    assert page.status_code == 200
    assert page.json()["sub"] == "alice"
    seen = env.seen[-1]
    assert seen["claims"]["email"] == "alice@corp.example"
    assert seen["claims"]["groups"] == ["admins"]
    assert "nonce" not in seen["claims"]
    assert seen["cookie"] is None  # session cookies never reach the app


async def test_session_cookie_attributes_are_strict(env: Env) -> None:
    response = await env.sign_in()
    line = next(h for h in response.headers.get_list("set-cookie") if h.startswith("__Host-"))
    assert "HttpOnly" in line
    assert "Secure" in line
    assert "SameSite=Lax" in line
    assert "Path=/;" in line or line.endswith("Path=/")
    assert "Domain" not in line
    assert "alice" not in line  # encrypted, no PII


async def test_parallel_tabs_each_complete(env: Env) -> None:
    first = await env.start("/one")
    second = await env.start("/two")
    assert (await env.callback(second)).headers["location"] == "/two"
    assert (await env.callback(first)).headers["location"] == "/one"


async def test_replayed_callback_is_refused(env: Env) -> None:
    url = await env.start()
    state_cookies = {k: v for k, v in env.cookies.items() if "sso_state" in k}
    assert (await env.callback(url)).status_code == 303
    env.cookies.update(state_cookies)  # an attacker replays cookie and URL
    replay = await env.callback(url)
    assert replay.status_code == 400
    assert "already used" in replay.json()["error_description"]


async def test_callback_without_state_cookie_is_refused(env: Env) -> None:
    url = await env.start()
    env.cookies.clear()
    response = await env.callback(url)
    assert response.status_code == 400
    assert "missing" in response.json()["error_description"]


async def test_tampered_state_cookie_is_refused(env: Env) -> None:
    url = await env.start()
    name = next(k for k in env.cookies if "sso_state" in k)
    value = env.cookies[name]
    env.cookies[name] = value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB")
    response = await env.callback(url)
    assert response.status_code == 400
    assert "invalid" in response.json()["error_description"]


async def test_state_for_another_flow_is_refused(env: Env) -> None:
    url = await env.start()
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    query["state"] = ["forged-" + query["state"][0]]
    response = await env.get(parts.path + "?" + urlencode(query, doseq=True))
    assert response.status_code == 400


async def test_expired_state_is_refused(env: Env, clock: FakeClock) -> None:
    url = await env.start()
    clock.advance(601)
    response = await env.callback(url)
    assert response.status_code == 400
    assert "expired" in response.json()["error_description"]


async def test_idp_error_is_shown_as_html(env: Env) -> None:
    url = await env.start()
    parts = urlsplit(url)
    state = parse_qs(parts.query)["state"][0]
    query = urlencode({"error": "access_denied", "error_description": "<b>no</b>", "state": state})
    response = await env.get(parts.path + "?" + query, accept="text/html")
    assert response.status_code == 400
    assert "access_denied" in response.text
    assert "&lt;b&gt;no&lt;/b&gt;" in response.text
    assert "<b>no</b>" not in response.text


async def test_wrong_iss_parameter_is_refused(env: Env) -> None:
    url = await env.start()
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    query["iss"] = ["https://evil.example"]
    response = await env.get(parts.path + "?" + urlencode(query, doseq=True))
    assert response.status_code == 400
    assert "another issuer" in response.json()["error_description"]


async def test_missing_iss_parameter_is_refused_when_advertised(env: Env) -> None:
    url = await env.start()
    parts = urlsplit(url)
    query = {k: v for k, v in parse_qs(parts.query).items() if k != "iss"}
    response = await env.get(parts.path + "?" + urlencode(query, doseq=True))
    assert response.status_code == 400


@pytest.mark.parametrize(
    "hostile", ["//evil.example/x", "https://evil.example", "/\\evil.example", "/%2F%2Fevil"]
)
async def test_open_redirect_falls_back_to_default(env: Env, hostile: str) -> None:
    response = await env.sign_in(hostile)
    assert response.headers["location"] == "/"


async def test_tampered_session_cookie_is_refused_and_cleared(env: Env) -> None:
    await env.sign_in()
    name, value = next(iter(env.session_cookies().items()))
    env.cookies[name] = value[:20] + ("x" if value[20] != "x" else "y") + value[21:]
    response = await env.get("/reports")
    assert response.status_code == 401
    assert name not in env.cookies  # cleared by the refusal's Set-Cookie


async def test_truncated_session_cookie_is_refused(env: Env) -> None:
    await env.sign_in()
    name, value = next(iter(env.session_cookies().items()))
    env.cookies[name] = value[: len(value) // 2]
    assert (await env.get("/reports")).status_code == 401


async def test_idle_timeout_ends_the_session(env: Env, clock: FakeClock) -> None:
    await env.sign_in()
    clock.advance(3000)
    assert (await env.get("/a")).status_code == 200  # slides the idle clock
    clock.advance(3000)
    assert (await env.get("/a")).status_code == 200
    clock.advance(3601)
    response = await env.get("/a")
    assert response.status_code == 401
    assert "idle" in response.json()["error"]


async def test_absolute_lifetime_ends_an_active_session(env: Env, clock: FakeClock) -> None:
    await env.sign_in()
    for _ in range(8):
        clock.advance(3599)
        assert (await env.get("/a")).status_code == 200
    clock.advance(3599)
    response = await env.get("/a")
    assert response.status_code == 401
    assert response.json()["error"] in {"the session has expired", "the session has ended"}


async def test_secret_rotation_keeps_sessions_and_retires_old_keys(clock: FakeClock) -> None:
    env = Env(clock, secrets=(KEY_OLD,))
    await env.sign_in()
    env.login = env.make_login((KEY_OLD, KEY_NEW))
    assert (await env.get("/a")).status_code == 200
    env.login = env.make_login((KEY_NEW,))
    assert (await env.get("/a")).status_code == 401


async def test_unauthenticated_navigation_redirects_to_login(env: Env) -> None:
    response = await env.get("/reports?q=1", accept="text/html")
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("/auth/login?")
    assert parse_qs(urlsplit(location).query)["return_to"] == ["/reports?q=1"]
    api = await env.get("/reports", accept="application/json")
    assert api.status_code == 401
    xhr = await env.get("/reports", accept="text/html", **{"x-requested-with": "XMLHttpRequest"})
    assert xhr.status_code == 401


async def test_logout_requires_post_and_same_origin(env: Env) -> None:
    await env.sign_in()
    assert (await env.get("/auth/logout")).status_code == 405
    cross = await env.request("POST", "/auth/logout", {"origin": "https://evil.example"})
    assert cross.status_code == 403
    bare = await env.request("POST", "/auth/logout", {})
    assert bare.status_code == 403
    assert (await env.get("/a")).status_code == 200


async def test_logout_clears_session_and_continues_at_the_idp(clock: FakeClock) -> None:
    env = Env(clock, store=MemorySessionStore(clock=clock), post_logout_redirect_uri=APP + "/bye")
    await env.sign_in()
    stolen = dict(env.cookies)
    response = await env.request("POST", "/auth/logout", {"sec-fetch-site": "same-origin"})
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(IDP + "/end_session?")
    query = parse_qs(urlsplit(location).query)
    assert query["post_logout_redirect_uri"] == [APP + "/bye"]
    assert "id_token_hint" in query
    assert not env.session_cookies()
    end = await env.http.get(location)
    assert urlsplit(end.headers["location"])._replace(query="").geturl() == APP + "/bye"
    env.cookies = stolen  # a copy of the old cookie no longer works
    assert (await env.get("/a")).status_code == 401


async def test_logout_ends_a_cookie_only_session_in_this_process(env: Env) -> None:
    await env.sign_in()
    stolen = dict(env.cookies)
    response = await env.request("POST", "/auth/logout", {"origin": APP})
    assert response.status_code == 303
    env.cookies = stolen
    assert (await env.get("/a")).status_code == 401


async def test_user_revocation_ends_sessions(env: Env, clock: FakeClock) -> None:
    await env.sign_in()
    clock.advance(1)
    await env.revocations.publish(
        Revocation(kind="user", connection=IDP, subject="alice", time=clock.time())
    )
    assert (await env.get("/a")).status_code == 401
    clock.advance(1)
    await env.sign_in()  # signing in again afterwards works
    assert (await env.get("/a")).status_code == 200


async def test_large_claims_are_chunked_and_read_back(clock: FakeClock) -> None:
    groups = tuple(f"group-with-a-long-name-{i:04d}" for i in range(250))
    env = Env(clock, user=DevUser(sub="bob", email="bob@corp.example", groups=groups))
    await env.sign_in()
    names = sorted(env.session_cookies())
    assert names[0].endswith(".0")
    assert len(names) > 1
    assert all(len(v) <= 3800 for v in env.session_cookies().values())
    assert (await env.get("/a")).status_code == 200
    assert env.seen[-1]["claims"]["groups"] == list(groups)
    del env.cookies[names[-1]]  # truncation: a lost chunk
    assert (await env.get("/a")).status_code == 401


async def test_errors_never_echo_cookie_values(env: Env) -> None:
    await env.sign_in()
    name, value = next(iter(env.session_cookies().items()))
    env.cookies[name] = value[:-5]
    login = env.login
    scope = {
        "type": "http",
        "method": "GET",
        "headers": [(b"cookie", f"{name}={value[:-5]}".encode())],
    }
    with pytest.raises(SessionInvalid) as info:
        await login.authenticate(scope)
    assert value[:40] not in str(info.value)
    assert value[:40] not in repr(info.value)


@pytest.mark.parametrize("root_in_path", [True, False], ids=["path-has-root", "path-below-root"])
@pytest.mark.parametrize("store", ["cookie", "memory"])
async def test_app_mounted_under_a_root_path_signs_in(
    clock: FakeClock, root_in_path: bool, store: str
) -> None:
    env = Env(
        clock,
        store=MemorySessionStore(clock=clock) if store == "memory" else None,
        root_path="/app",
        root_in_path=root_in_path,
    )
    page = await env.get("/app/reports?q=1", accept="text/html")
    assert page.status_code == 302
    login = page.headers["location"]
    assert login.startswith("/app/auth/login?")
    assert parse_qs(urlsplit(login).query)["return_to"] == ["/app/reports?q=1"]
    start = await env.get(login)
    authorize = parse_qs(urlsplit(start.headers["location"]).query)
    assert authorize["redirect_uri"] == [APP + "/app/auth/callback"]
    state_cookie = start.headers["set-cookie"]
    assert "Path=/app/auth;" in state_cookie
    back = await env.http.get(start.headers["location"])
    done = await env.callback(back.headers["location"])
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/app/reports?q=1"
    session = [h for h in done.headers.get_list("set-cookie") if "sso_session" in h]
    assert session
    assert all(h.startswith("__Secure-sso_session") and "Path=/app;" in h for h in session)
    assert (await env.get("/app/reports")).status_code == 200
    assert env.seen[-1]["cookie"] is None  # stripped before the app
    out = await env.request("POST", "/app/auth/logout", {"sec-fetch-site": "same-origin"})
    assert out.status_code == 303
    assert out.headers["location"].startswith(IDP + "/end_session?")
    assert (await env.get("/app/reports")).status_code == 401


async def test_return_to_outside_the_mount_point_falls_back(clock: FakeClock) -> None:
    env = Env(clock, root_path="/app", end_session=False)
    response = await env.sign_in("/other-app/admin")
    assert response.headers["location"] == "/app/"
    out = await env.request("POST", "/app/auth/logout", {"sec-fetch-site": "same-origin"})
    assert out.headers["location"] == "/app/"


async def test_root_and_mounted_apps_keep_separate_session_cookies(clock: FakeClock) -> None:
    root = Env(clock)
    await root.sign_in()
    mounted = Env(clock, root_path="/app")
    await mounted.sign_in("/app/x")
    assert set(root.session_cookies()).isdisjoint(mounted.session_cookies())


async def test_anonymous_login_floods_store_nothing_and_evict_no_pending_sign_in(
    clock: FakeClock,
) -> None:
    store = MemorySessionStore(clock=clock, max_states=2)
    env = Env(clock, store=store)
    url = await env.start("/mine")
    for _ in range(50):  # strangers start sign-ins they never finish
        anonymous = await env.app.get("/auth/login")
        assert anonymous.status_code == 302
    assert store._states == {}
    assert store._leases == {}
    assert (await env.callback(url)).headers["location"] == "/mine"


async def test_a_browser_keeps_a_bounded_number_of_pending_sign_ins(env: Env) -> None:
    urls = [await env.start(f"/tab{n}") for n in range(MAX_PENDING_SIGNINS + 3)]
    states = [k for k in env.cookies if "sso_state" in k]
    assert len(states) == MAX_PENDING_SIGNINS
    # The newest tabs finish; the oldest ones were dropped and must start again.
    for n in range(3, len(urls)):
        assert (await env.callback(urls[n])).headers["location"] == f"/tab{n}"
    stale = await env.callback(urls[0])
    assert stale.status_code == 400
    assert "missing" in stale.json()["error_description"]
