// Which program stands in for which container image. There is no container runtime in the
// sandbox, so a pod can only run an image whose program is this project's own.
import { fileURLToPath } from "node:url";
import { dirname } from "node:path";
import type { ImageMap } from "./pod-spec.ts";
import { resolveBinaries } from "./binaries.ts";

const programPath = (relative: string): string => fileURLToPath(new URL(`../../${relative}`, import.meta.url));

/** Repository names (without registry, tag or digest) of the images this project ships. */
export const PROJECT_IMAGES: Readonly<Record<string, string>> = {
  "tailnet-operator/proxy": "bin/tailnet-proxy.js",
  "tailnet-operator/operator": "bin/tailnet-operator.js",
};

/** The repository part of an image reference: no registry host, tag or digest. */
export function imageRepository(image: string): string {
  const withoutDigest = image.split("@")[0] ?? "";
  const parts = withoutDigest.split("/");
  const last = parts.pop() ?? "";
  parts.push(last.split(":")[0] ?? "");
  // A first component with a dot or a port is a registry host, not part of the name.
  if (parts.length > 1 && /[.:]|^localhost$/.test(parts[0] ?? "")) parts.shift();
  return parts.join("/");
}

/** The project's images plus extra ones (name → program path relative to the repo root). */
export function projectImageMap(extra: Readonly<Record<string, string>> = {}): ImageMap {
  const programs = { ...PROJECT_IMAGES, ...extra };
  return (image) => {
    const program = programs[imageRepository(image)];
    if (program === undefined) return undefined;
    // The proxy image ships tailscaled and tailscale; the sandbox's pinned builds stand in.
    const path = imageRepository(image) === "tailnet-operator/proxy" ? [dirname(resolveBinaries().tailscaled)] : [];
    return { entrypoint: [process.execPath, programPath(program)], path };
  };
}
