// Minimal HTTP(S) GET for readiness probes against sandbox servers with their own CA.
import { request as httpsRequest } from "node:https";
import { request as httpRequest } from "node:http";

export interface ProbeResponse {
  readonly status: number;
  readonly body: string;
}

export function httpGet(
  url: string,
  options: { ca?: string; token?: string; timeoutMs?: number } = {},
): Promise<ProbeResponse> {
  const target = new URL(url);
  const request = target.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      {
        method: "GET",
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
        timeout: options.timeoutMs ?? 2_000,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, body });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on("error", reject);
    req.end();
  });
}
