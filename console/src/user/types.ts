/** Types of the REST API's JSON (proto3 JSON: lowerCamelCase, int64 as strings). */

export type Classification = {
  category?: string;
  confidence?: number;
  priority?: string;
  needsReply?: boolean;
  reason?: string;
  source?: string;
  rule?: string;
  model?: string;
  classifyTime?: string;
};

export type Message = {
  name: string;
  mailbox?: string;
  subject?: string;
  from?: string;
  to?: string[];
  receivedTime?: string;
  snippet?: string;
  sizeBytes?: string;
  attachmentNames?: string[];
  state?: string;
  classification?: Classification | null;
  body?: string;
};

export type ListMessagesResponse = { messages?: Message[]; nextPageToken?: string };

export type Stats = {
  name?: string;
  total?: string;
  classified?: string;
  pending?: string;
  failed?: string;
  categories?: { category: string; count: string }[];
  mailboxes?: { mailbox: string; count: string; classified: string }[];
};

export type Category = { name: string; description?: string };
export type Taxonomy = { name?: string; categories?: Category[]; updateTime?: string | null };

export type Mailbox = {
  name: string;
  provider?: string;
  address?: string;
  displayName?: string;
  state?: string;
  stateReason?: string;
  authorizationUrl?: string;
  createTime?: string;
  lastSyncTime?: string | null;
  messageCount?: string;
};

export type SyncProgress = {
  listed?: string;
  fetched?: string;
  published?: string;
  skipped?: string;
  failed?: string;
  classified?: string;
};

export type SyncJob = {
  name: string;
  mailbox?: string;
  mode?: string;
  maxMessages?: number;
  state?: string;
  progress?: SyncProgress;
  error?: string;
  createTime?: string;
  endTime?: string | null;
};

export type User = { name: string; displayName?: string; email?: string; role?: string };

/** num reads an int64 sent as a JSON string. */
export function num(v: string | number | undefined | null): number {
  const n = typeof v === 'number' ? v : Number(v ?? 0);
  return Number.isFinite(n) ? n : 0;
}

/** shortEnum turns CLASSIFICATION_SOURCE_LLM into "llm" given its prefix. */
export function shortEnum(v: string | undefined, prefix: string): string {
  if (!v) return '';
  return (v.startsWith(prefix) ? v.slice(prefix.length) : v).toLowerCase().replace(/_/g, ' ');
}
