/*
 * provider.c — which payment provider a checkout goes to: the list of
 * providers this build knows and the billing.providers setting that maps
 * currencies to them ("RUB:yookassa,*:stripe").
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "billing.h"
#include "common.h"
#include "provider.h"

const BillingProvider *const billing_providers[] = {
	&stripe_provider,
	&yookassa_provider,
	NULL
};

#define MAX_PROVIDER_RULES 64

/* Parsed billing.providers (the GUC "extra", malloc'd). */
typedef struct ProviderRule
{
	char		currency[4];	/* "RUB", or "*" */
	const BillingProvider *provider;
} ProviderRule;

typedef struct ProviderRules
{
	int			count;
	ProviderRule rule[MAX_PROVIDER_RULES];
} ProviderRules;

static char *providers_setting = NULL;
static ProviderRules *provider_rules = NULL;

const BillingProvider *
provider_lookup(const char *name)
{
	if (name == NULL)
		return NULL;
	for (int i = 0; billing_providers[i]; i++)
		if (strcmp(billing_providers[i]->name, name) == 0)
			return billing_providers[i];
	return NULL;
}

/* "CUR:name" pairs separated by commas (spaces allowed around them). */
static bool
check_providers(char **newval, void **extra, GucSource source)
{
	const char *s = *newval ? *newval : "";
	ProviderRules *rules = (ProviderRules *) malloc(sizeof(ProviderRules));

	if (rules == NULL)
		return false;
	rules->count = 0;
	while (*s)
	{
		char		cur[4];
		char		name[32];
		int			n = 0;
		const BillingProvider *prov;

		while (*s == ' ' || *s == ',')
			s++;
		if (*s == '\0')
			break;
		while (*s && *s != ':' && *s != ',' && *s != ' ' && n < 3)
			cur[n++] = *s++;
		cur[n] = '\0';
		while (*s == ' ')
			s++;
		if (*s != ':' ||
			!(strcmp(cur, "*") == 0 ||
			  (n == 3 && cur[0] >= 'A' && cur[0] <= 'Z' && cur[1] >= 'A' && cur[1] <= 'Z' &&
			   cur[2] >= 'A' && cur[2] <= 'Z')))
		{
			free(rules);
			billing_guc_invalid("billing.providers", *newval);
			GUC_check_errdetail("Each entry is CURRENCY:provider, such as RUB:yookassa, or *:provider for every other currency.");
			return false;
		}
		s++;
		while (*s == ' ')
			s++;
		n = 0;
		while (*s && *s != ',' && *s != ' ' && n < (int) sizeof(name) - 1)
			name[n++] = *s++;
		name[n] = '\0';
		prov = provider_lookup(name);
		if (prov == NULL)
		{
			free(rules);
			billing_guc_invalid("billing.providers", *newval);
			GUC_check_errdetail("The known providers are stripe and yookassa.");
			return false;
		}
		for (int i = 0; i < rules->count; i++)
			if (strcmp(rules->rule[i].currency, cur) == 0)
			{
				free(rules);
				billing_guc_invalid("billing.providers", *newval);
				GUC_check_errdetail("Currency %s is mapped twice.", cur);
				return false;
			}
		if (rules->count == MAX_PROVIDER_RULES)
		{
			free(rules);
			billing_guc_invalid("billing.providers", *newval);
			GUC_check_errdetail("At most %d entries.", MAX_PROVIDER_RULES);
			return false;
		}
		strlcpy(rules->rule[rules->count].currency, cur, sizeof(cur));
		rules->rule[rules->count].provider = prov;
		rules->count++;
	}
	*extra = rules;
	return true;
}

static void
assign_providers(const char *newval, void *extra)
{
	provider_rules = (ProviderRules *) extra;
}

void
provider_define_gucs(void)
{
	/* Where the money goes is the operator's decision: superusers only. */
	DefineCustomStringVariable("billing.providers",
							   "Which payment provider a checkout goes to, by currency.",
							   "CURRENCY:provider entries separated by commas; * stands for every other currency. Only the providers named here can be chosen.",
							   &providers_setting, "*:stripe",
							   PGC_SUSET, 0, check_providers, assign_providers, NULL);
}

static bool
configured(const BillingProvider *prov)
{
	for (int i = 0; provider_rules && i < provider_rules->count; i++)
		if (provider_rules->rule[i].provider == prov)
			return true;
	return false;
}

const BillingProvider *
provider_choose(const char *currency, const char *requested)
{
	if (requested)
	{
		const BillingProvider *prov = provider_lookup(requested);

		if (prov == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown payment provider \"%s\"", billing_echo(requested)),
					 errhint("The known providers are stripe and yookassa.")));
		if (!configured(prov))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("payment provider %s is not configured", prov->name),
					 errdetail("billing.providers does not name it."),
					 errhint("Add it to billing.providers, such as RUB:%s,*:stripe, and reload.",
							 prov->name)));
		return prov;
	}
	for (int i = 0; provider_rules && i < provider_rules->count; i++)
		if (strcmp(provider_rules->rule[i].currency, currency) == 0)
			return provider_rules->rule[i].provider;
	for (int i = 0; provider_rules && i < provider_rules->count; i++)
		if (strcmp(provider_rules->rule[i].currency, "*") == 0)
			return provider_rules->rule[i].provider;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("no payment provider is configured for %s", currency),
			 errhint("Add %s:provider or *:provider to billing.providers and reload.", currency)));
	return NULL;				/* keep the compiler quiet */
}

const BillingProvider *
provider_of(const char *stored_name)
{
	const BillingProvider *prov;

	if (stored_name == NULL)
		return &stripe_provider;
	prov = provider_lookup(stored_name);
	if (prov == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("payment went to an unknown provider \"%s\"", billing_echo(stored_name)),
				 errhint("A build that knows that provider must handle it.")));
	return prov;
}

#define FIND_CUSTOMER \
	"SELECT customer FROM billing.provider_customers WHERE user_id = $1 AND provider = $2"

char *
provider_customer(const BillingProvider *prov, const pg_uuid_t *user_id, const char *email)
{
	static SPIPlanPtr find_plan = NULL;
	static SPIPlanPtr insert_plan = NULL;
	Oid			types[3] = {UUIDOID, TEXTOID, TEXTOID};
	Datum		values[3] = {UUIDPGetDatum(user_id), CStringGetTextDatum(prov->name), 0};
	char	   *customer;

	if (prov->customer == NULL || prov->charge == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("payment provider %s does not renew automatically", prov->name),
				 errhint("Check out without auto_renew, or with a provider that renews.")));
	if (billing_spi_exec(&find_plan, FIND_CUSTOMER, 2, types, values, NULL, false, 0) == 1)
		return billing_spi_text(0, 1);

	/*
	 * Made at the provider under a key derived from the user id, so two
	 * first checkouts at once get the same customer there; the row here is
	 * written once (the second insert does nothing, both use the one id).
	 */
	customer = prov->customer(user_id, email);
	values[2] = CStringGetTextDatum(customer);
	billing_spi_exec(&insert_plan,
					 "INSERT INTO billing.provider_customers (user_id, provider, customer) "
					 "VALUES ($1, $2, $3) ON CONFLICT (user_id, provider) DO NOTHING",
					 3, types, values, NULL, false, 0);
	if (billing_spi_exec(&find_plan, FIND_CUSTOMER, 2, types, values, NULL, false, 0) == 1)
		return billing_spi_text(0, 1);
	return customer;
}
