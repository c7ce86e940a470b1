# Shared by bench/*.sh (sourced, not run): the project's helpers
# (scripts/lib.sh), the working directory, and a private install for the
# benchmarks, one per checkout and apart from the tests' (BILLING_WORK).

. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$BILLING_SRC"

BILLING_WORK=${BILLING_WORK:-/tmp/billing-bench-$(printf %s "$BILLING_SRC" | md5sum | cut -c1-8)}
export BILLING_WORK

# Dependencies installed and the extension built into BILLING_WORK's private
# PostgreSQL install (BILLING_PGBIN).
bench_prepare() {
	ensure_deps
	build_private_root "$BILLING_WORK"
}
