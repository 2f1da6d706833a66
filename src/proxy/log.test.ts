import { it } from "node:test";
import assert from "node:assert/strict";
import { createProxyLogger } from "./log.ts";

it("writes pino-shaped JSON lines, redacts secrets at any depth and serializes errors", () => {
  const lines: string[] = [];
  const log = createProxyLogger({ name: "tailnet-proxy", write: (line) => lines.push(line) });
  log.debug("not at info");
  log.info({ authKey: "tskey-secret", request: { headers: { authorization: "Bearer abc" } }, fqdn: "web.tailnet.test" }, "device running");
  log.error({ err: new Error("boom", { cause: new Error("root") }) }, "failed");
  assert.equal(lines.length, 2);
  const info = JSON.parse(lines[0] ?? "{}") as Record<string, unknown>;
  const error = JSON.parse(lines[1] ?? "{}") as Record<string, unknown>;
  assert.equal(info["level"], "info");
  assert.equal(info["name"], "tailnet-proxy");
  assert.equal(info["msg"], "device running");
  assert.equal(info["authKey"], "[redacted]");
  assert.deepEqual(info["request"], { headers: { authorization: "[redacted]" } });
  assert.equal(info["fqdn"], "web.tailnet.test");
  assert.ok(!lines.join("").includes("tskey-secret"));
  const err = error["err"] as { type: string; message: string; cause: { message: string } };
  assert.equal(err.message, "boom");
  assert.equal(err.cause.message, "root");
  assert.ok(lines.every((line) => line.endsWith("\n")));
});
