// The control plane's own floor in the scale bench: each operator mints one single-use key per
// Service through Headscale's API, so a burst cannot provision faster than Headscale creates keys
// (ADR 0034: it hashes each key with bcrypt inside its write transaction).
import type { HeadscaleApi } from "../../src/control/headscale-api.ts";

export interface KeyMintTimes {
  /** ms per key, one request at a time. */
  readonly serialMs: readonly number[];
  /** Wall-clock ms per key with `concurrency` requests in flight, as an operator's workers send them. */
  readonly concurrentMsPerKey: number;
}

/** Mints `samples` keys one at a time, then as many `concurrency` at a time; revokes them all. */
export async function timeKeyMints(headscale: HeadscaleApi, samples: number, concurrency: number): Promise<KeyMintTimes> {
  const tags = ["tag:k8s"];
  const serialMs: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    const key = await headscale.createAuthKey({ tags });
    serialMs.push(performance.now() - t0);
    await headscale.revokeAuthKey(key.id);
  }
  const minted: string[] = [];
  let started = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (started++ < samples) minted.push((await headscale.createAuthKey({ tags })).id);
  }));
  const concurrentMsPerKey = (performance.now() - t0) / samples;
  for (const id of minted) await headscale.revokeAuthKey(id);
  return { serialMs, concurrentMsPerKey };
}
