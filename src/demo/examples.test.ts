// The demo applies examples/*.yaml; they must be the seed manifests users already have, byte for
// byte. A user's clone has no reference copy beside it, so the seeds' SHA-256 digests (taken from
// the seed manifests when they were copied in) stand for them.
import { it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";

const examples = new URL("../../examples/", import.meta.url);
const SEED_SHA256: Readonly<Record<string, string>> = {
  "l3-service.yaml": "ea0cf48b43d00a479b8f08dcc3fa2ba151f659dd05ced7ba16ddc7c240c03f10",
  "l7-ingress-funnel.yaml": "53a057352a3ed544be8205015e589d7f0b55297b8a80de9b16914a24c3e38b76",
  "l7-ingress.yaml": "cfa342d4b18ad9846ab3a7751f57061b5a91171d34cdb6bd29b85c405514ee7e",
};

it("ships the seed manifests unchanged", () => {
  const files = readdirSync(examples).filter((f) => f.endsWith(".yaml")).sort();
  assert.deepEqual(files, Object.keys(SEED_SHA256).sort());
  for (const file of files) {
    const digest = createHash("sha256").update(readFileSync(new URL(file, examples))).digest("hex");
    assert.equal(digest, SEED_SHA256[file], `${file} differs from the seed manifest`);
  }
});
