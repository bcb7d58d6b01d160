// `render-farm worker`: render frames for a local farm running on this machine in a process of their own, so
// that workers can be added, stopped or lost (killed) without touching the farm's queues and buckets.
import { EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, oneLine } from "./errors";
import { terminalSafe } from "./terminalText";

export interface WorkerFlags {
    dataDir: string;
    workers?: number;
    failureBackoff?: number;
    blender?: string;
    json?: boolean;
}

/** Runs until Ctrl-C or until the farm stops; resolves to the exit code. */
export async function workerCommand(flags: WorkerFlags, stderr: NodeJS.WritableStream): Promise<number> {
    try {
        const { runRemoteWorkers } = await import("../local/remoteWorkers");
        await runRemoteWorkers({
            dataDir: flags.dataDir,
            workers: flags.workers,
            failureBackoffSeconds: flags.failureBackoff,
            blenderPath: flags.blender,
            json: flags.json,
            log: (line) => stderr.write(`${terminalSafe(line)}\n`),
        });
        return EXIT_OK;
    } catch (error) {
        const message = oneLine(error);
        stderr.write(`render-farm: the workers could not run: ${terminalSafe(message)}\n`);
        return /^Blender was not found/.test(message) ? EXIT_USAGE : EXIT_UNREACHABLE;
    }
}
