// What a job will cost and take, from its probe frames (rendered on the farm at the job's settings): each frame's
// render time is interpolated between the probes around it, so a shot that gets heavier over time is priced as such.
// The range holds the same sum with each frame priced as its left or its right probe instead, widened by the probes'
// own noise; the wall time follows from the farm's concurrency.
import type { Estimate, Quote } from "../functions/shared/contract";
import { lambdaPriceFor, REQUEST_PRICES } from "./pricing";

export interface ProbeSample {
    frame: number;
    renderSeconds: number;
    /** The invocation's duration, as Lambda bills it (downloads and Blender's start included). */
    billedSeconds: number;
    costUsd: number;
    memoryMb: number;
}

export interface QuoteInput {
    jobId: string;
    jobFrames: readonly number[];
    probes: readonly ProbeSample[];
    concurrency: number;
    region: string;
    now: Date;
}

/** Widening of the range for what the probes cannot see: run-to-run noise of one frame's render time. */
const NOISE = 0.05;

/** Each frame's render seconds: linear between the probes around it, or the left or right probe's ("step"). */
function perFrame(
    frames: readonly number[],
    probes: readonly ProbeSample[],
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

function scaled(estimate: Estimate, factor: number, plus = 0): Estimate {
    return {
        low: estimate.low * factor + plus,
        expected: estimate.expected * factor + plus,
        high: estimate.high * factor + plus,
    };
}

/**
 * The render time the probes predict for frames they did not render, against what those did: the largest relative
 * error of the linear model built without each inner probe. Large: the probes disagree, and more are worth rendering.
 */
export function probeDisagreement(probes: readonly ProbeSample[]): number {
    const sorted = [...probes].sort((a, b) => a.frame - b.frame);
    let worst = 0;
    for (let index = 1; index < sorted.length - 1; index++) {
        const others = sorted.filter((_, other) => other !== index);
        const [predicted] = perFrame([sorted[index].frame], others, "linear");
        const actual = sorted[index].renderSeconds;
        worst = Math.max(worst, Math.abs(predicted - actual) / Math.max(actual, 1e-6));
    }
    return worst;
}

export function quoteJob(input: QuoteInput): Quote {
    const { jobFrames, probes } = input;
    if (probes.length === 0) throw new Error("a quote needs at least one probe frame");
    const linear = sum(perFrame(jobFrames, probes, "linear"));
    const left = sum(perFrame(jobFrames, probes, "left"));
    const right = sum(perFrame(jobFrames, probes, "right"));
    const renderSeconds = range(
        linear,
        Math.min(linear, left, right) * (1 - NOISE),
        Math.max(linear, left, right) * (1 + NOISE),
    );
    const frames = jobFrames.length;
    // What an invocation bills besides Blender's render: downloads, the scene's load, the upload, the records.
    const overhead = sum(probes.map((probe) => Math.max(0, probe.billedSeconds - probe.renderSeconds))) / probes.length;
    const billedSeconds = scaled(renderSeconds, 1, overhead * frames);
    const memoryMb = Math.max(...probes.map((probe) => probe.memoryMb));
    const gbSeconds = scaled(billedSeconds, memoryMb / 1024);
    const price = lambdaPriceFor(input.region);
    const requestsUsd =
        frames * (REQUEST_PRICES.lambdaPerRequest + REQUEST_PRICES.sqsMessagesPerFrame * REQUEST_PRICES.sqsPerRequest) +
        REQUEST_PRICES.apiGatewayPerRequest;
    const costUsd = scaled(gbSeconds, price.usdPerGbSecond, requestsUsd);
    const renderers = Math.max(1, Math.min(input.concurrency, frames));
    const longest = Math.max(...probes.map((probe) => probe.billedSeconds));
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
            .map(({ frame, renderSeconds, billedSeconds: billed, costUsd: cost }) => ({
                frame,
                renderSeconds,
                billedSeconds: billed,
                costUsd: cost,
            })),
        frames,
        memoryMb,
        price,
        renderSecondsPerFrame: scaled(renderSeconds, 1 / frames),
        renderSeconds,
        gbSeconds,
        costUsd,
        wallSeconds,
        concurrency: input.concurrency,
        createdAt: input.now.toISOString(),
    };
}
