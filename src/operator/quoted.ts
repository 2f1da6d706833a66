// A user's value quoted in a condition or Event message. Annotations may hold 256 KiB; a message
// must stay readable in `kubectl describe` (and far below the 32 KiB Kubernetes allows a
// condition's message), so a long value is cut, saying how long it was.
const MAX_QUOTED = 100;

export function quoted(value: string): string {
  return value.length <= MAX_QUOTED ? `"${value}"` : `"${value.slice(0, MAX_QUOTED)}…" (${value.length} characters)`;
}
