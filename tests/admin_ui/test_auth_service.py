"""proxy.ops.auth on the memory store with a fake clock: session lifetime, roles, lockout."""

from __future__ import annotations

import pytest

from proxy.config import AdminConfig, AdminUserConfig
from proxy.ops.auth import Auth, LoginRefused, Role, digest
from proxy.store.backend import Backend
from proxy.store.memory import memory_backend
from tests.admin_ui.conftest import HASH, PASSWORD


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def setup() -> tuple[Auth, Backend, Clock]:
    store = memory_backend()
    await store.open()
    clock = Clock()
    auth = Auth(store.accounts, store.sessions, store.audit,
                AdminConfig(session_ttl_s=60, lockout_after=2, lockout_s=30), clock)
    await auth.sync_users([AdminUserConfig("siti", "operator", HASH)])
    return auth, store, clock


async def test_a_session_ends_after_its_ttl(setup: tuple[Auth, Backend, Clock]) -> None:
    auth, store, clock = setup
    token, who = await auth.login("siti", PASSWORD)
    assert (who.name, who.role) == ("siti", Role.OPERATOR) and who.csrf_token
    assert await auth.principal(token) == who
    assert await store.sessions.get_session(token, clock.now) is None, "only the digest is stored"
    assert await store.sessions.get_session(digest(token), clock.now) is not None
    clock.now += 60
    assert await auth.principal(token) is None
    assert await auth.principal(None) is None and await auth.principal("") is None


async def test_role_changes_apply_to_open_sessions(
        setup: tuple[Auth, Backend, Clock]) -> None:
    auth, store, clock = setup
    token, _ = await auth.login("siti", PASSWORD)
    await auth.sync_users([AdminUserConfig("siti", "viewer", HASH)])
    who = await auth.principal(token)
    assert who is not None and who.role is Role.VIEWER
    await store.accounts.add_user("siti", HASH, "superuser", clock.now, replace=True)
    assert await auth.principal(token) is None, "an unknown role grants nothing"
    with pytest.raises(LoginRefused):
        await auth.login("siti", PASSWORD)


async def test_lockout_lifts_after_its_time(setup: tuple[Auth, Backend, Clock]) -> None:
    auth, _, clock = setup
    for _ in range(2):
        with pytest.raises(LoginRefused):
            await auth.login("siti", "wrong-password")
    with pytest.raises(LoginRefused) as refused:
        await auth.login("siti", PASSWORD)
    assert refused.value.locked_until == clock.now + 30
    clock.now += 30
    token, _ = await auth.login("siti", PASSWORD)
    assert await auth.principal(token) is not None


async def test_logout_is_idempotent(setup: tuple[Auth, Backend, Clock]) -> None:
    auth, store, _ = setup
    token, who = await auth.login("siti", PASSWORD)
    await auth.logout(who)
    await auth.logout(who)
    assert await auth.principal(token) is None
    actions = [e.action for e in await store.audit.audit_entries()]
    assert actions == ["logout", "login"]
