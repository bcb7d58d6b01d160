// `render-farm estimate <scene.blend> [render options]`: what the job will cost and take, measured on the farm itself
// before paying for it. It submits the job asking for probe frames only (first, last, middle), and more when their
// render times disagree with a straight line between them (3, then 7, then 15); prices the whole job from them
// (cli/quote.ts); prints the quote and writes it as quote.json. The probe frames are kept: `render` with the same
// options and --job-id renders the rest of the job.
import * as fs from "fs";
import * as path from "path";
import type { FrameRecord, JobManifest, JobStatus, Quote } from "../functions/shared/contract";
import { JobLedger, jobLedger } from "../functions/shared/ledger";
import { EXIT_FRAMES_FAILED, EXIT_OK } from "./errors";
import { allFailureLines, summaryLine } from "./jobReport";
import { watchJob } from "./jobWatch";
import { formatDuration } from "./progress";
import { ProbeSample, probeDisagreement, probeSampleOf, quoteJob } from "./quote";
import { prepareJob, RenderFlags } from "./render";
import type { Session } from "./session";
import type { Target } from "./target";

/** Probe frames per round: a round more while the probes disagree by more than PROBE_AGREEMENT. */
export const PROBE_ROUNDS = [3, 7, 15];
/** Largest relative error of the straight line between probes, at a probe left out, that needs no more probes. */
export const PROBE_AGREEMENT = 0.1;

function seconds(value: number): string {
    return value < 60 ? `${value.toFixed(value < 10 ? 2 : 1)} s` : formatDuration(value);
}

function dollars(value: number): string {
    return `$${value < 0.01 ? value.toFixed(6) : value < 1 ? value.toFixed(4) : value.toFixed(2)}`;
}

function rangeText(estimate: { low: number; expected: number; high: number }, format: (n: number) => string): string {
    return `${format(estimate.expected)} (${format(estimate.low)} to ${format(estimate.high)})`;
}

/** The quote's lines, as the command prints them. */
export function quoteLines(quote: Quote): string[] {
    const gb = (value: number) => `${Math.round(value).toLocaleString("en-US")} GB-s`;
    return [
        `job ${quote.jobId}: ${quote.frames} frame(s), priced from ${quote.probes.length} probe frame(s) rendered on the farm: ${quote.probes.map((probe) => `${probe.frame} (${seconds(probe.renderSeconds)})`).join(", ")}`,
        `render time per frame: ${rangeText(quote.renderSecondsPerFrame, seconds)}`,
        `render time, whole job: ${rangeText(quote.renderSeconds, seconds)}`,
        ...(quote.overheadSecondsPerFrame
            ? [
                  `billed besides the render, per frame${quote.tiles ? ` (${quote.tiles} tiles and the stitch)` : ""}: ${rangeText(quote.overheadSecondsPerFrame, seconds)}`,
              ]
            : []),
        ...(quote.coldStart
            ? [
                  `cold start (Blender's start, the scene's download and load), once per renderer: ${rangeText(quote.coldStart.seconds, seconds)} × ${quote.coldStart.renderers} renderer(s)`,
              ]
            : []),
        `billed: ${rangeText(quote.gbSeconds, gb)} at ${quote.memoryMb} MB`,
        `cost: ${rangeText(quote.costUsd, dollars)}; ${dollars(quote.costUsd.expected / quote.frames)} a frame (Lambda at $${quote.price.usdPerGbSecond}/GB-s in ${quote.price.region}, plus requests, SQS and API Gateway; prices: ${quote.price.source})`,
        `wall time at ${quote.concurrency} renderer(s) at once: ${rangeText(quote.wallSeconds, seconds)}`,
    ];
}

/** The farm's ledger (a usage error when the target has no outputs to find it by). */
function ledgerOf(target: Target): JobLedger {
    return jobLedger(target.s3(), target.outputs!.rendersBucket);
}

/** The job's manifest: which frames are probes, and every frame of the job. */
async function readJobManifest(ledger: JobLedger, jobId: string): Promise<JobManifest> {
    const manifest = await ledger.readManifest(jobId);
    if (!manifest) throw new Error(`job ${jobId} has no manifest in s3://${ledger.bucket}`);
    return manifest;
}

/** The rendered probe frames' times and costs, from their records (a tiled frame's, and its tiles'). */
async function probeSamples(ledger: JobLedger, jobId: string, frames: number[]): Promise<ProbeSample[]> {
    const records = await Promise.all(frames.map((frame) => ledger.readFrameRecord(jobId, frame)));
    const done = records.filter((record): record is FrameRecord => record?.status === "done");
    return Promise.all(
        done.map(async (record) => {
            const of = record.stitch?.of ?? 0;
            const tiles = await Promise.all(
                Array.from({ length: of }, (_, tile) => ledger.readTileRecord(jobId, record.frame, tile)),
            );
            return probeSampleOf(
                record,
                tiles.filter((tile): tile is FrameRecord => tile !== undefined),
            );
        }),
    );
}

export async function estimateCommand(
    session: Session,
    scenePath: string,
    flags: Omit<RenderFlags, "wait">,
): Promise<number> {
    const { output } = session;
    const { request, target } = await prepareJob(session, scenePath, flags);
    let status: JobStatus | undefined;
    let probes: ProbeSample[] = [];
    let manifest: JobManifest | undefined;
    for (const count of PROBE_ROUNDS) {
        const probeRequest = { ...request, probe: count };
        const submitted = await target.api.submit(probeRequest);
        session.jobId = submitted.jobId;
        status = await watchJob(target.api, submitted.jobId, {
            pollIntervalMs: target.pollIntervalMs,
            stream: output.stderr,
            onReporter: (reporter) => session.setReporter(reporter),
            resume: () => target.api.submit(probeRequest),
            resumes: ["submit"],
        });
        // A job of 3 frames or fewer is all probes: it ends complete, not probed.
        if ((status.state !== "probed" && status.state !== "complete") || status.frames.failed > 0) {
            output.note(summaryLine(status));
            for (const line of allFailureLines(status)) output.problem(line);
            output.problem(`job ${status.jobId}: the probe frames did not all render, so there is no quote`);
            return EXIT_FRAMES_FAILED;
        }
        const ledger = ledgerOf(target);
        manifest = await readJobManifest(ledger, status.jobId);
        probes = await probeSamples(ledger, status.jobId, manifest.frames);
        const disagreement = probeDisagreement(probes);
        const allProbed = (status.probe?.frames ?? 0) >= (status.probe?.of ?? 0);
        if (disagreement <= PROBE_AGREEMENT || allProbed) break;
        output.note(
            `the ${probes.length} probe frames disagree (a straight line between them misses one by ${(disagreement * 100).toFixed(0)} %): rendering more`,
        );
    }
    const quote = quoteJob({
        jobId: status!.jobId,
        jobFrames: manifest!.probe?.jobFrames ?? manifest!.frames,
        probes,
        ...(manifest!.tiles ? { tiles: manifest!.tiles } : {}),
        concurrency: status!.timing?.maxConcurrency ?? 1,
        region: target.outputs!.region,
        now: new Date(),
    });
    const outDir = path.resolve(flags.out ?? path.join("renders", quote.jobId));
    fs.mkdirSync(outDir, { recursive: true });
    const quoteFile = path.join(outDir, "quote.json");
    fs.writeFileSync(quoteFile, `${JSON.stringify(quote, null, 2)}\n`);
    output.result({ ...quote, quoteFile, target: target.description }, [
        ...quoteLines(quote),
        `the probe frames are kept: \`render-farm render ${scenePath} --job-id ${quote.jobId}\` with the same options renders the rest`,
        `quote written to ${path.relative(process.cwd(), quoteFile)}`,
    ]);
    return EXIT_OK;
}
