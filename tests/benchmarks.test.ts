// Every benchmark under bench/ also runs in its smoke mode here, so one that breaks fails CI instead of rotting.
// (The soak benchmark's 50-frame run is tests/soak.test.ts.) Speed figures are printed, never judged: that is the
// full benchmarks' job (npm run bench:*). The quote's is a claim about itself, judged here: each actual inside the
// range the quote gave for it.
import * as assert from "assert";
import { execFile } from "child_process";
import * as path from "path";

const ROOT = path.join(__dirname, "..");

function runBenchmark(script: string): Promise<{ code: number; output: string }> {
    return new Promise((resolve) => {
        execFile(
            process.execPath,
            ["-r", "ts-node/register/transpile-only", path.join(ROOT, "bench", script), "--smoke"],
            { cwd: ROOT, maxBuffer: 16 * 1024 * 1024, timeout: 10 * 60_000 },
            (error, stdout, stderr) =>
                resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
        );
    });
}

describe("benchmarks in smoke mode", function () {
    this.timeout(10 * 60_000);

    it("bench/fanout.ts queues 200 frames through submitJob and prints its ratio to the sequential baseline", async function () {
        const { code, output } = await runBenchmark("fanout.ts");
        assert.strictEqual(code, 0, output);
        assert.match(output, /fanout on loopback: 200 frames in [\d.]+ s, [\d.]+× the sequential baseline/);
        const last = output
            .trim()
            .split("\n")
            .filter((line) => line.startsWith("fanout: "))
            .pop();
        assert.match(last ?? "", /^fanout: 200 frames in [\d.]+ s, [\d.]+× the sequential baseline$/, output);
        console.log(`      ${last}`);
    });

    it("bench/status.ts answers the status of a 2,000-frame job with 40 failures and prints it beside the full-read baseline", async function () {
        const { code, output } = await runBenchmark("status.ts");
        assert.strictEqual(code, 0, output);
        assert.match(output, /^summary run 1: [\d.]+ s, \d+ bytes, \d+ S3 requests$/m);
        assert.match(output, /^baseline \(every record read\): [\d.]+ s, \d+ bytes, \d+ S3 requests$/m);
        const last = output
            .trim()
            .split("\n")
            .filter((line) => line.startsWith("status: "))
            .pop();
        assert.match(
            last ?? "",
            /^status: 2000 frames, 40 failed, in [\d.]+ s and \d+ KB; the baseline [\d.]+ s and \d+ KB \([\d.]+× the time, [\d.]+× the bytes\)$/,
            output,
        );
        console.log(`      ${last}`);
    });

    it("bench/inspect.ts reads a generated scene, plain and zstd, from the emulator and prints time and memory", async function () {
        const { code, output } = await runBenchmark("inspect.ts");
        assert.strictEqual(code, 0, output);
        const rows = output.split("\n").filter((line) => /^\s+big(-zstd)?\.blend\s/.test(line));
        assert.strictEqual(rows.length, 2, output);
        assert.match(rows[0], /none .* peak RSS \d+ MiB .* scene frames 1-240x2/);
        assert.match(rows[1], /zstd .* peak RSS \d+ MiB .* scene frames 1-240x2/);
        for (const row of rows) console.log(`    ${row.trim()}`);
    });

    it("bench/quote.ts estimates a 24-frame shot whole and in 2 tiles on fresh local farms, renders the rest, and the actual cost of each is inside its quoted range", async function () {
        const { code, output } = await runBenchmark("quote.ts");
        assert.strictEqual(code, 0, output);
        const lines = output.split("\n").filter((line) => /^(whole frames|2 tiles a frame)[,:]/.test(line));
        assert.strictEqual(lines.length, 8, output);
        for (const line of lines) console.log(`      ${line}`);
        for (const [at, job] of [
            [0, "whole frames, 1 renderer"],
            [4, "2 tiles a frame, 2 renderer"],
        ] as const) {
            assert.match(
                lines[at],
                new RegExp(
                    `^${job}\\(s\\): 24 frames .* quoted from \\d+ probe frames \\(1: [\\d.]+ s, .*24: [\\d.]+ s\\)`,
                ),
            );
            assert.match(
                lines[at + 3],
                /billed besides the render: [\d.]+ s a frame .* cold start of [\d.]+ s .* × \d renderer/,
            );
            // The cost: what the quote is for. (Render seconds are printed: at this size a frame renders in a tenth of
            // a second, and other work on this machine moves that more than the probes can see.)
            for (const [line, what] of [[lines[at + 2], "cost"]] as const) {
                const figures = new RegExp(
                    `${what}: quoted \\$?([\\d.]+)(?: s)? \\(range \\$?([\\d.]+)(?: s)? to \\$?([\\d.]+)(?: s)?\\), actual \\$?([\\d.]+)`,
                ).exec(line);
                assert.ok(figures, line);
                const [low, high, actual] = [figures[2], figures[3], figures[4]].map(Number);
                assert.ok(
                    low <= actual && actual <= high,
                    `${job}: the actual ${what} is outside the quoted range: ${line}`,
                );
            }
        }
    });

    it("bench/tiles.ts renders one frame whole and as 2 tiles on the local farm, and prints the speed-up, the per-tile overhead and the Lambda model", async function () {
        const { code, output } = await runBenchmark("tiles.ts");
        assert.strictEqual(code, 0, output);
        const lines = output
            .split("\n")
            .filter((line) => /^(scene|whole frame|2 tiles|ratio|per-tile|oiiotool|model)/.test(line));
        assert.strictEqual(lines.length, 8, output);
        assert.match(lines[3], /^ratio whole \/ tiled wall time: [\d.]+x/);
        assert.match(lines[4], /^per-tile overhead: -?[\d.]+ s rendering, -?[\d.]+ s per attempt/);
        assert.match(
            lines[5],
            /^oiiotool stitching full-size 1920x1080 PNG tiles .*: 16 tiles [\d.]+ s, 64 tiles [\d.]+ s$/,
        );
        assert.match(
            lines[6],
            /^model, Lambda 6 vCPU per renderer, 16 tiles: [\d.]+ s .* vs the whole frame [\d.]+ s: [\d.]+x$/,
        );
        assert.match(lines[7], /^model, Lambda 6 vCPU per renderer, 64 tiles: /);
        for (const line of lines) console.log(`      ${line}`);
    });
});
