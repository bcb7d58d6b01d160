// Submit and retry survive the job API being killed between any two of their steps: a crash point stands for the
// kill (it throws where the process would die), then the same request again finishes the job exactly once. Every
// frame is queued once, except the group a killed request had sent but not recorded (SQS cannot be asked whether a
// message went), and those duplicates are rendered once: the renderer skips a frame already done.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import {
    ChangeMessageVisibilityCommand,
    DeleteMessageCommand,
    GetQueueAttributesCommand,
    ReceiveMessageCommand,
    SendMessageCommand,
} from "@aws-sdk/client-sqs";
import { FrameMessage, FrameRecord, JobStatus, parseFrameMessage } from "../functions/shared/contract";
import { frameMessageOf } from "../functions/shared/contract/frameMessage";
import { retryJob } from "../functions/jobApi/retry";
import { JobApiDeps, JobApiSettings } from "../functions/jobApi/settings";
import { getJobStatus } from "../functions/jobApi/status";
import { submitJob } from "../functions/jobApi/submit";
import { jobLedger } from "../functions/shared/ledger";
import { mapWithConcurrency } from "../functions/shared/concurrency";
import { createRendererHandler } from "../functions/renderer/consumer";
import { pollOnce } from "../local/eventSourcePoller";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { BLENDER, makeScene } from "./support/scenes";
import { DEFAULT_RENDER_LIMITS } from "../functions/renderer/settings";

const SCENE = "shots/crash/scene.blend";
const GROUP = 4;
const FRAMES = "1-10";
/** The groups frames 1-10 go out in, 4 at a time, in the interleaved order (first, last, middle, then bisection). */
const GROUPS = [
    [1, 10, 5, 3],
    [7, 2, 4, 6],
    [8, 9],
];
/** The steps of a clean submit, in order: the crash points a kill can fall between. */
const SUBMIT_STEPS = [
    "manifest-written",
    "submit-dispatch-created",
    "submit-group-sent",
    "submit-group-recorded",
    "submit-group-sent",
    "submit-group-recorded",
    "submit-group-sent",
    "submit-group-recorded",
    "submit-dispatch-complete",
];
const RETRY_STEPS = [
    "retry-dispatch-created",
    "retry-frames-marked",
    "retry-marks-recorded",
    "retry-group-sent",
    "retry-group-recorded",
    "retry-group-sent",
    "retry-group-recorded",
    "retry-group-sent",
    "retry-group-recorded",
    "retry-dispatch-complete",
    "dead-letters-removed",
];

/** A crash point that records every step and, at the n-th (1-based), throws as the process dying there would. */
function crashAt(n: number | undefined): { hook: (step: string) => void; steps: string[] } {
    const steps: string[] = [];
    return {
        steps,
        hook(step) {
            steps.push(step);
            if (steps.length === n) throw Object.assign(new Error(`killed after ${step}`), { crashPoint: true });
        },
    };
}

/** The frames of the groups a kill at step n (of the submit or retry steps) leaves sent but unrecorded. */
function duplicatedFrames(steps: string[], n: number): number[] {
    if (!steps[n - 1].endsWith("-group-sent")) return [];
    const group = steps.slice(0, n).filter((step) => step.endsWith("-group-sent")).length - 1;
    return GROUPS[group];
}

describe("resumable submit and retry (the job API killed between every two steps)", function () {
    this.timeout(600_000);
    let emulator: Emulator;
    let farm: FarmResources;
    const ledger = () => jobLedger(emulator.s3, farm.rendersBucket);
    let settings: JobApiSettings;

    before(async function () {
        emulator = await startEmulator({ port: 0 });
        farm = await createFarmResources(emulator, { name: "crash", maxReceiveCount: 3, visibilityTimeoutSeconds: 60 });
        const scene = await makeScene({ frames: "1-10", resolutionX: 32, resolutionY: 18, engine: "WORKBENCH" });
        await emulator.s3.send(
            new PutObjectCommand({ Bucket: farm.scenesBucket, Key: SCENE, Body: fs.readFileSync(scene.blendPath) }),
        );
        settings = {
            scenesBucket: farm.scenesBucket,
            rendersBucket: farm.rendersBucket,
            frameQueueUrl: farm.frameQueueUrl,
            deadLetterQueueUrl: farm.deadLetterQueueUrl,
            limits: { maxFrames: 100_000, maxResolution: 4096, allowedEngines: ["WORKBENCH", "EEVEE", "CYCLES"] },
            maxReceiveCount: 3,
            queueGroupFrames: GROUP,
        };
    });

    after(async function () {
        await emulator?.stop();
    });

    const deps = (crashPoint?: (step: string) => void, s3: S3Client = emulator.s3): JobApiDeps => ({
        s3,
        sqs: emulator.sqs,
        settings,
        crashPoint,
    });

    /** Frame numbers of a job's messages waiting in a queue (peeked: nothing is received). */
    function queuedFrames(jobId: string, queueUrl = farm.frameQueueUrl): number[] {
        const contents = emulator.inspectQueue(queueUrl)!;
        return [...contents.waiting, ...contents.inFlight.map((message) => message.body)]
            .map((body) => parseFrameMessage(body, farm.rendersBucket))
            .filter((parsed): parsed is { ok: true; value: FrameMessage } => parsed.ok && parsed.value.jobId === jobId)
            .map((parsed) => parsed.value.frame)
            .sort((a, b) => a - b);
    }

    /** Waits until the lease a killed request left on the job's queue progress has run out, as a later request would. */
    async function leaseExpiry(jobId: string): Promise<void> {
        const progress = await ledger().readQueueProgress(jobId);
        const until = progress?.dispatch.lease ? Date.parse(progress.dispatch.lease.until) : 0;
        const wait = until - Date.now() + 50;
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }

    const request = (jobId: string) => ({ scene: SCENE, frames: FRAMES, jobId });

    it("names its steps: a clean submit and retry pass exactly these crash points", async function () {
        const submit = crashAt(undefined);
        const reply = await submitJob(deps(submit.hook), request("steps"));
        assert.strictEqual(reply.status, 202, JSON.stringify(reply.body));
        assert.deepStrictEqual(submit.steps, SUBMIT_STEPS);
        await failEveryFrame("steps");
        const retry = crashAt(undefined);
        const retried = await retryJob(deps(retry.hook), "steps");
        assert.strictEqual(retried.status, 202, JSON.stringify(retried.body));
        assert.deepStrictEqual(retry.steps, RETRY_STEPS);
    });

    it("submit: killed after any step, the same request again queues every frame once (the unrecorded group twice)", async function () {
        const points = SUBMIT_STEPS.map((_, index) => index + 1);
        // Every kill point its own job, all at once: the queue tells them apart by jobId.
        await Promise.all(
            points.map(async (n) => {
                const crash = crashAt(n);
                // A short deadline: the killed request's lease runs out a few seconds after it.
                await assert.rejects(submitJob(deps(crash.hook), request(`submit-kill-${n}`), Date.now() + 2000), {
                    message: `killed after ${SUBMIT_STEPS[n - 1]}`,
                });
            }),
        );
        for (const n of points) {
            const jobId = `submit-kill-${n}`;
            if (n < 2) continue; // killed before its queue progress existed: nothing holds a lease
            const progress = await ledger().readQueueProgress(jobId);
            if (progress?.dispatch.complete) continue;
            // While the killed request's lease lasts, a resubmit neither sends nor waits: 202, still queueing.
            const early = await submitJob(deps(), request(jobId));
            assert.strictEqual(early.status, 202, `${jobId}: ${JSON.stringify(early.body)}`);
            assert.strictEqual((early.body as { state: string }).state, "queueing", jobId);
        }
        const before = new Map(points.map((n) => [n, queuedFrames(`submit-kill-${n}`)]));
        for (const n of points) await leaseExpiry(`submit-kill-${n}`);
        for (const n of points) {
            const jobId = `submit-kill-${n}`;
            const again = await submitJob(deps(), request(jobId));
            assert.strictEqual(again.status, 202, `${jobId}: ${JSON.stringify(again.body)}`);
            assert.deepStrictEqual(
                { queued: (again.body as { queued: number }).queued, state: (again.body as { state: string }).state },
                { queued: 10, state: "queued" },
                jobId,
            );
            const expected = [...Array.from({ length: 10 }, (_, i) => i + 1), ...duplicatedFrames(SUBMIT_STEPS, n)];
            assert.deepStrictEqual(
                queuedFrames(jobId),
                expected.sort((a, b) => a - b),
                `killed after step ${n} (${SUBMIT_STEPS[n - 1]}); before the resubmit: ${before.get(n)}`,
            );
            // A third time: nothing more is queued.
            assert.strictEqual((await submitJob(deps(), request(jobId))).status, 202);
            assert.strictEqual(queuedFrames(jobId).length, expected.length, `${jobId}: queued again`);
            const status = (await getJobStatus(deps(), jobId)).body as JobStatus;
            assert.deepStrictEqual(status.queue, {
                kind: "submit",
                queued: 10,
                total: 10,
                complete: true,
                stalled: false,
            });
        }
    });

    it("the duplicates of a killed submit are rendered once: the renderer skips a frame already done", async function () {
        const jobId = "submit-kill-3"; // killed after its first group was sent and before it was recorded
        assert.deepStrictEqual(duplicatedFrames(SUBMIT_STEPS, 3), [1, 10, 5, 3]);
        const work = fs.mkdtempSync(path.join(os.tmpdir(), "crash-render-"));
        const log = path.join(work, "blender-runs.log");
        // The real Blender, behind a wrapper that notes every frame request the renderer sends it (render_frame.py
        // --serve reads one JSON request per line on stdin).
        const wrapper = path.join(work, "blender");
        fs.writeFileSync(
            wrapper,
            ["#!/bin/sh", `tee -a ${JSON.stringify(log)} | ${JSON.stringify(BLENDER)} "$@"`, ""].join("\n"),
            { mode: 0o755 },
        );
        const handler = createRendererHandler({
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: {
                ...settings,
                failureBackoffSeconds: 1,
                // A renderer's memory as Lambda gives it: Blender may use all of it but what the renderer keeps.
                memoryMb: 2048,
                blenderPath: wrapper,
                workDir: path.join(work, "renderer"),
                threads: 1,
                defaultTimeoutMs: 120_000,
                limits: DEFAULT_RENDER_LIMITS,
            },
        });
        try {
            const queueArn = (
                await emulator.sqs.send(
                    new GetQueueAttributesCommand({ QueueUrl: farm.frameQueueUrl, AttributeNames: ["QueueArn"] }),
                )
            ).Attributes!.QueueArn!;
            // Other jobs' messages wait in the same queue: render only this job's (in queue order, one at a time).
            const others: string[] = [];
            let rendered = 0;
            while (queuedFrames(jobId).length > 0) {
                const outcome = await pollOnce({
                    sqs: emulator.sqs,
                    queueUrl: farm.frameQueueUrl,
                    queueArn,
                    region: emulator.region,
                    handler: async (event) => {
                        const parsed = parseFrameMessage(event.Records[0].body, farm.rendersBucket);
                        if (!parsed.ok || parsed.value.jobId !== jobId) {
                            others.push(event.Records[0].body);
                            return { batchItemFailures: [] };
                        }
                        rendered++;
                        return handler(event);
                    },
                });
                assert.notStrictEqual(outcome, "failed");
                if (outcome === "empty") break;
            }
            assert.strictEqual(rendered, 14, "10 frames, 4 of them delivered twice");
            const runs = fs
                .readFileSync(log, "utf8")
                .trim()
                .split("\n")
                .map((line) => (JSON.parse(line) as { frame: number }).frame);
            assert.deepStrictEqual(
                runs.sort((a, b) => a - b),
                Array.from({ length: 10 }, (_, i) => i + 1),
                "Blender ran once per frame",
            );
            const status = (await getJobStatus(deps(), jobId)).body as JobStatus;
            assert.strictEqual(status.state, "complete");
            assert.deepStrictEqual(status.frames, { total: 10, done: 10, failed: 0, pending: 0 });
            // Put the other jobs' messages back for the tests after this one.
            for (const body of others)
                await emulator.sqs.send(new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: body }));
        } finally {
            await handler.close();
        }
    });

    /** Every frame of the job failed for good, with its message in the dead-letter queue, as the farm leaves it. */
    async function failEveryFrame(jobId: string): Promise<void> {
        const manifest = (await ledger().readManifest(jobId))!;
        const at = new Date(Date.now() - 60_000).toISOString();
        await mapWithConcurrency(manifest.frames, 8, async (frame) => {
            const record: FrameRecord = {
                jobId,
                frame,
                status: "failed",
                attempts: 3,
                startedAt: at,
                finishedAt: at,
                wallMs: 1000,
                blenderMs: 900,
                memoryMb: 0,
                costUsd: 0,
                error: { code: "missing_files", message: "a texture was not uploaded" },
                logTail: "",
            };
            await ledger().writeFrameRecord(record);
            await emulator.sqs.send(
                new SendMessageCommand({
                    QueueUrl: farm.deadLetterQueueUrl,
                    MessageBody: JSON.stringify(frameMessageOf(manifest, farm.rendersBucket, frame)),
                }),
            );
        });
    }

    it("retry: killed after any step, retrying again requeues every failed frame once and empties the DLQ of the job", async function () {
        // Another job's dead letter: a retry must leave it where it is.
        await emulator.sqs.send(
            new SendMessageCommand({
                QueueUrl: farm.deadLetterQueueUrl,
                MessageBody: JSON.stringify({ ...frameMessageOfOther(), jobId: "someone-else" }),
            }),
        );
        for (let n = 1; n <= RETRY_STEPS.length; n++) {
            const jobId = `retry-kill-${n}`;
            assert.strictEqual((await submitJob(deps(), request(jobId))).status, 202);
            await drainJob(jobId);
            await failEveryFrame(jobId);
            assert.deepStrictEqual(queuedFrames(jobId, farm.deadLetterQueueUrl).length, 10);
            await new Promise((resolve) => setTimeout(resolve, 5)); // the retry comes after the dead letters
            const crash = crashAt(n);
            await assert.rejects(retryJob(deps(crash.hook), jobId, new Date(), Date.now() + 2000), {
                message: `killed after ${RETRY_STEPS[n - 1]}`,
            });
            await leaseExpiry(jobId);
            const again = await retryJob(deps(), jobId);
            assert.strictEqual(again.status, 202, `${jobId}: ${JSON.stringify(again.body)}`);
            const expected = [...Array.from({ length: 10 }, (_, i) => i + 1), ...duplicatedFrames(RETRY_STEPS, n)];
            assert.deepStrictEqual(
                queuedFrames(jobId),
                expected.sort((a, b) => a - b),
                `killed after step ${n} (${RETRY_STEPS[n - 1]}): ${JSON.stringify(again.body)}`,
            );
            assert.deepStrictEqual(queuedFrames(jobId, farm.deadLetterQueueUrl), [], `${jobId}: dead letters left`);
            const status = (await getJobStatus(deps(), jobId)).body as JobStatus;
            assert.deepStrictEqual(status.frames, { total: 10, done: 0, failed: 0, pending: 10 }, jobId);
            assert.deepStrictEqual(status.pendingBy, { retrying: 0, requeued: 10, notStarted: 0 }, jobId);
            // Once more: nothing failed, nothing is quiet (its frames are queued), so nothing is requeued.
            const third = await retryJob(deps(), jobId);
            assert.strictEqual((third.body as { requeued: number }).requeued, 0, JSON.stringify(third.body));
            assert.strictEqual(queuedFrames(jobId).length, expected.length, `${jobId}: queued again`);
            await drainJob(jobId);
        }
        assert.strictEqual(
            queuedFrames("someone-else", farm.deadLetterQueueUrl).length,
            1,
            "another job's dead letter",
        );
    });

    /** Removes the job's messages from the frame queue (as renderers taking them would), leaving other jobs' alone. */
    async function drainJob(jobId: string): Promise<void> {
        for (;;) {
            const reply = await emulator.sqs.send(
                new ReceiveMessageCommand({
                    QueueUrl: farm.frameQueueUrl,
                    MaxNumberOfMessages: 10,
                    VisibilityTimeout: 30,
                }),
            );
            const messages = reply.Messages ?? [];
            if (messages.length === 0) break;
            for (const message of messages) {
                const parsed = parseFrameMessage(message.Body ?? "", farm.rendersBucket);
                const mine = parsed.ok && parsed.value.jobId === jobId;
                if (mine)
                    await emulator.sqs.send(
                        new DeleteMessageCommand({
                            QueueUrl: farm.frameQueueUrl,
                            ReceiptHandle: message.ReceiptHandle!,
                        }),
                    );
                else
                    await emulator.sqs.send(
                        new ChangeMessageVisibilityCommand({
                            QueueUrl: farm.frameQueueUrl,
                            ReceiptHandle: message.ReceiptHandle!,
                            VisibilityTimeout: 0,
                        }),
                    );
            }
            if (queuedFrames(jobId).length === 0) break;
        }
    }

    function frameMessageOfOther(): FrameMessage {
        return {
            v: 1,
            jobId: "someone-else",
            frame: 1,
            scene: SCENE,
            sceneEtag: "",
            assets: [],
            settings: { format: "PNG" },
            output: { bucket: farm.rendersBucket, key: "renders/someone-else/frame_0001.png" },
        };
    }
});
