// Big jobs and partial failures through the job API's handler on the emulator: a
// submit killed half-way, a status with a thousand failures, a retry of hundreds of frames, a scene changed under a
// job. Each case asserts an outcome a user sees (frames queued and rendered once, counts, replies), not a code path.
import * as assert from "assert";
import * as fs from "fs";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { FrameMessage, FrameRecord, JobStatus, parseFrameMessage } from "../functions/shared/contract";
import { frameMessageOf } from "../functions/shared/contract/frameMessage";
import { createJobApiHandler, HttpApiEvent } from "../functions/jobApi/handler";
import { JobApiDeps, JobApiSettings } from "../functions/jobApi/settings";
import { submitJob } from "../functions/jobApi/submit";
import { jobLedger } from "../functions/shared/ledger";
import { mapWithConcurrency } from "../functions/shared/concurrency";
import { createFarmResources, Emulator, emulatorClients, FarmResources, startEmulator } from "../local/emulator";
import { makeScene } from "./support/scenes";

const SCENE = "shots/big/scene.blend";
const LOG_TAIL = `${"Fra:1 Mem:12.00M | Rendering 1 / 64 samples\n".repeat(93)}Error: out of memory\n`.slice(-4096);

function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A client of the emulator that counts the commands it sends, by name and key. */
function countingClients(emulator: Emulator): {
    s3: S3Client;
    sqs: SQSClient;
    calls: { command: string; key?: string }[];
} {
    const calls: { command: string; key?: string }[] = [];
    const { s3, sqs } = emulatorClients(emulator.endpoint, emulator.region, emulator.credentials);
    for (const client of [s3, sqs] as S3Client[])
        client.middlewareStack.add(
            (next, context) => async (args) => {
                calls.push({ command: String(context.commandName), key: (args.input as { Key?: string }).Key });
                return next(args);
            },
            { step: "initialize", name: "countCalls" },
        );
    return { s3, sqs, calls };
}

describe("big jobs and partial failures", function () {
    this.timeout(600_000);
    let emulator: Emulator;
    let farm: FarmResources;
    const ledger = () => jobLedger(emulator.s3, farm.rendersBucket);
    let settings: JobApiSettings;
    let deps: JobApiDeps;
    let sceneBytes: Buffer;

    before(async function () {
        emulator = await startEmulator({ port: 0 });
        farm = await createFarmResources(emulator, { name: "big", maxReceiveCount: 3, visibilityTimeoutSeconds: 60 });
        sceneBytes = fs.readFileSync((await makeScene({ frames: "1-4" })).blendPath);
        await emulator.s3.send(new PutObjectCommand({ Bucket: farm.scenesBucket, Key: SCENE, Body: sceneBytes }));
        settings = {
            scenesBucket: farm.scenesBucket,
            rendersBucket: farm.rendersBucket,
            frameQueueUrl: farm.frameQueueUrl,
            deadLetterQueueUrl: farm.deadLetterQueueUrl,
            limits: { maxFrames: 100_000, maxResolution: 4096, allowedEngines: ["CYCLES", "EEVEE", "WORKBENCH"] },
            maxReceiveCount: 3,
        };
        deps = { s3: emulator.s3, sqs: emulator.sqs, settings };
    });

    after(async function () {
        await emulator?.stop();
    });

    async function api(
        method: string,
        rawPath: string,
        options: { body?: unknown; query?: string; deps?: JobApiDeps } = {},
    ): Promise<{ status: number; body: any; bytes: number }> {
        const handler = createJobApiHandler(options.deps ?? deps);
        const event: HttpApiEvent = {
            rawPath,
            rawQueryString: options.query ?? "",
            requestContext: { http: { method, path: rawPath } },
            body: options.body === undefined ? undefined : JSON.stringify(options.body),
        };
        const result = await handler(event);
        return { status: result.statusCode, body: JSON.parse(result.body), bytes: Buffer.byteLength(result.body) };
    }

    /** The job's frames in a queue, peeked (nothing received). */
    function framesIn(queueUrl: string, jobId: string): number[] {
        const contents = emulator.inspectQueue(queueUrl)!;
        return [...contents.waiting, ...contents.inFlight.map((message) => message.body)]
            .map((body) => parseFrameMessage(body, farm.rendersBucket))
            .filter((parsed): parsed is { ok: true; value: FrameMessage } => parsed.ok && parsed.value.jobId === jobId)
            .map((parsed) => parsed.value.frame)
            .sort((a, b) => a - b);
    }

    function failedRecord(jobId: string, frame: number, at: string): FrameRecord {
        return {
            jobId,
            frame,
            status: "failed",
            attempts: 3,
            startedAt: at,
            finishedAt: at,
            wallMs: 10_000,
            blenderMs: 9_000,
            memoryMb: 10240,
            costUsd: 0.001,
            error: { code: "blender_failed", message: `frame ${frame}: Blender exited with code 1` },
            logTail: LOG_TAIL,
        };
    }

    // ---- submit is resumable and nothing rolls back what another request acknowledged ----

    it("a submit killed after writing its manifest: the same request again queues every frame (it answered 202 and queued nothing)", async function () {
        const request = { scene: SCENE, frames: "1-30", jobId: "killed-after-manifest" };
        // SendMessageBatch never answers: the request is stuck there, as one whose Lambda was killed would stay.
        const { s3, sqs } = emulatorClients(emulator.endpoint, emulator.region, emulator.credentials);
        sqs.middlewareStack.add(
            (next, context) => (args) =>
                context.commandName === "SendMessageBatchCommand" ? new Promise(() => undefined) : next(args),
            { step: "initialize", name: "hang" },
        );
        void submitJob({ s3, sqs, settings }, request, Date.now() + 1000);
        for (let waited = 0; !(await ledger().readManifest(request.jobId)); waited += 50) {
            assert.ok(waited < 20_000, "the manifest was never written");
            await sleep(50);
        }
        // The killed request held the job's queueing until its deadline (plus a few seconds): then it is free.
        await sleep(7_000);
        const again = await api("POST", "/jobs", { body: request });
        assert.strictEqual(again.status, 202, JSON.stringify(again.body));
        assert.deepStrictEqual(
            framesIn(farm.frameQueueUrl, request.jobId),
            Array.from({ length: 30 }, (_, i) => i + 1),
            "every frame queued, once",
        );
        const status = await api("GET", `/jobs/${request.jobId}`);
        assert.strictEqual(status.body.state, "queued");
    });

    it("a submit whose queue refuses keeps the manifest another request already answered 202 for (no rollback)", async function () {
        const request = { scene: SCENE, frames: "1-8", jobId: "raced-rollback" };
        // The first request's sends wait until the second request has been answered, then SQS refuses them.
        let release: () => void = () => undefined;
        const released = new Promise<void>((resolve) => {
            release = resolve;
        });
        const { s3, sqs } = emulatorClients(emulator.endpoint, emulator.region, emulator.credentials);
        sqs.middlewareStack.add(
            (next, context) => async (args) => {
                if (context.commandName !== "SendMessageBatchCommand") return next(args);
                await released;
                throw Object.assign(new Error("Access to the queue is denied"), {
                    name: "AccessDenied",
                    $metadata: { httpStatusCode: 403 },
                });
            },
            { step: "initialize", name: "waitForTheOther" },
        );
        const first = submitJob({ s3, sqs, settings }, request);
        for (let waited = 0; !(await ledger().readManifest(request.jobId)); waited += 50) {
            assert.ok(waited < 20_000, "the manifest was never written");
            await sleep(50);
        }
        const second = await api("POST", "/jobs", { body: request });
        assert.strictEqual(second.status, 202, JSON.stringify(second.body));
        release();
        assert.strictEqual((await first).status, 503);
        const status = await api("GET", `/jobs/${request.jobId}`);
        assert.strictEqual(
            status.status,
            200,
            `the job the second request acknowledged is gone: ${JSON.stringify(status.body)}`,
        );
        assert.strictEqual(status.body.state, "queueing");
    });

    // ---- the status of a job with 1,300 failed frames ----

    it("GET /jobs/{id} with 1,300 failed frames (4 KB log tails each): under 1 MB, the first page and a token, records read for that page only", async function () {
        const jobId = "many-failures";
        const submitted = await api("POST", "/jobs", { body: { scene: SCENE, frames: "1-1500", jobId } });
        assert.strictEqual(submitted.status, 202, JSON.stringify(submitted.body));
        const at = new Date(Date.now() - 60_000).toISOString();
        await mapWithConcurrency(
            Array.from({ length: 1500 }, (_, i) => i + 1),
            32,
            (frame) =>
                ledger().writeFrameRecord(
                    frame <= 1300
                        ? failedRecord(jobId, frame, at)
                        : { ...failedRecord(jobId, frame, at), status: "done", error: undefined, logTail: "" },
                ),
        );
        const counted = countingClients(emulator);
        const first = await api("GET", `/jobs/${jobId}`, { deps: { ...deps, s3: counted.s3, sqs: counted.sqs } });
        assert.strictEqual(first.status, 200);
        console.log(
            `      status of 1,500 frames with 1,300 failures: ${first.bytes} bytes, ${counted.calls.length} S3 calls`,
        );
        assert.ok(first.bytes < 1024 * 1024, `${first.bytes} bytes`);
        const status = first.body as JobStatus;
        assert.deepStrictEqual(status.frames, { total: 1500, done: 200, failed: 1300, pending: 0 });
        assert.strictEqual(status.state, "partial");
        assert.strictEqual(status.failures.length, 50);
        assert.strictEqual(status.failures[0].logTail, LOG_TAIL);
        assert.match(status.failures[0].error, /^blender_failed: frame 1: Blender exited with code 1$/);
        const recordReads = counted.calls.filter(
            (call) => call.command === "GetObjectCommand" && /\/frames\/\d+\.json$/.test(call.key ?? ""),
        );
        assert.ok(recordReads.length <= 50, `${recordReads.length} frame records read for one page`);
        assert.ok(counted.calls.length <= 64 + 50 + 4, `${counted.calls.length} S3 calls`);
        assert.ok(status.failuresNext, "a token for the next page");

        // The pages, token after token, list every failure once, in order.
        const seen: number[] = status.failures.map((failure) => failure.frame);
        let next: string | undefined = status.failuresNext;
        while (next) {
            const page = await api("GET", `/jobs/${jobId}`, { query: `failures=${encodeURIComponent(next)}` });
            assert.strictEqual(page.status, 200);
            assert.ok(page.bytes < 1024 * 1024);
            seen.push(...(page.body as JobStatus).failures.map((failure) => failure.frame));
            next = (page.body as JobStatus).failuresNext;
        }
        assert.deepStrictEqual(
            seen,
            Array.from({ length: 1300 }, (_, i) => i + 1),
        );
        const bad = await api("GET", `/jobs/${jobId}`, { query: "failures=not-a-token!" });
        assert.strictEqual(bad.status, 400);
        assert.strictEqual(bad.body.error.field, "failures");
    });

    // ---- retry of hundreds of failed frames ----

    it("retry of 600 failed frames: a few dozen writes, no read per record, and their dead letters gone from the DLQ", async function () {
        const jobId = "retry-many";
        assert.strictEqual(
            (await api("POST", "/jobs", { body: { scene: SCENE, frames: "1-600", jobId } })).status,
            202,
        );
        const manifest = (await ledger().readManifest(jobId))!;
        const at = new Date(Date.now() - 60_000).toISOString();
        await mapWithConcurrency(manifest.frames, 32, async (frame) => {
            await ledger().writeFrameRecord(failedRecord(jobId, frame, at));
            await emulator.sqs.send(
                new SendMessageCommand({
                    QueueUrl: farm.deadLetterQueueUrl,
                    MessageBody: JSON.stringify(frameMessageOf(manifest, farm.rendersBucket, frame)),
                }),
            );
        });
        // Another job's dead letter stays.
        await emulator.sqs.send(
            new SendMessageCommand({
                QueueUrl: farm.deadLetterQueueUrl,
                MessageBody: JSON.stringify({
                    ...frameMessageOf(manifest, farm.rendersBucket, 1),
                    jobId: "another-job",
                    output: { bucket: farm.rendersBucket, key: "renders/another-job/frame_0001.png" },
                }),
            }),
        );
        const queuedBefore = framesIn(farm.frameQueueUrl, jobId).length;
        await sleep(5);
        const counted = countingClients(emulator);
        const reply = await api("POST", `/jobs/${jobId}/retry`, {
            deps: { ...deps, s3: counted.s3, sqs: counted.sqs },
        });
        assert.strictEqual(reply.status, 202, JSON.stringify(reply.body));
        assert.strictEqual(reply.body.requeued, 600);
        assert.strictEqual(framesIn(farm.frameQueueUrl, jobId).length - queuedBefore, 600);
        const puts = counted.calls.filter((call) => call.command === "PutObjectCommand");
        const recordReads = counted.calls.filter(
            (call) => call.command === "GetObjectCommand" && /\/frames\/\d+\.json$/.test(call.key ?? ""),
        );
        console.log(
            `      retry of 600 failed frames: ${counted.calls.filter((call) => /Object/.test(call.command)).length} S3 calls (${puts.length} PutObject)`,
        );
        // 600 frames live in 64 summary shards; the queue progress is written a few times per 240 frames.
        assert.ok(puts.length <= 64 + 10, `${puts.length} PutObject calls`);
        assert.deepStrictEqual(recordReads, [], "no frame record read");
        assert.deepStrictEqual(framesIn(farm.deadLetterQueueUrl, jobId), [], "the job's dead letters are removed");
        assert.strictEqual(reply.body.deadLetters.removed, 600);
        assert.deepStrictEqual(
            framesIn(farm.deadLetterQueueUrl, "another-job"),
            [1],
            "another job's dead letter stays",
        );
        const status = await api("GET", `/jobs/${jobId}`);
        assert.deepStrictEqual(status.body.frames, { total: 600, done: 0, failed: 0, pending: 600 });
    });

    // ---- a job renders the scene version it was submitted with ----

    it("a changed scene: resubmitting the jobId or retrying answers 409 scene_changed; with the original back, retry works", async function () {
        const jobId = "scene-edited";
        const request = { scene: SCENE, frames: "1-2", jobId };
        assert.strictEqual((await api("POST", "/jobs", { body: request })).status, 202);
        const manifest = (await ledger().readManifest(jobId))!;
        await ledger().writeFrameRecord(failedRecord(jobId, 2, new Date().toISOString()));
        // The artist edits the scene and uploads it under the same key.
        const edited = await emulator.s3.send(
            new PutObjectCommand({
                Bucket: farm.scenesBucket,
                Key: SCENE,
                Body: Buffer.concat([sceneBytes, Buffer.from("edited")]),
            }),
        );
        try {
            const resubmit = await api("POST", "/jobs", { body: request });
            assert.strictEqual(resubmit.status, 409, JSON.stringify(resubmit.body));
            assert.strictEqual(resubmit.body.error.code, "scene_changed");
            assert.strictEqual(resubmit.body.error.field, "scene");
            assert.ok(resubmit.body.error.message.includes(manifest.sceneEtag), resubmit.body.error.message);
            assert.ok(resubmit.body.error.message.includes(edited.ETag!), resubmit.body.error.message);
            assert.match(resubmit.body.error.message, /submit it as a new job/);

            const queued = framesIn(farm.frameQueueUrl, jobId).length;
            const retry = await api("POST", `/jobs/${jobId}/retry`);
            assert.strictEqual(retry.status, 409, JSON.stringify(retry.body));
            assert.strictEqual(retry.body.error.code, "scene_changed");
            assert.strictEqual(framesIn(farm.frameQueueUrl, jobId).length, queued, "nothing requeued");
        } finally {
            await emulator.s3.send(new PutObjectCommand({ Bucket: farm.scenesBucket, Key: SCENE, Body: sceneBytes }));
        }
        // The version the job was submitted with is back: the retry requeues the failed frame with that version.
        const retry = await api("POST", `/jobs/${jobId}/retry`);
        assert.strictEqual(retry.status, 202, JSON.stringify(retry.body));
        assert.strictEqual(retry.body.requeued, 1);
        assert.strictEqual((await api("POST", "/jobs", { body: request })).status, 202);
    });
});
