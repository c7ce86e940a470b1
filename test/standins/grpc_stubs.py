"""Python stubs for the gRPC contracts in proto/, generated on first use.

The generated modules are never committed: they are built from proto/ with
Debian's grpc_tools into a cache directory named after a hash of the .proto
files (so an edited contract gets fresh stubs), then imported from there.
Used by the stand-in servers, the end-to-end tests and the benchmark."""

import glob
import hashlib
import os
import sys
import tempfile

PROTO_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "proto"))


def _generate():
    protos = sorted(glob.glob(os.path.join(PROTO_DIR, "*.proto")))
    digest = hashlib.sha256()
    for path in protos:
        with open(path, "rb") as f:
            digest.update(f.read())
    cache = os.path.join(tempfile.gettempdir(), "billing-grpc-stubs-" + digest.hexdigest()[:12])
    if not os.path.isdir(cache):
        from grpc_tools import protoc
        # Generate beside the final place and rename: two processes starting
        # at once never see a half-written directory.
        tmp = tempfile.mkdtemp(prefix=cache + ".tmp-")
        rc = protoc.main(["protoc", "-I" + PROTO_DIR, "--python_out=" + tmp,
                          "--grpc_python_out=" + tmp] + protos)
        if rc != 0:
            raise RuntimeError("protoc failed on %s" % PROTO_DIR)
        try:
            os.rename(tmp, cache)
        except OSError:
            pass        # another process won the race; its copy is identical
    return cache


sys.path.insert(0, _generate())

import messagesender_pb2 as ms_pb2            # noqa: E402
import messagesender_pb2_grpc as ms_grpc      # noqa: E402
import rolescontrol_pb2 as rc_pb2             # noqa: E402
import rolescontrol_pb2_grpc as rc_grpc       # noqa: E402

__all__ = ["ms_pb2", "ms_grpc", "rc_pb2", "rc_grpc"]
