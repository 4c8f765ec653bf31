-- The SQLite backend's statements, one block each: "-- name --", comment lines, the SQL.
-- Loaded once by proxy/store/sqlite/queries.py. Written there, not here: the columns
-- ({REQUEST_COLUMNS}, {CALLBACK_COLUMNS}, {WINDOW_COLUMNS}, {JOB_COLUMNS}) and the status
-- lists ({BLOCKS_LATER}, {STUCK}, {QUEUED}, {LIVE}, {OPEN}, {FINAL}, and the callbacks'
-- {UNSENT_CALLBACKS}), rendered from proxy.lifecycle's and proxy.store.records' sets, so
-- no status list is spelled twice. {ids} (a list of
-- placeholders) and {where} (the request-log builder's conditions) are filled per call.

-- insert_request --
-- Batched by the writer's group commit (executemany); count_requests_inserted follows.
INSERT INTO requests (id, upstream, method, path, query, headers, body, received_at, status,
                      next_attempt_at, updated_at, endpoint, ordering_key, expires_at,
                      dedup_key, coalesce_key, lease_owner, lease_expires_at, key_id)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)

-- insert_request_chained --
-- The group commit's executemany: insert_request with the request's chain entry in the
-- row (schema v14; writer.number_inserts), NULLs when it has none.
INSERT INTO requests (id, upstream, method, path, query, headers, body, received_at, status,
                      next_attempt_at, updated_at, endpoint, ordering_key, expires_at,
                      dedup_key, coalesce_key, lease_owner, lease_expires_at, key_id,
                      chain_seq, chain_leaf, chain_head)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)

-- count_requests_inserted --
-- New rows are counted once per group commit, one upsert row per (upstream, status,
-- endpoint, path) among them ({rows}: rows.count_inserted), in the same transaction: a
-- trigger per row cost ~7 us of the writer's time per insert (bench/RESULTS.md). Status
-- changes are counted by a trigger (schema v8). One statement for all of a group's
-- counts, returning the database's data_version: the writer's proof that no other
-- connection has committed since its last commit (writer.number_inserts), without a
-- statement of its own.
INSERT INTO request_counts (upstream, status, sep, n)
VALUES {rows}
ON CONFLICT (upstream, status, sep) DO UPDATE SET n = n + excluded.n
RETURNING (SELECT data_version FROM pragma_data_version())

-- request_by_dedup_key --
SELECT {REQUEST_COLUMNS} FROM requests WHERE dedup_key=?

-- release_dedup_key --
-- An original that no longer matches gives its key to the resubmission.
UPDATE requests SET dedup_key=NULL WHERE id=?

-- count_queued --
-- From the counts the triggers keep: no request row is read.
SELECT IFNULL(SUM(n), 0) FROM request_counts WHERE upstream=? AND status IN {QUEUED}

-- get_request --
SELECT {REQUEST_COLUMNS} FROM requests WHERE id=?

-- request_attempts --
SELECT request_id, number, started_at, duration_s, verdict, http_status, error, response_body,
       key_id
FROM attempts WHERE request_id=? ORDER BY number

-- claim_due --
-- An earlier request with the same ordering key that is not yet delivered (or has been
-- given up on) keeps the later ones waiting: Antrean task ids must arrive in order.
UPDATE requests SET status='in_flight', lease_owner=?, lease_expires_at=?, updated_at=?
WHERE id IN (
  SELECT id FROM requests
  WHERE upstream=? AND status='pending' AND next_attempt_at<=?
    AND (ordering_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM requests p WHERE p.ordering_key=requests.ordering_key
        AND p.id<requests.id AND p.status IN {BLOCKS_LATER}))
  ORDER BY next_attempt_at, id LIMIT ?)
RETURNING {REQUEST_COLUMNS}

-- claim_due_clean --
-- The half-open probe: a request refused for its own credentials last time would only
-- re-open the breaker, so one with a clean record goes first (few are unclean: the walk
-- along the due index stops at the first clean one).
UPDATE requests SET status='in_flight', lease_owner=?, lease_expires_at=?, updated_at=?
WHERE id IN (
  SELECT id FROM requests
  WHERE upstream=? AND status='pending' AND next_attempt_at<=?
    AND (ordering_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM requests p WHERE p.ordering_key=requests.ordering_key
        AND p.id<requests.id AND p.status IN {BLOCKS_LATER}))
    AND own_faults=0
  ORDER BY next_attempt_at, id LIMIT ?)
RETURNING {REQUEST_COLUMNS}

-- next_due_at --
-- Requests waiting behind an earlier one are not due: their wake-up is its completion.
SELECT next_attempt_at FROM requests
WHERE upstream=? AND status='pending'
  AND (ordering_key IS NULL OR NOT EXISTS (
    SELECT 1 FROM requests p WHERE p.ordering_key=requests.ordering_key
      AND p.id<requests.id AND p.status IN {BLOCKS_LATER}))
ORDER BY next_attempt_at LIMIT 1

-- take_over_expired --
UPDATE requests SET status='in_flight', lease_owner=?, lease_expires_at=?, updated_at=?
WHERE id IN (SELECT id FROM requests
             WHERE upstream=? AND status='in_flight' AND lease_expires_at<?)
RETURNING {REQUEST_COLUMNS}

-- renew_leases --
UPDATE requests SET lease_expires_at=?
WHERE id IN ({ids}) AND status='in_flight' AND lease_owner=?
RETURNING id

-- hold_behind_stuck --
-- Later requests behind one that failed, died or is held become held themselves, so the
-- wait is visible and explained (the reason: lifecycle.HELD_BEHIND, then the stuck
-- request's state and (id)). Driven from the few stuck requests (status index) through
-- the ordering index, not from the whole backlog: the unary + keeps SQLite from walking
-- every pending row of the upstream (requests_due) and testing each one's key.
UPDATE requests SET status='held', updated_at=?,
  held_by=(SELECT p.id FROM requests p WHERE p.ordering_key=requests.ordering_key
             AND p.id<requests.id AND p.status IN {STUCK} ORDER BY p.id LIMIT 1),
  reason=? || (SELECT p.status || ' (' || p.id || ')' FROM requests p
               WHERE p.ordering_key=requests.ordering_key
                 AND p.id<requests.id AND p.status IN {STUCK} ORDER BY p.id LIMIT 1)
WHERE +upstream=? AND +status='pending'
  AND ordering_key IN (SELECT s.ordering_key FROM requests s WHERE s.status IN {STUCK}
                         AND s.upstream=? AND s.ordering_key IS NOT NULL)
  AND EXISTS (SELECT 1 FROM requests p WHERE p.ordering_key=requests.ordering_key
                AND p.id<requests.id AND p.status IN {STUCK})
RETURNING {REQUEST_COLUMNS}

-- release_held --
-- Once nothing before them is stuck any more (the parent was retried or cancelled),
-- held requests return to pending (each a state change for the chain).
UPDATE requests SET status='pending', held_by=NULL, next_attempt_at=?, updated_at=?, reason=?
WHERE upstream=? AND status='held' AND held_by IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM requests p WHERE p.ordering_key=requests.ordering_key
                    AND p.id<requests.id AND p.status IN {STUCK})
RETURNING id

-- live_coalesced --
SELECT {REQUEST_COLUMNS} FROM requests WHERE coalesce_key=? AND status IN {LIVE} ORDER BY id

-- supersede --
UPDATE requests SET status='cancelled', reason=?, updated_at=?, next_attempt_at=NULL
WHERE id IN ({ids}) AND status='pending'
RETURNING id

-- complete_attempt --
UPDATE requests SET status=?, reason=?, next_attempt_at=?, attempts=COALESCE(?, attempts),
  updated_at=?, lease_owner=NULL, lease_expires_at=NULL, reconcile_reads=?, own_faults=?
WHERE id=? AND status='in_flight' AND lease_owner=?

-- insert_attempt --
INSERT INTO attempts (request_id, number, upstream, started_at, duration_s, verdict,
                      http_status, error, response_body, key_id)
SELECT id, ?, upstream, ?, ?, ?, ?, ?, ?, ? FROM requests WHERE id=?

-- queue_callback --
-- In the transaction of the final state it reports (the outbox).
INSERT INTO callbacks (request_id, upstream, url, payload, key_id, status, next_attempt_at,
                       created_at, updated_at)
SELECT id, upstream, ?, ?, ?, 'pending', ?, ?, ? FROM requests WHERE id=?

-- transition --
-- In the transaction of the move: its audit entry, its callback, its state in the chain.
UPDATE requests SET status=?, reason=?, next_attempt_at=?, updated_at=?,
  retried_at=COALESCE(?, retried_at), reconcile_reads=?, own_faults=?
WHERE id=? AND status=?

-- insert_audit --
INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?,?,?,?,?)
RETURNING id

-- audit_entries --
SELECT id, at, actor, action, target, detail FROM audit_log
WHERE {where} ORDER BY id DESC LIMIT ?

-- summary_counts --
-- The summary reads no request row it does not report: counts from the table the
-- triggers keep (schema v8), per upstream the first waiting request by id (ids are minted
-- in receive order) from the partial index requests_waiting, and the newest attempt from
-- attempts_upstream_time.
SELECT upstream, status, SUM(n) FROM request_counts GROUP BY upstream, status
HAVING SUM(n) > 0

-- summary_firsts --
SELECT u.upstream,
  (SELECT r.received_at FROM requests r WHERE r.upstream=u.upstream
     AND r.status IN {LIVE} ORDER BY r.id LIMIT 1),
  (SELECT a.started_at FROM attempts a WHERE a.upstream=u.upstream
     ORDER BY a.started_at DESC LIMIT 1),
  (SELECT a.verdict FROM attempts a WHERE a.upstream=u.upstream
     ORDER BY a.started_at DESC LIMIT 1)
FROM (SELECT upstream FROM request_counts GROUP BY upstream HAVING SUM(n) > 0) u

-- sep_open_counts --
-- Counted by the triggers of schema v8 (request_counts.sep is the SEP test).
SELECT upstream, SUM(n) FROM request_counts WHERE sep=1 AND status IN {OPEN}
GROUP BY upstream HAVING SUM(n) > 0

-- attempt_buckets --
-- The dashboard's chart: the recent range of attempts_upstream_time only.
SELECT CAST((started_at - ?) / ? AS INTEGER) AS b, verdict, COUNT(*)
FROM attempts WHERE upstream=? AND started_at>=? GROUP BY b, verdict ORDER BY b

-- scan_window_end --
-- The lowest id of a scan window: an index-only walk of at most scan_window entries.
SELECT id FROM requests WHERE {where} ORDER BY id DESC LIMIT 1 OFFSET ?

-- find_requests --
SELECT {REQUEST_COLUMNS} FROM requests WHERE {where} ORDER BY id DESC LIMIT ?

-- count_requests --
SELECT COUNT(*) FROM requests WHERE {where}

-- get_user --
SELECT name, password_hash, role, created_at, failed_logins, locked_until FROM users
WHERE name=?

-- user_password_hash --
SELECT password_hash FROM users WHERE name=?

-- insert_user --
INSERT INTO users (name, password_hash, role, created_at) VALUES (?,?,?,?)

-- update_user --
UPDATE users SET password_hash=?, role=? WHERE name=?

-- count_users --
SELECT COUNT(*) FROM users

-- delete_user --
DELETE FROM users WHERE name=?

-- set_login_failures --
UPDATE users SET failed_logins=?, locked_until=? WHERE name=?

-- reset_login_failures --
UPDATE users SET failed_logins=0, locked_until=NULL WHERE name=?

-- insert_session --
INSERT INTO sessions (id, user_name, csrf_token, created_at, expires_at) VALUES (?,?,?,?,?)

-- get_session --
SELECT id, user_name, csrf_token, created_at, expires_at FROM sessions
WHERE id=? AND expires_at>?

-- delete_session --
DELETE FROM sessions WHERE id=?

-- delete_user_sessions --
DELETE FROM sessions WHERE user_name=?

-- delete_expired_sessions --
DELETE FROM sessions WHERE expires_at<=?

-- claim_callbacks --
-- Both branches are served by callbacks_due (status, next_attempt_at): the due pending
-- rows, and the few 'sending' rows (only a crashed sender leaves an expired lease).
UPDATE callbacks SET status='sending', attempts=attempts+1, lease_expires_at=?, updated_at=?
WHERE id IN (SELECT id FROM callbacks
             WHERE (status='pending' AND next_attempt_at<=?)
                OR (status='sending' AND lease_expires_at<?)
             ORDER BY next_attempt_at, id LIMIT ?)
RETURNING {CALLBACK_COLUMNS}

-- finish_callback --
UPDATE callbacks SET status=?, last_error=?, next_attempt_at=COALESCE(?, next_attempt_at),
  lease_expires_at=NULL, updated_at=?
WHERE id=? AND status='sending'

-- next_callback_at --
SELECT MIN(t) FROM (
  SELECT MIN(next_attempt_at) AS t FROM callbacks WHERE status='pending'
  UNION ALL SELECT MIN(lease_expires_at) FROM callbacks WHERE status='sending')

-- insert_maintenance_window --
INSERT INTO maintenance_windows (upstream, starts_at, ends_at, reason, created_by, created_at)
VALUES (?,?,?,?,?,?)
RETURNING {WINDOW_COLUMNS}

-- cancel_maintenance_window --
UPDATE maintenance_windows SET cancelled_at=? WHERE id=? AND cancelled_at IS NULL

-- get_maintenance_window --
SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE id=?

-- maintenance_windows --
SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE {where} ORDER BY starts_at, id

-- insert_bulk_job --
INSERT INTO bulk_jobs (actor, filter, expected, started_at) VALUES (?,?,?,?)
RETURNING {JOB_COLUMNS}

-- save_bulk_job --
UPDATE bulk_jobs SET retried=?, skipped=?, stage=?, cursor=?, finished_at=?, error=?
WHERE id=?

-- get_bulk_job --
SELECT {JOB_COLUMNS} FROM bulk_jobs WHERE id=?

-- unfinished_bulk_jobs --
SELECT {JOB_COLUMNS} FROM bulk_jobs WHERE finished_at IS NULL ORDER BY id

-- retention_window --
-- The next batch of retention's walk: up to ? requests by id (the primary key) after the
-- last batch, all received before the cutoff (ids are minted from the receive time). Its
-- last id and its size: a short window means the walk is done.
SELECT MAX(id), COUNT(*) FROM (
  SELECT id FROM requests WHERE id > ? AND id < ? ORDER BY id LIMIT ?)

-- purgeable_bodies --
-- Within one window: final requests settled before the cutoff, bodies not yet dropped,
-- no callback still to send (it needs its payload).
SELECT id FROM requests r
WHERE id > ? AND id <= ? AND status IN {FINAL} AND updated_at < ? AND purged_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.request_id = r.id
                    AND c.status IN {UNSENT_CALLBACKS})

-- purgeable_rows --
-- As purgeable_bodies (purged bodies or not), and not a request that keeps a later one
-- with its ordering key waiting: deleting it would release what waits behind it.
SELECT id FROM requests r
WHERE id > ? AND id <= ? AND status IN {FINAL} AND updated_at < ?
  AND NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.request_id = r.id
                    AND c.status IN {UNSENT_CALLBACKS})
  AND NOT (r.status IN {BLOCKS_LATER} AND r.ordering_key IS NOT NULL AND EXISTS (
    SELECT 1 FROM requests l WHERE l.ordering_key = r.ordering_key AND l.id > r.id
      AND l.status IN {BLOCKS_LATER}))

-- drop_request_bodies --
UPDATE requests SET body=X'', purged_at=? WHERE id IN ({ids})

-- drop_attempt_bodies --
UPDATE attempts SET response_body=NULL WHERE request_id IN ({ids})

-- drop_callback_payloads --
UPDATE callbacks SET payload=X'' WHERE request_id IN ({ids})

-- attempt_numbers --
-- The attempts of a purge's batch, for their chain entries' refs (attempts' primary key).
SELECT request_id, number FROM attempts WHERE request_id IN ({ids})

-- delete_request_attempts --
DELETE FROM attempts WHERE request_id IN ({ids})

-- delete_request_callbacks --
DELETE FROM callbacks WHERE request_id IN ({ids})

-- delete_requests --
-- request_counts follows by its delete trigger (schema v8).
DELETE FROM requests WHERE id IN ({ids})

-- lease_bulk_job --
-- The holder renews; another owner only once the lease has run out (schema v12).
UPDATE bulk_jobs SET lease_owner=?, lease_until=?
 WHERE id=? AND finished_at IS NULL
   AND (lease_owner IS NULL OR lease_owner=? OR lease_until<=?)

-- check_writable --
INSERT INTO health (id, checked_at) VALUES (1, ?)
ON CONFLICT (id) DO UPDATE SET checked_at=excluded.checked_at

-- export_requests --
-- The export's keyset page (export_reader), oldest first; {where} holds one id bound on
-- each side, the status (index requests_status) and the row-by-row checks.
SELECT {REQUEST_COLUMNS} FROM requests WHERE {where} ORDER BY id LIMIT ?

-- export_attempts --
-- The attempts of one export page, on the attempts' primary key (and of one page of the
-- chain, whose leaves verification recomputes).
SELECT request_id, number, started_at, duration_s, verdict, http_status, error, response_body,
       key_id
FROM attempts WHERE request_id IN ({ids}) ORDER BY request_id, number

-- chain_head --
-- The last entry: the chain table's (its rowid's end: no scan) or the last request's
-- that holds its own (schema v14: their seqs rise with the rowid, so the rowid's end,
-- past the rows stored with none).
SELECT seq, head FROM (
  SELECT * FROM (SELECT seq, head FROM chain ORDER BY seq DESC LIMIT 1)
  UNION ALL
  SELECT * FROM (SELECT chain_seq, chain_head FROM requests WHERE chain_seq IS NOT NULL
                 ORDER BY rowid DESC LIMIT 1)
) ORDER BY seq DESC LIMIT 1

-- append_chain --
-- Once per group commit, just before COMMIT (writer.link_pending).
INSERT INTO chain (seq, kind, ref, leaf, head, record) VALUES (?,?,?,?,?,?)

-- last_chain_switch --
-- The last "chain_on" / "chain_off" entry ([audit] chain), on the audit_log_target index.
SELECT action, at FROM audit_log WHERE target=? AND actor=? AND action IN (?,?)
ORDER BY id DESC LIMIT 1

-- chain_entries --
SELECT seq, kind, ref, leaf, head, purged_at, record FROM chain
WHERE seq>? ORDER BY seq LIMIT ?

-- request_rowids --
-- The requests' rowid range, for chain_rows.first_row_after to bisect.
SELECT min(rowid), max(rowid) FROM requests

-- row_entry_from --
-- The first request row at or after a rowid that holds its own chain entry (schema v14).
SELECT rowid, chain_seq FROM requests WHERE rowid>=? AND chain_seq IS NOT NULL
ORDER BY rowid LIMIT 1

-- row_entries --
-- The entries request rows hold, from a rowid on (their seqs rise with it).
SELECT rowid, chain_seq, id, chain_leaf, chain_head FROM requests
WHERE rowid>=? AND chain_seq>? ORDER BY rowid LIMIT ?

-- requests_by_ids --
SELECT {REQUEST_COLUMNS} FROM requests WHERE id IN ({ids})

-- audit_by_ids --
SELECT id, at, actor, action, target, detail FROM audit_log WHERE id IN ({ids})

-- tombstone_row_entries --
-- A request's entry kept in its row (schema v14) moves to the chain table, marked purged.
INSERT INTO chain (seq, kind, ref, leaf, head, purged_at)
SELECT chain_seq, 'request', id, chain_leaf, chain_head, ? FROM requests
WHERE id IN ({ids}) AND chain_seq IS NOT NULL

-- clear_row_entries --
UPDATE requests SET chain_seq=NULL, chain_leaf=NULL, chain_head=NULL
WHERE id IN ({ids}) AND chain_seq IS NOT NULL

-- mark_purged --
-- A purged record keeps its entry: the leaf is no longer checked, the head still links.
UPDATE chain SET purged_at=? WHERE kind=? AND ref IN ({ids}) AND purged_at IS NULL

-- tombstones --
-- On the index chain_ref (kind, ref).
SELECT ref, purged_at FROM chain WHERE kind=? AND ref IN ({ids}) AND purged_at IS NOT NULL

-- insert_checkpoint --
INSERT INTO checkpoints (seq, head, at, note) VALUES (?,?,?,?)

-- checkpoints --
SELECT seq, head, at, note FROM checkpoints WHERE {where} ORDER BY id DESC LIMIT ?

-- insert_verification --
INSERT INTO verifications (at, ok, head_seq, checked, from_seq, broken_seq, broken_kind,
                           broken_ref, problem)
VALUES (?,?,?,?,?,?,?,?,?)

-- last_verification --
SELECT at, ok, head_seq, checked, from_seq, broken_seq, broken_kind, broken_ref, problem
FROM verifications ORDER BY id DESC LIMIT 1

-- sealing_keys --
-- The key ids this store has sealed under (proxy.store.sealing.KeyRecord).
SELECT key_id, check_value, retired_at FROM sealing_keys

-- add_sealing_key --
INSERT INTO sealing_keys (key_id, check_value, added_at) VALUES (?, ?, ?)
ON CONFLICT (key_id) DO UPDATE SET retired_at=NULL

-- retire_sealing_keys --
-- `tenang rekey` found no value left under these (a key id in use again is un-retired by
-- add_sealing_key at the next start).
UPDATE sealing_keys SET retired_at=? WHERE key_id IN ({ids}) AND retired_at IS NULL

-- reseal_requests --
-- One rekey batch: the next requests by id, with their key ids (the walk reads every row:
-- no index on key_id, which would cost every insert).
SELECT id, body, key_id FROM requests WHERE id>? ORDER BY id LIMIT ?

-- reseal_attempts --
SELECT request_id, number, response_body, key_id FROM attempts
WHERE request_id IN ({ids}) AND response_body IS NOT NULL

-- reseal_callbacks --
SELECT id, request_id, payload, key_id FROM callbacks WHERE request_id IN ({ids})

-- resealed_request --
-- Compare-and-set on the key id: a purge or another rekey in between wins.
UPDATE requests SET body=?, key_id=? WHERE id=? AND key_id IS ?

-- resealed_attempt --
UPDATE attempts SET response_body=?, key_id=? WHERE request_id=? AND number=? AND key_id IS ?

-- resealed_callback --
UPDATE callbacks SET payload=?, key_id=? WHERE id=? AND key_id IS ?

-- sealed_counts --
-- Values per key id (NULL: plaintext) in the three sealed columns: a full scan, for
-- `tenang rekey`'s report only. Purged (empty) values need no key and are not counted.
SELECT key_id, COUNT(*) FROM requests WHERE length(body) > 0 GROUP BY key_id
UNION ALL
SELECT key_id, COUNT(*) FROM attempts WHERE length(response_body) > 0 GROUP BY key_id
UNION ALL
SELECT key_id, COUNT(*) FROM callbacks WHERE length(payload) > 0 GROUP BY key_id
