// A tiled frame in the job's frame summary: every tile attempt's cost counted once, the frame failed while a tile is
// out of attempts, a done tile staying done, the stitch alone making the frame done, a failed stitch not hidden by
// a duplicate's done tile, and a retry keeping the done tiles (unless the stitch failed: they render again).
import * as assert from "assert";
import type { FrameRecord } from "../functions/shared/contract";
import {
    applyRecord,
    applyRequeue,
    applyTileRecord,
    entryProgress,
    FrameSummaryEntry,
    stitchFailed,
    SUMMARY_VERSION,
    summarizeJob,
    SummaryShard,
} from "../functions/shared/frameSummary";
import { framesFailingAlike } from "../functions/renderer/jobControl";

const T0 = Date.parse("2026-12-01T00:00:00Z");

function tileRecord(index: number, status: FrameRecord["status"], startSecond: number, costUsd = 0.01): FrameRecord {
    return {
        jobId: "tiled",
        frame: 7,
        status,
        attempts: 1,
        startedAt: new Date(T0 + startSecond * 1000).toISOString(),
        finishedAt: new Date(T0 + (startSecond + 10) * 1000).toISOString(),
        wallMs: 10_000,
        blenderMs: 9_000,
        renderSeconds: 9,
        memoryMb: 10240,
        costUsd,
        tile: { index, of: 3 },
        ...(status === "done" ? {} : { error: { code: "render_failed", message: "no" } }),
    };
}

function apply(records: FrameRecord[]): FrameSummaryEntry | undefined {
    let entry: FrameSummaryEntry | undefined;
    for (const record of records) entry = (record.tile ? applyTileRecord : applyRecord)(entry, record);
    return entry;
}

describe("a tiled frame in the frame summary", function () {
    it("counts each tile attempt once, tiles done as a sub-count, and only the stitch makes the frame done", function () {
        const tiles = [tileRecord(0, "done", 0), tileRecord(1, "done", 0), tileRecord(2, "done", 1)];
        const entry = apply([...tiles, tiles[1]])!;
        assert.strictEqual(entry.s, "tiling");
        assert.deepStrictEqual(entry.d, [0, 1, 2]);
        assert.strictEqual(
            Math.round(entry.c * 1000) / 1000,
            0.03,
            "tiles 0 and 1 started the same second: both count",
        );
        assert.strictEqual(entryProgress(entry, 3), "pending");
        const stitched = applyRecord(entry, {
            ...tiles[0],
            tile: undefined,
            status: "done",
            costUsd: 0.0301,
            stitch: { of: 3, seconds: 0.5, costUsd: 0.0001 },
        });
        assert.strictEqual(stitched.s, "done");
        assert.strictEqual(stitched.d, undefined);
        assert.strictEqual(Math.round(stitched.c * 10000) / 10000, 0.0301, "the stitch adds its own cost only");
        assert.strictEqual(stitched.r, 27, "render seconds are the tiles'");
        // A late duplicate of a tile after the stitch: its cost counts, the frame stays done.
        const late = applyTileRecord(stitched, tileRecord(2, "retrying", 30));
        assert.strictEqual(late.s, "done");
    });

    it("reads failed while a tile is out of attempts, retrying while one comes back; a done tile stays done", function () {
        const failing = apply([tileRecord(0, "done", 0), tileRecord(1, "retrying", 0), tileRecord(2, "failed", 2)])!;
        assert.strictEqual(failing.s, "failed");
        assert.deepStrictEqual([failing.d, failing.w, failing.x], [[0], [1], [2]]);
        assert.strictEqual(entryProgress(failing, 3), "failed");
        const duplicate = applyTileRecord(failing, tileRecord(0, "failed", 40));
        assert.deepStrictEqual(duplicate.d, [0], "a duplicate's failure does not undo a done tile");
        // A retry requeues it: the done tile stays, the others go again.
        const requeued = applyRequeue(duplicate, T0 + 60_000)!;
        assert.strictEqual(requeued.s, "requeued");
        assert.deepStrictEqual([requeued.d, requeued.w, requeued.x], [[0], undefined, undefined]);
        const recovered = applyTileRecord(
            applyTileRecord(requeued, tileRecord(1, "done", 70)),
            tileRecord(2, "done", 71),
        );
        assert.strictEqual(recovered.s, "tiling");
        assert.deepStrictEqual(recovered.d, [0, 1, 2]);
    });

    it("a failed stitch stays visible when a duplicate tile is done again", function () {
        const tiles = [tileRecord(0, "done", 0), tileRecord(1, "done", 0), tileRecord(2, "done", 1)];
        const failedStitch = applyRecord(apply(tiles), {
            ...tiles[2],
            tile: undefined,
            status: "retrying",
            startedAt: new Date(T0 + 20_000).toISOString(),
            finishedAt: new Date(T0 + 21_000).toISOString(),
            error: { code: "stitch_failed", message: "no" },
        });
        assert.strictEqual(failedStitch.s, "retrying");
        const after = applyTileRecord(failedStitch, tileRecord(1, "done", 25));
        assert.strictEqual(after.s, "retrying");
        assert.strictEqual(after.e, "stitch_failed");
    });

    it("a retry of a frame whose stitch failed forgets its done tiles; one whose stitch was pending elsewhere keeps them", function () {
        const tiles = [tileRecord(0, "done", 0), tileRecord(1, "done", 0), tileRecord(2, "done", 1)];
        const stitchFailure = (code: string) =>
            applyRecord(apply(tiles), {
                ...tiles[2],
                tile: undefined,
                status: "failed",
                attempts: 3,
                startedAt: new Date(T0 + 20_000).toISOString(),
                finishedAt: new Date(T0 + 21_000).toISOString(),
                error: { code, message: "no" },
            });
        const failedStitch = stitchFailure("stitch_failed");
        assert.ok(stitchFailed(failedStitch));
        const requeued = applyRequeue(failedStitch, T0 + 60_000)!;
        assert.strictEqual(requeued.s, "requeued");
        assert.strictEqual(requeued.d, undefined, "its tiles render again");
        assert.strictEqual(requeued.c, failedStitch.c, "what they cost stays counted");
        const pending = stitchFailure("stitch_pending");
        assert.ok(!stitchFailed(pending));
        assert.deepStrictEqual(applyRequeue(pending, T0 + 60_000)!.d, [0, 1, 2], "the retry stitches its tiles");
        // A frame failed by a tile out of attempts is no failed stitch: its done tiles stay.
        const failingTile = apply([tileRecord(0, "done", 0), tileRecord(1, "failed", 0)])!;
        assert.ok(!stitchFailed(failingTile));
        assert.deepStrictEqual(applyRequeue(failingTile, T0 + 60_000)!.d, [0]);
    });

    it("fail-fast counts a tiled frame's failing tiles: a one-frame tiled job stops; a done tile means something renders", function () {
        const failing = (tile: number, second: number) => ({
            ...tileRecord(tile, "retrying", second),
            error: { code: "tiles_not_exact", message: "no" },
        });
        const shardOf = (entry: FrameSummaryEntry): SummaryShard => ({
            v: SUMMARY_VERSION,
            jobId: "tiled",
            shard: "0-0",
            updatedAt: 0,
            frames: { "7": entry },
        });
        const three = apply([failing(0, 0), failing(1, 0), failing(2, 1)])!;
        assert.strictEqual(
            framesFailingAlike(summarizeJob({ frames: [7] }, [shardOf(three)]), 3, "tiles_not_exact"),
            3,
        );
        const two = apply([failing(0, 0), failing(1, 0)])!;
        assert.strictEqual(framesFailingAlike(summarizeJob({ frames: [7] }, [shardOf(two)]), 3, "tiles_not_exact"), 0);
        const oneDone = apply([failing(0, 0), failing(1, 0), failing(2, 1), tileRecord(1, "done", 5)])!;
        assert.strictEqual(
            framesFailingAlike(summarizeJob({ frames: [7] }, [shardOf(oneDone)]), 2, "tiles_not_exact"),
            0,
            "a tile rendered: the scene is not what fails",
        );
    });
});
