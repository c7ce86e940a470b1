/*
 * http_client.h — one HTTP(S) request with libcurl for the payment providers'
 * clients (stripe.c, yookassa.c): what they send is theirs (URL, headers,
 * body, timeouts), what comes back is the transport's outcome, the HTTP
 * status and the body.  It knows no provider and calls nothing of ours.
 */
#ifndef BILLING_HTTP_CLIENT_H
#define BILLING_HTTP_CLIENT_H

#include "postgres.h"
#include "utils/jsonb.h"

typedef struct HttpRequest
{
	const char *url;			/* http_url() */
	bool		post;			/* POST `body`; else GET */
	const char *body;			/* POST only, sent as it is (NULL: empty) */

	/*
	 * The whole "Authorization: ..." line (or NULL).  It holds a secret: it
	 * is sent first, then wiped in place as soon as curl has its own copy,
	 * and it never goes into an error or a log.
	 */
	char	   *authorization;
	const char *const *headers; /* further "Name: value" lines, in order */
	int			nheaders;
	int			connect_timeout_ms;
	int			timeout_ms;		/* the whole request, connecting included */
	const char *service;		/* "stripe": names the service in errors */
} HttpRequest;

typedef struct HttpResponse
{
	/*
	 * False when no response arrived (or it could not be taken whole):
	 * connection failure, timeout, a response over the size limit, or an
	 * interrupt.  Then only transport_error and connect_failed mean anything.
	 */
	bool		responded;
	long		status;			/* the HTTP status */
	Jsonb	   *body;			/* the body when it is a JSON object, else NULL */
	char	   *transport_error;	/* why nothing arrived (palloc'd) */
	bool		connect_failed; /* no connection at all: the service never saw
								 * the request */
} HttpResponse;

/*
 * Perform the request.  Never raises for a remote failure: the caller maps
 * the response.  It does raise for a query cancel or a backend shutdown that
 * arrives during the call (serviced after libcurl returned), and for a local
 * failure (out of memory, libcurl unusable).
 */
extern void http_perform(const HttpRequest *req, HttpResponse *resp);

/* base without its trailing slashes, then path, then "?query" when given. */
extern char *http_url(const char *base, const char *path, const char *query);

/*
 * What an API base URL setting may hold: http:// or https://, at most 2048
 * bytes, no spaces or control characters (the value goes into requests).
 */
extern bool http_url_acceptable(const char *s);

#endif							/* BILLING_HTTP_CLIENT_H */
