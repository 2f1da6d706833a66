// An HTTP server that answers GET /?bytes=N with N bytes, for throughput figures.
//
//   node bulk-server.ts --listen ADDR:PORT
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { splitHostPort } from "../../shared/listen.ts";

const { values } = parseArgs({ options: { listen: { type: "string" } } });
const { host, port } = splitHostPort(values.listen ?? "0.0.0.0:8080");
const chunk = Buffer.alloc(64 * 1024, 0x61);
createServer((req, res) => {
  let left = Number(new URL(req.url ?? "/", "http://x").searchParams.get("bytes") ?? 0);
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(left) });
  const pump = (): void => {
    while (left > 0) {
      const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= piece.length;
      if (!res.write(piece)) {
        res.once("drain", pump);
        return;
      }
    }
    res.end();
  };
  pump();
}).listen(port, host, () => process.stdout.write(`listening on ${values.listen ?? ""}\n`));
process.on("SIGTERM", () => process.exit(0));
