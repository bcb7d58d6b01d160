// Done is final: two deliveries of one frame (or tile) race, one fails late and the other finishes, and the failure
// never overwrites the done record. Made exact with S3 clients that hold the failing renderer's record write (after
// its read) until the other renderer has written done: the real handlers, real Blender, the emulator. The late
// failure's message is then done with, and its redelivery does not render the finished frame again.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { SQSRecord } from "aws-lambda";
import {
    FRAME_MESSAGE_VERSION,
    FrameMessage,
    FrameRecord,
    frameOutputKey,
    frameRecordKey,
    tileImageKey,
    tileRecordKey,
} from "../functions/shared/contract";
import { createRendererHandler, RendererHandler } from "../functions/renderer/consumer";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { localRendererSettings } from "../local/localRenderer";
import { sqsRecordOf } from "./support/sqsRecords";
import { BLENDER, comparePngs, makeScene, renderDirect, Scene } from "./support/scenes";

const QUEUE = "done-is-final-frames";
const JOB = "final";

/** A point one request stops at until another has done its part: `reached` once it stops, `open()` lets it on. */
interface Gate {
    reached: Promise<void>;
    arrive(): void;
    opened: Promise<void>;
    open(): void;
}

function gate(): Gate {
    let arrive = () => {};
    let open = () => {};
    const reached = new Promise<void>((resolve) => {
        arrive = resolve;
    });
    const opened = new Promise<void>((resolve) => {
        open = resolve;
    });
    return { reached, arrive, opened, open };
}

interface Faults {
    /** The PutObject of this key stops at the gate (after the renderer's read of it, if any) until it is opened. */
    holdWrite?: { key: string; gate: Gate };
    /** S3 refuses the upload of this key: a render that fails after Blender, when its image goes up. */
    refuseUpload?: string;
    /** S3 refuses reading keys under this prefix that end in .png: a stitch that cannot fetch its tiles. */
    refuseTileReads?: string;
    /** Keys this renderer uploaded images to (PutObject or multipart). */
    uploads?: string[];
}

function unavailable(key: string): Error {
    return Object.assign(new Error(`injected: S3 is unavailable for ${key}`), {
        name: "ServiceUnavailable",
        $metadata: { httpStatusCode: 503 },
    });
}

/** The message's next delivery, as SQS counts it. */
function delivery(record: SQSRecord, count: number): SQSRecord {
    return { ...record, attributes: { ...record.attributes, ApproximateReceiveCount: String(count) } };
}

async function readJson<T>(s3: S3Client, bucket: string, key: string): Promise<T | undefined> {
    try {
        const reply = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return JSON.parse(await reply.Body!.transformToString("utf-8")) as T;
    } catch (error) {
        if ((error as { name?: string }).name === "NoSuchKey") return undefined;
        throw error;
    }
}

describe("done is final: a late failure of a duplicate delivery never overwrites a done record", function () {
    let emulator: Emulator;
    let resources: FarmResources;
    let scene: Scene;
    let sceneEtag: string;
    const sceneKey = "shots/final/scene.blend";
    const textureKey = "shots/final/textures/checker.png";
    const closers: (() => Promise<void> | void)[] = [];
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "done-is-final-"));

    before(async function () {
        emulator = await startEmulator();
        resources = await createFarmResources(emulator, {
            name: "done-is-final",
            maxReceiveCount: 3,
            visibilityTimeoutSeconds: 120,
        });
        scene = await makeScene({
            texture: "textures/checker.png",
            frames: "1-3",
            engine: "CYCLES",
            samples: 16,
            resolutionX: 90,
            resolutionY: 60,
        });
        const put = await emulator.s3.send(
            new PutObjectCommand({
                Bucket: resources.scenesBucket,
                Key: sceneKey,
                Body: fs.readFileSync(scene.blendPath),
            }),
        );
        sceneEtag = put.ETag!;
        await emulator.s3.send(
            new PutObjectCommand({
                Bucket: resources.scenesBucket,
                Key: textureKey,
                Body: fs.readFileSync(scene.texturePath!),
            }),
        );
    });

    after(async function () {
        for (const close of closers.reverse()) await close();
        await emulator?.stop();
    });

    /** A renderer (the real handler, its own Blender) whose S3 client meets `faults`. */
    function renderer(faults: Faults = {}): RendererHandler {
        const s3 = new S3Client({
            endpoint: emulator.endpoint,
            region: emulator.region,
            credentials: emulator.credentials,
            forcePathStyle: true,
        });
        s3.middlewareStack.add(
            (next, context) => async (args) => {
                const key = (args.input as { Key?: string }).Key ?? "";
                const command = context.commandName;
                const upload = command === "PutObjectCommand" || command === "CreateMultipartUploadCommand";
                if (upload && !key.endsWith(".json")) faults.uploads?.push(key);
                if (upload && key === faults.refuseUpload) throw unavailable(key);
                if (
                    command === "GetObjectCommand" &&
                    faults.refuseTileReads &&
                    key.startsWith(faults.refuseTileReads) &&
                    key.endsWith(".png")
                )
                    throw unavailable(key);
                if (command === "PutObjectCommand" && key === faults.holdWrite?.key) {
                    faults.holdWrite.gate.arrive();
                    await faults.holdWrite.gate.opened;
                }
                return next(args);
            },
            { step: "initialize" },
        );
        closers.push(() => s3.destroy());
        const handler = createRendererHandler({
            s3,
            sqs: emulator.sqs,
            settings: localRendererSettings({
                resources,
                maxReceiveCount: 3,
                failureBackoffSeconds: 1,
                blenderPath: BLENDER,
                workDir: fs.mkdtempSync(path.join(work, "renderer-")),
                workers: 2,
            }),
        });
        closers.push(() => handler.close());
        return handler;
    }

    function message(frame: number, tile?: number): SQSRecord {
        const body: FrameMessage = {
            v: FRAME_MESSAGE_VERSION,
            jobId: JOB,
            frame,
            scene: sceneKey,
            sceneEtag,
            assets: [textureKey],
            settings: { format: "PNG" },
            output: { bucket: resources.rendersBucket, key: frameOutputKey(JOB, frame, "PNG") },
            ...(tile === undefined ? {} : { tile, of: 2 }),
        };
        return sqsRecordOf(body, QUEUE);
    }

    const record = (key: string) => readJson<FrameRecord>(emulator.s3, resources.rendersBucket, key);

    async function assertExact(frame: number): Promise<void> {
        const dir = fs.mkdtempSync(path.join(work, "out-"));
        const file = path.join(dir, "frame.png");
        const object = await emulator.s3.send(
            new GetObjectCommand({ Bucket: resources.rendersBucket, Key: frameOutputKey(JOB, frame, "PNG") }),
        );
        fs.writeFileSync(file, Buffer.from(await object.Body!.transformToByteArray()));
        const comparison = comparePngs(file, await renderDirect(scene.blendPath, frame, dir));
        assert.ok(comparison.sameShape && comparison.differingSamples === 0, JSON.stringify(comparison));
    }

    it("a whole frame: the delivery whose upload failed meets the other's done record; the frame stays done, its redelivery renders nothing", async function () {
        const frame = 1;
        const delivered = message(frame);
        const held = gate();
        const late = renderer({
            refuseUpload: frameOutputKey(JOB, frame, "PNG"),
            holdWrite: { key: frameRecordKey(JOB, frame), gate: held },
        });
        const lateReply = late({ Records: [delivered] });
        // The late delivery rendered, its upload failed, and its failure record waits to be written.
        await held.reached;
        const other = await renderer()({ Records: [{ ...delivered, messageId: "duplicate" }] });
        assert.deepStrictEqual(other.batchItemFailures, []);
        assert.strictEqual((await record(frameRecordKey(JOB, frame)))?.status, "done");
        held.open();
        const lateOutcome = await lateReply;

        const standing = await record(frameRecordKey(JOB, frame));
        assert.strictEqual(standing?.status, "done", `the frame's record: ${JSON.stringify(standing)}`);
        assert.deepStrictEqual(standing.output, {
            bucket: resources.rendersBucket,
            key: frameOutputKey(JOB, frame, "PNG"),
        });
        assert.deepStrictEqual(lateOutcome.batchItemFailures, [], "the late delivery's message is done with");

        // Had it come back anyway (SQS at least once): it finds the frame done and renders nothing.
        const uploads: string[] = [];
        const again = await renderer({ uploads })({ Records: [delivery(delivered, 2)] });
        assert.deepStrictEqual(again.batchItemFailures, []);
        assert.deepStrictEqual(uploads, [], "the finished frame is not rendered again");
        await assertExact(frame);
    });

    it("a tile: the duplicate whose tile upload failed leaves the done tile done and records no failure for its frame", async function () {
        const frame = 2;
        const delivered = message(frame, 0);
        const held = gate();
        const late = renderer({
            refuseUpload: tileImageKey(JOB, frame, 0, "PNG"),
            holdWrite: { key: tileRecordKey(JOB, frame, 0), gate: held },
        });
        const lateReply = late({ Records: [delivered] });
        await held.reached;
        const finisher = renderer();
        assert.deepStrictEqual(
            (await finisher({ Records: [{ ...delivered, messageId: "duplicate" }] })).batchItemFailures,
            [],
        );
        held.open();
        const lateOutcome = await lateReply;

        const tile = await record(tileRecordKey(JOB, frame, 0));
        assert.strictEqual(tile?.status, "done", `tile 0's record: ${JSON.stringify(tile)}`);
        assert.strictEqual(await record(frameRecordKey(JOB, frame)), undefined, "no failure recorded for the frame");
        assert.deepStrictEqual(lateOutcome.batchItemFailures, [], "the late delivery's message is done with");

        // The other tile: the frame is stitched from the done tile, exactly.
        assert.deepStrictEqual((await finisher({ Records: [message(frame, 1)] })).batchItemFailures, []);
        const stitched = await record(frameRecordKey(JOB, frame));
        assert.strictEqual(stitched?.status, "done", JSON.stringify(stitched));
        assert.strictEqual(stitched.stitch?.of, 2);
        await assertExact(frame);
    });

    it("a stitch: the renderer whose stitch failed meets the done record of the one that took the stitch over", async function () {
        const frame = 3;
        const finisher = renderer();
        const tile0 = message(frame, 0);
        assert.deepStrictEqual((await finisher({ Records: [tile0] })).batchItemFailures, []);
        const held = gate();
        const failing = renderer({
            refuseTileReads: `jobs/${JOB}/tiles/${frame}/`,
            holdWrite: { key: frameRecordKey(JOB, frame), gate: held },
        });
        // It renders tile 1, finds both tiles done, holds the stitch, cannot fetch the tiles: the stitch fails and
        // its marker is released; its failure record waits to be written.
        const failingReply = failing({ Records: [message(frame, 1)] });
        await held.reached;
        // Tile 0's message comes back (it was not deleted in this story): its tile is done, so it stitches.
        assert.deepStrictEqual((await finisher({ Records: [delivery(tile0, 2)] })).batchItemFailures, []);
        assert.strictEqual((await record(frameRecordKey(JOB, frame)))?.status, "done");
        held.open();
        const failingOutcome = await failingReply;

        const standing = await record(frameRecordKey(JOB, frame));
        assert.strictEqual(standing?.status, "done", `the frame's record: ${JSON.stringify(standing)}`);
        assert.strictEqual(standing.stitch?.of, 2);
        assert.deepStrictEqual(failingOutcome.batchItemFailures, [], "the failed stitch's message is done with");
        await assertExact(frame);
    });
});
