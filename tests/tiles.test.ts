// Tiled frames on the local farm (`render-farm serve`), over the wire, with real Blender and the real stitcher: a frame
// split into 2, 4 and 7 tiles equals Blender's own render of it exactly, PNG and EXR; what cannot be split exactly is
// refused; and the faults a farm meets (a renderer killed mid-tile, a tile delivered twice, tiles finishing together)
// still end in exactly one correct frame.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import type { FarmOutputs, FrameRecord, JobStatus } from "../functions/shared/contract";
import { frameTilesPrefix, tileRecordKey } from "../functions/shared/contract";
import { renderingIn } from "./support/blenderProcesses";
import { runCli } from "./support/cliRunner";
import { api, listKeys, s3Of, sqsOf, uploadFile, waitFor, waitForJobEnd } from "./support/farmClient";
import { compareImages } from "./support/imageCompare";
import { comparePngs, makeScene, renderDirect, Scene } from "./support/scenes";
import { ServeProcess, startServe, stopServe } from "./support/serveProcess";
import { freezeHoldingFrame, killWorker, startWorker, stopWorker, WorkerProcess } from "./support/workerProcess";

// Odd sizes: tile edges fall on uneven pixel boundaries, rows of 7 tiles differ in width.
const WIDTH = 101;
const HEIGHT = 67;
const FRAME = 3;
const SCENE_KEY = "shots/tiles/scene.blend";
const TEXTURE_KEY = "shots/tiles/textures/checker.png";

function newDataDir(): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), "tiles-"));
}

async function texturedScene(samples: number): Promise<Scene> {
    return makeScene({
        texture: "textures/checker.png",
        frames: "1-5",
        engine: "CYCLES",
        samples,
        resolutionX: WIDTH,
        resolutionY: HEIGHT,
    });
}

async function uploadScene(outputs: FarmOutputs, scene: Scene): Promise<void> {
    await uploadFile(outputs, SCENE_KEY, scene.blendPath);
    await uploadFile(outputs, TEXTURE_KEY, scene.texturePath!);
}

async function download(outputs: FarmOutputs, key: string, file: string): Promise<string> {
    const object = await s3Of(outputs).send(new GetObjectCommand({ Bucket: outputs.rendersBucket, Key: key }));
    fs.writeFileSync(file, Buffer.from(await object.Body!.transformToByteArray()));
    return file;
}

async function jsonObject<T>(outputs: FarmOutputs, key: string): Promise<T> {
    const object = await s3Of(outputs).send(new GetObjectCommand({ Bucket: outputs.rendersBucket, Key: key }));
    return JSON.parse(await object.Body!.transformToString()) as T;
}

async function submitTiled(outputs: FarmOutputs, jobId: string, body: Record<string, unknown>): Promise<void> {
    const reply = await api(outputs, "POST", "/jobs", { scene: SCENE_KEY, jobId, ...body });
    assert.strictEqual(reply.status, 202, JSON.stringify(reply.body));
}

/** The job's frame equals Blender's own render exactly: every sample, PNG by the tests' decoder, EXR by Blender's. */
async function assertExact(outputs: FarmOutputs, jobId: string, frame: number, reference: string, dir: string) {
    const exr = reference.endsWith(".exr");
    const key = `renders/${jobId}/frame_${String(frame).padStart(4, "0")}.${exr ? "exr" : "png"}`;
    const file = await download(outputs, key, path.join(dir, `${jobId}.${exr ? "exr" : "png"}`));
    const comparison = exr ? await compareImages(reference, file) : comparePngs(reference, file);
    assert.ok(comparison.sameShape, `${jobId}: not the shape of Blender's own render`);
    assert.strictEqual(comparison.differingSamples, 0, `${jobId}: ${JSON.stringify(comparison)}`);
    assert.strictEqual(comparison.maxDifference, 0, `${jobId}: ${JSON.stringify(comparison)}`);
}

/** The renderers' log lines (stdout) saying a frame was stitched, "<jobId>/<frame>" each. */
function stitches(worker: WorkerProcess): string[] {
    return [...worker.stdout().matchAll(/renderer: frame (\d+) of job ([a-z0-9-]+) stitched from \d+ tiles/g)].map(
        (match) => `${match[2]}/${match[1]}`,
    );
}

describe("tiles: one frame rendered across renderers and stitched exactly", function () {
    let serve: ServeProcess | undefined;
    const workers: WorkerProcess[] = [];

    afterEach(async function () {
        for (const worker of workers.splice(0)) await stopWorker(worker);
        await stopServe(serve);
        serve = undefined;
    });

    it("a frame as 2, 4 and 7 tiles equals Blender's own render of it, PNG and EXR; status counts tiles, cost sums them", async function () {
        const dataDir = newDataDir();
        const scene = await texturedScene(16);
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tiles-own-"));
        const own = {
            PNG: await renderDirect(scene.blendPath, FRAME, dir),
            OPEN_EXR: await renderDirect(scene.blendPath, FRAME, dir, "OPEN_EXR"),
        };
        serve = await startServe(["--port", "0", "--workers", "2", "--data-dir", dataDir]);
        const outputs = serve.outputs;
        await uploadScene(outputs, scene);
        const jobs: { jobId: string; tiles: number; format: "PNG" | "OPEN_EXR" }[] = [];
        for (const format of ["PNG", "OPEN_EXR"] as const)
            for (const tiles of [2, 4, 7])
                jobs.push({ jobId: `tiles-${tiles}-${format === "PNG" ? "png" : "exr"}`, tiles, format });
        for (const job of jobs)
            await submitTiled(outputs, job.jobId, { frames: String(FRAME), tiles: job.tiles, format: job.format });

        for (const job of jobs) {
            const status: JobStatus = await waitForJobEnd(outputs, job.jobId, 240_000);
            assert.strictEqual(status.state, "complete", JSON.stringify(status));
            assert.deepStrictEqual(status.frames, { total: 1, done: 1, failed: 0, pending: 0 });
            assert.deepStrictEqual(status.tiles, { of: job.tiles, done: job.tiles, total: job.tiles });
            await assertExact(outputs, job.jobId, FRAME, own[job.format], dir);

            // The frame's record is the stitch's; each tile kept its record; the tile images are gone.
            const record = await jsonObject<FrameRecord>(outputs, `jobs/${job.jobId}/frames/${FRAME}.json`);
            assert.strictEqual(record.status, "done");
            assert.strictEqual(record.stitch?.of, job.tiles);
            const tileRecords = await Promise.all(
                Array.from({ length: job.tiles }, (_, tile) =>
                    jsonObject<FrameRecord>(outputs, tileRecordKey(job.jobId, FRAME, tile)),
                ),
            );
            assert.deepStrictEqual(
                tileRecords.map((tile) => [tile.tile?.index, tile.status]),
                tileRecords.map((_, tile) => [tile, "done"]),
            );
            const regions = tileRecords.map((tile) => tile.tile!.region!);
            const area = regions.reduce((sum, region) => sum + region.width * region.height, 0);
            assert.strictEqual(area, WIDTH * HEIGHT, "the regions cover the frame once");
            const left = await listKeys(outputs, frameTilesPrefix(job.jobId, FRAME));
            assert.deepStrictEqual(
                left.filter((key) => !key.endsWith(".json")),
                [],
                "no tile image is left once the frame is stitched",
            );
            const tileCost = tileRecords.reduce((sum, tile) => sum + tile.costUsd, 0);
            assert.ok(
                Math.abs(status.costUsd - (tileCost + record.stitch!.costUsd)) < 2e-6,
                `status ${status.costUsd} = tiles ${tileCost} + stitch ${record.stitch!.costUsd}`,
            );
            assert.ok(Math.abs(record.costUsd - status.costUsd) < 2e-6, "the frame's record sums its tiles");
        }
    });

    it("render --tiles: the CLI submits a tiled job, shows tiles as a sub-count of its frames, downloads the frames", async function () {
        const dataDir = newDataDir();
        serve = await startServe(["--port", "0", "--workers", "2", "--data-dir", dataDir]);
        const scene = await texturedScene(16);
        const out = path.join(dataDir, "out");
        const run = await runCli(
            [
                "render",
                scene.blendPath,
                "--frames",
                "2-3",
                "--tiles",
                "3",
                "--job-id",
                "cli-tiles",
                "--out",
                out,
                "--data-dir",
                dataDir,
            ],
            { timeoutMs: 300_000 },
        );
        assert.strictEqual(run.code, 0, run.stderr);
        assert.match(run.stderr, /2\/2 done \(tiles 6\/6\), 0 failed/);
        assert.deepStrictEqual(
            fs
                .readdirSync(out)
                .filter((name) => name.endsWith(".png"))
                .sort(),
            ["frame_0002.png", "frame_0003.png"],
        );
        const status = await runCli(["status", "cli-tiles", "--data-dir", dataDir]);
        assert.strictEqual(status.code, 0, status.stderr);
        assert.match(status.stdout, /job cli-tiles complete: 2\/2 done \(tiles 6\/6\)/);
        const json = await runCli(["status", "cli-tiles", "--data-dir", dataDir, "--json"]);
        assert.deepStrictEqual(JSON.parse(json.stdout).tiles, { of: 3, done: 6, total: 6 });
        const bad = await runCli(["render", scene.blendPath, "--tiles", "1", "--data-dir", dataDir]);
        assert.strictEqual(bad.code, 2, bad.stderr);
        assert.match(bad.stderr, /--tiles must be a whole number from 2 to 64, or auto/);
    });

    it("refuses what cannot be split exactly (422), and tile counts out of range", async function () {
        const dataDir = newDataDir();
        serve = await startServe(["--port", "0", "--workers", "0", "--data-dir", dataDir]);
        const outputs = serve.outputs;
        const scene = await texturedScene(4);
        await uploadScene(outputs, scene);
        const eevee = await api(outputs, "POST", "/jobs", { scene: SCENE_KEY, tiles: 4, engine: "EEVEE" });
        assert.strictEqual(eevee.status, 422, JSON.stringify(eevee.body));
        assert.strictEqual(eevee.body.error.code, "tiles_not_exact");
        assert.strictEqual(eevee.body.error.field, "tiles");
        assert.match(eevee.body.error.message, /EEVEE/);
        const eeveeScene = await makeScene({ engine: "EEVEE", resolutionX: 32, resolutionY: 24 });
        await uploadFile(outputs, "shots/eevee/scene.blend", eeveeScene.blendPath);
        const sceneEngine = await api(outputs, "POST", "/jobs", { scene: "shots/eevee/scene.blend", tiles: 2 });
        assert.strictEqual(sceneEngine.status, 422, JSON.stringify(sceneEngine.body));
        assert.strictEqual(sceneEngine.body.error.code, "tiles_not_exact");

        // The compositor needs the whole frame: the preflight reads it from the .blend and says so.
        const composited = await makeScene({ fileOutput: true, resolutionX: 32, resolutionY: 24 });
        await uploadFile(outputs, "shots/composited/scene.blend", composited.blendPath);
        const compositor = await api(outputs, "POST", "/jobs", { scene: "shots/composited/scene.blend", tiles: 2 });
        assert.strictEqual(compositor.status, 422, JSON.stringify(compositor.body));
        assert.strictEqual(compositor.body.error.code, "tiles_not_exact");
        assert.match(compositor.body.error.message, /compositor/);
        // Without tiles, the same scene is fine.
        const untiled = await api(outputs, "POST", "/jobs", {
            scene: "shots/composited/scene.blend",
            jobId: "whole",
            frames: "1",
        });
        assert.strictEqual(untiled.status, 202, JSON.stringify(untiled.body));

        const auto = await api(outputs, "POST", "/jobs", { scene: SCENE_KEY, tiles: "auto" });
        assert.strictEqual(auto.status, 422, JSON.stringify(auto.body));
        assert.strictEqual(auto.body.error.code, "tiles_auto_needs_estimate");
        for (const tiles of [1, 65, 2.5, "4"]) {
            const reply = await api(outputs, "POST", "/jobs", { scene: SCENE_KEY, tiles });
            assert.strictEqual(reply.status, 400, `tiles ${JSON.stringify(tiles)}: ${JSON.stringify(reply.body)}`);
            assert.strictEqual(reply.body.error.field, "tiles");
        }
        // Nothing was queued for any of them: only the untiled job's frame is.
        const queued = await sqsOf(outputs).send(
            new ReceiveMessageCommand({ QueueUrl: outputs.frameQueueUrl, MaxNumberOfMessages: 10 }),
        );
        const jobIds = new Set((queued.Messages ?? []).map((message) => JSON.parse(message.Body!).jobId));
        assert.deepStrictEqual([...jobIds], ["whole"]);
    });

    it("a tile delivered twice, and a renderer killed mid-tile: exactly one correct frame", async function () {
        const dataDir = newDataDir();
        // Tiles of about a second each, so the kill lands while one renders.
        const scene = await texturedScene(768);
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tiles-faults-"));
        const own = await renderDirect(scene.blendPath, FRAME, dir);
        serve = await startServe(["--port", "0", "--workers", "0", "--data-dir", dataDir]);
        const outputs = serve.outputs;
        await uploadScene(outputs, scene);
        await submitTiled(outputs, "faults", { frames: String(FRAME), tiles: 4 });

        // Every tile message queued a second time: SQS delivers at least once.
        const sqs = sqsOf(outputs);
        const received = await sqs.send(
            new ReceiveMessageCommand({
                QueueUrl: outputs.frameQueueUrl,
                MaxNumberOfMessages: 10,
                VisibilityTimeout: 0,
            }),
        );
        assert.strictEqual(received.Messages?.length, 4);
        for (const message of received.Messages!)
            await sqs.send(new SendMessageCommand({ QueueUrl: outputs.frameQueueUrl, MessageBody: message.Body! }));

        const first = await startWorker(["--data-dir", dataDir, "--workers", "1"]);
        workers.push(first);
        // Frozen while it holds a tile mid-render (its frame's work dir still there), then SIGKILLed.
        const held = await freezeHoldingFrame(first, 120_000);
        assert.strictEqual(held, FRAME, "the first renderer was caught holding a tile");
        await killWorker(first);
        const second = await startWorker(["--data-dir", dataDir, "--workers", "2"]);
        workers.push(second);

        const status = await waitForJobEnd(outputs, "faults", 300_000);
        assert.strictEqual(status.state, "complete", JSON.stringify(status));
        assert.deepStrictEqual(status.tiles, { of: 4, done: 4, total: 4 });
        await assertExact(outputs, "faults", FRAME, own, dir);
        // The duplicates met a done frame (or a done tile) and were dropped: the queue drains, one stitch happened.
        await waitFor(
            "the queue drained",
            120_000,
            async () => {
                const left = await sqs.send(
                    new ReceiveMessageCommand({
                        QueueUrl: outputs.frameQueueUrl,
                        MaxNumberOfMessages: 10,
                        VisibilityTimeout: 0,
                    }),
                );
                return (left.Messages ?? []).length === 0 && !renderingIn(second.ready.workDir) ? true : undefined;
            },
            500,
        );
        assert.deepStrictEqual([...stitches(first), ...stitches(second)], [`faults/${FRAME}`]);
        const left = await listKeys(outputs, frameTilesPrefix("faults", FRAME));
        assert.deepStrictEqual(
            left.filter((key) => !key.endsWith(".json")),
            [],
        );
    });

    it("two renderers on each frame's two equal tiles: each frame is stitched exactly once, and exactly", async function () {
        const dataDir = newDataDir();
        const scene = await texturedScene(64);
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tiles-race-"));
        serve = await startServe(["--port", "0", "--workers", "0", "--data-dir", dataDir]);
        const outputs = serve.outputs;
        await uploadScene(outputs, scene);
        // Two equal halves per frame on two renderers: each frame's two tiles start together and end together.
        await submitTiled(outputs, "race", { frames: "1-5", tiles: 2 });
        const worker = await startWorker(["--data-dir", dataDir, "--workers", "2"]);
        workers.push(worker);
        const status = await waitForJobEnd(outputs, "race", 300_000);
        assert.strictEqual(status.state, "complete", JSON.stringify(status));
        assert.deepStrictEqual(
            [...stitches(worker)].sort(),
            ["race/1", "race/2", "race/3", "race/4", "race/5"],
            "one stitch per frame",
        );
        for (const frame of [1, 5])
            await assertExact(outputs, "race", frame, await renderDirect(scene.blendPath, frame, dir), dir);
    });
});
