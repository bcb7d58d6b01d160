// What a job will cost and take, from its probe frames (rendered on the farm at the job's settings): each frame's
// render time is interpolated between the probes around it, so a shot that gets heavier over time is priced as such.
// What Lambda bills besides the render is priced in two parts: a renderer's cold start (Blender's start, the scene's
// download and load), paid once by each renderer the job uses, and the rest (downloads of the assets, the upload,
// the records, a tiled frame's stitch), paid every frame. Each range comes from the probes' own spread: the render's
// holds the same sum with each frame priced as its left or its right probe, widened by how far the probes stray from
// the trend (noise: at least 5 %); the overheads' span the least and the most the probe frames paid. The wall time
// follows from the farm's concurrency.
import type { Estimate, FrameRecord, Quote, StartupCost } from "../functions/shared/contract";
import { recordRenderSeconds } from "../functions/shared/frameSummary";
import { lambdaPriceFor, REQUEST_PRICES } from "./pricing";

export interface ProbeSample {
    frame: number;
    /** Blender's render seconds; a tiled frame's tiles summed. */
    renderSeconds: number;
    /** What Lambda billed for the frame: its invocation's duration, or its tiles' and its stitch's. */
    billedSeconds: number;
    costUsd: number;
    memoryMb: number;
    /** The cold starts among the frame's invocations: each one's seconds of billedSeconds a warm renderer skips. */
    coldStarts: number[];
    /** The longest single invocation (the frame; a tile, plus the stitch). */
    longestSeconds: number;
}

export interface QuoteInput {
    jobId: string;
    jobFrames: readonly number[];
    probes: readonly ProbeSample[];
    /** Invocations per frame: the job's tiles, else 1. */
    tiles?: number;
    concurrency: number;
    region: string;
    now: Date;
}

/** Least widening of the render's range, for what the probes cannot see: run-to-run noise of one frame's render. */
const NOISE = 0.05;

/**
 * The seconds of an attempt that a warm renderer skips: Blender's start, the scene's download, and its load unless the
 * scene is loaded again for every frame anyway. 0 for a record that does not say (priced as every frame's overhead).
 */
export function coldSeconds(startup: StartupCost | undefined): number {
    if (!startup) return 0;
    return startup.blenderSeconds + startup.downloadSeconds + (startup.sceneKept ? startup.loadSeconds : 0);
}

/**
 * A done probe frame as the quote reads it, from its record and, for a tiled frame, its tiles' records: what the
 * tiles and the stitch were billed, not the frame's wall time from its first tile to its stitch.
 */
export function probeSampleOf(record: FrameRecord, tiles: readonly FrameRecord[] = []): ProbeSample {
    const attempts = record.stitch ? tiles : [record];
    if (record.stitch && tiles.length !== record.stitch.of)
        throw new Error(
            `frame ${record.frame} of job ${record.jobId} is stitched from ${record.stitch.of} tiles but ${tiles.length} tile records were read`,
        );
    const stitchSeconds = record.stitch?.seconds ?? 0;
    const wall = attempts.map((attempt) => attempt.wallMs / 1000);
    return {
        frame: record.frame,
        renderSeconds: recordRenderSeconds(record),
        billedSeconds: wall.reduce((total, seconds) => total + seconds, stitchSeconds),
        costUsd: record.costUsd,
        memoryMb: record.memoryMb,
        coldStarts: attempts.map((attempt) => coldSeconds(attempt.startup)).filter((seconds) => seconds > 0),
        longestSeconds: Math.max(...wall) + stitchSeconds,
    };
}

/** A probe frame's render seconds at its frame number. */
type RenderPoint = Pick<ProbeSample, "frame" | "renderSeconds">;

/** Each frame's render seconds: linear between the probes around it, or the left or right probe's ("step"). */
function perFrame(
    frames: readonly number[],
    probes: readonly RenderPoint[],
    how: "linear" | "left" | "right",
): number[] {
    const sorted = [...probes].sort((a, b) => a.frame - b.frame);
    let at = 0;
    return frames.map((frame) => {
        while (at < sorted.length - 2 && sorted[at + 1].frame <= frame) at++;
        const left = sorted[Math.min(at, sorted.length - 1)];
        const right = sorted[Math.min(at + 1, sorted.length - 1)];
        if (frame <= left.frame || left === right) return left.renderSeconds;
        if (frame >= right.frame) return right.renderSeconds;
        if (how === "left") return left.renderSeconds;
        if (how === "right") return right.renderSeconds;
        const share = (frame - left.frame) / (right.frame - left.frame);
        return left.renderSeconds + share * (right.renderSeconds - left.renderSeconds);
    });
}

function sum(values: readonly number[]): number {
    return values.reduce((total, value) => total + value, 0);
}

function range(expected: number, low: number, high: number): Estimate {
    return { low: Math.min(low, expected), expected, high: Math.max(high, expected) };
}

/** The mean of the values, between the least and the most of them; 0 when there are none. */
function spread(values: readonly number[]): Estimate {
    if (values.length === 0) return { low: 0, expected: 0, high: 0 };
    return range(sum(values) / values.length, Math.min(...values), Math.max(...values));
}

function scaled(estimate: Estimate, factor: number, plus = 0): Estimate {
    return {
        low: estimate.low * factor + plus,
        expected: estimate.expected * factor + plus,
        high: estimate.high * factor + plus,
    };
}

function added(...estimates: Estimate[]): Estimate {
    return {
        low: sum(estimates.map((estimate) => estimate.low)),
        expected: sum(estimates.map((estimate) => estimate.expected)),
        high: sum(estimates.map((estimate) => estimate.high)),
    };
}

/**
 * The render time the probes predict for frames they did not render, against what those did: for each inner probe,
 * the relative error of the linear model built without it.
 */
function leftOutErrors(probes: readonly RenderPoint[]): number[] {
    const sorted = [...probes].sort((a, b) => a.frame - b.frame);
    const errors: number[] = [];
    for (let index = 1; index < sorted.length - 1; index++) {
        const others = sorted.filter((_, other) => other !== index);
        const [predicted] = perFrame([sorted[index].frame], others, "linear");
        const actual = sorted[index].renderSeconds;
        errors.push(Math.abs(predicted - actual) / Math.max(actual, 1e-6));
    }
    return errors;
}

/** The largest of leftOutErrors. Large: the probes disagree, and more are worth rendering. */
export function probeDisagreement(probes: readonly RenderPoint[]): number {
    return Math.max(0, ...leftOutErrors(probes));
}

/**
 * How far a frame's render time strays from the trend, as the probes show it: the median of leftOutErrors (a cut or
 * a peak misses a probe or two, noise misses most of them), at least NOISE.
 */
function renderNoise(probes: readonly RenderPoint[]): number {
    const errors = leftOutErrors(probes).sort((a, b) => a - b);
    if (errors.length === 0) return NOISE;
    const middle = errors.length / 2;
    const median = errors.length % 2 ? errors[Math.floor(middle)] : (errors[middle - 1] + errors[middle]) / 2;
    return Math.max(NOISE, median);
}

/**
 * The job's render seconds: each frame interpolated between the probes; the range as each frame's left or right
 * probe, widened by renderNoise.
 */
function renderSecondsOf(jobFrames: readonly number[], probes: readonly RenderPoint[]): Estimate {
    const linear = sum(perFrame(jobFrames, probes, "linear"));
    const left = sum(perFrame(jobFrames, probes, "left"));
    const right = sum(perFrame(jobFrames, probes, "right"));
    const noise = renderNoise(probes);
    return range(linear, Math.min(linear, left, right) * (1 - noise), Math.max(linear, left, right) * (1 + noise));
}

/** What a frame billed besides Blender's render. */
function overhead(probe: ProbeSample): number {
    return Math.max(0, probe.billedSeconds - probe.renderSeconds);
}

/**
 * What a frame bills besides its render (downloads of the assets, the upload, the records, a tiled frame's stitch),
 * and what a renderer's cold start adds to it. The records say which probe frames were cold (Blender started, the
 * scene downloaded or loaded); a cold start is what such a frame billed beyond the warm frames' mean, which holds
 * what a renderer does the first time besides those (its first S3 connections, say). With no warm probe frame to
 * compare with, a cold start is what its record measured, and the rest of the frame's overhead is per frame.
 */
function overheads(probes: readonly ProbeSample[]): { perFrame: Estimate; coldStart: Estimate } {
    const warm = probes.filter((probe) => probe.coldStarts.length === 0);
    const cold = probes.filter((probe) => probe.coldStarts.length > 0);
    if (warm.length === 0)
        return {
            perFrame: spread(probes.map((probe) => Math.max(0, overhead(probe) - sum(probe.coldStarts)))),
            coldStart: spread(probes.flatMap((probe) => probe.coldStarts)),
        };
    const perFrame = spread(warm.map(overhead));
    const coldStart = spread(
        cold.flatMap((probe) => {
            const each = Math.max(0, overhead(probe) - perFrame.expected) / probe.coldStarts.length;
            return probe.coldStarts.map(() => each);
        }),
    );
    return { perFrame, coldStart };
}

export function quoteJob(input: QuoteInput): Quote {
    const { jobFrames, probes } = input;
    if (probes.length === 0) throw new Error("a quote needs at least one probe frame");
    const frames = jobFrames.length;
    const tiles = input.tiles ?? 1;
    const renderSeconds = renderSecondsOf(jobFrames, probes);
    const { perFrame: overheadPerFrame, coldStart } = overheads(probes);
    // Each renderer the job keeps busy starts cold once; the probes' renderers are among them.
    const renderers = Math.max(1, Math.min(input.concurrency, frames * tiles));
    const billedSeconds = added(renderSeconds, scaled(overheadPerFrame, frames), scaled(coldStart, renderers));
    const memoryMb = Math.max(...probes.map((probe) => probe.memoryMb));
    const gbSeconds = scaled(billedSeconds, memoryMb / 1024);
    const price = lambdaPriceFor(input.region);
    const requestsUsd =
        frames *
            tiles *
            (REQUEST_PRICES.lambdaPerRequest + REQUEST_PRICES.sqsMessagesPerFrame * REQUEST_PRICES.sqsPerRequest) +
        REQUEST_PRICES.apiGatewayPerRequest;
    const costUsd = scaled(gbSeconds, price.usdPerGbSecond, requestsUsd);
    const longest = Math.max(...probes.map((probe) => probe.longestSeconds));
    const wall = (total: number) => Math.max(longest, total / renderers);
    const wallSeconds = {
        low: wall(billedSeconds.low),
        expected: wall(billedSeconds.expected),
        high: wall(billedSeconds.high) + longest,
    };
    return {
        jobId: input.jobId,
        probes: [...probes]
            .sort((a, b) => a.frame - b.frame)
            .map((probe) => ({
                frame: probe.frame,
                renderSeconds: probe.renderSeconds,
                billedSeconds: probe.billedSeconds,
                costUsd: probe.costUsd,
                coldSeconds: sum(probe.coldStarts),
            })),
        frames,
        ...(tiles > 1 ? { tiles } : {}),
        memoryMb,
        price,
        renderSecondsPerFrame: scaled(renderSeconds, 1 / frames),
        renderSeconds,
        overheadSecondsPerFrame: overheadPerFrame,
        coldStart: { seconds: coldStart, renderers },
        gbSeconds,
        costUsd,
        requestsUsd,
        wallSeconds,
        concurrency: input.concurrency,
        createdAt: input.now.toISOString(),
    };
}
