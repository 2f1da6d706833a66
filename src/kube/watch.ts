// Watches that survive: client-node's informer stops on any error other than a 410, so this
// restarts it with backoff (1 s doubling to 30 s), which also rides out API server restarts.
// Every add/update/delete and every relist calls onObject, which maps objects to work-queue keys.
import { makeInformer, type KubeConfig, type KubernetesListObject, type KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "../shared/log.ts";

export interface WatchOptions<T extends KubernetesObject> {
  readonly kc: KubeConfig;
  /** The watch path, e.g. /api/v1/services or /api/v1/namespaces/x/secrets. */
  readonly path: string;
  readonly list: () => Promise<KubernetesListObject<T>>;
  readonly labelSelector?: string;
  readonly onObject: (object: T) => void;
  readonly log: Logger;
}

export interface Watch {
  /** Resolves once a list has succeeded and its objects were delivered (never before). */
  readonly synced: Promise<void>;
  stop(): Promise<void>;
}

export function startWatch<T extends KubernetesObject>(options: WatchOptions<T>): Watch {
  let markSynced: () => void = () => undefined;
  const synced = new Promise<void>((resolve) => (markSynced = resolve));
  // The informer's start() resolves even when its list failed, so "synced" is the first list
  // that succeeded; setImmediate lets the informer deliver that list's objects first.
  const list = async (): Promise<KubernetesListObject<T>> => {
    const result = await options.list();
    setImmediate(markSynced);
    return result;
  };
  const informer = makeInformer<T>(options.kc, options.path, list, options.labelSelector);
  let stopped = false;
  let delayMs = 1_000;
  let timer: NodeJS.Timeout | undefined;
  for (const verb of ["add", "update", "delete"] as const) {
    informer.on(verb, (object) => {
      options.onObject(object);
    });
  }
  informer.on("connect", () => {
    delayMs = 1_000;
    // A (re)connect relists: every object is looked at again, so nothing missed while
    // disconnected stays unreconciled.
    for (const object of informer.list()) options.onObject(object);
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
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await informer.stop();
    },
  };
}
