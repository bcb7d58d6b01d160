// A frame's last attempt, recorded as failed (renderer_killed) before it renders, in the job's frame summary: the
// frame reads pending until the invocation could still report, failed after; the attempt's own outcome replaces the
// record and is counted once; a tile's provisional failure does not hide another tile out of attempts; a retry's
// requeue clears it. The end-to-end case (a Lambda runtime killed on its last delivery): rendererLambda.test.ts.
import * as assert from "assert";
import type { FrameMessage, FrameRecord } from "../functions/shared/contract";
import {
    applyRecord,
    applyRequeue,
    applyTileRecord,
    entryProgress,
    FrameSummaryEntry,
    SUMMARY_VERSION,
    summarizeJob,
} from "../functions/shared/frameSummary";
import { lastAttemptRecord, RENDERER_KILLED } from "../functions/renderer/lastAttempt";
import { FRAME_HOLD_MARGIN_SECONDS } from "../functions/renderer/frameVisibility";

const SETTINGS = { maxReceiveCount: 3, memoryMb: 10240 };
const REMAINING_MS = 900_000;

const MESSAGE = {
    v: 1,
    jobId: "last",
    frame: 4,
    scene: "shots/last/scene.blend",
    sceneEtag: '"e"',
    assets: [],
    settings: { format: "PNG" },
    output: { bucket: "renders", key: "renders/last/frame_0004.png" },
} as unknown as FrameMessage;

function provisional(
    startedAt: Date,
    earlierAttempts: number | null | undefined,
    tile?: { index: number; of: number },
): FrameRecord {
    return lastAttemptRecord(
        MESSAGE,
        tile,
        { attempts: 3, startedAt, remainingMs: REMAINING_MS, earlierAttempts },
        SETTINGS,
    );
}

function outcome(record: FrameRecord, status: FrameRecord["status"], costUsd: number): FrameRecord {
    const { provisionalUntil: _until, ...rest } = record;
    return {
        ...rest,
        status,
        finishedAt: new Date(Date.parse(record.startedAt) + 60_000).toISOString(),
        wallMs: 60_000,
        blenderMs: 55_000,
        costUsd,
        ...(status === "done" ? { error: undefined } : { error: { code: "out_of_memory", message: "Blender used…" } }),
    };
}

describe("a frame's last attempt, recorded before it renders", function () {
    it("reads pending while the attempt may still report, failed with renderer_killed once its invocation is over", function () {
        const startedAt = new Date();
        const record = provisional(startedAt, 2);
        assert.strictEqual(record.status, "failed");
        assert.strictEqual(record.error?.code, RENDERER_KILLED);
        assert.match(
            record.error!.message,
            /^the renderer ended without reporting on the frame's last attempt \(3 of 3\), so its message went to the dead-letter queue: it was killed mid-frame, as Lambda ends a renderer that passes its memory \(10240 MB\) or its time \(the invocation had 900 s left\); render at a lower resolution/,
        );
        const until = startedAt.getTime() + REMAINING_MS + FRAME_HOLD_MARGIN_SECONDS * 1000;
        assert.strictEqual(record.provisionalUntil, new Date(until).toISOString());

        const entry = applyRecord(undefined, record);
        assert.strictEqual(entry.c, 0, "a provisional record costs nothing");
        assert.strictEqual(entryProgress(entry, 3, until - 1), "pending");
        assert.strictEqual(entryProgress(entry, 3, until), "failed");
        const shard = { v: SUMMARY_VERSION, jobId: "last", shard: "0-0", updatedAt: 0, frames: { 4: entry } } as const;
        const before = summarizeJob({ frames: [4] }, [shard], 3, until - 1);
        assert.deepStrictEqual([before.pending, before.failed, before.pendingBy.retrying], [1, 0, 1]);
        const after = summarizeJob({ frames: [4] }, [shard], 3, until);
        assert.deepStrictEqual([after.pending, after.failed, after.failedFrames], [0, 1, [4]]);
    });

    it("is replaced by the attempt's own outcome, whose cost counts once", function () {
        const record = provisional(new Date(), 2);
        const entry = applyRecord(undefined, record);
        const done = applyRecord(entry, outcome(record, "done", 0.05));
        assert.deepStrictEqual(
            [done.s, done.u, done.e, done.c, done.k.length],
            ["done", undefined, undefined, 0.05, 1],
        );
        const failed = applyRecord(entry, outcome(record, "failed", 0.05));
        assert.deepStrictEqual([failed.s, failed.u, failed.e, failed.c], ["failed", undefined, "out_of_memory", 0.05]);
        // No longer provisional: failed at once, not after the invocation's time.
        assert.strictEqual(entryProgress(failed, 3, Date.parse(record.startedAt)), "failed");
    });

    it("a tile's: pending while only provisional tiles fail, failed at once when another tile is out of attempts", function () {
        const startedAt = new Date();
        const until = Date.parse(provisional(startedAt, null, { index: 1, of: 3 }).provisionalUntil!);
        let entry: FrameSummaryEntry | undefined = applyTileRecord(
            undefined,
            provisional(startedAt, undefined, { index: 1, of: 3 }),
        );
        assert.deepStrictEqual([entry.s, entry.x, entry.p, entry.u], ["failed", [1], [1], until]);
        assert.strictEqual(entryProgress(entry, 3, until - 1), "pending");
        assert.strictEqual(entryProgress(entry, 3, until), "failed");
        const tileZero = outcome(provisional(startedAt, undefined, { index: 0, of: 3 }), "failed", 0.01);
        const withFailedTile = applyTileRecord(entry, tileZero);
        assert.strictEqual(entryProgress(withFailedTile, 3, until - 1), "failed");
        // Tile 1's own outcome: done; nothing provisional is left.
        entry = applyTileRecord(entry, outcome(provisional(startedAt, undefined, { index: 1, of: 3 }), "done", 0.01));
        assert.deepStrictEqual(
            [entry.s, entry.d, entry.x, entry.p, entry.u],
            ["tiling", [1], undefined, undefined, undefined],
        );
        assert.strictEqual(entry.c, 0.01);
    });

    it("a retry's requeue clears it", function () {
        const entry = applyRecord(undefined, provisional(new Date(), 2));
        const requeued = applyRequeue(entry, Date.now())!;
        assert.deepStrictEqual([requeued.s, requeued.u], ["requeued", undefined]);
        assert.strictEqual(entryProgress(requeued, 3, Number.MAX_SAFE_INTEGER), "pending");
    });

    it("names the attempts before it that left no record, when the frame's latest record is known", function () {
        const startedAt = new Date();
        assert.match(provisional(startedAt, null).error!.message, /; attempts 1 and 2 left no record either;/);
        assert.match(provisional(startedAt, 1).error!.message, /; attempt 2 left no record either;/);
        assert.doesNotMatch(provisional(startedAt, 2).error!.message, /left no record/);
        assert.doesNotMatch(provisional(startedAt, undefined).error!.message, /left no record/);
        const tile = provisional(startedAt, undefined, { index: 2, of: 4 });
        assert.match(tile.error!.message, /^tile 2 of 4: the renderer ended without reporting/);
    });
});
