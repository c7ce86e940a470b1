/*
 * grpc.c — the gRPC client: unary calls over HTTP/2 with libcurl's multi
 * interface, requests framed from protobuf-c messages, status and message
 * read from trailers (or a trailers-only response), transport errors mapped
 * onto gRPC codes.
 *
 * Debian's libcurl 7.88 cannot reuse a cleartext (prior-knowledge) HTTP/2
 * connection: a second request asking for prior knowledge on it fails with
 * error 16 (curl #10634, fixed in 8.0: it stacks a second HTTP/2 layer on
 * the reused connection).  A new connection per call works, but costs both
 * sides about twice the CPU of a multiplexed call (measured: 0.44 against
 * 0.25 ms per call in the Python stand-in, 0.19 against 0.08 ms in the
 * client), which halves the delivery rate.  So a run of calls to one target
 * has one *lead* call that asks for prior knowledge on a fresh connection,
 * and *followers* that ask for plain HTTP/2 with PIPEWAIT: they wait for the
 * lead's connection and multiplex onto it, never taking the buggy path.
 * Should a follower find no connection to join (curl would then try an
 * HTTP/1.1 upgrade, which a gRPC server refuses), it is run again as a lead.
 * The multi handle lives for one run, so no connection outlives it.  TLS
 * connections are not affected by the bug and are simply multiplexed.
 *
 * libcurl callbacks must not ereport, palloc or CHECK_FOR_INTERRUPTS (a
 * longjmp through libcurl corrupts it): they only write into buffers of the
 * GrpcCall allocated beforehand, and interrupts are noticed between polls.
 */
#include "postgres.h"

#include <ctype.h>

#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/pmsignal.h"
#include "storage/procsignal.h"

#include "common.h"
#include "grpc.h"

static CURLM *multi = NULL;
static bool curl_ready = false;

static const char *const status_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"
};

const char *
grpc_status_name(int code)
{
	if (code >= 0 && code < (int) lengthof(status_names))
		return status_names[code];
	return "UNKNOWN";
}

bool
grpc_target_valid(const char *target)
{
	const char *p;

	if (strncmp(target, "http://", 7) == 0)
		p = target + 7;
	else if (strncmp(target, "https://", 8) == 0)
		p = target + 8;
	else
		return false;
	if (*p == '\0' || *p == ':' || *p == '/')
		return false;
	for (; *p; p++)
	{
		if (!(isalnum((unsigned char) *p) || *p == '.' || *p == '-' ||
			  *p == ':' || *p == '[' || *p == ']' || *p == '_'))
			return false;
	}
	return true;
}

void
grpc_prepare(GrpcCall *call, const char *target, const char *method,
			 const ProtobufCMessage *msg, const char *idempotency_key)
{
	size_t		len = protobuf_c_message_get_packed_size(msg);

	memset(call, 0, offsetof(GrpcCall, buf));
	call->target = pstrdup(target);
	call->url = psprintf("%s%s", target, method);
	call->tls = strncmp(target, "https://", 8) == 0;
	call->idempotency_key = idempotency_key ? pstrdup(idempotency_key) : NULL;
	call->frame_len = len + 5;
	call->frame = palloc(call->frame_len);
	/* Length-prefixed message: uncompressed flag, 4-byte big-endian length. */
	call->frame[0] = 0;
	call->frame[1] = (uint8) (len >> 24);
	call->frame[2] = (uint8) (len >> 16);
	call->frame[3] = (uint8) (len >> 8);
	call->frame[4] = (uint8) len;
	protobuf_c_message_pack(msg, call->frame + 5);
	call->status = GRPC_UNKNOWN;
}

/* Is an interrupt waiting that must stop the calls? (read-only, signal-safe) */
static inline bool
grpc_interrupted(void)
{
	return ProcDiePending || QueryCancelPending || ShutdownRequestPending ||
		!PostmasterIsAlive();
}

/* --- libcurl callbacks: no palloc, no ereport ----------------------------- */

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	GrpcCall   *call = (GrpcCall *) arg;
	size_t		n = size * nmemb;

	if (n > sizeof(call->buf) - call->buf_len)
	{
		call->overflow = true;
		return 0;				/* makes libcurl fail with CURLE_WRITE_ERROR */
	}
	memcpy(call->buf + call->buf_len, data, n);
	call->buf_len += n;
	return n;
}

/* Header lines, then (for HTTP/2) trailer lines, one per call. */
static size_t
header_cb(char *data, size_t size, size_t nitems, void *arg)
{
	GrpcCall   *call = (GrpcCall *) arg;
	size_t		n = size * nitems;
	size_t		end = n;

	while (end > 0 && (data[end - 1] == '\r' || data[end - 1] == '\n'))
		end--;

	if (end >= 12 && pg_strncasecmp(data, "grpc-status:", 12) == 0)
	{
		size_t		i = 12;
		int			v = 0;

		while (i < end && data[i] == ' ')
			i++;
		if (i == end)
			v = GRPC_UNKNOWN;
		for (; i < end; i++)
		{
			if (!isdigit((unsigned char) data[i]) || v > 1000)
			{
				v = GRPC_UNKNOWN;
				break;
			}
			v = v * 10 + (data[i] - '0');
		}
		call->trailer_status = v;
		call->have_status = true;
	}
	else if (end >= 13 && pg_strncasecmp(data, "grpc-message:", 13) == 0)
	{
		size_t		i = 13,
					o = 0;

		while (i < end && data[i] == ' ')
			i++;
		/* percent-decoded, truncated to the buffer */
		for (; i < end && o < sizeof(call->message) - 1; i++)
		{
			if (data[i] == '%' && i + 2 < end &&
				billing_hexval(data[i + 1]) >= 0 && billing_hexval(data[i + 2]) >= 0)
			{
				call->message[o++] = (char) (billing_hexval(data[i + 1]) * 16 + billing_hexval(data[i + 2]));
				i += 2;
			}
			else
				call->message[o++] = data[i];
		}
		call->message[o] = '\0';
	}
	else if (end >= 13 && pg_strncasecmp(data, "content-type:", 13) == 0)
	{
		size_t		i = 13;

		while (i < end && data[i] == ' ')
			i++;
		call->grpc_content = (end - i >= 16 &&
							  pg_strncasecmp(data + i, "application/grpc", 16) == 0);
	}
	return n;
}

static int
progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow,
			curl_off_t ultotal, curl_off_t ulnow)
{
	/* Returning non-zero aborts the transfer with CURLE_ABORTED_BY_CALLBACK. */
	return grpc_interrupted() ? 1 : 0;
}

/* --- setting up and finishing one call ------------------------------------ */

static void
set_message(GrpcCall *call, int status, const char *msg)
{
	call->status = status;
	strlcpy(call->message, msg, sizeof(call->message));
}

static bool
start_call(GrpcCall *call, const GrpcOptions *opt)
{
	CURL	   *e;
	char		line[128];
	struct curl_slist *h = NULL;
	bool		ok = true;

	e = curl_easy_init();
	if (e == NULL)
	{
		set_message(call, GRPC_RESOURCE_EXHAUSTED, "curl_easy_init failed");
		return false;
	}

	/*
	 * Header lines are built here (we may allocate now), before any
	 * transfer starts.  The deadline travels to the server too, so that it
	 * gives up when we do.
	 */
	h = curl_slist_append(h, "content-type: application/grpc+proto");
	if (h)
		h = curl_slist_append(h, "te: trailers");
	if (h)
		h = curl_slist_append(h, "user-agent: billing-outbox grpc-c/libcurl");
	if (h)
		h = curl_slist_append(h, "expect:");
	snprintf(line, sizeof(line), "grpc-timeout: %dm", opt->deadline_ms);
	if (h)
		h = curl_slist_append(h, line);
	if (h && call->idempotency_key)
	{
		char	   *kv = psprintf("idempotency-key: %s", call->idempotency_key);

		h = curl_slist_append(h, kv);
		pfree(kv);
	}
	if (h == NULL)
	{
		curl_easy_cleanup(e);
		set_message(call, GRPC_RESOURCE_EXHAUSTED, "out of memory building headers");
		return false;
	}
	call->headers = h;
	call->easy = e;

#define SETOPT(opt, val) (ok = ok && curl_easy_setopt(e, opt, val) == CURLE_OK)
	SETOPT(CURLOPT_URL, call->url);
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_POST, 1L);
	SETOPT(CURLOPT_POSTFIELDS, call->frame);
	SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) call->frame_len);
	SETOPT(CURLOPT_HTTPHEADER, call->headers);
	SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(CURLOPT_WRITEDATA, call);
	SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
	SETOPT(CURLOPT_HEADERDATA, call);
	SETOPT(CURLOPT_XFERINFOFUNCTION, progress_cb);
	SETOPT(CURLOPT_XFERINFODATA, call);
	SETOPT(CURLOPT_NOPROGRESS, 0L);
	SETOPT(CURLOPT_ERRORBUFFER, call->errbuf);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long) opt->connect_timeout_ms);
	SETOPT(CURLOPT_TIMEOUT_MS, (long) opt->deadline_ms);
	SETOPT(CURLOPT_PRIVATE, call);
	if (call->tls)
	{
		SETOPT(CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2TLS);
		if (opt->ca_file && opt->ca_file[0])
			SETOPT(CURLOPT_CAINFO, opt->ca_file);
		/* wait for a connection being set up rather than open a second one */
		SETOPT(CURLOPT_PIPEWAIT, 1L);
	}
	else if (call->lead)
	{
		/* see the file header: the lead opens a fresh h2c connection */
		SETOPT(CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
		SETOPT(CURLOPT_FRESH_CONNECT, 1L);
	}
	else
	{
		/* followers join the lead's connection */
		SETOPT(CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2_0);
		SETOPT(CURLOPT_PIPEWAIT, 1L);
	}
#undef SETOPT

	if (!ok || curl_multi_add_handle(multi, e) != CURLM_OK)
	{
		set_message(call, GRPC_INTERNAL, "cannot set up the transfer");
		curl_easy_cleanup(e);
		curl_slist_free_all(call->headers);
		call->easy = NULL;
		call->headers = NULL;
		return false;
	}
	return true;
}

/* Map an HTTP status of a non-gRPC answer as gRPC's HTTP-to-gRPC table does. */
static int
http_to_grpc(long http)
{
	switch (http)
	{
		case 400:
			return GRPC_INTERNAL;
		case 401:
			return GRPC_UNAUTHENTICATED;
		case 403:
			return GRPC_PERMISSION_DENIED;
		case 404:
			return GRPC_UNIMPLEMENTED;
		case 429:
		case 502:
		case 503:
		case 504:
			return GRPC_UNAVAILABLE;
		default:
			return GRPC_UNKNOWN;
	}
}

/* Map a transport failure onto the gRPC code a gRPC library would report. */
static int
curl_to_grpc(CURLcode rc, GrpcCall *call)
{
	switch (rc)
	{
		case CURLE_OPERATION_TIMEDOUT:
			{
				curl_off_t	connected = 0;

				/* no connection at all within the connect timeout */
				curl_easy_getinfo(call->easy, CURLINFO_CONNECT_TIME_T, &connected);
				return connected > 0 ? GRPC_DEADLINE_EXCEEDED : GRPC_UNAVAILABLE;
			}
		case CURLE_ABORTED_BY_CALLBACK:
			return GRPC_CANCELLED;
		case CURLE_OUT_OF_MEMORY:
			return GRPC_RESOURCE_EXHAUSTED;
		case CURLE_WRITE_ERROR:
			return call->overflow ? GRPC_RESOURCE_EXHAUSTED : GRPC_INTERNAL;
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_CONNECT:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:	/* error 92: see ENVIRONMENT.md, retry */
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_UNSUPPORTED_PROTOCOL:
			return GRPC_UNAVAILABLE;
		default:
			return GRPC_UNKNOWN;
	}
}

static void
finish_call(GrpcCall *call, CURLcode rc)
{
	if (rc != CURLE_OK)
	{
		int			code = curl_to_grpc(rc, call);

		snprintf(call->message, sizeof(call->message), "%s: %s",
				 curl_easy_strerror(rc),
				 call->errbuf[0] ? call->errbuf : "transport failure");
		call->status = code;
		return;
	}

	curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &call->http_status);
	{
		long		version = 0;

		curl_easy_getinfo(call->easy, CURLINFO_HTTP_VERSION, &version);
		if (version != CURL_HTTP_VERSION_2_0)
		{
			set_message(call, GRPC_UNAVAILABLE, "the server did not answer over HTTP/2");
			return;
		}
	}
	if (call->http_status != 200 && !call->have_status)
	{
		call->status = http_to_grpc(call->http_status);
		snprintf(call->message, sizeof(call->message),
				 "HTTP status %ld from a non-gRPC answer", call->http_status);
		return;
	}
	if (!call->have_status)
	{
		set_message(call, GRPC_INTERNAL, "no grpc-status in the response");
		return;
	}
	if (call->trailer_status < 0 || call->trailer_status > GRPC_UNAUTHENTICATED)
	{
		set_message(call, GRPC_UNKNOWN, "unknown grpc-status");
		return;
	}
	call->status = call->trailer_status;
	if (call->status != GRPC_OK)
	{
		if (call->message[0] == '\0')
			strlcpy(call->message, grpc_status_name(call->status), sizeof(call->message));
		return;
	}

	/* OK: the body must be exactly one uncompressed length-prefixed message. */
	if (!call->grpc_content)
	{
		set_message(call, GRPC_UNKNOWN, "response is not application/grpc");
		return;
	}
	if (call->buf_len < 5)
	{
		set_message(call, GRPC_INTERNAL, "response has no message");
		return;
	}
	else
	{
		uint32		len = ((uint32) call->buf[1] << 24) | ((uint32) call->buf[2] << 16) |
			((uint32) call->buf[3] << 8) | (uint32) call->buf[4];

		if (call->buf[0] != 0)
		{
			set_message(call, GRPC_INTERNAL, "compressed response without negotiation");
			return;
		}
		if ((size_t) len != call->buf_len - 5)
		{
			set_message(call, GRPC_INTERNAL, "response frame length does not match");
			return;
		}
		call->reply = call->buf + 5;
		call->reply_len = len;
	}
}

static void
release_call(GrpcCall *call)
{
	if (call->easy)
	{
		curl_multi_remove_handle(multi, call->easy);
		curl_easy_cleanup(call->easy);
		call->easy = NULL;
	}
	if (call->headers)
	{
		curl_slist_free_all(call->headers);
		call->headers = NULL;
	}
}

/*
 * A cleartext follower that opened a connection of its own (it found none to
 * join) and failed at the transport level: run it again as a lead.
 */
static bool
needs_relaunch(GrpcCall *call, CURLcode rc)
{
	long		connects = 0;

	if (call->tls || call->lead || call->relaunched)
		return false;
	if (curl_easy_getinfo(call->easy, CURLINFO_NUM_CONNECTS, &connects) != CURLE_OK ||
		connects == 0)
		return false;
	switch (rc)
	{
		case CURLE_OK:			/* an HTTP/1.x answer */
			return call->status == GRPC_UNAVAILABLE;
		case CURLE_GOT_NOTHING:
		case CURLE_RECV_ERROR:
		case CURLE_SEND_ERROR:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
		case CURLE_PARTIAL_FILE:
		case CURLE_WEIRD_SERVER_REPLY:
		case CURLE_UNSUPPORTED_PROTOCOL:
			return true;
		default:
			return false;
	}
}

/* Clear what a finished attempt left, so that the call can run again. */
static void
reset_results(GrpcCall *call)
{
	call->status = GRPC_UNKNOWN;
	call->message[0] = '\0';
	call->reply = NULL;
	call->reply_len = 0;
	call->have_status = false;
	call->grpc_content = false;
	call->overflow = false;
	call->trailer_status = 0;
	call->http_status = 0;
	call->buf_len = 0;
	call->errbuf[0] = '\0';
}

/* The first cleartext call to each target in a run leads; the rest follow. */
static void
choose_leads(GrpcCall *calls, int ncalls)
{
	for (int i = 0; i < ncalls; i++)
	{
		calls[i].lead = false;
		if (calls[i].tls)
			continue;
		calls[i].lead = true;
		for (int j = 0; j < i; j++)
			if (!calls[j].tls && strcmp(calls[j].target, calls[i].target) == 0)
			{
				calls[i].lead = false;
				break;
			}
	}
}

bool
grpc_run(GrpcCall *calls, int ncalls, int concurrency, const GrpcOptions *options)
{
	int			next = 0;
	int			active = 0;
	int			done = 0;
	bool		interrupted = false;

	if (!curl_ready)
	{
		/* Lazily, in the process that uses it (never in the postmaster). */
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not initialise libcurl")));
		curl_ready = true;
	}
	/* One multi handle per run: its connections close with it. */
	multi = curl_multi_init();
	if (multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	if (concurrency < 1)
		concurrency = 1;
	choose_leads(calls, ncalls);

	while (done < ncalls)
	{
		int			running;
		int			left;
		CURLMsg    *msg;
		CURLMcode	mc;

		/* keep up to `concurrency` calls going */
		while (active < concurrency && next < ncalls)
		{
			if (start_call(&calls[next], options))
				active++;
			else
				done++;
			next++;
		}
		if (active == 0)
			continue;

		mc = curl_multi_perform(multi, &running);
		if (mc != CURLM_OK)
		{
			/* The multi handle itself failed: every active call is unknown. */
			for (int i = 0; i < next; i++)
				if (calls[i].easy)
				{
					snprintf(calls[i].message, sizeof(calls[i].message),
							 "libcurl multi: %s", curl_multi_strerror(mc));
					calls[i].status = GRPC_UNAVAILABLE;
					release_call(&calls[i]);
					active--;
					done++;
				}
			continue;
		}

		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		{
			GrpcCall   *call;

			if (msg->msg != CURLMSG_DONE)
				continue;
			if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &call) != CURLE_OK)
				continue;
			finish_call(call, msg->data.result);
			/* the progress callback saw an interrupt: the run is cut short */
			if (msg->data.result == CURLE_ABORTED_BY_CALLBACK)
				interrupted = true;
			if (needs_relaunch(call, msg->data.result))
			{
				release_call(call);
				reset_results(call);
				call->lead = true;
				call->relaunched = true;
				if (start_call(call, options))
					continue;
				active--;
				done++;
				continue;
			}
			release_call(call);
			active--;
			done++;
		}
		if (done >= ncalls || interrupted)
			break;

		if (grpc_interrupted())
		{
			interrupted = true;
			break;
		}

		/*
		 * Global barriers are answered here, outside libcurl: DROP DATABASE
		 * anywhere in the cluster waits until every process has closed its
		 * files, and must not wait out a slow service's deadline.
		 */
		if (ProcSignalBarrierPending)
			ProcessProcSignalBarrier();

		/*
		 * Wait for socket activity or curl's own timers; the short cap is
		 * how SIGTERM or a cancel is noticed within milliseconds.
		 */
		if (active > 0)
			curl_multi_poll(multi, NULL, 0, 10, NULL);
	}

	if (interrupted)
	{
		for (int i = 0; i < ncalls; i++)
		{
			if (calls[i].easy || i >= next)
				set_message(&calls[i], GRPC_CANCELLED, "interrupted");
			release_call(&calls[i]);
		}
	}
	curl_multi_cleanup(multi);
	multi = NULL;
	return !interrupted;
}

/* protobuf-c allocator over the current memory context; never throws. */
static void *
pb_alloc(void *data, size_t size)
{
	return palloc_extended(size, MCXT_ALLOC_NO_OOM);
}

static void
pb_free(void *data, void *ptr)
{
	if (ptr)
		pfree(ptr);
}

ProtobufCMessage *
grpc_unpack(const GrpcCall *call, const ProtobufCMessageDescriptor *desc)
{
	ProtobufCAllocator allocator = {pb_alloc, pb_free, NULL};

	if (call->status != GRPC_OK)
		return NULL;
	return protobuf_c_message_unpack(desc, &allocator, call->reply_len,
									 call->reply ? call->reply : (const uint8 *) "");
}
