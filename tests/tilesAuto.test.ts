// "tiles": "auto" and the tiles' messages, through the job API's own functions against the S3/SQS emulator: a probe
// job's slowest frame sizes the rest of the job's tiles so one fits well within the renderer's timeout. The probe
// frames' records are written as the renderer writes them (ledger.writeFrameRecord), with the render seconds of a
// frame far too slow to render here (ten minutes).
import * as assert from "assert";
import * as fs from "fs";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import type { FrameMessage, JobManifest } from "../functions/shared/contract";
import { jobLedger } from "../functions/shared/ledger";
import { submitJob } from "../functions/jobApi/submit";
import { JobApiDeps } from "../functions/jobApi/settings";
import { autoTileCount } from "../functions/jobApi/tiles";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { makeScene } from "./support/scenes";

const SCENE = "shots/auto/scene.blend";
const FRAME_TIMEOUT_SECONDS = 900;

describe("tiles: auto, from the job's probe frames", function () {
    let emulator: Emulator;
    let farm: FarmResources;
    const ledger = () => jobLedger(emulator.s3, farm.rendersBucket);
    let deps: JobApiDeps;

    before(async function () {
        emulator = await startEmulator({ port: 0 });
        farm = await createFarmResources(emulator, {
            name: "tiles-auto",
            maxReceiveCount: 3,
            visibilityTimeoutSeconds: 30,
        });
        const scene = await makeScene({ frames: "1-10", resolutionX: 64, resolutionY: 48 });
        await emulator.s3.send(
            new PutObjectCommand({ Bucket: farm.scenesBucket, Key: SCENE, Body: fs.readFileSync(scene.blendPath) }),
        );
        deps = {
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: {
                scenesBucket: farm.scenesBucket,
                rendersBucket: farm.rendersBucket,
                frameQueueUrl: farm.frameQueueUrl,
                limits: { maxFrames: 100, maxResolution: 4096, allowedEngines: ["CYCLES", "EEVEE", "WORKBENCH"] },
                maxReceiveCount: 3,
                frameTimeoutSeconds: FRAME_TIMEOUT_SECONDS,
            },
        };
    });

    after(async function () {
        await emulator?.stop();
    });

    async function drain(): Promise<FrameMessage[]> {
        const messages: FrameMessage[] = [];
        for (;;) {
            const received = await emulator.sqs.send(
                new ReceiveMessageCommand({
                    QueueUrl: farm.frameQueueUrl,
                    MaxNumberOfMessages: 10,
                    VisibilityTimeout: 600,
                }),
            );
            if (!received.Messages?.length) return messages;
            messages.push(...received.Messages.map((message) => JSON.parse(message.Body!) as FrameMessage));
        }
    }

    async function probeDone(manifest: JobManifest, renderSeconds: number[]): Promise<void> {
        for (const [index, frame] of manifest.frames.entries()) {
            const at = new Date(Date.now() - 1000 * (index + 1));
            await ledger().writeFrameRecord({
                jobId: manifest.jobId,
                frame,
                status: "done",
                attempts: 1,
                startedAt: new Date(at.getTime() - renderSeconds[index] * 1000).toISOString(),
                finishedAt: at.toISOString(),
                wallMs: renderSeconds[index] * 1000,
                blenderMs: renderSeconds[index] * 1000,
                renderSeconds: renderSeconds[index],
                memoryMb: 10240,
                costUsd: 0.1,
                output: {
                    bucket: farm.rendersBucket,
                    key: `renders/${manifest.jobId}/frame_${String(frame).padStart(4, "0")}.png`,
                },
                logTail: "",
            });
        }
    }

    it("sizes the rest of a probed job from its slowest probe frame; a new job's auto is refused", async function () {
        assert.deepStrictEqual(
            [30, 299, 300, 301, 1200, 1e6].map((seconds) => autoTileCount(seconds, FRAME_TIMEOUT_SECONDS)),
            [1, 1, 1, 2, 4, 64],
        );
        const fresh = await submitJob(deps, { scene: SCENE, frames: "1-10", tiles: "auto", jobId: "fresh" });
        assert.strictEqual(fresh.status, 422, JSON.stringify(fresh.body));
        assert.strictEqual((fresh.body as any).error.code, "tiles_auto_needs_estimate");

        const probe = await submitJob(deps, { scene: SCENE, frames: "1-10", probe: 3, jobId: "heavy" });
        assert.strictEqual(probe.status, 202, JSON.stringify(probe.body));
        assert.deepStrictEqual(
            (await drain()).map((message) => [message.frame, message.tile]).sort(),
            [
                [1, undefined],
                [10, undefined],
                [5, undefined],
            ].sort(),
        );
        const manifest = (await ledger().readManifest("heavy"))!;
        // Nearly 12 minutes at worst: at most a third of the 15-minute timeout a tile, so 3 tiles.
        await probeDone(manifest, [200, 700, 450]);

        const rest = await submitJob(deps, { scene: SCENE, frames: "1-10", tiles: "auto", jobId: "heavy" });
        assert.strictEqual(rest.status, 202, JSON.stringify(rest.body));
        const messages = await drain();
        const byFrame = new Map<number, number[]>();
        for (const message of messages)
            byFrame.set(message.frame, [...(byFrame.get(message.frame) ?? []), message.tile!]);
        assert.deepStrictEqual(
            [...byFrame.keys()].sort((a, b) => a - b),
            [2, 3, 4, 6, 7, 8, 9],
        );
        for (const [frame, tiles] of byFrame) {
            assert.deepStrictEqual(tiles.sort(), [0, 1, 2], `frame ${frame}'s tiles`);
        }
        assert.ok(messages.every((message) => message.of === 3));
        const widened = (await ledger().readManifest("heavy"))!;
        assert.strictEqual(widened.tiles, 3);
        assert.strictEqual(widened.probe, undefined);
    });

    it("counts a job's frames times its tiles against the farm's frames per job", async function () {
        const reply = await submitJob(deps, { scene: SCENE, frames: "1-10", tiles: 11, jobId: "too-many" });
        assert.strictEqual(reply.status, 413, JSON.stringify(reply.body));
        assert.strictEqual((reply.body as any).error.field, "tiles");
        assert.match((reply.body as any).error.message, /10 frames of 11 tiles each are 110 frame messages/);
    });
});
