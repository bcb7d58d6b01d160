// The job's frame summary: each frame's latest state, attempts and spent cost, kept in shards of at most a few hundred
// frames under jobs/<jobId>/frames/summary/, so that a job's status reads a few hundred small objects at most instead
// of one record per frame. Whoever changes a frame's state updates its shard with a conditional write (If-Match): the
// renderer through its frame record's write, a retry in bulk (functions/shared/ledger/summaryShards.ts). Frames are
// spread over 64 shards per block of 16384 frame numbers by a multiplicative hash, so renderers finishing
// neighbouring frames rarely meet on one shard. Everything here is the shards' logic; the ledger reads and writes them.
import { FrameRecord, JobManifest } from "./contract/types";

export const SUMMARY_VERSION = 1;
/** Shards per block of frame numbers: spreads concurrent writers. */
const LANES = 64;
/** Frame numbers per block: bounds a shard to about BLOCK_FRAMES / LANES frames (256). */
const BLOCK_FRAMES = 16384;
/** Attempt start times remembered per frame (to count each attempt's cost once): more than a frame ever gets. */
const COUNTED_ATTEMPTS_KEPT = 32;
/** The same for a tiled frame, whose every tile's attempts count: up to 64 tiles of a few attempts each. */
const COUNTED_TILE_ATTEMPTS_KEPT = 256;

/**
 * requeued: a retry queued the frame again and no renderer has written since. tiling: a tiled frame with tiles done
 * and none failing, not stitched yet.
 */
export type SummaryState = "done" | "retrying" | "failed" | "requeued" | "tiling";

/** One frame in its shard. Short keys: a 100,000-frame job has 100,000 of these. */
export interface FrameSummaryEntry {
    /** State. */
    s: SummaryState;
    /** Attempts of the latest delivery (SQS's receive count); 0 once requeued. */
    a: number;
    /** When the state was written (the record's finishedAt, or the requeue), ms since the epoch. */
    t: number;
    /** USD spent on the frame over all its attempts. */
    c: number;
    /** Render seconds over all its attempts. */
    r: number;
    /** The latest failed attempt's error code. */
    e?: string;
    /** Start times (ms) of the attempts counted into c and r: a record written twice is counted once. */
    k: number[];
    /** A tiled frame not stitched yet: its tiles done, its tiles to be delivered again, its tiles out of attempts. */
    d?: number[];
    w?: number[];
    x?: number[];
    /** The tiles among x whose failure is provisional (written before their last attempt, see FrameRecord). */
    p?: number[];
    /** Until when (ms) the frame's provisional failure leaves it pending: its last attempt may still report. */
    u?: number;
}

export interface SummaryShard {
    v: typeof SUMMARY_VERSION;
    jobId: string;
    shard: string;
    /** Earliest start of a rendered attempt, ms. */
    startedAt?: number;
    /** Latest write, ms. */
    updatedAt: number;
    frames: Record<string, FrameSummaryEntry>;
}

/** Which shard a frame's state lives in: its block of frame numbers, and a lane by Fibonacci hashing. */
export function shardOf(frame: number): string {
    const lane = Math.imul(frame, 0x9e3779b1) >>> 26; // the top 6 bits: one of 64 lanes
    return `${Math.floor(frame / BLOCK_FRAMES)}-${lane % LANES}`;
}

/** A shard no frame has been written to yet. */
export function emptyShard(jobId: string, shard: string): SummaryShard {
    return { v: SUMMARY_VERSION, jobId, shard, updatedAt: 0, frames: {} };
}

function millis(iso: string | undefined): number {
    const value = iso ? Date.parse(iso) : Number.NaN;
    return Number.isFinite(value) ? value : 0;
}

/** Render seconds of a record's attempt, as a job's total counts them: Blender's render time, else its wall time. */
export function recordRenderSeconds(record: FrameRecord): number {
    return record.renderSeconds ?? (Number.isFinite(record.blenderMs) ? record.blenderMs / 1000 : 0);
}

/**
 * A frame's entry once `record` is applied. Every attempt's cost counts once; the state follows the newest write, and
 * "done" stays done (a late failure of a duplicate delivery does not undo a frame on S3).
 */
export function applyRecord(entry: FrameSummaryEntry | undefined, record: FrameRecord): FrameSummaryEntry {
    const started = millis(record.startedAt);
    const at = millis(record.finishedAt) || started;
    const next: FrameSummaryEntry = entry
        ? { ...entry, k: [...entry.k] }
        : { s: "retrying", a: 0, t: 0, c: 0, r: 0, k: [] };
    // A provisional failure costs nothing: the attempt's own outcome, with the same start, counts it.
    if (record.attempts > 0 && !isProvisional(record) && !next.k.includes(started)) {
        // A stitched frame's record sums its tiles, which their own records counted: only the stitch is new.
        const cost = record.stitch ? record.stitch.costUsd : record.costUsd;
        next.c += Number.isFinite(cost) ? cost : 0;
        next.r += record.stitch ? 0 : recordRenderSeconds(record);
        const tiled = record.stitch || next.d || next.w || next.x;
        next.k = [...next.k, started].slice(-(tiled ? COUNTED_TILE_ATTEMPTS_KEPT : COUNTED_ATTEMPTS_KEPT));
    }
    const newer = !entry || (entry.s !== "done" && (record.status === "done" || at >= entry.t));
    if (newer) {
        next.s = record.status;
        next.a = record.attempts;
        next.t = at;
        if (record.error?.code) next.e = record.error.code;
        else delete next.e;
        if (isProvisional(record)) next.u = millis(record.provisionalUntil);
        else delete next.u;
        if (record.status === "done") {
            delete next.d;
            delete next.w;
            delete next.x;
            delete next.p;
        }
    }
    return next;
}

function isProvisional(record: FrameRecord): boolean {
    return record.provisionalUntil !== undefined && millis(record.provisionalUntil) > 0;
}

/** A tile attempt's key among the frame's counted attempts: apart from the frame's own (start ms) and other tiles'. */
function tileAttemptKey(record: FrameRecord): number {
    return millis(record.startedAt) * 128 + (record.tile?.index ?? 0) + 1;
}

function withTile(tiles: number[] | undefined, tile: number, present: boolean): number[] | undefined {
    const rest = (tiles ?? []).filter((other) => other !== tile);
    if (present) rest.push(tile);
    return rest.length > 0 ? rest.sort((a, b) => a - b) : undefined;
}

/**
 * A tiled frame's entry once a tile's record is applied: the attempt's cost and render seconds count once, the tile
 * joins the done, retrying or failed tiles (a done tile stays done), and the frame reads failed while a tile is out of
 * attempts, retrying while one will be delivered again, else tiling. Only the stitch makes the frame done.
 */
export function applyTileRecord(entry: FrameSummaryEntry | undefined, record: FrameRecord): FrameSummaryEntry {
    const tile = record.tile?.index ?? 0;
    const at = millis(record.finishedAt) || millis(record.startedAt);
    const next: FrameSummaryEntry = entry
        ? { ...entry, k: [...entry.k] }
        : { s: "tiling", a: 0, t: 0, c: 0, r: 0, k: [] };
    const key = tileAttemptKey(record);
    if (record.attempts > 0 && !isProvisional(record) && !next.k.includes(key)) {
        next.c += Number.isFinite(record.costUsd) ? record.costUsd : 0;
        next.r += recordRenderSeconds(record);
        next.k = [...next.k, key].slice(-COUNTED_TILE_ATTEMPTS_KEPT);
    }
    if (next.s === "done" || (record.status !== "done" && next.d?.includes(tile))) return next;
    const set = (field: "d" | "w" | "x" | "p", present: boolean) => {
        const tiles = withTile(next[field], tile, present);
        if (tiles) next[field] = tiles;
        else delete next[field];
    };
    // Failing with no tile failing is the stitch's failure (applyRecord): a tile done again does not hide it.
    const stitchFailed = (next.s === "retrying" || next.s === "failed") && !next.w && !next.x && next.d !== undefined;
    set("d", record.status === "done");
    set("w", record.status === "retrying");
    set("x", record.status === "failed");
    set("p", isProvisional(record));
    if (!next.p) delete next.u;
    else if (isProvisional(record)) next.u = Math.max(next.u ?? 0, millis(record.provisionalUntil));
    if (stitchFailed && record.status === "done") return next;
    next.s = next.x ? "failed" : next.w ? "retrying" : "tiling";
    next.t = Math.max(next.t, at);
    if (record.status !== "done") {
        next.a = record.attempts;
        if (record.error?.code) next.e = record.error.code;
    } else if (!next.w && !next.x) delete next.e;
    return next;
}

/**
 * A tiled frame whose tiles are all rendered and whose stitch failed, not one whose stitch another renderer still held
 * (stitch_pending): the same tiles would fail the same way again, so a retry renders them again.
 */
export function stitchFailed(entry: FrameSummaryEntry | undefined): boolean {
    if (!entry || (entry.s !== "failed" && entry.s !== "retrying")) return false;
    return entry.d !== undefined && !entry.w && !entry.x && entry.e !== "stitch_pending";
}

/**
 * A frame's entry once a retry queues it again (at `at`), unless it is done. Whatever else a renderer wrote meanwhile
 * is superseded: the marks are written before the retry's first message goes out, so no outcome of it exists yet.
 */
export function applyRequeue(entry: FrameSummaryEntry | undefined, at: number): FrameSummaryEntry | undefined {
    if (entry?.s === "done") return undefined;
    const base = entry ?? { s: "requeued" as const, a: 0, t: at, c: 0, r: 0, k: [] };
    const { w: _retrying, x: _failed, p: _provisional, u: _until, ...kept } = base;
    // A tiled frame keeps its done tiles (their images wait for the stitch); the others are queued again. A failed
    // stitch's tiles are rendered again (the retry deleted their records and images).
    if (stitchFailed(base)) delete kept.d;
    // Never back in time: a renderer's clock a little ahead of the job API's must not make its next outcome look older.
    return { ...kept, s: "requeued", a: 0, t: Math.max(base.t, at) };
}

/** The earliest start of a rendered attempt and the latest write, once `entry` (from `record`) is in the shard. */
function noteWrite(shard: SummaryShard, record: FrameRecord, entry: FrameSummaryEntry): void {
    const started = millis(record.startedAt);
    if (record.attempts > 0 && started > 0 && (shard.startedAt === undefined || started < shard.startedAt))
        shard.startedAt = started;
    shard.updatedAt = Math.max(shard.updatedAt, entry.t);
}

/**
 * Applies a frame record (or a tile's, which has `tile`) to its shard, as a renderer's record write does first; false
 * when the shard is unchanged (nothing to write).
 */
export function summarizeRecordInto(shard: SummaryShard, record: FrameRecord): boolean {
    const apply = record.tile ? applyTileRecord : applyRecord;
    const before = JSON.stringify(shard.frames[record.frame]);
    const entry = apply(shard.frames[record.frame], record);
    if (JSON.stringify(entry) === before) return false;
    shard.frames[record.frame] = entry;
    noteWrite(shard, record, entry);
    return true;
}

/** Marks `frames` of the shard requeued at `at` (ms); false when none changed. */
export function summarizeRequeueInto(shard: SummaryShard, frames: readonly number[], at: number): boolean {
    let changed = false;
    for (const frame of frames) {
        const entry = applyRequeue(shard.frames[frame], at);
        // Unchanged when a resumed retry marks again what it marked before it was killed.
        if (!entry || JSON.stringify(entry) === JSON.stringify(shard.frames[frame])) continue;
        shard.frames[frame] = entry;
        changed = true;
    }
    if (changed) shard.updatedAt = Math.max(shard.updatedAt, at);
    return changed;
}

/** Frames grouped by their shard. */
export function framesByShard(frames: readonly number[]): Map<string, number[]> {
    const groups = new Map<string, number[]>();
    for (const frame of frames) {
        const shard = shardOf(frame);
        const group = groups.get(shard);
        if (group) group.push(frame);
        else groups.set(shard, [frame]);
    }
    return groups;
}

/** Shards built from whole records at once (a job upgraded by openJob, and the status benchmark). */
export function shardsFromRecords(jobId: string, records: readonly FrameRecord[]): SummaryShard[] {
    const shards = new Map<string, SummaryShard>();
    const ordered = [...records].sort((a, b) => millis(a.finishedAt) - millis(b.finishedAt));
    for (const record of ordered) {
        const id = shardOf(record.frame);
        const shard = shards.get(id) ?? emptyShard(jobId, id);
        shards.set(id, shard);
        const entry = applyRecord(shard.frames[record.frame], record);
        shard.frames[record.frame] = entry;
        noteWrite(shard, record, entry);
    }
    return [...shards.values()];
}

// ---- the job's summary --------------------------------------------------------------------

/** How a frame counts in a job's status. */
export type FrameProgress = "done" | "failed" | "pending";

/**
 * done: the frame is on S3. failed: no attempts left; a "retrying" frame whose attempts reached maxReceiveCount counts
 * too, since SQS moves its message to the DLQ on the next receive. A provisional failure (FrameRecord.provisionalUntil)
 * reads failed only from its time `u` on (`now`, ms): before, its last attempt may still report. Everything else is
 * pending.
 */
export function entryProgress(
    entry: FrameSummaryEntry | undefined,
    maxReceiveCount?: number,
    now = Date.now(),
): FrameProgress {
    if (!entry) return "pending";
    if (entry.s === "done") return "done";
    const failedForGood = entry.x?.some((tile) => !entry.p?.includes(tile)) ?? false;
    if (entry.u !== undefined && now < entry.u && !failedForGood) return "pending";
    if (entry.s === "failed") return "failed";
    if (entry.s === "retrying" && maxReceiveCount !== undefined && entry.a >= maxReceiveCount) return "failed";
    return "pending";
}

/** Everything a job's status is made of, from its summary: counts by state, spending, and which frames failed. */
export interface JobSummary {
    total: number;
    done: number;
    failed: number;
    pending: number;
    /** The pending frames by why they are pending (tiling: a tiled frame some of whose tiles are done, none failing). */
    pendingBy: { retrying: number; requeued: number; notStarted: number; tiling?: number };
    /** Tiles done: each done frame's `tilesPerFrame`, and each pending frame's done tiles. */
    tilesDone: number;
    /** USD spent on every attempt of every frame so far (the running total a budget needs). */
    costUsd: number;
    renderSeconds: number;
    /** Earliest start of a rendered attempt, ms; undefined before the first. */
    startedAt?: number;
    /** Latest write to the summary, ms (0 before the first). */
    updatedAt: number;
    /** Failed frames, ascending. */
    failedFrames: number[];
    /** Pending frames, ascending (what a retry may requeue once the job is quiet). */
    pendingFrames: number[];
    /** Each frame's entry, for the frames that have one. */
    entries: Map<number, FrameSummaryEntry>;
}

export function summarizeJob(
    manifest: Pick<JobManifest, "frames" | "tiles">,
    shards: readonly SummaryShard[],
    maxReceiveCount?: number,
    now = Date.now(),
): JobSummary {
    const entries = new Map<number, FrameSummaryEntry>();
    let startedAt: number | undefined;
    let updatedAt = 0;
    for (const shard of shards) {
        for (const [frame, entry] of Object.entries(shard.frames)) entries.set(Number(frame), entry);
        if (shard.startedAt !== undefined && (startedAt === undefined || shard.startedAt < startedAt))
            startedAt = shard.startedAt;
        updatedAt = Math.max(updatedAt, shard.updatedAt);
    }
    const summary: JobSummary = {
        total: manifest.frames.length,
        done: 0,
        failed: 0,
        pending: 0,
        pendingBy: { retrying: 0, requeued: 0, notStarted: 0 },
        tilesDone: 0,
        costUsd: 0,
        renderSeconds: 0,
        startedAt,
        updatedAt,
        failedFrames: [],
        pendingFrames: [],
        entries,
    };
    const sorted = [...manifest.frames].sort((a, b) => a - b);
    for (const frame of sorted) {
        const entry = entries.get(frame);
        if (entry) {
            summary.costUsd += entry.c;
            summary.renderSeconds += entry.r;
        }
        const progress = entryProgress(entry, maxReceiveCount, now);
        summary.tilesDone += progress === "done" ? (manifest.tiles ?? 1) : (entry?.d?.length ?? 0);
        if (progress === "done") summary.done++;
        else if (progress === "failed") {
            summary.failed++;
            summary.failedFrames.push(frame);
        } else {
            summary.pending++;
            summary.pendingFrames.push(frame);
            if (!entry) summary.pendingBy.notStarted++;
            else if (entry.s === "requeued") summary.pendingBy.requeued++;
            else if (entry.s === "tiling") summary.pendingBy.tiling = (summary.pendingBy.tiling ?? 0) + 1;
            else summary.pendingBy.retrying++;
        }
    }
    summary.costUsd = Math.round(summary.costUsd * 1e6) / 1e6;
    summary.renderSeconds = Math.round(summary.renderSeconds * 1000) / 1000;
    return summary;
}
