-- Version 3: the writes of an exchange, each one round trip.
--
-- Creating a channel, posting a message and closing a channel used to be a
-- transaction of two or three statements sent one by one (BEGIN, a lock, the
-- change, COMMIT: 4-5 round trips each). Each is now one call of a PL/pgSQL
-- function, run as a single statement in its own transaction, doing the same
-- steps in the same order under the same locks, so nodes of version 2 and 3
-- can share the database during a rolling upgrade.
--
-- Why this holds at READ COMMITTED: a VOLATILE function (the default) takes a
-- fresh snapshot for each statement it runs. A statement that follows a lock
-- wait (pg_advisory_xact_lock, SELECT ... FOR UPDATE, an UPDATE of a locked row)
-- therefore sees what the transaction it waited for committed, exactly as the
-- next statement of a client-side transaction did. One plain SQL statement
-- (a CTE) would not: it keeps the snapshot it started with, so a count after
-- the creator's lock, or a DELETE after a close's row lock, would miss the rows
-- the other transaction had just committed.
-- The functions take no parameter they could build SQL from; every value is a
-- bound parameter of a static statement.

-- Insert an open channel unless the id exists or the creator has p_max_open open
-- ones of this kind. p_lock is the creator's advisory-lock key (computed by the
-- relay, the same key version 2 nodes take), which makes count-then-insert exact
-- across nodes. With p_renews, also names the unlock request this one renews:
-- the newest other open, unanswered request of the same desktop, phone and
-- pairing. Returns ('created' | 'exists' | 'too_many', renewed id or NULL).
CREATE FUNCTION unlatch_create_channel(
    p_lock BIGINT,
    p_max_open INTEGER,
    p_renews BOOLEAN,
    p_channel_id BYTEA,
    p_kind TEXT,
    p_creator TEXT,
    p_peer TEXT,
    p_routing_id BYTEA,
    p_push BYTEA,
    p_meta JSONB,
    p_created_at DOUBLE PRECISION,
    p_expires_at DOUBLE PRECISION,
    OUT result TEXT,
    OUT renews BYTEA
) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    IF EXISTS (SELECT 1 FROM channels WHERE channel_id = p_channel_id) THEN
        result := 'exists';
        RETURN;
    END IF;
    IF (SELECT count(*) FROM channels WHERE creator = p_creator AND kind = p_kind
            AND state = 'open' AND expires_at > p_created_at) >= p_max_open THEN
        result := 'too_many';
        RETURN;
    END IF;
    INSERT INTO channels (channel_id, kind, creator, peer, routing_id, push, meta,
                          created_at, expires_at, state)
    VALUES (p_channel_id, p_kind, p_creator, p_peer, p_routing_id, p_push, p_meta,
            p_created_at, p_expires_at, 'open')
    ON CONFLICT (channel_id) DO NOTHING;
    IF NOT FOUND THEN  -- inserted meanwhile by a creator holding another lock key
        result := 'exists';
        RETURN;
    END IF;
    result := 'created';
    IF p_renews THEN
        SELECT ch.channel_id INTO renews FROM channels ch
         WHERE ch.peer = p_peer AND ch.kind = 'unlock' AND ch.state = 'open'
           AND ch.expires_at > p_created_at AND ch.creator = p_creator
           AND ch.routing_id = p_routing_id AND ch.channel_id <> p_channel_id
           AND NOT EXISTS (SELECT 1 FROM messages m
                            WHERE m.channel_id = ch.channel_id AND m.type = 'reply')
         ORDER BY ch.created_at DESC, ch.channel_id
         LIMIT 1;
    END IF;
END
$$;

-- Append a message if the channel is open at p_now and has none of this type.
-- The channel's row lock orders every post, close and expiry of it across nodes;
-- the INSERT, a new statement, then sees every message committed before the lock
-- was granted, so seq is the next one and UNIQUE (channel_id, type) decides
-- duplicates. With p_kind / p_from_peer the channel must be of that kind and
-- p_sender its peer. Returns the new seq (> 0), 0 for a duplicate type, -1 when
-- the channel is unknown or not open, -2 when the kind or sender is refused.
CREATE FUNCTION unlatch_add_message(
    p_channel_id BYTEA,
    p_type TEXT,
    p_sender TEXT,
    p_data BYTEA,
    p_now DOUBLE PRECISION,
    p_kind TEXT,
    p_from_peer BOOLEAN
) RETURNS INTEGER LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_kind TEXT;
    v_peer TEXT;
    v_seq INTEGER;
BEGIN
    SELECT kind, peer INTO v_kind, v_peer FROM channels
     WHERE channel_id = p_channel_id AND state = 'open' AND expires_at > p_now
     FOR UPDATE;
    IF NOT FOUND THEN
        RETURN -1;
    END IF;
    IF (p_kind IS NOT NULL AND v_kind <> p_kind)
            OR (p_from_peer AND v_peer IS DISTINCT FROM p_sender) THEN
        RETURN -2;
    END IF;
    INSERT INTO messages (channel_id, seq, type, sender, data, created_at)
    SELECT p_channel_id, COALESCE(MAX(seq), 0) + 1, p_type, p_sender, p_data, p_now
      FROM messages WHERE channel_id = p_channel_id
    ON CONFLICT (channel_id, type) DO NOTHING
    RETURNING seq INTO v_seq;
    RETURN COALESCE(v_seq, 0);
END
$$;

-- Close a channel (state 'closed', outcome in meta, payloads dropped). With
-- p_renewed_meta (an unlock request), also close the older open, unanswered
-- requests of the same desktop, phone and pairing that it renewed, newest first
-- (every closer locks rows from newer to older, so two closers cannot deadlock).
-- Each UPDATE waits for a racing post's row lock and re-checks state = 'open';
-- the DELETE, a statement started after those waits, sees and drops every
-- message those posts committed: no reply survives on a closed channel.
-- Returns NULL when the channel was not open (its messages are still dropped),
-- else the ids closed, this channel first.
CREATE FUNCTION unlatch_close_channel(
    p_channel_id BYTEA,
    p_now DOUBLE PRECISION,
    p_meta JSONB,
    p_renewed_meta JSONB
) RETURNS BYTEA[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_closed BYTEA[];
    v_ch RECORD;
    v_older BYTEA;
BEGIN
    UPDATE channels SET state = 'closed', closed_at = p_now, push = NULL, meta = p_meta
     WHERE channel_id = p_channel_id AND state = 'open'
    RETURNING kind, creator, peer, routing_id, created_at INTO v_ch;
    IF FOUND THEN
        v_closed := ARRAY[p_channel_id];
        IF p_renewed_meta IS NOT NULL AND v_ch.kind = 'unlock' AND v_ch.peer IS NOT NULL THEN
            FOR v_older IN
                SELECT ch.channel_id FROM channels ch
                 WHERE ch.peer = v_ch.peer AND ch.kind = 'unlock' AND ch.state = 'open'
                   AND ch.expires_at > p_now AND ch.creator = v_ch.creator
                   AND ch.routing_id = v_ch.routing_id AND ch.created_at < v_ch.created_at
                   AND NOT EXISTS (SELECT 1 FROM messages m
                                    WHERE m.channel_id = ch.channel_id AND m.type = 'reply')
                 ORDER BY ch.created_at DESC, ch.channel_id
            LOOP
                UPDATE channels SET state = 'closed', closed_at = p_now, push = NULL,
                                    meta = p_renewed_meta
                 WHERE channel_id = v_older AND state = 'open';
                IF FOUND THEN
                    v_closed := array_append(v_closed, v_older);
                END IF;
            END LOOP;
        END IF;
    END IF;
    DELETE FROM messages WHERE channel_id = ANY (COALESCE(v_closed, ARRAY[p_channel_id]));
    RETURN v_closed;
END
$$;

-- Expire up to p_batch open channels past their life (those holding messages
-- only once p_wiped_before has passed their expiry too), drop their payloads and
-- return their ids. SKIP LOCKED: the sweepers of several nodes split the work
-- and never wait on a channel being posted to (the next sweep takes it).
CREATE FUNCTION unlatch_expire_channels(
    p_now DOUBLE PRECISION,
    p_wiped_before DOUBLE PRECISION,
    p_batch INTEGER
) RETURNS BYTEA[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_ids BYTEA[];
BEGIN
    WITH due AS (
        SELECT channel_id FROM channels ch
         WHERE state = 'open' AND expires_at <= p_now
           AND (expires_at <= p_wiped_before
                OR NOT EXISTS (SELECT 1 FROM messages m WHERE m.channel_id = ch.channel_id))
         ORDER BY channel_id LIMIT p_batch
         FOR UPDATE SKIP LOCKED
    ), expired AS (
        UPDATE channels SET state = 'expired', closed_at = p_now, push = NULL, meta = NULL
          FROM due WHERE channels.channel_id = due.channel_id
        RETURNING channels.channel_id
    )
    SELECT COALESCE(array_agg(channel_id), '{}') INTO v_ids FROM expired;
    IF cardinality(v_ids) > 0 THEN
        DELETE FROM messages WHERE channel_id = ANY (v_ids);
    END IF;
    RETURN v_ids;
END
$$;
