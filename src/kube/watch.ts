// Watches that survive, each keeping a cache of what it saw (client-go's reflector, in small):
// a paginated LIST, then a WATCH from its resourceVersion with bookmarks, renewed by the server
// (timeoutSeconds) rather than cut by the client. A watch that ends is resumed from the last
// resourceVersion seen; one that fails is restarted with backoff (1 s doubling to 30 s), which
// also rides out API server restarts. Only a 410 Gone (the resourceVersion is too old) makes it
// list again, and then only what changed is reported. Nothing is re-queued on a reconnect: a
// key that still needs work is in the work queue already.
import type { KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "../shared/log.ts";
import type { CacheStore } from "./cached-kube-client.ts";
import { KubeApiError } from "./kube-client.ts";
import type { RestClient, WatchEvent } from "./rest-client.ts";

export interface WatchOptions<T extends KubernetesObject> {
  readonly rest: RestClient;
  /** The collection path, e.g. /api/v1/services or /api/v1/namespaces/x/secrets. */
  readonly path: string;
  /** Set on listed objects (list items carry none), so cached objects look like watched ones. */
  readonly apiVersion: string;
  readonly kind: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly onObject: (object: T) => void;
  readonly log: Logger;
  /**
   * Drops more of each object before it is cached (for a watch whose store nobody reads). Returns
   * a copy without those fields rather than deleting them: see withoutManagedFields.
   */
  readonly slim?: (object: T) => T;
  /** Backoff after a failure (tests shorten it). */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** How long the server keeps one watch open (default: 5 to 10 minutes, spread as client-go does). */
  readonly timeoutSeconds?: number;
  readonly pageSize?: number;
}

export interface Watch<T extends KubernetesObject = KubernetesObject> {
  /** Resolves once a list has succeeded and its objects were delivered (never before). */
  readonly synced: Promise<void>;
  /** The objects as last seen (read-only: they are the cache's own). */
  readonly store: CacheStore<T>;
  stop(): Promise<void>;
}

/** Objects by namespace/name. */
export class ObjectStore<T extends KubernetesObject> implements CacheStore<T> {
  private readonly objects = new Map<string, T>();

  get(name: string, namespace?: string): T | undefined {
    return this.objects.get(`${namespace ?? ""}/${name}`);
  }

  list(namespace?: string): readonly T[] {
    const all = [...this.objects.values()];
    return namespace === undefined ? all : all.filter((object) => object.metadata?.namespace === namespace);
  }

  /** The object this replaces, if any. */
  set(object: T): T | undefined {
    const key = keyOf(object);
    const previous = this.objects.get(key);
    this.objects.set(key, object);
    return previous;
  }

  delete(object: T): void {
    this.objects.delete(keyOf(object));
  }

  keys(): string[] {
    return [...this.objects.keys()];
  }

  take(key: string): T | undefined {
    const object = this.objects.get(key);
    this.objects.delete(key);
    return object;
  }
}

function keyOf(object: KubernetesObject): string {
  return `${object.metadata?.namespace ?? ""}/${object.metadata?.name ?? ""}`;
}

/** A 410 Gone from the watch: its resourceVersion is no longer in the server's window. */
class Expired extends Error {}

export function startWatch<T extends KubernetesObject>(options: WatchOptions<T>): Watch<T> {
  const store = new ObjectStore<T>();
  const backoff = options.backoff ?? { initialMs: 1_000, maxMs: 30_000 };
  const slim = (object: T): T => {
    const lean = withoutManagedFields(object);
    return options.slim ? options.slim(lean) : lean;
  };
  let markSynced: () => void = () => undefined;
  const synced = new Promise<void>((resolve) => (markSynced = resolve));
  const stopping = new AbortController();
  // A function, not a property read: the compiler would take the flag as fixed between awaits.
  const stopped = (): boolean => stopping.signal.aborted;
  const selectors = { labelSelector: options.labelSelector, fieldSelector: options.fieldSelector };

  /** Lists, replaces the store's content, reports what differs; the list's resourceVersion. */
  const relist = async (): Promise<string> => {
    const listed = await options.rest.listAll(options.path, selectors, options.pageSize);
    if (stopped()) return "";
    const seen = new Set<string>();
    for (const item of listed.items) {
      const object = slim({ ...item, apiVersion: options.apiVersion, kind: options.kind } as T);
      seen.add(keyOf(object));
      const previous = store.set(object);
      if (previous?.metadata?.resourceVersion !== object.metadata?.resourceVersion || previous?.metadata?.uid !== object.metadata?.uid) options.onObject(object);
    }
    for (const key of store.keys()) {
      if (seen.has(key)) continue;
      const gone = store.take(key);
      if (gone) options.onObject(gone);
    }
    markSynced();
    return listed.resourceVersion;
  };

  const onEvent = (event: WatchEvent, resume: (resourceVersion: string) => void): void => {
    const object = event.object as T & { code?: number; message?: string };
    switch (event.type) {
      case "ADDED":
      case "MODIFIED": {
        const lean = slim(object);
        store.set(lean);
        options.onObject(lean);
        break;
      }
      case "DELETED":
        store.delete(object);
        options.onObject(slim(object));
        break;
      case "BOOKMARK":
        break;
      case "ERROR":
        if (object.code === 410) throw new Expired(object.message ?? "resourceVersion too old");
        throw new KubeApiError(`watch ${options.path}: ${object.message ?? "error event"}`, object.code ?? 500);
      default:
        return;
    }
    const resourceVersion = object.metadata?.resourceVersion;
    if (resourceVersion) resume(resourceVersion);
  };

  const loop = async (): Promise<void> => {
    let resourceVersion: string | undefined;
    let delayMs = backoff.initialMs;
    while (!stopped()) {
      try {
        if (resourceVersion === undefined) {
          resourceVersion = await relist();
          delayMs = backoff.initialMs;
        }
        const timeoutSeconds = options.timeoutSeconds ?? Math.floor(300 * (1 + Math.random()));
        await options.rest.watch(
          options.path,
          { ...selectors, watch: true, resourceVersion, allowWatchBookmarks: true, timeoutSeconds },
          (event) => {
            delayMs = backoff.initialMs;
            onEvent(event, (next) => (resourceVersion = next));
          },
          // The server ends the watch after timeoutSeconds and sends bookmarks meanwhile: silence
          // well past that is a dead connection.
          { signal: stopping.signal, idleMs: (timeoutSeconds + 30) * 1_000 },
        );
        // Ended by the server (its timeout, or a restart): resume from where it was.
        delayMs = backoff.initialMs;
      } catch (error) {
        if (stopped()) return;
        if (error instanceof Expired || (error instanceof KubeApiError && error.status === 410)) {
          options.log.info({ path: options.path }, "watch expired; listing again");
          resourceVersion = undefined;
          continue;
        }
        options.log.warn({ err: error, path: options.path, retryInMs: delayMs }, "watch failed; restarting");
        await sleep(delayMs, stopping.signal);
        delayMs = Math.min(delayMs * 2, backoff.maxMs);
      }
    }
  };
  const running = loop();
  return {
    synced,
    store,
    stop: async () => {
      stopping.abort();
      await running;
    },
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * managedFields (server-side apply's field ownership) is often the larger part of an object and is
 * never read by the operator: caches drop it, as controller-runtime users do with a cache transform.
 * The metadata is copied without it, not `delete`d from: V8 turns an object that loses a property
 * into a hash table, which for 12,000 cached objects was 5 MiB of the operator's heap.
 */
export function withoutManagedFields<T extends KubernetesObject>(object: T): T {
  if (!object.metadata?.managedFields) return object;
  const { managedFields, ...metadata } = object.metadata;
  return { ...object, metadata };
}
