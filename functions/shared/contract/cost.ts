// What rendering costs: Lambda's price, one invocation's cost, and a job's quote (what it will cost, measured first).

/** AWS Lambda x86 price per GB-second, us-east-1, first tier: https://aws.amazon.com/lambda/pricing/ */
export const LAMBDA_X86_USD_PER_GB_SECOND = 0.0000166667;

/** Estimated Lambda cost of one invocation. */
export function lambdaCostUsd(wallMs: number, memoryMb: number): number {
    return (wallMs / 1000) * (memoryMb / 1024) * LAMBDA_X86_USD_PER_GB_SECOND;
}

/** A range: the low and high ends and the value expected between them. */
export interface Estimate {
    low: number;
    expected: number;
    high: number;
}

/**
 * What a job will cost and take, measured before it runs: probe frames rendered at the job's settings on the farm
 * itself (`render-farm estimate`). Written as quote.json beside the frames it downloads.
 */
export interface Quote {
    jobId: string;
    /**
     * The probe frames rendered, and each one's render seconds, billed seconds (a tiled frame's: its tiles' and its
     * stitch's), cost, and the seconds of its billing that were a renderer's cold start.
     */
    probes: { frame: number; renderSeconds: number; billedSeconds: number; costUsd: number; coldSeconds?: number }[];
    frames: number;
    /** A tiled job: each frame is this many invocations. */
    tiles?: number;
    memoryMb: number;
    /** USD per GB-second used, its region, and where the price comes from. */
    price: { usdPerGbSecond: number; region: string; source: string };
    renderSecondsPerFrame: Estimate;
    /** Render seconds for the whole job (every frame). */
    renderSeconds: Estimate;
    /**
     * Seconds billed per frame besides Blender's render and a renderer's cold start: the assets' downloads, the
     * upload, the records, a tiled frame's stitch.
     */
    overheadSecondsPerFrame?: Estimate;
    /** A renderer's cold start (Blender's start, the scene's download and load), paid once by each of `renderers`. */
    coldStart?: { seconds: Estimate; renderers: number };
    /** Billed GB-seconds for the whole job. */
    gbSeconds: Estimate;
    /** USD for the whole job: Lambda duration plus requests, SQS and API Gateway. */
    costUsd: Estimate;
    /** Of costUsd: the requests, SQS and API Gateway (the rest is Lambda's duration, what a job's ledger counts). */
    requestsUsd?: number;
    /** Wall seconds at the farm's concurrency. */
    wallSeconds: Estimate;
    concurrency: number;
    createdAt: string;
}
