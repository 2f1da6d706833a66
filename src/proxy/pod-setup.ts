// What a stock container lacks and the proxy needs, set up the least-privileged way:
// - `init`: the forwarding sysctls, written by a short-lived privileged init container (the
//   kubelet rejects them as pod sysctls unless allow-listed; /proc/sys is read-only otherwise);
// - /dev/net/tun, created by the long-running container itself with CAP_MKNOD (the runtime's
//   default device rules allow c 10:200, but nothing creates the node).
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import type { CommandRunner } from "../shared/exec.ts";

/** The only sysctls `tailnet-proxy init` writes: it runs privileged, so it takes no others. */
const FORWARDING_SYSCTLS: Readonly<Record<string, string>> = {
  "net.ipv4.ip_forward": "/proc/sys/net/ipv4/ip_forward",
  "net.ipv6.conf.all.forwarding": "/proc/sys/net/ipv6/conf/all/forwarding",
};

/** Parses `name=value` arguments; throws naming any sysctl that is not a forwarding one. */
export function parseSysctls(args: readonly string[]): { path: string; name: string; value: string }[] {
  if (args.length === 0) throw new Error("usage: tailnet-proxy init net.ipv4.ip_forward=1 [net.ipv6.conf.all.forwarding=1]");
  return args.map((arg) => {
    const [name = "", value = ""] = arg.split("=", 2);
    const path = FORWARDING_SYSCTLS[name];
    if (!path || !/^[01]$/.test(value)) {
      throw new Error(`init: ${arg} is not allowed; only ${Object.keys(FORWARDING_SYSCTLS).join(", ")} set to 0 or 1`);
    }
    return { path, name, value };
  });
}

export async function writeSysctls(args: readonly string[]): Promise<string[]> {
  const done: string[] = [];
  for (const { path, name, value } of parseSysctls(args)) {
    try {
      await writeFile(path, `${value}\n`);
    } catch (error) {
      throw new Error(`init: cannot set ${name}=${value} (${(error as Error).message}); the init container must be privileged`);
    }
    done.push(`${name}=${value}`);
  }
  return done;
}

export const TUN_DEVICE = "/dev/net/tun";

/** Creates /dev/net/tun when the container has none; returns whether it had to. */
export async function ensureTunDevice(runner: CommandRunner, device = TUN_DEVICE): Promise<boolean> {
  if (existsSync(device)) return false;
  try {
    await mkdir(device.slice(0, device.lastIndexOf("/")), { recursive: true });
    await runner.run(["mknod", "-m", "0600", device, "c", "10", "200"]);
  } catch (error) {
    throw new Error(`${device} is missing and cannot be created (${(error as Error).message}): the proxy container needs CAP_MKNOD, or the device mounted`, { cause: error });
  }
  return true;
}
