// The L7 data path of Ingress and API server proxies: TLS terminated here (HTTP/2 and HTTP/1.1 by
// ALPN, on Node's own http2/http stack), each request sent where the upstream policy says over
// pooled keep-alive HTTP/1.1, bodies streamed both ways, upgrades (WebSocket, SPDY) spliced after
// the upstream's 101. Port 80 answers ACME HTTP-01 challenges and, when asked, redirects to
// https:// or (plainHttp) serves like 443 without TLS; port 443 answers TLS-ALPN-01 challenges
// while one is pending.
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { request as httpsRequest } from "node:https";
import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import { createSecureContext, TLSSocket } from "node:tls";
import type { Duplex } from "node:stream";
import type { Logger } from "../log.ts";
import type { ChallengeResponder, ServedCertificate } from "../tls/certificate-source.ts";
import { parseClientHello } from "../tls/client-hello.ts";
import { type IncomingCall, type Upstream, type UpstreamPolicy } from "./upstream.ts";
import { forward } from "./forward.ts";
import { acceptProxied, type ProxiedSource } from "./proxy-protocol.ts";

export interface L7ServerOptions {
  readonly log: Logger;
  /** Where each request goes (an Ingress's routes, or the API server). */
  readonly upstream: UpstreamPolicy;
  readonly httpRedirect: () => boolean;
  /** Plain HTTP on the "http" listeners is served like HTTPS (no TLS at all; the user asked for it). */
  readonly plainHttp?: () => boolean;
  readonly challenges: () => ChallengeResponder | undefined;
}

const requestHost = (req: IncomingMessage | Http2ServerRequest): string => String(req.headers[":authority"] ?? req.headers.host ?? "");

/** Callers behind tailscaled's serve, by the loopback port its forwarded connection came from. */
type ProxiedSources = ReadonlyMap<number, ProxiedSource>;

function incomingCall(req: IncomingMessage | Http2ServerRequest, secure: boolean, proxied: ProxiedSources): IncomingCall {
  const local = { address: req.socket.remoteAddress ?? "", port: req.socket.remotePort ?? 0 };
  const caller = (LOOPBACK.has(local.address) ? proxied.get(local.port) : undefined) ?? local;
  return {
    method: req.method ?? "GET",
    path: req.url ?? "/",
    headers: req.headers,
    host: requestHost(req),
    remoteAddress: caller.address,
    remotePort: caller.port,
    secure,
  };
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "::ffff:127.0.0.1"]);
const ACME_TLS_ALPN = "acme-tls/1";
/** How long a connection may take to send its ClientHello while a TLS-ALPN-01 challenge is pending. */
const HELLO_TIMEOUT_MS = 10_000;

const send = (upstream: Upstream): typeof httpRequest => (upstream.origin.protocol === "https:" ? httpsRequest : httpRequest);
const hostOf = (origin: URL): string => origin.hostname.replace(/^\[|\]$/g, "");

export class L7Server {
  private readonly options: L7ServerOptions;
  private readonly tls: Http2SecureServer;
  private readonly plain = createHttpServer((req, res) => {
    this.servePlain(req, res);
  });
  private readonly listeners: NetServer[] = [];
  private readonly proxied = new Map<number, ProxiedSource>();

  /** The TLS side gets its certificate (setCertificate) before it listens; port 80 may listen first (ACME HTTP-01). */
  constructor(options: L7ServerOptions) {
    this.options = options;
    this.tls = createSecureServer({ allowHTTP1: true, minVersion: "TLSv1.2" }, (req, res) => {
      this.proxy(req, res, true);
    });
    // Long uploads, streams and idle WebSockets are the backend's business, not a proxy timeout's.
    this.tls.setTimeout(0);
    this.plain.setTimeout(0);
    const upgrade = (secure: boolean) => (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
      this.upgrade(req, socket, head, secure);
    };
    this.tls.on("upgrade", upgrade(true));
    this.plain.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (this.options.plainHttp?.()) upgrade(false)(req, socket, head);
      else socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
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
   * for TLS ("https") or plain HTTP ("http"); resolves with the port it got.
   */
  async listen(address: string, port: number, kind: "https" | "http"): Promise<number> {
    const listener = createNetServer({ noDelay: true }, (socket: Socket) => {
      if (kind === "http") this.plain.emit("connection", socket);
      else if (this.options.challenges()?.alpnPending()) this.acceptDuringAlpnChallenge(socket);
      else this.tls.emit("connection", socket);
    });
    return this.open(listener, address, port);
  }

  /**
   * Listens on loopback for HTTPS connections that tailscaled's serve forwards (Funnel), each led
   * by a PROXY protocol v2 header naming the caller; anything without one is closed.
   */
  async listenProxied(address: string, port: number): Promise<number> {
    const listener = createNetServer({ noDelay: true }, (socket: Socket) => {
      const loopbackPort = socket.remotePort ?? 0;
      acceptProxied(socket, (ready, source) => {
        if (source) {
          this.proxied.set(loopbackPort, source);
          ready.once("close", () => this.proxied.delete(loopbackPort));
        }
        this.tls.emit("connection", ready);
      }, (reason) => {
        this.options.log.warn({ reason }, "closed a forwarded connection without a PROXY protocol header");
      });
    });
    return this.open(listener, address, port);
  }

  /**
   * While a TLS-ALPN-01 challenge is pending (seconds per order), reads each new connection's
   * ClientHello: a validator's (ALPN "acme-tls/1" and a name with a pending challenge) gets the
   * challenge certificate and nothing else (RFC 8737 section 3); every other connection goes to
   * the HTTPS server with the bytes read put back.
   */
  private acceptDuringAlpnChallenge(socket: Socket): void {
    const chunks: Buffer[] = [];
    let received = 0;
    /** Bytes to wait for: the first record whole (its length is in its 5-byte header). */
    let needed: number | undefined;
    let answer: TLSSocket | undefined;
    // One deadline for the hello and, for a validator, the whole exchange: the name is known to
    // the tailnet, so nobody may hold sockets open through it.
    const deadline = setTimeout(() => (answer ?? socket).destroy(), HELLO_TIMEOUT_MS);
    socket.once("close", () => {
      clearTimeout(deadline);
    });
    socket.on("error", () => undefined); // a reset while reading the hello; "close" follows
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      received += chunk.length;
      // Joined and parsed once, when the first record is whole, not for every segment of a
      // hello sent piece by piece.
      if (needed === undefined) {
        if (received < 5) return;
        const header = Buffer.concat(chunks, received);
        needed = header.readUInt8(0) === 0x16 ? 5 + header.readUInt16BE(3) : 0;
      }
      if (received < needed) return;
      const head = Buffer.concat(chunks, received);
      const hello = parseClientHello(head);
      socket.off("data", onData);
      socket.pause();
      socket.unshift(head);
      const serverName = hello.kind === "hello" ? hello.serverName : undefined;
      const challenge = hello.kind === "hello" && hello.alpn.includes(ACME_TLS_ALPN) && serverName !== undefined
        ? this.options.challenges()?.alpnCertificate(serverName)
        : undefined;
      if (!challenge) {
        clearTimeout(deadline);
        this.tls.emit("connection", socket);
        return;
      }
      this.options.log.info({ serverName, from: socket.remoteAddress }, "answering a TLS-ALPN-01 validation");
      try {
        answer = new TLSSocket(socket, {
          isServer: true,
          secureContext: createSecureContext({ cert: challenge.certPem, key: challenge.keyPem, minVersion: "TLSv1.2" }),
          ALPNProtocols: [ACME_TLS_ALPN],
        });
      } catch (error) {
        this.options.log.warn({ err: error }, "cannot answer a TLS-ALPN-01 validation");
        socket.destroy();
        return;
      }
      // The validator closes once it has checked the certificate; nothing is served over it.
      answer.on("secure", () => answer?.end());
      answer.on("error", (error: Error) => {
        this.options.log.debug({ err: error }, "TLS-ALPN-01 handshake failed");
        answer?.destroy();
      });
    };
    socket.on("data", onData);
  }

  /** Binds a listener and keeps it for close(); resolves with the port it got. */
  private async open(listener: NetServer, address: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen({ host: address, port }, () => {
        listener.off("error", reject);
        resolve();
      });
    });
    this.listeners.push(listener);
    return (listener.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    await Promise.all(this.listeners.map((l) => new Promise((resolve) => l.close(resolve))));
    this.tls.close();
    this.plain.close();
  }

  private proxy(req: Http2ServerRequest | IncomingMessage, response: Http2ServerResponse | ServerResponse, secure: boolean): void {
    // Node's HTTP/2 compatibility API has the same members used here; one type keeps it readable.
    const res = response as ServerResponse;
    void this.options.upstream.decide(incomingCall(req, secure, this.proxied)).then((decision) => {
      if ("refuse" in decision) {
        res.writeHead(decision.refuse.status, { "content-type": "text/plain" }).end(`${decision.refuse.message}\n`);
        return;
      }
      forward(decision.upstream, req, res, this.options.log);
    }, (error: unknown) => {
      this.options.log.error({ err: error }, "cannot decide where a request goes");
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" }).end("internal error\n");
    });
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, secure: boolean): void {
    const statusLines = (status: number, message: string, rawHeaders: readonly string[]): string[] => {
      const lines = [`HTTP/1.1 ${status} ${message}`];
      for (let i = 0; i < rawHeaders.length; i += 2) lines.push(`${rawHeaders[i] ?? ""}: ${rawHeaders[i + 1] ?? ""}`);
      return lines;
    };
    void this.options.upstream.decide(incomingCall(req, secure, this.proxied)).then((decision) => {
      if ("refuse" in decision) {
        const body = `${decision.refuse.message}\n`;
        socket.end(`HTTP/1.1 ${decision.refuse.status} Refused\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
        return;
      }
      const { upstream } = decision;
      const headers = { ...upstream.headers, connection: "Upgrade", upgrade: req.headers.upgrade ?? "" };
      // An upgraded connection is not returned to a pool: a connection of its own.
      const request = send(upstream)({ host: hostOf(upstream.origin), port: upstream.origin.port, method: req.method, path: upstream.path, headers, agent: false, ...upstream.tls });
      request.on("upgrade", (answer, upstreamSocket, upstreamHead) => {
        socket.write(`${statusLines(answer.statusCode ?? 101, answer.statusMessage ?? "Switching Protocols", answer.rawHeaders).join("\r\n")}\r\n\r\n`);
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
      request.on("response", (answer) => {
        // The upstream declined the upgrade: relay its answer and close.
        socket.write(`${statusLines(answer.statusCode ?? 502, answer.statusMessage ?? "", answer.rawHeaders).join("\r\n")}\r\nconnection: close\r\n\r\n`);
        answer.pipe(socket);
      });
      request.on("error", () => {
        socket.end("HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
      });
      socket.on("error", () => request.destroy());
      request.end();
    }, () => {
      socket.end("HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    });
  }

  private servePlain(req: IncomingMessage, res: ServerResponse): void {
    if (this.options.plainHttp?.()) {
      this.proxy(req, res, false);
      return;
    }
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
