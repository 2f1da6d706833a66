// Listening on "host:port" addresses as the programs' flags give them ("[::]:9002" for IPv6).
import type { Server } from "node:http";

export function splitHostPort(addrPort: string): { host: string; port: number } {
  const separator = addrPort.lastIndexOf(":");
  return { host: addrPort.slice(0, separator).replace(/^\[|\]$/g, ""), port: Number(addrPort.slice(separator + 1)) };
}

export async function listen(server: Server, addrPort: string): Promise<void> {
  const { host, port } = splitHostPort(addrPort);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
}
