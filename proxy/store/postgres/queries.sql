-- The PostgreSQL store's statements, one "-- name --" block each (sql.py loads them).
-- {COLUMNS} is a request row as rows.py reads it; {BLOCKS_LATER}, {STUCK}, {QUEUED},
-- {OPEN}, {LIVE} and {FINAL} are lifecycle's status sets, rendered by lifecycle.sql_in
-- ({UNSENT_CALLBACKS}: records.UNSENT_CALLBACKS). "Earlier"
-- is intake order, requests.seq: one sequence for every instance (schema.sql).

-- insert_requests --
-- A batch of new requests in one statement (intake's group commit): one round trip, one
-- commit and one count update for the lot, and the hash chain's entries of those stored
-- ($20 their ids, $21 their leaves, in batch order) appended in it. A taken dedup key
-- inserts nothing for that row (nor for a second row of the batch with the same key),
-- and adds no entry; the ids returned are those stored, and intake resolves the others
-- one by one. The append reads every row the insert returned first (so every dedup wait
-- is over before the chain's head is locked), then locks the head until COMMIT; the
-- insert's count trigger runs after it, on intake's own counter slots (schema v9).
WITH stored AS (
    INSERT INTO requests (id, upstream, method, path, query, headers, body, received_at,
                          status, next_attempt_at, updated_at, endpoint, ordering_key,
                          expires_at, dedup_key, coalesce_key, lease_owner, lease_expires_at,
                          key_id)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::bytea[], $8::float8[], $9::text[], $10::float8[],
                         $11::float8[], $12::text[], $13::text[], $14::float8[], $15::text[],
                         $16::text[], $17::text[], $18::float8[], $19::text[])
    ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
    RETURNING id),
linked AS (
    SELECT tenang_chain_append(array_agg('request'::text ORDER BY l.n),
                               array_agg(l.ref ORDER BY l.n),
                               array_agg(l.leaf ORDER BY l.n),
                               array_agg(NULL::bytea ORDER BY l.n)) AS seq
      FROM unnest($20::text[], $21::bytea[]) WITH ORDINALITY AS l (ref, leaf, n)
      JOIN stored ON stored.id = l.ref
    HAVING count(*) > 0)
SELECT stored.id, (SELECT seq FROM linked) AS chain_seq FROM stored

-- request_by_dedup_key_locked --
-- The holder of a dedup key, locked until the resubmission is decided: two racing
-- resubmissions of one key are decided one after the other.
SELECT {COLUMNS} FROM requests WHERE dedup_key = $1 FOR UPDATE

-- clear_dedup_key --
UPDATE requests SET dedup_key = NULL WHERE id = $1

-- count_queued --
SELECT COALESCE(sum(n), 0) FROM request_counts WHERE upstream = $1 AND status IN {QUEUED}

-- live_coalesced --
SELECT {COLUMNS} FROM requests WHERE coalesce_key = $1 AND status IN {LIVE} ORDER BY seq

-- claim_due --
-- Up to $3 due pending requests of upstream $1, oldest due first, leased to $4 until $5.
-- One whose ordering key has an earlier request not yet delivered (or given up on) is not
-- due: Antrean task ids must arrive in order. SKIP LOCKED: rows another instance is
-- claiming right now are left to it, so no two instances lease one request; the status
-- re-check on the locked row turns away a row claimed and committed meanwhile. That an
-- earlier request blocks is stable once false (only succeeded and cancelled do not block,
-- and both are final), so a claim cannot race one that unblocks. $6: the half-open probe
-- takes only a request with no own-fault history (a credentials refusal last time would
-- only re-open the breaker).
WITH due AS (
    SELECT r.id FROM requests r
     WHERE r.upstream = $1 AND r.status = 'pending' AND r.next_attempt_at <= $2
       AND (NOT $6::boolean OR r.own_faults = 0)
       AND (r.ordering_key IS NULL OR NOT EXISTS (
            SELECT 1 FROM requests p
             WHERE p.ordering_key = r.ordering_key AND p.seq < r.seq
               AND p.status IN {BLOCKS_LATER}))
     ORDER BY r.next_attempt_at, r.seq
     LIMIT $3
     FOR UPDATE OF r SKIP LOCKED)
UPDATE requests q
   SET status = 'in_flight', lease_owner = $4, lease_expires_at = $5, updated_at = $2
  FROM due
 WHERE q.id = due.id AND q.status = 'pending'
RETURNING {COLUMNS_OF_Q}

-- next_due_at --
-- Requests waiting behind an earlier one are not due: their wake-up is its completion.
SELECT r.next_attempt_at FROM requests r
 WHERE r.upstream = $1 AND r.status = 'pending'
   AND (r.ordering_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM requests p
         WHERE p.ordering_key = r.ordering_key AND p.seq < r.seq
           AND p.status IN {BLOCKS_LATER}))
 ORDER BY r.next_attempt_at LIMIT 1

-- take_over_expired --
-- The in-flight requests of upstream $1 whose lease ended before $2: their instance died
-- (or stalled) mid-delivery. Leased to $3 until $4; another instance taking them over at
-- the same moment skips the rows this one locked.
WITH expired AS (
    SELECT id FROM requests
     WHERE upstream = $1 AND status = 'in_flight' AND lease_expires_at < $2
     ORDER BY seq
     FOR UPDATE SKIP LOCKED)
UPDATE requests q SET lease_owner = $3, lease_expires_at = $4, updated_at = $2
  FROM expired
 WHERE q.id = expired.id AND q.status = 'in_flight' AND q.lease_expires_at < $2
RETURNING {COLUMNS_OF_Q}

-- renew_leases --
UPDATE requests SET lease_expires_at = $3
 WHERE id = ANY($2::text[]) AND status = 'in_flight' AND lease_owner = $1
RETURNING id

-- lock_holds --
-- One instance at a time refreshes an upstream's holds (they would otherwise wait on each
-- other's row locks, in any order).
SELECT pg_advisory_xact_lock(hashtextextended('tenang holds ' || $1, 0))

-- release_holds --
-- Held requests with nothing stuck before them any more (the one they waited for was
-- retried or cancelled) return to pending: $2.. from lifecycle.released.
UPDATE requests r
   SET status = 'pending', held_by = NULL, next_attempt_at = $2, updated_at = $3, reason = $4
 WHERE r.upstream = $1 AND r.status = 'held' AND r.held_by IS NOT NULL
   AND NOT EXISTS (
        SELECT 1 FROM requests p
         WHERE p.ordering_key = r.ordering_key AND p.seq < r.seq AND p.status IN {STUCK})
RETURNING r.id

-- behind_stuck --
-- Pending requests with an earlier one of their ordering key failed, dead or held, each
-- with the first such one (lifecycle.held_behind names it). Driven from the few stuck
-- requests through the ordering index, not from the whole backlog.
SELECT r.id, s.id AS stuck_id, s.status AS stuck_status
  FROM requests r
  JOIN LATERAL (
        SELECT p.id, p.status FROM requests p
         WHERE p.ordering_key = r.ordering_key AND p.seq < r.seq AND p.status IN {STUCK}
         ORDER BY p.seq LIMIT 1) s ON true
 WHERE r.upstream = $1 AND r.status = 'pending'
   AND r.ordering_key IN (
        SELECT k.ordering_key FROM requests k
         WHERE k.upstream = $1 AND k.status IN {STUCK} AND k.ordering_key IS NOT NULL)
 ORDER BY r.seq
   FOR UPDATE OF r SKIP LOCKED

-- hold --
UPDATE requests r
   SET status = 'held', updated_at = $1, held_by = h.stuck_id, reason = h.reason
  FROM unnest($2::text[], $3::text[], $4::text[]) AS h (id, stuck_id, reason)
 WHERE r.id = h.id AND r.status = 'pending'
RETURNING {COLUMNS_OF_R}

-- supersede --
UPDATE requests SET status = 'cancelled', reason = $2, updated_at = $3, next_attempt_at = NULL
 WHERE id = ANY($1::text[]) AND status = 'pending'
RETURNING id

-- queue_callbacks --
-- Outcome callbacks, in the transaction of the moves they report (the outbox).
INSERT INTO callbacks (request_id, upstream, url, payload, key_id, status, next_attempt_at,
                       created_at, updated_at)
SELECT r.id, r.upstream, c.url, c.payload, $5, 'pending', $4, $4, $4
  FROM unnest($1::text[], $2::text[], $3::bytea[]) AS c (request_id, url, payload)
  JOIN requests r ON r.id = c.request_id

-- complete_attempt --
-- The transition of a request still leased to $8, its attempt (when $9 is not null) and
-- its callback (when $16 is not null): one statement, so all or nothing, one round trip.
WITH moved AS (
    UPDATE requests
       SET status = $1, reason = $2, next_attempt_at = $3,
           attempts = COALESCE($9::integer, attempts), updated_at = $4, lease_owner = NULL,
           lease_expires_at = NULL, reconcile_reads = $5, own_faults = $6
     WHERE id = $7 AND status = 'in_flight' AND lease_owner = $8
    RETURNING id, upstream),
attempt AS (
    INSERT INTO attempts (request_id, number, upstream, started_at, duration_s, verdict,
                          http_status, error, response_body, key_id)
    SELECT id, $9, upstream, $10, $11, $12, $13, $14, $15, $18 FROM moved
     WHERE $9::integer IS NOT NULL),
callback AS (
    INSERT INTO callbacks (request_id, upstream, url, payload, key_id, status,
                           next_attempt_at, created_at, updated_at)
    SELECT id, upstream, $16, $17, $19, 'pending', $4, $4, $4 FROM moved
     WHERE $16::text IS NOT NULL)
SELECT count(*) FROM moved

-- transition --
-- A request still in state $8 moves (an operator's retry or cancel, a reconciliation),
-- with its callback (when $10 is not null) and audit entry (when $12 is not null) in the
-- same statement; the audit entry's id goes into the hash chain.
WITH moved AS (
    UPDATE requests
       SET status = $1, reason = $2, next_attempt_at = $3, updated_at = $4,
           retried_at = COALESCE($9, retried_at), reconcile_reads = $5, own_faults = $6
     WHERE id = $7 AND status = $8
    RETURNING id, upstream),
callback AS (
    INSERT INTO callbacks (request_id, upstream, url, payload, key_id, status,
                           next_attempt_at, created_at, updated_at)
    SELECT id, upstream, $10, $11, $15, 'pending', $4, $4, $4 FROM moved
     WHERE $10::text IS NOT NULL),
audit AS (
    INSERT INTO audit_log (at, actor, action, target, detail)
    SELECT $4, $12, $13, id, $14 FROM moved WHERE $12::text IS NOT NULL
    RETURNING id)
SELECT (SELECT count(*) FROM moved) AS moved, (SELECT id FROM audit) AS audit_id

-- get --
SELECT {COLUMNS} FROM requests WHERE id = $1

-- attempts --
SELECT request_id, number, started_at, duration_s, verdict, http_status, error, response_body,
       key_id
  FROM attempts WHERE request_id = $1 ORDER BY number

-- counts --
SELECT upstream, status, sum(n) FROM request_counts GROUP BY upstream, status
HAVING sum(n) > 0

-- firsts --
-- Per upstream with requests: the receive time of the first waiting one by id (ids are
-- minted from the receive time; partial index requests_waiting) and the newest attempt
-- (attempts_upstream_time).
SELECT u.upstream,
       (SELECT r.received_at FROM requests r
         WHERE r.upstream = u.upstream AND r.status IN {LIVE} ORDER BY r.id LIMIT 1),
       a.started_at, a.verdict
  FROM (SELECT upstream FROM request_counts GROUP BY upstream HAVING sum(n) > 0) u
  LEFT JOIN LATERAL (
        SELECT started_at, verdict FROM attempts
         WHERE upstream = u.upstream ORDER BY started_at DESC LIMIT 1) a ON true

-- check_writable --
INSERT INTO health (id, checked_at) VALUES (1, $1)
ON CONFLICT (id) DO UPDATE SET checked_at = EXCLUDED.checked_at

-- user --
SELECT name, password_hash, role, created_at, failed_logins, locked_until
  FROM users WHERE name = $1

-- user_locked --
SELECT name, password_hash, role, created_at, failed_logins, locked_until
  FROM users WHERE name = $1 FOR UPDATE

-- add_user --
INSERT INTO users (name, password_hash, role, created_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO NOTHING

-- replace_user --
UPDATE users SET password_hash = $2, role = $3 WHERE name = $1

-- end_sessions_of --
DELETE FROM sessions WHERE user_name = $1

-- remove_user --
DELETE FROM users WHERE name = $1

-- count_users --
SELECT count(*) FROM users

-- set_login_failures --
UPDATE users SET failed_logins = $2, locked_until = $3 WHERE name = $1

-- create_session --
INSERT INTO sessions (id, user_name, csrf_token, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5)

-- session --
SELECT id, user_name, csrf_token, created_at, expires_at FROM sessions
 WHERE id = $1 AND expires_at > $2

-- delete_session --
DELETE FROM sessions WHERE id = $1

-- delete_expired_sessions --
DELETE FROM sessions WHERE expires_at <= $1

-- audit --
INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)
RETURNING id

-- last_chain_switch --
-- The newest "chain_on" / "chain_off" entry ([audit] chain): $1 target, $2 actor.
SELECT action FROM audit_log WHERE target = $1 AND actor = $2 AND action IN ($3, $4)
 ORDER BY id DESC LIMIT 1

-- lock_chain_head --
-- Taken first by a store noting a switch of [audit] chain, so that two instances opening
-- at once record it once (the lock every append takes, held to COMMIT).
SELECT seq FROM chain_head WHERE id = 1 FOR UPDATE

-- audit_entries --
-- Newest first; $1 a target or null for all, $2 below this id or null.
SELECT id, at, actor, action, target, detail FROM audit_log
 WHERE ($1::text IS NULL OR target = $1) AND ($2::bigint IS NULL OR id < $2)
 ORDER BY id DESC LIMIT $3

-- claim_callbacks --
-- Due pending callbacks and those whose sender's lease ran out (it crashed), oldest due
-- first; several senders (one per instance) skip each other's rows.
WITH due AS (
    SELECT id FROM callbacks
     WHERE (status = 'pending' AND next_attempt_at <= $1)
        OR (status = 'sending' AND lease_expires_at < $1)
     ORDER BY next_attempt_at, id
     LIMIT $2
     FOR UPDATE SKIP LOCKED)
UPDATE callbacks c
   SET status = 'sending', attempts = c.attempts + 1, lease_expires_at = $3, updated_at = $1
  FROM due WHERE c.id = due.id
RETURNING c.id, c.request_id, c.upstream, c.url, c.payload, c.status, c.attempts,
          c.next_attempt_at, c.lease_expires_at, c.last_error, c.created_at, c.updated_at,
          c.key_id

-- finish_callback --
UPDATE callbacks
   SET status = $2, last_error = $3, next_attempt_at = COALESCE($4, next_attempt_at),
       lease_expires_at = NULL, updated_at = $5
 WHERE id = $1 AND status = 'sending'

-- next_callback_at --
SELECT least((SELECT min(next_attempt_at) FROM callbacks WHERE status = 'pending'),
             (SELECT min(lease_expires_at) FROM callbacks WHERE status = 'sending'))

-- add_maintenance_window --
INSERT INTO maintenance_windows (upstream, starts_at, ends_at, reason, created_by, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, upstream, starts_at, ends_at, reason, created_by, created_at, cancelled_at

-- cancel_maintenance_window --
-- An already cancelled window keeps its first cancellation time.
UPDATE maintenance_windows SET cancelled_at = COALESCE(cancelled_at, $2) WHERE id = $1
RETURNING id, upstream, starts_at, ends_at, reason, created_by, created_at, cancelled_at

-- maintenance_windows --
-- $1 an upstream or null for all; $2 only those in force after this time, or null.
SELECT id, upstream, starts_at, ends_at, reason, created_by, created_at, cancelled_at
  FROM maintenance_windows
 WHERE ($1::text IS NULL OR upstream = $1)
   AND ($2::float8 IS NULL OR ((ends_at IS NULL OR ends_at > $2)
                               AND (cancelled_at IS NULL OR cancelled_at > $2)))
 ORDER BY starts_at, id

-- add_bulk_job --
INSERT INTO bulk_jobs (actor, filter, expected, started_at) VALUES ($1, $2, $3, $4)
RETURNING id, actor, filter, expected, started_at, retried, skipped, stage, cursor,
          finished_at, error

-- save_bulk_job --
UPDATE bulk_jobs SET retried = $2, skipped = $3, stage = $4, cursor = $5, finished_at = $6,
                     error = $7
 WHERE id = $1

-- bulk_job --
SELECT id, actor, filter, expected, started_at, retried, skipped, stage, cursor,
       finished_at, error
  FROM bulk_jobs WHERE id = $1

-- unfinished_bulk_jobs --
SELECT id, actor, filter, expected, started_at, retried, skipped, stage, cursor,
       finished_at, error
  FROM bulk_jobs WHERE finished_at IS NULL ORDER BY id

-- lease_bulk_job --
-- One instance walks a job: the holder renews its lease, another takes it only once the
-- lease has run out (its instance died); the row lock makes two takers go one at a time.
UPDATE bulk_jobs SET lease_owner = $2, lease_until = $4
 WHERE id = $1 AND finished_at IS NULL
   AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until <= $3)
RETURNING id

-- claim_notice --
-- $1 condition of upstream $2 at $3: claimed unless claimed in the $4 s before. A racing
-- claim waits on the row lock, then sees this one's time and claims nothing.
INSERT INTO notices AS n (condition, upstream, claimed_at, open) VALUES ($1, $2, $3, true)
ON CONFLICT (condition, upstream) DO UPDATE SET claimed_at = EXCLUDED.claimed_at, open = true
 WHERE n.claimed_at <= EXCLUDED.claimed_at - $4
RETURNING 1

-- claim_all_clear --
UPDATE notices SET open = false WHERE condition = $1 AND upstream = $2 AND open
RETURNING 1

-- attempt_buckets --
-- The dashboard's chart: the recent range of attempts_upstream_time only.
SELECT floor((started_at - $1) / $2)::bigint AS b, verdict, count(*)
  FROM attempts WHERE upstream = $3 AND started_at >= $1
 GROUP BY b, verdict ORDER BY b

-- sep_open_counts --
SELECT upstream, sum(n) FROM request_counts WHERE sep AND status IN {OPEN}
 GROUP BY upstream HAVING sum(n) > 0

-- breaker --
-- The upstream's breaker, made closed the first time (a concurrent first read makes one).
WITH made AS (
    INSERT INTO breakers (upstream) VALUES ($1) ON CONFLICT (upstream) DO NOTHING
    RETURNING upstream, state, generation, opened_at, probe_owner, probe_until)
SELECT * FROM made
UNION ALL
SELECT upstream, state, generation, opened_at, probe_owner, probe_until
  FROM breakers WHERE upstream = $1

-- move_breaker --
-- Compare-and-set: of instances moving from one generation, the first to update wins and
-- the others' WHERE no longer matches (READ COMMITTED re-reads the row they waited for).
UPDATE breakers SET state = $3, generation = generation + 1, opened_at = $4,
                    probe_owner = NULL, probe_until = NULL
 WHERE upstream = $1 AND generation = $2
RETURNING upstream, state, generation, opened_at, probe_owner, probe_until

-- lease_probe --
UPDATE breakers SET state = 'half-open', generation = generation + 1,
                    probe_owner = $2, probe_until = $5
 WHERE upstream = $1 AND state <> 'closed' AND opened_at + $4 <= $3
   AND (probe_until IS NULL OR probe_until <= $3)
RETURNING upstream, state, generation, opened_at, probe_owner, probe_until

-- make_send_rate --
-- A full bucket the first time (as the in-process bucket starts).
INSERT INTO send_rates (upstream, tokens, at) VALUES ($1, $2, $3)
ON CONFLICT (upstream) DO NOTHING

-- take_send_tokens --
-- One row update, so concurrent takes queue on the row and each sees the last one's
-- tokens: together they never take more than the bucket holds. A clock behind `at`
-- (another instance's) adds nothing, and takes nothing away.
UPDATE send_rates
   SET granted = greatest(0, least($2, floor(least($5, tokens + greatest(0, $3 - at) * $4)))),
       tokens = least($5, tokens + greatest(0, $3 - at) * $4)
                - greatest(0, least($2, floor(least($5, tokens + greatest(0, $3 - at) * $4)))),
       at = greatest(at, $3)
 WHERE upstream = $1
RETURNING granted

-- return_send_tokens --
UPDATE send_rates SET tokens = least($3, tokens + $2) WHERE upstream = $1

-- make_send_slots --
-- The upstream's slots 0..$2-1 (made once per limit an instance uses; never dropped, a
-- lower limit just takes fewer of them).
INSERT INTO send_slots (upstream, slot) SELECT $1, generate_series(0, $2 - 1)
ON CONFLICT (upstream, slot) DO NOTHING

-- take_send_slots --
-- Up to $3 of upstream $1's slots below $4 that are free at $5, leased to $2 until $6,
-- none while another instance's live send waits for one (live_waits).
-- SKIP LOCKED: a slot another instance is taking right now is left to it; READ COMMITTED
-- re-checks `until` on each row locked, so a slot taken and committed meanwhile is not
-- taken twice. At most $4 slots exist below the limit, so at most $4 sends are out.
WITH free AS (
    SELECT slot FROM send_slots
     WHERE upstream = $1 AND slot < $4 AND until <= $5
       AND NOT EXISTS (SELECT 1 FROM live_waits w
                        WHERE w.upstream = $1 AND w.owner <> $2 AND w.until > $5)
     ORDER BY slot
     LIMIT $3
     FOR UPDATE SKIP LOCKED)
UPDATE send_slots s SET owner = $2, until = $6
  FROM free
 WHERE s.upstream = $1 AND s.slot = free.slot
RETURNING s.slot

-- take_live_send_slot --
-- One of upstream $1's slots below $3 free at $4, leased to $2 until $5 for a live send
-- (whoever else waits); none free: $2 marks a live send waiting until $6, in the same
-- statement, so no replay of another instance takes the next one freed.
WITH free AS (
    SELECT slot FROM send_slots
     WHERE upstream = $1 AND slot < $3 AND until <= $4
     ORDER BY slot
     LIMIT 1
     FOR UPDATE SKIP LOCKED),
taken AS (
    UPDATE send_slots s SET owner = $2, until = $5
      FROM free
     WHERE s.upstream = $1 AND s.slot = free.slot
    RETURNING s.slot),
waiting AS (
    INSERT INTO live_waits AS w (upstream, owner, until)
    SELECT $1, $2, $6 WHERE NOT EXISTS (SELECT 1 FROM taken)
    ON CONFLICT (upstream, owner) DO UPDATE SET until = greatest(w.until, excluded.until))
SELECT slot FROM taken

-- end_live_wait --
DELETE FROM live_waits WHERE upstream = $1 AND owner = $2

-- renew_send_slots --
-- Only slots still $2's: one whose lease ran out and was taken by another is not taken back.
UPDATE send_slots SET until = $4
 WHERE upstream = $1 AND owner = $2 AND slot = ANY($3::integer[])
RETURNING slot

-- return_send_slots --
UPDATE send_slots SET owner = NULL, until = 0
 WHERE upstream = $1 AND owner = $2 AND slot = ANY($3::integer[])

-- retention_window --
-- The next batch of retention's walk: up to $3 requests by id after $1, all received
-- before the cutoff (ids below $2, minted from the receive time). Its last id and size: a
-- short window means the walk is done.
SELECT max(id) AS last, count(*) AS size
  FROM (SELECT id FROM requests WHERE id > $1 AND id < $2 ORDER BY id LIMIT $3) w

-- purge_bodies --
-- Within the window ($1, $2]: final requests settled before $3, bodies not yet dropped, no
-- callback still to send, lose their bodies (attempts' answers, callback payloads too)
-- and get purged_at $4. Locked as they are picked (SKIP LOCKED: one another instance
-- moves right now is left for the next run), so none changes state in between. One row
-- per request and attempt number (null: none), for the hash chain's tombstones.
WITH picked AS (
  SELECT id FROM requests r
   WHERE id > $1 AND id <= $2 AND status IN {FINAL} AND updated_at < $3
     AND purged_at IS NULL
     AND NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.request_id = r.id
                       AND c.status IN {UNSENT_CALLBACKS})
     FOR UPDATE SKIP LOCKED),
req AS (UPDATE requests SET body = ''::bytea, purged_at = $4
         WHERE id IN (SELECT id FROM picked) RETURNING id),
att AS (UPDATE attempts SET response_body = NULL WHERE request_id IN (SELECT id FROM req)
        RETURNING request_id, number),
cb AS (UPDATE callbacks SET payload = ''::bytea WHERE request_id IN (SELECT id FROM req))
SELECT req.id, att.number FROM req LEFT JOIN att ON att.request_id = req.id

-- purge_rows --
-- As purge_bodies (purged bodies or not), and not a request that keeps a later one (in
-- intake order) with its ordering key waiting: deleting it would release what waits
-- behind it. The request goes with its attempts and callbacks (the counts follow by the
-- delete trigger). Rows as purge_bodies returns them.
WITH picked AS (
  SELECT id FROM requests r
   WHERE id > $1 AND id <= $2 AND status IN {FINAL} AND updated_at < $3
     AND NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.request_id = r.id
                       AND c.status IN {UNSENT_CALLBACKS})
     AND NOT (r.status IN {BLOCKS_LATER} AND r.ordering_key IS NOT NULL AND EXISTS (
       SELECT 1 FROM requests l WHERE l.ordering_key = r.ordering_key AND l.seq > r.seq
         AND l.status IN {BLOCKS_LATER}))
     FOR UPDATE SKIP LOCKED),
att AS (DELETE FROM attempts WHERE request_id IN (SELECT id FROM picked)
        RETURNING request_id, number),
cb AS (DELETE FROM callbacks WHERE request_id IN (SELECT id FROM picked)),
req AS (DELETE FROM requests WHERE id IN (SELECT id FROM picked) RETURNING id)
SELECT req.id, att.number FROM req LEFT JOIN att ON att.request_id = req.id

-- count_purgeable_bodies --
-- What purge_bodies would take walking every window below $1 (the same conditions).
SELECT count(*) FROM requests r
 WHERE id < $1 AND status IN {FINAL} AND updated_at < $2 AND purged_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.request_id = r.id
                     AND c.status IN {UNSENT_CALLBACKS})

-- count_purgeable_rows --
-- What purge_rows would take walking every window below $1 (the same conditions).
SELECT count(*) FROM requests r
 WHERE id < $1 AND status IN {FINAL} AND updated_at < $2
   AND NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.request_id = r.id
                     AND c.status IN {UNSENT_CALLBACKS})
   AND NOT (r.status IN {BLOCKS_LATER} AND r.ordering_key IS NOT NULL AND EXISTS (
     SELECT 1 FROM requests l WHERE l.ordering_key = r.ordering_key AND l.seq > r.seq
       AND l.status IN {BLOCKS_LATER}))

-- chain_append --
-- The transaction's chain links, its last statement (schema.sql tenang_chain_append).
SELECT tenang_chain_append($1::text[], $2::text[], $3::bytea[], $4::bytea[])

-- chain_head --
SELECT seq, head FROM chain_head WHERE id = 1

-- chain_entries --
SELECT seq, kind, ref, leaf, head, purged_at, record FROM chain
 WHERE seq > $1 ORDER BY seq LIMIT $2

-- requests_by_ids --
SELECT {COLUMNS} FROM requests WHERE id = ANY($1::text[])

-- attempts_of_requests --
-- The attempts of a page of requests (an export's page, the chain's leaves).
SELECT request_id, number, started_at, duration_s, verdict, http_status, error, response_body,
       key_id
  FROM attempts WHERE request_id = ANY($1::text[]) ORDER BY request_id, number

-- audit_by_ids --
SELECT id, at, actor, action, target, detail FROM audit_log WHERE id = ANY($1::bigint[])

-- mark_purged --
-- A purged record keeps its entry: the leaf is no longer checked, the head still links.
UPDATE chain SET purged_at = $3
 WHERE kind = $1 AND ref = ANY($2::text[]) AND purged_at IS NULL

-- tombstones --
-- On the index chain_ref (kind, ref).
SELECT ref, purged_at FROM chain
 WHERE kind = $1 AND ref = ANY($2::text[]) AND purged_at IS NOT NULL

-- insert_checkpoint --
-- The head as committed now (a writer appending meanwhile is not waited for).
INSERT INTO checkpoints (seq, head, at, note)
SELECT seq, head, $1, $2 FROM chain_head WHERE id = 1
RETURNING seq, head, at, note

-- checkpoints --
-- Newest first; $1 a head or null for all.
SELECT seq, head, at, note FROM checkpoints WHERE ($1::bytea IS NULL OR head = $1)
 ORDER BY id DESC LIMIT $2

-- insert_verification --
INSERT INTO verifications (at, ok, head_seq, checked, from_seq, broken_seq, broken_kind,
                           broken_ref, problem)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)

-- last_verification --
SELECT at, ok, head_seq, checked, from_seq, broken_seq, broken_kind, broken_ref, problem
  FROM verifications ORDER BY id DESC LIMIT 1

-- chain_head_at --
-- An export manifest's chain position, checked by `tenang audit verify --export`.
SELECT head FROM chain WHERE seq = $1

-- export_requests --
-- An export's rows, oldest first, through one server-side cursor (export_reader): $1 a
-- status, $2 an upstream, $3..$4 an id range and $5..$6 the exact receive times, each
-- null when not asked for. The id range walks the primary key (or requests_status).
SELECT {COLUMNS} FROM requests
 WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR upstream = $2)
   AND ($3::text IS NULL OR id >= $3) AND ($4::text IS NULL OR id < $4)
   AND ($5::float8 IS NULL OR received_at >= $5) AND ($6::float8 IS NULL OR received_at < $6)
 ORDER BY id
-- sealing_keys --
-- The key ids this store has sealed under (proxy.store.sealing.KeyRecord).
SELECT key_id, check_value, retired_at FROM sealing_keys

-- add_sealing_key --
INSERT INTO sealing_keys (key_id, check_value, added_at) VALUES ($1, $2, $3)
ON CONFLICT (key_id) DO UPDATE SET retired_at = NULL

-- retire_sealing_keys --
UPDATE sealing_keys SET retired_at = $2 WHERE key_id = ANY($1::text[]) AND retired_at IS NULL

-- reseal_requests --
-- One rekey batch, its rows locked until the batch commits (a purge waits, then sees the
-- re-sealed value; the walk never rewrites a value another transaction changed).
SELECT id, body, key_id FROM requests WHERE id > $1 ORDER BY id LIMIT $2 FOR UPDATE

-- reseal_attempts --
SELECT request_id, number, response_body, key_id FROM attempts
 WHERE request_id = ANY($1::text[]) AND response_body IS NOT NULL FOR UPDATE

-- reseal_callbacks --
SELECT id, request_id, payload, key_id FROM callbacks WHERE request_id = ANY($1::text[])
   FOR UPDATE

-- resealed_requests --
UPDATE requests r SET body = v.body, key_id = $3
  FROM unnest($1::text[], $2::bytea[]) AS v (id, body) WHERE r.id = v.id

-- resealed_attempts --
UPDATE attempts a SET response_body = v.body, key_id = $4
  FROM unnest($1::text[], $2::integer[], $3::bytea[]) AS v (request_id, number, body)
 WHERE a.request_id = v.request_id AND a.number = v.number

-- resealed_callbacks --
UPDATE callbacks c SET payload = v.payload, key_id = $3
  FROM unnest($1::bigint[], $2::bytea[]) AS v (id, payload) WHERE c.id = v.id

-- sealed_counts --
-- Values per key id (NULL: plaintext): a full scan, for `tenang rekey`'s report only.
SELECT key_id, count(*) FROM requests WHERE length(body) > 0 GROUP BY key_id
UNION ALL
SELECT key_id, count(*) FROM attempts WHERE length(response_body) > 0 GROUP BY key_id
UNION ALL
SELECT key_id, count(*) FROM callbacks WHERE length(payload) > 0 GROUP BY key_id
