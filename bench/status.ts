// Status benchmark: GET /jobs/{jobId} of a 100,000-frame job with 2,000 failed frames (each with a 4 KB log tail),
// through the job API's handler against the embedded emulator over HTTP, and in the same run the baseline: the job's
// status from every frame record (one ListObjectsV2 per 1,000 keys, one GetObject per record, every failure in one
// reply), the naive way: no frame summary.
// The emulator runs in a child process, so its work does not share this process's thread with the client's; the job
// is laid down in the emulator's store directly (records, summary shards, manifest, queue progress: the objects a
// renderer and the job API would have written), which takes seconds instead of 100,000 PutObject round trips.
// Target: a reply under 1 MB in under 5 s. `--smoke` (tests/benchmarks.test.ts): 2,000 frames, 40 failed.
import * as childProcess from "child_process";
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import {
    FrameRecord,
    frameRecordKey,
    JobManifest,
    JobStatus,
    MANIFEST_VERSION,
    manifestKey,
    queueProgressKey,
    summaryShardKey,
} from "../functions/shared/contract";
import { createJobApiHandler } from "../functions/jobApi/handler";
import { JobApiSettings } from "../functions/jobApi/settings";
import { shardsFromRecords } from "../functions/shared/frameSummary";
import { computeJobStatus } from "../functions/shared/jobStatus";
import { jobLedger } from "../functions/shared/ledger";
import { newDispatch } from "../functions/shared/queueProgress";
import { createFarmResources, emulatorClients, startEmulator } from "../local/emulator";

const SMOKE = process.argv.includes("--smoke");
const FRAMES = SMOKE ? 2_000 : 100_000;
const FAILED = SMOKE ? 40 : 2_000;
const RUNS = SMOKE ? 1 : 3;
const JOB_ID = "status-bench";
const TARGET_BYTES = 1024 * 1024;
const TARGET_SECONDS = 5;
const LOG_TAIL = `${"Fra:1 Mem:812.00M (Peak 1024.00M) | Time:00:14.21 | Sample 12/64\n".repeat(70)}`.slice(-4096);

function seconds(startNs: bigint): number {
    return Number(process.hrtime.bigint() - startNs) / 1e9;
}

/** The job as its renderers and the job API leave it: failures spread over the frame range. */
function jobObjects(rendersBucket: string): { key: string; body: string }[] {
    const frames = Array.from({ length: FRAMES }, (_, i) => i + 1);
    const createdAt = "2030-01-01T00:00:00.000Z";
    const manifest: JobManifest = {
        v: MANIFEST_VERSION,
        jobId: JOB_ID,
        request: { scene: "bench/shot.blend", assets: [], frames: `1-${FRAMES}`, format: "PNG", jobId: JOB_ID },
        requestHash: "0".repeat(64),
        frames,
        scenesBucket: "bench-scenes",
        sceneEtag: `"${"1".repeat(32)}"`,
        settings: { format: "PNG" },
        outputPrefix: `renders/${JOB_ID}/`,
        createdAt,
    };
    const every = Math.floor(FRAMES / FAILED);
    const records: FrameRecord[] = frames.map((frame) => {
        const started = new Date(Date.parse(createdAt) + frame * 1000).toISOString();
        const finished = new Date(Date.parse(createdAt) + frame * 1000 + 60_000).toISOString();
        const failed = frame % every === 0;
        return {
            jobId: JOB_ID,
            frame,
            status: failed ? "failed" : "done",
            attempts: failed ? 3 : 1,
            startedAt: started,
            finishedAt: finished,
            wallMs: 60_000,
            blenderMs: 58_000,
            renderSeconds: 57.5,
            memoryMb: 10240,
            costUsd: 0.01,
            ...(failed
                ? { error: { code: "blender_failed", message: "Blender exited with code 1" }, logTail: LOG_TAIL }
                : {
                      output: {
                          bucket: rendersBucket,
                          key: `renders/${JOB_ID}/frame_${String(frame).padStart(4, "0")}.png`,
                      },
                      logTail: "Saved: frame\n",
                  }),
        };
    });
    const dispatch = { ...newDispatch(JOB_ID, "submit", frames, undefined, new Date(createdAt)), sent: FRAMES };
    return [
        { key: manifestKey(JOB_ID), body: JSON.stringify(manifest, null, 1) },
        { key: queueProgressKey(JOB_ID), body: JSON.stringify({ ...dispatch, complete: true }, null, 1) },
        ...records.map((record) => ({
            key: frameRecordKey(JOB_ID, record.frame),
            body: JSON.stringify(record, null, 1),
        })),
        ...shardsFromRecords(JOB_ID, records).map((shard) => ({
            key: summaryShardKey(JOB_ID, shard.shard),
            body: JSON.stringify(shard),
        })),
    ];
}

/** Child side: the emulator with the farm's buckets and the job laid down; reports where it listens. */
async function serveEmulator(): Promise<void> {
    const emulator = await startEmulator({ port: 0 });
    const farm = await createFarmResources(emulator, {
        name: "bench",
        maxReceiveCount: 3,
        visibilityTimeoutSeconds: 5400,
    });
    const objects = jobObjects(farm.rendersBucket);
    emulator.putObjectsDirectly(farm.rendersBucket, objects);
    process.send!({
        endpoint: emulator.endpoint,
        region: emulator.region,
        credentials: emulator.credentials,
        farm,
        objects: objects.length,
    });
    process.on("disconnect", () => void emulator.stop().then(() => process.exit(0)));
}

/** A client pair that counts the requests it sends. */
function countedClients(started: {
    endpoint: string;
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string };
}) {
    const counter = { requests: 0 };
    const { s3, sqs } = emulatorClients(started.endpoint, started.region, started.credentials);
    for (const client of [s3, sqs] as S3Client[])
        client.middlewareStack.add(
            (next) => async (args) => {
                counter.requests++;
                return next(args);
            },
            { step: "initialize", name: "countRequests" },
        );
    return { s3, sqs: sqs as SQSClient, counter };
}

async function main(): Promise<void> {
    const child = childProcess.fork(__filename, ["--serve-emulator", ...(SMOKE ? ["--smoke"] : [])], {
        execArgv: ["-r", "ts-node/register/transpile-only"],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const laying = process.hrtime.bigint();
    const started = await new Promise<{
        endpoint: string;
        region: string;
        credentials: { accessKeyId: string; secretAccessKey: string };
        farm: { scenesBucket: string; rendersBucket: string; frameQueueUrl: string; deadLetterQueueUrl: string };
        objects: number;
    }>((resolve, reject) => {
        child.once("message", (message) => resolve(message as never));
        child.once("exit", (code) => reject(new Error(`the emulator process exited with code ${code}`)));
    });
    console.log(
        `emulator (fauxqs, its own process) at ${started.endpoint}: job ${JOB_ID} laid down as ${started.objects} objects in ${seconds(laying).toFixed(1)} s`,
    );
    const { s3, sqs, counter } = countedClients(started);
    try {
        const settings: JobApiSettings = {
            ...started.farm,
            limits: { maxFrames: 100_000, maxResolution: 8192, allowedEngines: ["CYCLES"] },
            maxReceiveCount: 3,
        };
        const handler = createJobApiHandler({ s3, sqs, settings });
        const get = async (query = "") => {
            const result = await handler({
                rawPath: `/jobs/${JOB_ID}`,
                rawQueryString: query,
                requestContext: { http: { method: "GET", path: `/jobs/${JOB_ID}` } },
            });
            if (result.statusCode !== 200)
                throw new Error(`GET /jobs/${JOB_ID} answered ${result.statusCode}: ${result.body}`);
            return result.body;
        };
        await get(); // warm the connections and the code paths

        const runs: { seconds: number; bytes: number; requests: number }[] = [];
        let body = "";
        for (let run = 1; run <= RUNS; run++) {
            const before = counter.requests;
            const start = process.hrtime.bigint();
            body = await get();
            runs.push({ seconds: seconds(start), bytes: Buffer.byteLength(body), requests: counter.requests - before });
            console.log(
                `summary run ${run}: ${runs[run - 1].seconds.toFixed(3)} s, ${runs[run - 1].bytes} bytes, ${runs[run - 1].requests} S3 requests`,
            );
        }
        const status = JSON.parse(body) as JobStatus;
        if (status.frames.total !== FRAMES || status.frames.failed !== FAILED || status.failures.length === 0)
            throw new Error(`unexpected status: ${JSON.stringify(status.frames)}`);
        const median = [...runs].sort((a, b) => a.seconds - b.seconds)[Math.floor(runs.length / 2)];
        if (status.failuresNext) {
            const nextStart = process.hrtime.bigint();
            const next = JSON.parse(await get(`failures=${encodeURIComponent(status.failuresNext)}`)) as JobStatus;
            const shown = next.failures.map((failure) => failure.frame);
            console.log(
                `  the next page of failures (frames ${shown[0]}…${shown[shown.length - 1]}): ${seconds(nextStart).toFixed(3)} s`,
            );
        }

        // The baseline: every record read, every failure in the reply.
        const before = counter.requests;
        const start = process.hrtime.bigint();
        const ledger = jobLedger(s3, settings.rendersBucket);
        const manifest = (await ledger.readManifest(JOB_ID))!;
        const records = await ledger.readFrameRecords(JOB_ID);
        const baselineBody = JSON.stringify(computeJobStatus(manifest, records, settings.maxReceiveCount));
        const baseline = {
            seconds: seconds(start),
            bytes: Buffer.byteLength(baselineBody),
            requests: counter.requests - before,
        };
        const baselineStatus = JSON.parse(baselineBody) as JobStatus;
        if (baselineStatus.frames.failed !== FAILED || baselineStatus.frames.done !== status.frames.done)
            throw new Error("the baseline and the summary disagree on the counts");
        console.log(
            `baseline (every record read): ${baseline.seconds.toFixed(3)} s, ${baseline.bytes} bytes${baseline.bytes > 6 * 1024 * 1024 ? " (over Lambda's 6 MB reply limit)" : ""}, ${baseline.requests} S3 requests`,
        );

        const kb = (bytes: number) => `${Math.round(bytes / 1024)} KB`;
        const verdict = median.bytes < TARGET_BYTES && median.seconds < TARGET_SECONDS;
        console.log(
            `targets: reply ${kb(median.bytes)} (under ${kb(TARGET_BYTES)}: ${median.bytes < TARGET_BYTES ? "yes" : "NO"}), ${median.seconds.toFixed(2)} s (under ${TARGET_SECONDS} s: ${median.seconds < TARGET_SECONDS ? "yes" : "NO"})`,
        );
        console.log(
            `status: ${FRAMES} frames, ${FAILED} failed, in ${median.seconds.toFixed(2)} s and ${kb(median.bytes)}; the baseline ${baseline.seconds.toFixed(2)} s and ${kb(baseline.bytes)} (${(baseline.seconds / median.seconds).toFixed(1)}× the time, ${(baseline.bytes / median.bytes).toFixed(1)}× the bytes)`,
        );
        if (!SMOKE && !verdict) process.exitCode = 1;
    } finally {
        s3.destroy();
        sqs.destroy();
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.disconnect();
        await exited;
    }
}

(process.argv.includes("--serve-emulator") ? serveEmulator() : main()).catch((error) => {
    console.error(`status benchmark failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
});
