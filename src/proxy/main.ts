// tailnet-proxy: composition root of the proxy program that runs beside tailscaled. The proxy
// itself lands with the Service-exposure issue; until then it only answers --help/--version.
import { answerInfoFlags, projectVersion } from "../shared/cli-info.ts";

const HELP = `tailnet-proxy: runs tailscaled in a proxy pod, programs the firewall, reports the device

Usage: tailnet-proxy [--help] [--version]

The proxy is not part of this build yet; see README.md for the state of the project.
`;

if (!answerInfoFlags(process.argv.slice(2), HELP)) {
  process.stderr.write(`tailnet-proxy ${projectVersion()}: nothing to run yet (see --help)\n`);
  process.exitCode = 2;
}
