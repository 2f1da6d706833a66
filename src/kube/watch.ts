// Watches that survive, each keeping a cache of what it saw: client-node's informer stops on any
// error other than a 410, so this restarts it with backoff (1 s doubling to 30 s), which also
// rides out API server restarts. A restart resumes from the last resourceVersion; only a 410
// Gone makes the informer list again, and then only what changed is reported. Nothing is
// re-queued on a reconnect: a key that still needs work is in the work queue already.
import { makeInformer, type KubeConfig, type KubernetesListObject, type KubernetesObject, type KubernetesObjectApi } from "@kubernetes/client-node";
import type { Logger } from "../shared/log.ts";
import type { CacheStore } from "./cached-kube-client.ts";

export interface WatchOptions<T extends KubernetesObject> {
  readonly kc: KubeConfig;
  /** The watch path, e.g. /api/v1/services or /api/v1/namespaces/x/secrets. */
  readonly path: string;
  readonly list: () => Promise<KubernetesListObject<T>>;
  readonly labelSelector?: string;
  readonly onObject: (object: T) => void;
  readonly log: Logger;
  /** Drops more of each object before it is cached (for a watch whose store nobody reads). */
  readonly slim?: (object: T) => void;
}

export interface Watch<T extends KubernetesObject = KubernetesObject> {
  /** Resolves once a list has succeeded and its objects were delivered (never before). */
  readonly synced: Promise<void>;
  /** The objects as last seen (read-only: they are the cache's own). */
  readonly store: CacheStore<T>;
  stop(): Promise<void>;
}

export function startWatch<T extends KubernetesObject>(options: WatchOptions<T>): Watch<T> {
  const slim = (object: T): void => {
    dropManagedFields(object);
    options.slim?.(object);
  };
  let markSynced: () => void = () => undefined;
  const synced = new Promise<void>((resolve) => (markSynced = resolve));
  // The informer's start() resolves even when its list failed, so "synced" is the first list
  // that succeeded; setImmediate lets the informer deliver that list's objects first.
  const list = async (): Promise<KubernetesListObject<T>> => {
    const result = await options.list();
    for (const item of result.items) slim(item);
    setImmediate(markSynced);
    return result;
  };
  const informer = makeInformer<T>(options.kc, options.path, list, options.labelSelector);
  let stopped = false;
  let delayMs = 1_000;
  let timer: NodeJS.Timeout | undefined;
  // The informer stores the very object it then hands to its handlers, and has no transform hook:
  // this handler, registered first, is where watched objects are slimmed before anyone reads them.
  informer.on("add", slim);
  informer.on("update", slim);
  for (const verb of ["add", "update", "delete"] as const) {
    informer.on(verb, (object) => {
      options.onObject(object);
    });
  }
  informer.on("connect", () => {
    delayMs = 1_000;
  });
  informer.on("error", (error) => {
    if (stopped) return;
    options.log.warn({ err: error, path: options.path, retryInMs: delayMs }, "watch failed; restarting");
    timer = setTimeout(() => {
      if (!stopped) informer.start().catch(() => undefined);
    }, delayMs);
    delayMs = Math.min(delayMs * 2, 30_000);
  });
  informer.start().catch((error: unknown) => {
    options.log.warn({ err: error, path: options.path }, "watch failed to start");
  });
  return {
    synced,
    store: informer,
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await informer.stop();
    },
  };
}

/**
 * managedFields (server-side apply's field ownership) is often the larger part of an object and is
 * never read by the operator: caches drop it, as controller-runtime users do with a cache transform.
 */
export function dropManagedFields(object: KubernetesObject): void {
  if (object.metadata?.managedFields) delete object.metadata.managedFields;
}

/** A LIST in pages (limit/continue), so a large cluster is never one huge response. */
export async function listInPages<T extends KubernetesObject>(
  objects: KubernetesObjectApi,
  query: { apiVersion: string; kind: string; namespace?: string; labelSelector?: string; pageSize?: number },
): Promise<KubernetesListObject<T>> {
  const items: T[] = [];
  let continueToken: string | undefined;
  let resourceVersion = "";
  do {
    const page = await objects.list<T>(query.apiVersion, query.kind, query.namespace, undefined, undefined, undefined, undefined, query.labelSelector, query.pageSize ?? 500, continueToken);
    // List items carry no apiVersion/kind; watch events do. Same shape for both in the cache.
    for (const item of page.items) items.push({ ...item, apiVersion: query.apiVersion, kind: query.kind });
    continueToken = page.metadata?._continue || undefined;
    resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
  } while (continueToken);
  return { apiVersion: "v1", kind: `${query.kind}List`, metadata: { resourceVersion }, items };
}
