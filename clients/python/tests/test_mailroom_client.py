"""Tests of the hand-written layer against an in-process gRPC server.

    PYTHONPATH=clients/python/gen:clients/python/src /usr/bin/python3 -m unittest discover -s clients/python/tests
"""

import unittest
from concurrent import futures

import grpc

from mailroom.store.v1 import store_pb2, store_pb2_grpc
from mailroom_client import Client, paginate


class _Store(store_pb2_grpc.StoreServiceServicer):
    """Serves five messages two at a time and records each call's key."""

    def __init__(self):
        self.authorizations = []
        self.page_tokens = []

    def ListMessages(self, request, context):
        self.authorizations.append(dict(context.invocation_metadata()).get("authorization"))
        self.page_tokens.append(request.page_token)
        start = int(request.page_token or "0")
        end = min(start + request.page_size, 5)
        resp = store_pb2.ListMessagesResponse(
            messages=[store_pb2.Message(name=f"users/me/messages/{i}") for i in range(start, end)])
        if end < 5:
            resp.next_page_token = str(end)
        return resp


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.store = _Store()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        store_pb2_grpc.add_StoreServiceServicer_to_server(self.store, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.addr = f"127.0.0.1:{port}"

    def tearDown(self):
        self.server.stop(None)

    def test_paginate_sends_the_key_and_walks_every_page(self):
        request = store_pb2.ListMessagesRequest(parent="users/me", page_size=2)
        with Client("mr_test", store=self.addr) as mr:
            names = [m.name for m in paginate(mr.store.ListMessages, request, "messages", timeout=5)]
        self.assertEqual(names, [f"users/me/messages/{i}" for i in range(5)])
        self.assertEqual(self.store.page_tokens, ["", "2", "4"])
        self.assertEqual(self.store.authorizations, ["Bearer mr_test"] * 3)
        self.assertEqual(request.page_token, "", "paginate changed the caller's request")

    def test_a_key_is_required(self):
        with self.assertRaises(ValueError):
            Client("")

    def test_unknown_service(self):
        with self.assertRaises(TypeError):
            Client("mr_test", storage=self.addr)


if __name__ == "__main__":
    unittest.main()
