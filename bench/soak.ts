// Soak benchmark: N frames of a tiny scene through the local farm (`render-farm serve --workers 0`) and two
// `render-farm worker` processes, one of them SIGKILLed (while it renders a frame) and restarted every K frames.
// Then checks what a studio would: every frame on S3 exactly once, GET /jobs counts exact, nothing left in the
// queue or the DLQ; and prints frames per minute and the number of retries.
//   npm run soak                                  (2,000 frames, a kill every 200)
//   npm run soak -- --frames 50 --kill-every 20   (what tests/soak.test.ts runs)
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { JobStatus } from "../functions/shared/contract";
import {
    api,
    frameKeys,
    frameRecords,
    listKeys,
    peekDeadLetters,
    queueDepth,
    range,
    uploadFile,
    waitFor,
    waitForJobEnd,
} from "../tests/support/farmClient";
import { makeScene } from "../tests/support/scenes";
import { ServeProcess, startServe, stopServe } from "../tests/support/serveProcess";
import {
    framesDone,
    freezeHoldingFrame,
    killWorker,
    startWorker,
    stopWorker,
    WorkerProcess,
} from "../tests/support/workerProcess";

export interface SoakOptions {
    frames: number;
    /** A worker is killed each time this many more frames are done. */
    killEvery: number;
    /** Worker processes, one poller each; default 2. */
    workers?: number;
    /** Progress lines; default none. */
    log?: (line: string) => void;
}

export interface SoakResult {
    frames: number;
    workers: number;
    /** From the submission to the last frame done. */
    seconds: number;
    framesPerMinute: number;
    kills: number;
    /** Kills that caught the worker rendering a frame, i.e. holding a frame's message. */
    killsHoldingFrame: number;
    /** The frames those kills caught; each must have come back and been rendered once (else a problem). */
    heldFrames: number[];
    /** Receives beyond the first, over all frames: sum of (attempts - 1) from the frame records. */
    retries: number;
    /** Frames rendered to the end, over all workers' logs (a frame redelivered after its upload counts twice). */
    renders: number;
    status: JobStatus;
    /** What the checks found wrong; empty when every frame is there exactly once and the counts are exact. */
    problems: string[];
}

const JOB_ID = "soak";
const SCENE_KEY = "soak/scene.blend";
/** How long a kill waits for its victim to hold a frame mid-render: the job still has frames for it to take. */
const HOLDING_WAIT_MS = 120_000;

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
    const { frames, killEvery } = options;
    const workerCount = options.workers ?? 2;
    const log = options.log ?? (() => undefined);
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "soak-"));
    const workerArgs = ["--data-dir", dataDir, "--workers", "1", "--failure-backoff", "1"];
    let serve: ServeProcess | undefined;
    const running: WorkerProcess[] = [];
    /** Every worker process of the run, killed ones too: their logs count. */
    const all: WorkerProcess[] = [];
    try {
        serve = await startServe(["--port", "0", "--workers", "0", "--failure-backoff", "1", "--data-dir", dataDir]);
        const { outputs } = serve;
        const scene = await makeScene({ frames: `1-${frames}`, resolutionX: 32, resolutionY: 24, samples: 1 });
        await uploadFile(outputs, SCENE_KEY, scene.blendPath);
        for (let index = 0; index < workerCount; index++) running.push(await startWorker(workerArgs));
        all.push(...running);

        const startedAt = Date.now();
        const submitted = await api(outputs, "POST", "/jobs", {
            scene: SCENE_KEY,
            frames: `1-${frames}`,
            jobId: JOB_ID,
        });
        if (submitted.status !== 202)
            throw new Error(`POST /jobs answered ${submitted.status}: ${JSON.stringify(submitted.body)}`);
        log(
            `soak: ${frames} frames submitted to ${workerCount} worker processes; a worker is killed every ${killEvery} frames (data dir ${dataDir})`,
        );

        let kills = 0;
        /** The frames killed workers held mid-render, each with the worker that held it. */
        const heldFrames: { frame: number; worker: WorkerProcess }[] = [];
        let nextKill = killEvery;
        let nextReport = Math.max(1, Math.round(frames / 10));
        const doneFrames = () => new Set(all.flatMap((worker) => framesDone(worker.lines(), JOB_ID))).size;
        await waitFor(
            `all ${frames} frames done`,
            Math.max(600_000, frames * 3000),
            async () => {
                const done = doneFrames();
                if (done >= nextReport) {
                    log(
                        `soak: ${done}/${frames} frames done after ${((Date.now() - startedAt) / 1000).toFixed(0)} s, ${kills} kill(s)`,
                    );
                    nextReport += Math.max(1, Math.round(frames / 10));
                }
                if (done >= nextKill && nextKill < frames) {
                    nextKill += killEvery;
                    const slot = kills % running.length;
                    const victim = running[slot];
                    const held = await freezeHoldingFrame(victim, HOLDING_WAIT_MS);
                    await killWorker(victim);
                    kills++;
                    if (held !== undefined) heldFrames.push({ frame: held, worker: victim });
                    running[slot] = await startWorker(workerArgs);
                    all.push(running[slot]);
                    log(
                        `soak: killed worker process ${victim.ready.pid} at ${done} frames done${held !== undefined ? `, while it held frame ${held}` : ", holding no frame"}; started ${running[slot].ready.pid}`,
                    );
                }
                return done >= frames ? true : undefined;
            },
            250,
        );
        const seconds = (Date.now() - startedAt) / 1000;

        const status = await waitForJobEnd(outputs, JOB_ID, 120_000, 1000);
        const problems: string[] = [];
        const expect = (what: string, actual: unknown, expected: unknown) => {
            if (JSON.stringify(actual) !== JSON.stringify(expected))
                problems.push(`${what}: ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
        };
        expect("GET /jobs state", status.state, "complete");
        expect("GET /jobs frames", status.frames, { total: frames, done: frames, failed: 0, pending: 0 });
        const keys = await listKeys(outputs, `renders/${JOB_ID}/`);
        const expectedKeys = frameKeys(JOB_ID, range(1, frames));
        expect("objects under renders/soak/", keys.length, frames);
        const missing = expectedKeys.filter((key) => !keys.includes(key));
        const extra = keys.filter((key) => !expectedKeys.includes(key));
        if (missing.length > 0 || extra.length > 0)
            problems.push(
                `renders/soak/: missing ${missing.slice(0, 5).join(", ") || "none"}; unexpected ${extra.slice(0, 5).join(", ") || "none"}`,
            );
        const records = await frameRecords(outputs, JOB_ID);
        expect(
            "frame records",
            records.map((record) => record.frame),
            range(1, frames),
        );
        const notDone = records.filter((record) => record.status !== "done");
        if (notDone.length > 0)
            problems.push(
                `frame records not done: ${notDone
                    .slice(0, 5)
                    .map((record) => `${record.frame} (${record.status})`)
                    .join(", ")}`,
            );
        const retries = records.reduce((sum, record) => sum + record.attempts - 1, 0);
        // A frame lost with its worker came back (received again) and was rendered to the end once, not by that worker.
        for (const { frame, worker } of heldFrames) {
            const attempts = records.find((record) => record.frame === frame)?.attempts ?? 0;
            const rendered = all
                .flatMap((each) => framesDone(each.lines(), JOB_ID))
                .filter((f) => f === `${JOB_ID}/${frame}`);
            if (attempts < 2) problems.push(`frame ${frame}, held by a killed worker, has ${attempts} attempt(s)`);
            if (rendered.length !== 1)
                problems.push(`frame ${frame}, held by a killed worker, rendered ${rendered.length} times`);
            if (framesDone(worker.lines(), JOB_ID).includes(`${JOB_ID}/${frame}`))
                problems.push(`frame ${frame} was rendered to the end by the worker killed while it held it`);
        }
        await waitFor(
            "the frame queue to drain",
            60_000,
            async () => ((await queueDepth(outputs, outputs.frameQueueUrl)) === 0 ? true : undefined),
            500,
        ).catch(() => problems.push("the frame queue still holds messages"));
        expect("dead letters", (await peekDeadLetters(outputs)).length, 0);
        const renders = all.reduce((sum, worker) => sum + framesDone(worker.lines(), JOB_ID).length, 0);
        return {
            frames,
            workers: workerCount,
            seconds,
            framesPerMinute: (frames / seconds) * 60,
            kills,
            killsHoldingFrame: heldFrames.length,
            heldFrames: heldFrames.map((held) => held.frame),
            retries,
            renders,
            status,
            problems,
        };
    } finally {
        for (const worker of running) await stopWorker(worker);
        await stopServe(serve);
        fs.rmSync(dataDir, { recursive: true, force: true });
    }
}

/** The one line the soak prints. */
export function soakSummary(result: SoakResult): string {
    return (
        `soak: ${result.frames} frames, ${result.workers} workers, ${result.kills} kill(s) (${result.killsHoldingFrame} mid-frame: frame(s) ${result.heldFrames.join(", ") || "none"}): ` +
        `${(result.seconds / 60).toFixed(1)} min, ${result.framesPerMinute.toFixed(1)} frames/min, ${result.retries} retries, ` +
        `${result.renders - result.frames} frame(s) rendered twice; ${result.problems.length === 0 ? "every frame exactly once, counts exact" : `PROBLEMS: ${result.problems.join("; ")}`}`
    );
}

function numberArgument(args: string[], name: string, fallback: number): number {
    const index = args.indexOf(name);
    if (index < 0) return fallback;
    const value = Number(args[index + 1]);
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} needs a whole number >= 1`);
    return value;
}

if (require.main === module) {
    const args = process.argv.slice(2);
    runSoak({
        frames: numberArgument(args, "--frames", 2000),
        killEvery: numberArgument(args, "--kill-every", 200),
        log: (line) => console.log(line),
    }).then(
        (result) => {
            console.log(soakSummary(result));
            process.exitCode = result.problems.length === 0 ? 0 : 1;
        },
        (error) => {
            console.error(`soak: ${error instanceof Error ? error.message : String(error)}`);
            process.exitCode = 1;
        },
    );
}
