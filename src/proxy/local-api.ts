// tailscaled's LocalAPI over its unix socket, for the reads the proxy repeats (status, and for L7
// whois and the control plane's certificate): an HTTP request costs microseconds, where running
// `tailscale status --json` starts a ~20 MiB Go process in the pod's cgroup every time.
import type { Agent } from "node:http";
import type { PeerStatus } from "./tailscaled.ts";
import type { WhoIs } from "./l7/local-api.ts";

/** The host name tailscaled's LocalAPI expects (it rejects others, against DNS rebinding). */
const LOCAL_API_HOST = "local-tailscaled.sock";

export interface StatusJson {
  BackendState: string;
  Self?: { ID: string; DNSName: string; TailscaleIPs?: string[] | null; CapMap?: Record<string, unknown[] | null> | null };
  /** Warnings tailscaled has (not logged in, no control plane, ...). */
  Health?: string[] | null;
}

export interface StatusWithPeers extends StatusJson {
  Peer?: Record<string, PeerStatus> | null;
}

export class LocalApi {
  private readonly socket: string;
  private agent: Agent | undefined;

  private readonly maxSockets: number;

  /** maxSockets: 1 for the supervisor's occasional calls; L7 asks whois per new caller, in parallel. */
  constructor(socket: string, options: { maxSockets?: number } = {}) {
    this.socket = socket;
    this.maxSockets = options.maxSockets ?? 1;
  }

  /** `tailscale status --json` without the peers. */
  async status(): Promise<StatusJson> {
    return JSON.parse(await this.call("GET", "/localapi/v0/status?peers=false")) as StatusJson;
  }

  /** The whole status, peers included (egress looks its target up among them). */
  async statusWithPeers(): Promise<StatusWithPeers> {
    return JSON.parse(await this.call("GET", "/localapi/v0/status")) as StatusWithPeers;
  }

  /**
   * Asks tailscaled to turn on UDP GRO forwarding (and off GRO lists) on the default-route
   * interface, as Tailscale recommends for forwarding nodes and containerboot does with
   * TS_EXPERIMENTAL_ENABLE_FORWARDING_OPTIMIZATIONS; tailscaled does it over ethtool netlink with
   * the pod's NET_ADMIN, so the image needs no ethtool. Returns tailscaled's warning, if any.
   */
  async setUdpGroForwarding(): Promise<string | undefined> {
    const { Warning } = JSON.parse(await this.call("POST", "/localapi/v0/set-udp-gro-forwarding")) as { Warning?: string };
    return Warning || undefined;
  }

  async whois(addrPort: string): Promise<WhoIs | undefined> {
    const { status, body } = await this.send("GET", `/localapi/v0/whois?addr=${encodeURIComponent(addrPort)}`, 5_000);
    // 404: not a tailnet peer (cannot happen on the tailnet IPs, but then no identity at all).
    return status === 200 ? (JSON.parse(body) as WhoIs) : undefined;
  }

  /** PEM key and certificate (with chain) for the domain, from the control plane's ACME account. */
  async certPair(domain: string): Promise<{ certPem: string; keyPem: string }> {
    // The first issuance goes through the control plane's DNS-01 and can take a minute.
    const { status, body } = await this.send("GET", `/localapi/v0/cert/${encodeURIComponent(domain)}?type=pair`, 180_000);
    if (status !== 200) throw new Error(`the control plane gave no certificate for ${domain} (LocalAPI ${status}: ${body.trim().slice(0, 300)})`);
    const keyEnd = body.indexOf("-----END", body.indexOf("PRIVATE KEY-----"));
    const split = body.indexOf("\n", keyEnd) + 1;
    return { keyPem: body.slice(0, split), certPem: body.slice(split) };
  }

  /** tailscaled's serve config (ipn.ServeConfig as JSON; {} or null when nothing is served). */
  async serveConfig(): Promise<unknown> {
    return JSON.parse(await this.call("GET", "/localapi/v0/serve-config")) as unknown;
  }

  /** Replaces tailscaled's serve config; tailscaled keeps it in its state across restarts. */
  async setServeConfig(config: object): Promise<void> {
    await this.call("POST", "/localapi/v0/serve-config", 10_000, JSON.stringify(config));
  }

  close(): void {
    this.agent?.destroy();
  }

  private async call(method: "GET" | "POST", path: string, timeoutMs = 10_000, requestBody?: string): Promise<string> {
    const { status, body } = await this.send(method, path, timeoutMs, requestBody);
    if (status !== 200) throw new Error(`LocalAPI ${path}: HTTP ${status}: ${body.trim().slice(0, 200)}`);
    return body;
  }

  private send(method: "GET" | "POST", path: string, timeoutMs: number, requestBody?: string): Promise<{ status: number; body: string }> {
    // process.getBuiltinModule: an ESM import of node:http would also load undici (its lazy
    // WebSocket export), ~10 MiB the proxy never uses.
    const http = process.getBuiltinModule("node:http");
    this.agent ??= new http.Agent({ keepAlive: true, maxSockets: this.maxSockets });
    return new Promise((resolve, reject) => {
      const req = http.request({ method, socketPath: this.socket, path, agent: this.agent, headers: { host: LOCAL_API_HOST }, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") });
        });
      });
      req.on("timeout", () => req.destroy(new Error(`LocalAPI ${path}: no answer within ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end(requestBody);
    });
  }
}
