"""The zero-knowledge relay ("the service") and its Python client.

The relay routes opaque byte strings between a desktop and its paired phones,
and wakes phones by Web Push, UnifiedPush or an open WebSocket. It is trusted
for availability only: it stores device *public* keys, hashed session tokens,
routing ids and ciphertext it cannot read (docs/relay.md).

Layers, so that other backends slot in without touching the routes:

* :mod:`unlatch.relay.store` - the :class:`~unlatch.relay.store.Store` interface
  (SQLite in :mod:`unlatch.relay.store_sqlite`),
* :mod:`unlatch.relay.bus` - the publish/subscribe :class:`~unlatch.relay.bus.Bus`
  (in-process by default),
* :mod:`unlatch.relay.ratelimit` - token buckets behind
  :class:`~unlatch.relay.ratelimit.RateLimiter`,
* :mod:`unlatch.relay.service` - the rules (who may post what, when),
* :mod:`unlatch.relay.app` - HTTP and WebSocket routes (Starlette),
* :mod:`unlatch.relay.client` - the async client used by the desktop and phone.
"""
