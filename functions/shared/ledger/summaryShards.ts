// The frame summary's shards in the ledger (their logic: functions/shared/frameSummary.ts): every change is a
// conditional write over the version read, so renderers finishing frames at once never lose each other's update.
import { mapWithConcurrency } from "../concurrency";
import { FrameRecord, JobManifest } from "../contract/types";
import { summaryShardKey } from "../contract/ledgerKeys";
import { farmError } from "../errors";
import {
    emptyShard,
    framesByShard,
    JobSummary,
    shardOf,
    summarizeJob,
    summarizeRecordInto,
    summarizeRequeueInto,
    SummaryShard,
} from "../frameSummary";
import { conflictBackoff, WriteCondition } from "./jsonObjects";
import { LedgerStore } from "./store";

/** Conditional write attempts before a shard update gives up (each one a fresh read). */
const UPDATE_ATTEMPTS = 12;
/** GetObject calls in flight when a status reads a job's shards. */
export const SHARD_READ_CONCURRENCY = 64;
/** Shards a retry's requeue marks at once. */
const REQUEUE_CONCURRENCY = 16;

export interface SummaryShards {
    /** The shards holding the job's frames (absent ones, where no frame has been written yet, as empty shards). */
    readSummaryShards(manifest: Pick<JobManifest, "jobId" | "frames">, concurrency?: number): Promise<SummaryShard[]>;
    /** The job's summary from its shards: counts by state, spending, failed and pending frames. */
    readSummary(
        manifest: Pick<JobManifest, "jobId" | "frames" | "tiles">,
        maxReceiveCount?: number,
        now?: number,
    ): Promise<JobSummary>;
    /**
     * Applies a frame record (or a tile's, which has `tile`) to its shard: what a renderer's record write does first
     * (writeFrameRecord, writeTileRecord).
     */
    summarizeRecord(record: FrameRecord): Promise<void>;
    /** Marks `frames` requeued at `at` (ms): one conditional write per shard, not one per frame. */
    summarizeRequeue(jobId: string, frames: readonly number[], at: number): Promise<void>;
    /** Writes a whole shard, replacing what is there (only for shards built from records, see shardsFromRecords). */
    writeShard(shard: SummaryShard): Promise<void>;
}

function asShard(value: unknown, jobId: string, shard: string, where: string): SummaryShard {
    const candidate = value as SummaryShard;
    if (typeof candidate !== "object" || candidate === null || typeof candidate.frames !== "object")
        throw farmError("invalid_ledger_object", `${where} is not a frame summary shard`);
    return { ...candidate, jobId, shard };
}

export function summaryShardsIn(store: LedgerStore): SummaryShards {
    /**
     * Reads the shard, lets `change` modify it (returning false when there is nothing to write), and writes it back
     * only if nobody wrote it in between; otherwise reads again. Throws a storage error after UPDATE_ATTEMPTS conflicts.
     */
    async function updateShard(jobId: string, shard: string, change: (shard: SummaryShard) => boolean): Promise<void> {
        const key = summaryShardKey(jobId, shard);
        for (let attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
            if (attempt > 0) await conflictBackoff(attempt);
            const stored = await store.get(key, { forbiddenMeansAbsent: true });
            const current = stored ? asShard(stored.value, jobId, shard, store.where(key)) : emptyShard(jobId, shard);
            if (!change(current)) return;
            const condition: WriteCondition = stored ? { ifMatch: stored.etag } : { ifAbsent: true };
            if ((await store.put(key, current, condition, { compact: true })).written) return;
        }
        throw farmError(
            "storage_error",
            `PutObject ${store.where(key)} failed: ${UPDATE_ATTEMPTS} conditional writes in a row met another writer (or GetObject is refused on the shard)`,
            503,
        );
    }

    async function readSummaryShards(
        manifest: Pick<JobManifest, "jobId" | "frames">,
        concurrency = SHARD_READ_CONCURRENCY,
    ): Promise<SummaryShard[]> {
        const ids = [...new Set(manifest.frames.map(shardOf))];
        return mapWithConcurrency(ids, concurrency, async (shard) => {
            const key = summaryShardKey(manifest.jobId, shard);
            const stored = await store.get(key);
            return stored
                ? asShard(stored.value, manifest.jobId, shard, store.where(key))
                : emptyShard(manifest.jobId, shard);
        });
    }

    return {
        readSummaryShards,
        async readSummary(manifest, maxReceiveCount, now) {
            return summarizeJob(manifest, await readSummaryShards(manifest), maxReceiveCount, now);
        },
        summarizeRecord(record) {
            return updateShard(record.jobId, shardOf(record.frame), (shard) => summarizeRecordInto(shard, record));
        },
        async summarizeRequeue(jobId, frames, at) {
            await mapWithConcurrency([...framesByShard(frames)], REQUEUE_CONCURRENCY, ([shard, group]) =>
                updateShard(jobId, shard, (current) => summarizeRequeueInto(current, group, at)),
            );
        },
        async writeShard(shard) {
            await store.put(summaryShardKey(shard.jobId, shard.shard), shard, undefined, { compact: true });
        },
    };
}
