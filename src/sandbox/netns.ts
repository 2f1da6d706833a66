// Named network namespaces of one sandbox run. Every namespace name starts with the run's
// prefix, so a sweep can find (and a stale-run cleanup can remove) everything a run made.
import { mkdir, rm, writeFile } from "node:fs/promises";
import type { CommandRunner } from "../shared/exec.ts";

/** Where `ip netns exec` finds per-namespace overrides of /etc files. */
const ETC_NETNS = "/etc/netns";

/** Set by the launcher: the mount namespace that named namespaces must be registered in. */
export const HOST_MOUNT_NAMESPACE_ENV = "TNO_SANDBOX_HOST_MNT";

/**
 * Runs `ip netns add|del` in the launcher's mount namespace. The hub runs under `ip netns exec`,
 * which gives it a mount namespace that is a slave of the launcher's: a namespace registered
 * from inside the hub would be invisible to the launcher (so its cleanup could not find it),
 * while one registered in the launcher's propagates into the hub as well.
 */
function inHostMountNamespace(argv: readonly string[]): string[] {
  const mnt = process.env[HOST_MOUNT_NAMESPACE_ENV];
  return mnt ? ["nsenter", `--mount=${mnt}`, "--", ...argv] : [...argv];
}

/** A network namespace created by this sandbox, with no route out of the sandbox. */
export class NetworkNamespace {
  readonly name: string;
  private readonly runner: CommandRunner;

  private constructor(runner: CommandRunner, name: string) {
    this.runner = runner;
    this.name = name;
  }

  /**
   * Creates the namespace with loopback up. It also gets its own resolv.conf and hosts:
   * otherwise `ip netns exec` leaves the host's files visible, and a program that resolves a
   * name would send a query to the host's resolver, out of the sandbox.
   */
  static async create(runner: CommandRunner, name: string): Promise<NetworkNamespace> {
    const etc = `${ETC_NETNS}/${name}`;
    await mkdir(etc, { recursive: true });
    await writeFile(`${etc}/resolv.conf`, "# sandbox namespace: no resolver\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n");
    await writeFile(`${etc}/hosts`, "127.0.0.1 localhost\n::1 localhost\n");
    await runner.run(inHostMountNamespace(["ip", "netns", "add", name]));
    const ns = new NetworkNamespace(runner, name);
    await runner.run(ns.exec(["ip", "link", "set", "lo", "up"]));
    return ns;
  }

  /** argv that runs a command inside this namespace. */
  exec(argv: readonly string[]): string[] {
    return ["ip", "netns", "exec", this.name, ...argv];
  }

  /** Kills whatever still runs in the namespace, then deletes it; safe to call twice. */
  async delete(): Promise<void> {
    await removeNamespace(this.runner, this.name);
  }
}

/** Lists named namespaces whose name starts with prefix. */
export async function listNamespaces(runner: CommandRunner, prefix: string): Promise<string[]> {
  const { stdout } = await runner.run(["ip", "netns", "list"]);
  return stdout
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.startsWith(prefix));
}

/** PIDs of processes whose network namespace is the named one. */
export async function namespacePids(runner: CommandRunner, name: string): Promise<number[]> {
  try {
    const { stdout } = await runner.run(["ip", "netns", "pids", name]);
    return stdout.split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export async function removeNamespace(runner: CommandRunner, name: string): Promise<void> {
  for (const pid of await namespacePids(runner, name)) {
    if (pid === process.pid) continue;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  try {
    await runner.run(inHostMountNamespace(["ip", "netns", "del", name]));
  } catch {
    // Not there (deleted before, or never created).
  }
  await rm(`${ETC_NETNS}/${name}`, { recursive: true, force: true });
}
