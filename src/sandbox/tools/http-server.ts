// A tiny HTTP server that stands in for a workload (the pods behind a Service, or a service on
// a tailnet device). It answers every request with a fixed first line naming itself, followed
// by what it saw, so tests can tell which backend answered and from which source address.
//
//   node http-server.ts --name NAME --listen ADDR:PORT [--listen ADDR:PORT ...]
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { splitHostPort } from "../../shared/listen.ts";

const { values } = parseArgs({
  options: { name: { type: "string" }, listen: { type: "string", multiple: true } },
});
const name = values.name ?? "backend";
for (const listen of values.listen ?? []) {
  const { host, port } = splitHostPort(listen);
  createServer((req, res) => {
    res.setHeader("content-type", "text/plain");
    res.setHeader("x-served-by", name);
    res.end(`hello from ${name}\npath=${req.url ?? ""}\nremote=${req.socket.remoteAddress ?? ""}\nhost=${req.headers.host ?? ""}\n`);
  }).listen(port, host, () => process.stdout.write(`listening on ${listen}\n`));
}
process.on("SIGTERM", () => process.exit(0));
