// The job's queue progress in the ledger, jobs/<jobId>/queue.json (its logic: functions/shared/queueProgress.ts):
// written only conditionally, so two requests never both send the same frames.
import { queueProgressKey } from "../contract/ledgerKeys";
import { farmError } from "../errors";
import { QueueDispatch, StoredDispatch } from "../queueProgress";
import { LedgerStore } from "./store";

export interface Dispatches {
    /** The job's queue progress and its ETag, or undefined for a job that has none yet. */
    readQueueProgress(jobId: string): Promise<StoredDispatch | undefined>;
    /**
     * Writes the queue progress over the version `etag` names (or creates it, without one). Answers the new version,
     * or undefined when another request wrote it first.
     */
    writeQueueProgress(dispatch: QueueDispatch, etag: string | undefined): Promise<StoredDispatch | undefined>;
}

export function dispatchesIn(store: LedgerStore): Dispatches {
    return {
        async readQueueProgress(jobId) {
            const key = queueProgressKey(jobId);
            const stored = await store.get(key);
            if (!stored) return undefined;
            const dispatch = stored.value as QueueDispatch;
            if (
                typeof dispatch !== "object" ||
                dispatch === null ||
                dispatch.jobId !== jobId ||
                typeof dispatch.frames !== "string" ||
                !Number.isInteger(dispatch.sent)
            )
                throw farmError("invalid_ledger_object", `${store.where(key)} is not the queue progress of ${jobId}`);
            return { dispatch, etag: stored.etag };
        },
        async writeQueueProgress(dispatch, etag) {
            const outcome = await store.put(
                queueProgressKey(dispatch.jobId),
                dispatch,
                etag === undefined ? { ifAbsent: true } : { ifMatch: etag },
            );
            return outcome.written ? { dispatch, etag: outcome.etag } : undefined;
        },
    };
}
