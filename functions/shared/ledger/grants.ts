// What each function may do in the renders bucket, as IAM key patterns derived from where the ledger keeps things
// (contract/ledgerKeys.ts), beside the reason for each grant. The components turn them into policy statements
// (components/iam.ts: rendersBucketStatements), so no key prefix is restated there; the grants are least privilege
// as tests/leastPrivilege.test.ts evaluates it against every call the handlers make.
import {
    frameRecordsPrefix,
    jobStopKey,
    jobTilesPrefix,
    LEDGER_PREFIX,
    manifestKey,
    OUTPUTS_PREFIX,
} from "../contract/ledgerKeys";

/** Any text, in an IAM resource or condition pattern. */
const ANY = "*";

export type ObjectAction = "s3:GetObject" | "s3:PutObject" | "s3:DeleteObject" | "s3:AbortMultipartUpload";

/**
 * `actions` on the objects whose keys match one of `keys`; or, with `list`, ListBucket on the bucket, limited to
 * listings of a prefix matching one of `prefixes` when given.
 */
export type RendersBucketGrant =
    | { sid: string; actions: ObjectAction[]; keys: string[] }
    | { sid: string; list: true; prefixes?: string[] };

/** The key patterns the grants name. */
export const LEDGER_KEY_PATTERNS = {
    /** Every job's frames: renders/<jobId>/<file>. */
    outputs: `${OUTPUTS_PREFIX}${ANY}`,
    /** Everything of every job's ledger: jobs/<jobId>/... */
    ledger: `${LEDGER_PREFIX}${ANY}`,
    /** Frame records and the frame summary's shards beside them. */
    frameRecords: `${frameRecordsPrefix(ANY)}${ANY}`,
    /** Tiled frames' working objects: the tiles' records and images, the stitch markers. */
    tiles: `${jobTilesPrefix(ANY)}${ANY}`,
    manifests: manifestKey(ANY),
    stops: jobStopKey(ANY),
};

const keys = LEDGER_KEY_PATTERNS;

export const RENDERS_BUCKET_GRANTS: { renderer: RendersBucketGrant[]; jobApi: RendersBucketGrant[] } = {
    renderer: [
        // Frames go up in parts (functions/renderer/frameUpload.ts): a failed upload is aborted.
        { sid: "WriteFrames", actions: ["s3:PutObject", "s3:AbortMultipartUpload"], keys: [keys.outputs] },
        // Its frame records only: the manifests and anything else under jobs/ are the job API's.
        { sid: "WriteFrameRecords", actions: ["s3:PutObject"], keys: [keys.frameRecords] },
        // Reading its own frame records lets a duplicate delivery see that the frame is already done.
        { sid: "ReadFrameRecords", actions: ["s3:GetObject"], keys: [keys.frameRecords] },
        // A tiled frame's tiles: each tile's record and image, the stitch marker; the stitcher deletes the images
        // (and gives up a marker whose stitch failed) and lists what is done.
        {
            sid: "WorkTiles",
            actions: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            keys: [keys.tiles],
        },
        { sid: "ListTiles", list: true, prefixes: [keys.tiles] },
        // Before each frame: the job's stop, and its manifest (budget, fail-fast, the frames its summary covers).
        { sid: "ReadJobRules", actions: ["s3:GetObject"], keys: [keys.manifests, keys.stops] },
        // It stops a job whose budget is spent or whose frames fail alike.
        { sid: "StopJobs", actions: ["s3:PutObject"], keys: [keys.stops] },
    ],
    jobApi: [
        // ListBucket: GetObject of an absent ledger object (a new job's queue progress or summary shards) answers 404
        // rather than 403; opening a version-1 manifest (no frame summary) lists its records.
        { sid: "FindJobs", list: true },
        // No DeleteObject on the ledger: a submit or retry whose frames could not all be queued keeps its progress,
        // and the same request carries on, instead of rolling back.
        { sid: "ReadWriteLedger", actions: ["s3:GetObject", "s3:PutObject"], keys: [keys.ledger] },
        // A retry renders again the tiles of a frame whose stitch failed: it deletes their records and images.
        { sid: "RerenderFailedStitches", actions: ["s3:DeleteObject"], keys: [keys.tiles] },
    ],
};
