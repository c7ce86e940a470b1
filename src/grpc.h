/*
 * grpc.h — unary gRPC calls over HTTP/2 with libcurl, many at once, for the
 * outbox worker.  Messages are protobuf-c; status comes from the trailers.
 */
#ifndef BILLING_GRPC_H
#define BILLING_GRPC_H

#include "postgres.h"

#include <curl/curl.h>
#include <protobuf-c/protobuf-c.h>

/* gRPC status codes (grpc/status.h). */
#define GRPC_OK					0
#define GRPC_CANCELLED			1
#define GRPC_UNKNOWN			2
#define GRPC_INVALID_ARGUMENT	3
#define GRPC_DEADLINE_EXCEEDED	4
#define GRPC_NOT_FOUND			5
#define GRPC_ALREADY_EXISTS		6
#define GRPC_PERMISSION_DENIED	7
#define GRPC_RESOURCE_EXHAUSTED	8
#define GRPC_FAILED_PRECONDITION 9
#define GRPC_ABORTED			10
#define GRPC_OUT_OF_RANGE		11
#define GRPC_UNIMPLEMENTED		12
#define GRPC_INTERNAL			13
#define GRPC_UNAVAILABLE		14
#define GRPC_DATA_LOSS			15
#define GRPC_UNAUTHENTICATED	16

/* Largest reply we accept; ours are a bool, a uuid or an e-mail address. */
#define GRPC_MAX_RESPONSE	4096
#define GRPC_MESSAGE_LEN	256

typedef struct GrpcOptions
{
	int			connect_timeout_ms;
	int			deadline_ms;
	const char *ca_file;		/* for https:// targets; NULL or "" = system */
} GrpcOptions;

typedef struct GrpcCall
{
	/* Set by the caller (grpc_prepare). */
	char	   *target;			/* "http://host:port" or "https://host:port" */
	char	   *url;			/* target + "/package.Service/Method" */
	char	   *idempotency_key;	/* sent as metadata; may be NULL */
	uint8	   *frame;			/* length-prefixed request */
	size_t		frame_len;

	/* Results, valid after grpc_run. */
	int			status;			/* GRPC_* */
	char		message[GRPC_MESSAGE_LEN];	/* grpc-message or transport error */
	const uint8 *reply;			/* protobuf bytes of the reply, in buf */
	size_t		reply_len;

	/*
	 * Private: filled by libcurl callbacks, which may not allocate or throw,
	 * so everything they touch is preallocated here.
	 */
	CURL	   *easy;
	struct curl_slist *headers;
	bool		tls;
	bool		lead;			/* cleartext: opens the run's connection */
	bool		relaunched;		/* a follower that was run again as a lead */
	bool		have_status;
	bool		grpc_content;
	bool		overflow;
	int			trailer_status;
	long		http_status;
	size_t		buf_len;
	char		errbuf[CURL_ERROR_SIZE];
	uint8		buf[GRPC_MAX_RESPONSE];
} GrpcCall;

/*
 * Fill *call for one unary call of `method` ("/pkg.Service/Method") on
 * `target` ("http://host:port" for cleartext HTTP/2, "https://host:port" for
 * TLS), the request packed from msg.  Allocates in CurrentMemoryContext.
 */
extern void grpc_prepare(GrpcCall *call, const char *target, const char *method,
						 const ProtobufCMessage *msg, const char *idempotency_key);

/*
 * Run all calls, at most `concurrency` at a time, each with its own
 * deadline.  Returns false when an interrupt (SIGTERM, cancel, postmaster
 * death) stopped it early: unfinished calls then have status CANCELLED and
 * the caller should CHECK_FOR_INTERRUPTS().  Never throws from inside libcurl.
 */
extern bool grpc_run(GrpcCall *calls, int ncalls, int concurrency,
					 const GrpcOptions *options);

/* Unpack a successful call's reply; NULL (never an error) when malformed.
 * Memory comes from CurrentMemoryContext. */
extern ProtobufCMessage *grpc_unpack(const GrpcCall *call,
									 const ProtobufCMessageDescriptor *desc);

extern const char *grpc_status_name(int code);

/* Is this a valid target URL (http:// or https://, host, optional port)? */
extern bool grpc_target_valid(const char *target);

#endif							/* BILLING_GRPC_H */
