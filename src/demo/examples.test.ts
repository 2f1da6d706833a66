// The demo applies examples/*.yaml; they must be the seed manifests users already have, byte for
// byte (../shared/examples/seed is the reference copy beside the repository).
import { it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";

const examples = new URL("../../examples/", import.meta.url);
const seed = new URL("../../../shared/examples/seed/", import.meta.url);

it("ships the seed manifests unchanged", () => {
  const seeds = readdirSync(seed).filter((f) => f.endsWith(".yaml")).sort();
  assert.deepEqual(seeds, ["l3-service.yaml", "l7-ingress-funnel.yaml", "l7-ingress.yaml"]);
  for (const file of seeds) assert.equal(readFileSync(new URL(file, examples), "utf8"), readFileSync(new URL(file, seed), "utf8"), file);
});
