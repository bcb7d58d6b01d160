// The renderer (the frame queue's consumer): one SQS message is one frame. Download the scene and assets,
// run Blender, upload the frame and its record; on failure record why, back off briefly and report it.
import * as fs from "fs";
import * as path from "path";
import { ChangeMessageVisibilityCommand } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { BlenderProcess } from "./blenderProcess";
import { FRAME_UPLOAD_TUNING, uploadFrameFile } from "./frameUpload";
import { blenderHardLimitMbFor, RendererContext, RendererDeps, RendererSettings } from "./settings";
import { lambdaCostUsd } from "../shared/contract/cost";
import { Format, tileFormatOf } from "../shared/contract/formats";
import { parseFrameMessage, pinnedAssets } from "../shared/contract/frameMessage";
import { tileImageKey } from "../shared/contract/ledgerKeys";
import { FrameMessage, FrameRecord, StartupCost } from "../shared/contract/types";
import { isFarmError } from "../shared/errors";
import { jobLedger } from "../shared/ledger";
import { stitchWhenComplete } from "./frameStitch";
import { DownloadError, SceneMirror, cleanFrameFiles, prepareFrameFiles } from "./workDir";
import { MAX_FAILURE_BACKOFF_SECONDS } from "../shared/farmTiming";
import { holdFrameForInvocation } from "./frameVisibility";
import { createJobControl, JobControl } from "./jobControl";
import { recordLastAttempt } from "./lastAttempt";

/** Time kept back from Blender's deadline to upload the frame and write the record before Lambda's timeout. */
const REPORTING_RESERVE_MS = 20_000;
const CONTENT_TYPES: Record<Format, string> = {
    PNG: "image/png",
    JPEG: "image/jpeg",
    OPEN_EXR: "image/x-exr",
    TIFF: "image/tiff",
};

/** Delay before the next attempt: failureBackoffSeconds, doubled for each attempt already made, capped. */
export function backoffSeconds(settings: RendererSettings, attempts: number): number {
    return Math.min(settings.failureBackoffSeconds * 2 ** Math.max(0, attempts - 1), MAX_FAILURE_BACKOFF_SECONDS);
}

export interface FrameOutcome {
    /** Done, or not to be rendered (a duplicate of a done frame, a stopped job's frame): the message is deleted. */
    ok: boolean;
    /** Not ok, but no failure: the message comes back after this many seconds (a tile whose stitch is elsewhere). */
    retryInSeconds?: number;
    record?: FrameRecord;
    /** Bytes of the scene downloaded for this frame: 0 when the warm cache had it. */
    sceneBytes: number;
}

/** Renders the frame one SQS record asks for and writes its record; never throws for a frame's failure. */
export async function renderFrame(
    deps: RendererContext,
    mirror: SceneMirror,
    blender: BlenderProcess,
    control: JobControl,
    sqsRecord: SQSRecord,
    remainingMs: () => number,
): Promise<FrameOutcome> {
    const { s3, ledger, settings } = deps;
    const startedAt = new Date();
    const attempts = Number(sqsRecord.attributes?.ApproximateReceiveCount ?? 1);
    const parsed = parseFrameMessage(sqsRecord.body, settings.rendersBucket);
    if (!parsed.ok) {
        // No job to record it against: the message goes to the DLQ after its attempts, for a person to read.
        console.error(`renderer: message ${sqsRecord.messageId} refused: ${parsed.error.message}`);
        return { ok: false, sceneBytes: 0 };
    }
    const message = parsed.value;
    // SQS delivers at least once: a frame already done stays done, whatever a late duplicate would meet.
    const earlier = await ledger.readFrameRecord(message.jobId, message.frame).catch(() => undefined);
    if (earlier?.status === "done") {
        console.log(
            `renderer: frame ${message.frame} of job ${message.jobId} is already done; duplicate delivery ${sqsRecord.messageId} skipped`,
        );
        return { ok: true, record: earlier, sceneBytes: 0 };
    }
    const tile =
        message.tile !== undefined && message.of !== undefined ? { index: message.tile, of: message.of } : undefined;
    if (tile) {
        const tileDone = await ledger.readTileRecord(message.jobId, message.frame, tile.index).catch(() => undefined);
        // A duplicate delivery, or the next delivery of a tile whose stitch did not finish: on to the stitch, stopped
        // job or not (the tiles are rendered and paid for; the stitch is what makes them a frame).
        if (tileDone?.status === "done")
            return stitchTiledFrame(deps, message, tileDone, { attempts, renderedNow: false }, remainingMs);
    }
    // A stopped job's frame is not rendered: its message is deleted, and the frame stays pending in the job's status.
    // When S3 cannot say, the frame goes ahead: its own reads and writes meet the same trouble and record it.
    const stop = await control.beforeFrame(message).catch((error) => {
        console.error(`renderer: could not read the stop of job ${message.jobId}: ${error?.message ?? error}`);
        return undefined;
    });
    if (stop) {
        console.log(
            `renderer: frame ${message.frame} of job ${message.jobId} not rendered: the job is ${stop.state} (${stop.message})`,
        );
        return { ok: true, sceneBytes: 0 };
    }
    if (attempts >= settings.maxReceiveCount)
        await recordLastAttempt(deps, message, tile, {
            attempts,
            startedAt,
            remainingMs: remainingMs(),
            earlierAttempts: tile ? undefined : (earlier?.attempts ?? null),
        });
    // A tile renders the whole frame's size with only its region rendered, to its own key (its format lossless).
    const target = tile
        ? {
              key: tileImageKey(message.jobId, message.frame, tile.index, message.settings.format),
              settings: { ...message.settings, format: tileFormatOf(message.settings.format) },
          }
        : { key: message.output.key, settings: message.settings };
    let sceneBytes = 0;
    let outcome: Pick<FrameRecord, "status" | "error" | "logTail" | "renderSeconds" | "output" | "tile"> & {
        blenderMs: number;
    };
    let startup: StartupCost | undefined;
    try {
        const files = await prepareFrameFiles(
            s3,
            settings.scenesBucket,
            mirror,
            { key: message.scene, etag: message.sceneEtag },
            pinnedAssets(message),
        );
        sceneBytes = files.sceneBytes;
        const frameDir = frameWorkDir(settings.workDir, message.frame);
        const outputPath = path.join(frameDir, path.posix.basename(target.key));
        fs.rmSync(frameDir, { recursive: true, force: true });
        fs.mkdirSync(frameDir, { recursive: true });
        const result = await blender.render({
            scenePath: files.scenePath,
            // What is on disk, not what the message names: an unpinned asset may have been replaced since.
            sceneVersion: files.version,
            frame: message.frame,
            outputPath,
            settings: target.settings,
            ...(tile ? { tile } : {}),
            limits: settings.limits,
            threads: settings.threads,
            tempDir: path.join(frameDir, "blender-temp"),
            deadlineMs: Date.now() + remainingMs() - REPORTING_RESERVE_MS,
        });
        startup = {
            blenderSeconds: result.blenderStartSeconds ?? 0,
            downloadSeconds: files.sceneDownloadSeconds,
            sceneBytes,
            loadSeconds: result.loadSeconds ?? 0,
            sceneKept: result.sceneKept ?? true,
        };
        if (result.ok && result.missingFiles?.length) {
            // Blender renders a missing texture pink rather than failing: a frame like that is not done.
            outcome = {
                status: "retrying",
                blenderMs: result.wallMs,
                error: {
                    code: "missing_files",
                    message: `scene ${message.scene} uses files that were not uploaded: ${result.missingFiles.map((file) => mirrorKeyOf(mirror, file)).join(", ")}`,
                },
                logTail: result.logTail,
            };
        } else if (result.ok && tile && !result.tile) {
            outcome = {
                status: "retrying",
                blenderMs: result.wallMs,
                error: { code: "renderer_error", message: "Blender rendered the tile but did not say its region" },
                logTail: result.logTail,
            };
        } else if (result.ok) {
            await uploadFrameFile(
                s3,
                outputPath,
                {
                    bucket: message.output.bucket,
                    key: target.key,
                    contentType: CONTENT_TYPES[target.settings.format],
                },
                deps.frameUpload ?? FRAME_UPLOAD_TUNING,
            );
            outcome = {
                status: "done",
                blenderMs: result.wallMs,
                renderSeconds: result.renderSeconds,
                logTail: result.logTail,
                ...(tile ? {} : { output: message.output }),
            };
            if (tile && result.tile) {
                const { index: _index, of: _of, format: _format, encode, ...region } = result.tile;
                outcome.tile = { ...tile, region, ...(encode ? { encode } : {}) };
            }
        } else {
            outcome = {
                status: "retrying",
                blenderMs: result.wallMs,
                error: result.error ?? { code: "blender_failed", message: "Blender failed" },
                logTail: result.logTail,
            };
        }
    } catch (error) {
        outcome = { status: "retrying", blenderMs: 0, error: describeFailure(error, message), logTail: "" };
    } finally {
        cleanFrameFiles(mirror);
        removeFrameWorkDirs(settings.workDir);
    }
    if (outcome.status !== "done" && attempts >= settings.maxReceiveCount) outcome.status = "failed";

    const finishedAt = new Date();
    const wallMs = finishedAt.getTime() - startedAt.getTime();
    const record: FrameRecord = {
        jobId: message.jobId,
        frame: message.frame,
        status: outcome.status,
        attempts,
        startedAt: startedAt.toISOString(),
        finishedAt: finishedAt.toISOString(),
        wallMs,
        blenderMs: outcome.blenderMs,
        memoryMb: settings.memoryMb,
        costUsd: lambdaCostUsd(wallMs, settings.memoryMb),
        ...(outcome.renderSeconds !== undefined ? { renderSeconds: outcome.renderSeconds } : {}),
        ...(outcome.output ? { output: outcome.output } : {}),
        // A tile's failure is its frame's until the frame is stitched: it says which tile.
        ...(outcome.error
            ? {
                  error: tile
                      ? { ...outcome.error, message: `tile ${tile.index} of ${tile.of}: ${outcome.error.message}` }
                      : outcome.error,
              }
            : {}),
        logTail: outcome.logTail ?? "",
        ...(tile ? { tile: outcome.tile ?? tile } : {}),
        ...(startup ? { startup } : {}),
    };
    const standing = tile ? await ledger.writeTileRecord(record) : await ledger.writeFrameRecord(record);
    if (standing !== record) {
        // A duplicate delivery finished the tile or the frame meanwhile: done is final, and so is this message.
        console.log(
            `renderer: frame ${message.frame} of job ${message.jobId}${tile ? ` (tile ${tile.index})` : ""} failed here but is done elsewhere; this failure is not recorded`,
        );
        if (standing.tile)
            return stitchTiledFrame(deps, message, standing, { attempts, renderedNow: false }, remainingMs);
        return { ok: true, record: standing, sceneBytes };
    }
    if (tile && record.status === "done")
        return stitchTiledFrame(deps, message, record, { attempts, renderedNow: true }, remainingMs);
    if (record.status !== "done") {
        const stopped = await control.afterFailure(record).catch((error) => {
            console.error(`renderer: could not check job ${record.jobId} for failing fast: ${error?.message ?? error}`);
            return undefined;
        });
        if (stopped) console.log(`renderer: ${stopped.message}`);
    }
    return { ok: record.status === "done", record, sceneBytes };
}

/** The least time an invocation that just rendered a tile needs left to start a stitch; with less, the tile message
 * comes back at once for a fresh invocation, whose whole time the stitch gets. */
const STITCH_RESERVE_MS = 60_000;
/** How long a renderer that found the stitch taken waits for it to finish before it leaves its message for later. */
const STITCH_WAIT_MS = 20_000;
/** SQS's longest visibility timeout. */
const MAX_VISIBILITY_SECONDS = 43_200;

/**
 * After a tile is done: the frame is stitched when it was the last (or its stitch is taken over). While another
 * renderer holds the stitch, this tile's message stays (it comes back once that renderer's time is up, to take the
 * stitch over should it have died) unless the frame is done within STITCH_WAIT_MS; on the message's last delivery the
 * frame's record says the stitch is pending instead, so the job shows the frame failed (a retry stitches it) unless
 * the holder finishes. A failed stitch is the frame's failure: its record says why, and the message comes back.
 */
async function stitchTiledFrame(
    deps: RendererContext,
    message: FrameMessage,
    tileRecord: FrameRecord,
    delivery: { attempts: number; renderedNow: boolean },
    remainingMs: () => number,
): Promise<FrameOutcome> {
    const { s3, ledger, settings } = deps;
    const startedAt = new Date();
    const lastDelivery = delivery.attempts >= settings.maxReceiveCount;
    // Once only: a delivery that finds its tile done has the invocation's whole time for the stitch.
    if (delivery.renderedNow && !lastDelivery && remainingMs() < STITCH_RESERVE_MS) {
        console.log(
            `renderer: frame ${message.frame} of job ${message.jobId}: too little time left to stitch; the tile message comes back for it`,
        );
        return { ok: false, retryInSeconds: 0, record: tileRecord, sceneBytes: 0 };
    }
    const stitchDeps = {
        s3,
        ledger,
        memoryMb: settings.memoryMb,
        workDir: settings.workDir,
        blenderPath: settings.blenderPath,
    };
    const upload = (localPath: string) =>
        uploadFrameFile(
            s3,
            localPath,
            {
                bucket: message.output.bucket,
                key: message.output.key,
                contentType: CONTENT_TYPES[message.settings.format],
            },
            deps.frameUpload ?? FRAME_UPLOAD_TUNING,
        );
    const frameFailure = async (code: string, text: string): Promise<FrameOutcome> => {
        const finishedAt = new Date();
        const wallMs = finishedAt.getTime() - startedAt.getTime();
        const record: FrameRecord = {
            jobId: message.jobId,
            frame: message.frame,
            status: lastDelivery ? "failed" : "retrying",
            attempts: delivery.attempts,
            startedAt: startedAt.toISOString(),
            finishedAt: finishedAt.toISOString(),
            wallMs,
            blenderMs: 0,
            memoryMb: settings.memoryMb,
            costUsd: lambdaCostUsd(wallMs, settings.memoryMb),
            error: { code, message: text },
            logTail: "",
        };
        // Another renderer may have stitched it meanwhile (it took the stitch over): its done record stays.
        const standing = await ledger.writeFrameRecord(record);
        if (standing.status === "done") return { ok: true, record: standing, sceneBytes: 0 };
        return { ok: false, record, sceneBytes: 0 };
    };
    let stitched: Awaited<ReturnType<typeof stitchWhenComplete>>;
    try {
        stitched = await stitchWhenComplete(stitchDeps, message, Date.now() + remainingMs(), upload);
    } catch (error) {
        // S3 trouble before any stitch was held: the message comes back after the usual backoff; nothing to record.
        console.error(
            `renderer: frame ${message.frame} of job ${message.jobId}: could not check its tiles: ${(error as Error)?.message ?? error}`,
        );
        return { ok: false, record: tileRecord, sceneBytes: 0 };
    }
    if (stitched.outcome === "stitched") {
        console.log(`renderer: frame ${message.frame} of job ${message.jobId} stitched from ${message.of} tiles`);
        return { ok: true, record: stitched.record, sceneBytes: 0 };
    }
    if (stitched.outcome === "waiting") return { ok: true, record: tileRecord, sceneBytes: 0 };
    if (stitched.outcome === "done") return { ok: true, record: stitched.record, sceneBytes: 0 };
    if (stitched.outcome === "failed") {
        const error = stitched.error;
        const text = error instanceof Error ? error.message : String(error);
        return frameFailure(
            isFarmError(error) ? error.code : "stitch_failed",
            `frame ${message.frame}'s ${message.of} tiles are rendered but could not be stitched: ${text}`,
        );
    }
    const done = await frameDoneWithin(deps, message, Math.min(STITCH_WAIT_MS, stitched.until - Date.now()));
    if (done) return { ok: true, record: done, sceneBytes: 0 };
    if (lastDelivery)
        return frameFailure(
            "stitch_pending",
            `frame ${message.frame}'s ${message.of} tiles are rendered and another renderer holds its stitch, but this tile message has no delivery left to take the stitch over should that renderer die; if the frame is not done soon, retry the job`,
        );
    const seconds = Math.ceil(Math.max(0, stitched.until - Date.now()) / 1000) + 5;
    console.log(
        `renderer: frame ${message.frame} of job ${message.jobId}: tile ${message.tile} done; another renderer stitches the frame, so this message comes back in ${seconds} s to take the stitch over if that one died (not a failure)`,
    );
    return { ok: false, retryInSeconds: Math.min(MAX_VISIBILITY_SECONDS, seconds), record: tileRecord, sceneBytes: 0 };
}

/** The frame's done record once it is there, polling for at most `ms`; undefined if it is not done by then. */
async function frameDoneWithin(
    deps: RendererContext,
    message: FrameMessage,
    ms: number,
): Promise<FrameRecord | undefined> {
    const until = Date.now() + Math.max(0, ms);
    for (;;) {
        const record = await deps.ledger.readFrameRecord(message.jobId, message.frame).catch(() => undefined);
        if (record?.status === "done") return record;
        if (Date.now() >= until) return undefined;
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, until - Date.now())));
    }
}

/** Where one frame's output and Blender's temp files live while it renders: `<workDir>/frames/<frame>`. */
export function frameWorkDir(workDir: string, frame: number): string {
    return path.join(workDir, "frames", String(frame));
}

/** Removes every frame's work dir, including those a renderer killed mid-frame left behind. */
function removeFrameWorkDirs(workDir: string): void {
    fs.rmSync(path.join(workDir, "frames"), { recursive: true, force: true });
}

/** The scenes bucket key of a file in the work dir (as the artist uploaded it), else the path itself. */
function mirrorKeyOf(mirror: SceneMirror, file: string): string {
    const relative = path.relative(mirror.root, file);
    return relative.startsWith("..") || path.isAbsolute(relative) ? file : relative.split(path.sep).join("/");
}

/** A readable reason for an exception around Blender (S3 errors name the object, never credentials). */
function describeFailure(error: unknown, message: FrameMessage): { code: string; message: string } {
    const text = error instanceof Error ? error.message : String(error);
    if (isFarmError(error, "missing_object")) {
        const key = (error as DownloadError).key;
        const what =
            key === undefined ? "an object it needs" : key === message.scene ? `its scene ${key}` : `the asset ${key}`;
        return {
            code: "missing_object",
            message: `frame ${message.frame} cannot render: ${what} is missing from the scenes bucket (${text}); upload it and retry the job`,
        };
    }
    if (isFarmError(error, "object_changed")) {
        const key = (error as DownloadError).key;
        if (key !== message.scene) {
            const pinned = pinnedAssets(message).find((asset) => asset.key === key);
            return {
                code: "asset_changed",
                message: `frame ${message.frame} cannot render: the asset ${key} changed since the job was submitted (ETag ${pinned?.etag ?? "unknown"}), so its frames would mix versions; upload that version again or resubmit the job`,
            };
        }
        return {
            code: "scene_changed",
            message: `scene ${message.scene} changed since the job was submitted (ETag ${message.sceneEtag}); resubmit the job`,
        };
    }
    const code = isFarmError(error) ? error.code : "renderer_error";
    return { code, message: isFarmError(error) ? text : `${(error as Error)?.name ?? "Error"}: ${text}` };
}

export interface RendererHandler {
    (event: SQSEvent, context?: Partial<Context>): Promise<SQSBatchResponse>;
    /** The renderer's Blender, kept across frames and invocations. */
    blender: BlenderProcess;
    /** Ends the renderer's Blender. */
    close(): Promise<void>;
}

/**
 * The SQS event handler: frames one by one (the mapping sends one), failures reported per message. It keeps one
 * Blender across frames, and across invocations while the handler lives (a warm Lambda container, a local worker).
 */
export function createRendererHandler(deps: RendererDeps): RendererHandler {
    const renderer: RendererContext = { ...deps, ledger: jobLedger(deps.s3, deps.settings.rendersBucket) };
    const mirror: SceneMirror = { root: path.join(deps.settings.workDir, "scenes") };
    // A renderer that was killed (a crashed Lambda runtime, a SIGKILLed worker) left its frame's files here.
    removeFrameWorkDirs(deps.settings.workDir);
    const memoryLimitMb = deps.settings.blenderMemoryLimitMb ?? deps.settings.memoryMb / 2;
    const hardLimitMb = deps.settings.blenderMemoryHardLimitMb ?? blenderHardLimitMbFor(deps.settings.memoryMb);
    const control = createJobControl(renderer.ledger, deps.settings.maxReceiveCount);
    const blender = new BlenderProcess({
        blenderPath: deps.settings.blenderPath,
        workDir: deps.settings.workDir,
        maxResidentBytes: memoryLimitMb > 0 ? memoryLimitMb * 1024 * 1024 : undefined,
        memoryLimitBytes: hardLimitMb * 1024 * 1024,
    });
    const handler = async (event: SQSEvent, context?: Partial<Context>): Promise<SQSBatchResponse> => {
        const remainingMs = () => context?.getRemainingTimeInMillis?.() ?? deps.settings.defaultTimeoutMs;
        const batchItemFailures: SQSBatchResponse["batchItemFailures"] = [];
        for (const sqsRecord of event.Records) {
            if (deps.settings.holdFrameVisibility !== false)
                await holdFrameForInvocation(deps, sqsRecord, remainingMs());
            let outcome: FrameOutcome | undefined;
            try {
                outcome = await renderFrame(renderer, mirror, blender, control, sqsRecord, remainingMs);
            } catch (error) {
                console.error(
                    `renderer: frame message ${sqsRecord.messageId} failed: ${(error as Error)?.message ?? error}`,
                );
            }
            if (outcome?.ok) continue;
            batchItemFailures.push({ itemIdentifier: sqsRecord.messageId });
            await shortenVisibility(deps, sqsRecord, outcome?.retryInSeconds);
        }
        return { batchItemFailures };
    };
    return Object.assign(handler, {
        blender,
        async close() {
            await blender.stop();
        },
    });
}

/**
 * A failed frame comes back after a few seconds (or after `seconds` when its outcome says so), not after the queue's
 * long visibility timeout.
 */
async function shortenVisibility(deps: RendererDeps, sqsRecord: SQSRecord, seconds?: number): Promise<void> {
    const attempts = Number(sqsRecord.attributes?.ApproximateReceiveCount ?? 1);
    try {
        await deps.sqs.send(
            new ChangeMessageVisibilityCommand({
                QueueUrl: deps.settings.frameQueueUrl,
                ReceiptHandle: sqsRecord.receiptHandle,
                VisibilityTimeout: seconds ?? backoffSeconds(deps.settings, attempts),
            }),
        );
    } catch (error) {
        console.error(
            `renderer: could not shorten the visibility of ${sqsRecord.messageId}: ${(error as Error)?.message ?? error}`,
        );
    }
}
