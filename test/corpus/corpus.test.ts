// The corpus's expectations are checked by the sandbox test; a malformed one should fail here, in
// seconds, not after a sandbox started.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { loadCorpus } from "../helpers/corpus.ts";

describe("bad-input corpus", () => {
  it("every case parses, with its expectation, and names are unique", () => {
    const cases = loadCorpus();
    assert.ok(cases.length >= 50, `${cases.length} cases`);
    const names = cases.map((c) => `${c.subject.kind ?? ""}/${c.subject.metadata?.namespace ?? ""}/${c.subject.metadata?.name ?? ""}`);
    assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], "no two cases test the same object");
  });
});
