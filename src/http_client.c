/*
 * http_client.c — one HTTP(S) request with libcurl, for the payment
 * providers' clients: one handle per backend, protocols restricted, no
 * redirects, the caller's timeouts, interrupts noticed inside curl and
 * serviced after it returns, the response body taken as a JSON object.
 */
#include "postgres.h"

#include <curl/curl.h>
#include <string.h>

#include "common/jsonapi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "http_client.h"

/* A provider's object is a few kB; anything far larger is not the provider. */
#define HTTP_MAX_RESPONSE (1024 * 1024)
#define HTTP_USER_AGENT "billing-postgres/1.0"

/* One handle per backend, made on first use (never in the postmaster); its
 * connection cache keeps the TLS sessions alive between calls. */
static CURL *curl_handle = NULL;

typedef struct ResponseBuffer
{
	char	   *data;			/* malloc'd: no palloc inside callbacks */
	size_t		len;
	size_t		cap;
	bool		too_large;
} ResponseBuffer;

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	ResponseBuffer *buf = (ResponseBuffer *) userdata;
	size_t		n = size * nmemb;

	if (buf->len + n + 1 > HTTP_MAX_RESPONSE)
	{
		buf->too_large = true;
		return 0;				/* makes curl stop with CURLE_WRITE_ERROR */
	}
	if (buf->len + n + 1 > buf->cap)
	{
		size_t		cap = Max(Max(buf->cap * 2, buf->len + n + 1), 4096);
		char	   *p = realloc(buf->data, cap);

		if (p == NULL)
			return 0;
		buf->data = p;
		buf->cap = cap;
	}
	memcpy(buf->data + buf->len, ptr, n);
	buf->len += n;
	buf->data[buf->len] = '\0';
	return n;
}

/*
 * Runs inside libcurl: only look at the interrupt flags and tell curl to
 * stop; the interrupt itself is serviced after curl has returned.
 */
static int
progress_cb(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
			curl_off_t ultotal, curl_off_t ulnow)
{
	return (QueryCancelPending || ProcDiePending) ? 1 : 0;
}

/* The handle, reset for a new request; `pending` is freed before raising. */
static CURL *
get_handle(struct curl_slist *pending)
{
	if (curl_handle == NULL)
	{
		static bool global_done = false;

		if (!global_done)
		{
			if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			{
				curl_slist_free_all(pending);
				ereport(ERROR,
						(errcode(ERRCODE_SYSTEM_ERROR),
						 errmsg("could not initialise libcurl")));
			}
			global_done = true;
		}
		curl_handle = curl_easy_init();
		if (curl_handle == NULL)
		{
			curl_slist_free_all(pending);
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not create a libcurl handle")));
		}
	}
	else
		curl_easy_reset(curl_handle);	/* keeps the live connections */
	return curl_handle;
}

char *
http_url(const char *base, const char *path, const char *query)
{
	StringInfoData url;
	size_t		base_len = strlen(base);

	while (base_len > 0 && base[base_len - 1] == '/')
		base_len--;
	initStringInfo(&url);
	appendBinaryStringInfo(&url, base, (int) base_len);
	appendStringInfoString(&url, path);
	if (query != NULL && query[0] != '\0')
		appendStringInfo(&url, "?%s", query);
	return url.data;
}

bool
http_url_acceptable(const char *s)
{
	if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)
		return false;
	if (strlen(s) > 2048)
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

/* A header line "Name: value"; curl copies it. */
static struct curl_slist *
add_header(struct curl_slist *list, const char *line, bool *oom)
{
	struct curl_slist *l;

	if (*oom)
		return list;
	l = curl_slist_append(list, line);
	if (l == NULL)
	{
		*oom = true;
		return list;
	}
	return l;
}

/*
 * The request headers, as a curl list the caller frees: the authorization
 * first (then wiped), the caller's, and an empty "Expect:" (no 100-continue
 * round trip).  An allocation failure inside curl is noticed once, at the
 * end, where the list can be freed before raising.
 */
static struct curl_slist *
build_headers(const HttpRequest *req)
{
	struct curl_slist *headers = NULL;
	bool		oom = false;

	if (req->authorization)
	{
		headers = add_header(headers, req->authorization, &oom);
		/* Do not leave the secret lying around longer than needed. */
		explicit_bzero(req->authorization, strlen(req->authorization));
	}
	for (int i = 0; i < req->nheaders; i++)
		headers = add_header(headers, req->headers[i], &oom);
	headers = add_header(headers, "Expect:", &oom);
	if (oom)
	{
		curl_slist_free_all(headers);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory building a %s request", req->service)));
	}
	return headers;
}

/*
 * Everything of the transfer: protocols restricted, no redirects, timeouts
 * from the caller, the progress callback that lets an interrupt stop the
 * call, the method and the headers.  Every curl_easy_setopt result is
 * checked; the first that fails is returned (a failure is a bug or OOM),
 * else CURLE_OK.
 */
static CURLcode
set_transfer_options(CURL *h, const HttpRequest *req, struct curl_slist *headers,
					 ResponseBuffer *buf, char *errbuf)
{
	CURLcode	rc;

#define SETOPT(opt, val) \
	do { if ((rc = curl_easy_setopt(h, opt, val)) != CURLE_OK) return rc; } while (0)

	SETOPT(CURLOPT_URL, req->url);
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long) req->connect_timeout_ms);
	SETOPT(CURLOPT_TIMEOUT_MS, (long) req->timeout_ms);
	SETOPT(CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
	SETOPT(CURLOPT_NOPROGRESS, 0L);
	SETOPT(CURLOPT_XFERINFOFUNCTION, progress_cb);
	SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(CURLOPT_WRITEDATA, buf);
	SETOPT(CURLOPT_ERRORBUFFER, errbuf);
	SETOPT(CURLOPT_USERAGENT, HTTP_USER_AGENT);
	if (req->post)
	{
		const char *body = req->body ? req->body : "";

		SETOPT(CURLOPT_POST, 1L);
		SETOPT(CURLOPT_POSTFIELDS, body);
		SETOPT(CURLOPT_POSTFIELDSIZE, (long) strlen(body));
	}
	else
		SETOPT(CURLOPT_HTTPGET, 1L);
	SETOPT(CURLOPT_HTTPHEADER, headers);
#undef SETOPT
	return CURLE_OK;
}

/*
 * After the call: nothing of ours may stay referenced by the handle (headers,
 * the stack error buffer, the response buffer), and nothing of curl's may
 * leak if what follows raises an error.  Clearing a pointer option cannot
 * fail, so these results are deliberately not checked.
 */
static void
detach_request(CURL *h, struct curl_slist *headers)
{
	(void) curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	(void) curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	(void) curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
	curl_slist_free_all(headers);
}

/*
 * No response arrived (or it could not be taken): say why, and whether the
 * connection itself failed, which tells a caller that the service never saw
 * the request.
 */
static void
transport_failure(HttpResponse *resp, CURLcode rc, long status,
				  const ResponseBuffer *buf, const char *errbuf)
{
	resp->connect_failed = (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
							rc == CURLE_COULDNT_RESOLVE_PROXY ||
							(rc == CURLE_OPERATION_TIMEDOUT && status == 0 && buf->len == 0 &&
							 strstr(errbuf, "onnect") != NULL));
	if (buf->too_large)
		resp->transport_error = pstrdup("the response was too large");
	else
		resp->transport_error = pstrdup(errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

/* The body when it is a JSON object (in the server encoding), else NULL. */
static Jsonb *
parse_body(const char *data, size_t len)
{
	JsonLexContext *lex;
	JsonSemAction sem;
	char	   *text;
	Jsonb	   *jb;

	if (data == NULL || len == 0)
		return NULL;
	/* Validate without throwing; then convert to the server encoding. */
	lex = makeJsonLexContextCstringLen((char *) data, (int) len, PG_UTF8, false);
	memset(&sem, 0, sizeof(sem));
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS)
		return NULL;
	text = pg_any_to_server(data, (int) len, PG_UTF8);
	if (text == data)
		text = pnstrdup(data, len);
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	return JB_ROOT_IS_OBJECT(jb) ? jb : NULL;
}

void
http_perform(const HttpRequest *req, HttpResponse *resp)
{
	CURL	   *h;
	CURLcode	rc;
	struct curl_slist *headers;
	ResponseBuffer buf = {0};
	char		errbuf[CURL_ERROR_SIZE];
	long		status = 0;

	memset(resp, 0, sizeof(*resp));

	headers = build_headers(req);
	h = get_handle(headers);
	errbuf[0] = '\0';
	rc = set_transfer_options(h, req, headers, &buf, errbuf);
	if (rc != CURLE_OK)
	{
		detach_request(h, headers);
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not configure a libcurl request: %s", curl_easy_strerror(rc))));
	}

	rc = curl_easy_perform(h);
	if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
		status = 0;

	detach_request(h, headers);

	if (rc == CURLE_ABORTED_BY_CALLBACK)
	{
		free(buf.data);
		/* The call was interrupted for a cancel or a shutdown: act on it now. */
		CHECK_FOR_INTERRUPTS();
		resp->transport_error = pstrdup("the request was interrupted");
		return;
	}
	if (rc != CURLE_OK)
	{
		transport_failure(resp, rc, status, &buf, errbuf);
		free(buf.data);
		return;
	}

	resp->responded = true;
	resp->status = status;
	PG_TRY();
	{
		resp->body = parse_body(buf.data, buf.len);
	}
	PG_FINALLY();
	{
		free(buf.data);
	}
	PG_END_TRY();
}
