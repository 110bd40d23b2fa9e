"""Shared pytest configuration: fixtures provided as plugins."""

pytest_plugins = [
    "fixtures.push_endpoint",
    "fixtures.vault",
    "fixtures.protocol",
    "fixtures.relay",
    "fixtures.pwa",
    "fixtures.desktop",
]
