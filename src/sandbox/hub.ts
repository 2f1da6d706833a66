// The inside view of a sandbox run: which run this process belongs to, and the check that it
// really is inside the run's hub namespace (never the host's), done before anything binds.
import { statSync } from "node:fs";
import { runInfo, type RunInfo } from "./runs.ts";
import { HOST_MOUNT_NAMESPACE_ENV } from "./netns.ts";

const ENV_ID = "TNO_SANDBOX_ID";

export function hubEnvironment(run: RunInfo): Record<string, string> {
  // A launcher started inside another sandbox (the teardown tests do this) keeps the outermost
  // launcher's mount namespace: only there do registrations propagate to every hub.
  const hostMount = process.env[HOST_MOUNT_NAMESPACE_ENV] ?? `/proc/${process.pid}/ns/mnt`;
  return { [ENV_ID]: run.id, TNO_SANDBOX_DIR: run.dir, [HOST_MOUNT_NAMESPACE_ENV]: hostMount };
}

/** The run this process was launched into; throws a clear error outside a sandbox hub. */
export function currentRun(): RunInfo {
  const id = process.env[ENV_ID];
  if (!id) {
    throw new Error(
      "not inside a sandbox: start the command through `node src/sandbox/launch.ts -- <command>` " +
        "(`make test` and `make demo` do this)",
    );
  }
  const run = runInfo(id);
  let hubInode: number;
  try {
    hubInode = statSync(`/run/netns/${run.hubNamespace}`).ino;
  } catch {
    throw new Error(`sandbox ${id}: hub namespace ${run.hubNamespace} does not exist (was the run removed?)`);
  }
  if (statSync("/proc/self/ns/net").ino !== hubInode) {
    throw new Error(`sandbox ${id}: this process is not in the hub namespace ${run.hubNamespace}`);
  }
  return run;
}
