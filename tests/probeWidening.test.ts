// Two resubmits of a probe job racing (an estimate's resume asking for more probe frames, and a render of the whole job
// with the same --job-id): both read the probe manifest before either writes it. The interleaving is made exact with
// an S3 client that holds one request right after its read of the manifest until the other request has answered. The
// manifest that stands covers every frame either request queued, so status and the budget see the whole job.
import * as assert from "assert";
import * as fs from "fs";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { JobStatus, manifestKey } from "../functions/shared/contract";
import { createJobApiHandler, HttpApiEvent } from "../functions/jobApi/handler";
import { JobApiSettings } from "../functions/jobApi/settings";
import { probeFramesOf } from "../functions/jobApi/probes";
import { jobLedger } from "../functions/shared/ledger";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { makeScene } from "./support/scenes";

const SCENE = "shots/probe/scene.blend";
const JOB_FRAMES = Array.from({ length: 12 }, (_, i) => i + 1);

describe("two resubmits widening a probe job at once: the manifest ends as wide as both", function () {
    let emulator: Emulator;
    let farm: FarmResources;
    const ledger = () => jobLedger(emulator.s3, farm.rendersBucket);
    let settings: JobApiSettings;
    const clients: S3Client[] = [];

    before(async function () {
        emulator = await startEmulator({ port: 0 });
        farm = await createFarmResources(emulator, {
            name: "probes",
            maxReceiveCount: 3,
            visibilityTimeoutSeconds: 60,
        });
        const scene = await makeScene({ frames: "1-12", resolutionX: 32, resolutionY: 18, engine: "WORKBENCH" });
        await emulator.s3.send(
            new PutObjectCommand({ Bucket: farm.scenesBucket, Key: SCENE, Body: fs.readFileSync(scene.blendPath) }),
        );
        settings = {
            scenesBucket: farm.scenesBucket,
            rendersBucket: farm.rendersBucket,
            frameQueueUrl: farm.frameQueueUrl,
            deadLetterQueueUrl: farm.deadLetterQueueUrl,
            limits: { maxFrames: 1000, maxResolution: 4096, allowedEngines: ["WORKBENCH", "EEVEE", "CYCLES"] },
            maxReceiveCount: 3,
        };
    });

    after(async function () {
        for (const client of clients) client.destroy();
        await emulator?.stop();
    });

    /**
     * A job API (the real handler) on its own S3 client. With `heldAfterManifestRead`, its first read of the job's
     * manifest returns to it only once that promise resolves; `arrived` is called when it has read it.
     */
    function jobApi(hold?: { jobId: string; arrived: () => void; until: Promise<void> }) {
        const s3 = new S3Client({
            endpoint: emulator.endpoint,
            region: emulator.region,
            credentials: emulator.credentials,
            forcePathStyle: true,
        });
        clients.push(s3);
        let held = false;
        s3.middlewareStack.add(
            (next, context) => async (args) => {
                const result = await next(args);
                const key = (args.input as { Key?: string }).Key;
                if (hold && !held && context.commandName === "GetObjectCommand" && key === manifestKey(hold.jobId)) {
                    held = true;
                    hold.arrived();
                    await hold.until;
                }
                return result;
            },
            { step: "initialize" },
        );
        const handler = createJobApiHandler({ s3, sqs: emulator.sqs, settings });
        return async (method: string, rawPath: string, body?: unknown) => {
            const reply = await handler({
                rawPath,
                requestContext: { http: { method, path: rawPath } },
                body: body === undefined ? undefined : JSON.stringify(body),
            } as HttpApiEvent);
            return { status: reply.statusCode, body: JSON.parse(reply.body) };
        };
    }

    /** Every frame the queue holds for `jobId` (the queue is emptied of the job's messages). */
    async function queuedFrames(jobId: string): Promise<Set<number>> {
        const frames = new Set<number>();
        for (;;) {
            const reply = await emulator.sqs.send(
                new ReceiveMessageCommand({
                    QueueUrl: farm.frameQueueUrl,
                    MaxNumberOfMessages: 10,
                    VisibilityTimeout: 600,
                }),
            );
            const messages = reply.Messages ?? [];
            if (messages.length === 0) return frames;
            for (const message of messages) {
                const body = JSON.parse(message.Body!);
                if (body.jobId === jobId) frames.add(body.frame);
            }
            await emulator.sqs.send(
                new DeleteMessageBatchCommand({
                    QueueUrl: farm.frameQueueUrl,
                    Entries: messages.map((message, i) => ({ Id: String(i), ReceiptHandle: message.ReceiptHandle! })),
                }),
            );
        }
    }

    /**
     * Submits a probe job of 3 frames, then the two resubmits: `held` reads the probe manifest and waits until `other`
     * has answered, then goes on. Answers the final status.
     */
    async function race(jobId: string, held: { probe?: number }, other: { probe?: number }): Promise<JobStatus> {
        const request = { scene: SCENE, frames: "1-12", jobId };
        const plain = jobApi();
        const created = await plain("POST", "/jobs", { ...request, probe: 3 });
        assert.strictEqual(created.status, 202, JSON.stringify(created.body));
        assert.deepStrictEqual((await ledger().readManifest(jobId))?.frames, [1, 6, 12]);

        let arrived = () => {};
        const reached = new Promise<void>((resolve) => {
            arrived = resolve;
        });
        let release = () => {};
        const until = new Promise<void>((resolve) => {
            release = resolve;
        });
        const slow = jobApi({ jobId, arrived, until })("POST", "/jobs", { ...request, ...held });
        await reached;
        const fast = await plain("POST", "/jobs", { ...request, ...other });
        assert.strictEqual(fast.status, 202, JSON.stringify(fast.body));
        release();
        const late = await slow;
        assert.strictEqual(late.status, 202, JSON.stringify(late.body));

        const manifest = (await ledger().readManifest(jobId))!;
        const queued = await queuedFrames(jobId);
        for (const frame of queued)
            assert.ok(
                manifest.frames.includes(frame),
                `frame ${frame} was queued but the manifest has ${manifest.frames}`,
            );
        const status = await plain("GET", `/jobs/${jobId}`);
        assert.strictEqual(status.status, 200, JSON.stringify(status.body));
        return status.body as JobStatus;
    }

    it("an estimate asking for more probe frames, and a render of the whole job answered first: the whole job stands", async function () {
        const status = await race("widen-whole", { probe: 6 }, {});
        const manifest = (await ledger().readManifest("widen-whole"))!;
        assert.deepStrictEqual(manifest.frames, JOB_FRAMES);
        assert.strictEqual(manifest.probe, undefined, "no longer a probe job");
        assert.strictEqual(status.frames.total, JOB_FRAMES.length, JSON.stringify(status));
        assert.strictEqual(status.probe, undefined, JSON.stringify(status));
    });

    it("two estimates asking for more probe frames, the wider answered first: the wider stands", async function () {
        const status = await race("widen-probes", { probe: 6 }, { probe: 9 });
        const manifest = (await ledger().readManifest("widen-probes"))!;
        assert.deepStrictEqual(manifest.frames, probeFramesOf(JOB_FRAMES, 9));
        assert.deepStrictEqual(manifest.probe, { count: 9, jobFrames: JOB_FRAMES });
        assert.strictEqual(status.frames.total, 9, JSON.stringify(status));
    });

    it("the narrower answered first: the wider request's write is applied over it", async function () {
        const status = await race("widen-after", { probe: 9 }, { probe: 6 });
        const manifest = (await ledger().readManifest("widen-after"))!;
        assert.deepStrictEqual(manifest.frames, probeFramesOf(JOB_FRAMES, 9));
        assert.strictEqual(status.frames.total, 9, JSON.stringify(status));
    });
});
