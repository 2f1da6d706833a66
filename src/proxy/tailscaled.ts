// tailscaled as a child of the proxy, with its state in the Kubernetes state Secret (tailscaled's
// own kube store), so a restarted proxy comes back as the same device.
import { accessSync, constants, statSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import type { CommandRunner } from "../shared/exec.ts";
import { ManagedProcess, type ExitStatus } from "../shared/process.ts";
import { waitFor } from "../shared/clock.ts";
import type { ProxyConfig } from "./config.ts";
import { LocalApi, type StatusJson } from "./local-api.ts";
import { hasDefaultRoute } from "./default-route.ts";
import { keyFingerprint } from "../shared/login-report.ts";

export interface DeviceInfo {
  readonly id: string;
  /** MagicDNS name without the trailing dot. */
  readonly fqdn: string;
  readonly ips: readonly string[];
}

/** tailscaled's state while it logs in, and its health warnings (why it is not Running). */
export interface LoginProgress {
  readonly backendState: string;
  readonly health: readonly string[];
}

/** A peer as tailscaled's status lists it (the fields egress resolution reads). */
export interface PeerStatus {
  readonly DNSName?: string;
  readonly TailscaleIPs?: readonly string[] | null;
  /** Subnet routes this peer serves (and this node accepts). */
  readonly PrimaryRoutes?: readonly string[] | null;
}

/** A tailscaled that exited, or came up without its state, during start-up: about to be started again. */
export interface StartRestart {
  readonly attempt: number;
  readonly exit: string;
  readonly delayMs: number;
}

/** Within the pod's startup probe (60 × 5 s), so the kubelet does not restart a proxy still trying. */
const START_BUDGET_MS = 240_000;
const MAX_START_BACKOFF_MS = 15_000;
/** The start of tailscaled's state-store health warning (ipn.StateStoreHealth's text). */
const STATE_STORE_FAILED = "State store failed to initialize";

function exitText(exit: ExitStatus): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${String(exit.code)}`;
}

/** The start-up restart as a log line: the API server is the usual suspect. */
export function logRestart(log: { warn(fields: object, message: string): void }): (restart: StartRestart) => void {
  return (restart) => {
    log.warn(restart, "tailscaled failed to start with its state (it reads it from the Kubernetes API: is the API server reachable?); starting it again");
  };
}

export class Tailscaled {
  private readonly runner: CommandRunner;
  private readonly config: ProxyConfig;
  private readonly localApi: LocalApi;
  private daemon: ManagedProcess | undefined;

  constructor(runner: CommandRunner, config: ProxyConfig) {
    this.runner = runner;
    this.config = config;
    this.localApi = new LocalApi(config.TS_SOCKET);
  }

  get exited(): Promise<unknown> {
    return this.daemon?.exited ?? Promise.resolve();
  }

  /**
   * Starts tailscaled and waits for its LocalAPI. tailscaled exits at start-up when it cannot read
   * its state from the Kubernetes API (an API server restarting, a node under load): it is started
   * again here, with a short back-off, instead of the container exiting into the kubelet's
   * crash-loop back-off, which grows to minutes after a few such exits.
   */
  async start(onRestart: (restart: StartRestart) => void = () => undefined): Promise<void> {
    await mkdir(this.config.TS_STATE_DIR, { recursive: true });
    const deadline = Date.now() + START_BUDGET_MS;
    for (let attempt = 1; ; attempt++) {
      const daemon = this.spawnDaemon();
      this.daemon = daemon;
      const outcome = await Promise.race([daemon.exited, this.localApiAnswers(daemon, deadline)]);
      if (outcome === "answering") return;
      let failure: string;
      if ("storeFailed" in outcome) {
        // It would run, but from an empty in-memory state: a new login with a used key, and
        // nothing written back to the Secret. Only a fresh start reads the real state.
        await daemon.stop(5_000);
        failure = `started without its state (${outcome.storeFailed})`;
      } else {
        failure = exitText(outcome);
      }
      if (Date.now() >= deadline) throw new Error(`tailscaled did not start within ${START_BUDGET_MS / 1000} s (${attempt} attempts; last ${failure})`);
      const delayMs = Math.min(1_000 * 2 ** (attempt - 1), MAX_START_BACKOFF_MS);
      onRestart({ attempt, exit: failure, delayMs });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }

  private spawnDaemon(): ManagedProcess {
    return ManagedProcess.start({
      name: "tailscaled",
      // tailscaled's output is the container's output, as in a real pod.
      argv: [
        "tailscaled",
        `--tun=${this.config.TS_TUN}`,
        `--state=kube:${this.config.TS_KUBE_SECRET}`,
        `--statedir=${this.config.TS_STATE_DIR}`,
        `--socket=${this.config.TS_SOCKET}`,
      ],
      env: { ...daemonEnvironment(process.env), TS_KUBERNETES_READ_API_SERVER_ADDRESS_FROM_ENV: "true" },
    });
  }

  /**
   * Resolves once the LocalAPI reports a backend state, or that tailscaled could not open its
   * state store; never while the daemon is down (the race's other side).
   */
  private async localApiAnswers(daemon: ManagedProcess, deadline: number): Promise<"answering" | { readonly storeFailed: string }> {
    for (;;) {
      if (!daemon.running) return new Promise(() => undefined);
      const status = await this.status().catch(() => undefined);
      // tailscaled falls back to an in-memory store when its Secret cannot be read at start-up
      // (ipn.StateStoreHealth), and says so only as a health warning.
      const storeFailed = status?.Health?.find((warning) => warning.startsWith(STATE_STORE_FAILED));
      if (storeFailed !== undefined) return { storeFailed };
      const state = status?.BackendState;
      if (state !== undefined && state !== "NoState") return "answering";
      if (Date.now() >= deadline) {
        await daemon.stop(5_000);
        return new Promise(() => undefined);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private async status(): Promise<StatusJson> {
    return this.localApi.status();
  }

  async loginProgress(): Promise<LoginProgress> {
    const status = await this.status();
    return { backendState: status.BackendState, health: status.Health ?? [] };
  }

  /** The tailnet's other devices, as this node currently sees them in its netmap. */
  async peers(): Promise<PeerStatus[]> {
    return Object.values((await this.localApi.statusWithPeers()).Peer ?? {});
  }

  /** Logs in with the auth key unless the state Secret already holds a logged-in device. */
  async ensureLoggedIn(): Promise<"existing" | "new"> {
    const state = (await this.status()).BackendState;
    if (state !== "NeedsLogin") return "existing";
    // The key goes to `tailscale up` as a file: on a command line any process could read it.
    const keyFile = await this.authKeyFile();
    await this.runner.run(
      [
        "tailscale",
        `--socket=${this.config.TS_SOCKET}`,
        "up",
        `--auth-key=file:${keyFile}`,
        `--hostname=${this.config.TS_HOSTNAME}`,
        "--accept-dns=false",
        // The proxy programs the firewall itself (see firewall/); tailscaled must not.
        "--netfilter-mode=off",
        // An egress target may be an address a subnet router serves.
        ...(this.config.TS_TAILNET_TARGET_IP ? ["--accept-routes"] : []),
        "--timeout=120s",
        ...(this.config.TS_LOGIN_SERVER ? [`--login-server=${this.config.TS_LOGIN_SERVER}`] : []),
      ],
      { timeoutMs: 130_000 },
    );
    return "new";
  }

  async authKeyFingerprint(): Promise<string | undefined> {
    const key = this.config.TS_AUTHKEY_FILE ? await readFile(this.config.TS_AUTHKEY_FILE, "utf8") : this.config.TS_AUTHKEY;
    return key ? keyFingerprint(key) : undefined;
  }

  private async authKeyFile(): Promise<string> {
    if (this.config.TS_AUTHKEY_FILE) return this.config.TS_AUTHKEY_FILE;
    if (!this.config.TS_AUTHKEY) throw new Error("the device needs a login but there is no auth key (TS_AUTHKEY_FILE or TS_AUTHKEY)");
    const file = join(this.config.TS_STATE_DIR, "authkey");
    await writeFile(file, this.config.TS_AUTHKEY, { mode: 0o600 });
    return file;
  }

  /** The device once it is Running with tailnet addresses. */
  async device(timeoutMs = 60_000): Promise<DeviceInfo> {
    return waitFor("the device to be running with tailnet IPs", async () => {
      const status = await this.status();
      const ips = status.Self?.TailscaleIPs ?? [];
      if (status.BackendState !== "Running" || !status.Self || ips.length === 0) return undefined;
      return { id: status.Self.ID, fqdn: status.Self.DNSName.replace(/\.$/, ""), ips };
    }, { timeoutMs, intervalMs: 100 });
  }

  /** UDP GRO forwarding on the pod's default interface (see LocalApi); the warning, if any. */
  async tuneForwarding(): Promise<string | undefined> {
    if (!(await hasDefaultRoute())) return "the pod has no default route, so tailscaled cannot tell which interface receives tailnet traffic; left as it is";
    return this.localApi.setUdpGroForwarding();
  }

  async stop(): Promise<void> {
    this.localApi.close();
    await this.daemon?.stop(10_000);
  }
}

/** Where name is found on the PATH (an executable regular file), as a shell would find it. */
export function findOnPath(name: string, path: string): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not there, or not executable: the next directory.
    }
  }
  return undefined;
}

/**
 * Fails at start, naming what is missing, when the image lacks tailscaled or the tailscale CLI:
 * otherwise the spawn fails later with a bare ENOENT and the pod crash-loops unexplained.
 */
export function requireTailscaleBinaries(path: string): void {
  const missing = ["tailscaled", "tailscale"].filter((name) => findOnPath(name, path) === undefined);
  if (missing.length > 0) {
    throw new Error(`${missing.join(" and ")} not found on PATH (${path || "empty"}): this image lacks ${missing.length > 1 ? "them" : "it"}; run the tailnet-operator proxy image (docs/images.md)`);
  }
}

/** The proxy's environment without the auth key, for tailscaled (a child inherits it otherwise). */
export function daemonEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const rest = { ...env };
  delete rest["TS_AUTHKEY"];
  return rest;
}
