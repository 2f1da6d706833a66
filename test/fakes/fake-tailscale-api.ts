// A stand-in for Tailscale's hosted API (v2), which cannot be reached from here. It follows the
// published API for what the operator uses (OAuth client credentials, auth keys, devices) and
// keeps the control plane's rules: keys are single-use unless reusable, tags must be well
// formed, unknown devices are 404. The same contract suite runs against it and real Headscale.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { randomBytes } from "node:crypto";

interface Key {
  readonly id: string;
  readonly key: string;
  readonly reusable: boolean;
  readonly tags: readonly string[];
  readonly description: string;
  readonly ephemeral: boolean;
  readonly created: number;
  readonly expires: number;
  used: boolean;
  revoked: boolean;
}

interface Device {
  readonly id: string;
  readonly hostname: string;
  readonly tags: readonly string[];
  readonly addresses: readonly string[];
}

const TAG = /^tag:[a-zA-Z][a-zA-Z0-9-]*$/;

export class FakeTailscaleApi {
  readonly clientId = "fake-client-id";
  readonly clientSecret = `tskey-client-${randomBytes(8).toString("hex")}`;
  private readonly server: Server;
  private readonly tokens = new Set<string>();
  private readonly keys = new Map<string, Key>();
  private readonly devices = new Map<string, Device>();
  private nextDevice = 1;
  /** Every request the fake served, for tests that check what the operator asked for. */
  readonly requests: { method: string; path: string }[] = [];

  constructor() {
    this.server = createServer((req, res) => {
      void this.handle(req, res);
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const address = this.server.address();
    if (address === null || typeof address === "string") throw new Error("fake API: no address");
    return `http://127.0.0.1:${address.port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  /** What a device logging in with the key does, as the control server sees it. */
  join(key: string, hostname: string): string {
    const entry = this.keys.get(key);
    if (!entry || entry.revoked || (entry.used && !entry.reusable)) throw new Error("invalid key: unable to validate API key");
    entry.used = true;
    const n = this.nextDevice++;
    const id = `n${String(n).padStart(6, "0")}CNTRL`;
    this.devices.set(id, { id, hostname, tags: entry.tags, addresses: [`100.100.0.${n}`] });
    return id;
  }

  /** Keys that would still let a device join: what a leak audit looks for. */
  usableKeys(): { id: string; tags: readonly string[] }[] {
    return [...this.keys.values()].filter((k) => !k.revoked && (k.reusable || !k.used)).map((k) => ({ id: k.id, tags: k.tags }));
  }

  private keyJson(k: Key): Record<string, unknown> {
    return {
      id: k.id,
      description: k.description,
      created: new Date(k.created).toISOString(),
      expires: new Date(k.expires).toISOString(),
      ...(k.revoked ? { revoked: new Date().toISOString() } : {}),
      invalid: k.revoked || (k.used && !k.reusable) || k.expires <= Date.now(),
      capabilities: { devices: { create: { reusable: k.reusable, ephemeral: k.ephemeral, preauthorized: true, tags: k.tags } } },
    };
  }

  private deviceJson(found: Device): Record<string, unknown> {
    return { id: found.id, nodeId: found.id, hostname: found.hostname, name: `${found.hostname}.tail-fake.ts.net`, addresses: found.addresses, tags: found.tags };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const body = await readBody(req);
    this.requests.push({ method: req.method ?? "", path: url.pathname });
    const send = (status: number, payload: unknown): void => {
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(payload));
    };
    if (req.method === "POST" && url.pathname === "/api/v2/oauth/token") {
      const form = new URLSearchParams(body);
      if (form.get("client_id") !== this.clientId || form.get("client_secret") !== this.clientSecret) {
        send(401, { message: "invalid client credentials" });
        return;
      }
      const token = `tskey-api-${randomBytes(8).toString("hex")}`;
      this.tokens.add(token);
      send(200, { access_token: token, token_type: "Bearer", expires_in: 3600, scope: "devices auth_keys" });
      return;
    }
    if (!this.tokens.has((req.headers.authorization ?? "").replace(/^Bearer /, ""))) {
      send(401, { message: "API token invalid" });
      return;
    }
    const device = /^\/api\/v2\/device\/([^/]+)$/.exec(url.pathname);
    const keyPath = /^\/api\/v2\/tailnet\/-\/keys\/([^/]+)$/.exec(url.pathname);
    if (req.method === "POST" && url.pathname === "/api/v2/tailnet/-/keys") {
      const request = JSON.parse(body || "{}") as { expirySeconds?: number; description?: string; capabilities?: { devices?: { create?: { reusable?: boolean; ephemeral?: boolean; tags?: string[] } } } };
      const create = request.capabilities?.devices?.create;
      const tags = create?.tags ?? [];
      const bad = tags.find((tag) => !TAG.test(tag));
      if (bad !== undefined) {
        send(400, { message: `invalid tag "${bad}"` });
        return;
      }
      const key = `tskey-auth-${randomBytes(12).toString("hex")}`;
      const id = `k${key.slice(11, 19)}CNTRL`;
      const created = Date.now();
      const entry = { id, key, reusable: create?.reusable ?? false, ephemeral: create?.ephemeral ?? false, description: request.description ?? "", tags, created, expires: created + (request.expirySeconds ?? 90 * 86_400) * 1000, used: false, revoked: false };
      this.keys.set(key, entry);
      send(200, { ...this.keyJson(entry), key });
    } else if (req.method === "GET" && url.pathname === "/api/v2/tailnet/-/keys") {
      // Ids only, details come from the key itself. Keys minted with OAuth client credentials are
      // the tailnet's: every key is listed, whoever minted it.
      send(200, { keys: [...this.keys.values()].filter((k) => !k.revoked).map((k) => ({ id: k.id })) });
    } else if (keyPath?.[1] && req.method === "GET") {
      const found = [...this.keys.values()].find((k) => k.id === keyPath[1]);
      if (found) send(200, this.keyJson(found));
      else send(404, { message: "not found" });
    } else if (keyPath?.[1] && req.method === "DELETE") {
      const found = [...this.keys.values()].find((k) => k.id === keyPath[1]);
      if (found) found.revoked = true;
      send(found ? 200 : 404, {});
    } else if (req.method === "GET" && url.pathname === "/api/v2/tailnet/-/devices") {
      send(200, { devices: [...this.devices.values()].map((d) => this.deviceJson(d)) });
    } else if (device?.[1] && req.method === "GET") {
      const found = this.devices.get(device[1]);
      if (found) send(200, this.deviceJson(found));
      else send(404, { message: "not found" });
    } else if (device?.[1] && req.method === "DELETE") {
      send(this.devices.delete(device[1]) ? 200 : 404, {});
    } else {
      send(404, { message: "no such endpoint" });
    }
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      resolve(body);
    });
  });
}
