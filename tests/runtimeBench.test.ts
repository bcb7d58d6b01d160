// The Lambda runtime path benchmark (bench/runtime.ts, `npm run bench:runtime`) in its smoke mode: one cold start
// and five warm invocations per function, each line printed with its baseline and ratio.
import * as assert from "assert";
import * as childProcess from "child_process";
import * as path from "path";
import { PROJECT_ROOT } from "../local/stackProgram";

const MEASURE = String.raw`runtime path median ([\d.]+) ms \(p95 [\d.]+\), (.+) median ([\d.]+) ms \(p95 [\d.]+\); overhead (-?[\d.]+) ms; ratio ([\d.]+)x`;

describe("the runtime benchmark's smoke run (npm run bench:runtime -- --smoke)", function () {
    it("prints cold start and per-invocation figures beside their in-process baselines", function () {
        // The first run on a machine installs image/package.json (a native addon build) unless npm test did.
        this.timeout(16 * 60_000);
        const output = childProcess.execFileSync(
            process.execPath,
            [require.resolve("ts-node/dist/bin.js"), "--transpile-only", path.join("bench", "runtime.ts"), "--smoke"],
            {
                cwd: PROJECT_ROOT,
                encoding: "utf8",
                timeout: 15 * 60_000,
                env: { ...process.env, NODE_NO_WARNINGS: "1" },
            },
        );
        console.log(output.replace(/^/gm, "      ").trimEnd());
        for (const label of [
            "cold start, renderer (image ENTRYPOINT + CMD, spawn to first /next)",
            "cold start, job API (nodejs22.x runtime client, spawn to first /next)",
            "invocation, renderer (an empty SQS batch)",
            "invocation, job API (a 404 from its router)",
        ]) {
            const escaped = label.replace(/[()/+.{}]/g, "\\$&");
            const match = new RegExp(`^${escaped}: ${MEASURE}$`, "m").exec(output);
            assert.ok(match, `a line "${label}: ..." in:\n${output}`);
            const [runtimeMs, baselineMs, overheadMs, ratio] = [match[1], match[3], match[4], match[5]].map(Number);
            assert.ok(runtimeMs > 0 && baselineMs >= 0, label);
            // The figures are printed rounded to 0.0001 ms; the ratio was computed before rounding.
            const rounding = 0.00005;
            assert.ok(
                Math.abs(runtimeMs - baselineMs - overheadMs) <= 3 * rounding,
                `${label}: overhead is the difference`,
            );
            const lowest = (runtimeMs - rounding) / (baselineMs + rounding);
            const highest = baselineMs > rounding ? (runtimeMs + rounding) / (baselineMs - rounding) : Infinity;
            assert.ok(ratio >= lowest - 0.05 && ratio <= highest + 0.05, `${label}: ratio ${ratio}`);
        }
    });
});
