-- The relay's PostgreSQL schema, version 1: the same records as the SQLite store.
-- Times are Unix seconds (double precision), ids and payloads bytea.

CREATE TABLE devices (
    device_id   TEXT PRIMARY KEY,
    public_key  BYTEA NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('desktop', 'phone')),
    created_at  DOUBLE PRECISION NOT NULL,
    push_target JSONB
);

CREATE TABLE challenges (
    challenge  BYTEA PRIMARY KEY,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX challenges_expiry ON challenges (expires_at);

CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY,
    device_id  TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE channels (
    channel_id BYTEA PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('pairing', 'unlock')),
    creator    TEXT NOT NULL,
    peer       TEXT,
    routing_id BYTEA,
    push       BYTEA,
    meta       JSONB,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('open', 'expired', 'closed')),
    closed_at  DOUBLE PRECISION
);
CREATE INDEX channels_open_creator ON channels (creator, kind) WHERE state = 'open';
CREATE INDEX channels_open_peer ON channels (peer) WHERE state = 'open' AND kind = 'unlock';
CREATE INDEX channels_open_expiry ON channels (expires_at) WHERE state = 'open';
CREATE INDEX channels_tombstones ON channels (closed_at) WHERE state <> 'open';

CREATE TABLE messages (
    channel_id BYTEA NOT NULL REFERENCES channels (channel_id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    type       TEXT NOT NULL,
    sender     TEXT NOT NULL,
    data       BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (channel_id, seq),
    UNIQUE (channel_id, type)
);

CREATE TABLE pairings (
    routing_id     BYTEA NOT NULL,
    device_id      TEXT NOT NULL,
    peer_device_id TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('desktop', 'phone')),
    created_at     DOUBLE PRECISION NOT NULL,
    blocked        BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (routing_id, device_id)
);
CREATE INDEX pairings_device ON pairings (device_id);
