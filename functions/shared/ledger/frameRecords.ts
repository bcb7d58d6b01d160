// One record per frame, jobs/<jobId>/frames/<frame>.json, and per tile of a tiled frame,
// jobs/<jobId>/tiles/<frame>/<tile>.json: each attempt's outcome, what it cost, and why it failed. Done is final.
import { mapWithConcurrency } from "../concurrency";
import { frameRecordKey, frameRecordsPrefix, tileRecordKey } from "../contract/ledgerKeys";
import { FrameRecord, FrameStatus } from "../contract/types";
import { farmError } from "../errors";
import { conflictBackoff, WriteCondition } from "./jsonObjects";
import { LedgerStore } from "./store";
import { SummaryShards } from "./summaryShards";

/** GetObject calls in flight at once when reading a job's frame records. */
export const RECORD_READ_CONCURRENCY = 32;
/** Conditional writes of a failure record that meet another writer before it gives up (each one a fresh read). */
const FAILURE_WRITE_ATTEMPTS = 8;

const FRAME_STATUSES: readonly FrameStatus[] = ["done", "retrying", "failed"];

export interface FrameRecords {
    /**
     * Writes jobs/<jobId>/frames/<frame>.json; a duplicate delivery rewrites the same key. The frame's summary shard is
     * updated first: a writer killed in between leaves a record missing (its message comes back and writes it), never
     * a record the summary does not count. Done is final: a failure is written only over a record that is not done
     * (see putUnlessDone). Answers the record that stands: `record`, or the done record a failure met.
     */
    writeFrameRecord(record: FrameRecord): Promise<FrameRecord>;
    /**
     * Writes a tile's record (jobs/<jobId>/tiles/<frame>/<tile>.json) after its frame's summary entry. A failed tile's
     * record is also the frame's record until the frame is stitched: the job's failures show why its frame is not
     * done. A late failure of a duplicate delivery never undoes a done tile, nor a stitched frame: answers the done
     * record it met (the tile's or the frame's), else `record`.
     */
    writeTileRecord(record: FrameRecord): Promise<FrameRecord>;
    /** The record of one frame, or undefined when none was written (or it is not a record). */
    readFrameRecord(jobId: string, frame: number): Promise<FrameRecord | undefined>;
    /** The record of one tile, or undefined when none was written (or it is not that tile's). */
    readTileRecord(jobId: string, frame: number, tile: number): Promise<FrameRecord | undefined>;
    /** Every frame record of a job: one listing, then GetObject with at most `concurrency` in flight. */
    readFrameRecords(jobId: string, concurrency?: number): Promise<FrameRecord[]>;
}

function asFrameRecord(value: unknown, jobId: string, frame: number): FrameRecord | undefined {
    if (typeof value !== "object" || value === null) return undefined;
    const record = value as FrameRecord;
    if (record.frame !== frame || !FRAME_STATUSES.includes(record.status)) return undefined;
    // Records are written by our own renderer; the job id in the key is the one that counts.
    return record.jobId === jobId ? record : { ...record, jobId };
}

/**
 * Writes a failure record at `key` unless a done record is there, or answers that done record. The write replaces
 * only the version just read (If-Match), or creates the key only if it is still absent (If-None-Match), so a done
 * record written in between makes it fail, and the next read finds the done one. A 403 on the read counts as absent
 * (the renderer may not list the ledger): the create then fails if the key does exist.
 */
async function putUnlessDone(store: LedgerStore, key: string, record: FrameRecord): Promise<FrameRecord | undefined> {
    for (let attempt = 0; attempt < FAILURE_WRITE_ATTEMPTS; attempt++) {
        if (attempt > 0) await conflictBackoff(attempt);
        const stored = await store.get(key, { forbiddenMeansAbsent: true });
        const before = stored && asFrameRecord(stored.value, record.jobId, record.frame);
        if (before?.status === "done") return before;
        const condition: WriteCondition = stored ? { ifMatch: stored.etag } : { ifAbsent: true };
        if ((await store.put(key, record, condition)).written) return undefined;
    }
    throw farmError(
        "storage_error",
        `PutObject ${store.where(key)} failed: ${FAILURE_WRITE_ATTEMPTS} conditional writes in a row met another writer (or GetObject is refused on the record)`,
        503,
    );
}

/** Frame numbers that have a record, from a listing of jobs/<jobId>/frames/. */
async function listFrameRecordFrames(store: LedgerStore, jobId: string): Promise<number[]> {
    const prefix = frameRecordsPrefix(jobId);
    const frames: number[] = [];
    for (const key of await store.list(prefix)) {
        const match = /^(\d+)\.json$/.exec(key.slice(prefix.length));
        if (match) frames.push(Number(match[1]));
    }
    return frames.sort((a, b) => a - b);
}

export function frameRecordsIn(store: LedgerStore, summary: Pick<SummaryShards, "summarizeRecord">): FrameRecords {
    async function readFrameRecord(jobId: string, frame: number): Promise<FrameRecord | undefined> {
        return asFrameRecord((await store.get(frameRecordKey(jobId, frame)))?.value, jobId, frame);
    }

    return {
        async writeFrameRecord(record) {
            await summary.summarizeRecord(record);
            const key = frameRecordKey(record.jobId, record.frame);
            if (record.status === "done") {
                await store.put(key, record);
                return record;
            }
            return (await putUnlessDone(store, key, record)) ?? record;
        },
        async writeTileRecord(record) {
            const tile = record.tile;
            if (!tile) throw new Error(`frame ${record.frame}'s record is not a tile's`);
            await summary.summarizeRecord(record);
            const tileKey = tileRecordKey(record.jobId, record.frame, tile.index);
            if (record.status === "done") {
                await store.put(tileKey, record);
                return record;
            }
            const doneTile = await putUnlessDone(store, tileKey, record);
            if (doneTile) return doneTile;
            return (await putUnlessDone(store, frameRecordKey(record.jobId, record.frame), record)) ?? record;
        },
        readFrameRecord,
        async readTileRecord(jobId, frame, tile) {
            const stored = await store.get(tileRecordKey(jobId, frame, tile));
            const record = asFrameRecord(stored?.value, jobId, frame);
            return record?.tile?.index === tile ? record : undefined;
        },
        async readFrameRecords(jobId, concurrency = RECORD_READ_CONCURRENCY) {
            const frames = await listFrameRecordFrames(store, jobId);
            const records = await mapWithConcurrency(frames, concurrency, (frame) => readFrameRecord(jobId, frame));
            return records.filter((record): record is FrameRecord => record !== undefined);
        },
    };
}
