// tailscaled's LocalAPI over its unix socket, for the reads the proxy repeats (status): an HTTP
// request costs microseconds, where running `tailscale status --json` starts a ~20 MiB Go
// process in the pod's cgroup every time.
import type { Agent } from "node:http";
import type { PeerStatus } from "./tailscaled.ts";

/** The host name tailscaled's LocalAPI expects (it rejects others, against DNS rebinding). */
const LOCAL_API_HOST = "local-tailscaled.sock";

export interface StatusJson {
  BackendState: string;
  Self?: { ID: string; DNSName: string; TailscaleIPs?: string[] | null };
}

export interface StatusWithPeers extends StatusJson {
  Peer?: Record<string, PeerStatus> | null;
}

export class LocalApi {
  private readonly socket: string;
  private agent: Agent | undefined;

  constructor(socket: string) {
    this.socket = socket;
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

  close(): void {
    this.agent?.destroy();
  }

  private call(method: "GET" | "POST", path: string, timeoutMs = 10_000): Promise<string> {
    // process.getBuiltinModule: an ESM import of node:http would also load undici (its lazy
    // WebSocket export), ~10 MiB the proxy never uses.
    const http = process.getBuiltinModule("node:http");
    this.agent ??= new http.Agent({ keepAlive: true, maxSockets: 1 });
    return new Promise((resolve, reject) => {
      const req = http.request({ method, socketPath: this.socket, path, agent: this.agent, headers: { host: LOCAL_API_HOST }, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode === 200) resolve(text);
          else reject(new Error(`LocalAPI ${path}: HTTP ${res.statusCode ?? 0}: ${text.trim().slice(0, 200)}`));
        });
      });
      req.on("timeout", () => req.destroy(new Error(`LocalAPI ${path}: no answer within ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end();
    });
  }
}
