// One command's run: its output, the farm it talks to (closed at the end, or on Ctrl-C), and what
// an interrupt must tidy up or tell the user.
import { EXIT_INTERRUPTED } from "./errors";
import { Output } from "./output";
import type { ProgressReporter } from "./progress";
import { resolveTarget, Target, TargetOptions } from "./target";

export interface TargetFlags {
    api?: string;
    outputs?: string;
    stack?: string;
    dataDir?: string;
    workers?: number;
    verbose?: boolean;
}

export class Session {
    private target?: Target;
    private reporter?: ProgressReporter;
    /** The job a Ctrl-C leaves behind, so the message can say how to find it again. */
    jobId?: string;
    private interrupted = false;

    constructor(readonly output: Output) {}

    async useTarget(flags: TargetFlags): Promise<Target> {
        const options: TargetOptions = {
            api: flags.api,
            outputs: flags.outputs,
            stack: flags.stack,
            dataDir: flags.dataDir,
            workers: flags.workers,
        };
        if (flags.verbose) options.log = (line) => this.output.note(`farm: ${line}`);
        this.target = await resolveTarget(options);
        return this.target;
    }

    setReporter(reporter: ProgressReporter | undefined): void {
        this.reporter = reporter;
    }

    async close(): Promise<void> {
        await this.target?.close();
    }

    /** Ctrl-C: leave the terminal tidy, stop an embedded farm, say where the job is, exit 130. */
    async interrupt(exit: (code: number) => void): Promise<void> {
        if (this.interrupted) return;
        this.interrupted = true;
        this.reporter?.stop();
        if (this.jobId) {
            const embedded = this.target?.kind === "embedded";
            this.output.problem(
                `interrupted; job ${this.jobId} stays on the farm: \`render-farm status ${this.jobId}\`${embedded ? " (the local farm renders its frames whenever one runs on this data dir)" : ""}`,
            );
        } else {
            this.output.problem("interrupted");
        }
        // A farm that will not stop must not hold the terminal hostage.
        await Promise.race([
            this.close().catch(() => undefined),
            new Promise((resolve) => setTimeout(resolve, 10_000).unref()),
        ]);
        exit(EXIT_INTERRUPTED);
    }
}
