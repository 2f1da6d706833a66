// The bad-input corpus (test/corpus/*.yaml): one case per file, manifests a user could apply as
// they are, with what the operator must make of them in a `# expect:` comment at the top. The
// last document is the subject (the object the expectation is about); the ones before it are
// what it needs (a namespace, a backend Service, a TLS Secret). See test/corpus/README.md.
import { readFileSync, readdirSync } from "node:fs";
import { parse, parseAllDocuments } from "yaml";
import { z } from "zod";
import type { KubernetesObject } from "@kubernetes/client-node";

const CORPUS_DIR = new URL("../corpus/", import.meta.url);

const Expectation = z.strictObject({
  /**
   * invalid: condition False with reason, a Warning Event, and nothing made (no child, no
   * finalizer, an egress Service's spec untouched). failed: condition False with reason and a
   * Warning Event (a proxy may exist). ready: condition True. ignored: the operator leaves the
   * object alone. cleaned: only absentAnnotations are removed. rejected: the API server refuses it.
   */
  outcome: z.enum(["invalid", "failed", "ready", "ignored", "cleaned", "rejected"]),
  reason: z.string().optional(),
  /** A fragment of the condition's message (or of the API server's error, for rejected). */
  message: z.string().optional(),
  /** An egress Service: its spec must be left as written. */
  egress: z.boolean().optional(),
  absentAnnotations: z.array(z.string()).optional(),
  /** The device's tags, sorted (ready). */
  deviceTags: z.array(z.string()).optional(),
  /** The families of the tailnet IPs in status.loadBalancer (ready). */
  statusIpFamilies: z.array(z.enum(["IPv4", "IPv6"])).optional(),
  /** Sizes too large to keep in a file: the subject's annotation is set to this many "a"s. */
  fill: z.strictObject({ annotation: z.string(), length: z.number().int().positive() }).optional(),
});

export type CorpusExpectation = z.infer<typeof Expectation>;

export interface CorpusCase {
  readonly file: string;
  /** The comment lines before `# expect:`: why this input is bad (or odd but valid). */
  readonly description: string;
  readonly expect: CorpusExpectation;
  readonly needs: readonly KubernetesObject[];
  readonly subject: KubernetesObject;
}

export function loadCorpus(): CorpusCase[] {
  return readdirSync(CORPUS_DIR)
    .filter((file) => file.endsWith(".yaml"))
    .sort()
    .map((file) => parseCase(file, readFileSync(new URL(file, CORPUS_DIR), "utf8")));
}

export function parseCase(file: string, text: string): CorpusCase {
  const header = text.split("\n").filter((line) => line.startsWith("#"));
  const at = header.findIndex((line) => line.startsWith("# expect:"));
  if (at < 0) throw new Error(`${file}: no "# expect:" line`);
  const parsed = Expectation.safeParse(parse(header[at]?.slice("# expect:".length) ?? ""));
  if (!parsed.success) throw new Error(`${file}: ${z.prettifyError(parsed.error)}`);
  const expect = parsed.data;
  const description = header.slice(0, at).map((line) => line.replace(/^#\s?/, "")).join(" ");
  const objects = parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]?.message ?? ""}`);
    return doc.toJS() as KubernetesObject;
  });
  const subject = objects.at(-1);
  if (!subject?.metadata?.name || !description) throw new Error(`${file}: needs a description and a named subject`);
  if (expect.fill) subject.metadata.annotations = { ...subject.metadata.annotations, [expect.fill.annotation]: "a".repeat(expect.fill.length) };
  if (["invalid", "failed"].includes(expect.outcome) && !expect.reason) throw new Error(`${file}: an ${expect.outcome} case names its reason`);
  return { file, description, expect, needs: objects.slice(0, -1), subject };
}
