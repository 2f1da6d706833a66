// Whether the tailnet can reach this device yet, from the control plane's view of it.
//
// tailscaled turns Running as soon as its first netmap arrives, before the control plane has its
// home DERP region and UDP endpoints (they are reported in the next map requests). A peer that
// sends to the device in that window gets it without either: its WireGuard handshake fails ("no
// UDP or DERP addr") and wireguard-go retries only after its 5 s rekey timeout, so the first
// request after the Service's status appears stalls ~5 s (docs/adr/0024-proxy-data-path.md). The
// control plane echoes what it holds for this node in the netmap's SelfNode; once that has a home
// DERP or an endpoint, peers get the same in their next update and the first handshake goes out.
import type { ClientRequest } from "node:http";

/** The part of an ipn.Notify this module reads. */
export interface NetmapNotify {
  readonly NetMap?: {
    readonly SelfNode?: {
      readonly Endpoints?: readonly string[] | null;
      readonly HomeDERP?: number | null;
      /** Older control planes: "127.3.3.40:<region>". */
      readonly DERP?: string | null;
    } | null;
  } | null;
}

/** What the control plane holds for this node, or undefined if the message carries no netmap. */
export function selfReachability(notify: NetmapNotify): { homeDerp: number; endpoints: number } | undefined {
  const self = notify.NetMap?.SelfNode;
  if (!self) return undefined;
  const legacy = /^127\.3\.3\.40:(\d+)$/.exec(self.DERP ?? "")?.[1];
  return { homeDerp: self.HomeDERP ?? (legacy ? Number(legacy) : 0), endpoints: self.Endpoints?.length ?? 0 };
}

/** A peer can start a handshake with this node: a DERP region to relay through or a UDP address. */
export function peersCanReach(notify: NetmapNotify): boolean {
  const self = selfReachability(notify);
  return self !== undefined && (self.homeDerp > 0 || self.endpoints > 0);
}

/** Splits a stream of newline-delimited JSON messages (tailscaled's IPN bus) into objects. */
export class JsonLines {
  private buffer = "";

  push(chunk: string): unknown[] {
    this.buffer += chunk;
    const lines = this.buffer.split("\n");
    this.buffer = lines.pop() ?? "";
    return lines.filter((line) => line.trim() !== "").map((line) => JSON.parse(line) as unknown);
  }
}

export interface ReachableOutcome {
  readonly reachable: boolean;
  readonly waitedMs: number;
  readonly homeDerp?: number;
  readonly endpoints?: number;
}

/** NotifyInitialNetMap: the first message carries the current netmap; later ones each change. */
const WATCH_PATH = "/localapi/v0/watch-ipn-bus?mask=8";

/**
 * Resolves once the control plane's netmap says peers can reach this node, or after timeoutMs
 * (reachable: false; the caller publishes anyway rather than never). Reads tailscaled's IPN bus
 * on its LocalAPI socket and closes it when done.
 */
export function awaitReachable(socketPath: string, timeoutMs: number, now: () => number = () => performance.now()): Promise<ReachableOutcome> {
  const started = now();
  // process.getBuiltinModule: as in local-api.ts, an ESM import of node:http also loads undici.
  const http = process.getBuiltinModule("node:http");
  return new Promise((resolve) => {
    let last: { homeDerp: number; endpoints: number } | undefined;
    const finish = (reachable: boolean): void => {
      clearTimeout(timer);
      request.destroy();
      resolve({ reachable, waitedMs: Math.round(now() - started), ...last });
    };
    const timer = setTimeout(() => {
      finish(false);
    }, timeoutMs);
    const lines = new JsonLines();
    const request: ClientRequest = http.get({ socketPath, path: WATCH_PATH, headers: { host: "local-tailscaled.sock" } }, (res) => {
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        let messages: unknown[];
        try {
          messages = lines.push(chunk);
        } catch {
          finish(false);
          return;
        }
        for (const message of messages) {
          const notify = message as NetmapNotify;
          last = selfReachability(notify) ?? last;
          if (peersCanReach(notify)) {
            finish(true);
            return;
          }
        }
      });
      res.on("error", () => {
        finish(false);
      });
      res.on("end", () => {
        finish(false);
      });
    });
    request.on("error", () => {
      finish(false);
    });
  });
}

/** How long the proxy holds its address back for the control plane (then publishes anyway). */
export const REACHABLE_TIMEOUT_MS = 15_000;

interface InfoLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/** awaitReachable with the proxy's timeout, logging the outcome (the figure for the docs). */
export async function holdUntilReachable(socketPath: string, log: InfoLogger): Promise<ReachableOutcome> {
  const outcome = await awaitReachable(socketPath, REACHABLE_TIMEOUT_MS);
  if (outcome.reachable) log.info(outcome, "the control plane has this device's home DERP or endpoints: publishing its address");
  else log.warn(outcome, "the control plane has not shown this device's home DERP or endpoints yet; publishing its address anyway (a peer's first connection may stall ~5 s)");
  return outcome;
}
