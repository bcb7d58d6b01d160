// A job's stop, jobs/<jobId>/stop.json (contract/types.ts: JobStop): written once by whoever stops the job first (a
// cancel, the renderer that finds the budget spent or the job failing), read by renderers before every frame and by a
// submit or retry between groups of frames. A cancel replaces an earlier budget or fail-fast stop; nothing replaces a
// cancel. A retry lifts a budget or fail-fast stop by marking it lifted (a conditional write, like every other change
// here).
import { jobStopKey } from "../contract/ledgerKeys";
import { JobStop, STOP_STATES } from "../contract/types";
import { farmError } from "../errors";
import { LedgerStore } from "./store";

export interface StoredStop {
    stop: JobStop;
    etag: string;
}

/** Conditional writes of a stop that meet another writer before it gives up (each one a fresh read). */
const STOP_WRITE_ATTEMPTS = 5;

export interface Stops {
    /**
     * The job's stop, or undefined while it runs (never stopped, or its stop was lifted). A 403 reads as "not stopped":
     * the renderer may not list the renders bucket, so S3 answers 403 for a key that does not exist.
     */
    readJobStop(jobId: string): Promise<StoredStop | undefined>;
    /**
     * Stops the job with `stop` unless it is stopped already, and answers the stop that holds: `stop`, or the earlier
     * one. A cancel replaces a budget or fail-fast stop (the person's word is last); a cancel is never replaced.
     */
    stopJob(stop: JobStop): Promise<JobStop>;
    /** Lifts a budget or fail-fast stop (a retry does, to render the rest); false when it changed since it was read. */
    liftJobStop(stored: StoredStop, at: Date): Promise<boolean>;
}

function asStop(value: unknown, jobId: string, where: string): JobStop {
    const stop = value as JobStop;
    if (
        typeof stop !== "object" ||
        stop === null ||
        stop.jobId !== jobId ||
        !(STOP_STATES as readonly string[]).includes(stop.state)
    )
        throw farmError("invalid_ledger_object", `${where} is not the stop of job ${jobId}`);
    return stop;
}

export function stopsIn(store: LedgerStore): Stops {
    /** The stop document as stored, lifted or not (stopJob and liftJobStop write over it conditionally). */
    async function readStoredStop(jobId: string): Promise<StoredStop | undefined> {
        const key = jobStopKey(jobId);
        const stored = await store.get(key, { forbiddenMeansAbsent: true });
        return stored && { stop: asStop(stored.value, jobId, store.where(key)), etag: stored.etag };
    }

    return {
        async readJobStop(jobId) {
            const stored = await readStoredStop(jobId);
            return stored?.stop.liftedAt === undefined ? stored : undefined;
        },
        async stopJob(stop) {
            const key = jobStopKey(stop.jobId);
            for (let attempt = 0; attempt < STOP_WRITE_ATTEMPTS; attempt++) {
                const existing = await readStoredStop(stop.jobId);
                const holds = existing !== undefined && existing.stop.liftedAt === undefined;
                if (holds && (existing.stop.state === "cancelled" || stop.state !== "cancelled")) return existing.stop;
                const outcome = await store.put(key, stop, existing ? { ifMatch: existing.etag } : { ifAbsent: true });
                if (outcome.written) return stop;
            }
            throw farmError("storage_error", `PutObject ${store.where(key)}: other writers kept changing it`, 503);
        },
        async liftJobStop(stored, at) {
            const lifted: JobStop = { ...stored.stop, liftedAt: at.toISOString() };
            return (await store.put(jobStopKey(stored.stop.jobId), lifted, { ifMatch: stored.etag })).written;
        },
    };
}
