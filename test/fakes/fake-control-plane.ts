// An in-memory ControlPlane for reconciler tests: records minted keys and deleted devices, and
// can be told to fail like a control plane with wrong credentials.
import type { AuthKey, ControlPlaneError, AuthKeyRequest, ControlPlane, Device } from "../../src/control/control-plane.ts";

export class FakeControlPlane implements ControlPlane {
  readonly loginServer = "http://control.test";
  readonly keys: AuthKeyRequest[] = [];
  readonly devices = new Map<string, Device>();
  readonly deleted: string[] = [];
  readonly revoked: string[] = [];
  failWith: ControlPlaneError | undefined;

  createAuthKey(request: AuthKeyRequest): Promise<AuthKey> {
    if (this.failWith) return Promise.reject(this.failWith);
    this.keys.push(request);
    return Promise.resolve({ id: `id-${this.keys.length}`, key: `key-${this.keys.length}` });
  }

  revokeAuthKey(id: string): Promise<void> {
    this.revoked.push(id);
    return Promise.resolve();
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
