// The caller's identity for nginx (ADR 0035): nginx cannot ask tailscaled's LocalAPI, so each
// request's `auth_request` asks this endpoint, on a unix socket only nginx reaches, and copies the
// headers it answers into the request for the backend. nginx caches an answer per caller address
// (nginx-config.ts); an address whois cannot name is not cached (it may have just joined).
import { createServer, type Server } from "node:http";
import { rm } from "node:fs/promises";
import { isIP } from "node:net";

/** The request headers nginx sends: the caller's address and port, nothing of the client's. */
export const CALLER_HEADERS = { address: "x-caller", port: "x-caller-port" } as const;

export type HeadersFor = (address: string, port: number) => Promise<Record<string, string>>;

export class WhoisEndpoint {
  private readonly server: Server;

  constructor(headersFor: HeadersFor, log: { warn(fields: object, message: string): void }) {
    this.server = createServer((request, response) => {
      const address = request.headers[CALLER_HEADERS.address];
      const port = Number(request.headers[CALLER_HEADERS.port]);
      if (typeof address !== "string" || isIP(address) === 0 || !Number.isInteger(port)) {
        response.writeHead(400).end();
        return;
      }
      headersFor(address, port).then((headers) => {
        // Nothing known: served without identity, and asked again on the caller's next request.
        response.writeHead(200, { ...headers, ...(Object.keys(headers).length === 0 ? { "x-accel-expires": "0" } : {}) }).end();
      }, (error: unknown) => {
        log.warn({ err: error, address }, "whois failed; serving the request without identity");
        response.writeHead(200, { "x-accel-expires": "0" }).end();
      });
    });
  }

  async listen(socketPath: string): Promise<void> {
    await rm(socketPath, { force: true }); // left by an earlier run of this container
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(socketPath, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => { resolve(); }));
  }
}
