// A job's manifest, jobs/<jobId>/job.json: what the job is (its request, frames, scene version), written by the job
// API when the job is submitted and, conditionally, when a resubmit widens its probe frames.
import { JobManifest } from "../contract/types";
import { LEDGER_PREFIX, manifestKey } from "../contract/ledgerKeys";
import { farmError } from "../errors";
import { WriteCondition } from "./jsonObjects";
import { LedgerStore } from "./store";

/** A manifest as read, with the ETag a conditional write of its next version names. */
export interface StoredManifest {
    manifest: JobManifest;
    etag: string;
}

export interface Manifests {
    /**
     * Writes jobs/<jobId>/job.json. With ifAbsent, answers "exists" instead of overwriting another writer's manifest;
     * with ifMatch, answers "exists" when another writer replaced the version with that ETag.
     */
    writeManifest(
        manifest: JobManifest,
        options?: { ifAbsent?: boolean; ifMatch?: string },
    ): Promise<"written" | "exists">;
    /** The job's manifest, or undefined for an unknown job (forbiddenMeansAbsent: see getJsonObject). */
    readManifest(jobId: string, options?: { forbiddenMeansAbsent?: boolean }): Promise<JobManifest | undefined>;
    /** The job's manifest and its ETag, or undefined for an unknown job. */
    readStoredManifest(
        jobId: string,
        options?: { forbiddenMeansAbsent?: boolean },
    ): Promise<StoredManifest | undefined>;
    /** The ids of the jobs with anything in the ledger. */
    listJobIds(): Promise<string[]>;
}

export function manifestsIn(store: LedgerStore): Manifests {
    async function readStoredManifest(
        jobId: string,
        options: { forbiddenMeansAbsent?: boolean } = {},
    ): Promise<StoredManifest | undefined> {
        const key = manifestKey(jobId);
        const stored = await store.get(key, options);
        if (stored === undefined) return undefined;
        const manifest = stored.value as JobManifest;
        if (
            typeof manifest !== "object" ||
            manifest === null ||
            manifest.jobId !== jobId ||
            !Array.isArray(manifest.frames)
        ) {
            throw farmError("invalid_ledger_object", `${store.where(key)} is not a job manifest for ${jobId}`);
        }
        return { manifest, etag: stored.etag };
    }

    return {
        async writeManifest(manifest, options = {}) {
            let condition: WriteCondition | undefined;
            if (options.ifMatch !== undefined) condition = { ifMatch: options.ifMatch };
            else if (options.ifAbsent) condition = { ifAbsent: true };
            const outcome = await store.put(manifestKey(manifest.jobId), manifest, condition);
            return outcome.written ? "written" : "exists";
        },
        readStoredManifest,
        async readManifest(jobId, options) {
            return (await readStoredManifest(jobId, options))?.manifest;
        },
        async listJobIds() {
            const folders = await store.listFolders(LEDGER_PREFIX);
            return folders.map((folder) => folder.slice(LEDGER_PREFIX.length, -1)).filter((id) => id !== "");
        },
    };
}
