/*
 * currency.c — the currencies Stripe can charge in (its presentment
 * currencies) and the decimals of their minor units.  The table is Stripe's
 * published list; keep it sorted, it is searched with bsearch.  The same
 * table is what billing.currencies() lists, so that people's clients (the
 * admin panel) format amounts by the server's exponents, never their own.
 */
#include "postgres.h"

#include <stdlib.h>

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "currency.h"

typedef struct CurrencyInfo
{
	const char *code;
	int			exponent;
} CurrencyInfo;

/*
 * Stripe's presentment currencies (docs.stripe.com/currencies).  Zero-decimal
 * ones are charged in whole units (exponent 0).  The three-decimal dinars
 * (BHD, JOD, KWD, OMR, TND) are left out on purpose: Stripe requires their
 * amounts to end in 0, and a discounted total rounded to the minor unit
 * cannot promise that.  Stripe's "special cases" keep their API exponent
 * here: ISK, HUF and TWD are two-decimal in the API (Stripe may round
 * fractions away on payout), UGX is zero-decimal.
 */
static const CurrencyInfo currencies[] = {
	{"AED", 2}, {"AFN", 2}, {"ALL", 2}, {"AMD", 2}, {"ANG", 2}, {"AOA", 2},
	{"ARS", 2}, {"AUD", 2}, {"AWG", 2}, {"AZN", 2}, {"BAM", 2}, {"BBD", 2},
	{"BDT", 2}, {"BGN", 2}, {"BIF", 0}, {"BMD", 2}, {"BND", 2}, {"BOB", 2},
	{"BRL", 2}, {"BSD", 2}, {"BWP", 2}, {"BYN", 2}, {"BZD", 2}, {"CAD", 2},
	{"CDF", 2}, {"CHF", 2}, {"CLP", 0}, {"CNY", 2}, {"COP", 2}, {"CRC", 2},
	{"CVE", 2}, {"CZK", 2}, {"DJF", 0}, {"DKK", 2}, {"DOP", 2}, {"DZD", 2},
	{"EGP", 2}, {"ETB", 2}, {"EUR", 2}, {"FJD", 2}, {"FKP", 2}, {"GBP", 2},
	{"GEL", 2}, {"GIP", 2}, {"GMD", 2}, {"GNF", 0}, {"GTQ", 2}, {"GYD", 2},
	{"HKD", 2}, {"HNL", 2}, {"HTG", 2}, {"HUF", 2}, {"IDR", 2}, {"ILS", 2},
	{"INR", 2}, {"ISK", 2}, {"JMD", 2}, {"JPY", 0}, {"KES", 2}, {"KGS", 2},
	{"KHR", 2}, {"KMF", 0}, {"KRW", 0}, {"KYD", 2}, {"KZT", 2}, {"LAK", 2},
	{"LBP", 2}, {"LKR", 2}, {"LRD", 2}, {"LSL", 2}, {"MAD", 2}, {"MDL", 2},
	{"MGA", 0}, {"MKD", 2}, {"MMK", 2}, {"MNT", 2}, {"MOP", 2}, {"MUR", 2},
	{"MVR", 2}, {"MWK", 2}, {"MXN", 2}, {"MYR", 2}, {"MZN", 2}, {"NAD", 2},
	{"NGN", 2}, {"NIO", 2}, {"NOK", 2}, {"NPR", 2}, {"NZD", 2}, {"PAB", 2},
	{"PEN", 2}, {"PGK", 2}, {"PHP", 2}, {"PKR", 2}, {"PLN", 2}, {"PYG", 0},
	{"QAR", 2}, {"RON", 2}, {"RSD", 2}, {"RUB", 2}, {"RWF", 0}, {"SAR", 2},
	{"SBD", 2}, {"SCR", 2}, {"SEK", 2}, {"SGD", 2}, {"SHP", 2}, {"SLE", 2},
	{"SOS", 2}, {"SRD", 2}, {"SZL", 2}, {"THB", 2}, {"TJS", 2}, {"TOP", 2},
	{"TRY", 2}, {"TTD", 2}, {"TWD", 2}, {"TZS", 2}, {"UAH", 2}, {"UGX", 0},
	{"USD", 2}, {"UYU", 2}, {"UZS", 2}, {"VND", 0}, {"VUV", 0}, {"WST", 2},
	{"XAF", 0}, {"XCD", 2}, {"XOF", 0}, {"XPF", 0}, {"YER", 2}, {"ZAR", 2},
	{"ZMW", 2},
};

static int
currency_cmp(const void *key, const void *elem)
{
	return strcmp((const char *) key, ((const CurrencyInfo *) elem)->code);
}

static const CurrencyInfo *
currency_find(const char *code)
{
	if (code == NULL || strlen(code) != 3)
		return NULL;
	return bsearch(code, currencies, lengthof(currencies),
				   sizeof(CurrencyInfo), currency_cmp);
}

bool
currency_supported(const char *code)
{
	return currency_find(code) != NULL;
}

int
currency_exponent(const char *code)
{
	const CurrencyInfo *c = currency_find(code);

	return c ? c->exponent : -1;
}

/*
 * billing.currencies(): every supported currency with its exponent, in code
 * order.
 */
PG_FUNCTION_INFO_V1(billing_currencies);
Datum
billing_currencies(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (size_t i = 0; i < lengthof(currencies); i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = CStringGetTextDatum(currencies[i].code);
		values[1] = Int32GetDatum(currencies[i].exponent);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
