// The job API's scene preflight against the S3/SQS emulator, with real .blend files and real renders: a scene
// that references a file nobody uploaded is refused before a frame is queued, the frames it names are what
// renders, and what the scene needs travels with the job.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import {
    DeleteMessageCommand,
    GetQueueAttributesCommand,
    PurgeQueueCommand,
    ReceiveMessageCommand,
} from "@aws-sdk/client-sqs";
import { Engine, FrameMessage, JobManifest, manifestKey } from "../functions/shared/contract";
import { JobApiDeps } from "../functions/jobApi/settings";
import { submitJob } from "../functions/jobApi/submit";
import { createRendererHandler } from "../functions/renderer/consumer";
import { DEFAULT_RENDER_LIMITS, RendererSettings } from "../functions/renderer/settings";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { pollOnce } from "../local/eventSourcePoller";
import { blendFixtures } from "./support/blendFixtures";
import { shippedJobApi } from "./support/jobApiArchive";
import { BLENDER, comparePngs, decodePng, makeScene, renderDirect, runBlenderScript } from "./support/scenes";

const RETIME_SCRIPT = path.join(__dirname, "fixtures", "retime_scene.py");

/** Pixels of a pure magenta: what Blender renders where a texture file is missing. */
function magentaPixels(file: string): number {
    const png = decodePng(file);
    assert.ok(png.bitDepth === 8 && png.channels >= 3, "an 8-bit RGB(A) render");
    let count = 0;
    for (let at = 0; at < png.data.length; at += png.channels)
        if (png.data[at] > 200 && png.data[at + 1] < 40 && png.data[at + 2] > 200) count++;
    return count;
}

describe("scene preflight: the job API reads every scene before queueing", function () {
    let emulator: Emulator;
    let farm: FarmResources;
    let queueArn: string;
    let deps: JobApiDeps;
    let renderer: ReturnType<typeof createRendererHandler>;
    let fixtures: string;

    before(async function () {
        fixtures = await blendFixtures();
        emulator = await startEmulator();
        farm = await createFarmResources(emulator, {
            name: "preflight",
            maxReceiveCount: 2,
            visibilityTimeoutSeconds: 120,
            receiveWaitTimeSeconds: 0,
        });
        queueArn = (
            await emulator.sqs.send(
                new GetQueueAttributesCommand({ QueueUrl: farm.frameQueueUrl, AttributeNames: ["QueueArn"] }),
            )
        ).Attributes!.QueueArn!;
        deps = {
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: {
                scenesBucket: farm.scenesBucket,
                rendersBucket: farm.rendersBucket,
                frameQueueUrl: farm.frameQueueUrl,
                limits: { maxFrames: 1000, maxResolution: 4096, allowedEngines: ["CYCLES", "EEVEE", "WORKBENCH"] },
                maxReceiveCount: 2,
            },
        };
        const rendererSettings: RendererSettings = {
            scenesBucket: farm.scenesBucket,
            rendersBucket: farm.rendersBucket,
            frameQueueUrl: farm.frameQueueUrl,
            maxReceiveCount: 2,
            failureBackoffSeconds: 1,
            memoryMb: 10240,
            blenderPath: BLENDER,
            workDir: fs.mkdtempSync(path.join(os.tmpdir(), "preflight-renderer-")),
            threads: os.cpus().length,
            defaultTimeoutMs: 300_000,
            limits: DEFAULT_RENDER_LIMITS,
        };
        renderer = createRendererHandler({ s3: emulator.s3, sqs: emulator.sqs, settings: rendererSettings });
    });

    after(async function () {
        await renderer?.close();
        await emulator?.stop();
    });

    beforeEach(async function () {
        await emulator.sqs.send(new PurgeQueueCommand({ QueueUrl: farm.frameQueueUrl }));
    });

    async function upload(key: string, file: string): Promise<void> {
        await emulator.s3.send(
            new PutObjectCommand({ Bucket: farm.scenesBucket, Key: key, Body: fs.readFileSync(file) }),
        );
    }

    async function submit(body: unknown): Promise<{ status: number; body: any }> {
        const reply = await submitJob(deps, body);
        return { status: reply.status, body: reply.body };
    }

    async function queuedMessages(): Promise<FrameMessage[]> {
        const messages: FrameMessage[] = [];
        for (;;) {
            const reply = await emulator.sqs.send(
                new ReceiveMessageCommand({
                    QueueUrl: farm.frameQueueUrl,
                    MaxNumberOfMessages: 10,
                    VisibilityTimeout: 300,
                }),
            );
            if (!reply.Messages?.length) return messages.sort((a, b) => a.frame - b.frame);
            for (const message of reply.Messages) {
                messages.push(JSON.parse(message.Body!));
                await emulator.sqs.send(
                    new DeleteMessageCommand({ QueueUrl: farm.frameQueueUrl, ReceiptHandle: message.ReceiptHandle! }),
                );
            }
        }
    }

    /** Renders everything queued, as the event source mapping would. */
    async function renderQueue(): Promise<{ succeeded: number; failed: number }> {
        const counts = { succeeded: 0, failed: 0 };
        for (;;) {
            const outcome = await pollOnce({
                sqs: emulator.sqs,
                queueUrl: farm.frameQueueUrl,
                queueArn,
                region: emulator.region,
                handler: renderer,
            });
            if (outcome === "empty") return counts;
            counts[outcome]++;
        }
    }

    async function renderKeys(jobId: string): Promise<string[]> {
        const listed = await emulator.s3.send(
            new ListObjectsV2Command({ Bucket: farm.rendersBucket, Prefix: `renders/${jobId}/` }),
        );
        return (listed.Contents ?? []).map((object) => object.Key!).sort();
    }

    async function download(bucket: string, key: string, file: string): Promise<string> {
        const object = await emulator.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        fs.writeFileSync(file, Buffer.from(await object.Body!.transformToByteArray()));
        return file;
    }

    it("refuses a scene whose texture was never uploaded (422 naming its key); once uploaded, the frame shows the texture", async function () {
        const scene = await makeScene({ texture: "textures/checker.png", frames: "1-2" });
        await upload("shots/tex/scene.blend", scene.blendPath);
        const refused = await submit({ scene: "shots/tex/scene.blend", frames: "1", jobId: "textured" });
        assert.strictEqual(refused.status, 422, JSON.stringify(refused.body));
        assert.strictEqual(refused.body.error.code, "missing_objects");
        assert.deepStrictEqual(refused.body.error.missing, ["shots/tex/textures/checker.png"]);
        assert.match(refused.body.error.message, /shots\/tex\/textures\/checker\.png \(needed by image "checker"\)/);
        assert.deepStrictEqual(await queuedMessages(), [], "nothing queued for a refused job");

        await upload("shots/tex/textures/checker.png", scene.texturePath!);
        const accepted = await submit({ scene: "shots/tex/scene.blend", frames: "1", jobId: "textured" });
        assert.strictEqual(accepted.status, 202, JSON.stringify(accepted.body));
        assert.deepStrictEqual(
            accepted.body.assetsAdded,
            ["shots/tex/textures/checker.png"],
            "the texture travels with the job though the request did not list it",
        );
        assert.deepStrictEqual(await renderQueue(), { succeeded: 1, failed: 0 });

        const outDir = fs.mkdtempSync(path.join(os.tmpdir(), "preflight-texture-"));
        const farmFrame = await download(
            farm.rendersBucket,
            "renders/textured/frame_0001.png",
            path.join(outDir, "farm.png"),
        );
        const direct = await renderDirect(scene.blendPath, 1, outDir);
        assert.strictEqual(magentaPixels(farmFrame), 0, "no missing-texture magenta in the farm's frame");
        const comparison = comparePngs(farmFrame, direct);
        assert.ok(comparison.sameShape);
        assert.strictEqual(
            comparison.differingSamples,
            0,
            `the farm's frame differs from Blender's own render with the texture in ${comparison.differingSamples} samples`,
        );
    });

    it("renders exactly the scene's own range and step when the request names no frames", async function () {
        const base = await makeScene({ frames: "1-8" });
        const retimed = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "preflight-retimed-")), "scene.blend");
        await runBlenderScript(RETIME_SCRIPT, ["--out", retimed, "--start", "2", "--end", "8", "--step", "3"], {
            blend: base.blendPath,
        });
        await upload("shots/stepped/scene.blend", retimed);
        const accepted = await submit({ scene: "shots/stepped/scene.blend", jobId: "stepped" });
        assert.strictEqual(accepted.status, 202, JSON.stringify(accepted.body));
        assert.strictEqual(accepted.body.frames, 3);
        assert.deepStrictEqual(await renderQueue(), { succeeded: 3, failed: 0 });
        assert.deepStrictEqual(await renderKeys("stepped"), [
            "renders/stepped/frame_0002.png",
            "renders/stepped/frame_0005.png",
            "renders/stepped/frame_0008.png",
        ]);
        const manifest = JSON.parse(
            await (
                await emulator.s3.send(
                    new GetObjectCommand({ Bucket: farm.rendersBucket, Key: manifestKey("stepped") }),
                )
            ).Body!.transformToString(),
        ) as JobManifest;
        assert.deepStrictEqual(manifest.frames, [2, 5, 8]);
    });

    it("holds the scene's own engine and resolution to the farm's limits when the request does not override them", async function () {
        const cycles = await makeScene({ frames: "1-2", engine: "CYCLES", resolutionX: 64, resolutionY: 48 });
        await upload("shots/limits/scene.blend", cycles.blendPath);
        const strict = {
            ...deps,
            settings: {
                ...deps.settings,
                limits: { maxFrames: 1000, maxResolution: 40, allowedEngines: ["EEVEE", "WORKBENCH"] as Engine[] },
            },
        };
        const engine = await submitJob(strict, {
            scene: "shots/limits/scene.blend",
            frames: "1",
            resolution: { percentage: 50 },
        });
        assert.strictEqual(engine.status, 400, JSON.stringify(engine.body));
        assert.deepStrictEqual(
            [(engine.body as any).error.code, (engine.body as any).error.field],
            ["engine_not_allowed", "engine"],
        );
        const resolution = await submitJob(strict, {
            scene: "shots/limits/scene.blend",
            frames: "1",
            engine: "WORKBENCH",
        });
        assert.strictEqual(resolution.status, 400, JSON.stringify(resolution.body));
        assert.deepStrictEqual(
            [(resolution.body as any).error.code, (resolution.body as any).error.field],
            ["resolution_too_large", "resolution"],
        );
        assert.match((resolution.body as any).error.message, /64x48/);
        // Overriding both brings the job within the limits.
        const accepted = await submitJob(strict, {
            scene: "shots/limits/scene.blend",
            frames: "1",
            engine: "WORKBENCH",
            resolution: { percentage: 50 },
            jobId: "within-limits",
        });
        assert.strictEqual(accepted.status, 202, JSON.stringify(accepted.body));
        await emulator.sqs.send(new PurgeQueueCommand({ QueueUrl: farm.frameQueueUrl }));
    });

    it("reads zstd and gzip scenes from S3 and takes their ranges; refuses no camera and not-a-.blend with a 400 on the scene", async function () {
        for (const name of ["zstd.blend", "gzip.blend", "no-camera.blend"])
            await upload(`fx/${name}`, path.join(fixtures, name));
        const zstd = await submit({ scene: "fx/zstd.blend", jobId: "zstd-scene" });
        assert.strictEqual(zstd.status, 202, JSON.stringify(zstd.body));
        assert.deepStrictEqual(
            (await queuedMessages()).map((message) => message.frame),
            [5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38],
        );
        const gzip = await submit({ scene: "fx/gzip.blend", jobId: "gzip-scene" });
        assert.strictEqual(gzip.status, 202, JSON.stringify(gzip.body));
        assert.deepStrictEqual(
            (await queuedMessages()).map((message) => message.frame),
            [10, 12, 14, 16, 18, 20],
        );

        const noCamera = await submit({ scene: "fx/no-camera.blend", frames: "1" });
        assert.strictEqual(noCamera.status, 400);
        assert.deepStrictEqual([noCamera.body.error.code, noCamera.body.error.field], ["no_camera", "scene"]);
        assert.match(noCamera.body.error.message, /has no active camera/);

        for (const [key, body] of [
            ["fx/text.blend", Buffer.from("just some text with a .blend name")],
            ["fx/empty.blend", Buffer.alloc(0)],
            ["fx/truncated.blend", fs.readFileSync(path.join(fixtures, "zstd.blend")).subarray(0, 5000)],
        ] as const) {
            await emulator.s3.send(new PutObjectCommand({ Bucket: farm.scenesBucket, Key: key, Body: body }));
            const refused = await submit({ scene: key, frames: "1" });
            assert.strictEqual(refused.status, 400, `${key}: ${JSON.stringify(refused.body)}`);
            assert.deepStrictEqual([refused.body.error.code, refused.body.error.field], ["not_a_blend", "scene"], key);
            assert.ok(refused.body.error.message.includes(key), `the message names ${key}`);
        }
        assert.deepStrictEqual(await queuedMessages(), []);
    });

    it("needs every UDIM tile, a sequence's frames, linked libraries, clips, volumes, caches and fonts; packed files need nothing", async function () {
        for (const name of ["packed.blend", "udim.blend", "sequence.blend", "library.blend", "other-files.blend"])
            await upload(`fx/${name}`, path.join(fixtures, name));
        const packed = await submit({ scene: "fx/packed.blend" });
        assert.strictEqual(packed.status, 202, JSON.stringify(packed.body));
        assert.strictEqual(packed.body.assetsAdded, undefined);
        assert.strictEqual(packed.body.warnings, undefined);
        await queuedMessages();

        await upload("fx/textures/udim/wall.1001.png", path.join(fixtures, "textures/udim/wall.1001.png"));
        await upload("fx/textures/udim/wall.1002.png", path.join(fixtures, "textures/udim/wall.1002.png"));
        const oneTileShort = await submit({ scene: "fx/udim.blend" });
        assert.strictEqual(oneTileShort.status, 422);
        assert.deepStrictEqual(oneTileShort.body.error.missing, ["fx/textures/udim/wall.1011.png"]);
        assert.match(oneTileShort.body.error.message, /tile 1011/);
        await upload("fx/textures/udim/wall.1011.png", path.join(fixtures, "textures/udim/wall.1011.png"));
        const tiles = await submit({ scene: "fx/udim.blend", jobId: "udim" });
        assert.strictEqual(tiles.status, 202, JSON.stringify(tiles.body));
        assert.deepStrictEqual(tiles.body.assetsAdded, [
            "fx/textures/udim/wall.1001.png",
            "fx/textures/udim/wall.1002.png",
            "fx/textures/udim/wall.1011.png",
        ]);
        assert.deepStrictEqual(
            (await queuedMessages())[0].assets,
            tiles.body.assetsAdded,
            "the frame messages carry the tiles",
        );

        const noFrames = await submit({ scene: "fx/sequence.blend" });
        assert.strictEqual(noFrames.status, 422);
        assert.deepStrictEqual(noFrames.body.error.missing, ["fx/textures/seq/frame_0001.png"]);
        for (const frame of ["0001", "0002", "0003"])
            await upload(`fx/textures/seq/frame_${frame}.png`, path.join(fixtures, `textures/seq/frame_${frame}.png`));
        const sequence = await submit({ scene: "fx/sequence.blend" });
        assert.strictEqual(sequence.status, 202, JSON.stringify(sequence.body));
        assert.deepStrictEqual(sequence.body.assetsAdded, [
            "fx/textures/seq/frame_0001.png",
            "fx/textures/seq/frame_0002.png",
            "fx/textures/seq/frame_0003.png",
        ]);

        const noLibrary = await submit({ scene: "fx/library.blend" });
        assert.strictEqual(noLibrary.status, 422);
        assert.deepStrictEqual(noLibrary.body.error.missing, ["fx/lib/library.blend"]);
        await upload("fx/lib/library.blend", path.join(fixtures, "lib/library.blend"));
        const listed = await submit({ scene: "fx/library.blend", assets: ["fx/lib/library.blend"] });
        assert.strictEqual(listed.status, 202, JSON.stringify(listed.body));
        assert.strictEqual(listed.body.assetsAdded, undefined, "a file the request lists is not added twice");
        await queuedMessages();

        // The movie clip is frame_0001.png (uploaded above); the volume sequence, Alembic cache and font are not.
        const others = await submit({ scene: "fx/other-files.blend" });
        assert.strictEqual(others.status, 422);
        assert.deepStrictEqual([...others.body.error.missing].sort(), [
            "fx/cache/anim.abc",
            "fx/cache/smoke_0001.vdb",
            "fx/fonts/DejaVuSans.ttf",
        ]);
    });

    it("warns about absolute paths and paths that leave the bucket, and refuses what is missing inside it", async function () {
        await upload("fx/external.blend", path.join(fixtures, "external.blend"));
        await upload("fx/textures/wood.png", path.join(fixtures, "textures/wood.png"));
        const missing = await submit({ scene: "fx/external.blend" });
        assert.strictEqual(missing.status, 422);
        // "//../shared-textures/metal.png" from fx/ is still inside the bucket.
        assert.deepStrictEqual([...missing.body.error.missing].sort(), [
            "fx/textures/gone.png",
            "shared-textures/metal.png",
        ]);
        await upload("fx/textures/gone.png", path.join(fixtures, "textures/wood.png"));
        await upload("shared-textures/metal.png", path.join(fixtures, "textures/wood.png"));
        const accepted = await submit({ scene: "fx/external.blend", jobId: "external" });
        assert.strictEqual(accepted.status, 202, JSON.stringify(accepted.body));
        assert.deepStrictEqual(accepted.body.assetsAdded, [
            "fx/textures/gone.png",
            "fx/textures/wood.png",
            "shared-textures/metal.png",
        ]);
        assert.strictEqual(accepted.body.warnings.length, 1);
        assert.match(
            accepted.body.warnings[0],
            /image "absolute": "\/mnt\/library\/textures\/concrete\.png" is an absolute path/,
        );

        // At the bucket's root, "//../" climbs out of it: a warning, not a missing object.
        await upload("external.blend", path.join(fixtures, "external.blend"));
        await upload("textures/wood.png", path.join(fixtures, "textures/wood.png"));
        await upload("textures/gone.png", path.join(fixtures, "textures/wood.png"));
        const atRoot = await submit({ scene: "external.blend" });
        assert.strictEqual(atRoot.status, 202, JSON.stringify(atRoot.body));
        assert.strictEqual(atRoot.body.warnings.length, 2);
        assert.ok(
            atRoot.body.warnings.some((warning: string) =>
                /image "metal": .*climbs above the bucket's root/.test(warning),
            ),
            JSON.stringify(atRoot.body.warnings),
        );
        await queuedMessages();
    });

    it("runs inside the serialized job API archive: the reader survives Pulumi's closure serializer", async function () {
        // The first run on a machine installs image/package.json (a native addon build) unless npm test did.
        this.timeout(15 * 60_000);
        const shipped = await shippedJobApi(emulator, farm);
        try {
            const invoke = (body: unknown) => shipped.submit(body);
            await upload("fx/zstd.blend", path.join(fixtures, "zstd.blend"));
            const accepted = await invoke({ scene: "fx/zstd.blend", jobId: "serialized-zstd" });
            assert.strictEqual(accepted.statusCode, 202, JSON.stringify(accepted.body));
            assert.strictEqual(accepted.body.frames, 12);
            await emulator.s3.send(
                new PutObjectCommand({
                    Bucket: farm.scenesBucket,
                    Key: "fx/not.blend",
                    Body: "BLENDER-v304 and nothing else",
                }),
            );
            const refused = await invoke({ scene: "fx/not.blend", frames: "1" });
            assert.strictEqual(refused.statusCode, 400);
            assert.strictEqual(refused.body.error.code, "not_a_blend");
            assert.match(
                refused.body.error.message,
                /is not a readable \.blend file: fx\/not\.blend: \S.{10,}/,
                "the typed error's message survives serialization",
            );
            await queuedMessages();
        } finally {
            await shipped.stop();
        }
    });
});
