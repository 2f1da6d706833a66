// Reading an HTTP answer's body, whole or as newline-delimited JSON (a Kubernetes watch): the
// operator's API client and the proxy's own API access both stream watches this way.
import type { IncomingMessage } from "node:http";

/**
 * The whole body as text. Its listeners come off once it settles: their closures hold the promise,
 * and with it the text, for as long as the agent keeps the response's socket (a 450 KiB page of a
 * list was still held this way after the operator's start).
 */
export function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
    };
    const settle = (): void => {
      res.off("data", onData).off("end", onEnd).off("error", onError);
    };
    const onEnd = (): void => {
      settle();
      resolve(Buffer.concat(chunks).toString("utf8"));
    };
    const onError = (error: Error): void => {
      settle();
      reject(error);
    };
    res.on("data", onData).on("end", onEnd).on("error", onError);
  });
}

/**
 * Hands each JSON line of the body to onLine until the stream ends (resolves) or fails
 * (rejects: a throw from onLine, a broken connection; what names it in the error). The first
 * failure settles it and destroys the stream: lines already buffered after it are not delivered.
 */
export function readJsonLines(res: IncomingMessage, what: string, onLine: (value: unknown) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let pending = "";
    let failure: Error | undefined;
    const fail = (error: Error): void => {
      failure ??= error;
      res.destroy();
      reject(failure);
    };
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      pending += chunk;
      for (let newline = pending.indexOf("\n"); newline >= 0 && failure === undefined; newline = pending.indexOf("\n")) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (line === "") continue;
        try {
          onLine(JSON.parse(line));
        } catch (error) {
          fail(error as Error);
        }
      }
    });
    res.on("end", () => {
      if (failure === undefined) resolve();
    });
    res.on("error", fail);
    res.on("close", () => {
      if (!res.complete) fail(new Error(`${what}: connection closed`));
    });
  });
}
