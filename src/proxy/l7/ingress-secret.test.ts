// KubeSecretFollower against a loopback HTTPS API server: the read, the watch by name, its
// resumption from the last resourceVersion, the read again after 410 Gone, a silent connection,
// and the stop.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { makeCertificate } from "../../../test/fakes/test-certificates.ts";
import { createProxyLogger } from "../log.ts";
import { InClusterApi } from "../kube-api.ts";
import { KubeSecretFollower, type SecretData } from "./ingress-secret.ts";

const NAME = "ingress-web";
const NAMESPACE = "tailnet system";
const log = createProxyLogger({ name: "test", write: () => undefined });
const b64 = (text: string): string => Buffer.from(text).toString("base64");

interface Seen {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly authorization: string | undefined;
  /** Resolves when the client closes the request's connection. */
  readonly closed: Promise<void>;
}

/** What the fake does with one watch request: write events, end, or leave it open. */
type WatchScript = (res: ServerResponse, query: URLSearchParams) => void;

const event = (type: string, object: object): string => `${JSON.stringify({ type, object })}\n`;
const secret = (resourceVersion: string, data: Record<string, string>): object => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name: NAME, namespace: NAMESPACE, resourceVersion },
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
});

class FakeApiServer {
  readonly seen: Seen[] = [];
  /** What a GET of the Secret answers: the Secret, or a status without one. */
  current: { status: number; body: object } = { status: 404, body: { kind: "Status", code: 404, message: "secrets not found" } };
  /** Scripts for the coming watches, in order; with none left a watch stays open and silent. */
  readonly watches: WatchScript[] = [];
  private readonly server: Server;

  constructor(cert: { certPem: string; keyPem: string }) {
    this.server = createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => { this.answer(req, res); });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return (this.server.address() as AddressInfo).port;
  }

  close(): void {
    this.server.closeAllConnections();
    this.server.close();
  }

  get watchRequests(): Seen[] {
    return this.seen.filter((s) => s.query.get("watch") === "true");
  }

  get reads(): Seen[] {
    return this.seen.filter((s) => s.path.endsWith(`/secrets/${NAME}`));
  }

  /** Resolves once the requests seen satisfy the predicate (fails the test after 10 s). */
  async until(what: string, predicate: () => boolean): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!predicate()) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "https://x");
    const closed = new Promise<void>((resolve) => res.on("close", resolve));
    this.seen.push({ method: req.method ?? "", path: url.pathname, query: url.searchParams, authorization: req.headers.authorization, closed });
    if (url.searchParams.get("watch") === "true") {
      // A script may answer with another status before anything is sent.
      res.statusCode = 200;
      res.setHeader("content-type", "application/json");
      this.watches.shift()?.(res, url.searchParams);
      if (!res.headersSent) res.flushHeaders();
      return;
    }
    res.writeHead(this.current.status, { "content-type": "application/json" }).end(JSON.stringify(this.current.body));
  }
}

/** A follower's changes, with a way to wait for the next one. */
class Changes {
  readonly seen: SecretData[] = [];
  private wake: (() => void) | undefined;
  readonly onChange = (data: SecretData): void => {
    this.seen.push(data);
    this.wake?.();
  };

  async count(n: number): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (this.seen.length < n) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for change ${n} (have ${this.seen.length})`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  }
}

describe("KubeSecretFollower", { timeout: 30_000 }, () => {
  let cert: { certPem: string; keyPem: string };
  before(async () => {
    const now = Date.now();
    cert = await makeCertificate({ dnsNames: ["kubernetes.default.svc"], ips: ["127.0.0.1"], notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) });
  });

  /** A fake API server and a follower of NAME through it (TLS checked against the fake's CA). */
  async function setUp(options: { idleMs?: number } = {}): Promise<{ api: FakeApiServer; follower: KubeSecretFollower; stop: AbortController; done: () => void }> {
    const api = new FakeApiServer(cert);
    const port = await api.listen();
    let token = 0;
    const access = { host: "127.0.0.1", port, namespace: NAMESPACE, ca: cert.certPem, token: () => `token-${++token}` };
    const follower = new KubeSecretFollower(NAME, log, new InClusterApi(access), { retryMs: 20, watchSeconds: 7, ...(options.idleMs === undefined ? {} : { idleMs: options.idleMs }) });
    const stop = new AbortController();
    return { api, follower, stop, done: () => { stop.abort(); api.close(); } };
  }

  it("reads the Secret (waiting until it exists), then watches it by name from the read's resourceVersion", async () => {
    const { api, follower, stop, done } = await setUp();
    try {
      const following = follower.follow(stop.signal, () => undefined);
      await api.until("a first read", () => api.reads.length >= 1);
      api.current = { status: 200, body: secret("11", { "config.json": "{\"routes\":[]}", "tls.crt": "CERT" }) };
      const first = await following;
      assert.deepEqual(first, { "config.json": "{\"routes\":[]}", "tls.crt": "CERT" });
      assert.ok(api.reads.length >= 2, "read again while the Secret was missing");
      await api.until("a watch", () => api.watchRequests.length >= 1);
      const watch = api.watchRequests[0];
      assert.ok(watch);
      assert.equal(watch.path, "/api/v1/namespaces/tailnet%20system/secrets");
      assert.equal(watch.query.get("fieldSelector"), `metadata.name=${NAME}`);
      assert.equal(watch.query.get("resourceVersion"), "11");
      assert.equal(watch.query.get("allowWatchBookmarks"), "true");
      assert.equal(watch.query.get("timeoutSeconds"), "7");
      assert.match(watch.authorization ?? "", /^Bearer token-\d+$/);
      assert.notEqual(watch.authorization, api.reads[0]?.authorization, "the token is read for every request");
    } finally {
      done();
    }
  });

  it("delivers each change of the data, decoded, and not a write that changed nothing", async () => {
    const { api, follower, stop, done } = await setUp();
    try {
      api.current = { status: 200, body: secret("11", { "config.json": "v1" }) };
      api.watches.push((res) => {
        res.write(event("MODIFIED", secret("12", { "config.json": "v2" })));
        res.write(event("MODIFIED", secret("13", { "config.json": "v2" })));
        res.write(event("MODIFIED", secret("14", { "config.json": "v3", "tls.key": "KEY" })));
      });
      const changes = new Changes();
      assert.deepEqual(await follower.follow(stop.signal, changes.onChange), { "config.json": "v1" });
      await changes.count(2);
      assert.deepEqual(changes.seen, [{ "config.json": "v2" }, { "config.json": "v3", "tls.key": "KEY" }]);
    } finally {
      done();
    }
  });

  it("resumes a watch the server ended from the last resourceVersion it saw, bookmarks included, without reading again", async () => {
    const { api, follower, stop, done } = await setUp();
    try {
      api.current = { status: 200, body: secret("11", { "config.json": "v1" }) };
      api.watches.push((res) => {
        res.write(event("MODIFIED", secret("12", { "config.json": "v2" })));
        res.end(event("BOOKMARK", { kind: "Secret", metadata: { resourceVersion: "15" } }));
      });
      api.watches.push((res) => {
        res.write(event("MODIFIED", secret("16", { "config.json": "v3" })));
      });
      const changes = new Changes();
      await follower.follow(stop.signal, changes.onChange);
      await changes.count(2);
      assert.deepEqual(api.watchRequests.map((w) => w.query.get("resourceVersion")), ["11", "15"]);
      assert.deepEqual(changes.seen, [{ "config.json": "v2" }, { "config.json": "v3" }]);
      assert.equal(api.reads.length, 1, "a resumed watch needs no read");
    } finally {
      done();
    }
  });

  it("reads again after 410 Gone (an ERROR event or the status), delivers what changed meanwhile and watches from there", async () => {
    const { api, follower, stop, done } = await setUp();
    try {
      api.current = { status: 200, body: secret("11", { "config.json": "v1" }) };
      api.watches.push((res) => {
        // The window moved on while the proxy was away: the Secret changed, the event is lost.
        api.current = { status: 200, body: secret("40", { "config.json": "v4" }) };
        res.end(event("ERROR", { kind: "Status", code: 410, reason: "Expired", message: "too old resource version: 11 (30)" }));
      });
      api.watches.push((res) => {
        api.current = { status: 200, body: secret("50", { "config.json": "v5" }) };
        res.statusCode = 410;
        res.end(JSON.stringify({ kind: "Status", code: 410, message: "gone" }));
      });
      const changes = new Changes();
      await follower.follow(stop.signal, changes.onChange);
      await changes.count(2);
      await api.until("a third watch", () => api.watchRequests.length >= 3);
      assert.deepEqual(changes.seen, [{ "config.json": "v4" }, { "config.json": "v5" }]);
      assert.deepEqual(api.watchRequests.map((w) => w.query.get("resourceVersion")), ["11", "40", "50"]);
      assert.equal(api.reads.length, 3);
    } finally {
      done();
    }
  });

  it("takes a silent watch connection for dead and opens another from the same resourceVersion", async () => {
    const { api, follower, stop, done } = await setUp({ idleMs: 300 });
    try {
      api.current = { status: 200, body: secret("11", { "config.json": "v1" }) };
      api.watches.push((res) => { res.write(event("BOOKMARK", { kind: "Secret", metadata: { resourceVersion: "21" } })); });
      await follower.follow(stop.signal, () => undefined);
      await api.until("a second watch", () => api.watchRequests.length >= 2);
      await api.watchRequests[0]?.closed;
      assert.deepEqual(api.watchRequests.slice(0, 2).map((w) => w.query.get("resourceVersion")), ["11", "21"]);
    } finally {
      done();
    }
  });

  it("stops on the signal: the watch's connection is closed and nothing is asked again", async () => {
    const { api, follower, stop, done } = await setUp();
    try {
      api.current = { status: 200, body: secret("11", { "config.json": "v1" }) };
      const changes = new Changes();
      await follower.follow(stop.signal, changes.onChange);
      await api.until("a watch", () => api.watchRequests.length >= 1);
      stop.abort();
      await api.watchRequests[0]?.closed;
      const asked = api.seen.length;
      // Several retry pauses (20 ms): a follower still running would have asked again by now.
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(api.seen.length, asked);
      assert.deepEqual(changes.seen, []);
    } finally {
      done();
    }
  });

  it("gives up waiting for the Secret when stopped", async () => {
    const { follower, stop, done } = await setUp();
    try {
      const following = follower.follow(stop.signal, () => undefined);
      setTimeout(() => { stop.abort(); }, 100);
      await assert.rejects(following, /stopped/);
    } finally {
      done();
    }
  });
});
