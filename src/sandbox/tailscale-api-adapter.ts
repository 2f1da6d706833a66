// For benchmarks only: lets Tailscale's own Go operator (tailscale.com/cmd/k8s-operator) run
// against the sandbox's Headscale. That operator takes one URL, OPERATOR_LOGIN_SERVER, both as its
// tsnet control server and as the base of Tailscale's v2 API (OAuth client credentials, auth
// keys, devices). This adapter answers the v2 calls it makes from Headscale's own API (through
// the operator's Headscale client) and passes everything else (the control protocol, including
// the /ts2021 upgrade) to Headscale unchanged. Never part of the product.
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect } from "node:net";
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Duplex } from "node:stream";
import { HeadscaleApi } from "../control/headscale-api.ts";
import { ControlPlaneError, type Device } from "../control/control-plane.ts";

export interface TailscaleApiAdapterOptions {
  /** Headscale's URL (http://host:port), for both its API and the control protocol. */
  readonly headscaleUrl: string;
  readonly headscaleApiKey: string;
  /** The OAuth client the Go operator is given (CLIENT_ID_FILE, CLIENT_SECRET_FILE). */
  readonly clientId: string;
  readonly clientSecret: string;
  /** MagicDNS suffix, for the devices' FQDNs (Tailscale's `name` field). */
  readonly baseDomain: string;
  readonly host: string;
  /** 0 picks a free port (see url). */
  readonly port: number;
}

const TOKEN_SECONDS = 3600;

export class TailscaleApiAdapter {
  /** v2 calls served, by route ("POST keys"), and those the adapter does not know ("unknown"). */
  readonly calls = new Map<string, number>();
  private readonly server: Server;
  private readonly options: TailscaleApiAdapterOptions;
  private readonly headscale: HeadscaleApi;
  private readonly tokens = new Set<string>();

  private constructor(options: TailscaleApiAdapterOptions) {
    this.options = options;
    this.headscale = new HeadscaleApi({ url: options.headscaleUrl, apiKey: options.headscaleApiKey });
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        const status = error instanceof ControlPlaneError && error.status >= 400 ? error.status : 502;
        reply(res, status, { message: (error as Error).message });
      });
    });
    this.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.tunnel(req, socket, head);
    });
  }

  static async start(options: TailscaleApiAdapterOptions): Promise<TailscaleApiAdapter> {
    const adapter = new TailscaleApiAdapter(options);
    await new Promise<void>((resolve, reject) => {
      adapter.server.once("error", reject);
      adapter.server.listen(options.port, options.host, () => {
        adapter.server.off("error", reject);
        resolve();
      });
    });
    return adapter;
  }

  /** Where the Go operator's OPERATOR_LOGIN_SERVER points. */
  get url(): string {
    const address = this.server.address();
    const port = typeof address === "object" && address !== null ? address.port : this.options.port;
    return `http://${this.options.host}:${String(port)}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }

  private count(route: string): void {
    this.calls.set(route, (this.calls.get(route) ?? 0) + 1);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.url);
    if (!url.pathname.startsWith("/api/v2/")) {
      this.forward(req, res);
      return;
    }
    const method = req.method ?? "GET";
    const body = await readBody(req);
    if (method === "POST" && url.pathname === "/api/v2/oauth/token") {
      this.count("POST oauth/token");
      this.issueToken(body, req, res);
      return;
    }
    if (!this.authorized(req)) {
      this.count("unauthorized");
      reply(res, 401, { message: "invalid or missing access token" });
      return;
    }
    const path = url.pathname.slice("/api/v2/".length).split("/").map(decodeURIComponent);
    const [first, second, third, fourth] = path;
    if (first === "tailnet" && second !== undefined && third === "keys") {
      if (method === "POST" && fourth === undefined) {
        this.count("POST keys");
        reply(res, 200, await this.createKey(body));
        return;
      }
      if (method === "DELETE" && fourth !== undefined && path.length === 4) {
        this.count("DELETE keys/:id");
        await this.headscale.revokeAuthKey(fourth);
        reply(res, 200, {});
        return;
      }
    }
    if (first === "tailnet" && second !== undefined && third === "devices" && method === "GET" && path.length === 3) {
      this.count("GET devices");
      reply(res, 200, { devices: (await this.headscale.listDevices()).map((device) => this.device(device)) });
      return;
    }
    if (first === "device" && second !== undefined && path.length === 2) {
      if (method === "GET") {
        this.count("GET device/:id");
        const device = await this.headscale.getDevice(second);
        if (device) reply(res, 200, this.device(device));
        else reply(res, 404, { message: "not found" });
        return;
      }
      if (method === "DELETE") {
        this.count("DELETE device/:id");
        await this.headscale.deleteDevice(second);
        reply(res, 200, {});
        return;
      }
    }
    this.count(`unknown ${method} ${url.pathname}`);
    reply(res, 404, { message: "not served by the sandbox adapter" });
  }

  /** OAuth 2.0 client credentials (RFC 6749 §4.4), form-encoded or with HTTP Basic auth. */
  private issueToken(body: string, req: IncomingMessage, res: ServerResponse): void {
    const form = new URLSearchParams(body);
    let id = form.get("client_id") ?? "";
    let secret = form.get("client_secret") ?? "";
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? "")?.[1];
    if (basic) {
      const decoded = Buffer.from(basic, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      id = decodeURIComponent(decoded.slice(0, colon));
      secret = decodeURIComponent(decoded.slice(colon + 1));
    }
    if (form.get("grant_type") !== "client_credentials" || !same(id, this.options.clientId) || !same(secret, this.options.clientSecret)) {
      reply(res, 401, { error: "invalid_client" });
      return;
    }
    const token = randomBytes(24).toString("hex");
    this.tokens.add(token);
    reply(res, 200, { access_token: token, token_type: "Bearer", expires_in: TOKEN_SECONDS });
  }

  private authorized(req: IncomingMessage): boolean {
    const token = /^Bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1];
    return token !== undefined && this.tokens.has(token);
  }

  private async createKey(body: string): Promise<Record<string, unknown>> {
    const request = JSON.parse(body || "{}") as {
      capabilities?: { devices?: { create?: { reusable?: boolean; ephemeral?: boolean; tags?: string[] } } };
      expirySeconds?: number;
      description?: string;
    };
    const create = request.capabilities?.devices?.create ?? {};
    const expirySeconds = request.expirySeconds && request.expirySeconds > 0 ? request.expirySeconds : 90 * 86_400;
    const key = await this.headscale.createAuthKey({
      tags: create.tags ?? [],
      reusable: create.reusable ?? false,
      ephemeral: create.ephemeral ?? false,
      expirySeconds,
    });
    const now = new Date();
    return {
      id: key.id,
      keyType: "auth",
      key: key.key,
      description: request.description ?? "",
      created: now.toISOString(),
      expires: new Date(now.getTime() + expirySeconds * 1000).toISOString(),
      capabilities: { devices: { create: { reusable: create.reusable ?? false, ephemeral: create.ephemeral ?? false, preauthorized: true, tags: create.tags ?? [] } } },
    };
  }

  /** Tailscale's device shape; nodeId is what tailscaled reports as its stable id (Headscale's node id). */
  private device(device: Device): Record<string, unknown> {
    return {
      id: device.id,
      nodeId: device.id,
      name: `${device.hostname}.${this.options.baseDomain}`,
      hostname: device.hostname,
      addresses: device.addresses,
      tags: device.tags,
      authorized: true,
    };
  }

  /** Any other HTTP request goes to Headscale as it came. */
  private forward(req: IncomingMessage, res: ServerResponse): void {
    const target = new URL(this.options.headscaleUrl);
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", (error) => {
      if (!res.headersSent) reply(res, 502, { message: error.message });
      else res.destroy();
    });
    req.pipe(upstream);
  }

  /** An upgrade (the Noise control protocol, DERP over HTTP): the request head, then raw bytes both ways. */
  private tunnel(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const target = new URL(this.options.headscaleUrl);
    const upstream = connect(Number(target.port || 80), target.hostname, () => {
      const lines = [`${req.method ?? "GET"} ${req.url ?? "/"} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i] ?? ""}: ${req.rawHeaders[i + 1] ?? ""}`);
      upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    const close = (): void => {
      upstream.destroy();
      socket.destroy();
    };
    upstream.on("error", close);
    socket.on("error", close);
    upstream.on("close", close);
    socket.on("close", close);
  }
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
