// A tiled frame's last step: once every tile is rendered, one renderer (whichever wins a conditional write of the
// frame's stitch marker) assembles the frame from the tiles' images, writes it under the frame's usual key in one
// PutObject (never torn), records the frame done, and deletes the tile images. A renderer that finds the tiles done
// and the marker held by another leaves it to that one; a marker whose holder's invocation ended (it was killed) is
// taken over by the next delivery of the tile message that holder never deleted.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { DeleteObjectCommand, DeleteObjectsCommand, S3Client } from "@aws-sdk/client-s3";
import {
    FrameMessage,
    FrameRecord,
    frameTilesPrefix,
    lambdaCostUsd,
    stitchMarkerKey,
    tileImageKey,
    tileRecordKey,
} from "../shared/contract";
import { getJsonObject, putJsonObject } from "../shared/jsonObjects";
import { mapWithConcurrency } from "../shared/concurrency";
import { listLedgerKeys, readFrameRecord, readTileRecord, writeFrameRecord } from "../shared/ledger";
import { stitchTiles } from "./tileStitch";
import { downloadObject } from "./workDir";

/** Time kept back from oiiotool's deadline to upload the frame and record it before the invocation ends. */
const UPLOAD_RESERVE_MS = 20_000;

/** Who stitches a frame, and until when its invocation may still be running. */
interface StitchMarker {
    owner: string;
    until: string;
}

export type StitchOutcome =
    /** This renderer stitched the frame: its done record. */
    | { outcome: "stitched"; record: FrameRecord }
    /** The frame was stitched already (this tile was a late duplicate). */
    | { outcome: "done"; record: FrameRecord }
    /** Tiles are still missing: their renderers stitch when they finish. */
    | { outcome: "waiting"; missing: number[] }
    /** This renderer held the stitch and it failed (the marker is released): the frame's failure. */
    | { outcome: "failed"; error: unknown }
    /** Another renderer holds the marker until `until` (ms): it stitches, unless it dies first. */
    | { outcome: "elsewhere"; until: number };

export interface StitchDeps {
    s3: S3Client;
    rendersBucket: string;
    memoryMb: number;
    workDir: string;
    /** The Blender that encodes a frame whose tiles were stored losslessly (a JPEG, a lossy OpenEXR codec). */
    blenderPath?: string;
}

/** Tile indices of the frame whose record and image are both in the bucket. */
async function tilesOnS3(deps: StitchDeps, message: FrameMessage, of: number): Promise<Set<number>> {
    const prefix = frameTilesPrefix(message.jobId, message.frame);
    const keys = new Set(await listLedgerKeys(deps.s3, deps.rendersBucket, prefix));
    const done = new Set<number>();
    for (let tile = 0; tile < of; tile++) {
        const image = tileImageKey(message.jobId, message.frame, tile, message.settings.format);
        if (keys.has(image) && keys.has(tileRecordKey(message.jobId, message.frame, tile))) done.add(tile);
    }
    return done;
}

/**
 * Takes the frame's stitch marker: written if absent, or over a marker whose holder's invocation is over. Answers
 * "mine", or until when another holds it.
 */
async function claimStitch(deps: StitchDeps, message: FrameMessage, untilMs: number): Promise<"mine" | number> {
    const key = stitchMarkerKey(message.jobId, message.frame);
    const marker: StitchMarker = { owner: crypto.randomUUID(), until: new Date(untilMs).toISOString() };
    if ((await putJsonObject(deps.s3, deps.rendersBucket, key, marker, { ifAbsent: true })).written) return "mine";
    // Absent now (403 without a listing grant): released by a holder whose stitch failed; its message comes back.
    const held = await getJsonObject(deps.s3, deps.rendersBucket, key, { forbiddenMeansAbsent: true });
    if (!held) return Date.now();
    const until = Date.parse((held.value as StitchMarker)?.until ?? "");
    if (Number.isFinite(until) && until > Date.now()) return until;
    const taken = await putJsonObject(deps.s3, deps.rendersBucket, key, marker, { ifMatch: held.etag });
    return taken.written ? "mine" : Date.now();
}

/** Gives the marker up after a failed stitch, so the tile message's next delivery stitches at once. */
async function releaseStitch(deps: StitchDeps, message: FrameMessage): Promise<void> {
    const key = stitchMarkerKey(message.jobId, message.frame);
    await deps.s3
        .send(new DeleteObjectCommand({ Bucket: deps.rendersBucket, Key: key }))
        .catch((error) => console.error(`renderer: could not release ${key}: ${error?.message ?? error}`));
}

/**
 * Stitches the tile message's frame when all its tiles are on S3 and this renderer wins the marker. `deadlineMs`: when
 * this invocation ends at the latest (another renderer may take the stitch over after it). A stitch this renderer
 * held and that failed answers "failed" (the marker released first); S3 trouble before it held one throws.
 */
export async function stitchWhenComplete(
    deps: StitchDeps,
    message: FrameMessage,
    deadlineMs: number,
    upload: (localPath: string) => Promise<void>,
): Promise<StitchOutcome> {
    const of = message.of ?? 1;
    const done = await tilesOnS3(deps, message, of);
    if (done.size < of) {
        // A duplicate of a tile that finished after the frame was stitched (its images deleted): its image goes too.
        const frameRecord = await readFrameRecord(deps.s3, deps.rendersBucket, message.jobId, message.frame);
        if (frameRecord?.status === "done") {
            await deleteTileImages(deps, message, of);
            return { outcome: "done", record: frameRecord };
        }
        const missing = Array.from({ length: of }, (_, tile) => tile).filter((tile) => !done.has(tile));
        return { outcome: "waiting", missing };
    }
    const claim = await claimStitch(deps, message, deadlineMs);
    if (claim !== "mine") return { outcome: "elsewhere", until: claim };
    try {
        return { outcome: "stitched", record: await stitchFrame(deps, message, of, upload, deadlineMs) };
    } catch (error) {
        await releaseStitch(deps, message);
        return { outcome: "failed", error };
    }
}

async function stitchFrame(
    deps: StitchDeps,
    message: FrameMessage,
    of: number,
    upload: (localPath: string) => Promise<void>,
    deadlineMs: number,
): Promise<FrameRecord> {
    const started = new Date();
    const { jobId, frame } = message;
    const format = message.settings.format;
    const dir = path.join(deps.workDir, "stitch", String(frame));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    try {
        const tiles = await mapWithConcurrency(
            Array.from({ length: of }, (_, tile) => tile),
            8,
            async (tile) => {
                const record = await readTileRecord(deps.s3, deps.rendersBucket, jobId, frame, tile);
                if (record?.status !== "done" || !record.tile?.region)
                    throw new Error(`tile ${tile} of frame ${frame} has no done record with its region`);
                const key = tileImageKey(jobId, frame, tile, format);
                const file = path.join(dir, path.posix.basename(key));
                await downloadObject(deps.s3, deps.rendersBucket, key, file);
                return { record, file };
            },
        );
        const outputPath = path.join(dir, path.posix.basename(message.output.key));
        await stitchTiles({
            tiles: tiles.map(({ record, file }) => ({
                path: file,
                region: { ...record.tile!.region!, index: record.tile!.index, of },
            })),
            outputPath,
            format,
            encode: tiles[0].record.tile?.encode,
            blenderPath: deps.blenderPath,
            deadlineMs: deadlineMs - UPLOAD_RESERVE_MS,
        });
        await upload(outputPath);
        const finished = new Date();
        const stitchMs = finished.getTime() - started.getTime();
        const stitchCost = lambdaCostUsd(stitchMs, deps.memoryMb);
        const records = tiles.map((tile) => tile.record);
        const firstStart = records.map((record) => record.startedAt).sort()[0] ?? started.toISOString();
        const record: FrameRecord = {
            jobId,
            frame,
            status: "done",
            attempts: 1,
            startedAt: firstStart,
            finishedAt: finished.toISOString(),
            wallMs: finished.getTime() - Date.parse(firstStart),
            blenderMs: records.reduce((sum, tile) => sum + tile.blenderMs, 0),
            renderSeconds: Math.round(records.reduce((sum, tile) => sum + (tile.renderSeconds ?? 0), 0) * 1000) / 1000,
            memoryMb: deps.memoryMb,
            costUsd: records.reduce((sum, tile) => sum + tile.costUsd, 0) + stitchCost,
            output: message.output,
            logTail: `stitched ${of} tiles in ${(stitchMs / 1000).toFixed(2)} s`,
            stitch: { of, seconds: stitchMs / 1000, costUsd: stitchCost },
        };
        await writeFrameRecord(deps.s3, deps.rendersBucket, record);
        await deleteTileImages(deps, message, of);
        return record;
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/** The tile images go once the frame is on S3 (their records and the marker stay: the frame's history). */
async function deleteTileImages(deps: StitchDeps, message: FrameMessage, of: number): Promise<void> {
    const keys = Array.from({ length: of }, (_, tile) =>
        tileImageKey(message.jobId, message.frame, tile, message.settings.format),
    );
    try {
        const reply = await deps.s3.send(
            new DeleteObjectsCommand({
                Bucket: deps.rendersBucket,
                Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
            }),
        );
        for (const error of reply.Errors ?? [])
            console.error(`renderer: could not delete ${error.Key}: ${error.Code}: ${error.Message}`);
    } catch (error) {
        // The frame is done: tile images left behind cost only storage, and the renders bucket's lifecycle rule expires them.
        console.error(
            `renderer: could not delete the tiles of frame ${message.frame} of job ${message.jobId}: ${(error as Error)?.message ?? error}`,
        );
    }
}
