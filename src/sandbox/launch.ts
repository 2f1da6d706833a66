// Runs a command inside a fresh sandbox hub namespace and removes the whole sandbox afterwards.
// This is the only sandbox code that runs in the host's root namespace: it creates the hub and
// steps into it, so nothing the sandbox starts can bind to or route through host interfaces.
//
//   node src/sandbox/launch.ts -- <command> [args...]
import { ManagedProcess } from "../shared/process.ts";
import { ProcessRunner } from "../shared/exec.ts";
import { createRun, removeRun, sweepStaleRuns } from "./runs.ts";
import { NetworkNamespace } from "./netns.ts";
import { hubEnvironment } from "./hub.ts";

const USAGE = `usage: node src/sandbox/launch.ts -- <command> [args...]

Creates a sandbox hub network namespace (no link to the host's network), runs the command in it
with TNO_SANDBOX_* set, then removes every namespace, process and file of the run, also when the
command fails. Stale sandboxes of crashed runs are removed first. Needs root and iproute2.`;

async function main(argv: string[]): Promise<number> {
  const separator = argv.indexOf("--");
  const command = separator >= 0 ? argv.slice(separator + 1) : [];
  if (argv.includes("--help") || argv.includes("-h") || command.length === 0) {
    process.stderr.write(`${USAGE}\n`);
    return command.length === 0 && !argv.includes("--help") ? 2 : 0;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write("sandbox: network namespaces need root; run as root (CI and the dev machines are)\n");
    return 1;
  }
  const runner = new ProcessRunner();
  try {
    await runner.run(["ip", "-V"]);
  } catch {
    process.stderr.write("sandbox: the 'ip' command (iproute2) is missing; run scripts/install-deps.sh\n");
    return 1;
  }
  const stale = await sweepStaleRuns(runner);
  if (stale.length > 0) process.stderr.write(`sandbox: removed ${stale.length} stale sandbox run(s): ${stale.join(", ")}\n`);

  const run = await createRun();
  let child: ManagedProcess | undefined;
  const forward = (signal: NodeJS.Signals): void => child?.signal(signal);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  try {
    const hub = await NetworkNamespace.create(runner, run.hubNamespace);
    child = ManagedProcess.start({
      name: "sandboxed command",
      argv: hub.exec(command),
      env: { ...process.env, ...hubEnvironment(run) },
      // Signals from the terminal reach only the launcher, which forwards them once.
      group: true,
    });
    const status = await child.exited;
    return status.code ?? 1;
  } finally {
    await removeRun(runner, run.id);
  }
}

process.exitCode = await main(process.argv.slice(2));
