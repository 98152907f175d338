# shellcheck shell=bash
# Shared by scripts/up and scripts/test: make sure PostgreSQL and Redis answer at DATABASE_URL and
# REDIS_URL. When they do not and they are meant to be on this machine, install them from the
# distribution's packages (Debian) and start them on loopback; apt does not start services here.

DEFAULT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/devpulse"
DEFAULT_REDIS_URL="redis://127.0.0.1:6379"

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $* (install sudo or run as root)"; fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* yourself, or point DATABASE_URL/REDIS_URL at running servers"
  say "installing $* from the distribution's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# url_part URL part -> host | port | db | user
url_part() {
  python3 - "$1" "$2" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
part = sys.argv[2]
defaults = {"postgres": 5432, "postgresql": 5432, "redis": 6379, "rediss": 6379}
if part == "host": print(u.hostname or "127.0.0.1")
elif part == "port": print(u.port or defaults.get(u.scheme, 0))
elif part == "db": print(u.path.lstrip("/") or "postgres")
elif part == "user": print(u.username or "postgres")
elif part == "admin":  # same server, the maintenance database
    print(urllib.parse.urlunparse(u._replace(path="/postgres")))
PY
}

is_loopback() { case "$1" in 127.*|localhost|::1) return 0;; *) return 1;; esac; }

pg_answers() { pg_isready -q -h "$(url_part "$DATABASE_URL" host)" -p "$(url_part "$DATABASE_URL" port)" -t 3; }

redis_answers() { [ "$(redis-cli -u "$REDIS_URL" ping 2>/dev/null)" = "PONG" ]; }

start_local_postgres() {
  command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql
  local ver
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  [ -n "$ver" ] || { as_root pg_createcluster "$(ls /usr/lib/postgresql | sort -V | tail -n 1)" main >/dev/null; ver=$(ls /etc/postgresql | sort -V | tail -n 1); }
  local hba="/etc/postgresql/$ver/main/pg_hba.conf"
  # A development server on loopback: let the `postgres` role in without a password over TCP,
  # as our CI machines do. Only ever on a server this script started, never a remote one.
  if ! as_root grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
  fi
  say "starting PostgreSQL $ver on port $(url_part "$DATABASE_URL" port)"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null \
    || as_root pg_ctlcluster "$ver" main start 2>/dev/null \
    || as_root pg_ctlcluster "$ver" main reload
  for _ in $(seq 1 30); do pg_answers && return 0; sleep 1; done
  die "PostgreSQL did not come up (see /var/log/postgresql/)"
}

start_local_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  local port
  port=$(url_part "$REDIS_URL" port)
  say "starting Redis on 127.0.0.1:$port"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --logfile "/tmp/devpulse-redis-$port.log" >/dev/null
  for _ in $(seq 1 30); do redis_answers && return 0; sleep 0.5; done
  die "Redis did not come up (see /tmp/devpulse-redis-$port.log)"
}

# ensure_services: PostgreSQL and Redis answer, and DATABASE_URL's database exists.
ensure_services() {
  export DATABASE_URL="${DATABASE_URL:-$DEFAULT_DATABASE_URL}"
  export REDIS_URL="${REDIS_URL:-$DEFAULT_REDIS_URL}"
  command -v python3 >/dev/null 2>&1 || apt_install python3
  command -v pg_isready >/dev/null 2>&1 || apt_install postgresql-client
  command -v redis-cli >/dev/null 2>&1 || apt_install redis-tools

  if ! pg_answers; then
    is_loopback "$(url_part "$DATABASE_URL" host)" \
      || die "PostgreSQL does not answer at $(url_part "$DATABASE_URL" host):$(url_part "$DATABASE_URL" port) (DATABASE_URL); start it or fix the URL"
    start_local_postgres
  fi
  if ! redis_answers; then
    is_loopback "$(url_part "$REDIS_URL" host)" \
      || die "Redis does not answer at $(url_part "$REDIS_URL" host):$(url_part "$REDIS_URL" port) (REDIS_URL); start it or fix the URL"
    start_local_redis
  fi

  local db admin
  db=$(url_part "$DATABASE_URL" db)
  admin=$(url_part "$DATABASE_URL" admin)
  if [ "$(psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != "1" ]; then
    say "creating database $db"
    # Another script started at the same moment may create it first: that is fine.
    psql "$admin" -qc "CREATE DATABASE \"$db\"" >/dev/null 2>&1 ||
      [ "$(psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" = "1" ] ||
      die "cannot create database $db (check DATABASE_URL and that its user may create databases)"
  fi
  export TEST_DATABASE_URL="${TEST_DATABASE_URL:-$admin}"
  export TEST_REDIS_URL="${TEST_REDIS_URL:-$REDIS_URL}"
}
