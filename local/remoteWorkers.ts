// `render-farm worker`: renderers in their own process, against a local farm that runs elsewhere on this machine
// (`render-farm serve`, usually with --workers 0). They find the farm through <dataDir>/outputs.json and run the
// same pollers and renderer as the farm's own workers, so killing this process loses only its frames: their
// messages come back once their visibility runs out (no heartbeat extends it any more), for another worker.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import type { FarmOutputs } from "../functions/shared/contract";
import { describeAwsError } from "../functions/shared/awsErrors";
import { backoffSeconds } from "../functions/renderer/consumer";
import { isLoopbackUrl } from "./addresses";
import { emulatorClients } from "./emulator";
import { findBlender, OUTPUTS_FILE } from "./farm";
import { createLocalRenderer, LocalRenderer, localRendererSettings } from "./localRenderer";
import { LOCAL_FARM_SETTINGS, wholeNumberOption } from "./localSettings";
import { killProcessesWorkingIn } from "./processes";
import { frameLog, startWorkerPool, WorkerPool } from "./workers";

export interface RemoteWorkerOptions {
    /** The running farm's data dir; default ".farm". */
    dataDir?: string;
    /** Pollers, each rendering one frame at a time; default os.cpus().length. */
    workers?: number;
    /** A failed frame's first retry delay, doubled per attempt; default the farm's (FARM_SETTINGS). */
    failureBackoffSeconds?: number;
    /** Default $BLENDER_PATH, else `blender` on the PATH. */
    blenderPath?: string;
    log?: (line: string) => void;
}

export interface RemoteWorkers {
    /** The farm's outputs this process works for. */
    outputs: FarmOutputs;
    workers: number;
    /** This process's work dirs live under it: <dataDir>/workers/<pid>. */
    workDir: string;
    /** Resolves with the reason once the farm is gone (its outputs.json removed or rewritten by another start). */
    farmGone: Promise<string>;
    /** Releases frames in flight, stops the pollers, removes the work dir. Safe to call twice. */
    stop(): Promise<void>;
}

/** Where worker processes keep their work dirs: not under <dataDir>/work, which a starting farm clears. */
export const WORKERS_DIR = "workers";
const FARM_CHECK_MS = 1000;
const FARM_CREDENTIALS = { accessKeyId: "local-worker", secretAccessKey: "local-worker" };

function isAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === "EPERM";
    }
}

/**
 * Ends the Blender processes that worker processes killed without a chance to clean up left rendering (a
 * child outlives a SIGKILLed parent), and removes their work dirs. Returns how many processes it ended.
 */
export function cleanUpDeadWorkers(dataDir: string, log: (line: string) => void): number {
    const root = path.join(dataDir, WORKERS_DIR);
    let ended = 0;
    let entries: string[];
    try {
        entries = fs.readdirSync(root);
    } catch {
        return 0;
    }
    for (const entry of entries) {
        const pid = Number(entry);
        if (!/^\d+$/.test(entry) || pid === process.pid || isAlive(pid)) continue;
        const dir = path.join(root, entry);
        const killed = killProcessesWorkingIn(dir);
        if (killed.length > 0)
            log(`ended ${killed.length} Blender process(es) left rendering by worker process ${pid}, which was killed`);
        ended += killed.length;
        fs.rmSync(dir, { recursive: true, force: true });
    }
    return ended;
}

function readOutputs(file: string): FarmOutputs | undefined {
    try {
        return JSON.parse(fs.readFileSync(file, "utf8")) as FarmOutputs;
    } catch {
        return undefined;
    }
}

export async function startRemoteWorkers(options: RemoteWorkerOptions = {}): Promise<RemoteWorkers> {
    const dataDir = path.resolve(options.dataDir ?? ".farm");
    const { renderingWorkers, failureBackoffSeconds: backoff } = LOCAL_FARM_SETTINGS;
    const workers = wholeNumberOption("workers", options.workers, renderingWorkers, os.cpus().length);
    const failureBackoffSeconds = wholeNumberOption("failureBackoffSeconds", options.failureBackoffSeconds, backoff);
    const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const blenderPath = findBlender(options.blenderPath ?? process.env.BLENDER_PATH ?? "blender");

    const outputsFile = path.join(dataDir, OUTPUTS_FILE);
    const outputs = readOutputs(outputsFile);
    if (!outputs)
        throw new Error(
            `no local farm is running on ${dataDir} (no readable ${outputsFile}); start one with \`render-farm serve --workers 0 --data-dir ${dataDir}\``,
        );
    if (!outputs.awsEndpoint)
        throw new Error(
            `${outputsFile} names no awsEndpoint: workers run against a local farm; on AWS the renderer Lambda renders the frames`,
        );
    // A planted outputs.json must not make this machine render someone else's scenes for them.
    if (!isLoopbackUrl(outputs.awsEndpoint))
        throw new Error(
            `${outputsFile} names an awsEndpoint that is not on this machine's loopback (${outputs.awsEndpoint}); workers serve only a local farm`,
        );
    const { s3, sqs } = emulatorClients(outputs.awsEndpoint, outputs.region, FARM_CREDENTIALS);

    const consumers: LocalRenderer[] = [];
    let pool: WorkerPool | undefined;
    let watch: NodeJS.Timeout | undefined;
    const workDir = path.join(dataDir, WORKERS_DIR, String(process.pid));
    const close = async () => {
        if (watch) clearInterval(watch);
        await pool?.stop();
        await Promise.all(consumers.map((consumer) => consumer.close()));
        s3.destroy();
        sqs.destroy();
        fs.rmSync(workDir, { recursive: true, force: true });
    };
    try {
        // The queue's ARN for the SQS records, and its maxReceiveCount: the renderer records "failed" on the attempt SQS dead-letters.
        let attributes: Record<string, string>;
        try {
            attributes =
                (
                    await sqs.send(
                        new GetQueueAttributesCommand({
                            QueueUrl: outputs.frameQueueUrl,
                            AttributeNames: ["QueueArn", "RedrivePolicy"],
                        }),
                    )
                ).Attributes ?? {};
        } catch (error) {
            throw new Error(
                `cannot reach the local farm's frame queue ${outputs.frameQueueUrl} (${describeAwsError(error)}); is \`render-farm serve --data-dir ${dataDir}\` running?`,
            );
        }
        const maxReceiveCount = Number(JSON.parse(attributes.RedrivePolicy ?? "{}").maxReceiveCount);
        if (!attributes.QueueArn || !Number.isInteger(maxReceiveCount) || maxReceiveCount < 1) {
            throw new Error(
                `the frame queue ${outputs.frameQueueUrl} has no ARN or no redrive policy; is it a render-farm queue?`,
            );
        }

        cleanUpDeadWorkers(dataDir, log);
        fs.mkdirSync(workDir, { recursive: true });
        const resources = {
            scenesBucket: outputs.scenesBucket,
            rendersBucket: outputs.rendersBucket,
            frameQueueUrl: outputs.frameQueueUrl,
            deadLetterQueueUrl: outputs.deadLetterQueueUrl,
        };
        const settings = (dir: string) =>
            localRendererSettings({
                resources,
                maxReceiveCount,
                failureBackoffSeconds,
                blenderPath,
                workDir: dir,
                workers,
            });
        for (let index = 0; index < workers; index++) {
            consumers.push(
                createLocalRenderer({
                    endpoint: outputs.awsEndpoint,
                    region: outputs.region,
                    credentials: FARM_CREDENTIALS,
                    settings: settings(path.join(workDir, `worker-${index + 1}`)),
                }),
            );
        }
        pool = startWorkerPool({
            sqs,
            queueUrl: outputs.frameQueueUrl,
            queueArn: attributes.QueueArn,
            region: outputs.region,
            consumers,
            ...frameLog({
                s3,
                rendersBucket: outputs.rendersBucket,
                maxReceiveCount,
                backoffSeconds: (attempts) => backoffSeconds(settings(workDir), attempts),
                log,
            }),
            log,
        });
    } catch (error) {
        await close().catch(() => undefined);
        throw error;
    }

    // A farm that stops removes its outputs.json, and a restarted one listens on new ports: either way this process is done.
    const farmGone = new Promise<string>((resolve) => {
        watch = setInterval(() => {
            const now = readOutputs(outputsFile);
            if (!now) resolve(`the local farm on ${dataDir} stopped (its ${OUTPUTS_FILE} is gone)`);
            else if (now.awsEndpoint !== outputs.awsEndpoint)
                resolve(
                    `the local farm on ${dataDir} was restarted (now at ${now.awsEndpoint}); start the workers again`,
                );
        }, FARM_CHECK_MS);
    });
    let stopped: Promise<void> | undefined;
    return {
        outputs,
        workers,
        workDir,
        farmGone,
        stop() {
            stopped ??= close();
            return stopped;
        },
    };
}

const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** `render-farm worker` in the foreground until a signal or until the farm goes away. */
export async function runRemoteWorkers(options: RemoteWorkerOptions & { json?: boolean }): Promise<void> {
    const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const running = await startRemoteWorkers({ ...options, log });
    const ready = {
        pid: process.pid,
        workers: running.workers,
        workDir: running.workDir,
        awsEndpoint: running.outputs.awsEndpoint,
        apiUrl: running.outputs.apiUrl,
    };
    if (options.json) process.stdout.write(`${JSON.stringify(ready)}\n`);
    log(
        `${running.workers} worker(s) rendering frames for the local farm at ${running.outputs.apiUrl} (queue ${running.outputs.frameQueueUrl}); Ctrl-C stops them and puts their frames back`,
    );
    await new Promise<void>((resolve, reject) => {
        let stopping = false;
        const stop = (why: string) => {
            if (stopping) return;
            stopping = true;
            log(why);
            running.stop().then(() => {
                for (const name of STOP_SIGNALS) process.off(name, onSignal);
                log("workers stopped");
                resolve();
            }, reject);
        };
        const onSignal = (signal: NodeJS.Signals) => {
            if (stopping) {
                // The frames in flight come back to the queue when their visibility runs out.
                log(`${signal} again: exiting without cleaning up`);
                process.exit(1);
            }
            stop(`${signal}: stopping the workers`);
        };
        for (const name of STOP_SIGNALS) process.on(name, onSignal);
        void running.farmGone.then((why) => stop(`${why}; stopping the workers`));
    });
}
