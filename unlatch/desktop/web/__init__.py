"""The desktop's local web UI (served by the agent on 127.0.0.1).

:mod:`.security` guards every request (launch secret -> session cookie, Host,
Origin, CSRF, CSP); :mod:`.app` holds the routes; assets live in
``web/desktop`` (plain HTML/CSS/JS, no build step, no external assets).
"""
