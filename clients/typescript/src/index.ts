// Package @mailroom/client: a small hand-written layer over the code that
// protoc-gen-es generates from proto/ into src/gen (never edited): one Connect
// client per mailroom service over gRPC, the API key sent as
// `authorization: Bearer <key>` on every call, and an iterator over the pages
// of a List method.
//
//   const mr = createMailroomClient({ key });
//   for await (const m of paginate(mr.store.listMessages, { parent: "users/me" }, "messages")) {
//     console.log(m.subject, m.classification?.category);
//   }

import { createClient, type CallOptions, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AuthService } from "./gen/mailroom/auth/v1/auth_pb.js";
import { ClassifierService } from "./gen/mailroom/classifier/v1/classifier_pb.js";
import { IngestService } from "./gen/mailroom/ingest/v1/ingest_pb.js";
import { StoreService } from "./gen/mailroom/store/v1/store_pb.js";

export * as authv1 from "./gen/mailroom/auth/v1/auth_pb.js";
export * as classifierv1 from "./gen/mailroom/classifier/v1/classifier_pb.js";
export * as ingestv1 from "./gen/mailroom/ingest/v1/ingest_pb.js";
export * as mailv1 from "./gen/mailroom/mail/v1/mail_pb.js";
export * as storev1 from "./gen/mailroom/store/v1/store_pb.js";
export { AuthService, ClassifierService, IngestService, StoreService };

/** ServiceName names one of mailroom's gRPC services. */
export type ServiceName = "auth" | "ingest" | "classifier" | "store";

/**
 * DEFAULT_ADDRS are the gRPC addresses of `mailroom dev`; each is overridden
 * by the environment variable that `mailroom dev` itself reads.
 */
export const DEFAULT_ADDRS: Record<ServiceName, { env: string; addr: string }> = {
  auth: { env: "MAILROOM_AUTH_ADDR", addr: "127.0.0.1:9101" },
  ingest: { env: "MAILROOM_INGEST_ADDR", addr: "127.0.0.1:9102" },
  classifier: { env: "MAILROOM_CLASSIFIER_ADDR", addr: "127.0.0.1:9103" },
  store: { env: "MAILROOM_STORE_ADDR", addr: "127.0.0.1:9104" },
};

/** MailroomOptions configures createMailroomClient. */
export interface MailroomOptions {
  /** key is a mailroom API key. */
  key: string;
  /** baseUrls overrides a service's base URL, such as "https://auth.example:443". */
  baseUrls?: Partial<Record<ServiceName, string>>;
}

/** MailroomClient holds one Connect client per service. */
export interface MailroomClient {
  auth: Client<typeof AuthService>;
  ingest: Client<typeof IngestService>;
  classifier: Client<typeof ClassifierService>;
  store: Client<typeof StoreService>;
}

/** bearer returns an interceptor that sends the API key on every call. */
export function bearer(key: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
}

/**
 * createMailroomClient connects to every service over gRPC (HTTP/2) with the
 * API key. Base URLs default to `mailroom dev`'s addresses, plain HTTP, or
 * the MAILROOM_*_ADDR environment variables.
 */
export function createMailroomClient(opts: MailroomOptions): MailroomClient {
  if (!opts.key) {
    throw new Error("an API key is required");
  }
  const interceptors = [bearer(opts.key)];
  const transport = (service: ServiceName): Transport => {
    const { env, addr } = DEFAULT_ADDRS[service];
    const baseUrl = opts.baseUrls?.[service] ?? `http://${process.env[env] || addr}`;
    return createGrpcTransport({ baseUrl, interceptors });
  };
  return {
    auth: createClient(AuthService, transport("auth")),
    ingest: createClient(IngestService, transport("ingest")),
    classifier: createClient(ClassifierService, transport("classifier")),
    store: createClient(StoreService, transport("store")),
  };
}

/**
 * paginate yields every item of a List method, page after page: `method` is
 * a client's List method (`mr.store.listMessages`), `request` its request
 * (each page's token is added to a copy) and `field` the response's
 * repeated field (`"messages"`).
 */
export async function* paginate<
  Req extends { pageToken?: string },
  Res extends { nextPageToken: string },
  K extends keyof Res,
>(
  method: (request: Req, options?: CallOptions) => Promise<Res>,
  request: Req,
  field: K,
  options?: CallOptions,
): AsyncGenerator<Res[K] extends readonly (infer Item)[] ? Item : never> {
  let pageToken = request.pageToken ?? "";
  for (;;) {
    const res = await method({ ...request, pageToken }, options);
    yield* res[field] as Iterable<Res[K] extends readonly (infer Item)[] ? Item : never>;
    if (!res.nextPageToken) {
      return;
    }
    pageToken = res.nextPageToken;
  }
}
