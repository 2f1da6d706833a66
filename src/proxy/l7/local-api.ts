// tailscaled's LocalAPI over its unix socket: who is calling (whois) and the control plane's
// certificate for this device (cert). The Host header is what tailscaled expects on the socket.
import { request } from "node:http";

export interface WhoIs {
  readonly Node?: { readonly Name?: string; readonly Tags?: readonly string[] | null };
  readonly UserProfile?: { readonly LoginName?: string; readonly DisplayName?: string; readonly ProfilePicURL?: string };
}

export interface LocalApi {
  whois(addrPort: string): Promise<WhoIs | undefined>;
  /** PEM key and certificate (with chain) for the domain, from the control plane's ACME account. */
  certPair(domain: string): Promise<{ certPem: string; keyPem: string }>;
}

export class SocketLocalApi implements LocalApi {
  private readonly socketPath: string;

  constructor(socketPath: string) {
    this.socketPath = socketPath;
  }

  private get(path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, path, headers: { host: "local-tailscaled.sock" }, timeout: timeoutMs }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, body });
        });
      });
      req.on("timeout", () => req.destroy(new Error(`LocalAPI ${path}: timed out`)));
      req.on("error", reject);
      req.end();
    });
  }

  async whois(addrPort: string): Promise<WhoIs | undefined> {
    const { status, body } = await this.get(`/localapi/v0/whois?addr=${encodeURIComponent(addrPort)}`, 5_000);
    // 404: not a tailnet peer (cannot happen on the tailnet IPs, but then no identity at all).
    return status === 200 ? (JSON.parse(body) as WhoIs) : undefined;
  }

  async certPair(domain: string): Promise<{ certPem: string; keyPem: string }> {
    // The first issuance goes through the control plane's DNS-01 and can take a minute.
    const { status, body } = await this.get(`/localapi/v0/cert/${encodeURIComponent(domain)}?type=pair`, 180_000);
    if (status !== 200) throw new Error(`the control plane gave no certificate for ${domain} (LocalAPI ${status}: ${body.trim().slice(0, 300)})`);
    const keyEnd = body.indexOf("-----END", body.indexOf("PRIVATE KEY-----"));
    const split = body.indexOf("\n", keyEnd) + 1;
    return { keyPem: body.slice(0, split), certPem: body.slice(split) };
  }
}
