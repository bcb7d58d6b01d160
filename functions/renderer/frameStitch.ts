// A tiled frame's last step: once every tile is rendered, one renderer (whichever wins a conditional write of the
// frame's stitch marker) assembles the frame from the tiles' images, writes it under the frame's usual key in one
// PutObject (never torn), records the frame done, and deletes the tile images. A renderer that finds the tiles done
// and the marker held by another leaves it to that one; a marker whose holder's invocation ended (it was killed) is
// taken over by the next delivery of the tile message that holder never deleted.
import * as fs from "fs";
import * as path from "path";
import { S3Client } from "@aws-sdk/client-s3";
import { lambdaCostUsd } from "../shared/contract/cost";
import { tileImageKey } from "../shared/contract/ledgerKeys";
import { FrameMessage, FrameRecord } from "../shared/contract/types";
import { mapWithConcurrency } from "../shared/concurrency";
import { JobLedger } from "../shared/ledger";
import { stitchTiles } from "./tileStitch";
import { downloadObject } from "./workDir";

/** Time kept back from oiiotool's deadline to upload the frame and record it before the invocation ends. */
const UPLOAD_RESERVE_MS = 20_000;

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
    /** Downloads the tiles' images. */
    s3: S3Client;
    ledger: JobLedger;
    memoryMb: number;
    workDir: string;
    /** The Blender that encodes a frame whose tiles were stored losslessly (a JPEG, a lossy OpenEXR codec). */
    blenderPath?: string;
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
    const { ledger } = deps;
    const done = await ledger.tilesOnS3(message.jobId, message.frame, of, message.settings.format);
    if (done.size < of) {
        // A duplicate of a tile that finished after the frame was stitched (its images deleted): its image goes too.
        const frameRecord = await ledger.readFrameRecord(message.jobId, message.frame);
        if (frameRecord?.status === "done") {
            await deleteTileImages(deps, message, of);
            return { outcome: "done", record: frameRecord };
        }
        const missing = Array.from({ length: of }, (_, tile) => tile).filter((tile) => !done.has(tile));
        return { outcome: "waiting", missing };
    }
    const claim = await ledger.claimStitch(message.jobId, message.frame, deadlineMs);
    if (claim !== "mine") return { outcome: "elsewhere", until: claim };
    try {
        return { outcome: "stitched", record: await stitchFrame(deps, message, of, upload, deadlineMs) };
    } catch (error) {
        // Given up after a failed stitch, so the tile message's next delivery stitches at once.
        await ledger
            .releaseStitch(message.jobId, message.frame)
            .catch((failure) =>
                console.error(`renderer: could not release the stitch: ${failure?.message ?? failure}`),
            );
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
                const record = await deps.ledger.readTileRecord(jobId, frame, tile);
                if (record?.status !== "done" || !record.tile?.region)
                    throw new Error(`tile ${tile} of frame ${frame} has no done record with its region`);
                const key = tileImageKey(jobId, frame, tile, format);
                const file = path.join(dir, path.posix.basename(key));
                await downloadObject(deps.s3, deps.ledger.bucket, key, file);
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
        await deps.ledger.writeFrameRecord(record);
        await deleteTileImages(deps, message, of);
        return record;
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/** The tile images go once the frame is on S3 (their records and the marker stay: the frame's history). */
async function deleteTileImages(deps: StitchDeps, message: FrameMessage, of: number): Promise<void> {
    try {
        const failures = await deps.ledger.deleteTileImages(message.jobId, message.frame, of, message.settings.format);
        for (const failure of failures)
            console.error(`renderer: could not delete ${failure.key}: ${failure.code}: ${failure.message}`);
    } catch (error) {
        // The frame is done: tile images left behind cost only storage, and the renders bucket's lifecycle rule expires them.
        console.error(
            `renderer: could not delete the tiles of frame ${message.frame} of job ${message.jobId}: ${(error as Error)?.message ?? error}`,
        );
    }
}
