#!/usr/bin/env python3
"""Creates a user and a mailbox, imports a newsletter and prints it classified.

Runs against `mailroom dev` over gRPC with the generated client
(clients/python). From the top of the repository, with `make dev` running:

    PYTHONPATH=clients/python/gen:clients/python/src python3 examples/python/list_newsletters.py

The admin key comes from MAILROOM_KEY, or else from .mailroom/admin-key in the
current directory (where `make dev` writes it). The services' addresses are
those `mailroom dev` uses (MAILROOM_AUTH_ADDR, MAILROOM_INGEST_ADDR,
MAILROOM_STORE_ADDR override them).
"""

import email.utils
import os
import secrets
import sys
import time
from datetime import datetime, timedelta, timezone

from mailroom.auth.v1 import auth_pb2
from mailroom.ingest.v1 import ingest_pb2
from mailroom.store.v1 import store_pb2
from mailroom_client import Client, paginate


def admin_key() -> str:
    key = os.environ.get("MAILROOM_KEY", "").strip()
    if key:
        return key
    try:
        with open(os.path.join(".mailroom", "admin-key")) as f:
            return f.read().strip()
    except FileNotFoundError:
        sys.exit("set MAILROOM_KEY, or run this where `mailroom dev` runs (.mailroom/admin-key)")


def newsletter(now: datetime) -> bytes:
    # Dated an hour ago, so the mail is always recent for retention.
    date = email.utils.format_datetime(now - timedelta(hours=1))
    return (
        'From: "The Gopher Weekly" <news@gopherweekly.example>\r\n'
        "To: ada@example.com\r\n"
        "Subject: Gopher Weekly #413: iterators everywhere\r\n"
        f"Date: {date}\r\n"
        f"Message-ID: <gw413.{secrets.token_hex(4)}@gopherweekly.example>\r\n"
        "List-Id: Gopher Weekly <weekly.gopherweekly.example>\r\n"
        "List-Unsubscribe: <https://gopherweekly.example/unsubscribe>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "This week: iterators everywhere, and a faster JSON decoder.\r\n"
    ).encode()


def main() -> int:
    # A user of its own with an API key of its own, so that runs never collide.
    user_id = "py-example-" + secrets.token_hex(4)
    with Client(admin_key()) as admin:
        admin.auth.CreateUser(auth_pb2.CreateUserRequest(
            user_id=user_id, user=auth_pb2.User(display_name="Python example")), timeout=10)
        key = admin.auth.CreateApiKey(auth_pb2.CreateApiKeyRequest(
            parent="users/" + user_id, api_key=auth_pb2.ApiKey(display_name="list_newsletters.py")),
            timeout=10).api_key.key

    with Client(key) as mr:
        mailbox = mr.ingest.CreateMailbox(ingest_pb2.CreateMailboxRequest(
            parent="users/me", mailbox_id="inbox",
            mailbox=ingest_pb2.Mailbox(provider=ingest_pb2.PROVIDER_IMPORT, display_name="Imported mail")),
            timeout=10).mailbox
        # RawMessage.raw is the RFC 822 bytes: gRPC carries them as they are
        # (base64 is their JSON form, what the REST API takes).
        raw = newsletter(datetime.now(timezone.utc))
        imported = mr.ingest.ImportMessages(ingest_pb2.ImportMessagesRequest(
            parent=mailbox.name, messages=[ingest_pb2.RawMessage(raw=raw)]),
            timeout=10).messages
        print(f"imported {imported[0].message} into {mailbox.name}")

        deadline = time.monotonic() + 60
        request = store_pb2.ListMessagesRequest(parent="users/me", page_size=10)
        while True:
            classified = [m for m in paginate(mr.store.ListMessages, request, "messages", timeout=10)
                          if m.classification.category]
            if classified:
                break
            if time.monotonic() > deadline:
                print("no message was classified within 60s", file=sys.stderr)
                return 1
            time.sleep(0.5)

    for m in classified:
        c = m.classification
        print(f"{m.subject!r} from {getattr(m, 'from')}")
        print(f"  category: {c.category} (confidence {c.confidence:.2f}, rule {c.rule or '-'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
