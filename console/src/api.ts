/**
 * Api calls mailroom's public REST API (the same one every client uses)
 * with `Authorization: Bearer <token>`. No cookies are sent or needed
 * (credentials: 'omit'), so there is nothing for another site to forge.
 */

/** ApiError is a failed call, with the google.rpc.Status the gateway answered. */
export class ApiError extends Error {
  constructor(
    message: string,
    /** HTTP status; 0 when the request did not reach the gateway. */
    readonly httpStatus: number,
    /** gRPC code name (NOT_FOUND) or number as sent. */
    readonly code: number,
    /** ErrorInfo reason, when the status carries one. */
    readonly reason: string = '',
    /** field violations of a BadRequest detail: field → description. */
    readonly fields: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type Detail = {
  '@type'?: string;
  reason?: string;
  retryDelay?: string;
  fieldViolations?: { field?: string; description?: string }[];
};

type RpcStatus = { code?: number; message?: string; details?: Detail[] };

/** errorFrom turns a google.rpc.Status (or anything else) into an ApiError with a readable message. */
export function errorFrom(httpStatus: number, body: unknown): ApiError {
  const st = (body && typeof body === 'object' ? body : {}) as RpcStatus;
  let msg = typeof st.message === 'string' && st.message ? st.message : `HTTP ${httpStatus}`;
  let reason = '';
  const fields: Record<string, string> = {};
  for (const d of st.details ?? []) {
    if (d.reason) reason = d.reason;
    for (const v of d.fieldViolations ?? []) {
      if (v.field) fields[v.field] = v.description ?? '';
    }
  }
  const fv = Object.entries(fields).map(([f, d]) => `${f}: ${d}`);
  if (fv.length && !fv.every((s) => msg.includes(s))) msg += ' (' + fv.join('; ') + ')';
  if (msg.length) msg = msg[0].toUpperCase() + msg.slice(1);
  return new ApiError(msg, httpStatus, typeof st.code === 'number' ? st.code : 0, reason, fields);
}

/**
 * TokenSource returns a currently valid bearer token, or throws; renew asks
 * for a new one (the gateway refused the last as expired).
 */
export type TokenSource = (renew?: boolean) => Promise<string>;

/** Stream is a running NDJSON stream. */
export type Stream = {
  /** abort ends the stream; done then resolves. */
  abort(): void;
  /** done settles when the stream ends: resolves on end or abort, rejects on an error. */
  done: Promise<void>;
};

export class Api {
  /**
   * @param token returns the bearer token for each request.
   * @param onUnauthenticated is told when the gateway answered 401, so the
   *   session can ask for the key again.
   */
  constructor(
    private readonly token: TokenSource,
    private readonly onUnauthenticated: (e: ApiError) => void = () => {},
    private readonly base = '',
  ) {}

  get<T>(path: string, query?: Record<string, string | number | boolean | undefined>): Promise<T> {
    return this.call<T>('GET', withQuery(path, query));
  }
  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.call<T>('POST', path, body);
  }
  patch<T>(path: string, body: unknown, query?: Record<string, string | undefined>): Promise<T> {
    return this.call<T>('PATCH', withQuery(path, query), body);
  }
  delete<T>(path: string): Promise<T> {
    return this.call<T>('DELETE', path);
  }

  private async headers(body: boolean, renew = false): Promise<Headers> {
    const h = new Headers({ Accept: 'application/json' });
    h.set('Authorization', 'Bearer ' + (await this.token(renew)));
    if (body) h.set('Content-Type', 'application/json');
    return h;
  }

  private async call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal, attempt = 0, renew = false): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: await this.headers(body !== undefined, renew),
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-store',
        signal,
      });
    } catch (e) {
      if (e instanceof ApiError) throw e;
      if ((e as Error).name === 'AbortError') throw e;
      throw new ApiError('The gateway did not answer: ' + (e as Error).message, 0, 14);
    }
    // A read refused for the rate limit is tried again once, after the
    // Retry-After the gateway sent (a page that loads in bursts).
    // A token refused as expired (the clock of this machine is late, or the
    // page slept) is renewed once before the user is signed out.
    if (res.status === 401 && attempt === 0) {
      await res.body?.cancel();
      return this.call<T>(method, path, body, signal, attempt + 1, true);
    }
    const retryAfter = Number(res.headers.get('Retry-After'));
    if (res.status === 429 && method === 'GET' && attempt === 0 && retryAfter > 0 && retryAfter <= 5) {
      await res.body?.cancel();
      await new Promise((r) => setTimeout(r, retryAfter * 1000));
      return this.call<T>(method, path, body, signal, attempt + 1);
    }
    const text = await res.text();
    let data: unknown = undefined;
    try {
      data = text ? JSON.parse(text) : {};
    } catch {
      data = { message: text.slice(0, 200) };
    }
    if (!res.ok) {
      const err = errorFrom(res.status, data);
      if (res.status === 401) this.onUnauthenticated(err);
      if (res.status === 429) {
        const ra = res.headers.get('Retry-After');
        if (ra && !err.message.includes('retry')) err.message += ` (retry in ${ra} s)`;
      }
      throw err;
    }
    return data as T;
  }

  /**
   * stream reads a server stream (grpc-gateway's newline-delimited JSON,
   * one `{"result": …}` or `{"error": …}` per line) and calls onLine with
   * each result. EventSource cannot send an Authorization header, hence
   * fetch and its ReadableStream.
   */
  stream<T>(path: string, onLine: (item: T) => void, query?: Record<string, string | undefined>): Stream {
    const ctl = new AbortController();
    const open = async (renew: boolean): Promise<Response> =>
      fetch(this.base + withQuery(path, query), {
        headers: await this.headers(false, renew),
        credentials: 'omit',
        cache: 'no-store',
        signal: ctl.signal,
      });
    const run = async (): Promise<void> => {
      let res = await open(false);
      if (res.status === 401) {
        await res.body?.cancel();
        res = await open(true);
      }
      if (!res.ok || !res.body) {
        let data: unknown = {};
        try {
          data = await res.json();
        } catch {
          // not JSON: the status alone says it
        }
        const err = errorFrom(res.status, data);
        if (res.status === 401) this.onUnauthenticated(err);
        throw err;
      }
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const msg = JSON.parse(line) as { result?: T; error?: RpcStatus };
          if (msg.error) throw errorFrom(res.status, msg.error);
          if (msg.result !== undefined) onLine(msg.result);
        }
      }
    };
    const done = run().catch((e: unknown) => {
      if (ctl.signal.aborted) return;
      throw e;
    });
    return { abort: () => ctl.abort(), done };
  }
}

/** withQuery appends the set parameters of query to path. */
export function withQuery(path: string, query?: Record<string, string | number | boolean | undefined>): string {
  if (!query) return path;
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== '') p.set(k, String(v));
  }
  const qs = p.toString();
  return qs ? path + (path.includes('?') ? '&' : '?') + qs : path;
}
