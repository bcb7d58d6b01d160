// Where everything of a job lives in the renders bucket: its ledger under jobs/<jobId>/, its frames under
// renders/<jobId>/. The IAM grants on these keys are derived from the same functions (functions/shared/ledger/grants.ts).
import { FORMAT_EXTENSIONS, Format, tileFormatOf } from "./formats";

/** Every job's ledger is under jobs/<jobId>/. */
export const LEDGER_PREFIX = "jobs/";
/** Every job's frames are under renders/<jobId>/. */
export const OUTPUTS_PREFIX = "renders/";

export function jobLedgerPrefix(jobId: string): string {
    return `${LEDGER_PREFIX}${jobId}/`;
}

export function manifestKey(jobId: string): string {
    return `${jobLedgerPrefix(jobId)}job.json`;
}

export function jobStopKey(jobId: string): string {
    return `${jobLedgerPrefix(jobId)}stop.json`;
}

export function queueProgressKey(jobId: string): string {
    return `${jobLedgerPrefix(jobId)}queue.json`;
}

export function frameRecordsPrefix(jobId: string): string {
    return `${jobLedgerPrefix(jobId)}frames/`;
}

export function frameRecordKey(jobId: string, frame: number): string {
    return `${frameRecordsPrefix(jobId)}${frame}.json`;
}

/** A shard of the job's frame summary (functions/shared/frameSummary.ts), beside the frame records. */
export function summaryShardKey(jobId: string, shard: string): string {
    return `${frameRecordsPrefix(jobId)}summary/${shard}.json`;
}

/** Every tiled frame's working objects of the job. */
export function jobTilesPrefix(jobId: string): string {
    return `${jobLedgerPrefix(jobId)}tiles/`;
}

/** A tiled frame's working objects: each tile's record and image, and the stitch's election marker. */
export function frameTilesPrefix(jobId: string, frame: number): string {
    return `${jobTilesPrefix(jobId)}${frame}/`;
}

export function tileRecordKey(jobId: string, frame: number, tile: number): string {
    return `${frameTilesPrefix(jobId, frame)}${tile}.json`;
}

/** A tile's rendered image (the whole frame's size, only its region rendered), deleted once the frame is stitched. */
export function tileImageKey(jobId: string, frame: number, tile: number, format: Format): string {
    return `${frameTilesPrefix(jobId, frame)}${tile}.${FORMAT_EXTENSIONS[tileFormatOf(format)]}`;
}

/** Written if absent by the renderer that stitches the frame: one renderer wins, however many find the tiles all done. */
export function stitchMarkerKey(jobId: string, frame: number): string {
    return `${frameTilesPrefix(jobId, frame)}stitch.json`;
}

export function outputPrefix(jobId: string): string {
    return `${OUTPUTS_PREFIX}${jobId}/`;
}

/** `renders/<jobId>/frame_0007.png`: at least four digits, more when the frame needs them. */
export function frameOutputKey(jobId: string, frame: number, format: Format): string {
    return `${outputPrefix(jobId)}frame_${String(frame).padStart(4, "0")}.${FORMAT_EXTENSIONS[format]}`;
}
