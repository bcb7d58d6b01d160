// Quote benchmark (issue 13): how close `render-farm estimate` comes to what the job then costs. On a local farm
// (`render-farm serve`, one worker), a shot whose frames get heavier over time (bench/growing_scene.py: a glass sphere
// growing to fill the frame) is estimated from its probe frames, then rendered whole with `render-farm render
// --job-id` (the probe frames kept), and the quote's render seconds are set beside the job's actual total.
// Target: predicted within ±10 % of the actual, and the actual inside the printed range.
//   npm run bench:quote                48 frames, 160x120, 64 samples
//   npm run bench:quote -- --smoke     24 frames, 64x48, 8 samples (what tests/benchmarks.test.ts runs)
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { JobStatus, Quote } from "../functions/shared/contract";
import { runCli } from "../tests/support/cliRunner";
import { api } from "../tests/support/farmClient";
import { runBlenderScript } from "../tests/support/scenes";
import { startServe, stopServe } from "../tests/support/serveProcess";

const GROWING_SCENE = path.join(__dirname, "growing_scene.py");

export interface QuoteBenchOptions {
    frames: number;
    samples: number;
    resolution: string;
}

export interface QuoteBenchResult {
    options: QuoteBenchOptions;
    quote: Quote;
    actual: JobStatus;
    estimateSeconds: number;
    renderSeconds: number;
}

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

export async function runQuoteBench(options: QuoteBenchOptions): Promise<QuoteBenchResult> {
    const scene = await growingScene(options);
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "quote-bench-"));
    const out = path.join(dataDir, "out");
    const serve = await startServe(["--port", "0", "--workers", "1", "--data-dir", dataDir]);
    try {
        const jobId = `quote-${crypto.randomBytes(4).toString("hex")}`;
        const common = [scene, "--job-id", jobId, "--data-dir", dataDir, "--out", out, "--json"];
        const estimateStart = Date.now();
        const estimate = await runCli(["estimate", ...common], { timeoutMs: 600_000 });
        if (estimate.code !== 0) throw new Error(`estimate exited ${estimate.code}: ${estimate.stderr}`);
        const estimateSeconds = (Date.now() - estimateStart) / 1000;
        const quote = JSON.parse(estimate.stdout) as Quote;
        const renderStart = Date.now();
        const render = await runCli(["render", ...common], { timeoutMs: 1_800_000 });
        if (render.code !== 0) throw new Error(`render exited ${render.code}: ${render.stderr}`);
        const renderSeconds = (Date.now() - renderStart) / 1000;
        const actual = (await api(serve.outputs, "GET", `/jobs/${jobId}`)).body as JobStatus;
        return { options, quote, actual, estimateSeconds, renderSeconds };
    } finally {
        await stopServe(serve);
    }
}

export function quoteReport(result: QuoteBenchResult): string[] {
    const { quote, actual } = result;
    const predicted = quote.renderSeconds;
    const error = (predicted.expected - actual.renderSeconds) / actual.renderSeconds;
    const inside = actual.renderSeconds >= predicted.low && actual.renderSeconds <= predicted.high;
    return [
        `quote: ${quote.frames} frames (${result.options.resolution}, ${result.options.samples} samples, a glass sphere growing over the shot), from ${quote.probes.length} probe frames (${quote.probes.map((probe) => `${probe.frame}: ${probe.renderSeconds.toFixed(2)} s`).join(", ")}), estimated in ${result.estimateSeconds.toFixed(1)} s`,
        `render seconds, whole job: predicted ${predicted.expected.toFixed(1)} s (range ${predicted.low.toFixed(1)} to ${predicted.high.toFixed(1)}), actual ${actual.renderSeconds.toFixed(1)} s: error ${(error * 100).toFixed(1)} %, actual ${inside ? "inside" : "OUTSIDE"} the range`,
        `cost: predicted $${quote.costUsd.expected.toFixed(6)} (range $${quote.costUsd.low.toFixed(6)} to $${quote.costUsd.high.toFixed(6)}, requests included), the ledger's $${actual.costUsd.toFixed(6)} (Lambda duration only)`,
        `ratio predicted / actual render seconds: ${(predicted.expected / actual.renderSeconds).toFixed(3)}x; the rest of the job rendered in ${result.renderSeconds.toFixed(1)} s`,
    ];
}

export const SMOKE_OPTIONS: QuoteBenchOptions = { frames: 24, samples: 8, resolution: "64x48" };
export const FULL_OPTIONS: QuoteBenchOptions = { frames: 48, samples: 64, resolution: "160x120" };

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
