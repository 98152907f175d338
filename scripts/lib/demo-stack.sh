# shellcheck shell=bash
# A private DevPulse for one script run: its own database, queue namespace and ports, the api
# (serving the built dashboard) and a worker, loaded with a small demo history. Used by
# scripts/test-web and scripts/bench-read; needs scripts/lib/services.sh and ensure_services.
#
# start_demo_stack PROFILE  sets STACK_URL, STACK_DIR, OWNER_EMAIL, OWNER_PASSWORD, DEV_EMAIL,
# DEV_PASSWORD, OTHER_DEV_ID; stop_demo_stack stops it and drops its database.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_demo_stack() {
  local profile="$1" dir
  dir=$([ "$profile" = "dev" ] && echo debug || echo "$profile")
  STACK_DIR=$(mktemp -d /tmp/devpulse-stack.XXXXXX)
  STACK_DB="devpulse_stack_$$_${RANDOM}"
  STACK_NAMESPACE="stack-$$-${RANDOM}"
  local admin api_port
  admin=$(url_part "$DATABASE_URL" admin)
  psql "$admin" -qc "CREATE DATABASE $STACK_DB" >/dev/null
  STACK_DATABASE_URL="$(python3 -c 'import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]); print(u.urlunparse(p._replace(path="/"+sys.argv[2])))' "$admin" "$STACK_DB")"
  api_port=$(free_port)
  STACK_URL="http://127.0.0.1:$api_port"
  python3 -c 'import secrets; print(secrets.token_hex(32))' > "$STACK_DIR/jwt-secret"
  # The variables the api, the worker and scripts/demo read.
  export DATABASE_URL="$STACK_DATABASE_URL" QUEUE_NAMESPACE="$STACK_NAMESPACE" \
    API_ADDR="127.0.0.1:$api_port" WORKER_METRICS_ADDR="127.0.0.1:$(free_port)" \
    GITHUB_WEBHOOK_SECRET="stack-secret-$RANDOM" JWT_SECRET="$(cat "$STACK_DIR/jwt-secret")" \
    WEB_DIR="$PWD/web/dist" RUN_DIR="$STACK_DIR" LOG_FORMAT=json RUST_LOG="${RUST_LOG:-warn}"
  "target/$dir/migration" up >/dev/null
  "target/$dir/api" >> "$STACK_DIR/api.log" 2>&1 &
  echo $! > "$STACK_DIR/pids"
  "target/$dir/worker" >> "$STACK_DIR/worker.log" 2>&1 &
  echo $! >> "$STACK_DIR/pids"
  for _ in $(seq 1 60); do
    curl -fsS "$STACK_URL/health/ready" >/dev/null 2>&1 && break
    sleep 0.5
  done
  curl -fsS "$STACK_URL/health/ready" >/dev/null || { tail -n 5 "$STACK_DIR"/*.log >&2; stop_demo_stack; die "the private stack did not start"; }
  OWNER_EMAIL="owner@demo.devpulse.test"
  OWNER_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
  local org
  org=$("target/$dir/worker" admin create-org "Demo" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["organization_id"])')
  printf '%s\n' "$OWNER_PASSWORD" | "target/$dir/worker" admin create-user --org "$org" \
    --email "$OWNER_EMAIL" --role owner --name "Demo Owner" --password-stdin --json >/dev/null
  printf '%s\n' "$OWNER_PASSWORD" > "$STACK_DIR/demo-owner"
  PROFILE="$profile" scripts/demo >&2
  # Two of the demo's developers (their passwords are `demo-<login>-<seed>`, seed 7).
  DEV_EMAIL="ada-dev@demo.devpulse.test"
  DEV_PASSWORD="demo-ada-dev-7"
  OTHER_DEV_ID=$(psql "$STACK_DATABASE_URL" -tAc "SELECT id FROM users WHERE email = 'alan-dev@demo.devpulse.test'")
  [ -n "$OTHER_DEV_ID" ] || die "the demo history has no developer alan-dev"
}

stop_demo_stack() {
  [ -n "${STACK_DIR:-}" ] || return 0
  if [ -f "$STACK_DIR/pids" ]; then
    while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done < "$STACK_DIR/pids"
    while read -r pid; do
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -KILL "$pid" 2>/dev/null || true
    done < "$STACK_DIR/pids"
  fi
  psql "$(url_part "$DATABASE_URL" admin)" -qc "DROP DATABASE IF EXISTS $STACK_DB WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "$REDIS_URL" --scan --pattern "${STACK_NAMESPACE}*" 2>/dev/null | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
  [ -n "${KEEP_STACK_LOGS:-}" ] || rm -rf "$STACK_DIR"
  STACK_DIR=""
}
