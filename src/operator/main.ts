// tailnet-operator: composition root. Service exposure lands with the Service-exposure issue;
// until then the program only answers --help and --version.
import { answerInfoFlags, projectVersion } from "../shared/cli-info.ts";

const HELP = `tailnet-operator: puts Kubernetes Services, Ingresses and the API server on a tailnet

Usage: tailnet-operator [--help] [--version]

The reconcilers are not part of this build yet; see README.md for the state of the project.
`;

if (!answerInfoFlags(process.argv.slice(2), HELP)) {
  process.stderr.write(`tailnet-operator ${projectVersion()}: nothing to run yet (see --help)\n`);
  process.exitCode = 2;
}
