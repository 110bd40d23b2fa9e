"""The browser extension's half on this machine: native messaging host, install, matching.

The extension (``web/extension``) never holds the vault: it asks this host,
started by the browser over native messaging (stdio), which asks the agent.
See docs/browser.md.
"""
