// A UDP echo server standing in for a service on a tailnet device: every datagram is answered
// with a line naming the server, the datagram and its source, so tests see who answered.
//
//   node udp-echo.ts --name NAME --port PORT
import { createSocket } from "node:dgram";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { name: { type: "string" }, port: { type: "string" } } });
const name = values.name ?? "udp-echo";
const socket = createSocket("udp4");
socket.on("message", (message, remote) => {
  socket.send(`echo from ${name}: ${message.toString("utf8")} (remote=${remote.address})`, remote.port, remote.address);
});
socket.bind(Number(values.port ?? 5300), "0.0.0.0", () => process.stdout.write(`listening on udp ${values.port ?? 5300}\n`));
process.on("SIGTERM", () => process.exit(0));
