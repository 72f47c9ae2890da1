import { ApiError, errorFrom } from './api';

/**
 * The session trades the user's API key for a short-lived identity token
 * (POST /v1/apiKeys:exchange) and sends only that token with each request.
 *
 * Where things live:
 *  - the token, its expiry and the user's name: in this object, in memory;
 *  - the API key: in memory too (a private field), never in localStorage,
 *    sessionStorage, a cookie or the DOM (the form field is cleared at once).
 *    auth's tokens live one minute at most (MAILROOM_TOKEN_TTL ≤ 1m, because a
 *    token cannot be revoked), so the session renews the token with the key
 *    shortly before it expires instead of asking for the key every minute.
 *    A reload, a new tab or "Sign out" forgets both; auth refusing the key
 *    (deleted, revoked) signs the user out and asks for it again.
 *
 * No cookie is involved: requests carry `Authorization: Bearer`, which a
 * cross-site page cannot make a browser attach, so there is no CSRF surface.
 */

export type Identity = {
  /** users/{id} */
  user: string;
  role: string;
};

type ExchangeResponse = {
  token: string;
  expireTime: string;
  user: string;
  role: string;
  /** serverNow is the gateway's time of the answer (its Date header). */
  serverNow: number;
};

/** renewBefore is how long before its expiry a token is renewed. */
const renewBefore = 20_000;

export class Session {
  #key = '';
  #token = '';
  #expires = 0;
  #identity: Identity | null = null;
  #renewing: Promise<string> | null = null;
  #listeners: ((signedIn: boolean, why?: string) => void)[] = [];

  constructor(private readonly base = '') {}

  get identity(): Identity | null {
    return this.#identity;
  }

  get isAdmin(): boolean {
    return this.#identity?.role === 'ROLE_ADMIN';
  }

  /** onChange is told when the user signs in or is signed out (with why). */
  onChange(f: (signedIn: boolean, why?: string) => void): void {
    this.#listeners.push(f);
  }

  /** login exchanges key; on success the session holds a token. */
  async login(key: string): Promise<Identity> {
    key = key.trim();
    if (!key) throw new ApiError('Enter your API key.', 400, 3);
    const r = await this.exchange(key);
    this.#key = key;
    this.accept(r, r.serverNow);
    for (const f of this.#listeners) f(true);
    return this.#identity!;
  }

  /** logout forgets the key and the token. */
  logout(why?: string): void {
    const was = this.#identity !== null;
    this.#key = '';
    this.#token = '';
    this.#expires = 0;
    this.#identity = null;
    this.#renewing = null;
    if (was) for (const f of this.#listeners) f(false, why);
  }

  /** token returns a valid token, renewing it first when it is about to expire. */
  token = async (renew = false): Promise<string> => {
    if (!this.#identity) throw new ApiError('Signed out: sign in with your API key.', 401, 16);
    if (!renew && Date.now() < this.#expires - renewBefore) return this.#token;
    if (!this.#renewing) {
      this.#renewing = this.exchange(this.#key)
        .then((r) => {
          this.accept(r, r.serverNow);
          return this.#token;
        })
        .catch((e: unknown) => {
          if (e instanceof ApiError && e.httpStatus === 401) this.logout('Your API key is no longer accepted; sign in again.');
          throw e;
        })
        .finally(() => {
          this.#renewing = null;
        });
    }
    return this.#renewing;
  };

  /** unauthenticated is the Api's report of a 401: sign out and ask again. */
  unauthenticated = (e: ApiError): void => {
    this.logout(e.message);
  };

  private accept(r: ExchangeResponse, serverNow: number): void {
    this.#token = r.token;
    // The token's lifetime by the gateway's clock (its Date header), counted
    // on this machine's: a skewed clock does not make a token look fresher.
    const life = Date.parse(r.expireTime) - serverNow;
    this.#expires = Date.now() + (Number.isFinite(life) && life > 0 ? Math.min(life, 3_600_000) : 30_000);
    this.#identity = { user: r.user, role: r.role };
  }

  private async exchange(key: string): Promise<ExchangeResponse> {
    let res: Response;
    try {
      res = await fetch(this.base + '/v1/apiKeys:exchange', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ apiKey: key }),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError('The gateway did not answer: ' + (e as Error).message, 0, 14);
    }
    const data: unknown = await res.json().catch(() => ({}));
    if (!res.ok) throw errorFrom(res.status, data);
    const date = Date.parse(res.headers.get('Date') ?? '');
    return { ...(data as ExchangeResponse), serverNow: Number.isFinite(date) ? date : Date.now() };
  }
}
