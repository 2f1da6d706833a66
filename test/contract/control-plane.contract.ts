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
      const { key, id: keyId } = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
      assert.ok(key.length > 10);
      assert.ok(keyId.length > 0 && keyId !== key, "a key has an id of its own");
      const id = await join(key, "contract-a");
      const device = await controlPlane.getDevice(id);
      assert.equal(device?.id, id);
      assert.equal(device.hostname, "contract-a");
      assert.deepEqual(device.tags, ["tag:k8s"]);
      const listed = (await controlPlane.listDevices()).find((d) => d.id === id);
      // The link that finds a device whose id never reached a Secret; where the control plane
      // has none, the operator must not pretend (it lists nothing for it).
      assert.equal(listed?.authKeyId, controlPlane.linksDevicesToKeys ? keyId : undefined);
      await assert.rejects(join(key, "contract-a2"), "a used single-use key joins no second device");
    });

    it("deletes a device, and deleting a missing device is not an error", async () => {
      const { controlPlane, join } = subject();
      const id = await join((await controlPlane.createAuthKey({ tags: ["tag:k8s"] })).key, "contract-b");
      await controlPlane.deleteDevice(id);
      assert.equal(await controlPlane.getDevice(id), undefined);
      await controlPlane.deleteDevice(id);
    });

    it("revokes an unused key so it joins nothing; revoking again, or an unknown key, is not an error", async () => {
      const { controlPlane, join } = subject();
      const minted = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
      await controlPlane.revokeAuthKey(minted.id);
      await assert.rejects(join(minted.key, "contract-revoked"), "a revoked key joins no device");
      await controlPlane.revokeAuthKey(minted.id);
      await controlPlane.revokeAuthKey("999999");
    });

    it("lists its keys with their tags and creation time; a used or revoked key is no longer usable", async () => {
      const { controlPlane, join } = subject();
      const before = Date.now() - 60_000;
      const used = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
      const revoked = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
      const fresh = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
      const id = await join(used.key, "contract-keys");
      await controlPlane.revokeAuthKey(revoked.id);
      const byId = new Map((await controlPlane.listAuthKeys()).map((k) => [k.id, k]));
      assert.deepEqual(byId.get(fresh.id)?.tags, ["tag:k8s"]);
      assert.equal(byId.get(fresh.id)?.usable, true);
      assert.ok((byId.get(fresh.id)?.createdAt ?? 0) > before, "the creation time is the control plane's, in ms");
      assert.equal(byId.get(used.id)?.usable ?? false, false, "a used single-use key joins nothing more");
      assert.equal(byId.get(revoked.id)?.usable ?? false, false);
      await controlPlane.revokeAuthKey(fresh.id);
      await controlPlane.deleteDevice(id);
    });

    it("lists devices with the hostname they reported and their tags", async () => {
      const { controlPlane, join } = subject();
      const id = await join((await controlPlane.createAuthKey({ tags: ["tag:k8s"] })).key, "contract-c");
      const listed = (await controlPlane.listDevices()).find((d) => d.id === id);
      assert.equal(listed?.hostname, "contract-c");
      assert.deepEqual(listed.tags, ["tag:k8s"]);
      await controlPlane.deleteDevice(id);
      assert.equal((await controlPlane.listDevices()).find((d) => d.id === id), undefined);
    });

    it("rejects wrong credentials with a non-retryable error", async () => {
      const { badCredentials } = subject();
      await assert.rejects(badCredentials.createAuthKey({ tags: ["tag:k8s"] }), (error: unknown) => {
        return error instanceof ControlPlaneError && error.status === 401 && !error.retryable;
      });
    });
  });
}
