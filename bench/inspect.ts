// .blend reader benchmark: a generated scene of more than 200 MB (one dense, noisy mesh), uncompressed and
// zstd-compressed, read from the S3 emulator the way the job API's preflight reads it (GetObject stream ->
// decompress -> walk blocks). Three processes, so each number is only what it claims to be: the emulator
// (holding the objects), this one (uploading), and a fresh inspector per run whose peak memory is measured.
// `--smoke` (run by tests/benchmarks.test.ts in npm test): a small scene and one run, so a broken benchmark fails CI;
// its memory figure is printed but not judged (a few MiB of .blend are within the process's own noise).
import * as childProcess from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
    CompleteMultipartUploadCommand,
    CreateBucketCommand,
    CreateMultipartUploadCommand,
    GetObjectCommand,
    PutObjectCommand,
    S3Client,
    UploadPartCommand,
} from "@aws-sdk/client-s3";
import { readBlendStream } from "../functions/blend";
import { emulatorClients, startEmulator } from "../local/emulator";
import { BLENDER, runBlenderScript } from "../tests/support/scenes";

const SCRIPT = path.join(__dirname, "..", "tests", "fixtures", "make_big_scene.py");
const BUCKET = "bench-inspect-scenes";
const MiB = 1024 * 1024;
const SMOKE = process.argv.includes("--smoke");
/** Grid subdivisions of the generated mesh: 1500 gives a .blend over 200 MiB. */
const SUBDIVISIONS = SMOKE ? 200 : 1500;
const MIN_SCENE_BYTES = SMOKE ? 1 * MiB : 200 * MiB;
const RUNS = SMOKE ? 1 : 3;

interface Endpoint {
    endpoint: string;
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string };
}

interface InspectResult {
    key: string;
    compression: string;
    decompressedBytes: number;
    seconds: number;
    baselineRss: number;
    peakRss: number;
    peakHeap: number;
    frames: string;
}

/** The scene files, generated once per version of the script and cached under the OS temp dir. */
async function bigScene(): Promise<{ plain: string; zstd: string }> {
    const key = crypto
        .createHash("sha256")
        .update(fs.readFileSync(SCRIPT))
        .update(String(SUBDIVISIONS))
        .digest("hex")
        .slice(0, 16);
    const dir = path.join(os.tmpdir(), "render-farm-bench-inspect", key);
    const files = { plain: path.join(dir, "big.blend"), zstd: path.join(dir, "big-zstd.blend") };
    if (!fs.existsSync(path.join(dir, ".complete"))) {
        console.log(`generating the scene with ${BLENDER} (once; cached in ${dir}) ...`);
        await runBlenderScript(SCRIPT, ["--out-dir", dir, "--subdivisions", String(SUBDIVISIONS)], {
            timeoutMs: 600_000,
        });
        fs.writeFileSync(path.join(dir, ".complete"), "");
    }
    return files;
}

function fork(args: string[]): childProcess.ChildProcess {
    return childProcess.fork(__filename, args, {
        execArgv: ["-r", "ts-node/register/transpile-only"],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
}

function firstMessage<T>(child: childProcess.ChildProcess): Promise<T> {
    return new Promise((resolve, reject) => {
        child.once("message", (message) => resolve(message as T));
        child.once("exit", (code) => reject(new Error(`child process exited with code ${code} before reporting`)));
    });
}

/** Child: the emulator, until the parent goes away. */
async function serveEmulator(): Promise<void> {
    const emulator = await startEmulator({ port: 0 });
    process.send!({ endpoint: emulator.endpoint, region: emulator.region, credentials: emulator.credentials });
    process.on("disconnect", () => void emulator.stop().then(() => process.exit(0)));
}

/** Child: one inspection of one key, its memory sampled every 5 ms; the baseline is taken once the S3 client is warm. */
async function inspect(key: string, target: Endpoint): Promise<void> {
    const { s3 } = emulatorClients(target.endpoint, target.region, target.credentials);
    await s3
        .send(new GetObjectCommand({ Bucket: BUCKET, Key: "warm-up.txt" }))
        .then((reply) => reply.Body!.transformToString());
    global.gc?.();
    const baselineRss = process.memoryUsage().rss;
    let peakRss = baselineRss;
    let peakHeap = 0;
    const sample = () => {
        const usage = process.memoryUsage();
        peakRss = Math.max(peakRss, usage.rss);
        peakHeap = Math.max(peakHeap, usage.heapUsed + usage.arrayBuffers);
    };
    const timer = setInterval(sample, 5);
    const started = process.hrtime.bigint();
    const object = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    const summary = await readBlendStream(object.Body as AsyncIterable<Uint8Array>, key);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    sample();
    clearInterval(timer);
    peakRss = Math.max(peakRss, process.resourceUsage().maxRSS * 1024);
    const scene = summary.scenes.find((candidate) => candidate.name === summary.activeScene)!;
    const result: InspectResult = {
        key,
        compression: summary.compression,
        decompressedBytes: summary.bytes,
        seconds,
        baselineRss,
        peakRss,
        peakHeap,
        frames: `${scene.frameStart}-${scene.frameEnd}x${scene.frameStep}`,
    };
    process.send!(result);
    process.disconnect();
}

/** Multipart upload, 8 MiB a part: the emulator takes at most 11 MiB in one request, as S3 takes 5 GiB. */
async function uploadInParts(s3: S3Client, key: string, file: string): Promise<void> {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
    const parts: { ETag: string; PartNumber: number }[] = [];
    const handle = fs.openSync(file, "r");
    try {
        const buffer = Buffer.alloc(8 * MiB);
        for (let partNumber = 1; ; partNumber++) {
            const read = fs.readSync(handle, buffer, 0, buffer.length, null);
            if (read === 0) break;
            const part = await s3.send(
                new UploadPartCommand({
                    Bucket: BUCKET,
                    Key: key,
                    UploadId,
                    PartNumber: partNumber,
                    Body: buffer.subarray(0, read),
                }),
            );
            parts.push({ ETag: part.ETag!, PartNumber: partNumber });
        }
    } finally {
        fs.closeSync(handle);
    }
    await s3.send(
        new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId, MultipartUpload: { Parts: parts } }),
    );
}

async function main(): Promise<void> {
    const files = await bigScene();
    const emulatorProcess = fork(["--serve-emulator"]);
    const target = await firstMessage<Endpoint>(emulatorProcess);
    const { s3 } = emulatorClients(target.endpoint, target.region, target.credentials);
    const rows: string[] = [];
    let failed = false;
    try {
        await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
        await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "warm-up.txt", Body: "warm" }));
        for (const [key, file] of [
            ["big.blend", files.plain],
            ["big-zstd.blend", files.zstd],
        ] as const) {
            const size = fs.statSync(file).size;
            await uploadInParts(s3, key, file);
            // Three runs (one when smoke testing), each in a fresh process; the median time and the largest peak are reported.
            const results: InspectResult[] = [];
            for (let run = 0; run < RUNS; run++) {
                const inspector = fork(["--inspect", key, JSON.stringify(target)]);
                results.push(await firstMessage<InspectResult>(inspector));
                await new Promise((resolve) => inspector.once("exit", resolve));
            }
            const median = [...results].sort((a, b) => a.seconds - b.seconds)[Math.floor(results.length / 2)];
            const peakRss = Math.max(...results.map((result) => result.peakRss));
            const overBaseline = Math.max(...results.map((result) => result.peakRss - result.baselineRss));
            const peakHeap = Math.max(...results.map((result) => result.peakHeap));
            if (median.decompressedBytes < MIN_SCENE_BYTES)
                throw new Error(
                    `${key} is only ${median.decompressedBytes} bytes decompressed; the benchmark needs at least ${MIN_SCENE_BYTES}`,
                );
            // "Far below the file size": the reader's own memory (peak over the warm baseline) under a quarter of the .blend.
            if (!SMOKE && overBaseline > median.decompressedBytes / 4) failed = true;
            rows.push(
                `${key.padEnd(15)} ${median.compression.padEnd(5)} file ${(size / MiB).toFixed(1).padStart(6)} MiB, .blend ${(median.decompressedBytes / MiB).toFixed(1).padStart(6)} MiB | ` +
                    `${median.seconds.toFixed(2).padStart(5)} s (${(median.decompressedBytes / MiB / median.seconds).toFixed(0)} MiB/s of .blend) | ` +
                    `peak RSS ${(peakRss / MiB).toFixed(0)} MiB = +${(overBaseline / MiB).toFixed(0)} MiB over the warm process (${((overBaseline / median.decompressedBytes) * 100).toFixed(0)} % of the .blend), JS heap+buffers ${(peakHeap / MiB).toFixed(0)} MiB | ` +
                    `scene frames ${median.frames}`,
            );
        }
    } finally {
        s3.destroy();
        emulatorProcess.disconnect();
    }
    console.log(
        `\n.blend inspection from the S3 emulator (median of ${RUNS} run(s), each in a fresh process; ${os.cpus().length} CPUs):`,
    );
    for (const row of rows) console.log(`  ${row}`);
    if (failed) throw new Error("the reader's peak memory passed a quarter of the .blend's size");
}

const argv = process.argv;
const entry = argv.includes("--serve-emulator")
    ? serveEmulator()
    : argv.includes("--inspect")
      ? inspect(argv[argv.indexOf("--inspect") + 1], JSON.parse(argv[argv.indexOf("--inspect") + 2]) as Endpoint)
      : main();
entry.catch((error) => {
    console.error(`inspect benchmark failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
});
