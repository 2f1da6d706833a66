// Reads from the operator's watch caches, writes through the API. Every kind the operator
// watches is registered here with the scope of its watch (namespace, label selector), so a read
// inside that scope costs no request. A get that misses the cache asks the API server (the
// object may be newer than the watch, or outside its label selector) unless the caller names
// the labels the object would carry and the watch selects by them: then the miss is an answer,
// except for an object this client created that its watch has not shown yet (read your own
// writes; ADR 0032). A list marked `consistent` always asks (cleanup must see what was just
// created), and an apply whose every field already holds in the cached object is not sent: a
// steady reconcile makes no requests.
import type { KubernetesObject, V1ServiceStatus } from "@kubernetes/client-node";
import type { CollectionOptions, DeleteOptions, KubeClient, ListOptions, ObjectRef } from "./kube-client.ts";

/** What a watch keeps (ObjectStore in watch.ts). */
export interface CacheStore<T extends KubernetesObject = KubernetesObject> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
}

export interface CacheScope {
  readonly apiVersion: string;
  readonly kind: string;
  /** The watched namespace; undefined for a watch across all namespaces. */
  readonly namespace?: string;
  /** The watch's label selector, equality terms only ("a=b,c=d"). */
  readonly labelSelector?: string;
}

interface Registered {
  readonly scope: CacheScope;
  readonly labels: ReadonlyMap<string, string>;
  readonly store: CacheStore;
}

export interface CacheStats {
  hits: number;
  misses: number;
  /** Misses answered by the cache: the object does not exist (as far as the watch has seen). */
  absent: number;
  appliesSkipped: number;
}

export class CachedKubeClient implements KubeClient {
  private readonly live: KubeClient;
  private readonly caches: Registered[] = [];
  readonly stats: CacheStats = { hits: 0, misses: 0, absent: 0, appliesSkipped: 0 };
  /** Objects created through this client that their cache has not shown yet ("apiVersion kind ns/name"). */
  private readonly unseenCreates = new Set<string>();

  constructor(live: KubeClient) {
    this.live = live;
  }

  /** Serves reads within scope from store from now on (in place of an earlier store for the same scope). */
  register(scope: CacheScope, store: CacheStore): void {
    const labels = parseEqualitySelector(scope.labelSelector ?? "");
    if (!labels) throw new Error(`cache for ${scope.kind}: only equality label selectors are supported, not "${scope.labelSelector ?? ""}"`);
    const same = (other: CacheScope): boolean =>
      other.apiVersion === scope.apiVersion && other.kind === scope.kind && other.namespace === scope.namespace && (other.labelSelector ?? "") === (scope.labelSelector ?? "");
    const index = this.caches.findIndex((cache) => same(cache.scope));
    if (index >= 0) this.caches.splice(index, 1, { scope, labels, store });
    else this.caches.push({ scope, labels, store });
  }

  async get<T extends KubernetesObject>(ref: ObjectRef): Promise<T | undefined> {
    const key = createdKey(ref.apiVersion, ref.kind, ref.namespace, ref.name);
    // Labels named: the cache whose watch would see such an object, as for a list.
    const labels = ref.labels ? new Map(Object.entries(ref.labels)) : undefined;
    const cache = this.cacheFor(ref.apiVersion, ref.kind, ref.namespace, labels);
    const cached = cache?.store.get(ref.name, ref.namespace) as T | undefined;
    if (cached) {
      this.stats.hits++;
      this.unseenCreates.delete(key);
      return cached;
    }
    if (cache && labels && !this.unseenCreates.has(key)) {
      this.stats.absent++;
      return undefined;
    }
    this.stats.misses++;
    return this.live.get<T>(ref);
  }

  async list<T extends KubernetesObject>(apiVersion: string, kind: string, options: ListOptions = {}): Promise<T[]> {
    const wanted = parseEqualitySelector(options.labelSelector ?? "");
    const cache = options.consistent || !wanted ? undefined : this.cacheFor(apiVersion, kind, options.namespace, wanted);
    if (!cache || !wanted) {
      this.stats.misses++;
      return this.live.list<T>(apiVersion, kind, options);
    }
    this.stats.hits++;
    return (cache.store.list(options.namespace) as readonly T[]).filter((object) => matches(object, wanted));
  }

  async apply<T extends KubernetesObject>(object: T): Promise<T> {
    const cached = this.cacheFor(object.apiVersion ?? "", object.kind ?? "", object.metadata?.namespace)?.store.get(object.metadata?.name ?? "", object.metadata?.namespace);
    if (cached && holds(object, cached)) {
      this.stats.appliesSkipped++;
      return cached as T;
    }
    return this.live.apply(object);
  }

  async create<T extends KubernetesObject>(object: T): Promise<T | "exists"> {
    // Before the request: once it is sent, the object may exist whatever the answer.
    this.unseenCreates.add(createdKey(object.apiVersion ?? "", object.kind ?? "", object.metadata?.namespace, object.metadata?.name ?? ""));
    return this.live.create(object);
  }

  mergePatch(ref: ObjectRef, patch: object): Promise<void> {
    return this.live.mergePatch(ref, patch);
  }

  applyServiceStatus(namespace: string, name: string, status: V1ServiceStatus): Promise<void> {
    return this.live.applyServiceStatus(namespace, name, status);
  }

  delete(ref: ObjectRef, options?: DeleteOptions): Promise<boolean> {
    return this.live.delete(ref, options);
  }

  deleteCollection(apiVersion: string, kind: string, options: CollectionOptions): Promise<number> {
    return this.live.deleteCollection(apiVersion, kind, options);
  }

  /**
   * The cache whose watch sees every object the read could return: same kind, a namespace it
   * covers, and (for lists) a selector at least as narrow as the watch's.
   */
  private cacheFor(apiVersion: string, kind: string, namespace: string | undefined, wanted?: ReadonlyMap<string, string>): Registered | undefined {
    return this.caches.find(({ scope, labels }) => {
      if (scope.apiVersion !== apiVersion || scope.kind !== kind) return false;
      if (scope.namespace !== undefined && scope.namespace !== namespace) return false;
      if (!wanted) return true;
      return [...labels].every(([key, value]) => wanted.get(key) === value);
    });
  }
}

function createdKey(apiVersion: string, kind: string, namespace: string | undefined, name: string): string {
  return `${apiVersion} ${kind} ${namespace ?? ""}/${name}`;
}

/** "a=b,c==d" as a map; undefined for anything but equality terms (set-based, !=, existence). */
export function parseEqualitySelector(selector: string): Map<string, string> | undefined {
  const labels = new Map<string, string>();
  for (const term of selector.split(",").map((t) => t.trim()).filter(Boolean)) {
    const match = /^([^=!\s]+)\s*==?\s*([^=!\s]*)$/.exec(term);
    if (!match?.[1] || match[2] === undefined) return undefined;
    labels.set(match[1], match[2]);
  }
  return labels;
}

function matches(object: KubernetesObject, wanted: ReadonlyMap<string, string>): boolean {
  const labels = object.metadata?.labels ?? {};
  return [...wanted].every(([key, value]) => labels[key] === value);
}

/**
 * Whether every field of desired already has that value in actual. Objects may carry more keys
 * (defaults the API server filled in); arrays must match element by element, so a removed
 * list entry (an env var, a port) still gets applied.
 */
export function holds(desired: unknown, actual: unknown): boolean {
  if (Array.isArray(desired)) {
    return Array.isArray(actual) && actual.length === desired.length && desired.every((item, i) => holds(item, actual[i]));
  }
  if (desired !== null && typeof desired === "object") {
    if (actual === null || typeof actual !== "object" || Array.isArray(actual)) return false;
    const record = actual as Record<string, unknown>;
    return Object.entries(desired).every(([key, value]) => value === undefined || holds(value, record[key]));
  }
  return desired === actual;
}
