// An in-memory ControlPlane for reconciler tests: records minted keys and deleted devices, and
// can be told to fail like a control plane with wrong credentials.
import type { ControlPlaneError, AuthKeyRequest, ControlPlane, Device } from "../../src/control/control-plane.ts";

export class FakeControlPlane implements ControlPlane {
  readonly loginServer = "http://control.test";
  readonly keys: AuthKeyRequest[] = [];
  readonly devices = new Map<string, Device>();
  readonly deleted: string[] = [];
  failWith: ControlPlaneError | undefined;

  createAuthKey(request: AuthKeyRequest): Promise<string> {
    if (this.failWith) return Promise.reject(this.failWith);
    this.keys.push(request);
    return Promise.resolve(`key-${this.keys.length}`);
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
