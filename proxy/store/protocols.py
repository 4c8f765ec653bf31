"""The store seam, by role: one protocol per consumer, each a handful of domain verbs.

Backends persist what ``proxy.lifecycle`` decides; they never decide transitions. No
driver exception escapes a backend: everything is wrapped in ``proxy.store.errors``.
Every verb is safe to call concurrently. A backend (``proxy.store.backend.Backend``)
fills each role with one object; a consumer takes only the roles it uses, so the
delivery path never depends on the admin verbs, nor the admin UI on the queue's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from proxy.lifecycle import Status, Transition
from proxy.store.chain import ChainEntry, ChainHead, Checkpoint, Kind, Verification
from proxy.store.records import (
    SCAN_WINDOW,
    AttemptBucket,
    AttemptRecord,
    AuditEntry,
    BreakerRecord,
    BulkJobRecord,
    MaintenanceWindow,
    NewAudit,
    NewCallback,
    NewRequest,
    PurgeBatch,
    PurgeKind,
    RequestFilter,
    RequestPage,
    ResealBatch,
    Session,
    StoredAttempt,
    StoredCallback,
    StoredRequest,
    UpstreamSummary,
    User,
)


class Intake(Protocol):
    """The SIMRS-facing side: the gateway stores calls, backpressure counts the backlog,
    the results route reads a call back."""

    async def enqueue_or_match(self, request: NewRequest, settled_window_s: float,
                               now: float) -> StoredRequest | None:
        """Return only once ``request`` is committed to durable storage (pending, or
        in_flight when it carries a lease) and return None, unless another request
        holds its dedup key and ``lifecycle.still_matches`` it (``settled_window_s``,
        ``now``): then store nothing and return that one. An original that no longer
        matches loses its key to ``request``. Look-up, decision and insert are one
        transaction, so concurrent resubmissions of one key store exactly one new request.

        Raises StoreFull / StoreUnavailable when it could not be stored.
        """

    async def count_queued(self, upstream: str) -> int:
        """Requests of ``upstream`` waiting for delivery (``lifecycle.QUEUED``)."""

    async def get(self, request_id: str) -> StoredRequest | None: ...

    async def attempts(self, request_id: str) -> list[StoredAttempt]: ...


class RequestQueue(Protocol):
    """The relay's side: claim due requests under a lease, record how each attempt ended."""

    async def claim_due(
        self, upstream: str, now: float, limit: int, owner: str, lease_until: float,
        *, probe: bool = False,
    ) -> list[StoredRequest]:
        """Lease up to ``limit`` due requests of ``upstream`` (oldest first) as in_flight.

        A request is never claimed while an earlier one with the same ordering key is in
        ``lifecycle.BLOCKS_LATER``. With ``probe`` (the half-open breaker's one send) a
        due request with no own-fault history (``own_faults`` 0) is taken before older
        ones that were refused for credentials last time.
        """

    async def take_over_expired(
        self, upstream: str, now: float, owner: str, lease_until: float
    ) -> list[StoredRequest]:
        """Lease to ``owner`` the in_flight requests whose lease ended before ``now``.

        Their earlier worker died mid-delivery; the caller records the ambiguous attempt.
        """

    async def renew_leases(self, owner: str, request_ids: Sequence[str],
                           until: float) -> set[str]:
        """Extend to ``until`` the leases ``owner`` still holds on ``request_ids`` (in
        flight); return the ids renewed. A delivery still working on a request (its send
        outlived the lease, or its result waits for the store) renews its lease so that
        no take-over records it as interrupted and sends it again."""

    async def refresh_holds(self, upstream: str, now: float) -> list[StoredRequest]:
        """Pending requests behind a ``lifecycle.STUCK`` one with the same ordering key
        become held (``lifecycle.held_behind``); held ones with nothing stuck before them
        any more return to pending (``lifecycle.released``); one transaction. Returns the
        newly held, so they can be reported."""

    async def live_coalesced(self, coalesce_key: str) -> list[StoredRequest]:
        """The pending and in-flight requests with ``coalesce_key``, oldest first."""

    async def supersede(self, older: Sequence[str], newest: str, now: float,
                        callbacks: Mapping[str, NewCallback] | None = None) -> list[str]:
        """Cancel the requests of ``older`` still pending (``lifecycle.superseded_by``
        ``newest``) and return their ids; each cancel queues its callback from
        ``callbacks`` (built by the caller beforehand) in the same transaction."""

    async def complete_attempt(
        self, request_id: str, owner: str, attempt: AttemptRecord | None,
        transition: Transition, now: float, callback: NewCallback | None = None,
    ) -> None:
        """Persist an attempt (None: finished without one), the transition and the
        callback to send (if any), if ``owner`` still holds the lease.

        Raises Conflict when the lease was lost (the result is then not recorded twice),
        and ``lifecycle.IllegalTransition`` (nothing written) when ``lifecycle.ALLOWED``
        has no move from in_flight to ``transition.status``.
        """

    async def next_due_at(self, upstream: str) -> float | None:
        """When the earliest pending request of ``upstream`` not waiting behind an
        earlier one becomes due."""


class RequestLog(Protocol):
    """What the admin API, the UI and the metrics read: requests, attempts, summaries."""

    async def get(self, request_id: str) -> StoredRequest | None: ...

    async def attempts(self, request_id: str) -> list[StoredAttempt]: ...

    async def find_requests(self, f: RequestFilter, *, limit: int, cursor: str | None,
                            scan_window: int = SCAN_WINDOW) -> RequestPage:
        """Newest first, keyset-paginated by id (below ``cursor``). When ``f.needs_scan``
        at most ``scan_window`` candidate rows are read."""

    async def count_requests(self, f: RequestFilter) -> int:
        """Exact number of matching requests (no scan window: used for dry runs)."""

    async def summary(self) -> dict[str, UpstreamSummary]:
        """Per-upstream counts by status, oldest pending receive time, last attempt."""

    async def attempt_buckets(self, upstream: str, since: float,
                              bucket_s: float) -> list[AttemptBucket]:
        """Attempts of ``upstream`` started at or after ``since``, counted by verdict in
        buckets of ``bucket_s`` seconds; only buckets with attempts, oldest first."""

    async def sep_open_counts(self) -> dict[str, int]:
        """Per upstream: SEP requests (endpoint ``vclaim.sep*`` or a ``/SEP/`` path) in
        one of ``lifecycle.OPEN``."""


class Operator(Protocol):
    """A person's move of one request (retry, cancel), with its audit entry."""

    async def transition(
        self, request_id: str, expected: Status, transition: Transition, now: float,
        callback: NewCallback | None = None, audit: NewAudit | None = None,
    ) -> None:
        """Move a request that is still in ``expected`` state (queueing ``callback`` and
        appending ``audit`` to the audit log in the same transaction: all or nothing);
        otherwise raise Conflict. A move ``lifecycle.ALLOWED`` lacks raises
        ``lifecycle.IllegalTransition`` before anything is written."""


class Accounts(Protocol):
    """Admin UI users and their lockout state (``proxy.ops.auth``, ``tenang user``)."""

    async def add_user(self, name: str, password_hash: str, role: str, now: float, *,
                       replace: bool = False) -> None:
        """Create a user. With ``replace`` an existing user gets the new hash and role
        (its lockout state is kept; a changed hash ends its sessions); without it an
        existing name raises Conflict."""

    async def get_user(self, name: str) -> User | None: ...

    async def count_users(self) -> int:
        """How many users exist (start-up tells how to create the first one)."""

    async def remove_user(self, name: str) -> bool:
        """Delete the user and end their sessions; False when there was no such user."""

    async def record_login_failure(self, name: str, now: float, *, lock_after: int,
                                   lock_s: float) -> User | None:
        """Count one failed login (``rules.after_login_failure``). Returns the updated
        user, None when there is no such user."""

    async def reset_login_failures(self, name: str) -> None:
        """Clear the failure count and any lock (after a successful login)."""


class Sessions(Protocol):
    """Admin UI logins (``proxy.ops.auth``)."""

    async def create_session(self, session: Session) -> None:
        """Persist a session of an existing user (StoreError otherwise)."""

    async def get_session(self, session_id: str, now: float) -> Session | None:
        """The session, or None when unknown or expired at ``now``."""

    async def delete_session(self, session_id: str) -> None:
        """Idempotent."""

    async def delete_expired_sessions(self, now: float) -> int: ...


class AuditLog(Protocol):
    """Who did what, append-only."""

    async def audit(self, actor: str, action: str, target: str | None, detail: str | None,
                    at: float) -> None:
        """Append one entry to the audit log (never updated or deleted)."""

    async def audit_entries(self, *, target: str | None = None, limit: int = 100,
                            before_id: int | None = None) -> list[AuditEntry]:
        """Newest first; ``before_id`` pages further back."""


class Outbox(Protocol):
    """The callback sender's side of the outcome notifications to the SIMRS.

    Rows are created by the store itself, in the same transaction as the final transition
    they report (``NewCallback`` passed to ``complete_attempt`` / ``transition`` /
    ``supersede``), so an outcome is never reported without being stored, nor stored
    without being reported. The retry schedule the sender decides is persisted as
    ``next_attempt_at``.
    """

    async def claim_callbacks(self, now: float, limit: int,
                              lease_until: float) -> list[StoredCallback]:
        """Lease up to ``limit`` callbacks to send now, oldest due first: pending ones
        whose ``next_attempt_at`` has come, and ``sending`` ones whose lease ended before
        ``now`` (their sender died). Each becomes ``sending`` until ``lease_until`` with
        its ``attempts`` counted up by one; the returned rows show that new state."""

    async def finish_callback(self, callback_id: int, delivered: bool, error: str | None,
                              next_attempt_at: float | None, now: float) -> None:
        """Record how a claimed callback's attempt ended (``rules.finished_status``):
        ``delivered``; else pending again at ``next_attempt_at`` with ``error``; else
        (None) dead with ``error``.

        Raises Conflict when the callback is not ``sending`` (unknown id, or already
        finished).
        """

    async def next_callback_at(self) -> float | None:
        """When the earliest callback becomes claimable (a pending one's
        ``next_attempt_at`` or a sending one's lease end); None when none will."""


class Schedules(Protocol):
    """Work planned ahead: maintenance windows (``proxy.ops.maintenance``) and bulk retry
    jobs (``proxy.ops.bulk``). Backends keep the records; those services decide.

    A bulk job's progress is saved after every batch, so a restart resumes it; a lease
    says which instance walks it."""

    async def add_maintenance_window(
        self, upstream: str, starts_at: float, ends_at: float | None, reason: str,
        created_by: str, created_at: float,
    ) -> MaintenanceWindow:
        """Persist a new window and return it with its id."""

    async def cancel_maintenance_window(
        self, window_id: int, cancelled_at: float
    ) -> MaintenanceWindow | None:
        """Mark the window cancelled (an already cancelled one keeps its first time) and
        return it as stored; None when there is no window with that id."""

    async def maintenance_windows(
        self, *, upstream: str | None = None, in_force_after: float | None = None
    ) -> list[MaintenanceWindow]:
        """Windows ordered by start, then id. ``in_force_after``: only those neither
        ended nor cancelled at or before that time (None: all, history included)."""

    async def add_bulk_job(self, actor: str, filter: str, expected: int,
                           started_at: float) -> BulkJobRecord:
        """Persist a new job (no progress yet) and return it with its id."""

    async def save_bulk_job(self, job: BulkJobRecord) -> None:
        """Store the progress fields of ``job`` (retried, skipped, stage, cursor,
        finished_at, error); the rest never changes."""

    async def bulk_job(self, job_id: int) -> BulkJobRecord | None:
        """The job with that id, or None."""

    async def unfinished_bulk_jobs(self) -> list[BulkJobRecord]:
        """Jobs without ``finished_at``, oldest first."""

    async def lease_bulk_job(self, job_id: int, owner: str, now: float,
                             until: float) -> bool:
        """Lease the unfinished job to ``owner`` until ``until`` unless another owner's
        lease is still running at ``now``; True when ``owner`` holds it now. The holder
        calling again renews it; ``until`` <= ``now`` hands it back. Several instances
        resume jobs: only the holder walks one, and another takes over after the lease
        of a dead one ends."""


class Coordination(Protocol):
    """What the Tenang instances sharing one store agree on per upstream (the relay, the
    breakers): the circuit breaker's state and the send rate (the sends in flight are
    ``SendSlots``).

    A breaker move is a compare-and-set on the record's generation, so of several
    instances moving one breaker at once exactly one wins; the half-open probe is a
    lease, so all instances together send one probe; the send rate is one token bucket.
    Times are the callers' clocks, like the queue's leases (instances keep NTP time).
    ``shared`` is False on a store only one instance can open (SQLite, memory): their
    verbs keep the same state in process, and the relay keeps its own in-process breaker
    and bucket there, never calling them."""

    @property
    def shared(self) -> bool:
        """True when other Tenang instances may use this store at the same time."""

    async def breaker(self, upstream: str) -> BreakerRecord:
        """The breaker's record (a closed one, generation 0, the first time)."""

    async def move_breaker(self, upstream: str, generation: int, state: str,
                           opened_at: float | None) -> BreakerRecord | None:
        """Move the breaker to ``state`` (re-timed at ``opened_at``; a probe lease ends)
        if it is still at ``generation``, and return the new record; None when another
        move came first (read ``breaker`` for the winner's)."""

    async def lease_probe(self, upstream: str, owner: str, now: float,
                          reset_timeout_s: float, until: float) -> BreakerRecord | None:
        """Lease the half-open probe to ``owner`` until ``until``, moving the breaker to
        half-open, if it is open or half-open, opened ``reset_timeout_s`` or more before
        ``now``, and no unexpired lease is held; the new record, or None."""

    async def take_send_tokens(self, upstream: str, wanted: int, now: float,
                               per_second: float, burst: float) -> int:
        """Take up to ``wanted`` sends from the upstream's one token bucket (refilled at
        ``per_second`` up to ``burst``, full the first time); how many were granted."""

    async def return_send_tokens(self, upstream: str, count: int, burst: float) -> None:
        """Put back ``count`` tokens taken but not used (at most ``burst`` kept)."""


class SendSlots(Protocol):
    """The sends in flight per upstream across the Tenang instances sharing one store
    (``proxy.delivery.concurrency``): ``rate.max_concurrency`` is that many numbered send
    slots, each leased to the instance sending under it, and a live send waiting for one
    keeps the other instances' replays off the next one freed.

    Times are the callers' clocks, like the queue's leases. ``shared`` is False on a
    store only one instance can open (SQLite, memory): their verbs keep the same state in
    process, and each lane keeps its own slot count there, never calling them."""

    @property
    def shared(self) -> bool:
        """True when other Tenang instances may use this store at the same time."""

    async def take_send_slots(self, upstream: str, owner: str, wanted: int, limit: int,
                              now: float, until: float) -> list[int]:
        """Lease up to ``wanted`` of the upstream's ``limit`` send slots (numbered from 0)
        to ``owner`` until ``until``: those free, or whose lease ended by ``now``; their
        numbers. However many instances take at once, at most ``limit`` are held. None
        while another owner's live send waits for a slot (``take_live_send_slot``):
        replays leave the next slot freed to it."""

    async def take_live_send_slot(self, upstream: str, owner: str, limit: int, now: float,
                                  until: float, waiting_until: float) -> int | None:
        """One slot for a live send, as ``take_send_slots`` but whoever waits; None when
        none is free, and then ``owner`` is marked waiting until ``waiting_until`` (at
        least: a later mark of its own is kept) unless ``end_live_wait`` comes first."""

    async def end_live_wait(self, upstream: str, owner: str) -> None:
        """``owner`` has no live send waiting for a slot of ``upstream`` any more."""

    async def renew_send_slots(self, upstream: str, owner: str, slots: list[int],
                               until: float) -> list[int]:
        """Extend to ``until`` the leases of those of ``slots`` ``owner`` still holds;
        their numbers (one taken over after its lease ran out is not taken back)."""

    async def return_send_slots(self, upstream: str, owner: str, slots: list[int]) -> None:
        """Free those of ``slots`` ``owner`` still holds."""


class Retention(Protocol):
    """``[retention]``: old final requests lose their bodies, later their rows, one short
    batch at a time (``proxy.ops.retention`` walks the batches).

    Only requests in ``lifecycle.FINAL`` whose last change (``updated_at``) is before the
    cutoff are purged, and of those not one with a callback still to send
    (``records.UNSENT_CALLBACKS``), nor (whole rows) one that keeps a later request with
    its ordering key waiting (both in ``lifecycle.BLOCKS_LATER``). Audit entries are
    never purged."""

    async def purge(self, kind: PurgeKind, before: float, after_id: str | None,
                    limit: int, now: float) -> PurgeBatch:
        """One batch, one transaction: of the next ``limit`` requests by id after
        ``after_id`` (None: from the oldest) received before ``before``, purge those the
        rules above allow: ``BODIES`` empties the request body, the attempts' response
        bodies and the callbacks' payloads and sets ``purged_at`` to ``now`` (metadata
        kept; already purged ones are skipped); ``ROWS`` deletes the request with its
        attempts and callbacks. In the same transaction it leaves tombstones: the hash
        chain's entries of each purged request and of its attempts (``"<id>/<n>"``) are
        marked purged (``Chain.mark_purged``; ones already marked stay as they are), so
        the chain still verifies. Returns how many were purged and where to go on."""

    async def count_purgeable(self, kind: PurgeKind, before: float) -> int:
        """How many requests ``purge`` would purge with these arguments walking from the
        oldest (a dry run: nothing is written)."""

    async def purged(self, request_ids: Sequence[str]) -> dict[str, float]:
        """Of ``request_ids``, those a purge reached (bodies dropped or row deleted), with
        when: their tombstones. How the admin UI tells a purged request from one that
        never was."""


class Chain(Protocol):
    """The hash chain over requests, attempts, state changes and audit entries
    (``proxy.store.chain``), its checkpoints and its verifications.

    The chain is extended by the other roles' verbs themselves, in the transaction of
    what they store (on SQLite once per group commit); these verbs read it, write down
    where it stands, and mark entries whose records a purge removed."""

    async def chain_head(self) -> ChainHead:
        """The last entry's seq and head (0 and ``chain.GENESIS`` while empty)."""

    async def chain_entries(self, after_seq: int, limit: int) -> list[ChainEntry]:
        """Up to ``limit`` entries with seq above ``after_seq``, in seq order."""

    async def current_leaves(self, entries: Sequence[ChainEntry]) -> list[bytes | None]:
        """Per entry, the leaf of its record as stored now (None: the record is gone),
        encoded as ``proxy.store.chain`` says (plaintext bodies). For an entry marked
        purged, None when the purge did happen, else the leaf of what is still stored
        (``chain.request_leaf_now``, ``chain.attempt_leaf_now``): the walk reports a
        tombstone over a record still kept in full."""

    async def checkpoint(self, at: float, note: str | None = None) -> Checkpoint:
        """Record the current head as a checkpoint and return it."""

    async def checkpoints(self, *, head: bytes | None = None,
                          limit: int = 100) -> list[Checkpoint]:
        """Newest first; with ``head`` only the checkpoint of that head."""

    async def mark_purged(self, kind: Kind, refs: Sequence[str], at: float) -> int:
        """Mark the entries of ``kind`` for ``refs`` purged at ``at`` (their records are
        being removed: the leaf is no longer checked, the head still is); returns how
        many entries were marked. Retention's ``purge`` marks its own, in its
        transaction; marked without a purge, a record is reported by verification."""

    async def record_verification(self, result: Verification) -> None:
        """Keep the outcome of a verification (the UI shows the last one)."""

    async def last_verification(self) -> Verification | None: ...


class Notices(Protocol):
    """Which instance sends an admin notification (``proxy.observe.notify``): every
    instance watches the conditions and asks before it sends, so one pages per incident,
    and a survivor pages when the instance that would have is gone.

    ``condition`` names a rule ("breaker", "backlog", "dead", "held") of ``upstream``."""

    async def claim_notice(self, condition: str, upstream: str, at: float,
                           window_s: float) -> bool:
        """True for exactly one caller per ``window_s``: when no notice of ``condition``
        was claimed in the ``window_s`` before ``at``. The winner's notice stands open
        until ``claim_all_clear``."""

    async def claim_all_clear(self, condition: str, upstream: str) -> bool:
        """True for exactly one caller per claimed notice of ``condition`` still open
        (the "recovered" message answering it); it is closed."""


class Engine(Protocol):
    """The backend's own lifecycle (the composition root, readiness, backpressure)."""

    async def open(self) -> None:
        """Create or migrate the schema. Idempotent."""

    async def close(self) -> None:
        """Flush outstanding writes and release the database. Idempotent."""

    async def check_writable(self) -> None:
        """Raise StoreError unless a write can be committed right now."""

    def free_bytes(self) -> int:
        """Bytes intake may still fill on the storage holding the queue (OSError when
        it cannot be measured); backpressure keeps a floor of it for the relay."""


class Sealing(Protocol):
    """Encryption at rest (``proxy.store.sealing``): what `tenang rekey` walks to put every
    stored body, response body and callback payload under the current key, plaintext
    ones (stored before encryption was on) included. Sealing on write and opening on
    read are every other verb's own business: no consumer ever sees a sealed value."""

    async def reseal(self, after_id: str | None, limit: int) -> ResealBatch:
        """One batch, one transaction: of the next ``limit`` requests by id after
        ``after_id`` (None: from the oldest), every value of theirs not sealed under the
        current key is re-sealed under it (opened with the key it is under). A value
        changed meanwhile (purged, resealed by another walk) is left as it now is."""

    async def sealed_counts(self) -> Mapping[str | None, int]:
        """Stored values (non-empty bodies, response bodies, callback payloads) per key
        id, None for plaintext: a full read, for `tenang rekey`'s report."""

    async def retire_keys(self, key_ids: Sequence[str], now: float) -> None:
        """The walk is over: note that no value is left under ``key_ids`` (a start
        without them is then allowed: ``Keyring.check``), and let go of what the walk
        replaced (SQLite: its WAL checkpointed and truncated)."""


ROLES: Mapping[str, type] = {
    "intake": Intake, "queue": RequestQueue, "log": RequestLog, "operator": Operator,
    "accounts": Accounts, "sessions": Sessions, "audit": AuditLog, "outbox": Outbox,
    "schedules": Schedules, "coordination": Coordination, "send_slots": SendSlots,
    "retention": Retention, "chain": Chain, "notices": Notices, "sealing": Sealing,
    "engine": Engine,
}
