// Logs the device in while telling the state Secret how it goes: the operator turns a refusal
// (tags the policy does not allow, a dead key, a control plane out of reach) into the Service's
// condition and an Event, instead of an endless "waiting for the proxy to join the tailnet".
import type { Logger } from "./log.ts";
import { STATE_SECRET_KEYS as STATE_KEYS } from "../shared/state-keys.ts";
import { LOGIN_STATES } from "../shared/login-report.ts";
import { CommandError } from "../shared/exec.ts";
import type { StateSecretWriter } from "./state-secret.ts";
import type { DeviceInfo, LoginProgress } from "./tailscaled.ts";

export interface Joinable {
  ensureLoggedIn(): Promise<"existing" | "new">;
  device(): Promise<DeviceInfo>;
  loginProgress(): Promise<LoginProgress>;
  /** keyFingerprint of the auth key a new login uses; undefined without one. */
  authKeyFingerprint(): Promise<string | undefined>;
}

const POLL_MS = 3_000;
/** The Secret has room, a condition message does not: what the operator may quote. */
const MAX_ERROR_CHARS = 600;

export async function joinTailnet(tailscaled: Joinable, secret: StateSecretWriter, log: Logger): Promise<{ login: "existing" | "new"; device: DeviceInfo }> {
  let reported = "";
  const report = async (state: string, error: string | null, extra: Readonly<Record<string, string | null>> = {}): Promise<void> => {
    const key = `${state}\n${error ?? ""}`;
    if (key === reported) return;
    reported = key;
    await secret.write({ [STATE_KEYS.loginState]: state, [STATE_KEYS.loginError]: error, ...extra });
  };
  // While tailscaled tries, its health warnings say what is in the way (e.g. no control plane).
  const poll = setInterval(() => {
    void tailscaled
      .loginProgress()
      .then((progress) => (progress.backendState === "Running" ? undefined : report(LOGIN_STATES.loggingIn, progress.health.join("; ").slice(0, MAX_ERROR_CHARS) || null)))
      .catch(() => undefined);
  }, POLL_MS);
  try {
    const login = await tailscaled.ensureLoggedIn();
    const device = await tailscaled.device();
    clearInterval(poll);
    await report(LOGIN_STATES.running, null, { [STATE_KEYS.loginKey]: null });
    return { login, device };
  } catch (error) {
    clearInterval(poll);
    const reason = refusal(error);
    log.error({ reason }, "login failed");
    // The operator replaces a refused key only if the refusal is about the key it handed out last.
    const usedKey = (await tailscaled.authKeyFingerprint().catch(() => undefined)) ?? null;
    await report(LOGIN_STATES.failed, reason, { [STATE_KEYS.loginKey]: usedKey }).catch((writeError: unknown) => {
      log.warn({ err: writeError }, "could not report the failed login in the state Secret");
    });
    throw error;
  } finally {
    clearInterval(poll);
  }
}

/** The control plane's words: `tailscale up` prints them last on stderr (the command line is not needed). */
export function refusal(error: unknown): string {
  const text = error instanceof CommandError ? error.stderr.trim() || error.stdout.trim() || error.message : (error as Error).message;
  const lines = text.split("\n").map((l) => l.trim()).filter(Boolean);
  return (lines.slice(-3).join(" | ") || "login failed").slice(-MAX_ERROR_CHARS);
}
