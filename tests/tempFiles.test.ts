// Blender's temp files on the renderer's disk: Cycles writes every finished tile of a tiled render to a file in
// Blender's temp dir (about 1 GB per pass at 8K) and removes them only when the frame finishes. A Blender killed
// mid-frame (a deadline, out of memory, a fault) must not leave them behind, or a warm container fills its
// ephemeral storage after a few kills and every later frame fails with ENOSPC.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { createRendererHandler } from "../functions/renderer/consumer";
import { DEFAULT_RENDER_LIMITS } from "../functions/renderer/settings";
import {
    FRAME_MESSAGE_VERSION,
    FrameMessage,
    FrameRecord,
    frameOutputKey,
    frameRecordKey,
} from "../functions/shared/contract";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { pollOnce } from "../local/eventSourcePoller";
import { processesWorkingIn } from "../local/processes";
import { waitFor } from "./support/farmClient";
import { BLENDER, makeScene } from "./support/scenes";

const SCENE_KEY = "temp-files/scene.blend";
const KILLS = 3;

/** Every file under `dir`, with its size. */
function filesUnder(dir: string): Map<string, number> {
    const files = new Map<string, number>();
    if (!fs.existsSync(dir)) return files;
    for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
        if (!entry.isFile()) continue;
        const file = path.join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name);
        files.set(path.relative(dir, file), fs.statSync(file).size);
    }
    return files;
}

function bytes(files: Map<string, number>): number {
    return [...files.values()].reduce((sum, size) => sum + size, 0);
}

describe("temp files: a Blender killed mid-frame leaves nothing on the renderer's disk", function () {
    this.timeout(600_000);
    let emulator: Emulator;
    let farm: FarmResources;
    let queueArn: string;
    let work: string;
    /** What the renderer's process believes is the system temp dir: Blender would write there by default. */
    let systemTemp: string;
    const saved = { TMP: process.env.TMP, TMPDIR: process.env.TMPDIR, TEMP: process.env.TEMP };

    before(async function () {
        work = fs.mkdtempSync(path.join(os.tmpdir(), "temp-files-"));
        systemTemp = path.join(work, "system-temp");
        fs.mkdirSync(systemTemp);
        emulator = await startEmulator();
        farm = await createFarmResources(emulator, {
            name: "temp-files",
            maxReceiveCount: KILLS + 1,
            visibilityTimeoutSeconds: 120,
            receiveWaitTimeSeconds: 0,
        });
        queueArn = (
            await emulator.sqs.send(
                new GetQueueAttributesCommand({ QueueUrl: farm.frameQueueUrl, AttributeNames: ["QueueArn"] }),
            )
        ).Attributes!.QueueArn!;
        // Tiles of 32x32 over 256x256 pixels: a tile file within the first second, the frame done in many more.
        const scene = await makeScene({ frames: "1", resolutionX: 256, resolutionY: 256, samples: 512, tileSize: 32 });
        await emulator.s3.send(
            new PutObjectCommand({ Bucket: farm.scenesBucket, Key: SCENE_KEY, Body: fs.readFileSync(scene.blendPath) }),
        );
    });

    after(async function () {
        for (const [name, value] of Object.entries(saved)) {
            if (value === undefined) delete process.env[name];
            else process.env[name] = value;
        }
        await emulator?.stop();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    it(`kills Blender ${KILLS} times while its tile files are on disk; after each kill the disk is back to its baseline`, async function () {
        // The renderer's environment points every temp dir variable Blender reads somewhere this test can watch.
        process.env.TMP = systemTemp;
        process.env.TMPDIR = systemTemp;
        process.env.TEMP = systemTemp;
        const workDir = path.join(work, "renderer");
        const renderer = createRendererHandler({
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: {
                scenesBucket: farm.scenesBucket,
                rendersBucket: farm.rendersBucket,
                frameQueueUrl: farm.frameQueueUrl,
                maxReceiveCount: KILLS + 1,
                failureBackoffSeconds: 0,
                memoryMb: 2048,
                blenderPath: BLENDER,
                workDir,
                threads: 2,
                defaultTimeoutMs: 300_000,
                limits: DEFAULT_RENDER_LIMITS,
            },
        });
        const head = await emulator.s3.send(new HeadObjectCommand({ Bucket: farm.scenesBucket, Key: SCENE_KEY }));
        const message: FrameMessage = {
            v: FRAME_MESSAGE_VERSION,
            jobId: "temp-files",
            frame: 1,
            scene: SCENE_KEY,
            sceneEtag: head.ETag ?? "",
            assets: [],
            settings: { format: "PNG" },
            output: { bucket: farm.rendersBucket, key: frameOutputKey("temp-files", 1, "PNG") },
        };
        await emulator.sqs.send(
            new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: JSON.stringify(message) }),
        );
        const sceneBytes = (
            await emulator.s3.send(new HeadObjectCommand({ Bucket: farm.scenesBucket, Key: SCENE_KEY }))
        ).ContentLength!;
        /** The renderer's disk when no frame runs: its cached scene and nothing else. */
        const baseline = { files: [`scenes/${SCENE_KEY}`], bytes: sceneBytes };
        const tileFiles = () =>
            [...filesUnder(workDir).keys(), ...filesUnder(systemTemp).keys()].filter((file) =>
                /cycles-tile-buffer/.test(file),
            );

        const report: string[] = [];
        for (let kill = 1; kill <= KILLS; kill++) {
            const polled = pollOnce({
                sqs: emulator.sqs,
                queueUrl: farm.frameQueueUrl,
                queueArn,
                region: emulator.region,
                handler: renderer,
            });
            const tiles = await waitFor("Cycles tile files on disk", 120_000, () =>
                tileFiles().length > 0 ? tileFiles() : undefined,
            );
            const blenders = processesWorkingIn(workDir);
            assert.strictEqual(blenders.length, 1, `one Blender renders in ${workDir}: ${blenders}`);
            const tileBytes = bytes(filesUnder(workDir)) + bytes(filesUnder(systemTemp)) - baseline.bytes;
            process.kill(blenders[0], "SIGKILL");
            assert.strictEqual(await polled, "failed");
            const record = JSON.parse(
                await (
                    await emulator.s3.send(
                        new GetObjectCommand({ Bucket: farm.rendersBucket, Key: frameRecordKey("temp-files", 1) }),
                    )
                ).Body!.transformToString(),
            ) as FrameRecord;
            assert.strictEqual(record.error?.code, "killed", JSON.stringify(record.error));

            const workFiles = filesUnder(workDir);
            const tempFiles = filesUnder(systemTemp);
            assert.deepStrictEqual(
                [...workFiles.keys()],
                baseline.files,
                `kill ${kill}: the work dir holds more than the cached scene`,
            );
            assert.deepStrictEqual(
                [...tempFiles.keys()],
                [],
                `kill ${kill}: Blender left files in the system temp dir`,
            );
            assert.strictEqual(bytes(workFiles) + bytes(tempFiles), baseline.bytes);
            report.push(`kill ${kill}: ${tiles.length} tile file(s), ${tileBytes} bytes on disk before, 0 after`);
            // The failure backoff (0 s) makes the message visible again for the next round.
            await waitFor("the frame back in the queue", 30_000, async () => {
                const attributes = await emulator.sqs.send(
                    new GetQueueAttributesCommand({
                        QueueUrl: farm.frameQueueUrl,
                        AttributeNames: ["ApproximateNumberOfMessages"],
                    }),
                );
                return Number(attributes.Attributes?.ApproximateNumberOfMessages ?? 0) > 0 ? true : undefined;
            });
        }
        await renderer.close();
        console.log(`      ${report.join("; ")}`);
    });
});
