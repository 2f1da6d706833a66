// The proxy's health endpoint: /healthz (readiness) answers 200 once the device has tailnet IPs
// and the firewall is programmed, 503 before that (and after shutdown starts); /livez (liveness)
// answers 200 whenever the process can answer at all, since a first login may take minutes.
import type { Server } from "node:http";
import { listen } from "../shared/listen.ts";

export class HealthServer {
  private healthy = false;
  private readonly server: Server;

  constructor() {
    // process.getBuiltinModule: an ESM import of node:http also loads undici (~10 MiB) through
    // its lazy WebSocket export, which the ESM facade reads.
    this.server = process.getBuiltinModule("node:http").createServer((req, res) => {
      if (req.url === "/livez") {
        res.writeHead(200, { "content-type": "text/plain" }).end("alive\n");
        return;
      }
      if (req.url !== "/healthz") {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(this.healthy ? 200 : 503, { "content-type": "text/plain" }).end(this.healthy ? "ok\n" : "not ready\n");
    });
  }

  /** Listens on "host:port" ("[::]:9002" style for IPv6). */
  async listen(addrPort: string): Promise<void> {
    await listen(this.server, addrPort);
  }

  setHealthy(healthy: boolean): void {
    this.healthy = healthy;
  }

  async close(): Promise<void> {
    await new Promise((resolve) => this.server.close(resolve));
  }
}
