"""mailroom_client is a small hand-written layer over the generated gRPC stubs.

The generated code is the ``mailroom`` package (``mailroom.store.v1.store_pb2``
and its ``_pb2_grpc``); this package adds what every caller would otherwise
write again: the API key sent as ``authorization: Bearer <key>`` on every call,
one channel per service at the addresses ``mailroom dev`` prints, and an
iterator over the pages of a List method.

    from mailroom_client import Client, paginate
    from mailroom.store.v1 import store_pb2

    with Client(key) as mr:
        req = store_pb2.ListMessagesRequest(parent="users/me")
        for message in paginate(mr.store.ListMessages, req, "messages"):
            print(message.subject, message.classification.category)
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Optional

import grpc

from mailroom.auth.v1 import auth_pb2_grpc
from mailroom.classifier.v1 import classifier_pb2_grpc
from mailroom.ingest.v1 import ingest_pb2_grpc
from mailroom.store.v1 import store_pb2_grpc

__all__ = ["Client", "paginate", "DEFAULT_ADDRS"]

# DEFAULT_ADDRS are the gRPC addresses of `mailroom dev`; each is overridden by
# the environment variable that `mailroom dev` itself reads.
DEFAULT_ADDRS = {
    "auth": ("MAILROOM_AUTH_ADDR", "127.0.0.1:9101"),
    "ingest": ("MAILROOM_INGEST_ADDR", "127.0.0.1:9102"),
    "classifier": ("MAILROOM_CLASSIFIER_ADDR", "127.0.0.1:9103"),
    "store": ("MAILROOM_STORE_ADDR", "127.0.0.1:9104"),
}


class _BearerAuth(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds ``authorization: Bearer <key>`` to the metadata of every call."""

    def __init__(self, key: str):
        self._pair = ("authorization", "Bearer " + key)

    def _with_key(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = list(details.metadata or []) + [self._pair]
        return _CallDetails(details.method, details.timeout, metadata,
                            details.credentials, details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._with_key(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._with_key(client_call_details), request)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


class Client:
    """Client holds one authenticated channel and stub per mailroom service.

    ``key`` is a mailroom API key. Addresses default to those of
    ``mailroom dev`` (or the MAILROOM_*_ADDR environment variables); pass
    ``auth=``, ``ingest=``, ``classifier=`` or ``store=`` to change one, and
    ``credentials=`` (``grpc.ssl_channel_credentials()``) for TLS.
    """

    def __init__(self, key: str, *, credentials: Optional[grpc.ChannelCredentials] = None,
                 **addrs: str):
        unknown = set(addrs) - set(DEFAULT_ADDRS)
        if unknown:
            raise TypeError("unknown service address: " + ", ".join(sorted(unknown)))
        if not key:
            raise ValueError("an API key is required")
        self._channels = []
        interceptor = _BearerAuth(key)

        def channel(service: str) -> grpc.Channel:
            env, default = DEFAULT_ADDRS[service]
            target = addrs.get(service) or os.environ.get(env) or default
            if credentials is None:
                raw = grpc.insecure_channel(target)
            else:
                raw = grpc.secure_channel(target, credentials)
            self._channels.append(raw)
            return grpc.intercept_channel(raw, interceptor)

        self.auth = auth_pb2_grpc.AuthServiceStub(channel("auth"))
        self.ingest = ingest_pb2_grpc.IngestServiceStub(channel("ingest"))
        self.classifier = classifier_pb2_grpc.ClassifierServiceStub(channel("classifier"))
        self.store = store_pb2_grpc.StoreServiceStub(channel("store"))

    def close(self) -> None:
        """Closes every channel."""
        for ch in self._channels:
            ch.close()
        self._channels = []

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def paginate(method: Callable[..., Any], request: Any, field: str, **kwargs: Any) -> Iterator[Any]:
    """Yields every item of a List method, page after page.

    ``method`` is a stub's List method (``client.store.ListMessages``),
    ``request`` its request (left unchanged; a copy carries the page tokens)
    and ``field`` the repeated field of the response (``"messages"``).
    ``kwargs`` go to every call (``timeout=10``).
    """
    req = type(request)()
    req.CopyFrom(request)
    while True:
        resp = method(req, **kwargs)
        yield from getattr(resp, field)
        if not resp.next_page_token:
            return
        req.page_token = resp.next_page_token
