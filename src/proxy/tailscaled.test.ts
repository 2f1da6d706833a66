import { it } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findOnPath, requireTailscaleBinaries } from "./tailscaled.ts";

it("finds tailscaled and tailscale on the PATH, and names whichever is missing", () => {
  const root = mkdtempSync(join(tmpdir(), "tailnet-proxy-path-"));
  try {
    const [a, b] = [join(root, "a"), join(root, "b")];
    mkdirSync(a);
    mkdirSync(b);
    writeFileSync(join(a, "tailscale"), "", { mode: 0o644 }); // not executable: skipped
    writeFileSync(join(b, "tailscale"), "");
    chmodSync(join(b, "tailscale"), 0o755);
    mkdirSync(join(a, "tailscaled")); // a directory is not a program
    const path = `${a}::${b}`;
    assert.equal(findOnPath("tailscale", path), join(b, "tailscale"));
    assert.equal(findOnPath("tailscaled", path), undefined);
    assert.throws(() => {
      requireTailscaleBinaries(path);
    }, (error: Error) => error.message === `tailscaled not found on PATH (${path}): this image lacks it; run the tailnet-operator proxy image (docs/images.md)`);
    assert.throws(() => {
      requireTailscaleBinaries("");
    }, /^Error: tailscaled and tailscale not found on PATH \(empty\): this image lacks them/);
    writeFileSync(join(b, "tailscaled"), "");
    chmodSync(join(b, "tailscaled"), 0o755);
    assert.doesNotThrow(() => {
      requireTailscaleBinaries(path);
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
