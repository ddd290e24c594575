#!/usr/bin/env bash
# Installs and starts what vgen needs on this machine, doing nothing that is
# already done: npm packages, ffmpeg, a CJK font and Redis (plus PostgreSQL,
# Prometheus and docker-compose with --test). As root it uses apt-get; otherwise it prints the command to run.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=false
[ "${1:-}" = "--test" ] && want_test=true
say() { printf 'setup: %s\n' "$*" >&2; }

missing=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
# setpriv makes ffmpeg die with its worker (worker/bin/ffmpeg).
command -v setpriv >/dev/null || missing+=(util-linux)
command -v fc-list >/dev/null && [ -n "$(fc-list :lang=zh 2>/dev/null | head -n 1)" ] || missing+=(fontconfig fonts-noto-cjk)
redis_url="${REDIS_URL:-redis://127.0.0.1:6379}"
local_redis=false
case "$redis_url" in redis://127.0.0.1:6379*|redis://localhost:6379*) local_redis=true ;; esac
redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null; }
if $local_redis && ! redis_up && ! command -v redis-server >/dev/null; then missing+=(redis-server); fi
pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if $want_test && ! pg_up && ! ls /etc/postgresql/*/main >/dev/null 2>&1; then missing+=(postgresql); fi
# The tests run promtool and a real Prometheus (test/dashboards.test.ts, test/prometheus.test.ts)
# and check docker-compose.yml with docker-compose (test/deploy.test.ts).
if $want_test; then
  command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing: ${missing[*]}. Install them with: sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
fi

if $local_redis && ! redis_up; then
  say "starting redis-server on 127.0.0.1:6379 (AOF every second, noeviction)"
  mkdir -p .vgen/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --dir "$PWD/.vgen/redis" \
    --appendonly yes --appendfsync everysec --maxmemory-policy noeviction --logfile "$PWD/.vgen/redis/redis.log"
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
fi

if $want_test && ! pg_up; then
  say "starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 50); do pg_up && break; sleep 0.2; done
  # A fresh Debian cluster asks for a password over TCP; give the tests a known one.
  su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null 2>&1 || true
fi

# npm packages: install when node_modules is missing or older than the lockfile.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
