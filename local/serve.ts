// `render-farm serve`: a local farm in the foreground until SIGINT/SIGTERM. Prints its outputs (also in
// <dataDir>/outputs.json) on stdout once it is ready; everything else goes to stderr.
import { LocalFarmOptions, OUTPUTS_FILE, startLocalFarm } from "./farm";
import * as path from "path";

const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

export async function runServe(options: LocalFarmOptions & { json?: boolean }): Promise<void> {
    const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const farm = await startLocalFarm({ ...options, log });
    process.stdout.write(
        options.json ? `${JSON.stringify(farm.outputs)}\n` : `${JSON.stringify(farm.outputs, null, 2)}\n`,
    );
    if (!options.json) {
        const outputsFile = path.relative(process.cwd(), path.join(farm.dataDir, OUTPUTS_FILE)) || OUTPUTS_FILE;
        log(
            `local farm ready: job API ${farm.apiUrl}, S3/SQS endpoint ${farm.outputs.awsEndpoint} (any credentials; S3 path-style), outputs in ${outputsFile}`,
        );
        log("Ctrl-C stops it; a frame in progress is put back in the queue and rendered on the next start");
    }
    await new Promise<void>((resolve, reject) => {
        let stopping = false;
        const onSignal = (signal: NodeJS.Signals) => {
            if (stopping) {
                // The next start releases whatever this leaves in flight.
                log(`${signal} again: exiting without cleaning up`);
                process.exit(1);
            }
            stopping = true;
            log(`${signal}: stopping the local farm`);
            farm.stop().then(() => {
                for (const name of STOP_SIGNALS) process.off(name, onSignal);
                log("local farm stopped");
                resolve();
            }, reject);
        };
        for (const name of STOP_SIGNALS) process.on(name, onSignal);
    });
}
