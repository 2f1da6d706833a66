// An in-memory ControlPlane for reconciler tests: records minted keys and deleted devices, and
// can be told to fail like a control plane with wrong credentials.
import type { AuthKey, AuthKeyRecord, ControlPlaneError, AuthKeyRequest, ControlPlane, Device } from "../../src/control/control-plane.ts";

export class FakeControlPlane implements ControlPlane {
  readonly loginServer = "http://control.test";
  /** Like Headscale: a device added with an authKeyId names the key it joined with. */
  linksDevicesToKeys = true;
  readonly keys: AuthKeyRequest[] = [];
  readonly devices = new Map<string, Device>();
  readonly deleted: string[] = [];
  readonly revoked: string[] = [];
  failWith: ControlPlaneError | undefined;

  createAuthKey(request: AuthKeyRequest): Promise<AuthKey> {
    if (this.failWith) return Promise.reject(this.failWith);
    this.keys.push(request);
    this.mintedAt.push(this.now());
    return Promise.resolve({ id: `id-${this.keys.length}`, key: `key-${this.keys.length}` });
  }

  revokeAuthKey(id: string): Promise<void> {
    this.revoked.push(id);
    return Promise.resolve();
  }

  /** Keys the control plane holds without this fake having minted them (another operator's, a crash's). */
  readonly foreignKeys: AuthKeyRecord[] = [];
  /** The control plane's clock, read when a key is minted. */
  now: () => number = () => 0;
  private readonly mintedAt: number[] = [];

  listAuthKeys(): Promise<AuthKeyRecord[]> {
    const minted = this.keys.map((request, i) => ({
      id: `id-${i + 1}`,
      tags: request.tags,
      createdAt: this.mintedAt[i] ?? 0,
      usable: !this.revoked.includes(`id-${i + 1}`),
      reusable: request.reusable ?? false,
      ephemeral: request.ephemeral ?? false,
    }));
    return Promise.resolve([...minted, ...this.foreignKeys.map((k) => ({ ...k, usable: k.usable && !this.revoked.includes(k.id) }))]);
  }

  /** Minted keys not revoked (the fake does not model use). */
  unrevokedKeyIds(): string[] {
    return this.keys.map((_, i) => `id-${i + 1}`).filter((id) => !this.revoked.includes(id));
  }

  listDevices(): Promise<Device[]> {
    return Promise.resolve([...this.devices.values()]);
  }

  getDevice(id: string): Promise<Device | undefined> {
    return Promise.resolve(this.devices.get(id));
  }

  deleteDevice(id: string): Promise<void> {
    this.deleted.push(id);
    this.devices.delete(id);
    return Promise.resolve();
  }
}
