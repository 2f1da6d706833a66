// A sandbox run leaves nothing behind: not after a normal exit, and not after a crash (the
// next run sweeps it). Runs nested launchers from inside this run's hub.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { spawn } from "node:child_process";
import { ProcessRunner } from "../../src/shared/exec.ts";
import { listNamespaces } from "../../src/sandbox/netns.ts";
import { namespacePrefix, runInfo } from "../../src/sandbox/runs.ts";

const runner = new ProcessRunner();
const launcher = fileURLToPath(new URL("../../src/sandbox/launch.ts", import.meta.url));
const fixture = fileURLToPath(new URL("../fixtures/partial-sandbox.ts", import.meta.url));

/** Running, not a zombie: a killed orphan may wait a while for init to reap it. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

interface Started {
  readonly id: string;
  readonly sleeperPid: number;
}

async function leftovers({ id, sleeperPid }: Started): Promise<string[]> {
  const found: string[] = await listNamespaces(runner, namespacePrefix(id));
  if (existsSync(runInfo(id).dir)) found.push(runInfo(id).dir);
  if (existsSync(`/run/tailnet-operator-test-mountpoint-${id}`)) found.push("mount point");
  if (existsSync(`/etc/netns/${namespacePrefix(id)}hub`)) found.push("/etc/netns entry");
  if (isAlive(sleeperPid)) found.push(`process ${sleeperPid} in a run namespace`);
  return found;
}

function startLauncher(extra: string[]): { child: ReturnType<typeof spawn>; ready: Promise<Started>; output: () => string } {
  const child = spawn(process.execPath, [launcher, "--", process.execPath, fixture, ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const ready = new Promise<Started>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /READY (\w+) (\d+)/.exec(output);
      if (match?.[1] && match[2]) resolve({ id: match[1], sleeperPid: Number(match[2]) });
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", () => {
      reject(new Error(`launcher exited before READY:\n${output}`));
    });
  });
  return { child, ready, output: () => output };
}

describe("sandbox teardown", () => {
  it("removes namespaces, processes, mount points and files when the command exits", async () => {
    const { child, ready } = startLauncher([]);
    const started = await ready;
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    assert.equal(code, 0);
    assert.deepEqual(await leftovers(started), []);
  });

  it("sweeps a crashed run (launcher and command killed) at the next start", async () => {
    const { child, ready } = startLauncher(["--wait"]);
    const started = await ready;
    // Kill the launcher first so it cannot clean up, then its command: a crash of both.
    process.kill(child.pid!, "SIGKILL");
    await runner.run(["pkill", "-KILL", "-f", fixture]).catch(() => undefined);
    assert.ok((await leftovers(started)).length > 0, "the crash left something behind to sweep");

    const next = startLauncher([]);
    await next.ready;
    await new Promise((resolve) => next.child.once("exit", resolve));
    assert.match(next.output(), new RegExp(`removed \\d+ stale sandbox run\\(s\\):.*${started.id}`));
    assert.deepEqual(await leftovers(started), []);
  });
});
