// Counting a client's requests to the sandbox's kube-apiserver from its audit log (JSON lines):
// unlike apiserver_request_total, each audit event names the user, so two operators running
// against one API server are told apart. Only the users of interest are logged at all, one event
// per request when it completes (a watch counts once, when it ends).
import { closeSync, openSync, readSync, statSync } from "node:fs";

/** An audit policy logging only the given users' requests, once each, without bodies. */
export function requestCountingPolicy(users: readonly string[]): Record<string, unknown> {
  return {
    apiVersion: "audit.k8s.io/v1",
    kind: "Policy",
    omitStages: ["RequestReceived", "ResponseStarted"],
    rules: [{ level: "Metadata", users: [...users] }, { level: "None" }],
  };
}

export interface AuditedRequest {
  readonly user: string;
  /** When it completed (ms since the epoch): a watch counts when it ends, i.e. at a reconnect. */
  readonly at: number;
  readonly verb: string;
  readonly resource: string;
  readonly code: number;
}

interface AuditEvent {
  user?: { username?: string };
  verb?: string;
  objectRef?: { resource?: string; subresource?: string };
  stageTimestamp?: string;
  responseStatus?: { code?: number };
}

/** Parses complete lines; returns the requests and how many bytes were consumed. */
export function parseAuditLines(text: string): { requests: AuditedRequest[]; consumed: number } {
  const end = text.lastIndexOf("\n");
  if (end < 0) return { requests: [], consumed: 0 };
  const requests: AuditedRequest[] = [];
  for (const line of text.slice(0, end).split("\n")) {
    if (!line.trim()) continue;
    const event = JSON.parse(line) as AuditEvent;
    const resource = event.objectRef?.resource ?? "";
    requests.push({
      user: event.user?.username ?? "",
      at: Date.parse(event.stageTimestamp ?? ""),
      verb: event.verb ?? "",
      resource: event.objectRef?.subresource ? `${resource}/${event.objectRef.subresource}` : resource,
      code: event.responseStatus?.code ?? 0,
    });
  }
  return { requests, consumed: Buffer.byteLength(text.slice(0, end + 1)) };
}

/** Reads the log as it grows; counts requests by user over time windows. */
export class AuditLog {
  private readonly path: string;
  private offset = 0;
  private pending = Buffer.alloc(0);
  private readonly requests: AuditedRequest[] = [];

  constructor(path: string) {
    this.path = path;
  }

  /** Reads what was appended since the last call. */
  refresh(): void {
    let size: number;
    try {
      size = statSync(this.path).size;
    } catch {
      return;
    }
    if (size <= this.offset) return;
    const fd = openSync(this.path, "r");
    try {
      const chunk = Buffer.alloc(size - this.offset);
      const read = readSync(fd, chunk, 0, chunk.length, this.offset);
      this.offset += read;
      this.pending = Buffer.concat([this.pending, chunk.subarray(0, read)]);
    } finally {
      closeSync(fd);
    }
    const { requests, consumed } = parseAuditLines(this.pending.toString("utf8"));
    this.pending = this.pending.subarray(consumed);
    this.requests.push(...requests);
  }

  /** The user's requests completed in [from, to) (ms since the epoch). */
  between(user: string, from: number, to: number): AuditedRequest[] {
    this.refresh();
    return this.requests.filter((r) => r.user === user && r.at >= from && r.at < to);
  }
}

/** "verb resource" -> count, most frequent first. */
export function breakdown(requests: readonly AuditedRequest[]): [string, number][] {
  const counts = new Map<string, number>();
  for (const r of requests) counts.set(`${r.verb} ${r.resource}`, (counts.get(`${r.verb} ${r.resource}`) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1]);
}
