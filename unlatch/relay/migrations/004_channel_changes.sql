-- Version 4: which channels changed, for each node's reconciler (Store.channel_changes,
-- unlatch/relay/reconcile.py): with the Redis bus an event can be lost in flight (a node
-- killed between its commit and its publish), and instead of every waiter re-reading the
-- store on a timer, each node asks once per sweep_interval which channels changed.
--
-- A change is stamped with the id of the transaction that made it (xid8, PostgreSQL 13+):
-- a new channel and a new message by their column default, a channel closed or expired
-- by the trigger below, so no code path can forget it. Transaction ids are not given in
-- commit order, so the reader does not ask "newer than the last one I saw" but "not older
-- than the oldest transaction still running when I last looked" (the xmin of its
-- snapshot): a transaction that commits later cannot have an id below that.

ALTER TABLE channels ADD COLUMN changed xid8 NOT NULL DEFAULT pg_current_xact_id();
ALTER TABLE messages ADD COLUMN changed xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX channels_changed ON channels (changed);
CREATE INDEX messages_changed ON messages (changed);

CREATE FUNCTION unlatch_channel_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed := pg_current_xact_id();
    RETURN NEW;
END
$$;

CREATE TRIGGER channels_changed BEFORE UPDATE OF state ON channels
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION unlatch_channel_changed();
