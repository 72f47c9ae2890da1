// Creates a user and a mailbox, imports a newsletter and prints it
// classified, against `mailroom dev` over gRPC with the generated client
// (clients/typescript). From the top of the repository, with `make dev`
// running (Node 20 has no type stripping, so tsc compiles it first):
//
//   (cd clients/typescript && npm ci && npm run build)
//   node clients/typescript/dist/examples/typescript/list-newsletters.js
//
// The admin key comes from MAILROOM_KEY, or else from .mailroom/admin-key in
// the current directory (where `make dev` writes it). The services' addresses
// are those `mailroom dev` uses (MAILROOM_AUTH_ADDR, MAILROOM_INGEST_ADDR,
// MAILROOM_STORE_ADDR override them).

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { createMailroomClient, ingestv1, paginate } from "../../clients/typescript/src/index.js";

function adminKey(): string {
  const key = process.env.MAILROOM_KEY?.trim();
  if (key) {
    return key;
  }
  try {
    return readFileSync(".mailroom/admin-key", "utf8").trim();
  } catch {
    throw new Error("set MAILROOM_KEY, or run this where `mailroom dev` runs (.mailroom/admin-key)");
  }
}

// newsletter is an RFC 822 mail dated an hour ago, so it is always recent.
function newsletter(now: Date): Uint8Array {
  const date = new Date(now.getTime() - 3600_000).toUTCString().replace("GMT", "+0000");
  const lines = [
    `From: "The Gopher Weekly" <news@gopherweekly.example>`,
    "To: ada@example.com",
    "Subject: Gopher Weekly #414: generated clients",
    `Date: ${date}`,
    `Message-ID: <gw414.${randomBytes(4).toString("hex")}@gopherweekly.example>`,
    "List-Id: Gopher Weekly <weekly.gopherweekly.example>",
    "List-Unsubscribe: <https://gopherweekly.example/unsubscribe>",
    "Content-Type: text/plain; charset=utf-8",
    "",
    "This week: clients generated from protos, in Python and TypeScript.",
    "",
  ];
  return new TextEncoder().encode(lines.join("\r\n"));
}

async function main(): Promise<number> {
  // A user of its own with an API key of its own, so that runs never collide.
  const userId = `ts-example-${randomBytes(4).toString("hex")}`;
  const admin = createMailroomClient({ key: adminKey() });
  await admin.auth.createUser({ userId, user: { displayName: "TypeScript example" } });
  const { apiKey } = await admin.auth.createApiKey({
    parent: `users/${userId}`,
    apiKey: { displayName: "list-newsletters.ts" },
  });

  const mr = createMailroomClient({ key: apiKey?.key ?? "" });
  const { mailbox } = await mr.ingest.createMailbox({
    parent: "users/me",
    mailboxId: "inbox",
    mailbox: { provider: ingestv1.Provider.IMPORT, displayName: "Imported mail" },
  });
  // RawMessage.raw is the RFC 822 bytes: gRPC carries them as they are
  // (base64 is their JSON form, what the REST API takes).
  const { messages: imported } = await mr.ingest.importMessages({
    parent: mailbox?.name,
    messages: [{ raw: newsletter(new Date()) }],
  });
  console.log(`imported ${imported[0]?.message} into ${mailbox?.name}`);

  const deadline = Date.now() + 60_000;
  for (;;) {
    let found = 0;
    for await (const m of paginate(mr.store.listMessages, { parent: "users/me", pageSize: 10 }, "messages")) {
      const c = m.classification;
      if (!c?.category) {
        continue;
      }
      found++;
      console.log(`${JSON.stringify(m.subject)} from ${m.from}`);
      console.log(`  category: ${c.category} (confidence ${c.confidence.toFixed(2)}, rule ${c.rule || "-"})`);
    }
    if (found > 0) {
      return 0;
    }
    if (Date.now() > deadline) {
      console.error("no message was classified within 60s");
      return 1;
    }
    await sleep(500);
  }
}

process.exitCode = await main();
