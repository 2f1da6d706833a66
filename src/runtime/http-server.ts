// The operator's HTTP endpoints: /healthz (alive, and not a leader whose Lease renewal is
// wedged), /readyz (a standby waiting for the Lease, or a leader whose watches have all made
// their initial list), /metrics (Prometheus).
import { createServer, type Server } from "node:http";
import { listen } from "../shared/listen.ts";
import type { Registry } from "prom-client";

export class OperatorHttpServer {
  private ready = false;
  private readonly server: Server;

  constructor(registry: Registry, healthy: () => boolean = () => true) {
    this.server = createServer((req, res) => {
      if (req.url === "/healthz") {
        const ok = healthy();
        res.writeHead(ok ? 200 : 503).end(ok ? "ok\n" : "unhealthy\n");
      } else if (req.url === "/readyz") {
        res.writeHead(this.ready ? 200 : 503).end(this.ready ? "ok\n" : "not ready\n");
      } else if (req.url === "/metrics") {
        registry.metrics().then(
          (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
          () => res.writeHead(500).end(),
        );
      } else {
        res.writeHead(404).end();
      }
    });
  }

  setReady(ready: boolean): void {
    this.ready = ready;
  }

  async listen(addrPort: string): Promise<void> {
    await listen(this.server, addrPort);
  }


  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
