// Which farm a command talks to: --api/--outputs, --stack (pulumi stack output), a running
// `render-farm serve`, or by default a local farm embedded in this run and stopped after it.
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import type { S3Client } from "@aws-sdk/client-s3";
import type { FarmOutputs } from "../functions/shared/contract";
import type { LocalFarmOutputsFile } from "../local/farm";
import { ApiClient, createApiClient } from "./apiClient";
import { CliError, EXIT_UNREACHABLE, oneLine, usageError } from "./errors";
import { createS3Client } from "./storage";

export interface TargetOptions {
    api?: string;
    outputs?: string;
    stack?: string;
    /** The local farm's data dir (default .farm), for the default target. */
    dataDir?: string;
    /** Workers of an embedded local farm. */
    workers?: number;
    /** Where the embedded farm's log lines go (default: nowhere). */
    log?: (line: string) => void;
}

export interface Target {
    /** For messages: "the local farm started for this run (.farm)", "stack dev", the API URL. */
    description: string;
    kind: "embedded" | "local" | "aws";
    api: ApiClient;
    outputs?: FarmOutputs;
    /** How often to poll a job's status. */
    pollIntervalMs: number;
    /** The buckets' S3 client; a usage error when the target has no outputs (a bare --api). */
    s3(): S3Client;
    /** Stops an embedded farm and closes clients. Safe to call twice. */
    close(): Promise<void>;
}

export const DEFAULT_DATA_DIR = ".farm";
const REQUIRED_OUTPUTS = ["apiUrl", "scenesBucket", "rendersBucket", "region"] as const;

/** Checks that `value` has the outputs the CLI uses; `source` names where it came from. */
export function parseOutputs(value: unknown, source: string): FarmOutputs {
    if (typeof value !== "object" || value === null || Array.isArray(value))
        throw usageError(`${source} is not a JSON object of stack outputs`, "invalid_outputs");
    const missing = REQUIRED_OUTPUTS.filter(
        (key) =>
            typeof (value as Record<string, unknown>)[key] !== "string" ||
            (value as Record<string, string>)[key] === "",
    );
    if (missing.length > 0)
        throw usageError(
            `${source} lacks the output(s) ${missing.join(", ")}; is it render-farm's \`pulumi stack output --json\`?`,
            "invalid_outputs",
        );
    return value as FarmOutputs;
}

function readOutputsFile(file: string): FarmOutputs {
    let text: string;
    try {
        text = fs.readFileSync(file, "utf8");
    } catch (error) {
        throw usageError(
            `cannot read --outputs ${file}: ${(error as NodeJS.ErrnoException).code ?? oneLine(error)}`,
            "outputs_unreadable",
        );
    }
    try {
        return parseOutputs(JSON.parse(text), `--outputs ${file}`);
    } catch (error) {
        if (error instanceof CliError) throw error;
        throw usageError(`--outputs ${file} is not valid JSON`, "invalid_outputs");
    }
}

/** The nearest directory upwards holding Pulumi.yaml: pulumi needs the project to find a stack by its short name. */
function pulumiProjectDir(): string | undefined {
    for (const start of [process.cwd(), __dirname]) {
        let dir = path.resolve(start);
        for (;;) {
            if (fs.existsSync(path.join(dir, "Pulumi.yaml"))) return dir;
            const parent = path.dirname(dir);
            if (parent === dir) break;
            dir = parent;
        }
    }
    return undefined;
}

export function stackOutputs(stack: string): Promise<FarmOutputs> {
    return new Promise((resolve, reject) => {
        execFile(
            "pulumi",
            ["stack", "output", "--json", "--stack", stack],
            { cwd: pulumiProjectDir(), timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
            (error, stdout, stderr) => {
                if (error) {
                    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
                        reject(
                            usageError(
                                "--stack needs the Pulumi CLI, which is not installed (https://www.pulumi.com/docs/install/); or pass --api URL --outputs FILE",
                                "pulumi_not_installed",
                            ),
                        );
                        return;
                    }
                    const firstLine =
                        `${stderr}`
                            .split("\n")
                            .map((line) => line.trim())
                            .find((line) => line !== "") ?? oneLine(error);
                    reject(
                        usageError(
                            `pulumi stack output --stack ${stack} failed: ${firstLine.replace(/^error:\s*/, "")}`,
                            "pulumi_failed",
                        ),
                    );
                    return;
                }
                try {
                    resolve(parseOutputs(JSON.parse(stdout), `the outputs of stack ${stack}`));
                } catch (parseError) {
                    reject(
                        parseError instanceof CliError
                            ? parseError
                            : usageError(`pulumi stack output --stack ${stack} printed no JSON`, "pulumi_failed"),
                    );
                }
            },
        );
    });
}

function isLoopback(apiUrl: string): boolean {
    try {
        const host = new URL(apiUrl).hostname;
        return host === "localhost" || host === "[::1]" || host === "::1" || /^127\./.test(host);
    } catch {
        return false;
    }
}

function remoteTarget(description: string, apiUrl: string, outputs: FarmOutputs | undefined): Target {
    // Only the local farm (its outputs carry awsEndpoint, or the API is on this machine) goes unsigned.
    const local = outputs?.awsEndpoint !== undefined || (!outputs && isLoopback(apiUrl));
    const api = createApiClient({ apiUrl, sign: !local, region: outputs?.region });
    let s3: S3Client | undefined;
    return {
        description,
        kind: local ? "local" : "aws",
        api,
        outputs,
        pollIntervalMs: local ? 500 : 2000,
        s3() {
            if (!outputs)
                throw usageError(
                    "this command needs the farm's buckets: pass --outputs FILE (the stack outputs) with --api, or --stack NAME",
                    "outputs_required",
                );
            s3 ??= createS3Client(outputs);
            return s3;
        },
        async close() {
            s3?.destroy();
        },
    };
}

/**
 * A data dir's outputs.json is only trusted to name a local farm (both endpoints on loopback): a file planted in
 * a cloned repository must not send scenes, or signed requests, anywhere else. Returns what is not local.
 */
function notLocal(outputs: FarmOutputs): string | undefined {
    if (!isLoopback(outputs.apiUrl)) return `its apiUrl ${outputs.apiUrl}`;
    if (outputs.awsEndpoint === undefined) return "no awsEndpoint (AWS, not a local farm)";
    if (!isLoopback(outputs.awsEndpoint)) return `its awsEndpoint ${outputs.awsEndpoint}`;
    return undefined;
}

function isRunning(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === "EPERM";
    }
}

/** A `render-farm serve` already running on this data dir: reuse it rather than start a second farm on the same files. */
async function runningLocalFarm(dataDir: string): Promise<FarmOutputs | undefined> {
    const file = path.join(dataDir, "outputs.json");
    if (!fs.existsSync(file)) return undefined;
    let outputs: FarmOutputs;
    try {
        outputs = parseOutputs(JSON.parse(fs.readFileSync(file, "utf8")), file);
    } catch {
        return undefined;
    }
    const elsewhere = notLocal(outputs);
    if (elsewhere)
        throw usageError(
            `${file} names a farm that is not on this machine (${elsewhere}); a data dir is trusted only for a local farm on loopback: to use that farm, pass --outputs ${file} (or --api/--stack)`,
            "untrusted_outputs",
        );
    // A farm another command started for its own run stops when that command ends: using it would die with it.
    const embeddedIn = (outputs as LocalFarmOutputsFile).embeddedIn;
    if (embeddedIn && embeddedIn.pid !== process.pid && isRunning(embeddedIn.pid))
        throw new CliError(
            `the data dir ${dataDir} is in use by \`${embeddedIn.command}\` (process ${embeddedIn.pid}), which started a local farm for its own run and stops it when it ends; wait for it, or run \`render-farm serve\` to keep one farm that every command shares, or pass another --data-dir`,
            EXIT_UNREACHABLE,
            "farm_in_use",
        );
    try {
        await createApiClient({ apiUrl: outputs.apiUrl, sign: false, timeoutMs: 1500 }).ping();
        return outputs;
    } catch {
        // Left behind by a farm that has stopped.
        return undefined;
    }
}

export async function resolveTarget(options: TargetOptions): Promise<Target> {
    if (options.stack !== undefined && (options.api !== undefined || options.outputs !== undefined)) {
        throw usageError("give either --stack NAME or --api URL/--outputs FILE, not both", "conflicting_targets");
    }
    if (options.stack !== undefined) {
        const outputs = await stackOutputs(options.stack);
        return remoteTarget(`stack ${options.stack}`, outputs.apiUrl, outputs);
    }
    if (options.api !== undefined || options.outputs !== undefined) {
        const outputs = options.outputs !== undefined ? readOutputsFile(options.outputs) : undefined;
        const apiUrl = options.api ?? outputs!.apiUrl;
        return remoteTarget(apiUrl, apiUrl, outputs);
    }

    const dataDir = path.resolve(options.dataDir ?? DEFAULT_DATA_DIR);
    const running = await runningLocalFarm(dataDir);
    if (running)
        return remoteTarget(`the local farm at ${running.apiUrl} (render-farm serve)`, running.apiUrl, running);

    // Loaded only here: AWS targets never pay for the emulator and the renderer.
    const { startLocalFarm } = await import("../local/farm");
    let farm: Awaited<ReturnType<typeof startLocalFarm>>;
    try {
        farm = await startLocalFarm({
            port: 0,
            dataDir,
            workers: options.workers,
            log: options.log ?? (() => undefined),
            embeddedIn: { pid: process.pid, command: `render-farm ${process.argv[2] ?? ""}`.trim() },
        });
    } catch (error) {
        throw new CliError(
            `could not start the local farm in ${dataDir}: ${oneLine(error)}`,
            EXIT_UNREACHABLE,
            "local_farm_failed",
        );
    }
    const target = remoteTarget(
        `the local farm started for this run (${path.relative(process.cwd(), dataDir) || dataDir})`,
        farm.apiUrl,
        farm.outputs,
    );
    let stopped: Promise<void> | undefined;
    return {
        ...target,
        kind: "embedded",
        close() {
            stopped ??= (async () => {
                await target.close();
                await farm.stop();
            })();
            return stopped;
        },
    };
}
