// `render-farm estimate`: probe frames rendered on the farm price the job before it runs, and the job keeps them.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { JobStatus, Quote } from "../functions/shared/contract";
import { probeFramesOf } from "../functions/jobApi/probes";
import { lambdaPriceFor } from "../cli/pricing";
import { ProbeSample, probeDisagreement, quoteJob } from "../cli/quote";
import { runCli } from "./support/cliRunner";
import { api, frameRecords, range } from "./support/farmClient";
import { makeScene } from "./support/scenes";
import { ServeProcess, startServe, stopServe } from "./support/serveProcess";

function probe(frame: number, renderSeconds: number): ProbeSample {
    return { frame, renderSeconds, billedSeconds: renderSeconds + 0.5, costUsd: 0, memoryMb: 10240 };
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
        });
    });
});
