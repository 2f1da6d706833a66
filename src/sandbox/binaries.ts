// Locates the pinned binaries that scripts/build-bins.sh built into the cache.
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export interface Binaries {
  readonly kubeApiserver: string;
  readonly etcd: string;
  readonly tailscaled: string;
  readonly tailscale: string;
  readonly headscale: string;
}

const PINS_FILE = new URL("../../scripts/pins.env", import.meta.url);

export function readPins(): Record<string, string> {
  const pins: Record<string, string> = {};
  for (const line of readFileSync(PINS_FILE, "utf8").split("\n")) {
    const match = /^([A-Z0-9_]+)=(\S+)$/.exec(line.trim());
    if (match?.[1] && match[2]) pins[match[1]] = match[2];
  }
  return pins;
}

export function binCacheDir(): string {
  const root =
    process.env["TAILNET_OPERATOR_CACHE"] ??
    join(process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "tailnet-operator");
  return join(root, "bin");
}

/** Paths of the built binaries; throws naming what is missing and how to build it. */
export function resolveBinaries(): Binaries {
  const pins = readPins();
  const dir = binCacheDir();
  const pin = (key: string): string => {
    const value = pins[key];
    if (!value) throw new Error(`scripts/pins.env has no ${key}`);
    return value;
  };
  const bins: Binaries = {
    kubeApiserver: join(dir, `kubernetes-${pin("K8S_VERSION")}`, "kube-apiserver"),
    etcd: join(dir, `etcd-${pin("ETCD_VERSION")}`, "etcd"),
    tailscaled: join(dir, `tailscale-${pin("TAILSCALE_VERSION")}`, "tailscaled"),
    tailscale: join(dir, `tailscale-${pin("TAILSCALE_VERSION")}`, "tailscale"),
    headscale: join(dir, `headscale-${pin("HEADSCALE_VERSION")}`, "headscale"),
  };
  const paths: string[] = [bins.kubeApiserver, bins.etcd, bins.tailscaled, bins.tailscale, bins.headscale];
  const missing = paths.filter((path) => !existsSync(path));
  if (missing.length > 0) {
    throw new Error(`missing sandbox binaries: ${missing.join(", ")}; build them with scripts/build-bins.sh (make bins)`);
  }
  return bins;
}
