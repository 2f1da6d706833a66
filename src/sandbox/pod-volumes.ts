// Materialises a Pod's volumes as directories the pod runner bind-mounts into the container:
// Secret and ConfigMap contents, emptyDirs, and the service-account token directory the
// kubelet projects at /var/run/secrets/kubernetes.io/serviceaccount.
import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { V1Pod, V1Volume } from "@kubernetes/client-node";
import { UnsupportedPodError, type PodDataSource } from "./pod-spec.ts";

export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Writes a file atomically, so a process re-reading a refreshed volume never sees half a file. */
async function writeAtomic(path: string, content: string | Buffer, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, content, { mode });
  await rename(temp, path);
}

/** (Re)writes every volume of the pod under root/<volume name>; returns the directories. */
export async function writeVolumes(pod: V1Pod, root: string, data: PodDataSource): Promise<Map<string, string>> {
  const dirs = new Map<string, string>();
  for (const volume of pod.spec?.volumes ?? []) {
    const dir = join(root, volume.name);
    await mkdir(dir, { recursive: true });
    await writeVolume(volume, dir, data);
    dirs.set(volume.name, dir);
  }
  return dirs;
}

async function writeVolume(volume: V1Volume, dir: string, data: PodDataSource): Promise<void> {
  if (volume.emptyDir) return;
  const source = volume.secret ?? volume.configMap;
  if (!source) {
    throw new UnsupportedPodError(`volume ${volume.name}: only secret, configMap and emptyDir volumes are emulated`);
  }
  const name = volume.secret ? (volume.secret.secretName ?? "") : (volume.configMap?.name ?? "");
  const values = volume.secret ? await data.secret(name) : await data.configMap(name);
  if (!values) {
    if (source.optional) return;
    throw new UnsupportedPodError(`volume ${volume.name}: ${volume.secret ? "Secret" : "ConfigMap"} ${name} not found`);
  }
  const items = source.items ?? Object.keys(values).map((key) => ({ key, path: key }));
  for (const item of items) {
    const value = values[item.key];
    if (value === undefined) continue;
    await writeAtomic(join(dir, item.path), value, source.defaultMode ?? 0o644);
  }
}

/** The token directory for the pod's service account, as the kubelet lays it out. */
export async function writeServiceAccountDir(dir: string, token: string, caCert: string, namespace: string): Promise<void> {
  await writeAtomic(join(dir, "token"), token, 0o600);
  await writeAtomic(join(dir, "ca.crt"), caCert);
  await writeAtomic(join(dir, "namespace"), namespace);
}
