// The overhead benchmark (bench/overhead.ts, `npm run bench:overhead`) in its smoke mode: 3-frame scenes, one
// round. Times are printed, never asserted; what must hold is that the farm's frames are Blender's own and that a
// warm renderer starts Blender and loads the scene once for all its frames.
import * as assert from "assert";
import { overheadReport, runOverheadBench } from "../bench/overhead";

describe("bench:overhead --smoke: the local farm against `blender -b -a`, and a warm renderer handler", function () {
    it("renders every frame as `blender -a` does, and a warm handler loads the scene once", async function () {
        this.timeout(15 * 60_000);
        const result = await runOverheadBench({ smoke: true });
        for (const line of overheadReport(result)) console.log(`      ${line}`);
        for (const measured of result.cases) {
            assert.strictEqual(measured.maxDifference, 0, `${measured.case.label}: the farm's frames differ`);
            assert.ok(
                Number.isFinite(measured.ratio) && measured.ratio > 0,
                `${measured.case.label}: ratio ${measured.ratio}`,
            );
        }
        assert.strictEqual(result.warm.invocations, 3);
        assert.strictEqual(result.warm.blenderStarts, 1);
        assert.strictEqual(result.warm.sceneLoads, 1);
    });
});
