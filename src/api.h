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

#endif							/* BILLING_API_H */
