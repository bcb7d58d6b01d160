// Two tiles finishing at the same moment, made exact: two renderers (the real handler, each with its own Blender)
// render a frame's last two tiles at once, and their S3 clients hold each one's listing of the frame's tiles until
// both have asked, so both find every tile done and both try to stitch. One wins the marker's conditional write and
// stitches; the other waits for the frame and deletes its message. Exactly one frame is written, and it is exact.
// A duplicate tile finishing after the stitch takes its image away.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import {
    FRAME_MESSAGE_VERSION,
    FrameMessage,
    FrameRecord,
    frameOutputKey,
    frameRecordKey,
    frameTilesPrefix,
    tileImageKey,
} from "../functions/shared/contract";
import { stitchWhenComplete } from "../functions/renderer/frameStitch";
import { jobLedger } from "../functions/shared/ledger";
import { createRendererHandler, RendererHandler } from "../functions/renderer/consumer";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { localRendererSettings } from "../local/localRenderer";
import { sqsRecordOf } from "./support/sqsRecords";
import { BLENDER, comparePngs, makeScene, renderDirect } from "./support/scenes";

const TILES = 3;
const QUEUE = "stitch-election-frames";

describe("tiles finishing at the same moment: one stitch, one frame", function () {
    let emulator: Emulator;
    let resources: FarmResources;
    const closers: (() => Promise<void> | void)[] = [];

    before(async function () {
        emulator = await startEmulator();
        resources = await createFarmResources(emulator, {
            name: "stitch-election",
            maxReceiveCount: 3,
            visibilityTimeoutSeconds: 120,
        });
    });

    after(async function () {
        for (const close of closers.reverse()) await close();
        await emulator?.stop();
    });

    /** A renderer whose S3 client counts the frame writes and holds tile listings at `barrier` when one is given. */
    function renderer(frameWrites: string[], barrier?: () => Promise<void>): RendererHandler {
        const s3 = new S3Client({
            endpoint: emulator.endpoint,
            region: emulator.region,
            credentials: emulator.credentials,
            forcePathStyle: true,
        });
        s3.middlewareStack.add(
            (next, context) => async (args) => {
                const input = args.input as { Key?: string; Prefix?: string };
                if (context.commandName === "ListObjectsV2Command" && input.Prefix?.includes("/tiles/") && barrier)
                    await barrier();
                if (
                    (context.commandName === "PutObjectCommand" ||
                        context.commandName === "CreateMultipartUploadCommand") &&
                    input.Key?.startsWith("renders/")
                )
                    frameWrites.push(input.Key);
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
                workDir: fs.mkdtempSync(path.join(os.tmpdir(), "stitch-election-")),
                workers: 2,
            }),
        });
        closers.push(() => handler.close());
        return handler;
    }

    it("both renderers find every tile done; exactly one stitches, the other deletes its message; the frame is exact", async function () {
        const scene = await makeScene({
            texture: "textures/checker.png",
            frames: "1-3",
            engine: "CYCLES",
            samples: 16,
            resolutionX: 90,
            resolutionY: 60,
        });
        const sceneKey = "shots/election/scene.blend";
        const textureKey = "shots/election/textures/checker.png";
        const put = await emulator.s3.send(
            new PutObjectCommand({
                Bucket: resources.scenesBucket,
                Key: sceneKey,
                Body: fs.readFileSync(scene.blendPath),
            }),
        );
        await emulator.s3.send(
            new PutObjectCommand({
                Bucket: resources.scenesBucket,
                Key: textureKey,
                Body: fs.readFileSync(scene.texturePath!),
            }),
        );
        let arrived = 0;
        let release: () => void = () => {};
        const bothArrived = new Promise<void>((resolve) => {
            release = resolve;
        });
        const barrier = async () => {
            arrived++;
            if (arrived === 2) release();
            // Never more than a minute: a renderer that never lists must not hang the test.
            await Promise.race([bothArrived, new Promise((resolve) => setTimeout(resolve, 60_000).unref())]);
        };
        const frameWrites: string[] = [];
        const first = renderer(frameWrites);
        const [left, right] = [renderer(frameWrites, barrier), renderer(frameWrites, barrier)];

        const frame = 2;
        const message = (tile: number): FrameMessage => ({
            v: FRAME_MESSAGE_VERSION,
            jobId: "election",
            frame,
            scene: sceneKey,
            sceneEtag: put.ETag!,
            assets: [textureKey],
            settings: { format: "PNG" },
            output: { bucket: resources.rendersBucket, key: frameOutputKey("election", frame, "PNG") },
            tile,
            of: TILES,
        });
        assert.deepStrictEqual((await first({ Records: [sqsRecordOf(message(0), QUEUE)] })).batchItemFailures, []);
        assert.deepStrictEqual(frameWrites, [], "one tile of three: no frame yet");
        const replies = await Promise.all([
            left({ Records: [sqsRecordOf(message(1), QUEUE)] }),
            right({ Records: [sqsRecordOf(message(2), QUEUE)] }),
        ]);
        assert.strictEqual(arrived, 2, "both renderers listed the frame's tiles at the barrier");
        assert.deepStrictEqual(
            replies.map((reply) => reply.batchItemFailures),
            [[], []],
            "both messages are done with (deleted)",
        );
        const outputKey = frameOutputKey("election", frame, "PNG");
        assert.deepStrictEqual(frameWrites, [outputKey], "exactly one frame written");

        const record = JSON.parse(
            Buffer.from(
                await (
                    await emulator.s3.send(
                        new GetObjectCommand({
                            Bucket: resources.rendersBucket,
                            Key: frameRecordKey("election", frame),
                        }),
                    )
                ).Body!.transformToByteArray(),
            ).toString("utf8"),
        ) as FrameRecord;
        assert.strictEqual(record.status, "done");
        assert.strictEqual(record.stitch?.of, TILES);
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stitch-election-out-"));
        const stitched = path.join(dir, "stitched.png");
        fs.writeFileSync(
            stitched,
            Buffer.from(
                await (
                    await emulator.s3.send(new GetObjectCommand({ Bucket: resources.rendersBucket, Key: outputKey }))
                ).Body!.transformToByteArray(),
            ),
        );
        const comparison = comparePngs(stitched, await renderDirect(scene.blendPath, frame, dir));
        assert.ok(comparison.sameShape && comparison.differingSamples === 0, JSON.stringify(comparison));

        // A duplicate of tile 1 that started before the stitch and uploads its image after it: it finds the frame
        // done and takes its image away, so nothing of the tiles' images is left.
        const lateImage = tileImageKey("election", frame, 1, "PNG");
        await emulator.s3.send(
            new PutObjectCommand({ Bucket: resources.rendersBucket, Key: lateImage, Body: fs.readFileSync(stitched) }),
        );
        const late = await stitchWhenComplete(
            { s3: emulator.s3, ledger: jobLedger(emulator.s3, resources.rendersBucket), memoryMb: 10240, workDir: dir },
            message(1),
            Date.now() + 600_000,
            async () => assert.fail("a done frame is not uploaded again"),
        );
        assert.strictEqual(late.outcome, "done");
        const tilesLeft = await emulator.s3.send(
            new ListObjectsV2Command({ Bucket: resources.rendersBucket, Prefix: frameTilesPrefix("election", frame) }),
        );
        assert.deepStrictEqual(
            (tilesLeft.Contents ?? []).map((object) => object.Key).filter((key) => !key!.endsWith(".json")),
            [],
        );
    });
});
