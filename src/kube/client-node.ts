// KubeClient on @kubernetes/client-node, the one module that imports it for the operator.
import {
  ApiException,
  CoreV1Api,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type V1ServiceStatus,
} from "@kubernetes/client-node";
import { KubeApiError, describeRef, refOf, type DeleteOptions, type KubeClient, type ListOptions, type ObjectRef } from "./kube-client.ts";

export const FIELD_MANAGER = "tailnet-operator";

function toKubeError(error: unknown, what: string): unknown {
  if (error instanceof ApiException) {
    const status = (error as ApiException<unknown>).code;
    let detail = "";
    try {
      detail = (JSON.parse(String((error as ApiException<unknown>).body)) as { message?: string }).message ?? "";
    } catch {
      // Not a Status body.
    }
    return new KubeApiError(`${what}: HTTP ${status}${detail ? `: ${detail}` : ""}`, status, { cause: error });
  }
  return error;
}

export class ClientNodeKubeClient implements KubeClient {
  private readonly objects: KubernetesObjectApi;
  private readonly core: CoreV1Api;

  constructor(kc: KubeConfig) {
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  async get<T extends KubernetesObject>(ref: ObjectRef): Promise<T | undefined> {
    try {
      return await this.objects.read<T>({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) } });
    } catch (error) {
      const converted = toKubeError(error, `get ${describeRef(ref)}`);
      if (converted instanceof KubeApiError && converted.isNotFound) return undefined;
      throw converted;
    }
  }

  async list<T extends KubernetesObject>(apiVersion: string, kind: string, options: ListOptions = {}): Promise<T[]> {
    try {
      const list = await this.objects.list<T>(apiVersion, kind, options.namespace, undefined, undefined, undefined, undefined, options.labelSelector);
      return list.items;
    } catch (error) {
      throw toKubeError(error, `list ${kind}`);
    }
  }

  async apply<T extends KubernetesObject>(object: T): Promise<T> {
    try {
      return await this.objects.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    } catch (error) {
      throw toKubeError(error, `apply ${describeRef(refOf(object))}`);
    }
  }

  async create<T extends KubernetesObject>(object: T): Promise<T | "exists"> {
    try {
      return await this.objects.create(object, undefined, undefined, FIELD_MANAGER);
    } catch (error) {
      const converted = toKubeError(error, `create ${describeRef(refOf(object))}`);
      if (converted instanceof KubeApiError && converted.isConflict) return "exists";
      throw converted;
    }
  }

  async mergePatch(ref: ObjectRef, patch: object): Promise<void> {
    const { metadata, ...rest } = patch as { metadata?: object };
    const spec = { ...rest, apiVersion: ref.apiVersion, kind: ref.kind, metadata: { ...metadata, name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) } };
    try {
      await this.objects.patch(spec, undefined, undefined, FIELD_MANAGER, undefined, PatchStrategy.MergePatch);
    } catch (error) {
      throw toKubeError(error, `patch ${describeRef(ref)}`);
    }
  }

  async applyServiceStatus(namespace: string, name: string, status: V1ServiceStatus): Promise<void> {
    try {
      await this.core.patchNamespacedServiceStatus(
        { name, namespace, body: { apiVersion: "v1", kind: "Service", metadata: { name, namespace }, status }, fieldManager: FIELD_MANAGER, force: true },
        setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply),
      );
    } catch (error) {
      throw toKubeError(error, `apply status of Service ${namespace}/${name}`);
    }
  }

  async delete(ref: ObjectRef, options: DeleteOptions = {}): Promise<boolean> {
    const spec = { apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) } };
    const body = options.uid ? { preconditions: { uid: options.uid } } : undefined;
    try {
      await this.objects.delete(spec, undefined, undefined, undefined, undefined, "Background", body);
      return true;
    } catch (error) {
      const converted = toKubeError(error, `delete ${describeRef(ref)}`);
      // 409: the precondition failed, so the object we meant is gone already.
      if (converted instanceof KubeApiError && (converted.isNotFound || (options.uid !== undefined && converted.isConflict))) return false;
      throw converted;
    }
  }
}
