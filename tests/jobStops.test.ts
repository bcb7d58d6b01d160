// Stopping a job before all its frames render: a person's cancel, the job's budget, and fail-fast when its first
// frames all fail alike; and the interleaved order that makes a broken scene show within the first frames. Each on
// the local farm (`render-farm serve`), over the wire, with real Blender.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { FarmOutputs, FrameMessage, FrameRecord, frameOutputKey, JobStatus } from "../functions/shared/contract";
import { interleavedOrder } from "../functions/shared/frameOrder";
import { processesWorkingIn } from "../local/processes";
import { pauseMidFrame, renderingFrame, renderingIn } from "./support/blenderProcesses";
import { runCli } from "./support/cliRunner";
import { api, frameRecords, listKeys, queueDepth, range, sqsOf, uploadFile, waitFor } from "./support/farmClient";
import { makeScene } from "./support/scenes";
import { ServeProcess, startServe, stopServe } from "./support/serveProcess";
import { startWorker, stopWorker, WorkerProcess } from "./support/workerProcess";

const WIDTH = 64;
const HEIGHT = 48;

function newDataDir(): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), "job-stops-"));
}

async function status(outputs: FarmOutputs, jobId: string): Promise<JobStatus> {
    const reply = await api(outputs, "GET", `/jobs/${jobId}`);
    assert.strictEqual(reply.status, 200, JSON.stringify(reply.body));
    return reply.body;
}

/** Waits until the frame queue is empty and no Blender of this farm (or its workers) renders: all has settled. */
async function settled(serve: ServeProcess, dataDir: string): Promise<void> {
    await waitFor("the queue empty and no frame rendering", 120_000, async () =>
        (await queueDepth(serve.outputs, serve.outputs.frameQueueUrl)) === 0 && !renderingIn(dataDir)
            ? true
            : undefined,
    );
}

/** Blender runs so far: every attempt writes its frame's record, whose attempts count the deliveries. */
function blenderRuns(records: FrameRecord[]): number {
    return records.reduce((sum, record) => sum + record.attempts, 0);
}

describe("stopping a job: cancel, budget, fail-fast, and the order frames are queued in", function () {
    let serve: ServeProcess | undefined;
    let worker: WorkerProcess | undefined;

    afterEach(async function () {
        await stopWorker(worker);
        worker = undefined;
        await stopServe(serve);
        serve = undefined;
    });

    it("queues first, last and middle frames first, then fills the gaps by bisection", async function () {
        const frames = range(1, 1000);
        const order = interleavedOrder(frames);
        assert.deepStrictEqual(
            [...order].sort((a, b) => a - b),
            frames,
            "every frame exactly once",
        );
        assert.deepStrictEqual(order.slice(0, 3), [1, 1000, 500]);
        // After the first 2^k + 1 frames, no gap between two queued frames is wider than the range over 2^k.
        for (let k = 1; k <= 8; k++) {
            const seen = order.slice(0, 2 ** k + 1).sort((a, b) => a - b);
            const widest = Math.max(...seen.slice(1).map((frame, index) => frame - seen[index]));
            assert.ok(widest <= Math.ceil(999 / 2 ** k), `after ${seen.length} frames the widest gap is ${widest}`);
        }
        assert.deepStrictEqual(interleavedOrder([4]), [4]);
        assert.deepStrictEqual(interleavedOrder([4, 9]), [4, 9]);

        // The job API sends a job's frames in that order.
        const dataDir = newDataDir();
        serve = await startServe(["--port", "0", "--workers", "0", "--data-dir", dataDir]);
        const scene = await makeScene({ frames: "1-9", resolutionX: WIDTH, resolutionY: HEIGHT, samples: 1 });
        await uploadFile(serve.outputs, "shots/order/scene.blend", scene.blendPath);
        const submitted = await api(serve.outputs, "POST", "/jobs", {
            scene: "shots/order/scene.blend",
            jobId: "order",
        });
        assert.strictEqual(submitted.status, 202, JSON.stringify(submitted.body));
        const received = await sqsOf(serve.outputs).send(
            new ReceiveMessageCommand({ QueueUrl: serve.outputs.frameQueueUrl, MaxNumberOfMessages: 10 }),
        );
        const sent = (received.Messages ?? []).map((message) => (JSON.parse(message.Body!) as FrameMessage).frame);
        assert.deepStrictEqual(sent, [1, 9, 5, 3, 7, 2, 4, 6, 8]);
    });

    it("cancel: no frame starts after it, the frame rendering finishes and is kept; a cancel again changes nothing", async function () {
        const dataDir = newDataDir();
        serve = await startServe(["--port", "0", "--workers", "1", "--data-dir", dataDir]);
        const outputs = serve.outputs;
        // Frames of a few seconds each: the cancel lands while one renders and others wait.
        const scene = await makeScene({ frames: "1-8", resolutionX: WIDTH, resolutionY: HEIGHT, samples: 2048 });
        await uploadFile(outputs, "shots/cancel/scene.blend", scene.blendPath);
        assert.strictEqual(
            (await api(outputs, "POST", "/jobs", { scene: "shots/cancel/scene.blend", jobId: "cancel-me" })).status,
            202,
        );
        // The one worker's Blender held mid-frame (paused before it wrote the frame) until the cancel has landed.
        const held = await pauseMidFrame(path.join(dataDir, "work"), 120_000);
        let doneBefore: number;
        let cancelledAt: number;
        let reply: any;
        try {
            doneBefore = (await status(outputs, "cancel-me")).frames.done;
            cancelledAt = Date.now();
            const cancel = await runCli(["cancel", "cancel-me", "--data-dir", dataDir, "--json"], {
                timeoutMs: 60_000,
            });
            assert.strictEqual(cancel.code, 0, cancel.stderr);
            reply = JSON.parse(cancel.stdout);
        } finally {
            held.resume();
        }
        assert.strictEqual(reply.state, "cancelled");
        assert.match(reply.message, /frame\(s\) not yet rendered will not be/);

        await settled(serve, dataDir);
        const after = await status(outputs, "cancel-me");
        assert.strictEqual(after.state, "cancelled");
        assert.strictEqual(after.stop?.state, "cancelled");
        assert.ok(after.frames.pending > 0, JSON.stringify(after.frames));
        // The frame rendering at the cancel is the only one done since.
        assert.strictEqual(after.frames.done, doneBefore + 1, `done ${doneBefore} at the cancel`);
        const records = await frameRecords(outputs, "cancel-me");
        const heldRecord = records.find((record) => record.frame === held.frame);
        assert.strictEqual(heldRecord?.status, "done", `frame ${held.frame}, rendering at the cancel, is done`);
        assert.ok(Date.parse(heldRecord!.startedAt) < cancelledAt, "it started before the cancel");
        const kept = await listKeys(outputs, "renders/cancel-me/");
        assert.ok(
            kept.includes(frameOutputKey("cancel-me", held.frame, "PNG")),
            `its file is kept: ${kept.join(", ")}`,
        );
        assert.strictEqual(kept.length, after.frames.done, "one file per frame done");
        const startedLate = records.filter((record) => Date.parse(record.startedAt) > cancelledAt);
        assert.deepStrictEqual(startedLate, [], "no frame started after the cancel");
        // The waiting frames' messages were deleted (the queue is empty) without a Blender run (no record).
        assert.strictEqual(records.length, after.frames.done + after.frames.failed, JSON.stringify(after.frames));

        const again = await api(outputs, "POST", "/jobs/cancel-me/cancel");
        assert.strictEqual(again.status, 200, JSON.stringify(again.body));
        assert.strictEqual(again.body.at, reply.at, "the first cancel's time");
        assert.match(again.body.message, /was already cancelled/);
        const retry = await api(outputs, "POST", "/jobs/cancel-me/retry");
        assert.strictEqual(retry.status, 409, JSON.stringify(retry.body));
        assert.strictEqual(retry.body.error.code, "job_cancelled");
        const unknown = await api(outputs, "POST", "/jobs/no-such-job/cancel");
        assert.strictEqual(unknown.status, 404);
    });

    it("budget: the job stops once its spending would pass maxCostUsd, over by at most one frame per renderer", async function () {
        const dataDir = newDataDir();
        const workers = 2;
        serve = await startServe(["--port", "0", "--workers", String(workers), "--data-dir", dataDir]);
        const outputs = serve.outputs;
        const scene = await makeScene({ frames: "1-24", resolutionX: WIDTH, resolutionY: HEIGHT, samples: 256 });
        await uploadFile(outputs, "shots/budget/scene.blend", scene.blendPath);
        // What a frame costs here, as the stack's renderer Lambda would bill its seconds: a job without a budget.
        await api(outputs, "POST", "/jobs", { scene: "shots/budget/scene.blend", frames: "1-4", jobId: "price" });
        const priced = await waitFor("the pricing job", 120_000, async () => {
            const now = await status(outputs, "price");
            return now.state === "complete" ? now : undefined;
        });
        const frameCost = priced.costUsd / priced.frames.total;
        const budget = frameCost * 6.5;
        // With one renderer held, the other spends the budget alone: 6.5 of its frames, given twice that and more.
        const slowestFrameMs = Math.max(...(await frameRecords(outputs, "price")).map((record) => record.wallMs));
        const stopWithinMs = Math.max(180_000, 16 * slowestFrameMs);

        const submitted = await api(outputs, "POST", "/jobs", {
            scene: "shots/budget/scene.blend",
            jobId: "on-budget",
            maxCostUsd: budget,
        });
        assert.strictEqual(submitted.status, 202, JSON.stringify(submitted.body));
        // One renderer's Blender held mid-frame (paused before it wrote the frame) until the other stops the job.
        const held = await pauseMidFrame(path.join(dataDir, "work"), 120_000);
        let stopped: JobStatus;
        try {
            assert.notStrictEqual((await status(outputs, "on-budget")).state, "stopped_budget", "held before the stop");
            stopped = await waitFor("the job to stop on its budget", stopWithinMs, async () => {
                const now = await status(outputs, "on-budget");
                assert.notStrictEqual(now.state, "complete", "a 24-frame job cannot finish on 6.5 frames' budget");
                return now.state === "stopped_budget" ? now : undefined;
            });
        } finally {
            held.resume();
        }
        await settled(serve, dataDir);
        const final = await status(outputs, "on-budget");
        const records = await frameRecords(outputs, "on-budget");
        const heldRecord = records.find((record) => record.frame === held.frame);
        assert.strictEqual(heldRecord?.status, "done", `frame ${held.frame}, rendering at the stop, is done`);
        assert.ok(Date.parse(heldRecord!.startedAt) < Date.parse(stopped.stop!.at), "it started before the stop");
        // The held frame's cost counts its pause; the other renderer goes over by at most one frame of its own.
        const others = records.filter((record) => record !== heldRecord);
        const costliest = Math.max(...others.map((record) => record.costUsd));
        console.log(
            `      budget $${budget.toFixed(6)} (6.5 frames at $${frameCost.toFixed(6)}): spent $${final.costUsd.toFixed(6)}, ${final.frames.done} of 24 frames done, stopped at $${stopped.stop?.spentUsd?.toFixed(6)}`,
        );
        assert.strictEqual(final.state, "stopped_budget");
        assert.strictEqual(final.maxCostUsd, budget);
        // The stop records what was spent when a renderer found the budget would pass: frames already rendering when
        // the spending reached it may have finished by then (so it can be over the budget), never more than all spent.
        assert.ok(final.stop!.spentUsd! <= final.costUsd, JSON.stringify(final.stop));
        assert.ok(final.stop!.spentUsd! > budget / 2, `stopped early: ${JSON.stringify(final.stop)}`);
        assert.ok(
            final.costUsd - heldRecord!.costUsd <= budget + costliest * (workers - 1),
            `spent ${final.costUsd} (${heldRecord!.costUsd} on the held frame) > budget ${budget} + ${workers - 1} frame(s) of at most ${costliest}`,
        );
        assert.ok(final.frames.done >= 3 && final.frames.done < 24, JSON.stringify(final.frames));
        assert.strictEqual(
            records.filter((record) => record.status === "done").length,
            final.frames.done,
            "a done record per frame done",
        );
        const kept = await listKeys(outputs, "renders/on-budget/");
        assert.ok(
            kept.includes(frameOutputKey("on-budget", held.frame, "PNG")),
            `its file is kept: ${kept.join(", ")}`,
        );
        assert.strictEqual(kept.length, final.frames.done, "the frames rendered are kept");
        const retry = await api(outputs, "POST", "/jobs/on-budget/retry");
        assert.strictEqual(retry.status, 409, JSON.stringify(retry.body));
        assert.strictEqual(retry.body.error.code, "budget_spent");
    });

    it("fail-fast: a job whose every frame runs out of memory stops after 3 frames fail so, instead of spending 3 attempts on each of its 20", async function () {
        const dataDir = newDataDir();
        serve = await startServe(["--port", "0", "--workers", "0", "--data-dir", dataDir]);
        const outputs = serve.outputs;
        // Subdivided 10 levels at render time (about 6 million faces): several GB to render, past the 1 GB bound.
        const scene = await makeScene({
            frames: "1-20",
            resolutionX: WIDTH,
            resolutionY: HEIGHT,
            samples: 1,
            subdivision: 10,
        });
        await uploadFile(outputs, "shots/heavy/scene.blend", scene.blendPath);
        const submitted = await api(outputs, "POST", "/jobs", { scene: "shots/heavy/scene.blend", jobId: "heavy" });
        assert.strictEqual(submitted.status, 202, JSON.stringify(submitted.body));
        worker = await startWorker(["--data-dir", dataDir, "--workers", "1", "--failure-backoff", "1"], undefined, {
            BLENDER_MEMORY_HARD_LIMIT_MB: "1024",
        });
        const stopped = await waitFor("the job to fail fast", 300_000, async () => {
            const now = await status(outputs, "heavy");
            assert.notStrictEqual(now.state, "complete", "the frames rendered within the bound");
            return now.state === "stopped_failing" ? now : undefined;
        });
        assert.strictEqual(stopped.stop?.code, "out_of_memory");
        assert.match(
            stopped.stop!.message,
            /3 frames failed with out_of_memory and none is done.*: Blender used \d[\d.]* [GM]B of memory rendering frame \d+ .*, past the 1\.0 GB it may use, and was stopped/,
        );
        await settled(serve, dataDir);
        const records = await frameRecords(outputs, "heavy");
        const runs = blenderRuns(records);
        console.log(
            `      out of memory: ${runs} Blender run(s) for 20 frames before the job stopped (without it: 60)`,
        );
        assert.ok(runs <= 3 * 3, `${runs} Blender runs`);
        for (const record of records) assert.strictEqual(record.error?.code, "out_of_memory", JSON.stringify(record));
    });

    it("fail-fast: a job whose every frame's Blender is SIGKILLed mid-frame (as the kernel's OOM killer does) stops after 3 frames fail so", async function () {
        const dataDir = newDataDir();
        serve = await startServe(["--port", "0", "--workers", "0", "--data-dir", dataDir]);
        const outputs = serve.outputs;
        // Frames of a few seconds each, so that each is caught rendering.
        const scene = await makeScene({ frames: "1-8", resolutionX: WIDTH, resolutionY: HEIGHT, samples: 2048 });
        await uploadFile(outputs, "shots/killed/scene.blend", scene.blendPath);
        const submitted = await api(outputs, "POST", "/jobs", { scene: "shots/killed/scene.blend", jobId: "killed" });
        assert.strictEqual(submitted.status, 202, JSON.stringify(submitted.body));
        worker = await startWorker(["--data-dir", dataDir, "--workers", "1", "--failure-backoff", "1"]);
        const workDir = worker.ready.workDir;
        let kills = 0;
        let killing = true;
        const killer = (async () => {
            while (killing) {
                for (const pid of processesWorkingIn(workDir)) {
                    if (renderingFrame(pid) === undefined) continue;
                    try {
                        process.kill(pid, "SIGKILL");
                        kills++;
                    } catch {
                        // It ended meanwhile.
                    }
                }
                await new Promise((resolve) => setTimeout(resolve, 100));
            }
        })();
        try {
            const stopped = await waitFor("the job to fail fast", 300_000, async () => {
                const now = await status(outputs, "killed");
                assert.ok(!["complete", "partial", "failed"].includes(now.state), `the job ended ${now.state}`);
                return now.state === "stopped_failing" ? now : undefined;
            });
            assert.strictEqual(stopped.stop?.code, "killed");
            assert.match(stopped.stop!.message, /3 frames failed with killed and none is done.*SIGKILL/);
            await settled(serve, dataDir);
        } finally {
            killing = false;
            await killer;
        }
        const runs = blenderRuns(await frameRecords(outputs, "killed"));
        console.log(
            `      killed: ${runs} Blender run(s) (${kills} kills) for 8 frames before the job stopped (without it: 24)`,
        );
        assert.ok(runs <= 3 * 3, `${runs} Blender runs`);
    });

    it("fail-fast: 200 frames missing a texture (preflight off) stop after at most 3 frames x 3 attempts; a job failing alike is retried once fixed, and every frame renders", async function () {
        this.timeout(900_000);
        const dataDir = newDataDir();
        // No renderers in the farm: both jobs are queued, and one's texture is changed, before any frame runs.
        serve = await startServe(["--port", "0", "--workers", "0", "--data-dir", dataDir, "--no-preflight"]);
        const outputs = serve.outputs;
        const scene = await makeScene({
            frames: "1-200",
            resolutionX: WIDTH,
            resolutionY: HEIGHT,
            samples: 1,
            texture: "wood.png",
        });
        // Job "fail-fast": the texture was never uploaded, nor named.
        await uploadFile(outputs, "shots/fast/scene.blend", scene.blendPath);
        const missing = await api(outputs, "POST", "/jobs", {
            scene: "shots/fast/scene.blend",
            frames: "1-200",
            jobId: "fail-fast",
        });
        assert.strictEqual(missing.status, 202, JSON.stringify(missing.body));
        // Job "fixable": its texture is pinned at submit, then replaced by another version (asset_changed).
        await uploadFile(outputs, "shots/fixable/scene.blend", scene.blendPath);
        await uploadFile(outputs, "shots/fixable/wood.png", scene.texturePath!);
        const fixable = await api(outputs, "POST", "/jobs", {
            scene: "shots/fixable/scene.blend",
            assets: ["shots/fixable/wood.png"],
            frames: "1-20",
            jobId: "fixable",
        });
        assert.strictEqual(fixable.status, 202, JSON.stringify(fixable.body));
        const otherVersion = path.join(dataDir, "other-wood.png");
        fs.writeFileSync(otherVersion, Buffer.concat([fs.readFileSync(scene.texturePath!), Buffer.from("changed")]));
        await uploadFile(outputs, "shots/fixable/wood.png", otherVersion);

        worker = await startWorker(["--data-dir", dataDir, "--workers", "2", "--failure-backoff", "1"]);
        const stopped = await waitFor("the job to fail fast", 180_000, async () => {
            const now = await status(outputs, "fail-fast");
            return now.state === "stopped_failing" ? now : undefined;
        });
        assert.strictEqual(stopped.stop?.code, "missing_files");
        assert.match(stopped.stop!.message, /frames failed with missing_files and none is done.*wood\.png/);
        const stoppedFixable = await waitFor("the other job to fail fast", 180_000, async () => {
            const now = await status(outputs, "fixable");
            return now.state === "stopped_failing" ? now : undefined;
        });
        assert.strictEqual(stoppedFixable.stop?.code, "asset_changed");
        await settled(serve, dataDir);
        const runs = blenderRuns(await frameRecords(outputs, "fail-fast"));
        console.log(`      fail-fast: ${runs} Blender run(s) for 200 frames before the job stopped (without it: 600)`);
        assert.ok(runs <= 3 * 3, `${runs} Blender runs`);
        const cli = await runCli(["status", "fail-fast", "--data-dir", dataDir], { timeoutMs: 60_000 });
        assert.match(cli.stdout + cli.stderr, /fail-fast stopped_failing: .*missing_files/);

        // The version the job was submitted with is back: a retry lifts the stop and renders every frame.
        await uploadFile(outputs, "shots/fixable/wood.png", scene.texturePath!);
        const retry = await api(outputs, "POST", "/jobs/fixable/retry");
        assert.strictEqual(retry.status, 202, JSON.stringify(retry.body));
        const done = await waitFor("the retried job to complete", 300_000, async () => {
            const now = await status(outputs, "fixable");
            return now.frames.done === 20 ? now : undefined;
        });
        assert.strictEqual(done.state, "complete", JSON.stringify(done.frames));
        assert.strictEqual(done.stop, undefined, "a retry lifts a fail-fast stop");
    });
});
