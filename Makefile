# PGXS build of the billing extension.
#
# The install script is assembled from sql/parts/*.sql (one file per capability,
# in file-name order) so that each capability keeps its schema next to its peers.
# The version lives in billing.control only.

EXTENSION = billing
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" billing.control)

MODULE_big = billing
PROTO      = $(wildcard proto/*.proto)
PROTO_C    = $(patsubst proto/%.proto,src/gen/%.pb-c.c,$(PROTO))
SRCS       = $(sort $(wildcard src/*.c))
OBJS       = $(SRCS:.c=.o) $(PROTO_C:.c=.o)

DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA       = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*--*.sql))
EXTRA_CLEAN = $(DATA_built) src/gen results output_iso regression.diffs regression.out

# -Wextra minus unused parameters (every hook and PostgreSQL's own headers
# have them); the build is clean with it.
PG_CPPFLAGS = -Isrc -Isrc/gen -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wmissing-prototypes
SHLIB_LINK  = -lcurl -lprotobuf-c -lcrypto

# make installcheck: the pg_regress tests (setup first: the helpers the others
# use) and the isolation specs, against a running server that preloads
# pg_cron and billing and has the extension in database billing, the way
# scripts/cluster makes one (pg_cron schedules only in cron.database_name,
# and the outbox worker stays connected to billing.database, so the tests
# use that database instead of creating their own).  scripts/test makes
# such a server and runs the same lists.
REGRESS      = setup $(filter-out setup,$(sort $(patsubst test/sql/%.sql,%,$(wildcard test/sql/*.sql))))
ISOLATION    = $(sort $(patsubst test/specs/%.spec,%,$(wildcard test/specs/*.spec)))
REGRESS_OPTS = --inputdir=test --use-existing
ISOLATION_OPTS = $(REGRESS_OPTS)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# After PGXS, which names its own test database: ours is billing (above).
CONTRIB_TESTDB = billing
ISOLATION_TESTDB = billing

$(DATA_built): $(sort $(wildcard sql/parts/*.sql)) billing.control
	cat $(sort $(wildcard sql/parts/*.sql)) > $@

src/gen/%.pb-c.c src/gen/%.pb-c.h: proto/%.proto
	@mkdir -p src/gen
	protoc-c --proto_path=proto --c_out=src/gen $<

# Every object may include generated headers and any header of src/ (PGXS
# tracks no header dependencies by itself).
$(SRCS:.c=.o): $(PROTO_C:.c=.h) $(wildcard src/*.h)

# The test lists, for scripts/test.
print-%:
	@echo $($*)
