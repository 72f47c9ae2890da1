/** Types of the admin pages' REST answers (proto3 JSON: lowerCamelCase, int64 as strings). */

export type LaneQueue = { lane?: string; waiting?: string; oldestWaitSeconds?: number };

export type KeyLimits = {
  key: string;
  model?: string;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  configuredRequestsPerMinute?: number;
  configuredTokensPerMinute?: number;
  advertisedRequestsPerMinute?: number;
  advertisedTokensPerMinute?: number;
  limitSource?: string;
  ceiling?: number;
  requestsAvailable?: number;
  tokensAvailable?: number;
  inFlight?: string;
  rateLimitedLastMinute?: string;
  retriesLastMinute?: string;
  frozenSeconds?: number;
};

export type KeySample = {
  key: string;
  model?: string;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  requestsUsedPerMinute?: number;
  tokensUsedPerMinute?: number;
  requestsAvailable?: number;
  tokensAvailable?: number;
  inFlight?: string;
  requests?: string;
  rateLimited?: string;
  frozenSeconds?: number;
};

export type LimitsSnapshot = { time: string; keys?: KeySample[]; lanes?: LaneQueue[]; backlog?: string };

export type Budget = {
  dailyLimitMicros?: string;
  spentTodayMicros?: string;
  creditRemainingMicros?: string;
  exhausted?: boolean;
};

export type Limits = {
  keys?: KeyLimits[];
  lanes?: LaneQueue[];
  replicas?: number;
  model?: string;
  budget?: Budget;
  batches?: { waiting?: string; batches?: string; answered?: string; realtime?: string };
  history?: LimitsSnapshot[];
  backlog?: string;
};

export type DeadLetter = {
  name: string;
  message?: string;
  mailbox?: string;
  reason?: string;
  attempts?: number;
  deadTime?: string;
};

export type ApiKey = { name: string; displayName?: string; key?: string; prefix?: string; createTime?: string; lastUseTime?: string | null };

export type ModelUsage = {
  model: string;
  requests?: string;
  promptTokens?: string;
  cachedPromptTokens?: string;
  completionTokens?: string;
  costMicros?: string;
};

export type Usage = {
  name?: string;
  classifications?: string;
  llmClassifications?: string;
  requests?: string;
  costMicros?: string;
  models?: ModelUsage[];
};

/** userOf is the user id of a resource name under users/{user}/…. */
export function userOf(name: string): string {
  const m = /^users\/([^/]+)/.exec(name);
  return m ? m[1] : '';
}

/** dollars formats millionths of a US dollar. */
export function dollars(micros: number): string {
  const d = micros / 1e6;
  return '$' + d.toFixed(Math.abs(d) < 10 ? 4 : 2);
}

/** laneName is LANE_BACKFILL → backfill. */
export function laneName(lane?: string): string {
  return (lane ?? '').replace(/^LANE_/, '').toLowerCase();
}

/** fmtNum formats a count or rate for reading: 12,345 or 1.2. */
export function fmtNum(n: number, digits = 0): string {
  // A bucket a hair under zero reads 0, not -0.
  if (Math.abs(n) < 0.5 * 10 ** -digits) n = 0;
  return n.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}
