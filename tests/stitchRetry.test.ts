// A tiled frame whose stitch fails the same way on every delivery (here a tile image corrupted on S3 after it was
// rendered) ends failed; a retry then renders its tiles again rather than stitching the same images again, and the
// frame ends done and exact. The real job API and renderer handlers, real Blender and oiiotool, the emulator over HTTP;
// the renderer's messages come from the queue as the event source mapping delivers them (pollOnce).
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import {
    FrameRecord,
    frameOutputKey,
    frameTilesPrefix,
    JobStatus,
    RetryReply,
    tileImageKey,
    tileRecordKey,
} from "../functions/shared/contract";
import { createJobApiHandler, HttpApiEvent } from "../functions/jobApi/handler";
import { createRendererHandler, RendererHandler } from "../functions/renderer/consumer";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { pollOnce } from "../local/eventSourcePoller";
import { localRendererSettings } from "../local/localRenderer";
import { BLENDER, comparePngs, makeScene, renderDirect } from "./support/scenes";

const JOB = "restitch";
const FRAME = 2;
const MAX_RECEIVE_COUNT = 2;
const SCENE_KEY = "shots/restitch/scene.blend";
const TEXTURE_KEY = "shots/restitch/textures/checker.png";
/** Receives before a job that should have ended is declared stuck: each delivery of each tile message, twice over. */
const MAX_POLLS = 4 * 2 * MAX_RECEIVE_COUNT + 4;

describe("a stitch that fails on every delivery: a retry renders the frame's tiles again", function () {
    let emulator: Emulator;
    let resources: FarmResources;
    let renderer: RendererHandler;
    let rendererS3: S3Client;
    let queueArn: string;
    /** Tile images the renderer uploaded, in order. */
    const tileUploads: string[] = [];
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "stitch-retry-"));

    before(async function () {
        emulator = await startEmulator();
        resources = await createFarmResources(emulator, {
            name: "stitch-retry",
            maxReceiveCount: MAX_RECEIVE_COUNT,
            visibilityTimeoutSeconds: 120,
        });
        queueArn = (
            await emulator.sqs.send(
                new GetQueueAttributesCommand({ QueueUrl: resources.frameQueueUrl, AttributeNames: ["QueueArn"] }),
            )
        ).Attributes!.QueueArn!;
        rendererS3 = new S3Client({
            endpoint: emulator.endpoint,
            region: emulator.region,
            credentials: emulator.credentials,
            forcePathStyle: true,
        });
        rendererS3.middlewareStack.add(
            (next, context) => async (args) => {
                const key = (args.input as { Key?: string }).Key ?? "";
                if (context.commandName === "PutObjectCommand" && key.startsWith(frameTilesPrefix(JOB, FRAME)))
                    if (!key.endsWith(".json")) tileUploads.push(key);
                return next(args);
            },
            { step: "initialize" },
        );
        renderer = createRendererHandler({
            s3: rendererS3,
            sqs: emulator.sqs,
            settings: localRendererSettings({
                resources,
                maxReceiveCount: MAX_RECEIVE_COUNT,
                failureBackoffSeconds: 1,
                blenderPath: BLENDER,
                workDir: path.join(work, "renderer"),
                workers: 1,
            }),
        });
    });

    after(async function () {
        await renderer?.close();
        rendererS3?.destroy();
        await emulator?.stop();
    });

    const jobApi = () =>
        createJobApiHandler({
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: {
                scenesBucket: resources.scenesBucket,
                rendersBucket: resources.rendersBucket,
                frameQueueUrl: resources.frameQueueUrl,
                deadLetterQueueUrl: resources.deadLetterQueueUrl,
                limits: { maxFrames: 100, maxResolution: 4096, allowedEngines: ["CYCLES"] },
                maxReceiveCount: MAX_RECEIVE_COUNT,
            },
        });

    async function api(method: string, rawPath: string, body?: unknown) {
        const reply = await jobApi()({
            rawPath,
            requestContext: { http: { method, path: rawPath } },
            body: body === undefined ? undefined : JSON.stringify(body),
        } as HttpApiEvent);
        return { status: reply.statusCode, body: JSON.parse(reply.body) };
    }

    const status = async () => (await api("GET", `/jobs/${JOB}`)).body as JobStatus;

    /** One receive of the frame queue into the renderer, waiting a little for a message coming back. */
    const poll = () =>
        pollOnce({
            sqs: emulator.sqs,
            queueUrl: resources.frameQueueUrl,
            queueArn,
            region: emulator.region,
            handler: renderer,
            waitTimeSeconds: 3,
        });

    /** Delivers the job's messages until it has ended (complete, failed); answers its status then. */
    async function renderUntilEnded(): Promise<JobStatus> {
        for (let polls = 0; polls < MAX_POLLS; polls++) {
            const now = await status();
            if (now.state === "complete" || now.state === "failed") return now;
            await poll();
        }
        return status();
    }

    async function readRecord(key: string): Promise<FrameRecord> {
        const object = await emulator.s3.send(new GetObjectCommand({ Bucket: resources.rendersBucket, Key: key }));
        return JSON.parse(await object.Body!.transformToString("utf-8")) as FrameRecord;
    }

    it("fails with stitch_failed on every delivery; after a retry its tiles render again and the frame is exact", async function () {
        const scene = await makeScene({
            texture: "textures/checker.png",
            frames: "1-3",
            engine: "CYCLES",
            samples: 16,
            resolutionX: 90,
            resolutionY: 60,
        });
        for (const [key, file] of [
            [SCENE_KEY, scene.blendPath],
            [TEXTURE_KEY, scene.texturePath!],
        ])
            await emulator.s3.send(
                new PutObjectCommand({ Bucket: resources.scenesBucket, Key: key, Body: fs.readFileSync(file) }),
            );
        const submitted = await api("POST", "/jobs", { scene: SCENE_KEY, frames: String(FRAME), tiles: 2, jobId: JOB });
        assert.strictEqual(submitted.status, 202, JSON.stringify(submitted.body));

        // The first tile renders; its image is then corrupted on S3 (as a torn or bit-rotten upload would be).
        assert.strictEqual(await poll(), "succeeded");
        assert.strictEqual(tileUploads.length, 1, JSON.stringify(tileUploads));
        const corrupted = tileUploads[0];
        await emulator.s3.send(
            new PutObjectCommand({ Bucket: resources.rendersBucket, Key: corrupted, Body: "not an image any more" }),
        );
        // The second tile renders and its renderer stitches: oiiotool cannot read the corrupted tile, on every
        // delivery of that tile message.
        const failed = await renderUntilEnded();
        assert.strictEqual(failed.state, "failed", JSON.stringify(failed));
        assert.strictEqual(failed.failures.length, 1, JSON.stringify(failed.failures));
        assert.match(failed.failures[0].error, /^stitch_failed: .*could not be stitched/);
        assert.strictEqual(tileUploads.length, 2, "each tile rendered once");

        const retried = await api("POST", `/jobs/${JOB}/retry`);
        assert.strictEqual(retried.status, 202, JSON.stringify(retried.body));
        const reply = retried.body as RetryReply;
        assert.strictEqual(reply.failed, 1, JSON.stringify(reply));
        const retriedAt = Date.now();

        const done = await renderUntilEnded();
        assert.strictEqual(done.state, "complete", JSON.stringify(done));
        assert.deepStrictEqual(done.tiles, { of: 2, done: 2, total: 2 });
        assert.deepStrictEqual(
            [...tileUploads].sort(),
            [0, 0, 1, 1].map((tile) => tileImageKey(JOB, FRAME, tile, "PNG")),
            "each tile rendered again",
        );
        for (const tile of [0, 1]) {
            const record = await readRecord(tileRecordKey(JOB, FRAME, tile));
            assert.strictEqual(record.status, "done");
            assert.ok(Date.parse(record.startedAt) >= retriedAt, `tile ${tile} rendered after the retry`);
        }
        const frameRecord = await readRecord(`jobs/${JOB}/frames/${FRAME}.json`);
        assert.strictEqual(frameRecord.status, "done", JSON.stringify(frameRecord));
        assert.strictEqual(frameRecord.stitch?.of, 2);

        const stitched = path.join(work, "stitched.png");
        const object = await emulator.s3.send(
            new GetObjectCommand({ Bucket: resources.rendersBucket, Key: frameOutputKey(JOB, FRAME, "PNG") }),
        );
        fs.writeFileSync(stitched, Buffer.from(await object.Body!.transformToByteArray()));
        const comparison = comparePngs(stitched, await renderDirect(scene.blendPath, FRAME, work));
        assert.ok(comparison.sameShape && comparison.differingSamples === 0, JSON.stringify(comparison));
        // The retry told why the tiles were rendered again.
        assert.match(reply.message, /1 requeued frame\(s\) could not be stitched, so their tiles are rendered again/);
    });
});
