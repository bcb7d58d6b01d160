// Fan-out benchmark: queue 10,000 frames through submitJob (the real code path: validation, HeadObject,
// manifest, SendMessageBatch in parallel) and, in the same run, through one SendMessage per frame in
// sequence (the simplest way to queue them, the baseline), both against the embedded emulator over HTTP.
// The emulator runs in a child process, so that its work does not share this process's one thread with
// the client's: one process would measure the sum of both sides' CPU rather than the fan-out.
// On loopback a request costs only CPU, whereas a Lambda sending one message per frame waits a network
// round trip to SQS for every frame. So the run is made twice: on loopback, and through a proxy that adds
// SQS's in-region round trip (a few ms) to every request; the last line reports the latter.
// `--smoke` (run by tests/benchmarks.test.ts in npm test): 200 frames, one run each, so a broken benchmark fails CI.
import * as childProcess from "child_process";
import * as net from "net";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, PurgeQueueCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import * as fs from "fs";
import { ENGINES } from "../functions/shared/contract";
import { SEND_CONCURRENCY, sendFrameMessages } from "../functions/jobApi/frameQueueing";
import { frameMessageOf } from "../functions/shared/contract/frameMessage";
import { JobApiDeps } from "../functions/jobApi/settings";
import { submitJob } from "../functions/jobApi/submit";
import { jobLedger } from "../functions/shared/ledger";
import { createFarmResources, emulatorClients, startEmulator } from "../local/emulator";
import { makeScene } from "../tests/support/scenes";

const SMOKE = process.argv.includes("--smoke");
const FRAMES = SMOKE ? 200 : 10000;
const RUNS = SMOKE ? [1] : [1, 2, 3];
const SCENE = "bench/shot.blend";
const ASSETS = ["bench/textures/wood.png", "bench/textures/metal.png"];

function seconds(startNs: bigint): number {
    return Number(process.hrtime.bigint() - startNs) / 1e9;
}

/** A round trip's worth of network latency: both directions' bytes are delayed by half of it, in order. */
function startLatencyProxy(target: URL, roundTripMs: number): Promise<string> {
    const delayed = (from: net.Socket, to: net.Socket) => {
        from.on("data", (chunk) => setTimeout(() => to.writable && to.write(chunk), roundTripMs / 2));
        from.on("end", () => setTimeout(() => to.end(), roundTripMs / 2));
        from.on("error", () => to.destroy());
    };
    const server = net.createServer((client) => {
        const upstream = net.connect(Number(target.port), target.hostname);
        delayed(client, upstream);
        delayed(upstream, client);
    });
    // The emulator's own port on another loopback address: it answers only requests made to its port (the Host).
    return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(Number(target.port), "127.0.0.2", () => resolve(`http://127.0.0.2:${target.port}`));
    });
}

/** Child side: start the emulator (behind the latency proxy when asked), report its endpoint, run until the parent goes away. */
async function serveEmulator(roundTripMs: number): Promise<void> {
    const emulator = await startEmulator({ port: 0 });
    const endpoint =
        roundTripMs > 0 ? await startLatencyProxy(new URL(emulator.endpoint), roundTripMs) : emulator.endpoint;
    process.send!({ endpoint, region: emulator.region, credentials: emulator.credentials });
    process.on("disconnect", () => void emulator.stop().then(() => process.exit(0)));
}

/** Parent side: the emulator in a child process, and clients pointed at it. */
async function emulatorInChildProcess(roundTripMs: number) {
    const child = childProcess.fork(__filename, ["--serve-emulator", String(roundTripMs)], {
        execArgv: ["-r", "ts-node/register/transpile-only"],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const started = await new Promise<{
        endpoint: string;
        region: string;
        credentials: { accessKeyId: string; secretAccessKey: string };
    }>((resolve, reject) => {
        child.once("message", (message) => resolve(message as never));
        child.once("exit", (code) => reject(new Error(`the emulator process exited with code ${code}`)));
    });
    const clients = emulatorClients(started.endpoint, started.region, started.credentials);
    return {
        ...started,
        ...clients,
        async stop() {
            clients.s3.destroy();
            clients.sqs.destroy();
            const exited = new Promise((resolve) => child.once("exit", resolve));
            child.disconnect();
            await exited;
        },
    };
}

/** SQS's in-region request round trip as a Lambda sees it: a few milliseconds. */
const SQS_ROUND_TRIP_MS = 5;

async function main(): Promise<void> {
    await measure(0);
    await measure(SQS_ROUND_TRIP_MS);
}

/** One whole comparison with `roundTripMs` of network latency on every request. */
async function measure(roundTripMs: number): Promise<void> {
    const emulator = await emulatorInChildProcess(roundTripMs);
    const network =
        roundTripMs > 0
            ? `a simulated ${roundTripMs} ms network round trip per request`
            : "loopback (no network latency: CPU-bound)";
    console.log(`\n== emulator (fauxqs, its own process) at ${emulator.endpoint}, over ${network}`);
    try {
        const farm = await createFarmResources(emulator, {
            name: `bench-${roundTripMs}`,
            maxReceiveCount: 3,
            visibilityTimeoutSeconds: 5400,
        });
        // A real .blend: the job API's preflight reads the scene before it queues anything.
        const scene = await makeScene({ frames: "1-4" });
        await emulator.s3.send(
            new PutObjectCommand({ Bucket: farm.scenesBucket, Key: SCENE, Body: fs.readFileSync(scene.blendPath) }),
        );
        for (const key of ASSETS)
            await emulator.s3.send(new PutObjectCommand({ Bucket: farm.scenesBucket, Key: key, Body: key }));
        const deps: JobApiDeps = {
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: {
                scenesBucket: farm.scenesBucket,
                rendersBucket: farm.rendersBucket,
                frameQueueUrl: farm.frameQueueUrl,
                limits: { maxFrames: FRAMES, maxResolution: 16384, allowedEngines: [...ENGINES] },
                maxReceiveCount: 3,
            },
        };
        const queued = async (): Promise<number> => {
            const { Attributes } = await emulator.sqs.send(
                new GetQueueAttributesCommand({
                    QueueUrl: farm.frameQueueUrl,
                    AttributeNames: ["ApproximateNumberOfMessages"],
                }),
            );
            return Number(Attributes!.ApproximateNumberOfMessages);
        };
        const purge = () => emulator.sqs.send(new PurgeQueueCommand({ QueueUrl: farm.frameQueueUrl }));
        const expect = async (what: string) => {
            const count = await queued();
            if (count !== FRAMES) throw new Error(`${what} left ${count} messages in the queue, expected ${FRAMES}`);
        };

        // Warm the connections and both sides' code paths (JIT) so the measured run pays for neither.
        const warmUp = await submitJob(deps, { scene: SCENE, assets: ASSETS, frames: `1-${FRAMES}`, jobId: "warm-up" });
        if (warmUp.status !== 202)
            throw new Error(`submitJob answered ${warmUp.status}: ${JSON.stringify(warmUp.body)}`);
        await purge();
        for (let frame = 1; frame <= (roundTripMs > 0 ? 50 : 500); frame++)
            await emulator.sqs.send(
                new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: `{"warm-up":${frame}}` }),
            );
        await purge();

        // Three runs (one when smoke testing), each a new job, and the median: the machine may be busy with other work.
        const runs: number[] = [];
        let start = process.hrtime.bigint();
        for (const run of RUNS) {
            await purge();
            start = process.hrtime.bigint();
            const reply = await submitJob(deps, {
                scene: SCENE,
                assets: ASSETS,
                frames: `1-${FRAMES}`,
                engine: "CYCLES",
                samples: 64,
                format: "PNG",
                jobId: `fanout-${run}`,
            });
            const took = seconds(start);
            if (reply.status !== 202)
                throw new Error(`submitJob answered ${reply.status}: ${JSON.stringify(reply.body)}`);
            await expect("submitJob");
            runs.push(took);
            console.log(
                `submitJob run ${run}: ${FRAMES} frames in ${took.toFixed(3)} s (${Math.round(FRAMES / took)} frames/s; SendMessageBatch x10, ${SEND_CONCURRENCY} calls in flight)`,
            );
        }
        const batched = [...runs].sort((a, b) => a - b)[Math.floor(runs.length / 2)];

        const manifest = (await jobLedger(deps.s3, farm.rendersBucket).readManifest("fanout-1"))!;
        const messages = manifest.frames.map((frame) => frameMessageOf(manifest, farm.rendersBucket, frame));
        console.log(`frame message: ${Buffer.byteLength(JSON.stringify(messages[0]))} bytes`);
        for (const concurrency of roundTripMs > 0 || SMOKE ? [SEND_CONCURRENCY] : [1, 8, 16, 32, 64]) {
            await purge();
            start = process.hrtime.bigint();
            const result = await sendFrameMessages(deps.sqs, farm.frameQueueUrl, messages, concurrency);
            const took = seconds(start);
            if (result.notSent.length > 0) throw new Error(`${result.notSent.length} messages not sent`);
            await expect(`sendFrameMessages at concurrency ${concurrency}`);
            console.log(
                `  sendFrameMessages only, ${String(concurrency).padStart(2)} batch calls in flight: ${took.toFixed(3)} s (${Math.round(FRAMES / took)} frames/s)`,
            );
        }
        await purge();

        start = process.hrtime.bigint();
        for (const message of messages) {
            await emulator.sqs.send(
                new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: JSON.stringify(message) }),
            );
        }
        const sequential = seconds(start);
        await expect("the sequential baseline");
        await purge();
        console.log(
            `sequential baseline: ${FRAMES} x SendMessage in ${sequential.toFixed(3)} s (${Math.round(FRAMES / sequential)} frames/s)`,
        );

        console.log(
            `submitJob median of ${runs.length}: ${batched.toFixed(3)} s; the sequential baseline costs ${((sequential / FRAMES) * 1000).toFixed(3)} ms per frame`,
        );
        console.log(`API Gateway's limit is 29 s: ${FRAMES} frames took ${((batched / 29) * 100).toFixed(1)} % of it`);
        const label = roundTripMs > 0 ? "fanout" : "fanout on loopback";
        console.log(
            `${label}: ${FRAMES} frames in ${batched.toFixed(2)} s, ${(sequential / batched).toFixed(1)}× the sequential baseline`,
        );
    } finally {
        await emulator.stop();
    }
}

(process.argv.includes("--serve-emulator")
    ? serveEmulator(Number(process.argv[process.argv.indexOf("--serve-emulator") + 1]))
    : main()
).catch((error) => {
    console.error(`fanout benchmark failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
});
