// KubeClient over the operator's own REST transport (rest-client.ts): each method is one request
// (two the first time a kind's URL is discovered; list is one per page).
import type { KubernetesObject, V1ServiceStatus } from "@kubernetes/client-node";
import { KubeApiError, describeRef, refOf, type CollectionOptions, type DeleteOptions, type KubeClient, type ListOptions, type ObjectRef } from "./kube-client.ts";
import { METADATA_LIST, type RestClient } from "./rest-client.ts";

export const FIELD_MANAGER = "tailnet-operator";
export const APPLY_PATCH = "application/apply-patch+yaml";
export const MERGE_PATCH = "application/merge-patch+json";

export class HttpKubeClient implements KubeClient {
  private readonly rest: RestClient;

  constructor(rest: RestClient) {
    this.rest = rest;
  }

  async get<T extends KubernetesObject>(ref: ObjectRef): Promise<T | undefined> {
    try {
      return await this.rest.request<T>({ method: "GET", path: await this.rest.objectPath(ref), what: `get ${describeRef(ref)}` });
    } catch (error) {
      if (error instanceof KubeApiError && error.isNotFound) return undefined;
      throw error;
    }
  }

  async list<T extends KubernetesObject>(apiVersion: string, kind: string, options: ListOptions = {}): Promise<T[]> {
    const path = await this.rest.objectPath({ apiVersion, kind, namespace: options.namespace });
    const { items } = await this.rest.listAll(path, { labelSelector: options.labelSelector });
    // List items carry no apiVersion/kind; callers pass them on as refs (refOf), so they get them.
    return items.map((item) => ({ ...item, apiVersion, kind }) as T);
  }

  async apply<T extends KubernetesObject>(object: T): Promise<T> {
    const ref = refOf(object);
    return this.rest.request<T>({
      method: "PATCH",
      path: await this.rest.objectPath(ref),
      query: { fieldManager: FIELD_MANAGER, force: true },
      body: object,
      contentType: APPLY_PATCH,
      what: `apply ${describeRef(ref)}`,
    });
  }

  async create<T extends KubernetesObject>(object: T): Promise<T | "exists"> {
    const ref = refOf(object);
    try {
      return await this.rest.request<T>({
        method: "POST",
        path: await this.rest.objectPath({ ...ref, name: undefined }),
        query: { fieldManager: FIELD_MANAGER },
        body: object,
        what: `create ${describeRef(ref)}`,
      });
    } catch (error) {
      if (error instanceof KubeApiError && error.isConflict) return "exists";
      throw error;
    }
  }

  async mergePatch(ref: ObjectRef, patch: object): Promise<void> {
    await this.rest.request({
      method: "PATCH",
      path: await this.rest.objectPath(ref),
      query: { fieldManager: FIELD_MANAGER },
      body: patch,
      contentType: MERGE_PATCH,
      what: `patch ${describeRef(ref)}`,
    });
  }

  async applyServiceStatus(namespace: string, name: string, status: V1ServiceStatus): Promise<void> {
    await this.rest.request({
      method: "PATCH",
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/services/${encodeURIComponent(name)}/status`,
      query: { fieldManager: FIELD_MANAGER, force: true },
      body: { apiVersion: "v1", kind: "Service", metadata: { name, namespace }, status },
      contentType: APPLY_PATCH,
      what: `apply status of Service ${namespace}/${name}`,
    });
  }

  async delete(ref: ObjectRef, options: DeleteOptions = {}): Promise<boolean> {
    try {
      await this.rest.request({
        method: "DELETE",
        path: await this.rest.objectPath(ref),
        body: { apiVersion: "v1", kind: "DeleteOptions", propagationPolicy: "Background", ...(options.uid ? { preconditions: { uid: options.uid } } : {}) },
        what: `delete ${describeRef(ref)}`,
      });
      return true;
    } catch (error) {
      // 409: the precondition failed, so the object we meant is gone already.
      if (error instanceof KubeApiError && (error.isNotFound || (options.uid !== undefined && error.isConflict))) return false;
      throw error;
    }
  }

  async deleteCollection(apiVersion: string, kind: string, options: CollectionOptions): Promise<number> {
    if (options.labelSelector === "") throw new Error(`refusing to delete every ${kind} in ${options.namespace}: no label selector`);
    const deleted = await this.rest.request<{ items?: unknown[] }>({
      method: "DELETE",
      path: await this.rest.objectPath({ apiVersion, kind, namespace: options.namespace }),
      query: { labelSelector: options.labelSelector },
      body: { apiVersion: "v1", kind: "DeleteOptions", propagationPolicy: "Background" },
      // The answer lists what was deleted; only its length is used.
      accept: METADATA_LIST,
      what: `delete ${kind} in ${options.namespace} matching ${options.labelSelector}`,
    });
    return deleted.items?.length ?? 0;
  }
}
