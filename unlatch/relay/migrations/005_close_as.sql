-- Version 5: a party closes a channel in one round trip (Store.close_as). The
-- service used to read the channel and its messages (to check the closer and to
-- work out the outcome), then call unlatch_close_channel: two round trips per
-- close, one per unlock. Here the checks, the outcome and the close run under the
-- channel's row lock, which add_message also takes first, so no message can be
-- posted between reading what was posted and closing: a racing reply either
-- counts ("answered") or is refused.
--
-- result: 'unknown' (no channel of p_kind), 'not_party', 'not_creator' (an unlock
-- request closed by another than its desktop), 'not_open' (already ended: nothing
-- changes but its messages are dropped) or 'closed'; closed: the ids closed, this
-- channel first, then the older requests it renewed (unlatch_close_channel).
-- The outcome rules are those of unlatch.relay.store.close_outcomes.
CREATE FUNCTION unlatch_close_as(
    p_channel_id BYTEA,
    p_device TEXT,
    p_kind TEXT,
    p_now DOUBLE PRECISION,
    OUT result TEXT,
    OUT outcome TEXT,
    OUT renewed_outcome TEXT,
    OUT peer TEXT,
    OUT expires_at DOUBLE PRECISION,
    OUT closed BYTEA[]
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_ch RECORD;
    v_replied BOOLEAN;
    v_hello BOOLEAN;
    v_accept BOOLEAN;
BEGIN
    SELECT ch.kind, ch.creator, ch.peer, ch.expires_at INTO v_ch
      FROM channels ch WHERE ch.channel_id = p_channel_id
       FOR UPDATE;
    IF NOT FOUND OR v_ch.kind <> p_kind THEN
        result := 'unknown';
        RETURN;
    END IF;
    IF p_device <> v_ch.creator AND p_device IS DISTINCT FROM v_ch.peer THEN
        result := 'not_party';
        RETURN;
    END IF;
    IF p_kind = 'unlock' AND p_device <> v_ch.creator THEN
        result := 'not_creator';
        RETURN;
    END IF;
    SELECT COALESCE(bool_or(m.type = 'reply'), false),
           COALESCE(bool_or(m.type = 'hello'), false),
           COALESCE(bool_or(m.type = 'accept'), false)
      INTO v_replied, v_hello, v_accept
      FROM messages m WHERE m.channel_id = p_channel_id;
    IF p_kind = 'unlock' THEN
        outcome := CASE WHEN v_replied THEN 'answered' ELSE 'cancelled' END;
    ELSE
        outcome := CASE WHEN p_device = v_ch.creator AND v_hello AND NOT v_accept
                        THEN 'rejected' ELSE 'closed' END;
    END IF;
    renewed_outcome := CASE WHEN outcome = 'cancelled' THEN 'cancelled' ELSE 'closed' END;
    peer := v_ch.peer;
    expires_at := v_ch.expires_at;
    closed := unlatch_close_channel(
        p_channel_id,
        p_now,
        jsonb_build_object('outcome', outcome),
        CASE WHEN p_kind = 'unlock' THEN jsonb_build_object('outcome', renewed_outcome) END
    );
    result := CASE WHEN closed IS NULL THEN 'not_open' ELSE 'closed' END;
END
$$;
