// Farm overhead benchmark: how much longer the farm takes than Blender itself for the same frames, in one run.
//   npm run bench:overhead                 (a 10-frame Cycles scene and a 24-frame EEVEE scene, 2 rounds each)
//   npm run bench:overhead -- --smoke      (3-frame scenes, 1 round: what tests/overheadBench.test.ts runs)
//   npm run bench:overhead -- --scene cycles --rounds 3
// Per scene, alternating, the fastest round of each: `blender -b scene.blend -a` (the baseline), and a fresh local
// farm with one worker (from the submission over HTTP to the last frame's record; the farm's own start-up
// excluded), then the ratio. The farm's frames are checked pixel for pixel against Blender's. Then the
// renderer handler invoked once per frame in this process, as a warm Lambda container runs it: how many times
// Blender started and loaded the scene, and the per-frame overhead (the handler's time minus Blender's render time).
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import type { SQSEvent } from "aws-lambda";
import { createRendererHandler } from "../functions/renderer/consumer";
import { DEFAULT_RENDER_LIMITS } from "../functions/renderer/settings";
import {
    FRAME_MESSAGE_VERSION,
    FrameMessage,
    FrameRecord,
    frameOutputKey,
    frameRecordKey,
} from "../functions/shared/contract";
import { createFarmResources, startEmulator } from "../local/emulator";
import { pollOnce } from "../local/eventSourcePoller";
import { startLocalFarm } from "../local/farm";
import { api, frameRecords, s3Of, uploadFile, waitForJobEnd } from "../tests/support/farmClient";
import { BLENDER, comparePngs, makeScene, SceneOptions } from "../tests/support/scenes";

export interface OverheadOptions {
    smoke?: boolean;
    /** Only the scene of this name ("cycles" or "eevee"); default both. The warm handler always runs on "cycles". */
    only?: string;
    /** Rounds per scene, each of both sides; default 2 (1 in smoke mode). */
    rounds?: number;
    log?: (line: string) => void;
}

export interface SceneCase {
    name: string;
    label: string;
    frames: number;
    scene: SceneOptions;
}

export interface CaseResult {
    case: SceneCase;
    blenderSeconds: number[];
    farmSeconds: number[];
    /** Fastest farm round over fastest Blender round. */
    ratio: number;
    /** Largest difference of any sample between the farm's frames and `blender -a`'s, over all frames. */
    maxDifference: number;
}

export interface WarmResult {
    case: SceneCase;
    invocations: number;
    blenderStarts: number;
    sceneLoads: number;
    /** Per invocation: the handler's time, and Blender's render time from the frame record. */
    handlerMs: number[];
    renderMs: number[];
}

function cases(smoke: boolean): SceneCase[] {
    if (smoke)
        return [
            { name: "cycles", label: "Cycles, 3 frames, 64x48, 4 samples", frames: 3, scene: { frames: "1-3" } },
            {
                name: "eevee",
                label: "EEVEE, 3 frames, 64x48, 4 samples",
                frames: 3,
                scene: { engine: "EEVEE", frames: "1-3" },
            },
        ];
    const size = { resolutionX: 320, resolutionY: 180, samples: 8 };
    return [
        {
            name: "cycles",
            label: "Cycles, 10 frames, 320x180, 8 samples",
            frames: 10,
            scene: { frames: "1-10", ...size },
        },
        {
            name: "eevee",
            label: "EEVEE, 24 frames, 320x180, 8 samples",
            frames: 24,
            scene: { engine: "EEVEE", frames: "1-24", ...size },
        },
    ];
}

function blenderAnimation(blendPath: string, outDir: string): Promise<number> {
    const started = Date.now();
    return new Promise((resolve, reject) =>
        execFile(
            BLENDER,
            [
                "-b",
                blendPath,
                "--factory-startup",
                "-noaudio",
                "--disable-autoexec",
                "-o",
                path.join(outDir, "frame_####"),
                "-F",
                "PNG",
                "-a",
            ],
            { maxBuffer: 256 * 1024 * 1024 },
            (error) => (error ? reject(error) : resolve((Date.now() - started) / 1000)),
        ),
    );
}

/** A fresh local farm with one worker renders the scene's frames; returns seconds from submission to completion. */
async function farmJob(blendPath: string, frames: number, work: string, round: number): Promise<number> {
    const farm = await startLocalFarm({
        port: 0,
        workers: 1,
        dataDir: path.join(work, `farm-${round}`),
        log: () => undefined,
    });
    const s3 = s3Of(farm.outputs);
    try {
        await uploadFile(farm.outputs, "bench/scene.blend", blendPath);
        const jobId = `overhead-${round}`;
        const started = Date.now();
        const submitted = await api(farm.outputs, "POST", "/jobs", { scene: "bench/scene.blend", jobId });
        if (submitted.status !== 202) throw new Error(`POST /jobs answered ${submitted.status}`);
        // Polled slowly: each GET /jobs reads every frame record, and this machine's CPUs are Blender's.
        const status = await waitForJobEnd(farm.outputs, jobId, 3_600_000, 1000);
        if (status.state !== "complete" || status.frames.done !== frames)
            throw new Error(`the farm's job ended ${status.state}: ${JSON.stringify(status.frames)}`);
        // Until the last frame's record was written, not until the poll noticed.
        const finished = Math.max(
            ...(await frameRecords(farm.outputs, jobId)).map((record) => Date.parse(record.finishedAt)),
        );
        const seconds = (finished - started) / 1000;
        for (let frame = 1; frame <= frames; frame++) {
            const object = await s3.send(
                new GetObjectCommand({ Bucket: farm.outputs.rendersBucket, Key: frameOutputKey(jobId, frame, "PNG") }),
            );
            const file = path.join(work, `farm-${round}`, `frame_${String(frame).padStart(4, "0")}.png`);
            fs.writeFileSync(file, Buffer.from(await object.Body!.transformToByteArray()));
        }
        return seconds;
    } finally {
        s3.destroy();
        await farm.stop();
    }
}

async function measureCase(sceneCase: SceneCase, rounds: number, log: (line: string) => void): Promise<CaseResult> {
    const scene = await makeScene(sceneCase.scene);
    const work = fs.mkdtempSync(path.join(os.tmpdir(), `bench-overhead-${sceneCase.name}-`));
    try {
        const blenderSeconds: number[] = [];
        const farmSeconds: number[] = [];
        let maxDifference = 0;
        for (let round = 1; round <= rounds; round++) {
            const outDir = path.join(work, `blender-${round}`);
            blenderSeconds.push(await blenderAnimation(scene.blendPath, outDir));
            farmSeconds.push(await farmJob(scene.blendPath, sceneCase.frames, work, round));
            for (let frame = 1; frame <= sceneCase.frames; frame++) {
                const name = `frame_${String(frame).padStart(4, "0")}.png`;
                const comparison = comparePngs(path.join(outDir, name), path.join(work, `farm-${round}`, name));
                maxDifference = Math.max(maxDifference, comparison.sameShape ? comparison.maxDifference : 255);
            }
            log(
                `  ${sceneCase.name} round ${round}: blender -a ${blenderSeconds[round - 1].toFixed(2)} s, farm ${farmSeconds[round - 1].toFixed(2)} s`,
            );
        }
        return {
            case: sceneCase,
            blenderSeconds,
            farmSeconds,
            ratio: Math.min(...farmSeconds) / Math.min(...blenderSeconds),
            maxDifference,
        };
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

/** The renderer handler invoked once per frame in this process, as a warm Lambda container would. */
async function measureWarmHandler(sceneCase: SceneCase): Promise<WarmResult> {
    const scene = await makeScene(sceneCase.scene);
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "bench-overhead-warm-"));
    const emulator = await startEmulator();
    try {
        const farm = await createFarmResources(emulator, {
            name: "overhead",
            maxReceiveCount: 1,
            visibilityTimeoutSeconds: 300,
            receiveWaitTimeSeconds: 0,
        });
        const queueArn = (
            await emulator.sqs.send(
                new GetQueueAttributesCommand({ QueueUrl: farm.frameQueueUrl, AttributeNames: ["QueueArn"] }),
            )
        ).Attributes!.QueueArn!;
        const key = "bench/scene.blend";
        await emulator.s3.send(
            new PutObjectCommand({ Bucket: farm.scenesBucket, Key: key, Body: fs.readFileSync(scene.blendPath) }),
        );
        const etag = (await emulator.s3.send(new HeadObjectCommand({ Bucket: farm.scenesBucket, Key: key }))).ETag!;
        const renderer = createRendererHandler({
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: {
                scenesBucket: farm.scenesBucket,
                rendersBucket: farm.rendersBucket,
                frameQueueUrl: farm.frameQueueUrl,
                maxReceiveCount: 1,
                failureBackoffSeconds: 1,
                memoryMb: 10240,
                blenderPath: BLENDER,
                workDir: path.join(work, "renderer"),
                threads: os.cpus().length,
                defaultTimeoutMs: 900_000,
                limits: DEFAULT_RENDER_LIMITS,
            },
        });
        const handlerMs: number[] = [];
        const renderMs: number[] = [];
        const jobId = "overhead-warm";
        try {
            for (let frame = 1; frame <= sceneCase.frames; frame++) {
                const message: FrameMessage = {
                    v: FRAME_MESSAGE_VERSION,
                    jobId,
                    frame,
                    scene: key,
                    sceneEtag: etag,
                    assets: [],
                    settings: { format: "PNG" },
                    output: { bucket: farm.rendersBucket, key: frameOutputKey(jobId, frame, "PNG") },
                };
                await emulator.sqs.send(
                    new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: JSON.stringify(message) }),
                );
                const outcome = await pollOnce({
                    sqs: emulator.sqs,
                    queueUrl: farm.frameQueueUrl,
                    queueArn,
                    region: emulator.region,
                    handler: async (event: SQSEvent) => {
                        const started = Date.now();
                        const reply = await renderer(event);
                        handlerMs.push(Date.now() - started);
                        return reply;
                    },
                });
                if (outcome !== "succeeded") throw new Error(`the warm handler failed frame ${frame}`);
                const record = JSON.parse(
                    await (
                        await emulator.s3.send(
                            new GetObjectCommand({ Bucket: farm.rendersBucket, Key: frameRecordKey(jobId, frame) }),
                        )
                    ).Body!.transformToString(),
                ) as FrameRecord;
                renderMs.push((record.renderSeconds ?? 0) * 1000);
            }
            return {
                case: sceneCase,
                invocations: handlerMs.length,
                blenderStarts: renderer.blender.stats.starts,
                sceneLoads: renderer.blender.stats.sceneLoads,
                handlerMs,
                renderMs,
            };
        } finally {
            await renderer.close();
        }
    } finally {
        await emulator.stop();
        fs.rmSync(work, { recursive: true, force: true });
    }
}

function median(values: number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted.length === 0 ? Number.NaN : sorted[Math.floor((sorted.length - 1) / 2)];
}

export async function runOverheadBench(
    options: OverheadOptions = {},
): Promise<{ cases: CaseResult[]; warm: WarmResult }> {
    const smoke = options.smoke ?? false;
    const rounds = options.rounds ?? (smoke ? 1 : 2);
    const log = options.log ?? (() => undefined);
    const results: CaseResult[] = [];
    const chosen = cases(smoke).filter((sceneCase) => options.only === undefined || sceneCase.name === options.only);
    if (chosen.length === 0) throw new Error(`no scene "${options.only}"; the scenes are cycles and eevee`);
    for (const sceneCase of chosen) results.push(await measureCase(sceneCase, rounds, log));
    const warm = await measureWarmHandler(cases(smoke)[0]);
    return { cases: results, warm };
}

/** The report: per scene both times and the ratio last, then the warm handler's counts and overhead. */
export function overheadReport(result: { cases: CaseResult[]; warm: WarmResult }): string[] {
    const lines: string[] = [];
    for (const measured of result.cases) {
        lines.push(`${measured.case.label} (${os.cpus().length} CPUs):`);
        lines.push(
            `  blender -b -a:          ${Math.min(...measured.blenderSeconds).toFixed(2)} s  (rounds: ${measured.blenderSeconds.map((s) => s.toFixed(2)).join(", ")})`,
        );
        lines.push(
            `  local farm, 1 worker:   ${Math.min(...measured.farmSeconds).toFixed(2)} s  (rounds: ${measured.farmSeconds.map((s) => s.toFixed(2)).join(", ")}; frames vs blender -a: max difference ${measured.maxDifference})`,
        );
        lines.push(`  ratio farm / blender:   ${measured.ratio.toFixed(2)}x`);
    }
    const { warm } = result;
    const overhead = warm.handlerMs.map((ms, index) => ms - warm.renderMs[index]);
    lines.push(
        `renderer handler invoked ${warm.invocations} times in one process (a warm Lambda container), ${warm.case.label}:`,
    );
    lines.push(`  Blender started ${warm.blenderStarts} time(s), scene loaded ${warm.sceneLoads} time(s)`);
    lines.push(
        `  per-frame overhead (handler time minus Blender's render time): first frame ${overhead[0]?.toFixed(0)} ms, then median ${median(overhead.slice(1)).toFixed(0)} ms (median render ${median(warm.renderMs.slice(1)).toFixed(0)} ms)`,
    );
    return lines;
}

if (require.main === module) {
    const args = process.argv.slice(2);
    const smoke = args.includes("--smoke");
    const roundsAt = args.indexOf("--rounds");
    const rounds = roundsAt >= 0 ? Number(args[roundsAt + 1]) : undefined;
    if (rounds !== undefined && (!Number.isInteger(rounds) || rounds < 1)) {
        console.error("bench:overhead: --rounds needs a whole number >= 1");
        process.exit(2);
    }
    const onlyAt = args.indexOf("--scene");
    const only = onlyAt >= 0 ? args[onlyAt + 1] : undefined;
    runOverheadBench({ smoke, rounds, only, log: (line) => console.log(line) }).then(
        (result) => {
            for (const line of overheadReport(result)) console.log(line);
        },
        (error) => {
            console.error(`bench:overhead: ${error instanceof Error ? error.stack : String(error)}`);
            process.exitCode = 1;
        },
    );
}
