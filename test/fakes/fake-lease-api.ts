// An in-memory Lease API with the API server's optimistic concurrency (a write with a stale
// resourceVersion gets 409) and injectable failures: 403s and calls that never answer.
import type { KubernetesObject } from "@kubernetes/client-node";
import { KubeApiError, type KubeClient, type ObjectRef } from "../../src/kube/kube-client.ts";

type Failure = "forbidden" | "hang";

export class FakeLeaseApi {
  private lease: (KubernetesObject & { spec?: Record<string, unknown> }) | undefined;
  private version = 0;
  /** Every successful write, in order. */
  readonly writes: { by: string; spec: Record<string, unknown> }[] = [];

  /** The Lease as stored (a copy). */
  get stored(): (KubernetesObject & { spec?: Record<string, unknown> }) | undefined {
    return this.lease && structuredClone(this.lease);
  }

  /** The stored Lease's spec field (undefined without a Lease). */
  field(name: string): unknown {
    return this.lease?.spec?.[name];
  }

  /** Overwrites the Lease's spec as another writer would (bumps the resourceVersion). */
  put(spec: Record<string, unknown>): void {
    this.version++;
    this.lease = { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: "lease", namespace: "ns", resourceVersion: String(this.version) }, spec: structuredClone(spec) };
  }

  /** A KubeClient for one replica; `failure()` decides, per call, whether that replica's call fails. */
  client(who: string, failure: () => Failure | undefined = () => undefined): KubeClient {
    const gate = async (): Promise<void> => {
      const mode = failure();
      if (mode === "forbidden") throw new KubeApiError("HTTP 403: forbidden", 403);
      if (mode === "hang") await new Promise<never>(() => undefined);
    };
    const unsupported = (): never => {
      throw new Error("not part of the fake Lease API");
    };
    return {
      get: async <T extends KubernetesObject>(): Promise<T | undefined> => {
        await gate();
        return this.stored as T | undefined;
      },
      create: async <T extends KubernetesObject>(object: T): Promise<T | "exists"> => {
        await gate();
        if (this.lease) return "exists";
        this.put((object as { spec?: Record<string, unknown> }).spec ?? {});
        this.writes.push({ by: who, spec: this.stored?.spec ?? {} });
        return this.stored as T;
      },
      mergePatch: async (_ref: ObjectRef, patch: object): Promise<void> => {
        await gate();
        const { metadata, spec } = patch as { metadata?: { resourceVersion?: string }; spec?: Record<string, unknown> };
        if (!this.lease) throw new KubeApiError("HTTP 404", 404);
        if (metadata?.resourceVersion !== undefined && metadata.resourceVersion !== this.lease.metadata?.resourceVersion) throw new KubeApiError("HTTP 409: conflict", 409);
        this.put({ ...this.lease.spec, ...spec });
        this.writes.push({ by: who, spec: this.stored?.spec ?? {} });
      },
      list: unsupported,
      apply: unsupported,
      applyServiceStatus: unsupported,
      delete: unsupported,
      deleteCollection: unsupported,
    };
  }
}
