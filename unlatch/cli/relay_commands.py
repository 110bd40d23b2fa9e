"""``unlatch relay``: run the relay server ("the service") on this machine."""

from __future__ import annotations

import re

import click

from unlatch.cli import main
from unlatch.relay.proxy import PROXY_HEADERS  # stdlib only: cheap at CLI start


@main.command("relay")
@click.option(
    "--host", default=None, help="Address to listen on (default 127.0.0.1; 0.0.0.0 for all)."
)
@click.option("--port", type=int, default=None, help="TCP port (default 8470).")
@click.option(
    "--db",
    default=None,
    help="Store URL: sqlite:///PATH, a file path (default: $UNLATCH_HOME/relay/relay.db),"
    " or postgresql://USER@HOST:PORT/DB for several nodes (docs/deploy.md).",
)
@click.option(
    "--bus",
    default=None,
    help="Bus URL: memory:// (default, one process) or redis://HOST:PORT/DB[?prefix=P]"
    " to join nodes (wake-ups and shared rate limits); env UNLATCH_RELAY_BUS.",
)
@click.option(
    "--public-url", default=None, help="The URL phones and desktops use (default http://HOST:PORT)."
)
@click.option(
    "--trusted-proxy",
    multiple=True,
    help="CIDR of your reverse proxy (repeatable): from these peers only, the client address"
    " is read from the --proxy-header header.",
)
@click.option(
    "--proxy-header",
    default=None,
    type=click.Choice(PROXY_HEADERS, case_sensitive=False),
    help="The one header your trusted proxy writes (default x-forwarded-for, as the nginx and"
    " Caddy setups in docs/deploy.md send); the other is ignored, whoever sent it.",
)
@click.option(
    "--cert",
    default=None,
    type=click.Path(dir_okay=False),
    help="TLS certificate chain (PEM) for direct HTTPS.",
)
@click.option(
    "--key",
    default=None,
    type=click.Path(dir_okay=False),
    help="TLS private key (PEM), with --cert.",
)
@click.option(
    "--no-push",
    is_flag=True,
    default=False,
    help="Disable Web Push/UnifiedPush (WebSocket listeners only).",
)
@click.option(
    "--push-allow-private",
    is_flag=True,
    default=None,
    help="Accept push endpoints on loopback/private addresses (and http:// to loopback):"
    " for tests, the demo or a push service on your own network. Off by default, so a"
    " phone cannot make the relay send requests into its network.",
)
@click.option(
    "--vapid-key-replace",
    is_flag=True,
    default=None,
    help="Record this relay's VAPID key as the deployment's, replacing the one in the store"
    " (use once, after a deliberate key change; phones must re-enable notifications).",
)
@click.option(
    "--app-url",
    default=None,
    metavar="URL",
    help="Where the phone app is served, if not by this relay (an origin you choose, e.g."
    " https://app.example.org/): /app/ then redirects there and that origin may call the API."
    " Unset, the relay serves the app under /app/ and is trusted for its code"
    " (docs/security.md).",
)
@click.option(
    "--log-level",
    default=None,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log level (JSON lines on stderr).",
)
def relay_command(
    host: str | None,
    port: int | None,
    db: str | None,
    bus: str | None,
    public_url: str | None,
    trusted_proxy: tuple[str, ...],
    proxy_header: str | None,
    cert: str | None,
    key: str | None,
    no_push: bool,
    push_allow_private: bool | None,
    vapid_key_replace: bool | None,
    app_url: str | None,
    log_level: str | None,
) -> None:
    """Run the zero-knowledge relay between desktops and their paired phones.

    It carries only opaque (end-to-end encrypted) messages, wakes phones by
    Web Push / UnifiedPush, and serves the phone app under /app/. Settings come
    from the [relay] section of the config file and UNLATCH_RELAY_* variables;
    options here win. See docs/relay.md.

    \b
    Examples:
      unlatch relay
      unlatch relay --host 0.0.0.0 --public-url https://relay.example.org \\
          --trusted-proxy 127.0.0.1/32
      unlatch relay --db sqlite:///var/lib/unlatch/relay.db --port 9000
      unlatch relay --cert fullchain.pem --key privkey.pem --host 0.0.0.0 --port 443
      UNLATCH_RELAY_RATE_UNLOCK_PAIRING=20/60 unlatch relay
      unlatch relay --host 10.0.0.5 --public-url https://relay.example.org \\
          --db postgresql://unlatch@db.internal/unlatch --bus redis://redis.internal:6379/0
    """
    from unlatch.relay.config import load_config
    from unlatch.relay.server import run

    overrides = {
        "host": host,
        "port": port,
        "db": db,
        "bus": bus,
        "public_url": public_url,
        "trusted_proxy": trusted_proxy,
        "proxy_header": proxy_header,
        "cert": cert,
        "key": key,
        "log_level": log_level,
        "push_enabled": False if no_push else None,
        "push_allow_private": True if push_allow_private else None,
        "vapid_key_replace": True if vapid_key_replace else None,
        "app_url": app_url,
    }
    config = load_config(overrides)
    store = re.sub(r"//[^/@]*@", "//", config.db.split("?")[0])  # never echo a DB password
    click.echo(f"unlatch relay on {config.public_url} (store {store})", err=True)
    run(config)
