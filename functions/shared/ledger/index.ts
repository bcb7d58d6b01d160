// The S3 ledger's one owner: every read and write of a job's manifest, frame and tile records, frame summary, queue
// progress, stop and stitch markers goes through the object jobLedger builds from a client and the renders bucket.
// A factory of plain functions, built where the clients are (the job API's handler, the renderer's, the local farm):
// nothing here holds a client at module level, as Pulumi's closure serializer needs (functions/README.md).
import { S3Client } from "@aws-sdk/client-s3";
import { Dispatches, dispatchesIn } from "./dispatches";
import { FrameRecords, frameRecordsIn } from "./frameRecords";
import { JobOpening, jobOpeningIn } from "./manifestUpgrade";
import { Manifests, manifestsIn } from "./manifests";
import { Stops, stopsIn } from "./stops";
import { ledgerStore } from "./store";
import { SummaryShards, summaryShardsIn } from "./summaryShards";
import { Tiles, tilesIn } from "./tiles";

export type { StoredManifest } from "./manifests";
export type { StoredStop } from "./stops";
export type { DeleteFailure } from "./store";

export interface JobLedger extends Manifests, JobOpening, FrameRecords, SummaryShards, Dispatches, Stops, Tiles {
    /** The renders bucket the ledger is in. */
    bucket: string;
}

export function jobLedger(s3: S3Client, rendersBucket: string): JobLedger {
    const store = ledgerStore(s3, rendersBucket);
    const manifests = manifestsIn(store);
    const summary = summaryShardsIn(store);
    const records = frameRecordsIn(store, summary);
    const dispatches = dispatchesIn(store);
    return {
        bucket: rendersBucket,
        ...manifests,
        ...jobOpeningIn(manifests, records, summary, dispatches),
        ...records,
        ...summary,
        ...dispatches,
        ...stopsIn(store),
        ...tilesIn(store),
    };
}
