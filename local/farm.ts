// The local farm: the stack's buckets and queues in an embedded S3+SQS emulator (persistent under the data
// dir), the job API behind an HTTP adapter, and N pollers running the renderer, all in this process.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import type { SQSEvent } from "aws-lambda";
import { FarmOutputs } from "../functions/shared/contract";
import { FARM_DEFAULTS } from "../functions/shared/farmSettings";
import { staleAfterSecondsFor } from "../functions/shared/farmTiming";
import { createJobApiHandler } from "../functions/jobApi/handler";
import { backoffSeconds } from "../functions/renderer/consumer";
import { jobLedger } from "../functions/shared/ledger";
import { isLoopback } from "./addresses";
import { lockDataDir } from "./dataDirLock";
import { createFarmResources, startEmulator } from "./emulator";
import { HttpApiIntegration, Invocable, InvocationRefused, startHttpApi } from "./httpApi";
import { invocationProblem } from "./invocationCheck";
import { createLocalRenderer, LocalRenderer, localRendererSettings } from "./localRenderer";
import { LOCAL_FARM_SETTINGS, wholeNumberOption } from "./localSettings";
import { killProcessesWorkingIn } from "./processes";
import { recoverInterruptedFrames } from "./recovery";
import { Consumer, FRAME_VISIBILITY_SECONDS, frameLog, startWorkerPool } from "./workers";

export interface LocalFarmOptions {
    /** API port (LOCAL_FARM_SETTINGS.port); 0 = any free port. */
    port?: number;
    /** Default "127.0.0.1". Anything else exposes an API without authentication: only when asked for. */
    host?: string;
    /** Pollers, each rendering one frame at a time; default os.cpus().length. */
    workers?: number;
    /** Default ".farm". */
    dataDir?: string;
    /** Receives of a frame before SQS moves it to the DLQ; default the stack's (FARM_SETTINGS.maxReceiveCount). */
    maxReceiveCount?: number;
    /** A failed frame's first retry delay, doubled per attempt; default the stack's (FARM_SETTINGS). */
    failureBackoffSeconds?: number;
    /** Default $BLENDER_PATH, else `blender` on the PATH. */
    blenderPath?: string;
    /** The job API reads every scene before queueing (a stack's `preflight`); default the stack's (on). */
    preflight?: boolean;
    /** Longest a frame may render, seconds (LOCAL_FRAME_TIMEOUT); default the stack's. */
    frameTimeoutSeconds?: number;
    /** One line per frame done or failed, and the farm's own notices; default stderr. */
    log?: (line: string) => void;
    /**
     * "inprocess" (default): the handlers run in this process. "lambda": the shipped artifacts (the job API archive,
     * the renderer image's task root) run under the Lambda runtime client against a Runtime API stand-in.
     */
    runtime?: FarmRuntime;
    /**
     * Set when the farm lives only as long as one CLI command (`render` without `serve`): written to outputs.json,
     * so that another command knows not to use a farm that stops when this one ends.
     */
    embeddedIn?: EmbeddingCommand;
}

export interface EmbeddingCommand {
    pid: number;
    /** e.g. "render-farm render" */
    command: string;
}

/** What <dataDir>/outputs.json holds: the outputs, and for a farm embedded in one command, which one. */
export interface LocalFarmOutputsFile extends FarmOutputs {
    embeddedIn?: EmbeddingCommand;
}

export const FARM_RUNTIMES = ["inprocess", "lambda"] as const;
export type FarmRuntime = (typeof FARM_RUNTIMES)[number];

export interface LocalFarm {
    apiUrl: string;
    /** The stack-output shape, plus awsEndpoint: what <dataDir>/outputs.json holds. */
    outputs: FarmOutputs;
    dataDir: string;
    /** Releases in-flight frames, stops pollers, servers, emulator. Safe to call twice. */
    stop(): Promise<void>;
}

export const OUTPUTS_FILE = "outputs.json";
const RESOURCE_NAME = "render-farm";
const REGION = "us-east-1";
const RENDERER_FUNCTION_NAME = "local-renderer";
/**
 * Short, unlike the stack's (6 x the frame timeout): the pollers extend the visibility of the frame they hold
 * while it renders (local/workers.ts), so a worker process that dies gives its frame back within seconds.
 */
export const VISIBILITY_TIMEOUT_SECONDS = FRAME_VISIBILITY_SECONDS;

/** The Blender executable, checked now rather than failing every frame into the DLQ. */
export function findBlender(blenderPath: string): string {
    const candidates = blenderPath.includes(path.sep)
        ? [path.resolve(blenderPath)]
        : (process.env.PATH ?? "")
              .split(path.delimiter)
              .filter(Boolean)
              .map((dir) => path.join(dir, blenderPath));
    for (const candidate of candidates) {
        try {
            fs.accessSync(candidate, fs.constants.X_OK);
            if (fs.statSync(candidate).isFile()) return candidate;
        } catch {
            // Not here.
        }
    }
    throw new Error(
        `Blender was not found as "${blenderPath}"${blenderPath.includes(path.sep) ? "" : " on the PATH"}; install Blender, or give its path (--blender or BLENDER_PATH)`,
    );
}

export async function startLocalFarm(options: LocalFarmOptions = {}): Promise<LocalFarm> {
    const settings = LOCAL_FARM_SETTINGS;
    const port = wholeNumberOption("port", options.port, settings.port);
    const workers = wholeNumberOption("workers", options.workers, settings.workers, os.cpus().length);
    const maxReceiveCount = wholeNumberOption("maxReceiveCount", options.maxReceiveCount, settings.maxReceiveCount);
    const failureBackoffSeconds = wholeNumberOption(
        "failureBackoffSeconds",
        options.failureBackoffSeconds,
        settings.failureBackoffSeconds,
    );
    const frameTimeoutSeconds = wholeNumberOption(
        "frameTimeoutSeconds",
        options.frameTimeoutSeconds,
        settings.frameTimeoutSeconds,
    );
    const host = options.host ?? "127.0.0.1";
    const runtime = options.runtime ?? "inprocess";
    if (!FARM_RUNTIMES.includes(runtime))
        throw new Error(`runtime must be one of ${FARM_RUNTIMES.join(", ")}, got ${runtime}`);
    const dataDir = path.resolve(options.dataDir ?? ".farm");
    const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const blenderName = options.blenderPath ?? process.env.BLENDER_PATH ?? "blender";
    // A farm without workers (the CLI reading a job's status) has no use for Blender.
    const blenderPath = workers > 0 ? findBlender(blenderName) : blenderName;

    const lock = lockDataDir(dataDir);
    const outputsFile = path.join(dataDir, OUTPUTS_FILE);
    const workRoot = path.join(dataDir, "work");
    // Undone in reverse if the start fails half-way, and by stop().
    const undo: (() => void | Promise<void>)[] = [() => lock.release()];
    const unwind = async () => {
        for (const step of undo.splice(0).reverse()) await step();
    };
    try {
        // A stale outputs.json would send clients to a farm that is gone.
        fs.rmSync(outputsFile, { force: true });
        const orphans = killProcessesWorkingIn(workRoot);
        if (orphans.length > 0)
            log(
                `ended ${orphans.length} Blender process(es) left rendering by a farm that stopped without cleaning up`,
            );
        if (!isLoopback(host))
            log(
                `warning: listening on ${host}: the job API has no authentication and the S3/SQS emulator accepts any credentials`,
            );

        const emulator = await startEmulator({ host, region: REGION, dataDir: path.join(dataDir, "emulator") });
        undo.push(() => emulator.stop());
        const resources = await createFarmResources(emulator, {
            name: RESOURCE_NAME,
            maxReceiveCount,
            visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_SECONDS,
        });
        const recovery = await recoverInterruptedFrames({
            emulator,
            s3: emulator.s3,
            sqs: emulator.sqs,
            resources,
            maxReceiveCount,
        });
        if (recovery.released > 0)
            log(`put ${recovery.released} frame(s) that were rendering when the farm last stopped back in the queue`);
        for (const { jobId, frames } of recovery.requeued)
            log(`requeued ${frames.length} frame(s) of job ${jobId} that were neither rendered nor queued`);
        const queueArn = (
            await emulator.sqs.send(
                new GetQueueAttributesCommand({ QueueUrl: resources.frameQueueUrl, AttributeNames: ["QueueArn"] }),
            )
        ).Attributes!.QueueArn!;

        const lambda =
            runtime === "lambda"
                ? await (await import("./lambdaFarm")).startLambdaFunctions({
                      endpoint: emulator.endpoint,
                      region: emulator.region,
                      credentials: emulator.credentials,
                      resources,
                      maxReceiveCount,
                      failureBackoffSeconds,
                      preflight: options.preflight ?? FARM_DEFAULTS.preflight,
                      blenderPath,
                      workRoot: path.join(workRoot, "lambda"),
                      log,
                  })
                : undefined;
        if (lambda) undo.push(() => lambda.close());

        const inProcessJobApi = createJobApiHandler({
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: {
                scenesBucket: resources.scenesBucket,
                rendersBucket: resources.rendersBucket,
                frameQueueUrl: resources.frameQueueUrl,
                limits: {
                    maxFrames: FARM_DEFAULTS.maxFramesPerJob,
                    maxResolution: FARM_DEFAULTS.maxResolution,
                    allowedEngines: FARM_DEFAULTS.allowedEngines,
                },
                maxReceiveCount,
                deadLetterQueueUrl: resources.deadLetterQueueUrl,
                preflight: options.preflight ?? FARM_DEFAULTS.preflight,
                frameTimeoutSeconds,
                // Frames rendering at once: this farm's workers, or (with none) the workers other processes bring.
                maxConcurrency: Math.max(1, workers),
                // A worker keeps the frame it renders hidden with its heartbeat: the queue's visibility is all a dead
                // worker's frame waits before it comes back.
                staleAfterSeconds: staleAfterSecondsFor({
                    visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_SECONDS,
                    frameTimeoutSeconds,
                    failureBackoffSeconds,
                    maxReceiveCount,
                }),
            },
        });
        const rendererSettings = (workDir: string) =>
            localRendererSettings({
                resources,
                maxReceiveCount,
                failureBackoffSeconds,
                blenderPath,
                workDir,
                workers,
                frameTimeoutSeconds,
            });
        const newRenderer = (name: string): LocalRenderer => {
            const renderer = createLocalRenderer({
                endpoint: emulator.endpoint,
                region: emulator.region,
                credentials: emulator.credentials,
                settings: rendererSettings(path.join(workRoot, name)),
            });
            undo.push(() => renderer.close());
            return renderer;
        };

        const jobApi: HttpApiIntegration = lambda?.jobApi ?? inProcessJobApi;
        let renderEvent: Invocable;
        let abandonInvocation = () => {};
        if (lambda) {
            const invocable = await lambda.newInvocable("invoke");
            undo.push(() => invocable.close());
            renderEvent = invocable.invoke;
            abandonInvocation = () => invocable.abandon();
        } else {
            const invokeRenderer = newRenderer("invoke");
            renderEvent = (event: unknown) => invokeRenderer.handle(event as SQSEvent);
            abandonInvocation = () => invokeRenderer.abandon();
        }
        // The invoke path runs one event at a time, as the Lambda runtime interface emulator does, and only
        // messages the job API queued for frames not done yet (local/invocationCheck.ts says why).
        const ledger = jobLedger(emulator.s3, resources.rendersBucket);
        let invocations: Promise<unknown> = Promise.resolve();
        const invokeRendererFunction: Invocable = (event: unknown) => {
            const run = invocations.then(async () => {
                const problem = await invocationProblem(event, { ledger });
                if (problem) throw new InvocationRefused(problem);
                return renderEvent(event);
            });
            invocations = run.catch(() => undefined);
            return run;
        };

        const api = await startHttpApi({
            host,
            port,
            jobApi,
            functions: { function: invokeRendererFunction, [RENDERER_FUNCTION_NAME]: invokeRendererFunction },
            log,
        });
        undo.push(() => api.close());
        // Before the server closes, so an invocation in progress ends now instead of holding the close.
        undo.push(() => abandonInvocation());

        const consumers: Consumer[] = [];
        for (let index = 0; index < workers; index++) {
            const name = `worker-${index + 1}`;
            if (!lambda) consumers.push(newRenderer(name));
            else {
                const consumer = await lambda.newRenderer(name);
                undo.push(() => consumer.close());
                consumers.push(consumer);
            }
        }
        const pool = startWorkerPool({
            sqs: emulator.sqs,
            queueUrl: resources.frameQueueUrl,
            queueArn,
            region: emulator.region,
            consumers,
            ...frameLog({
                s3: emulator.s3,
                rendersBucket: resources.rendersBucket,
                maxReceiveCount,
                backoffSeconds: (attempts) => backoffSeconds(rendererSettings(workRoot), attempts),
                log,
            }),
            log,
        });
        undo.push(() => pool.stop());

        const outputs: FarmOutputs = {
            apiUrl: api.url,
            scenesBucket: resources.scenesBucket,
            rendersBucket: resources.rendersBucket,
            frameQueueUrl: resources.frameQueueUrl,
            deadLetterQueueUrl: resources.deadLetterQueueUrl,
            rendererFunctionName: RENDERER_FUNCTION_NAME,
            jobApiFunctionName: "local-job-api",
            imageUri: "local",
            region: emulator.region,
            awsEndpoint: emulator.endpoint,
        };
        // Written whole under another name first: a reader never sees half a file.
        const outputsFileContent: LocalFarmOutputsFile = options.embeddedIn
            ? { ...outputs, embeddedIn: options.embeddedIn }
            : outputs;
        fs.writeFileSync(`${outputsFile}.${process.pid}.tmp`, `${JSON.stringify(outputsFileContent, null, 2)}\n`);
        fs.renameSync(`${outputsFile}.${process.pid}.tmp`, outputsFile);
        undo.push(() => fs.rmSync(outputsFile, { force: true }));

        let stopped: Promise<void> | undefined;
        return {
            apiUrl: api.url,
            outputs,
            dataDir,
            stop() {
                stopped ??= unwind();
                return stopped;
            },
        };
    } catch (error) {
        await unwind().catch(() => undefined);
        throw error;
    }
}
