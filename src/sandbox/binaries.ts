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

/** What a cluster node and its control plane need beyond the API server. */
export interface NodeBinaries {
  readonly kubelet: string;
  readonly kubeProxy: string;
  readonly kubeControllerManager: string;
  readonly kubeScheduler: string;
  readonly containerd: string;
  /** Directory of containerd-shim-runc-v2: containerd finds the shim on its PATH. */
  readonly containerdBinDir: string;
  readonly ctr: string;
  readonly runc: string;
  /** Directory of the CNI plugins (bridge, host-local, loopback, portmap). */
  readonly cniBinDir: string;
}

/** Paths of the node's binaries; throws naming what is missing and how to build it. */
export function resolveNodeBinaries(): NodeBinaries {
  const pins = readPins();
  const dir = binCacheDir();
  const versioned = (name: string, key: string): string => {
    const value = pins[key];
    if (!value) throw new Error(`scripts/pins.env has no ${key}`);
    return join(dir, `${name}-${value}`);
  };
  const k8s = versioned("kubernetes", "K8S_VERSION");
  const containerd = versioned("containerd", "CONTAINERD_VERSION");
  const cni = versioned("cni-plugins", "CNI_PLUGINS_VERSION");
  const bins: NodeBinaries = {
    kubelet: join(k8s, "kubelet"),
    kubeProxy: join(k8s, "kube-proxy"),
    kubeControllerManager: join(k8s, "kube-controller-manager"),
    kubeScheduler: join(k8s, "kube-scheduler"),
    containerd: join(containerd, "containerd"),
    containerdBinDir: containerd,
    ctr: join(containerd, "ctr"),
    runc: join(versioned("runc", "RUNC_VERSION"), "runc"),
    cniBinDir: cni,
  };
  const paths = [
    bins.kubelet, bins.kubeProxy, bins.kubeControllerManager, bins.kubeScheduler, bins.containerd,
    join(containerd, "containerd-shim-runc-v2"), bins.ctr, bins.runc,
    ...["bridge", "host-local", "loopback", "portmap"].map((plugin) => join(cni, plugin)),
  ];
  const missing = paths.filter((path) => !existsSync(path));
  if (missing.length > 0) {
    throw new Error(`missing node binaries: ${missing.join(", ")}; build them with scripts/build-bins.sh (make bins)`);
  }
  return bins;
}

/** One binary built into <cache>/bin/<dir>-<pinned version>/; throws naming what is missing. */
function resolvePinned(dir: string, pinKey: string, binary: string): string {
  const version = readPins()[pinKey];
  if (!version) throw new Error(`scripts/pins.env has no ${pinKey}`);
  const path = join(binCacheDir(), `${dir}-${version}`, binary);
  if (!existsSync(path)) throw new Error(`missing sandbox binary: ${path}; build it with scripts/build-bins.sh (make bins)`);
  return path;
}

/** Pebble, the ACME test CA (built by scripts/build-bins.sh like the rest; only the ACME tests need it). */
export function resolvePebble(): string {
  return resolvePinned("pebble", "PEBBLE_VERSION", "pebble");
}

/** kubectl of the sandbox's Kubernetes version, for tests that act as a tailnet user would. */
export function resolveKubectl(): string {
  return resolvePinned("kubectl", "K8S_VERSION", "kubectl");
}
