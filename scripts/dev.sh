#!/usr/bin/env bash
# unlatch developer entry point: set up a fresh machine, run the demo, run every test.
#
#   bash scripts/dev.sh demo    set up, then start a relay + desktop on embedded defaults
#   bash scripts/dev.sh test    set up, then lint, type-check and run every test
#   bash scripts/dev.sh setup   only set up (.venv, npm packages, browser, services)
#
# Idempotent: each step is skipped when already done. Runs as root (no sudo, no stdin
# needed) or as a user with sudo. Sourcing the file only defines the functions (tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

apt_updated=0
installed_pg=0
apt_install() {
  # Install the named Debian packages that are missing.
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || { echo "need Debian packages: ${missing[*]}" >&2; return 1; }
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}

setup_system() {
  apt_install chromium spin
  command -v npm >/dev/null || apt_install nodejs npm
  command -v redis-server >/dev/null || apt_install redis-server || true
  if ! command -v pg_ctlcluster >/dev/null; then
    apt_install postgresql && installed_pg=1 || true
  fi
  command -v chromium >/dev/null || { echo "chromium is required for the browser tests" >&2; exit 1; }
}

start_services() {
  # Redis and PostgreSQL on 127.0.0.1 for the scale-out tests (issue: relay at scale).
  if command -v redis-cli >/dev/null && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    log "starting redis on 127.0.0.1:6379"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  if command -v pg_isready >/dev/null && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
      log "starting postgresql on 127.0.0.1:5432"
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    fi
  fi
  if [ "$installed_pg" = 1 ]; then
    local hba
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf 2>/dev/null | head -1)
    [ -z "$hba" ] || allow_pg_test_connections "$hba" "$(ls /etc/postgresql | head -1)"
  fi
}

allow_pg_test_connections() {
  # A PostgreSQL this script just installed is a test server: let the tests connect from
  # loopback as user postgres without a password, as the project's CI machines do.
  # pg_hba.conf belongs to postgres (mode 0640), so reading and editing it needs root;
  # when that is not possible, warn and go on (the PostgreSQL tests then skip).
  local hba=$1 version=$2
  as_root grep -q "unlatch-tests" "$hba" 2>/dev/null && return 0
  log "allowing loopback test connections to PostgreSQL ($hba)"
  if as_root sed -i '1i host all all 127.0.0.1/32 trust  # unlatch-tests\nhost all all ::1/128 trust  # unlatch-tests' "$hba"; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
  else
    echo "could not edit $hba (needs root): the PostgreSQL tests will be skipped" >&2
  fi
}

make_venv() {
  # Debian's python3 cannot make a venv (no ensurepip) without python3-venv: install it
  # and retry. A failed attempt leaves a venv without pip, so it is removed first.
  log "creating .venv"
  if python3 -m venv "$VENV" >/dev/null 2>&1; then return 0; fi
  rm -rf "$VENV"
  apt_install python3-venv
  python3 -m venv "$VENV"
}

setup_python() {
  [ -x "$PY" ] || make_venv
  local stamp="$VENV/.unlatch-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    log "installing unlatch and its dependencies into .venv"
    "$PY" -m pip install -q --upgrade pip >/dev/null
    "$PY" -m pip install -q -e ".[dev]"
    touch "$stamp"
  fi
}

setup_web() {
  if [ -f web/phone/package.json ]; then
    if [ ! -d web/phone/node_modules ] || [ web/phone/package-lock.json -nt web/phone/node_modules ]; then
      log "installing the phone app's npm packages (lockfile)"
      (cd web/phone && npm ci --no-audit --no-fund --loglevel=error)
    fi
    log "building the phone app"
    (cd web/phone && npm run --silent build)
  fi
}

link_command() {
  # Put the `unlatch` command on PATH: a link in ~/.local/bin (where a user's own commands
  # go, on PATH in most distributions' default profile) to the one in .venv/bin.
  local bin="$HOME/.local/bin" target="$VENV/bin/unlatch"
  mkdir -p "$bin"
  if [ -e "$bin/unlatch" ] && [ ! -L "$bin/unlatch" ]; then
    echo "$bin/unlatch exists and is not a link: left alone (this checkout's command: $target)" >&2
    return 0
  fi
  ln -sfn "$target" "$bin/unlatch"
  log "the unlatch command: $bin/unlatch -> $target"
  case ":$PATH:" in
    *":$bin:"*) ;;
    *) echo "note: $bin is not on your PATH: add it (export PATH=\"\$HOME/.local/bin:\$PATH\" in ~/.profile) or run $target" >&2 ;;
  esac
}

setup() { setup_system; start_services; setup_python; link_command; setup_web; }

run_tests() {
  log "ruff"
  "$VENV/bin/ruff" check unlatch tests bench
  log "mypy"
  "$VENV/bin/mypy"
  if [ -f web/phone/package.json ]; then
    log "JavaScript tests (node --test)"
    (cd web/phone && npm test --silent)
  fi
  if [ -f web/extension/package.json ]; then
    log "JavaScript tests of the browser extension (node --test)"
    (cd web/extension && npm test --silent)
  fi
  log "pytest"
  set +e
  "$VENV/bin/python" -m pytest "$@"
  local rc=$?
  set -e
  if [ $rc = 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi
  exit $rc
}

main() {
  local cmd=${1:-help}
  shift || true
  case "$cmd" in
    setup) setup ;;
    test) setup; run_tests "$@" ;;
    demo) setup; exec "$VENV/bin/unlatch" demo "$@" ;;
    *) sed -n '2,9p' "$0"; exit 2 ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
