// Follows the proxy's ingress Secret (routing table and certificate copy, written by the
// operator) through the API: a read, then a watch by name, resumed from the last resourceVersion
// whenever the server ends it. A narrow interface so the L7 server is tested without a cluster;
// the proxy's Role allows exactly this. Through the proxy's own API access (../kube-api.ts), not
// a client library: the L7 proxy runs once per Ingress (docs/adr/0013).
import type { Logger } from "../log.ts";
import { systemClock } from "../../shared/clock.ts";
import { InClusterApi, KubeApiError, decodedData, secretPath, type WatchEvent } from "../kube-api.ts";

export type SecretData = Readonly<Record<string, string>>;

export interface SecretFollower {
  /** Resolves with the Secret's data once it exists, then calls onChange with every change until signal aborts. */
  follow(signal: AbortSignal, onChange: (data: SecretData) => void): Promise<SecretData>;
}

export interface FollowerOptions {
  /** Pause before a failed read or watch is tried again. */
  readonly retryMs?: number;
  /** How long the server keeps one watch open before ending it (it is then resumed). */
  readonly watchSeconds?: number;
  /** Silence on a watch for this long is a dead connection (defaults to watchSeconds + 30 s). */
  readonly idleMs?: number;
}

interface SecretObject {
  readonly metadata?: { readonly resourceVersion?: string };
  readonly data?: Readonly<Record<string, string>> | null;
  /** On an ERROR event: a Status. */
  readonly code?: number;
  readonly message?: string;
}

/** A watch the server ends sooner than this is resumed only after the retry pause. */
const QUICK_END_MS = 1_000;

/** The watch's resourceVersion has left the server's window (410 Gone): read again. */
class Expired extends Error {}

/** A pause that ends early, without error, when signal aborts. */
const pause = (ms: number, signal: AbortSignal): Promise<void> => systemClock.sleep(ms, signal).catch(() => undefined);

export class KubeSecretFollower implements SecretFollower {
  private readonly api: InClusterApi;
  private readonly name: string;
  private readonly log: Logger;
  private readonly retryMs: number;
  private readonly watchSeconds: number;
  private readonly idleMs: number;

  constructor(name: string, log: Logger, api: InClusterApi = new InClusterApi(), options: FollowerOptions = {}) {
    this.api = api;
    this.name = name;
    this.log = log;
    this.retryMs = options.retryMs ?? 2_000;
    this.watchSeconds = options.watchSeconds ?? 300;
    this.idleMs = options.idleMs ?? (this.watchSeconds + 30) * 1_000;
  }

  async follow(signal: AbortSignal, onChange: (data: SecretData) => void): Promise<SecretData> {
    let first: SecretObject | undefined;
    while (!first) {
      first = await this.read().catch((error: unknown) => {
        this.log.warn({ err: error, secret: this.name }, "cannot read the ingress Secret yet; retrying");
        return undefined;
      });
      if (!first) await pause(this.retryMs, signal);
      if (signal.aborted) {
        this.api.close();
        throw new Error("stopped");
      }
    }
    let last = JSON.stringify(first.data ?? {});
    const deliver = (secret: SecretObject): void => {
      const data = JSON.stringify(secret.data ?? {});
      if (data === last) return;
      last = data;
      onChange(decodedData(secret.data));
    };
    void this.watchFrom(first.metadata?.resourceVersion, signal, deliver).finally(() => { this.api.close(); });
    return decodedData(first.data);
  }

  private async read(): Promise<SecretObject> {
    return JSON.parse(await this.api.request({ method: "GET", path: secretPath(this.api.access.namespace, this.name) })) as SecretObject;
  }

  /** Watches until signal aborts; resourceVersion undefined: read the Secret again first. */
  private async watchFrom(resourceVersion: string | undefined, signal: AbortSignal, deliver: (secret: SecretObject) => void): Promise<void> {
    const collection = `/api/v1/namespaces/${encodeURIComponent(this.api.access.namespace)}/secrets`;
    const onEvent = (event: WatchEvent): void => {
      const object = event.object as SecretObject;
      if (event.type === "ERROR") {
        if (object.code === 410) throw new Expired(object.message ?? "resourceVersion too old");
        throw new KubeApiError(`watch Secret ${this.name}`, object.code ?? 500, JSON.stringify(object));
      }
      if (object.metadata?.resourceVersion) resourceVersion = object.metadata.resourceVersion;
      if (event.type === "ADDED" || event.type === "MODIFIED") deliver(object);
      // DELETED: the operator deletes it with the proxy; keep serving the last config meanwhile.
    };
    // A function: the loop's condition would otherwise narrow signal.aborted to false below.
    const stopped = (): boolean => signal.aborted;
    while (!stopped()) {
      try {
        if (resourceVersion === undefined) {
          const fresh = await this.read();
          resourceVersion = fresh.metadata?.resourceVersion ?? "";
          deliver(fresh);
        }
        const query = new URLSearchParams({
          fieldSelector: `metadata.name=${this.name}`,
          watch: "true",
          resourceVersion,
          allowWatchBookmarks: "true",
          timeoutSeconds: String(this.watchSeconds),
        });
        const started = Date.now();
        await this.api.watch(`${collection}?${query.toString()}`, onEvent, { signal, idleMs: this.idleMs });
        // Ended by the server (its timeoutSeconds, or a restart): resume from where it was, at
        // once unless it ends every watch as soon as it opens.
        if (Date.now() - started < QUICK_END_MS) await pause(this.retryMs, signal);
      } catch (error) {
        if (stopped()) return;
        if (error instanceof Expired || (error instanceof KubeApiError && error.status === 410)) {
          this.log.info({ secret: this.name }, "ingress Secret watch expired; reading it again");
          resourceVersion = undefined;
          continue;
        }
        this.log.warn({ err: error, secret: this.name, retryInMs: this.retryMs }, "ingress Secret watch failed; restarting");
        await pause(this.retryMs, signal);
      }
    }
  }
}
