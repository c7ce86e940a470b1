/*
 * pricing.h — the price of a purchase: tariff × months, the personal and
 * months discounts, a promo code, and the rule that picks between them.
 * Used by billing.quote() and by create_invoice (payments.c).
 */
#ifndef BILLING_PRICING_H
#define BILLING_PRICING_H

#include "postgres.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/uuid.h"

/* Percentages in C are basis points: hundredths of a percent, 0..10000. */
#define PRICING_BP_FULL	10000

/* billing.max_months: the longest purchase (months 1..max_months). */
extern int	pricing_max_months;

typedef struct BillingQuote
{
	int64		tariff_id;
	char	   *tariff_code;
	char	   *tariff_title;
	char		currency[4];
	int32		months;
	int64		monthly_price;
	int64		list_price;		/* monthly_price × months */
	int32		personal_bp;	/* the user's valid personal discount, applied or not */
	int32		months_bp;		/* the months tier for this purchase, applied or not */

	/*
	 * The promo code the caller passed, validated, whether or not it won:
	 * promo_bp 0, promo_id 0 and promo_code NULL when none was passed.  Only
	 * when applied is "promo" is the code used (create_invoice reserves it
	 * then, and only then).
	 */
	int32		promo_bp;
	int64		promo_id;
	char	   *promo_code;		/* as stored (canonical case), or NULL */

	const char *applied;		/* "discounts", "promo" or "none" */
	int64		total;			/* what the user pays, minor units */

	/* The two candidates the choice was made between (for display). */
	int64		discounts_total;	/* list × (1 − p) × (1 − m), rounded */
	int64		promo_total;	/* list × (1 − promo), rounded; -1 without a code */
} BillingQuote;

/*
 * Validates everything and fills *q:
 *   22004 a NULL tariff_code / user_id (months cannot be NULL here);
 *   22023 months outside 1..billing.max_months;
 *   P0002 no such tariff, no such promo code;
 *   55000 tariff inactive; promo code deleted, not yet valid, expired,
 *         exhausted, for another tariff, or already used by this user.
 * Reads the catalog with the caller's snapshot at billing_now(); locks
 * nothing.  Connects to SPI itself (nestable); strings in *q are allocated in
 * the caller's memory context.
 */
extern void pricing_quote(BillingQuote *q, pg_uuid_t *user_id,
						  const char *tariff_code, int32 months,
						  const char *promo_code);

/* The billing.quote() result for *q. */
extern Jsonb *pricing_quote_jsonb(const BillingQuote *q);

/*
 * The pure arithmetic, exposed for callers that already have the numbers:
 * round_half_up(list × (10000 − p) × (10000 − m) / 10000²), exact in int128.
 * list must be >= 0 and the percentages in 0..10000.
 */
extern int64 pricing_apply_discounts(int64 list, int32 personal_bp, int32 months_bp);

/* numeric percent (at most 2 decimals, 0 < p <= 100) -> basis points, or
 * 22023 naming `what`; and back, as a numeric with scale 2. */
extern int32 pricing_percent_to_bp(Numeric percent, const char *what);
extern Numeric pricing_bp_to_numeric(int32 bp);

extern void pricing_define_gucs(void);

#endif							/* BILLING_PRICING_H */
