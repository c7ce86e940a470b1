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
EXTRA_CLEAN = $(DATA_built) src/gen

PG_CPPFLAGS = -Isrc -Isrc/gen -std=gnu11 -Wall -Wmissing-prototypes
SHLIB_LINK  = -lcurl -lprotobuf-c -lcrypto

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(DATA_built): $(sort $(wildcard sql/parts/*.sql)) billing.control
	cat $(sort $(wildcard sql/parts/*.sql)) > $@

src/gen/%.pb-c.c src/gen/%.pb-c.h: proto/%.proto
	@mkdir -p src/gen
	protoc-c --proto_path=proto --c_out=src/gen $<

# Every object may include generated headers and any header of src/ (PGXS
# tracks no header dependencies by itself).
$(SRCS:.c=.o): $(PROTO_C:.c=.h) $(wildcard src/*.h)
