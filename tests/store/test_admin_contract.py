"""The admin roles' contract (Accounts, Sessions, AuditLog, RequestLog): users,
sessions, audit log and request-log queries, run on every backend in conftest.BACKENDS."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.ids import new_request_id
from proxy.lifecycle import Status, Transition, Verdict
from proxy.store.admin_filter import id_ceiling, id_floor
from proxy.store.backend import Backend
from proxy.store.errors import Conflict, StoreError, StoreUnavailable
from proxy.store.records import RequestFilter, Session
from tests.store.test_contract import OTHER, T0, UP, attempt, put, req
from tests.store_support import hand_back


@pytest.fixture
def admin(store: Backend) -> Backend:
    return store


def sealed(store: Backend) -> bool:
    """Whether ``store`` encrypts bodies at rest (proxy.store.sealing)."""
    keys = getattr(store.engine, "keys", None)
    return keys is not None and keys.enabled


@pytest.fixture
def plain(store: Backend) -> Backend:
    """A backend that searches bodies: an encrypted body cannot be matched in SQL."""
    if sealed(store):
        pytest.skip("encrypted bodies are not searched (test_sealed_bodies_are_not_searched)")
    return store


async def settle(store: Backend, request_id: str, status: Status, at: float,
                 upstream: str = UP) -> None:
    """Move a pending request to ``status`` the way the relay would; others stay pending."""
    claimed = await store.queue.claim_due(upstream, at, 1000, "w", at + 30)
    assert request_id in [r.id for r in claimed], "request was not due"
    for r in claimed:
        if r.id != request_id:
            await hand_back(store, r.id, "w", at)
    await store.queue.complete_attempt(request_id, "w", attempt(1, at),
                                       Transition(status, "test"), at)


# --- users -----------------------------------------------------------------------------------


async def test_add_user_then_get_it(admin: Backend) -> None:
    await admin.accounts.add_user("siti", "$argon2id$x", "operator", T0)

    user = await admin.accounts.get_user("siti")

    assert user is not None
    assert (user.name, user.password_hash, user.role, user.created_at) == (
        "siti", "$argon2id$x", "operator", T0)
    assert (user.failed_logins, user.locked_until) == (0, None)
    assert await admin.accounts.get_user("budi") is None


async def test_count_users_counts_added_and_removed_users(admin: Backend) -> None:
    assert await admin.accounts.count_users() == 0
    await admin.accounts.add_user("siti", "h1", "viewer", T0)
    await admin.accounts.add_user("budi", "h2", "admin", T0)
    await admin.accounts.remove_user("siti")

    assert await admin.accounts.count_users() == 1


async def test_add_user_refuses_an_existing_name_unless_replacing(admin: Backend) -> None:
    await admin.accounts.add_user("siti", "h1", "viewer", T0)
    with pytest.raises(Conflict):
        await admin.accounts.add_user("siti", "h2", "admin", T0 + 1)
    await admin.accounts.record_login_failure("siti", T0 + 2, lock_after=5, lock_s=900)

    await admin.accounts.add_user("siti", "h3", "admin", T0 + 3, replace=True)

    user = await admin.accounts.get_user("siti")
    assert user is not None
    assert (user.password_hash, user.role, user.created_at) == ("h3", "admin", T0)
    assert user.failed_logins == 1, "replacing the hash keeps the lockout state"


async def test_remove_user_ends_their_sessions(admin: Backend) -> None:
    await admin.accounts.add_user("siti", "h", "viewer", T0)
    await admin.accounts.add_user("budi", "h", "viewer", T0)
    await admin.sessions.create_session(Session("s1", "siti", "c", T0, T0 + 60))
    await admin.sessions.create_session(Session("b1", "budi", "c", T0, T0 + 60))

    assert await admin.accounts.remove_user("siti") is True
    assert await admin.accounts.remove_user("siti") is False

    assert await admin.accounts.get_user("siti") is None
    assert await admin.sessions.get_session("s1", T0) is None
    assert await admin.sessions.get_session("b1", T0) is not None


async def test_a_new_password_ends_the_users_sessions_the_same_one_does_not(
        admin: Backend) -> None:
    await admin.accounts.add_user("siti", "h1", "viewer", T0)
    await admin.accounts.add_user("budi", "h1", "viewer", T0)
    await admin.sessions.create_session(Session("s1", "siti", "c", T0, T0 + 60))
    await admin.sessions.create_session(Session("b1", "budi", "c", T0, T0 + 60))
    # A restart re-syncs config users with the same hash (a role change only): kept.
    await admin.accounts.add_user("siti", "h1", "operator", T0 + 1, replace=True)
    assert await admin.sessions.get_session("s1", T0) is not None
    await admin.accounts.add_user("siti", "h2", "operator", T0 + 2, replace=True)
    assert await admin.sessions.get_session("s1", T0) is None
    assert await admin.sessions.get_session("b1", T0) is not None


async def test_the_nth_login_failure_locks_the_user(admin: Backend) -> None:
    await admin.accounts.add_user("siti", "h", "viewer", T0)
    for n in range(1, 5):
        user = await admin.accounts.record_login_failure("siti", T0 + n, lock_after=5, lock_s=900)
        assert user is not None and (user.failed_logins, user.locked_until) == (n, None)

    user = await admin.accounts.record_login_failure("siti", T0 + 5, lock_after=5, lock_s=900)

    assert user is not None
    assert (user.failed_logins, user.locked_until) == (0, T0 + 905)
    assert await admin.accounts.get_user("siti") == user


async def test_a_failure_after_the_lock_expired_starts_counting_again(
        admin: Backend) -> None:
    await admin.accounts.add_user("siti", "h", "viewer", T0)
    await admin.accounts.record_login_failure("siti", T0, lock_after=1, lock_s=10)

    user = await admin.accounts.record_login_failure("siti", T0 + 10, lock_after=3, lock_s=10)

    assert user is not None and (user.failed_logins, user.locked_until) == (1, None)


async def test_reset_login_failures_clears_count_and_lock(admin: Backend) -> None:
    await admin.accounts.add_user("siti", "h", "viewer", T0)
    await admin.accounts.record_login_failure("siti", T0, lock_after=1, lock_s=900)

    await admin.accounts.reset_login_failures("siti")

    user = await admin.accounts.get_user("siti")
    assert user is not None and (user.failed_logins, user.locked_until) == (0, None)
    assert await admin.accounts.record_login_failure("nobody", T0, lock_after=1, lock_s=1) is None


# --- sessions --------------------------------------------------------------------------------


async def test_session_lives_until_it_expires_or_is_deleted(admin: Backend) -> None:
    await admin.accounts.add_user("siti", "h", "viewer", T0)
    s = Session("digest-1", "siti", "csrf-1", T0, T0 + 60)
    await admin.sessions.create_session(s)

    assert await admin.sessions.get_session("digest-1", T0 + 59.9) == s
    assert await admin.sessions.get_session("digest-1", T0 + 60) is None
    assert await admin.sessions.get_session("other", T0) is None
    await admin.sessions.delete_session("digest-1")
    await admin.sessions.delete_session("digest-1")
    assert await admin.sessions.get_session("digest-1", T0) is None


async def test_sessions_need_an_existing_user(admin: Backend) -> None:
    with pytest.raises(StoreError):
        await admin.sessions.create_session(Session("d", "ghost", "c", T0, T0 + 60))


async def test_delete_expired_sessions_keeps_live_ones(admin: Backend) -> None:
    await admin.accounts.add_user("siti", "h", "viewer", T0)
    for i, expires in enumerate((T0 + 1, T0 + 2, T0 + 100)):
        await admin.sessions.create_session(Session(f"d{i}", "siti", "c", T0, expires))

    assert await admin.sessions.delete_expired_sessions(T0 + 2) == 2

    assert await admin.sessions.get_session("d2", T0 + 50) is not None


# --- audit log -------------------------------------------------------------------------------


async def test_audit_entries_newest_first_by_target_and_paged(admin: Backend) -> None:
    await admin.audit.audit("siti", "retry", "R1", None, T0)
    await admin.audit.audit("budi", "cancel", "R2", "why", T0 + 1)
    await admin.audit.audit("siti", "login", None, None, T0 + 2)
    await admin.audit.audit("ani", "retry", "R1", "bulk #1", T0 + 3)

    everything = await admin.audit.audit_entries()
    for_r1 = await admin.audit.audit_entries(target="R1")
    older = await admin.audit.audit_entries(limit=2, before_id=everything[1].id)

    assert [(e.actor, e.action, e.target) for e in everything] == [
        ("ani", "retry", "R1"), ("siti", "login", None), ("budi", "cancel", "R2"),
        ("siti", "retry", "R1")]
    assert [e.at for e in everything] == [T0 + 3, T0 + 2, T0 + 1, T0]
    assert everything[2].detail == "why"
    assert [e.actor for e in for_r1] == ["ani", "siti"]
    assert [e.action for e in older] == ["cancel", "retry"]


# --- request log -----------------------------------------------------------------------------


async def test_find_requests_pages_newest_first(admin: Backend) -> None:
    rows = await put(admin, *(req(i) for i in range(1, 8)))
    newest_first = [r.id for r in reversed(rows)]

    first = await admin.log.find_requests(RequestFilter(), limit=3, cursor=None)
    second = await admin.log.find_requests(RequestFilter(), limit=3, cursor=first.next_cursor)
    third = await admin.log.find_requests(RequestFilter(), limit=3, cursor=second.next_cursor)

    assert [r.id for r in first.items] == newest_first[:3]
    assert [r.id for r in second.items] == newest_first[3:6]
    assert [r.id for r in third.items] == newest_first[6:]
    assert third.next_cursor is None
    assert not (first.capped or second.capped or third.capped)


async def test_find_requests_filters_status_upstream_and_endpoint(admin: Backend) -> None:
    sep = req(1, upstream=OTHER, endpoint="vclaim.sep.insert")
    rujukan = req(2, upstream=OTHER, endpoint="vclaim.rujukan.insert")
    antrean = req(3, endpoint="antrean.add")
    failed = req(4, endpoint="antrean.add")
    await put(admin, sep, rujukan, antrean, failed)
    await settle(admin, failed.id, Status.FAILED, T0 + 10)

    async def found(**kwargs: object) -> list[str]:
        page = await admin.log.find_requests(RequestFilter(**kwargs), limit=10,  # type: ignore[arg-type]
                                             cursor=None)
        return [r.id for r in page.items]

    assert await found(upstream=OTHER) == [rujukan.id, sep.id]
    assert await found(endpoint="vclaim.sep") == [sep.id]
    assert await found(endpoint="VCLAIM.") == [rujukan.id, sep.id]
    assert await found(status=Status.FAILED) == [failed.id]
    assert await found(status=Status.PENDING, upstream=UP) == [antrean.id]
    assert await found(endpoint="antrean.add", status=Status.FAILED) == [failed.id]


async def test_find_requests_by_receive_time_range(admin: Backend) -> None:
    rows = await put(admin, *(req(i) for i in range(1, 6)))

    page = await admin.log.find_requests(
        RequestFilter(received_from=T0 + 2, received_to=T0 + 4), limit=10, cursor=None)

    assert [r.id for r in page.items] == [rows[2].id, rows[1].id]


async def test_a_time_range_pages_with_a_cursor(plain: Backend) -> None:
    rows = await put(plain, *(req(i, body=b"needle") for i in range(1, 9)))
    f = RequestFilter(received_from=T0 + 2, received_to=T0 + 7)
    scanning = RequestFilter(received_from=T0 + 2, received_to=T0 + 7, text="needle")

    for flt in (f, scanning):
        first = await plain.log.find_requests(flt, limit=2, cursor=None)
        second = await plain.log.find_requests(flt, limit=2, cursor=first.next_cursor)
        third = await plain.log.find_requests(flt, limit=2, cursor=second.next_cursor)
        assert [r.id for r in first.items] == [rows[5].id, rows[4].id]
        assert [r.id for r in second.items] == [rows[3].id, rows[2].id]
        assert [r.id for r in third.items] == [rows[1].id]
        assert third.next_cursor is None


async def test_find_requests_free_text_over_body_path_and_query(plain: Backend) -> None:
    by_card = req(1, body=b'{"noKartu": "0001234567890", "tglSep": "2024-01-01"}')
    by_booking = req(2, body=b'{"kodebooking": "KB-20240101-0007"}')
    by_path = req(3, path="/vclaim-rest/SEP/0301R0011117V000008", body=b"")
    binary = req(4, body=b"\xff\xfe noSep=0301R0011117V000008")
    percent = req(5, body=b'{"note": "100% ok_done"}')
    await put(plain, by_card, by_booking, by_path, binary, percent)

    async def found(text: str) -> list[str]:
        page = await plain.log.find_requests(RequestFilter(text=text), limit=10, cursor=None)
        return [r.id for r in page.items]

    assert await found("0001234567890") == [by_card.id]
    assert await found("kb-20240101") == [by_booking.id], "ASCII case-insensitive"
    assert await found("0301R0011117V000008") == [binary.id, by_path.id]
    assert await found("100%") == [percent.id]
    assert await found("_done") == [percent.id]
    assert await found("0%_") == [], "% and _ are literal"
    assert await found("nothing like it") == []


async def test_a_scan_stops_at_the_window_and_says_where_to_go_on(plain: Backend) -> None:
    rows = await put(plain, *(req(i, body=b"x" if i % 4 else b"needle") for i in range(1, 13)))
    newest_first = list(reversed(rows))  # ids 12..1; needles at 12, 8, 4

    first = await plain.log.find_requests(RequestFilter(text="needle"), limit=10, cursor=None,
                                          scan_window=5)
    second = await plain.log.find_requests(RequestFilter(text="needle"), limit=10,
                                           cursor=first.next_cursor, scan_window=5)
    third = await plain.log.find_requests(RequestFilter(text="needle"), limit=10,
                                          cursor=second.next_cursor, scan_window=5)

    assert [r.id for r in first.items] == [newest_first[0].id, newest_first[4].id]
    assert first.capped and first.next_cursor == newest_first[4].id
    assert [r.id for r in second.items] == [newest_first[8].id]
    assert second.capped and second.next_cursor == newest_first[9].id
    assert third.items == [] and third.next_cursor is None and not third.capped


async def test_a_full_page_inside_the_window_is_not_capped(plain: Backend) -> None:
    rows = await put(plain, *(req(i, body=b"needle") for i in range(1, 9)))

    page = await plain.log.find_requests(RequestFilter(text="needle"), limit=2, cursor=None,
                                         scan_window=4)

    assert [r.id for r in page.items] == [rows[7].id, rows[6].id]
    assert page.next_cursor == rows[6].id and not page.capped


async def test_count_requests_counts_every_match(plain: Backend) -> None:
    rows = await put(plain, *(req(i, body=b"needle" if i % 2 else b"hay") for i in range(1, 9)))
    for r in rows[:3]:
        await settle(plain, r.id, Status.DEAD, T0 + 20)

    assert await plain.log.count_requests(RequestFilter()) == 8
    assert await plain.log.count_requests(RequestFilter(text="needle")) == 4
    assert await plain.log.count_requests(RequestFilter(status=Status.DEAD)) == 3
    assert await plain.log.count_requests(RequestFilter(status=Status.DEAD, text="needle")) == 2
    assert await plain.log.count_requests(RequestFilter(upstream=OTHER)) == 0


async def test_attempt_buckets_count_verdicts_per_bucket(admin: Backend) -> None:
    a, b, c, other = await put(admin, req(1), req(2), req(3), req(4, upstream=OTHER))
    plan = [(a, T0 + 100, Verdict.SUCCESS), (b, T0 + 110, Verdict.TRANSIENT),
            (c, T0 + 170, Verdict.SUCCESS)]
    for r, at, verdict in plan:
        await admin.queue.claim_due(UP, at, 1, "w", at + 30)
        await admin.queue.complete_attempt(r.id, "w", attempt(1, at, verdict),
                                           Transition(Status.SUCCEEDED, "ok"), at)
    await admin.queue.claim_due(OTHER, T0 + 100, 1, "w", T0 + 130)
    await admin.queue.complete_attempt(other.id, "w", attempt(1, T0 + 100),
                                       Transition(Status.SUCCEEDED, "ok"), T0 + 100)

    buckets = await admin.log.attempt_buckets(UP, T0 + 60, 60)
    late = await admin.log.attempt_buckets(UP, T0 + 105, 60)

    assert [(bk.start, dict(bk.counts)) for bk in buckets] == [
        (T0 + 60, {Verdict.SUCCESS: 1, Verdict.TRANSIENT: 1}), (T0 + 120, {Verdict.SUCCESS: 1})]
    assert [(bk.start, dict(bk.counts)) for bk in late] == [
        (T0 + 105, {Verdict.TRANSIENT: 1}), (T0 + 165, {Verdict.SUCCESS: 1})]
    assert await admin.log.attempt_buckets("nobody", T0, 60) == []


async def test_sep_open_counts_open_sep_requests_per_upstream(admin: Backend) -> None:
    by_endpoint = req(1, upstream=OTHER, endpoint="vclaim.sep.insert")
    by_path = req(2, upstream=OTHER, path="/vclaim-rest/sep/2.0/update")
    done = req(3, upstream=OTHER, endpoint="vclaim.sep.delete")
    cancelled = req(4, upstream=OTHER, endpoint="vclaim.sep.updtglplg")
    not_sep = req(5, upstream=OTHER, endpoint="vclaim.rujukan.insert")
    antrean = req(6)
    await put(admin, by_endpoint, by_path, done, cancelled, not_sep, antrean)
    await settle(admin, done.id, Status.SUCCEEDED, T0 + 50, upstream=OTHER)
    await admin.operator.transition(cancelled.id, Status.PENDING,
                                    Transition(Status.CANCELLED, "cancelled by operator"), T0 + 60)

    assert await admin.log.sep_open_counts() == {OTHER: 2}


# --- helpers shared by the backends ------------------------------------------------------------


@pytest.mark.parametrize("at", [T0, T0 + 0.0004, T0 + 0.9999, 1.5, 4_102_444_800.123])
def test_id_bounds_bracket_the_ids_minted_at_a_time(at: float) -> None:
    minted = new_request_id(at)
    assert id_floor(at) <= minted < id_ceiling(at)
    assert id_ceiling(at) <= new_request_id(at + 0.0011)


async def test_admin_verbs_fail_cleanly_after_close(admin: Backend) -> None:
    await admin.close()
    with pytest.raises(StoreUnavailable):
        await admin.accounts.get_user("siti")
    with pytest.raises(StoreUnavailable):
        await admin.log.find_requests(RequestFilter(), limit=1, cursor=None)


def test_request_filter_knows_which_conditions_need_a_scan() -> None:
    assert not RequestFilter(status=Status.DEAD, received_from=T0).needs_scan
    for change in ({"upstream": UP}, {"endpoint": "x"}, {"text": "y"}):
        assert dataclasses.replace(RequestFilter(), **change).needs_scan  # type: ignore[arg-type]


async def test_sealed_bodies_are_not_searched_but_path_and_query_are(admin: Backend) -> None:
    if not sealed(admin):
        pytest.skip("bodies are stored in plaintext on this backend: they are searched")
    in_body = req(1, body=b'{"noKartu": "0001234567890", "nul": "\x00"}')
    in_path = req(2, path="/vclaim-rest/SEP/0301R0011117V000008", body=b"\x00\xff")
    in_query = req(3, query="nokartu=0001234567890")
    await put(admin, in_body, in_path, in_query)

    async def found(text: str) -> list[str]:
        page = await admin.log.find_requests(RequestFilter(text=text), limit=10, cursor=None)
        return [r.id for r in page.items]

    assert await found("0001234567890") == [in_query.id]
    assert await found("0301r0011117v000008") == [in_path.id]
    assert await admin.log.count_requests(RequestFilter(text="noKartu")) == 1
    got = await admin.log.get(in_body.id)
    assert got is not None and got.body == in_body.body
