// The soak benchmark (bench/soak.ts, `npm run soak`: 2,000 frames) at 50 frames: two worker processes, one
// SIGKILLed while it holds a frame mid-render and restarted every 20 frames, and still every frame exactly once with
// exact counts; each frame a killed worker held came back and was rendered once.
import * as assert from "assert";
import { runSoak, soakSummary } from "../bench/soak";

describe("soak: 50 frames, 2 worker processes, a worker killed mid-frame and restarted every 20 frames", function () {
    it("delivers every frame exactly once, GET /jobs counts exact; a frame lost with a killed worker comes back and renders once", async function () {
        this.timeout(15 * 60_000);
        const result = await runSoak({ frames: 50, killEvery: 20 });
        console.log(`      ${soakSummary(result)}`);
        assert.deepStrictEqual(result.problems, []);
        assert.deepStrictEqual(result.status.frames, { total: 50, done: 50, failed: 0, pending: 0 });
        assert.strictEqual(result.kills, 2);
        // The soak waits for each victim to hold a frame mid-render; its problems include any such frame that did not
        // come back or was not rendered exactly once.
        assert.ok(result.killsHoldingFrame >= 1, `no kill caught a worker holding a frame: ${soakSummary(result)}`);
        assert.strictEqual(result.heldFrames.length, result.killsHoldingFrame);
        // A worker killed mid-frame costs that frame one more receive; nothing else should fail.
        assert.ok(
            result.retries >= result.killsHoldingFrame && result.retries <= result.kills,
            `${result.retries} retries for ${result.kills} kills (${result.killsHoldingFrame} mid-frame)`,
        );
        assert.ok(
            result.renders - result.frames <= result.kills,
            `${result.renders - result.frames} frames rendered twice`,
        );
    });
});
