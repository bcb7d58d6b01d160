// Where everything of a job lives in the renders bucket: its ledger under jobs/<jobId>/, its frames under
// renders/<jobId>/.
import { FORMAT_EXTENSIONS, Format, tileFormatOf } from "./formats";

export function manifestKey(jobId: string): string {
    return `jobs/${jobId}/job.json`;
}

export function jobStopKey(jobId: string): string {
    return `jobs/${jobId}/stop.json`;
}

export function frameRecordsPrefix(jobId: string): string {
    return `jobs/${jobId}/frames/`;
}

export function frameRecordKey(jobId: string, frame: number): string {
    return `${frameRecordsPrefix(jobId)}${frame}.json`;
}

/** A tiled frame's working objects: each tile's record and image, and the stitch's election marker. */
export function frameTilesPrefix(jobId: string, frame: number): string {
    return `jobs/${jobId}/tiles/${frame}/`;
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
    return `renders/${jobId}/`;
}

/** `renders/<jobId>/frame_0007.png`: at least four digits, more when the frame needs them. */
export function frameOutputKey(jobId: string, frame: number, format: Format): string {
    return `${outputPrefix(jobId)}frame_${String(frame).padStart(4, "0")}.${FORMAT_EXTENSIONS[format]}`;
}
