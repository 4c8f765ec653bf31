"""SQLite schema and its migrations (applied in order, tracked by PRAGMA user_version)."""

from __future__ import annotations

import sqlite3

from proxy.store.errors import StoreError
from proxy.store.sqlite.writer import translate

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE requests (
        id               TEXT PRIMARY KEY,
        upstream         TEXT NOT NULL,
        method           TEXT NOT NULL,
        path             TEXT NOT NULL,
        query            TEXT NOT NULL,
        headers          TEXT NOT NULL,
        body             BLOB NOT NULL,
        received_at      REAL NOT NULL,
        status           TEXT NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  REAL,
        updated_at       REAL NOT NULL,
        reason           TEXT,
        lease_owner      TEXT,
        lease_expires_at REAL
    );
    CREATE INDEX requests_due ON requests (upstream, status, next_attempt_at);
    CREATE INDEX requests_status ON requests (status, id);
    CREATE TABLE attempts (
        request_id    TEXT NOT NULL REFERENCES requests (id),
        number        INTEGER NOT NULL,
        upstream      TEXT NOT NULL,
        started_at    REAL NOT NULL,
        duration_s    REAL NOT NULL,
        verdict       TEXT NOT NULL,
        http_status   INTEGER,
        error         TEXT,
        response_body BLOB,
        PRIMARY KEY (request_id, number)
    );
    CREATE INDEX attempts_upstream_time ON attempts (upstream, started_at);
    CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), checked_at REAL NOT NULL);
    """,
    # v2: an operator retry restarts the age window (see lifecycle.Transition.retried_at).
    """
    ALTER TABLE requests ADD COLUMN retried_at REAL;
    """,
    # v3: BPJS awareness (endpoint, ordering key, service-day deadline, held-by parent)
    # and the admin side (users, sessions, audit log, maintenance windows).
    """
    ALTER TABLE requests ADD COLUMN endpoint TEXT;
    ALTER TABLE requests ADD COLUMN ordering_key TEXT;
    ALTER TABLE requests ADD COLUMN expires_at REAL;
    ALTER TABLE requests ADD COLUMN held_by TEXT;
    CREATE INDEX requests_ordering ON requests (ordering_key, id)
        WHERE ordering_key IS NOT NULL;
    CREATE TABLE users (
        name          TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role          TEXT NOT NULL,
        created_at    REAL NOT NULL,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until  REAL
    );
    CREATE TABLE sessions (
        id         TEXT PRIMARY KEY,
        user_name  TEXT NOT NULL REFERENCES users (name),
        csrf_token TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE audit_log (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        at     REAL NOT NULL,
        actor  TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        detail TEXT
    );
    CREATE INDEX audit_log_at ON audit_log (at);
    CREATE TABLE maintenance_windows (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        upstream     TEXT NOT NULL,
        starts_at    REAL NOT NULL,
        ends_at      REAL,
        reason       TEXT,
        created_by   TEXT NOT NULL,
        created_at   REAL NOT NULL,
        cancelled_at REAL
    );
    CREATE INDEX maintenance_upstream ON maintenance_windows (upstream, starts_at);
    """,
    # v4: delivery modes. A natural or Idempotency-Key dedup key (unique while set), the
    # coalescing key of absolute-value updates, and the callback outbox.
    """
    ALTER TABLE requests ADD COLUMN dedup_key TEXT;
    ALTER TABLE requests ADD COLUMN coalesce_key TEXT;
    CREATE UNIQUE INDEX requests_dedup ON requests (dedup_key) WHERE dedup_key IS NOT NULL;
    CREATE INDEX requests_coalesce ON requests (coalesce_key, id)
        WHERE coalesce_key IS NOT NULL;
    CREATE TABLE callbacks (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id      TEXT NOT NULL REFERENCES requests (id),
        upstream        TEXT NOT NULL,
        url             TEXT NOT NULL,
        payload         BLOB NOT NULL,
        status          TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        lease_expires_at REAL,
        last_error      TEXT,
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL
    );
    CREATE INDEX callbacks_due ON callbacks (status, next_attempt_at);
    """,
    # v5: the detail page reads a request's history from the audit log and its callbacks
    # by request id; without these both are full scans of ever-growing tables.
    """
    CREATE INDEX audit_log_target ON audit_log (target, id);
    CREATE INDEX callbacks_request ON callbacks (request_id);
    """,
    # v6: bulk retry jobs and their progress, so a restart resumes them.
    """
    CREATE TABLE bulk_jobs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        actor       TEXT NOT NULL,
        filter      TEXT NOT NULL,
        expected    INTEGER NOT NULL,
        started_at  REAL NOT NULL,
        retried     INTEGER NOT NULL DEFAULT 0,
        skipped     INTEGER NOT NULL DEFAULT 0,
        stage       INTEGER NOT NULL DEFAULT 0,
        cursor      TEXT,
        finished_at REAL,
        error       TEXT
    );
    CREATE INDEX bulk_jobs_unfinished ON bulk_jobs (id) WHERE finished_at IS NULL;
    """,
    # v7: a SEP insert whose send got no answer is settled by reads retried with backoff
    # (reconcile_reads: not NULL while reading, the failed reads so far), and a request
    # refused for its own credentials is counted so it ends failed and is not the probe.
    """
    ALTER TABLE requests ADD COLUMN reconcile_reads INTEGER;
    ALTER TABLE requests ADD COLUMN own_faults INTEGER NOT NULL DEFAULT 0;
    """,
    # v8: nothing periodic reads the backlog. Counts per (upstream, status, SEP or not)
    # are kept by triggers in the transaction of every insert and status change (the
    # summary, /metrics and backpressure read a few rows instead of counting a million),
    # and the oldest waiting request of an upstream is the first entry of a partial
    # index. Building both reads the table once (~2 s at 1,000,000 rows, measured in
    # bench/RESULTS.md); afterwards each write maintains them. The SEP test is the one of
    # records.SEP_ENDPOINT_PREFIX / SEP_PATH_PART (LIKE: ASCII case-insensitive).
    """
    CREATE TABLE request_counts (
        upstream TEXT NOT NULL,
        status   TEXT NOT NULL,
        sep      INTEGER NOT NULL,
        n        INTEGER NOT NULL,
        PRIMARY KEY (upstream, status, sep)
    ) WITHOUT ROWID;
    INSERT INTO request_counts (upstream, status, sep, n)
        SELECT upstream, status, IFNULL(endpoint LIKE 'vclaim.sep%' OR path LIKE '%/sep/%', 0),
               COUNT(*) FROM requests GROUP BY 1, 2, 3;
    CREATE TRIGGER requests_counted_insert AFTER INSERT ON requests BEGIN
        INSERT INTO request_counts (upstream, status, sep, n) VALUES (NEW.upstream,
            NEW.status, IFNULL(NEW.endpoint LIKE 'vclaim.sep%' OR NEW.path LIKE '%/sep/%', 0),
            1)
        ON CONFLICT (upstream, status, sep) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER requests_counted_update AFTER UPDATE OF status, upstream, endpoint, path
        ON requests WHEN OLD.status IS NOT NEW.status OR OLD.upstream IS NOT NEW.upstream
        OR OLD.endpoint IS NOT NEW.endpoint OR OLD.path IS NOT NEW.path BEGIN
        UPDATE request_counts SET n = n - 1 WHERE upstream = OLD.upstream
            AND status = OLD.status AND sep = IFNULL(OLD.endpoint LIKE 'vclaim.sep%'
                                                     OR OLD.path LIKE '%/sep/%', 0);
        INSERT INTO request_counts (upstream, status, sep, n) VALUES (NEW.upstream,
            NEW.status, IFNULL(NEW.endpoint LIKE 'vclaim.sep%' OR NEW.path LIKE '%/sep/%', 0),
            1)
        ON CONFLICT (upstream, status, sep) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER requests_counted_delete AFTER DELETE ON requests BEGIN
        UPDATE request_counts SET n = n - 1 WHERE upstream = OLD.upstream
            AND status = OLD.status AND sep = IFNULL(OLD.endpoint LIKE 'vclaim.sep%'
                                                     OR OLD.path LIKE '%/sep/%', 0);
    END;
    CREATE INDEX requests_waiting ON requests (upstream, id)
        WHERE status IN ('pending', 'in_flight');
    """,
    # v9: new rows are counted by the writer, once per group commit (sqlite.count_inserted):
    # the per-row insert trigger cost ~7 us of the writer's time per request.
    """
    DROP TRIGGER requests_counted_insert;
    """,
    # v10: retention ([retention]) drops the bodies of old final requests and records
    # when, so a retry knows there is nothing left to send (lifecycle.BodyPurged).
    """
    ALTER TABLE requests ADD COLUMN purged_at REAL;
    """,
    # v11: the hash chain (proxy.store.chain): one entry per stored request, attempt,
    # state change and audit entry, appended in the transaction that stores it (once per
    # group commit); the checkpoints taken of its head, and each verification's outcome.
    # A state change has no table of its own: its record is the entry's. chain_ref finds
    # a record's entries when a purge marks them. Rows stored before this version are not
    # in the chain: it starts at the upgrade.
    """
    CREATE TABLE chain (
        seq       INTEGER PRIMARY KEY,
        kind      TEXT NOT NULL,
        ref       TEXT NOT NULL,
        leaf      BLOB NOT NULL,
        head      BLOB NOT NULL,
        purged_at REAL,
        record    BLOB
    );
    CREATE INDEX chain_ref ON chain (kind, ref);
    CREATE TABLE checkpoints (
        id   INTEGER PRIMARY KEY AUTOINCREMENT,
        seq  INTEGER NOT NULL,
        head BLOB NOT NULL,
        at   REAL NOT NULL,
        note TEXT
    );
    CREATE INDEX checkpoints_head ON checkpoints (head);
    CREATE TABLE verifications (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          REAL NOT NULL,
        ok          INTEGER NOT NULL,
        head_seq    INTEGER NOT NULL,
        checked     INTEGER NOT NULL,
        from_seq    INTEGER NOT NULL,
        broken_seq  INTEGER,
        broken_kind TEXT,
        broken_ref  TEXT,
        problem     TEXT
    );
    """,
    # v12: bulk retry jobs carry a lease (the same verb on every backend: one instance
    # walks a job; the next start takes over a crashed one's after the lease).
    """
    ALTER TABLE bulk_jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE bulk_jobs ADD COLUMN lease_until REAL;
    """,
    # v13: encryption at rest (proxy.store.sealing). The key id each sealed value is
    # encrypted under (NULL: plaintext, as every row before this version), and the key
    # ids this store has used, each with a check value (a wrong key is refused at start)
    # and when `tenang rekey` left nothing under it.
    """
    ALTER TABLE requests ADD COLUMN key_id TEXT;
    ALTER TABLE attempts ADD COLUMN key_id TEXT;
    ALTER TABLE callbacks ADD COLUMN key_id TEXT;
    CREATE TABLE sealing_keys (
        key_id     TEXT PRIMARY KEY,
        check_value BLOB NOT NULL,
        added_at   REAL NOT NULL,
        retired_at REAL
    );
    """,
    # v14: a request's chain entry (seq, leaf, head) in its own row, which intake writes
    # anyway, instead of a row of the chain table: a group commit of 31 wrote 6.6 more
    # WAL frames with the chain on, 0.7 like this (bench/RESULTS.md). No index: the
    # writer numbers rows in the order it inserts them, so their seqs rise with the rowid
    # (chain_entries finds a seq by bisecting the rowids). A request whose row goes
    # (retention) moves its entry to the chain table, as its tombstone. Entries stored
    # before stay where they are.
    """
    ALTER TABLE requests ADD COLUMN chain_seq INTEGER;
    ALTER TABLE requests ADD COLUMN chain_leaf BLOB;
    ALTER TABLE requests ADD COLUMN chain_head BLOB;
    """,
)


def statements(script: str) -> list[str]:
    """The statements of ``script``; a trigger's body keeps its own semicolons."""
    out: list[str] = []
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                out.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        out.append(pending.strip())
    return out


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; returns the version reached."""
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current > len(MIGRATIONS):
            raise StoreError(
                f"database schema v{current} is newer than this Tenang (v{len(MIGRATIONS)})"
            )
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            conn.execute("BEGIN IMMEDIATE")
            for statement in statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
            conn.execute("COMMIT")
        return len(MIGRATIONS)
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise translate(exc) from exc
