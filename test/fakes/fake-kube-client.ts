// An in-memory KubeClient for fast reconciler tests: objects keyed by kind/namespace/name, a
// resourceVersion per write (merge patches that name a stale one conflict, like the API server),
// equality label selectors, and a log of every write so tests can prove a reconcile was a no-op.
import type { KubernetesObject, V1ServiceStatus } from "@kubernetes/client-node";
import { KubeApiError, type CollectionOptions, type DeleteOptions, type KubeClient, type ListOptions, type ObjectRef } from "../../src/kube/kube-client.ts";

type Stored = KubernetesObject & { status?: unknown; [key: string]: unknown };

const keyOf = (ref: { kind?: string | undefined; namespace?: string | undefined; name?: string | undefined }): string => `${ref.kind ?? ""}/${ref.namespace ?? ""}/${ref.name ?? ""}`;
const clone = <T>(value: T): T => structuredClone(value);
/** The store holds plain JSON; callers see it as whatever KubernetesObject type they asked for. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- a typed view of JSON
const as = <T>(value: unknown): T => value as T;

function matches(labels: Record<string, string> | undefined, selector: string | undefined): boolean {
  if (!selector) return true;
  return selector.split(",").every((term) => {
    const [k, v] = term.split("=");
    return labels?.[k ?? ""] === v;
  });
}

export class FakeKubeClient implements KubeClient {
  readonly objects = new Map<string, Stored>();
  readonly writes: string[] = [];
  /** Every get of an object that did not exist, as "Kind/namespace/name": through the operator's cache, each is a request (a 404). */
  readonly misses: string[] = [];
  private version = 1;

  /** Puts an object in the store as if a user created it. */
  seed<T extends KubernetesObject>(object: T): T {
    const stored = as<Stored>(clone(object));
    stored.metadata = { ...stored.metadata, resourceVersion: String(this.version++), uid: `uid-${this.version}`, generation: 1 };
    this.objects.set(keyOf({ kind: stored.kind, namespace: stored.metadata.namespace, name: stored.metadata.name }), stored);
    return as<T>(clone(stored));
  }

  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- callers name the kind's type
  find<T extends KubernetesObject>(kind: string, namespace: string, name: string): T | undefined {
    const found = this.objects.get(keyOf({ kind, namespace, name }));
    return found && (as<T>(clone(found)));
  }

  ofKind(kind: string): Stored[] {
    return [...this.objects.values()].filter((o) => o.kind === kind);
  }

  private store(object: Stored, verb: string): Stored {
    object.metadata = { ...object.metadata, resourceVersion: String(this.version++) };
    this.objects.set(keyOf({ kind: object.kind, namespace: object.metadata.namespace, name: object.metadata.name }), object);
    this.writes.push(`${verb} ${keyOf({ kind: object.kind, namespace: object.metadata.namespace, name: object.metadata.name })}`);
    return clone(object);
  }

  get<T extends KubernetesObject>(ref: ObjectRef): Promise<T | undefined> {
    const found = this.find<T>(ref.kind, ref.namespace ?? "", ref.name);
    if (!found) this.misses.push(keyOf(ref));
    return Promise.resolve(found);
  }

  list<T extends KubernetesObject>(_apiVersion: string, kind: string, options: ListOptions = {}): Promise<T[]> {
    const items = this.ofKind(kind).filter((o) => (options.namespace === undefined || o.metadata?.namespace === options.namespace) && matches(o.metadata?.labels, options.labelSelector));
    return Promise.resolve(items.map((o) => as<T>(clone(o))));
  }

  apply<T extends KubernetesObject>(object: T): Promise<T> {
    // As the API server's RBAC escalation check for a writer without `bind` (the operator): a
    // binding to a Role it cannot read the rules of is refused.
    const roleRef = (object as { roleRef?: { kind?: string; name?: string } }).roleRef;
    if (object.kind === "RoleBinding" && roleRef?.kind === "Role" && !this.find("Role", object.metadata?.namespace ?? "", roleRef.name ?? "")) {
      return Promise.reject(new KubeApiError(`rolebindings "${object.metadata?.name ?? ""}" is forbidden: role "${roleRef.name ?? ""}" not found`, 403));
    }
    const existing = this.find<Stored>(object.kind ?? "", object.metadata?.namespace ?? "", object.metadata?.name ?? "");
    const next = as<Stored>({ ...(existing ?? {}), ...clone(object), metadata: { ...existing?.metadata, ...clone(object.metadata) } });
    if (existing && JSON.stringify({ ...existing, metadata: { ...existing.metadata, resourceVersion: "" } }) === JSON.stringify({ ...next, metadata: { ...next.metadata, resourceVersion: "" } })) {
      return Promise.resolve(as<T>(clone(existing))); // SSA that changes nothing writes nothing
    }
    // Checked when sent, stored a tick later: writes sent together are concurrent, as on the wire.
    return Promise.resolve().then(() => as<T>(this.store(next, "apply")));
  }

  create<T extends KubernetesObject>(object: T): Promise<T | "exists"> {
    if (this.find(object.kind ?? "", object.metadata?.namespace ?? "", object.metadata?.name ?? "")) return Promise.resolve("exists");
    const stored = as<Stored>(clone(object));
    const stringData = stored["stringData"] as Record<string, string> | undefined;
    if (stringData) {
      stored["data"] = Object.fromEntries(Object.entries(stringData).map(([k, v]) => [k, Buffer.from(v).toString("base64")]));
      delete stored["stringData"];
    }
    stored.metadata = { ...stored.metadata, uid: `uid-${this.version}` };
    return Promise.resolve(as<T>(this.store(stored, "create")));
  }

  mergePatch(ref: ObjectRef, patch: { metadata?: { resourceVersion?: string | undefined; [k: string]: unknown }; [k: string]: unknown }): Promise<void> {
    const existing = this.find<Stored>(ref.kind, ref.namespace ?? "", ref.name);
    if (!existing) return Promise.reject(new KubeApiError("not found", 404));
    const wanted = patch.metadata?.resourceVersion;
    if (wanted !== undefined && wanted !== existing.metadata?.resourceVersion) return Promise.reject(new KubeApiError("conflict", 409));
    const next = as<Stored>(mergePatchOf(clone(existing), clone(patch)));
    this.store(next, "patch");
    return Promise.resolve();
  }

  applyServiceStatus(namespace: string, name: string, status: V1ServiceStatus): Promise<void> {
    const existing = this.find<Stored>("Service", namespace, name);
    if (!existing) return Promise.reject(new KubeApiError("not found", 404));
    // Our field manager owns exactly these fields: what it no longer applies disappears.
    existing.status = clone(status);
    this.store(existing, "status");
    return Promise.resolve();
  }

  delete(ref: ObjectRef, options: DeleteOptions = {}): Promise<boolean> {
    const key = keyOf({ kind: ref.kind, namespace: ref.namespace, name: ref.name });
    if (options.uid !== undefined && this.objects.get(key)?.metadata?.uid !== options.uid) return Promise.resolve(false);
    const existed = this.objects.delete(key);
    if (existed) this.writes.push(`delete ${key}`);
    return Promise.resolve(existed);
  }

  deleteCollection(_apiVersion: string, kind: string, options: CollectionOptions): Promise<number> {
    const doomed = this.ofKind(kind).filter((o) => o.metadata?.namespace === options.namespace && matches(o.metadata.labels, options.labelSelector));
    for (const object of doomed) {
      const key = keyOf({ kind, namespace: options.namespace, name: object.metadata?.name ?? "" });
      this.objects.delete(key);
      this.writes.push(`delete ${key}`);
    }
    return Promise.resolve(doomed.length);
  }
}

/** RFC 7386 JSON merge patch, as the API server applies it: objects merge, null removes, the rest replaces. */
function mergePatchOf(target: unknown, patch: unknown): unknown {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch;
  const base: Record<string, unknown> = typeof target === "object" && target !== null && !Array.isArray(target) ? (target as Record<string, unknown>) : {};
  const merged = { ...base, ...Object.fromEntries(Object.entries(patch).map(([key, value]) => [key, mergePatchOf(base[key], value)])) };
  return Object.fromEntries(Object.entries(merged).filter(([key]) => (patch as Record<string, unknown>)[key] !== null));
}
