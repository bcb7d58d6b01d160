// `render-farm report <jobId>`: downloads the frames not yet in --out (as `download` does) and writes report.html
// beside them. Exits 0 once the report is written, whatever the job's state: the question was answered.
import * as path from "path";
import { downloadFrames } from "../download";
import { EXIT_OK } from "../errors";
import { checkJobId } from "../jobCommands";
import { summaryLine } from "../jobReport";
import { Session, TargetFlags } from "../session";
import { writeJobReport } from "./writeReport";

export async function reportCommand(
    session: Session,
    jobId: string,
    flags: TargetFlags & { out?: string },
): Promise<number> {
    checkJobId(jobId);
    const target = await session.useTarget(flags);
    const outDir = path.resolve(flags.out ?? path.join("renders", jobId));
    // The status first: an unknown job is the API's 404, before anything is written.
    await target.api.status(jobId);
    const s3 = target.s3();
    const rendersBucket = target.outputs!.rendersBucket;
    const frames = await downloadFrames(s3, rendersBucket, jobId, outDir);
    const report = await writeJobReport(
        { api: target.api, s3, rendersBucket, farm: target.description },
        jobId,
        outDir,
        frames,
    );
    for (const note of report.notes) session.output.note(note);
    const relative = path.relative(process.cwd(), report.file);
    const status = report.data.status;
    session.output.result(
        {
            jobId,
            state: status.state,
            frames: status.frames,
            renderSeconds: status.renderSeconds,
            costUsd: status.costUsd,
            maxConcurrent: report.maxConcurrent,
            quote: report.data.quote.kind,
            preview: report.preview,
            report: report.file,
            files: frames.map((frame) => frame.file),
            target: target.description,
        },
        [summaryLine(status), `report: ${relative.startsWith("..") ? report.file : relative}`],
    );
    return EXIT_OK;
}
