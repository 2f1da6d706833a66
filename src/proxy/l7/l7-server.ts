// The Ingress data path: TLS terminated here (HTTP/2 and HTTP/1.1 by ALPN, on Node's own
// http2/http stack), each request routed by path to its backend Service over pooled keep-alive
// HTTP/1.1, bodies streamed both ways, upgrades (WebSocket) spliced after the backend's 101.
// Port 80 answers ACME HTTP-01 challenges and, when asked, redirects to https://.
import { createServer as createHttpServer, request as httpRequest, Agent as HttpAgent, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import { request as httpsRequest, Agent as HttpsAgent } from "node:https";
import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "../log.ts";
import type { HttpChallengeResponder, ServedCertificate } from "../tls/certificate-source.ts";
import type { RoutingTable } from "./routing-table.ts";
import { isReservedHeader } from "./identity.ts";

export interface L7ServerOptions {
  readonly log: Logger;
  /** Identity headers for a caller (whois); {} when unknown. */
  readonly identity: (address: string, port: number) => Promise<Record<string, string>>;
  readonly routes: () => RoutingTable;
  readonly httpRedirect: () => boolean;
  readonly challenges: () => HttpChallengeResponder | undefined;
}

/** Hop-by-hop headers (RFC 9110 7.6.1) and HTTP/2 pseudo-headers never cross the proxy. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "proxy-authorization", "proxy-authenticate", "http2-settings", "host"]);

const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64 });
// Backends on 443 have cluster certificates, not ours to verify (as Tailscale's operator does).
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, rejectUnauthorized: false });

function upstreamHeaders(headers: IncomingHttpHeaders, host: string, remote: string, identity: Record<string, string>): OutgoingHttpHeaders {
  const listed = new Set((headers.connection ?? "").toLowerCase().split(",").map((h) => h.trim()).filter(Boolean));
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name.startsWith(":") || HOP_BY_HOP.has(name) || listed.has(name) || isReservedHeader(name)) continue;
    out[name] = value;
  }
  if (headers.te === "trailers") out["te"] = "trailers";
  out["host"] = host;
  // The tailnet is the edge: nobody in front of this proxy is trusted to have set these.
  out["x-forwarded-for"] = remote;
  out["x-forwarded-proto"] = "https";
  out["x-forwarded-host"] = host;
  return { ...out, ...identity };
}

function downstreamHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const listed = new Set((headers.connection ?? "").toLowerCase().split(",").map((h) => h.trim()).filter(Boolean));
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    out[name] = value;
  }
  return out;
}

const requestHost = (req: IncomingMessage | Http2ServerRequest): string => String(req.headers[":authority"] ?? req.headers.host ?? "");

export class L7Server {
  private readonly options: L7ServerOptions;
  private readonly tls: Http2SecureServer;
  private readonly plain = createHttpServer((req, res) => {
    this.servePlain(req, res);
  });
  private readonly listeners: NetServer[] = [];

  /** The TLS side gets its certificate (setCertificate) before it listens; port 80 may listen first (ACME HTTP-01). */
  constructor(options: L7ServerOptions) {
    this.options = options;
    this.tls = createSecureServer({ allowHTTP1: true, minVersion: "TLSv1.2" }, (req, res) => {
      this.proxy(req, res);
    });
    // Long uploads, streams and idle WebSockets are the backend's business, not a proxy timeout's.
    this.tls.setTimeout(0);
    this.tls.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.upgrade(req, socket, head);
    });
    this.tls.on("tlsClientError", (error: Error) => {
      options.log.debug({ err: error }, "TLS handshake failed");
    });
  }

  /** New connections get the new certificate; open ones keep theirs. */
  setCertificate(certificate: ServedCertificate): void {
    this.tls.setSecureContext({ cert: certificate.certPem, key: certificate.keyPem });
  }

  /**
   * Listens on address:port (a tailnet IP of the device, so the source address is the caller's)
   * for TLS ("https") or plain HTTP ("http").
   */
  async listen(address: string, port: number, kind: "https" | "http"): Promise<void> {
    const server = kind === "https" ? this.tls : this.plain;
    const listener = createNetServer({ noDelay: true }, (socket: Socket) => {
      server.emit("connection", socket);
    });
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen({ host: address, port }, () => {
        listener.off("error", reject);
        resolve();
      });
    });
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    await Promise.all(this.listeners.map((l) => new Promise((resolve) => l.close(resolve))));
    this.tls.close();
    this.plain.close();
  }

  private proxy(req: Http2ServerRequest, res: Http2ServerResponse): void {
    const target = req.url;
    const route = this.options.routes().match(target);
    if (!route) {
      res.writeHead(404, { "content-type": "text/plain" }).end("no Ingress path matches\n");
      return;
    }
    const remote = req.socket.remoteAddress ?? "";
    const h2 = req.httpVersionMajor === 2;
    void this.options.identity(remote, req.socket.remotePort ?? 0).then((identity) => {
      const backend = new URL(route.backend);
      const send = backend.protocol === "https:" ? httpsRequest : httpRequest;
      const upstream = send({
        host: backend.hostname.replace(/^\[|\]$/g, ""),
        port: backend.port,
        method: req.method,
        path: target,
        headers: upstreamHeaders(req.headers, requestHost(req), remote, identity),
        agent: backend.protocol === "https:" ? httpsAgent : httpAgent,
      });
      upstream.on("response", (answer) => {
        const headers = downstreamHeaders(answer.headers);
        res.writeHead(answer.statusCode ?? 502, h2 ? headers : { ...headers });
        // Streaming responses (server-sent events, long polls) go out as they come; HTTP/2 sends
        // the headers at writeHead already, HTTP/1.1 only with the first body bytes otherwise.
        if (!h2) (res as unknown as ServerResponse).flushHeaders();
        answer.pipe(res);
        answer.on("error", () => res.destroy());
      });
      upstream.on("error", (error) => {
        this.options.log.warn({ err: error, backend: route.backend }, "backend request failed");
        if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" }).end(`backend unavailable: ${error.message}\n`);
        else res.destroy();
      });
      req.on("error", () => upstream.destroy());
      res.on("close", () => {
        if (!res.writableFinished) upstream.destroy();
      });
      req.pipe(upstream);
    });
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const target = req.url ?? "/";
    const route = this.options.routes().match(target);
    if (!route) {
      socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
      return;
    }
    const remote = req.socket.remoteAddress ?? "";
    void this.options.identity(remote, req.socket.remotePort ?? 0).then((identity) => {
      const backend = new URL(route.backend);
      const send = backend.protocol === "https:" ? httpsRequest : httpRequest;
      const headers = { ...upstreamHeaders(req.headers, requestHost(req), remote, identity), connection: "Upgrade", upgrade: req.headers.upgrade ?? "" };
      const upstream = send({ host: backend.hostname.replace(/^\[|\]$/g, ""), port: backend.port, method: req.method, path: target, headers, agent: false, rejectUnauthorized: false });
      upstream.on("upgrade", (answer, upstreamSocket, upstreamHead) => {
        const lines = [`HTTP/1.1 ${answer.statusCode ?? 101} ${answer.statusMessage ?? "Switching Protocols"}`];
        for (let i = 0; i < answer.rawHeaders.length; i += 2) lines.push(`${answer.rawHeaders[i] ?? ""}: ${answer.rawHeaders[i + 1] ?? ""}`);
        socket.write(`${lines.join("\r\n")}\r\n\r\n`);
        if (upstreamHead.length > 0) socket.write(upstreamHead);
        if (head.length > 0) upstreamSocket.write(head);
        upstreamSocket.pipe(socket).pipe(upstreamSocket);
        const close = (): void => {
          socket.destroy();
          upstreamSocket.destroy();
        };
        socket.on("error", close);
        upstreamSocket.on("error", close);
        socket.on("close", close);
        upstreamSocket.on("close", close);
      });
      upstream.on("response", (answer) => {
        // The backend declined the upgrade: relay its answer and close.
        const lines = [`HTTP/1.1 ${answer.statusCode ?? 502} ${answer.statusMessage ?? ""}`];
        for (let i = 0; i < answer.rawHeaders.length; i += 2) lines.push(`${answer.rawHeaders[i] ?? ""}: ${answer.rawHeaders[i + 1] ?? ""}`);
        socket.write(`${lines.join("\r\n")}\r\nconnection: close\r\n\r\n`);
        answer.pipe(socket);
      });
      upstream.on("error", () => {
        socket.end("HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
      });
      socket.on("error", () => upstream.destroy());
      upstream.end();
    });
  }

  private servePlain(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? "/";
    const challenge = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(url);
    if (challenge) {
      const answer = this.options.challenges()?.keyAuthorization(challenge[1] ?? "");
      if (answer !== undefined) {
        res.writeHead(200, { "content-type": "application/octet-stream" }).end(answer);
        return;
      }
    }
    if (this.options.httpRedirect()) {
      const host = (req.headers.host ?? "").replace(/:\d+$/, "");
      res.writeHead(301, { location: `https://${host}${url}` }).end();
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("this Ingress is served over https:// only (tailscale.com/http-redirect turns on a redirect)\n");
  }
}
