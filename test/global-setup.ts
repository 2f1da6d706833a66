// Starts one sandbox (kube-apiserver + etcd + Headscale) for the whole sandbox test run; each
// test file attaches to it. Runs inside the hub namespace made by src/sandbox/launch.ts.
import { Sandbox } from "../src/sandbox/sandbox.ts";

let sandbox: Sandbox | undefined;

export async function globalSetup(): Promise<void> {
  const started = Date.now();
  sandbox = await Sandbox.start();
  process.stderr.write(`sandbox ${sandbox.run.id} ready in ${Date.now() - started} ms\n`);
}

export async function globalTeardown(): Promise<void> {
  await sandbox?.stop();
}
