// Tests of the hand-written layer against an in-process gRPC server
// (npm test): the API key on every call, and paginate across pages.

import assert from "node:assert/strict";
import { createServer } from "node:http2";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createMailroomClient, paginate, StoreService, storev1 } from "../src/index.js";

test("paginate sends the key and walks every page", async (t) => {
  const authorizations: (string | null)[] = [];
  const pageTokens: string[] = [];
  const routes = (router: ConnectRouter) =>
    router.service(StoreService, {
      listMessages(req, ctx) {
        authorizations.push(ctx.requestHeader.get("authorization"));
        pageTokens.push(req.pageToken);
        const start = Number(req.pageToken || "0");
        const end = Math.min(start + req.pageSize, 5);
        const messages = [];
        for (let i = start; i < end; i++) {
          messages.push(create(storev1.MessageSchema, { name: `users/me/messages/${i}` }));
        }
        return { messages, nextPageToken: end < 5 ? String(end) : "" };
      },
    });
  const server = createServer(connectNodeAdapter({ routes }));
  // The client keeps its HTTP/2 session open; close waits for every session.
  const sessions = new Set<import("node:http2").ServerHttp2Session>();
  server.on("session", (s) => sessions.add(s));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    sessions.forEach((s) => s.destroy());
    server.close();
  });
  const { port } = server.address() as AddressInfo;

  const mr = createMailroomClient({ key: "mr_test", baseUrls: { store: `http://127.0.0.1:${port}` } });
  const request = { parent: "users/me", pageSize: 2 };
  const names: string[] = [];
  for await (const m of paginate(mr.store.listMessages, request, "messages")) {
    names.push(m.name);
  }
  assert.deepEqual(names, [0, 1, 2, 3, 4].map((i) => `users/me/messages/${i}`));
  assert.deepEqual(pageTokens, ["", "2", "4"]);
  assert.deepEqual(authorizations, ["Bearer mr_test", "Bearer mr_test", "Bearer mr_test"]);
  assert.deepEqual(request, { parent: "users/me", pageSize: 2 }, "paginate changed the caller's request");
});

test("a key is required", () => {
  assert.throws(() => createMailroomClient({ key: "" }), /API key/);
});
