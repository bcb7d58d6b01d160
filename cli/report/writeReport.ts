// Writes <out>/report.html for a job: gathers the ledger, makes the thumbnails and the preview, renders the page, and
// writes it aside then renames it, so a report is never seen half-written.
import * as fs from "fs";
import * as path from "path";
import type { DownloadedFrame } from "../download";
import { findFfmpeg } from "./ffmpeg";
import { frameTimeline } from "./frameTimeline";
import { makePreviewVideo, PreviewVideo } from "./previewVideo";
import { gatherJobReport, JobReportData, REPORT_FILE, ReportSources } from "./reportData";
import { renderReportHtml } from "./reportHtml";
import { makeThumbnails } from "./thumbnails";

export interface WrittenReport {
    file: string;
    data: JobReportData;
    maxConcurrent: number;
    preview: PreviewVideo["kind"];
    /** What the report left out and why (no ffmpeg, a format with no preview): for the command's notes. */
    notes: string[];
}

export async function writeJobReport(
    sources: ReportSources,
    jobId: string,
    outDir: string,
    frames: DownloadedFrame[],
): Promise<WrittenReport> {
    const data = await gatherJobReport(sources, jobId, outDir, frames);
    const ffmpeg = await findFfmpeg();
    const thumbnails = await makeThumbnails(frames, ffmpeg);
    const preview = await makePreviewVideo(frames, ffmpeg);
    const timeline = frameTimeline(data.records);
    const page = renderReportHtml(data, { thumbnails, preview, timeline });
    fs.mkdirSync(outDir, { recursive: true });
    const file = path.join(outDir, REPORT_FILE);
    const partial = `${file}.part`;
    fs.writeFileSync(partial, page);
    fs.renameSync(partial, file);
    const notes: string[] = [];
    if (preview.kind === "skipped" && frames.length > 0) notes.push(`no preview video: ${preview.reason}`);
    const placeholders = [...thumbnails.values()].filter((thumbnail) => thumbnail.kind === "placeholder").length;
    if (placeholders > 0) notes.push(`${placeholders} frame(s) shown as a placeholder (no thumbnail could be made)`);
    return { file, data, maxConcurrent: timeline.maxConcurrent, preview: preview.kind, notes };
}
