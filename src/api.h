/*
 * api.h — what the HTTP layer (api.c) tells the rest: who is calling.
 */
#ifndef BILLING_API_H
#define BILLING_API_H

/*
 * The person behind an HTTP request: the user claim (billing.jwt_user_claim,
 * else "sub") of the JWT PostgREST verified, or NULL outside PostgREST.
 */
extern char *api_request_subject(void);

/*
 * Ends the request with HTTP 401 (PostgREST's "PGRST" error, code 28000 in
 * the body, WWW-Authenticate: Bearer error="invalid_token"); outside
 * PostgREST an ordinary error whose message is that JSON body.
 */
extern void api_unauthorized(const char *message, const char *detail, const char *hint) pg_attribute_noreturn();

#endif							/* BILLING_API_H */
