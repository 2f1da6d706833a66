// The operator's only way to the Kubernetes API: a narrow interface, so reconcile logic is
// tested against an in-memory fake and the real implementation lives in one file.
import type { KubernetesObject, V1ServiceStatus } from "@kubernetes/client-node";

export interface ObjectRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
  /**
   * Labels the object carries if it exists (one the operator makes and labels itself): a watch
   * selecting by them sees it, so its cache may answer that it does not exist.
   */
  readonly labels?: Readonly<Record<string, string>>;
}

export interface ListOptions {
  readonly namespace?: string;
  readonly labelSelector?: string;
  /** Read from the API server even where a watch cache could answer (cleanup must see everything). */
  readonly consistent?: boolean;
}

export interface DeleteOptions {
  /** Delete only this incarnation of the object: a stale read must not remove its successor. */
  readonly uid?: string;
}

export interface KubeClient {
  get<T extends KubernetesObject>(ref: ObjectRef): Promise<T | undefined>;
  list<T extends KubernetesObject>(apiVersion: string, kind: string, options?: ListOptions): Promise<T[]>;
  /** Server-side apply with the operator's field manager (forced: the operator owns these fields). */
  apply<T extends KubernetesObject>(object: T): Promise<T>;
  /** Creates the object; "exists" if it already does (used where creation must happen once). */
  create<T extends KubernetesObject>(object: T): Promise<T | "exists">;
  /** JSON merge patch; include metadata.resourceVersion for an optimistic-concurrency check. */
  mergePatch(ref: ObjectRef, patch: object): Promise<void>;
  /** Server-side apply of the fields the operator owns in a Service's status. */
  applyServiceStatus(namespace: string, name: string, status: V1ServiceStatus): Promise<void>;
  /** Deletes the object; false if it was already gone. */
  delete(ref: ObjectRef, options?: DeleteOptions): Promise<boolean>;
  /**
   * Deletes every object of a kind matching the selector in one request (the API server's
   * deletecollection), whatever a cache holds; resolves to how many went.
   */
  deleteCollection(apiVersion: string, kind: string, options: CollectionOptions): Promise<number>;
}

export interface CollectionOptions {
  readonly namespace: string;
  /** Required: a collection delete without one would take every object of the kind. */
  readonly labelSelector: string;
}

/** A failed API call, classified by HTTP status (never by message text). */
export class KubeApiError extends Error {
  override readonly name = "KubeApiError";
  readonly status: number;

  constructor(message: string, status: number, options?: { cause?: unknown }) {
    super(message, options);
    this.status = status;
  }

  get isNotFound(): boolean {
    return this.status === 404;
  }

  get isConflict(): boolean {
    return this.status === 409;
  }
}

export function refOf(object: KubernetesObject): ObjectRef {
  return {
    apiVersion: object.apiVersion ?? "",
    kind: object.kind ?? "",
    name: object.metadata?.name ?? "",
    ...(object.metadata?.namespace ? { namespace: object.metadata.namespace } : {}),
  };
}

export function describeRef(ref: ObjectRef): string {
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ""}${ref.name}`;
}
