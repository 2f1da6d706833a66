// Stands in for the L7 proxy's Funnel listener (src/proxy/l7/l7-server.ts, listenProxied): every
// connection must open with a PROXY protocol v2 header, read by the proxy's own parser. Answers
// one HTTP request per connection with the source the header named, so a test can check what
// tailscaled's serve sends as it forwards a caller's connection.
//
//   node proxy-protocol-server.ts --name NAME --listen ADDR:PORT
import { createServer } from "node:net";
import { parseArgs } from "node:util";
import { splitHostPort } from "../../shared/listen.ts";
import { acceptProxied } from "../../proxy/l7/proxy-protocol.ts";

const { values } = parseArgs({ options: { name: { type: "string" }, listen: { type: "string" } } });
const name = values.name ?? "proxied";
const { host, port } = splitHostPort(values.listen ?? "127.0.0.1:8443");
createServer((socket) => {
  acceptProxied(socket, (ready, source) => {
    let request = "";
    ready.setEncoding("utf8");
    ready.on("data", (chunk: string) => {
      request += chunk;
      if (!request.includes("\r\n\r\n")) return;
      const body = `hello from ${name}\nproxied-source=${source ? `${source.address}:${source.port}` : "none"}\nremote=${ready.remoteAddress ?? ""}\n`;
      ready.end(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    });
    ready.resume();
  }, (reason) => process.stdout.write(`closed a connection without a PROXY header: ${reason}\n`));
}).listen(port, host, () => process.stdout.write(`listening on ${host}:${port}\n`));
process.on("SIGTERM", () => process.exit(0));
