// Sandbox runs on this machine: each has an id, a directory and namespaces named after the id.
// A run whose owner process is gone (crash, SIGKILL, a closed terminal) is stale and is swept
// before a new run starts, so nothing a crashed run left behind piles up.
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CommandRunner } from "../shared/exec.ts";
import { listNamespaces, removeNamespace } from "./netns.ts";
import { removeCgroups } from "./cluster/node-mounts.ts";

/** Every sandbox namespace is called tno-<run id>-<role>. */
export const NAMESPACE_PREFIX = "tno-";

export function runsRoot(): string {
  return process.env["TNO_SANDBOX_ROOT"] ?? join(tmpdir(), "tailnet-operator-sandbox");
}

export interface RunInfo {
  readonly id: string;
  readonly dir: string;
  readonly hubNamespace: string;
}

export function namespacePrefix(id: string): string {
  return `${NAMESPACE_PREFIX}${id}-`;
}

export function runInfo(id: string): RunInfo {
  return { id, dir: join(runsRoot(), id), hubNamespace: `${namespacePrefix(id)}hub` };
}

/** The start time of a process in clock ticks, so a reused PID is not taken for the owner. */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 22; the command name (field 2) may contain spaces, so count from its closing paren.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** Creates the directory of a new run, owned by this process. */
export async function createRun(): Promise<RunInfo> {
  const info = runInfo(randomBytes(3).toString("hex"));
  await mkdir(info.dir, { recursive: true, mode: 0o700 });
  await writeFile(join(info.dir, "owner"), `${process.pid} ${processStartTime(process.pid) ?? ""}\n`);
  return info;
}

async function isLive(id: string): Promise<boolean> {
  try {
    const [pid, start] = (await readFile(join(runInfo(id).dir, "owner"), "utf8")).trim().split(" ");
    return start !== undefined && processStartTime(Number(pid)) === start;
  } catch {
    return false;
  }
}

/** Removes the run's namespaces (killing what runs in them) and its directory. */
export async function removeRun(runner: CommandRunner, id: string): Promise<string[]> {
  const names = await listNamespaces(runner, namespacePrefix(id));
  // The hub goes last: processes in the device namespaces are often children of the hub's.
  names.sort((a, b) => Number(a.endsWith("-hub")) - Number(b.endsWith("-hub")));
  for (const name of names) await removeNamespace(runner, name);
  // Containers run in network namespaces of their own; their nodes' cgroups find them.
  await removeCgroups(namespacePrefix(id), { prefix: true });
  await removeCreatedMountPoints(join(runInfo(id).dir, CREATED_MOUNT_POINTS));
  await rm(runInfo(id).dir, { recursive: true, force: true });
  return names;
}

/** Sweeps every run whose owner is gone; returns the ids removed. */
export async function sweepStaleRuns(runner: CommandRunner): Promise<string[]> {
  const ids = new Set<string>();
  for (const name of await listNamespaces(runner, NAMESPACE_PREFIX)) {
    const id = name.slice(NAMESPACE_PREFIX.length).split("-")[0];
    if (id) ids.add(id);
  }
  try {
    for (const entry of await readdir(runsRoot())) ids.add(entry);
  } catch {
    // No runs yet.
  }
  const removed: string[] = [];
  for (const id of ids) {
    if (await isLive(id)) continue;
    await removeRun(runner, id);
    removed.push(id);
  }
  return removed;
}

/** Lists the mount-point directories the pod runner had to create on the host. */
export const CREATED_MOUNT_POINTS = "created-mount-points";

/** Removes those directories, deepest first; only ones the runner itself created are listed. */
export async function removeCreatedMountPoints(file: string): Promise<void> {
  let paths: string[];
  try {
    paths = (await readFile(file, "utf8")).split("\n").filter(Boolean);
  } catch {
    return;
  }
  for (const path of [...new Set(paths)].sort((a, b) => b.length - a.length)) {
    await rm(path, { recursive: true, force: true }).catch(() => undefined);
  }
  await rm(file, { force: true });
}
