// The proxy's health endpoint: /healthz answers 200 once the device has tailnet IPs and the
// firewall is programmed, 503 before that (and after shutdown starts).
import { createServer, type Server } from "node:http";

export class HealthServer {
  private healthy = false;
  private readonly server: Server;

  constructor() {
    this.server = createServer((req, res) => {
      if (req.url !== "/healthz") {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(this.healthy ? 200 : 503, { "content-type": "text/plain" }).end(this.healthy ? "ok\n" : "not ready\n");
    });
  }

  /** Listens on "host:port" ("[::]:9002" style for IPv6). */
  async listen(addrPort: string): Promise<void> {
    const separator = addrPort.lastIndexOf(":");
    const host = addrPort.slice(0, separator).replace(/^\[|\]$/g, "");
    const port = Number(addrPort.slice(separator + 1));
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, resolve);
    });
  }

  setHealthy(healthy: boolean): void {
    this.healthy = healthy;
  }

  async close(): Promise<void> {
    await new Promise((resolve) => this.server.close(resolve));
  }
}
