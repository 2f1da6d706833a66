// undici has no exports map and no types for its files; this one is its Agent class (module.exports).
declare module "undici/lib/dispatcher/agent.js" {
  import type { Agent } from "undici";
  const UndiciAgent: typeof Agent;
  export default UndiciAgent;
}
