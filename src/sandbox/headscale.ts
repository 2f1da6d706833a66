// A real Headscale control server for the sandbox: MagicDNS on, the embedded DERP served over
// plain HTTP (usable offline), and a policy in which the operator's tag owns the proxies' tag.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import type { CommandRunner } from "../shared/exec.ts";
import type { ManagedProcess } from "../shared/process.ts";
import { startAndAwait } from "./started-process.ts";
import { httpGet } from "./https-probe.ts";

export interface HeadscaleOptions {
  readonly runner: CommandRunner;
  readonly binary: string;
  readonly dir: string;
  /** Hub bridge address that devices reach the server on; must be a private address. */
  readonly address: string;
  /** The hub's IPv6 address: hosts are dual-stack, and a DERP region without an IPv6 address
   * makes every client's network check wait for its IPv6 probes to time out. */
  readonly address6: string;
  readonly baseDomain: string;
}

export interface HeadscaleAccess {
  readonly url: string;
  readonly baseDomain: string;
  readonly configFile: string;
}

export const HEADSCALE_PORT = 8080;
const HEADSCALE_STUN_PORT = 3478;

/**
 * The policy tailnet-operator expects: tag:k8s-operator owns tag:k8s, everything may talk. The
 * grant gives user alice the Kubernetes group tailnet-readers at the API server proxy (a tag:k8s
 * device), the way Tailscale's operator documents it (test/sandbox/apiserver-proxy.test.ts).
 */
export const SANDBOX_POLICY = {
  tagOwners: {
    "tag:k8s-operator": ["operator@"],
    "tag:k8s": ["tag:k8s-operator"],
    "tag:test": ["tag:k8s-operator"],
  },
  acls: [{ action: "accept", src: ["*"], dst: ["*:*"] }],
  grants: [{ src: ["alice@"], dst: ["tag:k8s"], app: { "tailscale.com/cap/kubernetes": [{ impersonate: { groups: ["tailnet-readers"] } }] } }],
};

export interface PreAuthKeyOptions {
  readonly user?: number;
  readonly tags?: readonly string[];
  readonly reusable?: boolean;
  readonly ephemeral?: boolean;
}

export class HeadscaleServer {
  readonly access: HeadscaleAccess;
  private proc: ManagedProcess;
  private readonly admin: HeadscaleAdmin;
  private readonly options: HeadscaleOptions;

  private constructor(options: HeadscaleOptions, access: HeadscaleAccess, proc: ManagedProcess, admin: HeadscaleAdmin) {
    this.options = options;
    this.access = access;
    this.proc = proc;
    this.admin = admin;
  }

  static async start(options: HeadscaleOptions): Promise<HeadscaleServer> {
    await mkdir(options.dir, { recursive: true });
    const url = `http://${options.address}:${HEADSCALE_PORT}`;
    const configFile = join(options.dir, "config.yaml");
    await writeFile(configFile, stringify(headscaleConfig(options, url)));
    const proc = await spawnHeadscale(options, configFile, url);
    const access = { url, baseDomain: options.baseDomain, configFile };
    const admin = new HeadscaleAdmin(options.runner, options.binary, configFile);
    try {
      await writeFile(join(options.dir, "policy.json"), JSON.stringify(SANDBOX_POLICY, null, 2));
      await admin.cli(["policy", "set", "-f", join(options.dir, "policy.json")]);
    } catch (error) {
      await proc.stop();
      throw error;
    }
    return new HeadscaleServer(options, access, proc, admin);
  }

  get cli(): HeadscaleAdmin {
    return this.admin;
  }

  /**
   * Stops the server (SIGKILL when hard: a crash, not a shutdown) and starts it again on the same
   * state directory; the database keeps nodes, keys and the policy. Resolves once it is healthy.
   */
  async restart(options: { hard?: boolean } = {}): Promise<void> {
    if (options.hard) this.proc.signal("SIGKILL");
    await this.proc.stop(10_000);
    this.proc = await spawnHeadscale(this.options, this.access.configFile, this.access.url);
  }

  async stop(): Promise<void> {
    await this.proc.stop();
  }
}

function spawnHeadscale(options: HeadscaleOptions, configFile: string, url: string): Promise<ManagedProcess> {
  return startAndAwait(
    {
      name: "headscale",
      logFile: join(options.dir, "headscale.log"),
      argv: [options.binary, "-c", configFile, "serve"],
    },
    async () => (await httpGet(`${url}/health`)).status === 200,
    30_000,
  );
}

export const HEADSCALE_OFFLINE_TABLE = "tno_headscale_offline";

/**
 * nftables rules (for the hub, where Headscale listens) that reset every TCP packet to or from its
 * port, both ways so neither end keeps a half-open session, and refuse STUN.
 */
export function headscaleOfflineRules(): string {
  return `table inet ${HEADSCALE_OFFLINE_TABLE} {
  chain in {
    type filter hook input priority -10;
    tcp dport ${HEADSCALE_PORT} reject with tcp reset
    udp dport ${HEADSCALE_STUN_PORT} reject
  }
  chain out {
    type filter hook output priority -10;
    tcp sport ${HEADSCALE_PORT} reject with tcp reset
  }
}
`;
}

/** Administration through the headscale CLI over its unix socket (no network involved). */
export class HeadscaleAdmin {
  private readonly runner: CommandRunner;
  private readonly binary: string;
  private readonly configFile: string;

  constructor(runner: CommandRunner, binary: string, configFile: string) {
    this.runner = runner;
    this.binary = binary;
    this.configFile = configFile;
  }

  async cli(args: readonly string[]): Promise<string> {
    const { stdout } = await this.runner.run([this.binary, "-c", this.configFile, ...args], { timeoutMs: 30_000 });
    return stdout;
  }

  private async json<T>(args: readonly string[]): Promise<T> {
    return JSON.parse(await this.cli([...args, "-o", "json"])) as T;
  }

  /** Creates a user (or returns the existing one) and gives back its numeric id. */
  async ensureUser(name: string): Promise<number> {
    // The CLI prints null, not [], when there are no users yet.
    const users = (await this.json<{ id: number | string; name: string }[] | null>(["users", "list"])) ?? [];
    const existing = users.find((user) => user.name === name);
    if (existing) return Number(existing.id);
    const created = await this.json<{ id: number | string }>(["users", "create", name]);
    return Number(created.id);
  }

  async createApiKey(expiration = "24h"): Promise<string> {
    return (await this.cli(["apikeys", "create", "--expiration", expiration])).trim();
  }

  async createPreAuthKey(options: PreAuthKeyOptions): Promise<string> {
    return (await this.mintPreAuthKey(options)).key;
  }

  /** A new key with its id (what revokes it). */
  async mintPreAuthKey(options: PreAuthKeyOptions): Promise<{ id: string; key: string }> {
    const args = ["preauthkeys", "create", "--expiration", "24h"];
    if (options.user !== undefined) args.push("--user", String(options.user));
    if (options.tags?.length) args.push("--tags", options.tags.join(","));
    if (options.reusable) args.push("--reusable");
    if (options.ephemeral) args.push("--ephemeral");
    const key = await this.json<{ id: string | number; key: string }>(args);
    return { id: String(key.id), key: key.key };
  }

  /** Headscale's revocation: the key joins nothing more. */
  async expirePreAuthKey(id: string): Promise<void> {
    await this.cli(["preauthkeys", "expire", "--id", id]);
  }

  /** Every pre-auth key, including used and expired ones (the CLI prints null for none). */
  async listPreAuthKeys(): Promise<HeadscalePreAuthKey[]> {
    return (await this.json<HeadscalePreAuthKey[] | null>(["preauthkeys", "list"])) ?? [];
  }

  async listNodes(): Promise<HeadscaleNode[]> {
    return (await this.json<HeadscaleNode[] | null>(["nodes", "list"])) ?? [];
  }
}

export interface HeadscalePreAuthKey {
  readonly id: number | string;
  readonly reusable?: boolean;
  readonly used?: boolean;
  /** A protobuf Timestamp in the CLI's JSON. */
  readonly expiration?: { readonly seconds?: number | string } | string;
  readonly acl_tags?: string[];
}

export interface HeadscaleNode {
  readonly id: number | string;
  readonly name: string;
  readonly given_name?: string;
  readonly ip_addresses?: string[];
  readonly tags?: string[];
  readonly online?: boolean;
  readonly user?: { readonly name?: string };
}

function headscaleConfig(options: HeadscaleOptions, url: string): Record<string, unknown> {
  const state = options.dir;
  return {
    server_url: url,
    listen_addr: `${options.address}:${HEADSCALE_PORT}`,
    metrics_listen_addr: "127.0.0.1:9090",
    grpc_listen_addr: "127.0.0.1:50443",
    grpc_allow_insecure: false,
    noise: { private_key_path: join(state, "noise_private.key") },
    prefixes: { v4: "100.64.0.0/10", v6: "fd7a:115c:a1e0::/48", allocation: "sequential" },
    derp: {
      server: {
        enabled: true,
        region_id: 999,
        region_code: "sandbox",
        region_name: "Sandbox embedded DERP",
        verify_clients: true,
        // Both families, on the hub only (the hub is the sandbox's own namespace).
        stun_listen_addr: `[::]:${HEADSCALE_STUN_PORT}`,
        private_key_path: join(state, "derp_server_private.key"),
        automatically_add_embedded_derp_region: true,
        ipv4: options.address,
        ipv6: options.address6,
      },
      // Any URL here is fetched at start-up and a failure is fatal: offline, there are none.
      urls: [],
      paths: [],
      auto_update_enabled: false,
    },
    disable_check_updates: true,
    node: { expiry: 0, ephemeral: { inactivity_timeout: "2m" } },
    database: { type: "sqlite", sqlite: { path: join(state, "db.sqlite"), write_ahead_log: true } },
    log: { level: "info", format: "text" },
    policy: { mode: "database" },
    dns: { magic_dns: true, base_domain: options.baseDomain, override_local_dns: false, nameservers: { global: [] } },
    unix_socket: join(state, "headscale.sock"),
    unix_socket_permission: "0770",
    logtail: { enabled: false },
  };
}
