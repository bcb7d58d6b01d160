// `render-farm estimate`: probe frames rendered on the farm price the job before it runs, and the job keeps them.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROBE_AGREEMENT, PROBE_ROUNDS } from "../cli/estimate";
import { lambdaPriceFor, REQUEST_PRICES } from "../cli/pricing";
import { ProbeSample, probeDisagreement, probeSampleOf, quoteJob } from "../cli/quote";
import { probeFramesOf } from "../functions/jobApi/probes";
import { FrameRecord, JobStatus, lambdaCostUsd, Quote, StartupCost } from "../functions/shared/contract";
import { runCli } from "./support/cliRunner";
import { api, frameRecords, range } from "./support/farmClient";
import { makeScene } from "./support/scenes";
import { ServeProcess, startServe, stopServe } from "./support/serveProcess";

function probe(frame: number, renderSeconds: number): ProbeSample {
    const billedSeconds = renderSeconds + 0.5;
    return {
        frame,
        renderSeconds,
        billedSeconds,
        costUsd: 0,
        memoryMb: 10240,
        coldStarts: [],
        longestSeconds: billedSeconds,
    };
}

const MEMORY_MB = 10240;
const WARM: StartupCost = { blenderSeconds: 0, downloadSeconds: 0, sceneBytes: 0, loadSeconds: 0, sceneKept: true };

/** A done record as a renderer writes it: billed for its wall time at MEMORY_MB. */
function record(frame: number, renderSeconds: number, wallSeconds: number, startup = WARM): FrameRecord {
    return {
        jobId: "j",
        frame,
        status: "done",
        attempts: 1,
        startedAt: new Date(frame * 1000).toISOString(),
        finishedAt: new Date(frame * 1000 + wallSeconds * 1000).toISOString(),
        wallMs: wallSeconds * 1000,
        blenderMs: wallSeconds * 1000,
        renderSeconds,
        memoryMb: MEMORY_MB,
        costUsd: lambdaCostUsd(wallSeconds * 1000, MEMORY_MB),
        logTail: "",
        startup,
    };
}

/** A tiled frame's tiles' records and its stitched record, as the renderers write them (frameStitch.ts). */
function tiledRecords(
    frame: number,
    tiles: { renderSeconds: number; wallSeconds: number; startup?: StartupCost }[],
    stitchSeconds: number,
): { frame: FrameRecord; tiles: FrameRecord[] } {
    const tileRecords = tiles.map((tile, index) => ({
        ...record(frame, tile.renderSeconds, tile.wallSeconds, tile.startup),
        tile: { index, of: tiles.length },
    }));
    const stitchCost = lambdaCostUsd(stitchSeconds * 1000, MEMORY_MB);
    const wallSeconds = Math.max(...tiles.map((tile) => tile.wallSeconds)) + stitchSeconds;
    return {
        frame: {
            ...record(frame, 0, wallSeconds),
            renderSeconds: tiles.reduce((total, tile) => total + tile.renderSeconds, 0),
            costUsd: tileRecords.reduce((total, tile) => total + tile.costUsd, 0) + stitchCost,
            stitch: { of: tiles.length, seconds: stitchSeconds, costUsd: stitchCost },
            startup: undefined,
        },
        tiles: tileRecords,
    };
}

function closeTo(actual: number, expected: number, what: string): void {
    assert.ok(
        Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)),
        `${what}: ${actual}, not ${expected}`,
    );
}

/** The probes `render-farm estimate` ends with for a shot whose frame n renders in curve(n) s: its rounds, in order. */
function probesFor(frames: number[], curve: (frame: number) => number): ProbeSample[] {
    let probes: ProbeSample[] = [];
    for (const count of PROBE_ROUNDS) {
        probes = probeFramesOf(frames, count).map((frame) => probe(frame, curve(frame)));
        if (probeDisagreement(probes) <= PROBE_AGREEMENT) break;
    }
    return probes;
}

describe("estimate: a quote from probe frames rendered on the farm", function () {
    describe("the quote (cli/quote.ts)", function () {
        it("sums a linear trend exactly, and its range holds each frame priced as its left or right probe", function () {
            const frames = range(1, 101);
            const probes = [probe(1, 1), probe(51, 6), probe(101, 11)]; // 1 s growing by 0.1 s a frame
            const quote = quoteJob({
                jobId: "j",
                jobFrames: frames,
                probes,
                concurrency: 10,
                region: "us-east-1",
                now: new Date(0),
            });
            const exact = frames.reduce((sum, frame) => sum + 1 + (frame - 1) * 0.1, 0);
            assert.ok(Math.abs(quote.renderSeconds.expected - exact) < 1e-6, `${quote.renderSeconds.expected}`);
            assert.ok(quote.renderSeconds.low < exact && quote.renderSeconds.high > exact);
            assert.ok(Math.abs(quote.renderSecondsPerFrame.expected - exact / 101) < 1e-6);
            // Billed: render plus the probes' own overhead (0.5 s) per frame, at 10 GB.
            assert.ok(Math.abs(quote.gbSeconds.expected - (exact + 0.5 * 101) * 10) < 1e-6);
            const price = lambdaPriceFor("us-east-1").usdPerGbSecond;
            assert.ok(quote.costUsd.expected > quote.gbSeconds.expected * price, "requests are priced too");
            assert.ok(quote.costUsd.expected < quote.gbSeconds.expected * price * 1.01);
            // 101 frames on 10 renderers: a tenth of the billed seconds, never less than the longest frame.
            assert.ok(Math.abs(quote.wallSeconds.expected - (exact + 0.5 * 101) / 10) < 1e-6);
            assert.strictEqual(probeDisagreement(probes), 0);
        });

        // Shots whose render time is no straight line, with the probes the estimate's rounds pick: the quote sums each
        // frame interpolated between its probes, close to the exact sum, which its range holds. (The flat mean of the
        // probes misses each by 10 % or more: interleaved probes are not evenly spaced.)
        const curves: [string, number, (frame: number) => number][] = [
            ["a rise: flat, then growing 5x over the second half", 100, (n) => (n <= 50 ? 2 : 2 + ((n - 50) / 50) * 8)],
            ["a peak: 2 s with a 10 s swell around frame 45", 60, (n) => 2 + 8 * Math.exp(-(((n - 45) / 12) ** 2))],
            ["a cut: 3 s a frame, 9 s from frame 71 on", 100, (n) => (n <= 70 ? 3 : 9)],
        ];
        for (const [shape, count, curve] of curves) {
            it(`${shape}: the quote is within 2 % of the exact sum of ${count} frames, inside its range`, function () {
                const frames = range(1, count);
                const probes = probesFor(frames, curve);
                const quote = quoteJob({
                    jobId: "j",
                    jobFrames: frames,
                    probes,
                    concurrency: 10,
                    region: "us-east-1",
                    now: new Date(0),
                });
                const exact = frames.reduce((sum, frame) => sum + curve(frame), 0);
                const predicted = quote.renderSeconds;
                const error = (predicted.expected - exact) / exact;
                const said = `predicted ${predicted.expected.toFixed(1)} s (${predicted.low.toFixed(1)} to ${predicted.high.toFixed(1)}) from probes ${probes.map((one) => one.frame)}, exact ${exact.toFixed(1)} s`;
                assert.ok(Math.abs(error) <= 0.02, said);
                assert.ok(predicted.low <= exact && exact <= predicted.high, said);
                // Billed: the render plus the probes' 0.5 s a frame besides it.
                closeTo(quote.gbSeconds.expected, (predicted.expected + 0.5 * count) * (MEMORY_MB / 1024), "GB-s");
            });
        }

        it("a noisy shot (frames stray from 4 s by +25, -25, 0, +10, -10 % in turn, as on a busy machine): the range widens by the probes' scatter and holds the exact sum", function () {
            const frames = range(1, 120);
            const jitter = [0.25, -0.25, 0, 0.1, -0.1];
            const curve = (n: number) => 4 * (1 + jitter[n % jitter.length]);
            const probes = probesFor(frames, curve);
            const quote = quoteJob({
                jobId: "j",
                jobFrames: frames,
                probes,
                concurrency: 10,
                region: "us-east-1",
                now: new Date(0),
            });
            const exact = frames.reduce((sum, frame) => sum + curve(frame), 0);
            const { low, expected, high } = quote.renderSeconds;
            const said = `${expected} (${low} to ${high}) from probes ${probes.map((one) => one.frame)}, exact ${exact}`;
            assert.ok(low <= exact && exact <= high, said);
            // Widened by the probes' scatter, not by a fixed margin: a quiet shot's range is its sum, 5 % either side.
            const quiet = quoteJob({
                jobId: "j",
                jobFrames: frames,
                probes: probesFor(frames, () => 4),
                concurrency: 10,
                region: "us-east-1",
                now: new Date(0),
            });
            assert.deepStrictEqual(quiet.renderSeconds, { low: 456, expected: 480, high: 504 });
        });

        it("prices a renderer's cold start once per renderer and the warm overhead per frame (60 frames, 1 renderer, then 4)", function () {
            const frames = range(1, 60);
            // Frame 1 started Blender (2 s), downloaded the scene (0.5 s) and loaded it (1.5 s); each frame bills 0.4 s
            // besides its render and a cold start.
            const cold: StartupCost = {
                ...WARM,
                blenderSeconds: 2,
                downloadSeconds: 0.5,
                sceneBytes: 1e6,
                loadSeconds: 1.5,
            };
            const probes = [record(1, 3, 3 + 0.4 + 4, cold), record(31, 3, 3.4), record(60, 3, 3.4)].map((one) =>
                probeSampleOf(one),
            );
            const quoteAt = (concurrency: number) =>
                quoteJob({ jobId: "j", jobFrames: frames, probes, concurrency, region: "us-east-1", now: new Date(0) });
            const one = quoteAt(1);
            closeTo(one.renderSeconds.expected, 180, "render seconds");
            closeTo(one.overheadSecondsPerFrame!.expected, 0.4, "overhead per frame");
            assert.deepStrictEqual(one.coldStart, { seconds: { low: 4, expected: 4, high: 4 }, renderers: 1 });
            closeTo(one.gbSeconds.expected, (180 + 0.4 * 60 + 4) * 10, "GB-s at 1 renderer");
            const price = lambdaPriceFor("us-east-1").usdPerGbSecond;
            closeTo(one.costUsd.expected, one.gbSeconds.expected * price + one.requestsUsd!, "cost");
            // Every probe frame on a renderer of its own: no warm frame to compare with, so what the records measured.
            const allCold = [record(1, 3, 7.4, cold), record(31, 3, 7.4, cold), record(60, 3, 7.4, cold)];
            const three = quoteJob({
                jobId: "j",
                jobFrames: frames,
                probes: allCold.map((one) => probeSampleOf(one)),
                concurrency: 3,
                region: "us-east-1",
                now: new Date(0),
            });
            closeTo(three.gbSeconds.expected, (180 + 0.4 * 60 + 4 * 3) * 10, "GB-s with no warm probe frame");
            const four = quoteAt(4);
            closeTo(four.gbSeconds.expected, (180 + 0.4 * 60 + 4 * 4) * 10, "GB-s at 4 renderers");
            closeTo(four.wallSeconds.expected, (180 + 0.4 * 60 + 4 * 4) / 4, "wall seconds at 4 renderers");
            // A scene loaded again for every frame (an unbaked simulation) pays its load every frame.
            const reloaded = [
                record(1, 3, 3 + 0.4 + 2.5 + 1.5, { ...cold, sceneKept: false }),
                record(31, 3, 3 + 0.4 + 1.5, { ...WARM, loadSeconds: 1.5, sceneKept: false }),
                record(60, 3, 3 + 0.4 + 1.5, { ...WARM, loadSeconds: 1.5, sceneKept: false }),
            ].map((one) => probeSampleOf(one));
            const simulation = quoteJob({
                jobId: "j",
                jobFrames: frames,
                probes: reloaded,
                concurrency: 1,
                region: "us-east-1",
                now: new Date(0),
            });
            closeTo(simulation.gbSeconds.expected, (180 + 1.9 * 60 + 2.5) * 10, "GB-s of a scene reloaded every frame");
        });

        it("a job made of its probe frames is quoted at what their records billed, whole or tiled (tiles and stitch)", function () {
            const cold = (blenderSeconds: number): StartupCost => ({
                ...WARM,
                blenderSeconds,
                downloadSeconds: 0.3,
                sceneBytes: 5e5,
                loadSeconds: 0.7,
            });
            const whole = [record(1, 2, 4.5, cold(1.2)), record(2, 2.5, 3.1), record(3, 3.5, 6.6, cold(1.6))];
            const tiled = [
                tiledRecords(
                    1,
                    [
                        { renderSeconds: 1, wallSeconds: 3.9, startup: cold(1.4) },
                        { renderSeconds: 1.2, wallSeconds: 4.2, startup: cold(1.1) },
                    ],
                    0.6,
                ),
                tiledRecords(
                    2,
                    [
                        { renderSeconds: 1.5, wallSeconds: 2 },
                        { renderSeconds: 1.4, wallSeconds: 2.1 },
                    ],
                    0.5,
                ),
                tiledRecords(
                    3,
                    [
                        { renderSeconds: 2, wallSeconds: 2.6 },
                        { renderSeconds: 1.9, wallSeconds: 2.4 },
                    ],
                    0.7,
                ),
            ];
            const cases: [string, FrameRecord[], ProbeSample[], number][] = [
                ["whole", whole, whole.map((one) => probeSampleOf(one)), 1],
                ["tiled", tiled.map((one) => one.frame), tiled.map((one) => probeSampleOf(one.frame, one.tiles)), 2],
            ];
            for (const [what, records, probes, tiles] of cases) {
                // Two renderers: as many as the cold starts the records show.
                const quote = quoteJob({
                    jobId: "j",
                    jobFrames: [1, 2, 3],
                    probes,
                    tiles,
                    concurrency: 2,
                    region: "us-east-1",
                    now: new Date(0),
                });
                const billed = records.reduce((sum, one) => sum + one.costUsd, 0);
                closeTo(quote.costUsd.expected - quote.requestsUsd!, billed, `${what}: the cost`);
                assert.ok(
                    quote.costUsd.low - quote.requestsUsd! <= billed &&
                        billed <= quote.costUsd.high - quote.requestsUsd!,
                );
                closeTo(
                    quote.renderSeconds.expected,
                    records.reduce((sum, one) => sum + one.renderSeconds!, 0),
                    `${what}: render`,
                );
            }
            const perRequest =
                REQUEST_PRICES.lambdaPerRequest + REQUEST_PRICES.sqsMessagesPerFrame * REQUEST_PRICES.sqsPerRequest;
            const requests = (tiles: number) =>
                quoteJob({
                    jobId: "j",
                    jobFrames: [1, 2, 3],
                    probes: [probe(1, 1)],
                    tiles,
                    concurrency: 2,
                    region: "us-east-1",
                    now: new Date(0),
                }).requestsUsd!;
            closeTo(requests(4) - requests(1), 3 * 3 * perRequest, "a tile is a request and its messages");
            assert.throws(
                () => probeSampleOf(tiled[0].frame, tiled[0].tiles.slice(1)),
                /stitched from 2 tiles but 1 tile records were read/,
            );
        });

        it("says when the probes disagree with a straight line, and names an unlisted region's price", function () {
            assert.ok(probeDisagreement([probe(1, 1), probe(50, 1), probe(100, 9)]) > 0.5);
            assert.match(lambdaPriceFor("xx-nowhere-1").source, /not in the table: priced at us-east-1's/);
        });

        it("asks the job API for the first probe frames of the interleaved order", function () {
            assert.deepStrictEqual(probeFramesOf(range(1, 9), 3), [1, 5, 9]);
            assert.deepStrictEqual(probeFramesOf(range(1, 9), 7), [1, 2, 3, 4, 5, 7, 9]);
        });
    });

    describe("on a local farm", function () {
        let serve: ServeProcess | undefined;

        after(async function () {
            await stopServe(serve);
        });

        it("renders probe frames only, prints and writes the quote; render with the same --job-id renders the rest and keeps them", async function () {
            const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "estimate-"));
            serve = await startServe(["--port", "0", "--workers", "1", "--data-dir", dataDir]);
            // 31 frames: more than the most probe frames an estimate renders (15), so the job stays a probe job.
            const scene = await makeScene({ frames: "1-31", resolutionX: 64, resolutionY: 48, samples: 4 });
            const shot = path.join(dataDir, "shot");
            fs.mkdirSync(shot);
            fs.copyFileSync(scene.blendPath, path.join(shot, "scene.blend"));
            const out = path.join(dataDir, "out");
            const common = [path.join(shot, "scene.blend"), "--job-id", "priced", "--data-dir", dataDir, "--out", out];

            const estimate = await runCli(["estimate", ...common], { timeoutMs: 300_000 });
            assert.strictEqual(estimate.code, 0, estimate.stderr);
            assert.match(estimate.stdout, /^job priced: 31 frame\(s\), priced from \d+ probe frame\(s\)/m);
            assert.match(estimate.stdout, /^cost: \$[\d.]+ \(\$[\d.]+ to \$[\d.]+\); /m);
            assert.match(estimate.stdout, /^wall time at 1 renderer\(s\) at once: /m);
            const quote = JSON.parse(fs.readFileSync(path.join(out, "quote.json"), "utf8")) as Quote;
            assert.strictEqual(quote.frames, 31);
            assert.ok(quote.probes.length >= 3, JSON.stringify(quote.probes));
            const probeFrames = quote.probes.map((probe) => probe.frame);
            for (const frame of [1, 16, 31]) assert.ok(probeFrames.includes(frame), `probe frames ${probeFrames}`);
            const probed = (await api(serve.outputs, "GET", "/jobs/priced")).body as JobStatus;
            assert.strictEqual(probed.state, "probed");
            assert.deepStrictEqual(probed.probe, { frames: quote.probes.length, of: 31 });
            assert.strictEqual(probed.frames.total, quote.probes.length);
            const probeRecords = await frameRecords(serve.outputs, "priced");
            assert.deepStrictEqual(
                probeRecords.map((record) => record.frame).sort((a, b) => a - b),
                quote.probes.map((probe) => probe.frame),
            );
            for (const probe of quote.probes) {
                const record = probeRecords.find((candidate) => candidate.frame === probe.frame)!;
                assert.strictEqual(probe.renderSeconds, record.renderSeconds, "the quote is made of the records");
                assert.strictEqual(probe.costUsd, record.costUsd);
            }

            const render = await runCli(["render", ...common, "--json"], { timeoutMs: 300_000 });
            assert.strictEqual(render.code, 0, render.stderr);
            const done = (await api(serve.outputs, "GET", "/jobs/priced")).body as JobStatus;
            assert.strictEqual(done.state, "complete");
            assert.deepStrictEqual(done.frames, { total: 31, done: 31, failed: 0, pending: 0 });
            assert.strictEqual(done.probe, undefined);
            const records = await frameRecords(serve.outputs, "priced");
            for (const before of probeRecords) {
                const after = records.find((record) => record.frame === before.frame)!;
                assert.strictEqual(
                    after.startedAt,
                    before.startedAt,
                    `probe frame ${before.frame} was not rendered again`,
                );
            }
            assert.strictEqual(records.length, 31);
            // The ledger's Lambda duration (every attempt) plus the requests: inside the quoted range.
            const actualCost = done.costUsd + (quote.requestsUsd ?? 0);
            const { low, high } = quote.costUsd;
            assert.ok(low <= actualCost && actualCost <= high, `actual $${actualCost} outside $${low} to $${high}`);
            // On this fresh farm the first probe frame started Blender and loaded the scene: paid once, by its one renderer.
            assert.ok(quote.probes[0].coldSeconds! > 0, JSON.stringify(quote.probes));
            assert.strictEqual(quote.coldStart?.renderers, 1);
        });
    });
});
