// One proxied request: sent to its upstream over a pooled keep-alive connection, the request body
// streamed up, the answer streamed back with backpressure both ways.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import type { Dispatcher } from "undici";
import type { Logger } from "../log.ts";
import { returnedHeaders, type Upstream } from "./upstream.ts";

/** Whether the client's request has a body to send on (a GET normally has none). */
function hasBody(req: IncomingMessage | Http2ServerRequest): boolean {
  if (req.httpVersionMajor === 2) return !(req as Http2ServerRequest).stream.endAfterHeaders;
  return req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
}

/**
 * The upstream request's headers as undici takes them. `expect` goes: node's server has already
 * answered 100-continue and is reading the body, and undici refuses the header.
 */
function requestHeaders(headers: OutgoingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name === "expect") continue;
    out[name] = typeof value === "number" ? String(value) : value;
  }
  return out;
}

export function forward(upstream: Upstream, req: IncomingMessage | Http2ServerRequest, res: ServerResponse, log: Logger): void {
  const h2 = req.httpVersionMajor === 2;
  let controller: Dispatcher.DispatchController | undefined;
  let clientGone = false;
  let bodyStarted = false;
  res.on("drain", () => controller?.resume());
  res.on("close", () => {
    if (res.writableFinished) return;
    clientGone = true;
    controller?.abort(new Error("the client went away"));
  });
  req.on("error", () => {
    clientGone = true;
    controller?.abort(new Error("the client's request failed"));
  });
  upstream.pool.dispatch(
    {
      origin: upstream.origin.origin,
      path: upstream.path,
      method: req.method ?? "GET",
      headers: requestHeaders(upstream.headers),
      body: hasBody(req) ? req : null,
    },
    {
      onRequestStart(c) {
        controller = c;
        if (clientGone) c.abort(new Error("the client went away"));
      },
      onResponseStart(_c, statusCode, headers) {
        // 1xx answers (103 Early Hints) are not relayed; the final answer follows.
        if (statusCode < 200) return;
        const out = returnedHeaders(headers);
        res.writeHead(statusCode, h2 ? out : { ...out });
        // HTTP/2 sends the headers at writeHead; HTTP/1.1 only with the first body bytes. When
        // those are already here (most responses: they came in the same read), headers and body
        // leave together, one TLS record and one packet fewer per small response. A streaming
        // response (server-sent events, long polls, watches) whose body is not here yet gets its
        // headers by the next turn of the event loop.
        if (!h2) {
          setImmediate(() => {
            if (!bodyStarted && !res.writableEnded && !res.destroyed) res.flushHeaders();
          });
        }
      },
      onResponseData(c, chunk) {
        bodyStarted = true;
        if (!res.write(chunk)) c.pause();
      },
      onResponseEnd() {
        res.end();
      },
      onResponseError(_c, error) {
        if (clientGone) return;
        log.warn({ err: error, upstream: upstream.origin.origin }, "upstream request failed");
        if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" }).end(`backend unavailable: ${error.message}\n`);
        else res.destroy();
      },
    },
  );
}
