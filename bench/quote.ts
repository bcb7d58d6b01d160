// Quote benchmark: how close `render-farm estimate` comes to what the job then costs, as a new user meets it. A shot
// whose frames get heavier over time (bench/growing_scene.py: a glass sphere growing to fill the frame) is estimated
// from its probe frames on a fresh local farm (`render-farm serve`: Blender not started, the scene not downloaded),
// then the rest is submitted with `render-farm render --job-id --no-wait` (the probe frames kept) and watched to its
// end; the quote's render seconds and cost are set beside the job's actual ones. Twice: whole frames on one
// renderer, and 2 tiles a frame on two renderers. The actual cost is the job's ledger (Lambda duration, every
// attempt, tiles and stitches) plus the requests its invocations make, priced from the same table as the quote.
// Target: the actual cost and render seconds inside the quoted ranges.
//   npm run bench:quote                60 frames, 160x120, 64 samples
//   npm run bench:quote -- --smoke     24 frames, 64x48, 16 samples (what tests/benchmarks.test.ts runs, asserting
//                                      each job's actual cost inside the quoted range)
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Estimate, JobStatus, Quote } from "../functions/shared/contract";
import { runCli } from "../tests/support/cliRunner";
import { waitForJobEnd } from "../tests/support/farmClient";
import { runBlenderScript } from "../tests/support/scenes";
import { startServe, stopServe } from "../tests/support/serveProcess";

const GROWING_SCENE = path.join(__dirname, "growing_scene.py");

export interface QuoteBenchOptions {
    frames: number;
    samples: number;
    resolution: string;
}

/** One job of the benchmark: how many renderers the local farm has, and how many tiles a frame is split into. */
export interface QuoteBenchJob {
    name: string;
    workers: number;
    tiles?: number;
}

export interface QuoteJobResult {
    job: QuoteBenchJob;
    quote: Quote;
    actual: JobStatus;
    /** The job's cost as the quote prices it: the ledger's Lambda duration plus the job's requests. */
    actualCostUsd: number;
    estimateSeconds: number;
    renderSeconds: number;
}

export interface QuoteBenchResult {
    options: QuoteBenchOptions;
    jobs: QuoteJobResult[];
}

export const BENCH_JOBS: QuoteBenchJob[] = [
    { name: "whole frames", workers: 1 },
    { name: "2 tiles a frame", workers: 2, tiles: 2 },
];

/** The growing scene for these options, built once (cached by its script and options). */
async function growingScene(options: QuoteBenchOptions): Promise<string> {
    const key = crypto
        .createHash("sha256")
        .update(fs.readFileSync(GROWING_SCENE))
        .update(JSON.stringify(options))
        .digest("hex")
        .slice(0, 16);
    const dir = path.join(os.tmpdir(), "render-farm-growing", key);
    const blend = path.join(dir, "shot", "growing.blend");
    if (fs.existsSync(blend)) return blend;
    fs.mkdirSync(path.dirname(blend), { recursive: true });
    const building = `${blend}.${process.pid}.blend`;
    await runBlenderScript(GROWING_SCENE, [
        "--out",
        building,
        "--frames",
        String(options.frames),
        "--samples",
        String(options.samples),
        "--resolution",
        options.resolution,
    ]);
    fs.renameSync(building, blend);
    return blend;
}

/** Estimates the job on a fresh local farm, then renders the rest of it there. */
async function runQuoteJob(scene: string, job: QuoteBenchJob): Promise<QuoteJobResult> {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "quote-bench-"));
    const out = path.join(dataDir, "out");
    const serve = await startServe(["--port", "0", "--workers", String(job.workers), "--data-dir", dataDir]);
    try {
        const jobId = `quote-${crypto.randomBytes(4).toString("hex")}`;
        const common = [scene, "--job-id", jobId, "--data-dir", dataDir, "--out", out, "--json"];
        if (job.tiles) common.push("--tiles", String(job.tiles));
        const estimateStart = Date.now();
        const estimate = await runCli(["estimate", ...common], { timeoutMs: 900_000 });
        if (estimate.code !== 0) throw new Error(`estimate exited ${estimate.code}: ${estimate.stderr}`);
        const estimateSeconds = (Date.now() - estimateStart) / 1000;
        const quote = JSON.parse(estimate.stdout) as Quote;
        const renderStart = Date.now();
        // Submitted only: a CLI downloading frames (and making the report) would take CPU from the renderers here.
        const render = await runCli(["render", ...common, "--no-wait"], { timeoutMs: 300_000 });
        if (render.code !== 0) throw new Error(`render exited ${render.code}: ${render.stderr}`);
        const actual = await waitForJobEnd(serve.outputs, jobId, 3_600_000, 1000);
        const renderSeconds = (Date.now() - renderStart) / 1000;
        if (actual.state !== "complete") throw new Error(`job ${jobId} ended ${actual.state}`);
        const actualCostUsd = actual.costUsd + (quote.requestsUsd ?? 0);
        return { job, quote, actual, actualCostUsd, estimateSeconds, renderSeconds };
    } finally {
        await stopServe(serve);
        fs.rmSync(dataDir, { recursive: true, force: true });
    }
}

export async function runQuoteBench(options: QuoteBenchOptions): Promise<QuoteBenchResult> {
    const scene = await growingScene(options);
    const jobs: QuoteJobResult[] = [];
    for (const job of BENCH_JOBS) jobs.push(await runQuoteJob(scene, job));
    return { options, jobs };
}

function inside(actual: number, estimate: Estimate): boolean {
    return actual >= estimate.low && actual <= estimate.high;
}

function versus(actual: number, estimate: Estimate, format: (value: number) => string): string {
    const error = (estimate.expected - actual) / actual;
    return `quoted ${format(estimate.expected)} (range ${format(estimate.low)} to ${format(estimate.high)}), actual ${format(actual)}: error ${(error * 100).toFixed(1)} %, ${inside(actual, estimate) ? "inside" : "OUTSIDE"} the range`;
}

export function quoteReport(result: QuoteBenchResult): string[] {
    const { options } = result;
    const seconds = (value: number) => `${value.toFixed(2)} s`;
    const dollars = (value: number) => `$${value.toFixed(8)}`;
    return result.jobs.flatMap(({ job, quote, actual, actualCostUsd, estimateSeconds, renderSeconds }) => {
        const overhead = quote.overheadSecondsPerFrame!;
        const cold = quote.coldStart!;
        return [
            `${job.name}, ${job.workers} renderer(s): ${quote.frames} frames (${options.resolution}, ${options.samples} samples, a glass sphere growing over the shot), quoted from ${quote.probes.length} probe frames (${quote.probes.map((probe) => `${probe.frame}: ${probe.renderSeconds.toFixed(2)} s`).join(", ")}) in ${estimateSeconds.toFixed(1)} s; the rest rendered in ${renderSeconds.toFixed(1)} s`,
            `${job.name}, render seconds: ${versus(actual.renderSeconds, quote.renderSeconds, seconds)}`,
            `${job.name}, cost: ${versus(actualCostUsd, quote.costUsd, dollars)} (the ledger's ${dollars(actual.costUsd)} plus ${dollars(quote.requestsUsd ?? 0)} of requests)`,
            `${job.name}, billed besides the render: ${seconds(overhead.expected)} a frame (${seconds(overhead.low)} to ${seconds(overhead.high)}), and a cold start of ${seconds(cold.seconds.expected)} (${seconds(cold.seconds.low)} to ${seconds(cold.seconds.high)}) × ${cold.renderers} renderer(s)`,
        ];
    });
}

export const SMOKE_OPTIONS: QuoteBenchOptions = { frames: 24, samples: 16, resolution: "64x48" };
export const FULL_OPTIONS: QuoteBenchOptions = { frames: 60, samples: 64, resolution: "160x120" };

if (require.main === module) {
    const smoke = process.argv.includes("--smoke");
    runQuoteBench(smoke ? SMOKE_OPTIONS : FULL_OPTIONS).then(
        (result) => {
            for (const line of quoteReport(result)) console.log(line);
        },
        (error) => {
            console.error(error);
            process.exit(1);
        },
    );
}
