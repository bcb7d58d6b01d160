// Tiles benchmark: one heavy frame rendered whole by one renderer, then as N tiles by N renderers, on the
// local farm (`render-farm serve`), in the same process. It prints the speed-up, each tile's overhead (what a tile
// costs beyond its share of the whole frame: the scene's load and sync, its own BVH, the upload) and the stitch, and
// from those a model of the wall time on Lambda, 6 vCPU per renderer, for 16 and 64 tiles.
// This machine has 2 cores: one renderer gets both, N renderers share them, so here tiles cannot be faster than the
// whole frame by much; the model is where the speed-up shows.
//   npm run bench:tiles                the textured test scene, 320x180, 2560 samples: 75 s or more a frame here
//   npm run bench:tiles -- --smoke     64x48, 64 samples (what tests/benchmarks.test.ts runs)
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { FarmOutputs, FrameRecord, JobStatus } from "../functions/shared/contract";
import { tileRecordKey } from "../functions/shared/contract";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { api, s3Of, uploadFile, waitForJobEnd } from "../tests/support/farmClient";
import { makeScene, Scene } from "../tests/support/scenes";
import { oiiotoolPath, StitchTile, stitchTiles } from "../functions/renderer/tileStitch";
import { execFile } from "child_process";
import { promisify } from "util";
import { startServe, stopServe } from "../tests/support/serveProcess";

export interface TilesBenchOptions {
    width: number;
    height: number;
    samples: number;
    /** Tiles, and local renderers for them. */
    tiles: number;
}

interface Run {
    /** Submit to complete, seconds. */
    wallSeconds: number;
    /** The frame's image, downloaded. */
    image: string;
    status: JobStatus;
    frameRecord: FrameRecord;
    tileRecords: FrameRecord[];
}

export interface TilesBenchResult {
    options: TilesBenchOptions;
    cores: number;
    whole: Run;
    tiled: Run;
    /** oiiotool stitching N full-size tile images of this frame, seconds, for the model's tile counts. */
    stitchSeconds: Record<number, number>;
    /** The same for the frame scaled to 1920x1080. */
    stitchSeconds1080p: Record<number, number>;
}

/** A cols x rows grid of regions over the frame (the stitcher checks they cover it once). */
function gridTiles(image: string, width: number, height: number, tiles: number): StitchTile[] {
    const cols = 2 ** Math.ceil(Math.log2(tiles) / 2);
    const rows = tiles / cols;
    const edge = (index: number, count: number, size: number) => Math.round((index * size) / count);
    return Array.from({ length: tiles }, (_, index) => {
        const col = index % cols;
        const row = Math.floor(index / cols);
        const x = edge(col, cols, width);
        const y = edge(row, rows, height);
        return {
            path: image,
            region: {
                index,
                of: tiles,
                x,
                y,
                width: edge(col + 1, cols, width) - x,
                height: edge(row + 1, rows, height) - y,
                frameWidth: width,
                frameHeight: height,
            },
        };
    });
}

/**
 * Seconds oiiotool takes to stitch `tiles` full-size tile images: N copies of the frame (the same work as N tiles;
 * copies, since oiiotool reads a file it has read once from its cache).
 */
async function timeStitch(image: string, size: { width: number; height: number }, tiles: number): Promise<number> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tiles-bench-stitch-"));
    try {
        const grid = gridTiles(image, size.width, size.height, tiles).map((tile, index) => {
            const copy = path.join(dir, `${index}.png`);
            fs.copyFileSync(image, copy);
            return { ...tile, path: copy };
        });
        const started = Date.now();
        await stitchTiles({ tiles: grid, outputPath: path.join(dir, "frame.png"), format: "PNG" });
        return (Date.now() - started) / 1000;
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/** vCPUs of a renderer at Lambda's 10,240 MB (the farm's default memory). */
const LAMBDA_VCPUS = 6;
const MODEL_TILES = [16, 64];
const FRAME = 3;

async function readJson<T>(outputs: FarmOutputs, key: string): Promise<T> {
    const object = await s3Of(outputs).send(new GetObjectCommand({ Bucket: outputs.rendersBucket, Key: key }));
    return JSON.parse(await object.Body!.transformToString()) as T;
}

/** Renders frame FRAME of the scene on a fresh local farm of `workers` renderers, whole or as `tiles` tiles. */
async function renderOnce(scene: Scene, workers: number, tiles: number | undefined): Promise<Run> {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "tiles-bench-"));
    const serve = await startServe(["--port", "0", "--workers", String(workers), "--data-dir", dataDir]);
    try {
        const { outputs } = serve;
        await uploadFile(outputs, "bench/tiles/scene.blend", scene.blendPath);
        await uploadFile(outputs, "bench/tiles/textures/checker.png", scene.texturePath!);
        const jobId = tiles ? `tiles-${tiles}` : "whole";
        const started = Date.now();
        const reply = await api(outputs, "POST", "/jobs", {
            scene: "bench/tiles/scene.blend",
            jobId,
            frames: String(FRAME),
            ...(tiles ? { tiles } : {}),
        });
        if (reply.status !== 202) throw new Error(`submit answered ${reply.status}: ${JSON.stringify(reply.body)}`);
        const status = await waitForJobEnd(outputs, jobId, 3_600_000, 250);
        const wallSeconds = (Date.now() - started) / 1000;
        if (status.state !== "complete")
            throw new Error(`job ${jobId} ended ${status.state}: ${JSON.stringify(status)}`);
        const frameRecord = await readJson<FrameRecord>(outputs, `jobs/${jobId}/frames/${FRAME}.json`);
        const tileRecords = tiles
            ? await Promise.all(
                  Array.from({ length: tiles }, (_, tile) =>
                      readJson<FrameRecord>(outputs, tileRecordKey(jobId, FRAME, tile)),
                  ),
              )
            : [];
        const image = path.join(os.tmpdir(), `tiles-bench-${process.pid}-${jobId}.png`);
        const object = await s3Of(outputs).send(
            new GetObjectCommand({ Bucket: outputs.rendersBucket, Key: frameRecord.output!.key }),
        );
        fs.writeFileSync(image, Buffer.from(await object.Body!.transformToByteArray()));
        return { wallSeconds, image, status, frameRecord, tileRecords };
    } finally {
        await stopServe(serve);
        fs.rmSync(dataDir, { recursive: true, force: true });
    }
}

export async function runTilesBench(options: TilesBenchOptions): Promise<TilesBenchResult> {
    const scene = await makeScene({
        texture: "textures/checker.png",
        frames: "1-5",
        engine: "CYCLES",
        samples: options.samples,
        resolutionX: options.width,
        resolutionY: options.height,
    });
    const whole = await renderOnce(scene, 1, undefined);
    const tiled = await renderOnce(scene, options.tiles, options.tiles);
    const stitchSeconds: Record<number, number> = {};
    for (const tiles of MODEL_TILES) stitchSeconds[tiles] = await timeStitch(whole.image, options, tiles);
    // The same at 1920x1080 (the frame scaled up by oiiotool): what stitching costs a production frame.
    const hd = `${whole.image}.1080p.png`;
    await promisify(execFile)(oiiotoolPath(), [whole.image, "--resize", "1920x1080", "-o", hd]);
    const stitchSeconds1080p: Record<number, number> = {};
    for (const tiles of MODEL_TILES)
        stitchSeconds1080p[tiles] = await timeStitch(hd, { width: 1920, height: 1080 }, tiles);
    for (const file of [whole.image, tiled.image, hd]) fs.rmSync(file, { force: true });
    return { options, cores: os.cpus().length, whole, tiled, stitchSeconds, stitchSeconds1080p };
}

export function tilesReport(result: TilesBenchResult): string[] {
    const { options, whole, tiled, cores } = result;
    const n = options.tiles;
    const wholeRender = whole.frameRecord.renderSeconds ?? 0;
    const tileRender = tiled.tileRecords.map((record) => record.renderSeconds ?? 0);
    const tileWall = tiled.tileRecords.map((record) => record.wallMs / 1000);
    const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
    // Each tile had 1/N of the work and 1/N of the cores: with no overhead, a tile would take as long as the whole
    // frame did. What it takes beyond that is its overhead (load, sync, its own BVH, upload, record).
    const mean = (values: number[]) => sum(values) / Math.max(1, values.length);
    const renderOverhead = mean(tileRender) - wholeRender;
    const attemptOverhead = mean(tileWall) - whole.frameRecord.wallMs / 1000;
    const fixedOverhead = mean(tiled.tileRecords.map((record) => record.wallMs / 1000 - (record.renderSeconds ?? 0)));
    const stitchSeconds = tiled.frameRecord.stitch?.seconds ?? 0;
    const wholeCoreSeconds = wholeRender * cores;
    // The model: each renderer renders 1/N of the frame's core-seconds on its 6 vCPUs, plus one tile's attempt overhead
    // outside Blender's render as measured here (not divided by the vCPUs), then one
    // renderer stitches N tiles: oiiotool's time for N full-size tiles measured here, plus the farm's own stitch
    // overhead (downloads, upload, record) as this run's stitch less oiiotool's share for its n tiles.
    const model = (tiles: number) => {
        const render = wholeCoreSeconds / tiles / LAMBDA_VCPUS;
        // Measured per attempt beyond Blender's render: the scene's download and load, the upload, the record.
        const overhead = fixedOverhead;
        const stitch =
            result.stitchSeconds[tiles] + Math.max(0, stitchSeconds - result.stitchSeconds[tiles] * (n / tiles));
        return { tiles, render, overhead, stitch, total: render + overhead + stitch };
    };
    const wholeOnLambda = wholeCoreSeconds / LAMBDA_VCPUS;
    return [
        `scene: the textured test scene, ${options.width}x${options.height}, ${options.samples} samples, Cycles, frame ${FRAME}; ${cores} cores here`,
        `whole frame, 1 renderer (${cores} threads): ${whole.wallSeconds.toFixed(1)} s submit to complete, ${wholeRender.toFixed(1)} s rendering`,
        `${n} tiles, ${n} renderers (${Math.max(1, Math.floor(cores / n))} thread(s) each): ${tiled.wallSeconds.toFixed(1)} s submit to complete; tiles rendered ${tileRender.map((seconds) => seconds.toFixed(1)).join(", ")} s; stitch ${stitchSeconds.toFixed(2)} s`,
        `ratio whole / tiled wall time: ${(whole.wallSeconds / tiled.wallSeconds).toFixed(2)}x on ${cores} cores (the renderers share them)`,
        `per-tile overhead: ${renderOverhead.toFixed(2)} s rendering, ${attemptOverhead.toFixed(2)} s per attempt (load, sync, upload, record), beyond a tile's 1/${n} of the work on 1/${n} of the cores${renderOverhead < 0 ? ` (negative: ${cores} threads on one frame scaled worse than ${n} renderers)` : ""}; ${fixedOverhead.toFixed(2)} s per attempt outside Blender's render; oiiotool stitching ${MODEL_TILES.map((tiles) => `${tiles} tiles: ${result.stitchSeconds[tiles].toFixed(2)} s`).join(", ")}`,
        `oiiotool stitching full-size 1920x1080 PNG tiles (this frame scaled up): ${MODEL_TILES.map((tiles) => `${tiles} tiles ${result.stitchSeconds1080p[tiles].toFixed(2)} s`).join(", ")}`,
        ...MODEL_TILES.map((tiles) => {
            const row = model(tiles);
            return `model, Lambda ${LAMBDA_VCPUS} vCPU per renderer, ${tiles} tiles: ${row.total.toFixed(1)} s (render ${row.render.toFixed(1)} + overhead ${row.overhead.toFixed(1)} + stitch ${row.stitch.toFixed(1)}) vs the whole frame ${wholeOnLambda.toFixed(1)} s: ${(wholeOnLambda / row.total).toFixed(1)}x`;
        }),
    ];
}

export const SMOKE_OPTIONS: TilesBenchOptions = { width: 64, height: 48, samples: 64, tiles: 2 };
export const FULL_OPTIONS: TilesBenchOptions = { width: 320, height: 180, samples: 2560, tiles: 2 };

if (require.main === module) {
    const smoke = process.argv.includes("--smoke");
    runTilesBench(smoke ? SMOKE_OPTIONS : FULL_OPTIONS).then(
        (result) => {
            for (const line of tilesReport(result)) console.log(line);
        },
        (error) => {
            console.error(error);
            process.exit(1);
        },
    );
}
