// The renderer's way out: frames streamed to S3 in parts (never read whole into memory), and S3 connections
// that hang are given up after the clients' timeouts and retried, instead of holding the frame to its deadline.
// Real Blender, the emulator over HTTP, a fault-injecting proxy between the renderer and S3.
import * as assert from "assert";
import * as childProcess from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { SQSRecord } from "aws-lambda";
import {
    FRAME_MESSAGE_VERSION,
    FrameMessage,
    FrameRecord,
    Format,
    frameOutputKey,
    frameRecordKey,
} from "../functions/shared/contract";
import { createRendererHandler } from "../functions/renderer/consumer";
import { RENDERER_CLIENT_TIMEOUTS } from "../functions/renderer/handler";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { createLocalRenderer, LocalRenderer, localRendererSettings } from "../local/localRenderer";
import { FaultProxy, ProxiedRequest, startFaultProxy } from "./support/faultProxy";
import { sqsRecordOf } from "./support/sqsRecords";
import { LOADED_MACHINE_MARGIN_MS } from "./support/timing";
import { BLENDER, makeScene } from "./support/scenes";

const MIB = 1024 * 1024;
/** S3's smallest part, and the test's part size: a frame of a few MiB goes up in several parts. */
const PART_BYTES = 5 * MIB;

function sqsRecord(message: FrameMessage): SQSRecord {
    return sqsRecordOf(message, "frame-upload-frames");
}

/** Rejects if `promise` has not settled in `ms`: what a hung request would otherwise do to the test. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout;
    return Promise.race([
        promise.finally(() => clearTimeout(timer)),
        new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${what} still running after ${ms / 1000} s`)), ms);
        }),
    ]);
}

describe("frame upload: streamed in parts, and hung S3 connections timed out", function () {
    let emulator: Emulator;
    let resources: FarmResources;
    let proxy: FaultProxy;
    const closers: (() => unknown)[] = [];

    before(async function () {
        emulator = await startEmulator();
        resources = await createFarmResources(emulator, {
            name: "frame-upload",
            maxReceiveCount: 3,
            visibilityTimeoutSeconds: 120,
        });
        proxy = await startFaultProxy(emulator.endpoint);
    });

    afterEach(function () {
        proxy.setRule(undefined);
    });

    after(async function () {
        for (const close of closers) await close();
        await proxy?.close();
        await emulator?.stop();
    });

    async function frameMessage(jobId: string, blendPath: string, format: Format): Promise<FrameMessage> {
        const scene = `shots/${jobId}/scene.blend`;
        const put = await emulator.s3.send(
            new PutObjectCommand({ Bucket: resources.scenesBucket, Key: scene, Body: fs.readFileSync(blendPath) }),
        );
        return {
            v: FRAME_MESSAGE_VERSION,
            jobId,
            frame: 1,
            scene,
            sceneEtag: put.ETag!,
            assets: [],
            settings: { format },
            output: { bucket: resources.rendersBucket, key: frameOutputKey(jobId, 1, format) },
        };
    }

    async function readObject(key: string): Promise<Buffer> {
        const object = await emulator.s3.send(new GetObjectCommand({ Bucket: resources.rendersBucket, Key: key }));
        return Buffer.from(await object.Body!.transformToByteArray());
    }

    async function frameRecord(jobId: string): Promise<FrameRecord> {
        return JSON.parse((await readObject(frameRecordKey(jobId, 1))).toString("utf8"));
    }

    function requestsFor(key: string): ProxiedRequest[] {
        return proxy.requests.filter((request) => request.key === key);
    }

    it("a frame bigger than a part goes up as a multipart upload, one part retried after a cut, and S3 holds the whole frame", async function () {
        // Cycles at 1 sample: noise, so the EXR does not compress below a few parts.
        const { blendPath } = await makeScene({
            frames: "1",
            engine: "CYCLES",
            samples: 1,
            resolutionX: 1280,
            resolutionY: 960,
        });
        const message = await frameMessage("multipart", blendPath, "OPEN_EXR");
        const frameKey = message.output.key;
        const s3 = new S3Client({
            endpoint: proxy.url,
            region: emulator.region,
            credentials: emulator.credentials,
            forcePathStyle: true,
        });
        closers.push(() => s3.destroy());
        const renderer = createRendererHandler({
            s3,
            sqs: emulator.sqs,
            settings: {
                ...localRendererSettings({
                    resources,
                    maxReceiveCount: 3,
                    failureBackoffSeconds: 1,
                    blenderPath: BLENDER,
                    workDir: fs.mkdtempSync(path.join(os.tmpdir(), "frame-upload-")),
                    workers: 1,
                }),
            },
            frameUpload: { partBytes: PART_BYTES, partsInFlight: 2 },
        });
        closers.push(() => renderer.close());
        // The second part's first attempt dies half-way through its body.
        let cut = false;
        proxy.setRule((request) => {
            if (cut || request.key !== frameKey || request.operation !== "UploadPart") return undefined;
            const earlierParts = requestsFor(frameKey).filter((seen) => seen.operation === "UploadPart").length;
            if (earlierParts < 1) return undefined;
            cut = true;
            return "cut-request";
        });

        const reply = await within(240_000, "the frame", renderer({ Records: [sqsRecord(message)] }));
        assert.deepStrictEqual(reply.batchItemFailures, []);
        const record = await frameRecord("multipart");
        assert.deepStrictEqual([record.status, record.attempts], ["done", 1], JSON.stringify(record));

        const frame = await readObject(frameKey);
        assert.ok(frame.length > PART_BYTES, `the frame is ${frame.length} bytes, more than one part`);
        assert.strictEqual(frame.readUInt32LE(0), 20000630, "the object is an OpenEXR file (its magic number)");
        const requests = requestsFor(frameKey);
        const operations = requests.map((request) => request.operation);
        assert.ok(!operations.includes("PutObject"), `no single PutObject of the frame: ${operations.join(", ")}`);
        assert.strictEqual(operations[0], "CreateMultipartUpload", operations.join(", "));
        assert.strictEqual(operations.at(-1), "CompleteMultipartUpload", operations.join(", "));
        const parts = requests.filter((request) => request.operation === "UploadPart");
        const expectedParts = Math.ceil(frame.length / PART_BYTES);
        assert.strictEqual(parts.filter((part) => part.fault === "cut-request").length, 1, "one part was cut");
        assert.strictEqual(parts.length, expectedParts + 1, `${expectedParts} parts and one retry`);
        const sent = parts.filter((part) => !part.fault).map((part) => part.bodyBytes ?? 0);
        assert.ok(
            sent.every((bytes) => bytes <= PART_BYTES + 64 * 1024),
            `every part body is about ${PART_BYTES} bytes at most: ${sent.join(", ")}`,
        );
        console.log(
            `      ${frame.length} bytes in ${expectedParts} parts of ${PART_BYTES} (part bodies ${sent.join(", ")})`,
        );
    });

    it("a frame upload whose connection hangs (no reply) is given up after the clients' idle timeout and retried: done on the first attempt", async function () {
        const { blendPath } = await makeScene({ frames: "1", resolutionX: 64, resolutionY: 48, samples: 4 });
        const message = await frameMessage("hung-upload", blendPath, "PNG");
        const frameKey = message.output.key;
        // The local farm's renderer: the same client retry and timeouts as the renderer Lambda's (handler.ts).
        const renderer: LocalRenderer = createLocalRenderer({
            endpoint: proxy.url,
            region: emulator.region,
            credentials: emulator.credentials,
            settings: localRendererSettings({
                resources,
                maxReceiveCount: 3,
                failureBackoffSeconds: 1,
                blenderPath: BLENDER,
                workDir: fs.mkdtempSync(path.join(os.tmpdir(), "frame-upload-")),
                workers: 1,
            }),
        });
        closers.push(() => renderer.close());
        proxy.setRule((request) =>
            request.key === frameKey && requestsFor(frameKey).length === 0 ? "hang" : undefined,
        );

        // Without a timeout the hung PUT would wait for the frame's deadline (900 s here, Lambda's maximum).
        const reply = await within(90_000, "the frame", renderer.handle({ Records: [sqsRecord(message)] }));
        assert.deepStrictEqual(reply?.batchItemFailures, []);
        const record = await frameRecord("hung-upload");
        assert.deepStrictEqual([record.status, record.attempts], ["done", 1], JSON.stringify(record));
        const uploads = requestsFor(frameKey);
        assert.deepStrictEqual(
            uploads.map((request) => [request.operation, request.fault]),
            [
                ["PutObject", "hang"],
                ["PutObject", undefined],
            ],
        );
        // Given up once the connection was idle for the clients' socket timeout, then retried at once.
        const idleMs = RENDERER_CLIENT_TIMEOUTS.requestHandler.socketTimeout;
        const gapMs = uploads[1].at - uploads[0].at;
        assert.ok(
            gapMs >= idleMs - 1000 && gapMs < idleMs + LOADED_MACHINE_MARGIN_MS,
            `the retry came ${gapMs} ms after the hung request (socket timeout ${idleMs} ms)`,
        );
        assert.ok((await readObject(frameKey)).subarray(1, 4).toString() === "PNG", "the frame on S3 is a PNG");
        console.log(`      the hung PUT was given up and retried after ${(gapMs / 1000).toFixed(1)} s`);
    });

    it("memory stays bounded by the parts in flight, not the frame's size (a 64 MiB file, measured in its own process)", async function () {
        const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "frame-upload-big-")), "frame.exr");
        const handle = fs.openSync(file, "w");
        for (let written = 0; written < 64 * MIB; written += 8 * MIB) fs.writeSync(handle, crypto.randomBytes(8 * MIB));
        fs.closeSync(handle);
        const key = "jobs/memory/frames/frame_0001.exr";
        // The measuring process: live external memory (after a GC) sampled through the upload.
        const script = `
            const { S3Client } = require("@aws-sdk/client-s3");
            const { uploadFrameFile } = require(${JSON.stringify(path.join(__dirname, "..", "functions", "renderer", "frameUpload"))});
            const live = () => { global.gc(); return process.memoryUsage().arrayBuffers; };
            (async () => {
                const s3 = new S3Client({ endpoint: ${JSON.stringify(emulator.endpoint)}, region: ${JSON.stringify(emulator.region)},
                    credentials: ${JSON.stringify(emulator.credentials)}, forcePathStyle: true });
                const baseline = live();
                let peak = baseline;
                const sampler = setInterval(() => { peak = Math.max(peak, live()); }, 25);
                await uploadFrameFile(s3, ${JSON.stringify(file)}, { bucket: ${JSON.stringify(resources.rendersBucket)},
                    key: ${JSON.stringify(key)}, contentType: "image/x-exr" }, { partBytes: ${PART_BYTES}, partsInFlight: 2 });
                clearInterval(sampler);
                s3.destroy();
                process.stdout.write(JSON.stringify({ baseline, peak }));
            })().catch((error) => { console.error(error); process.exit(1); });`;
        // Asynchronously: the emulator it uploads to runs in this process.
        const output = await new Promise<string>((resolve, reject) =>
            childProcess.execFile(
                process.execPath,
                ["--expose-gc", "-r", "ts-node/register/transpile-only", "-e", script],
                { cwd: path.join(__dirname, ".."), encoding: "utf8", timeout: 120_000 },
                (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)),
            ),
        );
        const { baseline, peak } = JSON.parse(output) as { baseline: number; peak: number };
        const uploaded = await readObject(key);
        assert.ok(uploaded.equals(fs.readFileSync(file)), "S3 holds the file byte for byte");
        const grewMiB = (peak - baseline) / MIB;
        console.log(
            `      64 MiB uploaded in 5 MiB parts, 2 in flight: live buffers grew by ${grewMiB.toFixed(1)} MiB`,
        );
        // Two parts in flight plus the one being filled, and the read stream's chunks: about 15-20 MiB.
        assert.ok(grewMiB < 40, `live buffers grew by ${grewMiB.toFixed(1)} MiB during a 64 MiB upload`);
        fs.rmSync(path.dirname(file), { recursive: true, force: true });
    });
});
