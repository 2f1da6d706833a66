// Pure translation of a Pod spec into what the pod runner executes: the argv (from an image
// map, since there is no container runtime), the environment (as the kubelet resolves it) and
// the capability set. Anything it cannot emulate faithfully is refused with UnsupportedPodError.
import type { V1Container, V1Pod } from "@kubernetes/client-node";

export class UnsupportedPodError extends Error {
  override readonly name = "UnsupportedPodError";
}

/** What stands in for an image: its entrypoint, and directories of programs it contains. */
export interface ImageStandIn {
  readonly entrypoint: readonly string[];
  readonly path: readonly string[];
}

/** Maps a container image to its stand-in; undefined if the sandbox cannot run it. */
export type ImageMap = (image: string) => ImageStandIn | undefined;

/** Looks up Secrets and ConfigMaps in the Pod's namespace. */
export interface PodDataSource {
  secret(name: string): Promise<Record<string, string> | undefined>;
  configMap(name: string): Promise<Record<string, string> | undefined>;
}

/** The argv of a container: the image's entrypoint (or `command`, by name) followed by args. */
export function containerArgv(container: V1Container, images: ImageMap): string[] {
  const image = container.image ?? "";
  const entrypoint = images(image)?.entrypoint;
  if (!entrypoint) {
    throw new UnsupportedPodError(
      `container ${container.name}: image "${image}" has no stand-in in the sandbox (there is no container runtime); ` +
        "known images are this project's operator and proxy images",
    );
  }
  if (container.command?.length) {
    // A command naming the image's own program is fine; anything else would need the image.
    const program = container.command[0] ?? "";
    const entryName = (entrypoint.at(-1) ?? "").split("/").at(-1)?.replace(/\.[jt]s$/, "");
    if (program.split("/").at(-1) !== entryName) {
      throw new UnsupportedPodError(`container ${container.name}: command "${program}" is not the image's program ${entryName ?? ""}`);
    }
    return [...entrypoint, ...container.command.slice(1), ...(container.args ?? [])];
  }
  return [...entrypoint, ...(container.args ?? [])];
}

/** Resolves env and envFrom the way the kubelet does, including $(VAR) references. */
export async function resolveEnv(
  container: V1Container,
  pod: V1Pod,
  podIp: string,
  data: PodDataSource,
): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    const prefix = source.prefix ?? "";
    const name = source.secretRef?.name ?? source.configMapRef?.name ?? "";
    const values = source.secretRef ? await data.secret(name) : await data.configMap(name);
    const optional = source.secretRef?.optional ?? source.configMapRef?.optional ?? false;
    if (!values && !optional) throw new UnsupportedPodError(`envFrom: ${source.secretRef ? "Secret" : "ConfigMap"} ${name} not found`);
    for (const [key, value] of Object.entries(values ?? {})) env[prefix + key] = value;
  }
  for (const variable of container.env ?? []) {
    const from = variable.valueFrom;
    if (!from) {
      env[variable.name] = expandReferences(variable.value ?? "", env);
    } else if (from.fieldRef) {
      env[variable.name] = fieldValue(pod, podIp, from.fieldRef.fieldPath);
    } else if (from.secretKeyRef ?? from.configMapKeyRef) {
      const ref = from.secretKeyRef ?? from.configMapKeyRef ?? { key: "" };
      const kind = from.secretKeyRef ? "Secret" : "ConfigMap";
      const values = from.secretKeyRef ? await data.secret(ref.name ?? "") : await data.configMap(ref.name ?? "");
      const value = values?.[ref.key];
      if (value === undefined) {
        if (ref.optional) continue;
        throw new UnsupportedPodError(`env ${variable.name}: ${kind} ${ref.name ?? ""} key ${ref.key} not found`);
      }
      env[variable.name] = value;
    } else {
      throw new UnsupportedPodError(`env ${variable.name}: only value, fieldRef, secretKeyRef and configMapKeyRef are emulated`);
    }
  }
  return env;
}

/** $(NAME) becomes an earlier variable's value; $$(NAME) is a literal $(NAME); unknown stays. */
export function expandReferences(value: string, env: Readonly<Record<string, string>>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (match === "$$") return "$";
    return name !== undefined && name in env ? (env[name] ?? "") : match;
  });
}

export function fieldValue(pod: V1Pod, podIp: string, path: string): string {
  const labels = /^metadata\.labels\['(.+)'\]$/.exec(path);
  if (labels?.[1]) return pod.metadata?.labels?.[labels[1]] ?? "";
  const annotations = /^metadata\.annotations\['(.+)'\]$/.exec(path);
  if (annotations?.[1]) return pod.metadata?.annotations?.[annotations[1]] ?? "";
  switch (path) {
    case "metadata.name":
      return pod.metadata?.name ?? "";
    case "metadata.namespace":
      return pod.metadata?.namespace ?? "";
    case "metadata.uid":
      return pod.metadata?.uid ?? "";
    case "spec.nodeName":
      return pod.spec?.nodeName ?? "";
    case "spec.serviceAccountName":
      return pod.spec?.serviceAccountName ?? "default";
    case "status.podIP":
    case "status.podIPs":
      return podIp;
    case "status.hostIP":
      return podIp;
    default:
      throw new UnsupportedPodError(`fieldRef ${path} is not emulated`);
  }
}

/** The capabilities a container runtime grants by default (containerd's and Docker's set). */
export const DEFAULT_CAPABILITIES = [
  "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
  "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
] as const;

/** The capability set a container runs with, or "all" when privileged. */
export function containerCapabilities(container: V1Container): readonly string[] | "all" {
  const context = container.securityContext;
  if (context?.privileged) return "all";
  const normalise = (cap: string): string => cap.toUpperCase().replace(/^CAP_/, "");
  const drop = new Set((context?.capabilities?.drop ?? []).map(normalise));
  const base = drop.has("ALL") ? [] : DEFAULT_CAPABILITIES.filter((cap) => !drop.has(cap));
  return [...new Set([...base, ...(context?.capabilities?.add ?? []).map(normalise)])].sort();
}
