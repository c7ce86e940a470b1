/*
 * common.h — the small helpers every capability shares: saved SPI plans,
 * uuid text, hex digits, echoing caller input in errors, NULL arguments,
 * the standby guard.
 */
#ifndef BILLING_COMMON_H
#define BILLING_COMMON_H

#include "postgres.h"
#include "executor/spi.h"
#include "utils/timestamp.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/*
 * Saved SPI plans.  A call site keeps its plan in a static variable:
 *
 *     static SPIPlanPtr plan;
 *     billing_spi_exec(&plan, "UPDATE ... $1", 1, argtypes, values, nulls, 0);
 *
 * The first call prepares and keeps the plan; later calls reuse it.  The
 * caller must be connected to SPI.  Returns SPI_processed.
 */
extern uint64 billing_spi_exec(SPIPlanPtr *plan, const char *sql,
							   int nargs, Oid *argtypes,
							   Datum *values, const char *nulls,
							   bool read_only, long tcount);

/* Column `col` (1-based) of row `row` of SPI_tuptable; a by-reference value
 * lives in SPI memory, so copy it out before SPI_finish. */
extern Datum billing_spi_get(uint64 row, int col, bool *isnull);

/* Text column `col` of row `row` of SPI_tuptable as a C string palloc'd in
 * the current memory context, or NULL for a NULL value. */
extern char *billing_spi_text(uint64 row, int col);

/* The text form of a uuid (palloc'd in the current memory context). */
extern char *billing_uuid_str(const pg_uuid_t *u);

/*
 * A uuid in the canonical text form every issuer writes (8-4-4-4-12 hex
 * digits, either case) into *out when out is not NULL.  len is the length of
 * s, or -1 when s is NUL-terminated; s may be NULL.  False for anything else,
 * never an error: callers decide what a bad id means (a 401, a parked
 * message, an ignored event).
 */
extern bool billing_parse_uuid(const char *s, int len, pg_uuid_t *out);

/* The value of one hex digit (either case), or -1 for anything else. */
extern int	billing_hexval(char c);

/*
 * Caller input quoted in an error (message, detail or hint) goes through
 * billing_echo(): its first BILLING_ECHO_CHARS characters and an ellipsis
 * when longer, cut between characters, so a megabyte argument does not come
 * back whole in the error, the HTTP response body and the server log.  A
 * short string (or NULL) is returned as it is.
 */
#define BILLING_ECHO_CHARS 64
extern char *billing_echo(const char *s);

/*
 * For a settings check hook that refuses a value: PostgreSQL's own "invalid
 * value for parameter" message would quote the value whole.
 */
extern void billing_guc_invalid(const char *name, const char *value);

/* Raise 22004 for a NULL argument the function does not accept. */
#define BILLING_REQUIRE_ARG(fcinfo, n, name) \
	do { \
		if (PG_ARGISNULL(n)) \
			ereport(ERROR, \
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), \
					 errmsg("%s must not be null", (name)))); \
	} while (0)

/*
 * Refuse with 25006 (and a hint to use the primary) while this server is a
 * hot standby.  Every function that writes starts with it:
 *     BILLING_REQUIRE_PRIMARY(fcinfo);
 */
extern void billing_require_primary(const char *what);
extern void billing_require_primary_fn(FunctionCallInfo fcinfo);
#define BILLING_REQUIRE_PRIMARY(fcinfo) billing_require_primary_fn(fcinfo)

/*
 * Reading a provider's JSON object (Stripe's, YooKassa's): a missing key,
 * JSON null and a value of another type all give NULL/false, never an error;
 * an integer must be whole and fit in int64.
 */
extern char *billing_json_str(JsonbContainer *c, const char *key);
extern bool billing_json_int(JsonbContainer *c, const char *key, int64 *out);
extern JsonbContainer *billing_json_obj(JsonbContainer *c, const char *key);

/*
 * Run fn(arg) in a subtransaction so that one bad row does not end a batch:
 * an error rolls back only what fn did and becomes a WARNING "what: message"
 * (a query cancel or shutdown is raised on).  Returns false after an error.
 * The caller's memory context is current again on return.
 */
extern bool billing_guarded(void (*fn) (void *arg), void *arg, const char *what);

/* A nested object as a Jsonb of its own (palloc'd). */
extern Jsonb *billing_json_copy(JsonbContainer *c);

#endif							/* BILLING_COMMON_H */
