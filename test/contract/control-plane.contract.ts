// The ControlPlane contract: what the operator relies on from any control plane. It runs
// against the Tailscale API fake (unit tests) and against real Headscale (sandbox tests), so
// the fake cannot drift from a real control server's behaviour.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ControlPlaneError, type ControlPlane } from "../../src/control/control-plane.ts";

export interface ContractSubject {
  readonly controlPlane: ControlPlane;
  /** A client of the same control plane with wrong credentials. */
  readonly badCredentials: ControlPlane;
  /** Logs a device in with the key, as tailscaled would; returns its device id. */
  readonly join: (key: string, hostname: string) => Promise<string>;
}

export function controlPlaneContract(name: string, subject: () => ContractSubject): void {
  describe(`ControlPlane contract: ${name}`, () => {
    it("mints a single-use key whose device joins with the requested tags", async () => {
      const { controlPlane, join } = subject();
      const key = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
      assert.ok(key.length > 10);
      const id = await join(key, "contract-a");
      const device = await controlPlane.getDevice(id);
      assert.equal(device?.id, id);
      assert.equal(device.hostname, "contract-a");
      assert.deepEqual(device.tags, ["tag:k8s"]);
      await assert.rejects(join(key, "contract-a2"), "a used single-use key joins no second device");
    });

    it("deletes a device, and deleting a missing device is not an error", async () => {
      const { controlPlane, join } = subject();
      const id = await join(await controlPlane.createAuthKey({ tags: ["tag:k8s"] }), "contract-b");
      await controlPlane.deleteDevice(id);
      assert.equal(await controlPlane.getDevice(id), undefined);
      await controlPlane.deleteDevice(id);
    });

    it("rejects wrong credentials with a non-retryable error", async () => {
      const { badCredentials } = subject();
      await assert.rejects(badCredentials.createAuthKey({ tags: ["tag:k8s"] }), (error: unknown) => {
        return error instanceof ControlPlaneError && error.status === 401 && !error.retryable;
      });
    });
  });
}
