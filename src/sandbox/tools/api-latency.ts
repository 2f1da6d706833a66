// Kubernetes API latency from inside a device's namespace (bench/apiserver-proxy.ts): sequential
// GETs over one keep-alive connection, then whole LISTs, against one server (the API server
// directly, or through the API server proxy). Prints one JSON line.
//
//   node api-latency.ts --server https://IP --servername NAME --ca FILE --token T
//        --get /api/v1/namespaces/bench/pods --gets 50 --list /api/v1/namespaces/bench/configmaps --lists 5
import { readFileSync } from "node:fs";
import { Agent, request } from "node:https";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    server: { type: "string" }, servername: { type: "string" }, ca: { type: "string" }, token: { type: "string" },
    get: { type: "string" }, gets: { type: "string", default: "50" }, list: { type: "string" }, lists: { type: "string", default: "5" },
  },
});
const server = new URL(values.server ?? "");
const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(values.ca ?? ""), ...(values.servername ? { servername: values.servername } : {}) });

function fetchOnce(path: string): Promise<{ ms: number; bytes: number; items: number }> {
  const start = performance.now();
  return new Promise((done, fail) => {
    const req = request({ host: server.hostname, port: server.port || 443, path, agent, headers: { authorization: `Bearer ${values.token ?? ""}`, accept: "application/json" }, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        if (res.statusCode !== 200) {
          fail(new Error(`GET ${path}: ${res.statusCode ?? 0} ${body.toString().slice(0, 200)}`));
          return;
        }
        const items = (JSON.parse(body.toString()) as { items?: unknown[] }).items?.length ?? 0;
        done({ ms: performance.now() - start, bytes: body.length, items });
      });
    });
    req.on("error", fail);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}

const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
const at = (xs: number[], q: number): number => sorted(xs)[Math.min(xs.length - 1, Math.floor(xs.length * q))] ?? Number.NaN;

await fetchOnce(values.get ?? "/version"); // connection and TLS set up, not measured
const gets: number[] = [];
for (let i = 0; i < Number(values.gets); i++) gets.push((await fetchOnce(values.get ?? "/version")).ms);
const lists: number[] = [];
let listed = { bytes: 0, items: 0 };
for (let i = 0; i < Number(values.lists); i++) {
  const result = await fetchOnce(values.list ?? "/api");
  lists.push(result.ms);
  listed = result;
}
process.stdout.write(`${JSON.stringify({ getMedianMs: at(gets, 0.5), getP90Ms: at(gets, 0.9), listMedianMs: at(lists, 0.5), listBytes: listed.bytes, listItems: listed.items })}\n`);
agent.destroy();
