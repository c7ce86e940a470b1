/*
 * currency.h — which ISO 4217 currencies the payment provider (Stripe) can
 * charge in, and how many decimals their minor unit has.
 */
#ifndef BILLING_CURRENCY_H
#define BILLING_CURRENCY_H

#include "postgres.h"

/*
 * true when Stripe accepts `code` (three upper-case letters) as a presentment
 * currency and a tariff may be priced in it.
 */
extern bool currency_supported(const char *code);

/*
 * Decimal places of the currency's minor unit as Stripe counts them: 0 for
 * zero-decimal currencies (JPY: amount 500 means 500 yen), 3 for the
 * three-decimal ones, 2 otherwise.  Prices in this extension are stored in
 * exactly these units, so they go to Stripe unchanged; the exponent is for
 * formatting amounts for people.  -1 for an unsupported code.
 */
extern int	currency_exponent(const char *code);

#endif							/* BILLING_CURRENCY_H */
