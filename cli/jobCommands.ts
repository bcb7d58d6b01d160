// `render-farm status|download|retry|cancel <jobId>`: one job, looked up on the same targets as render.
import * as path from "path";
import { JOB_ID_PATTERN, JobStatus } from "../functions/shared/contract";
import { downloadFrames } from "./download";
import { EXIT_FRAMES_FAILED, EXIT_OK, usageError } from "./errors";
import type { ApiClient } from "./apiClient";
import { allFailureLines, exitCodeOf, jobDocument, summaryLine } from "./jobReport";
import { watchJob } from "./jobWatch";
import { Session, TargetFlags } from "./session";

export function checkJobId(jobId: string): void {
    if (!JOB_ID_PATTERN.test(jobId))
        throw usageError(`"${jobId}" is not a job id (1-64 characters of a-z, 0-9 and '-')`, "invalid_job_id");
}

/** The job's status with every page of its failures (the farm sends them a page at a time). */
export async function statusWithAllFailures(api: ApiClient, jobId: string): Promise<JobStatus> {
    const status = await api.status(jobId);
    const failures = [...status.failures];
    let next = status.failuresNext;
    while (next) {
        const page = await api.status(jobId, next);
        failures.push(...page.failures);
        next = page.failuresNext;
    }
    const { failuresNext: _next, ...rest } = status;
    return { ...rest, failures };
}

/** Prints where the job stands; exits 0 whatever its state, since the question was answered. */
export async function statusCommand(
    session: Session,
    jobId: string,
    flags: TargetFlags & { allFailures?: boolean },
): Promise<number> {
    checkJobId(jobId);
    const target = await session.useTarget(flags);
    const status = flags.allFailures ? await statusWithAllFailures(target.api, jobId) : await target.api.status(jobId);
    const lines = [
        summaryLine(status),
        `started ${status.startedAt}, last update ${status.updatedAt}`,
        ...allFailureLines(status),
    ];
    if (status.queue && !status.queue.complete)
        lines.push(
            `queueing: ${status.queue.queued} of ${status.queue.total} frames of its ${status.queue.kind} queued${status.queue.stalled ? `, and nothing is sending the rest: \`render-farm retry ${jobId}\` carries on` : ""}`,
        );
    if (target.outputs) lines.push(`frames: s3://${target.outputs.rendersBucket}/${status.outputPrefix}`);
    session.output.result(
        {
            ...jobDocument(status),
            startedAt: status.startedAt,
            updatedAt: status.updatedAt,
            outputPrefix: status.outputPrefix,
            target: target.description,
        },
        lines,
    );
    return EXIT_OK;
}

/** Downloads the frames rendered so far; exits 1 unless the job is complete, naming what is missing. */
export async function downloadCommand(
    session: Session,
    jobId: string,
    flags: TargetFlags & { out?: string },
): Promise<number> {
    checkJobId(jobId);
    const target = await session.useTarget(flags);
    const status = await target.api.status(jobId);
    const outDir = path.resolve(flags.out ?? path.join("renders", jobId));
    const frames = await downloadFrames(target.s3(), target.outputs!.rendersBucket, jobId, outDir);
    const exitCode = status.state === "complete" ? EXIT_OK : EXIT_FRAMES_FAILED;
    for (const line of allFailureLines(status)) session.output.problem(line);
    if (status.frames.pending > 0)
        session.output.problem(
            `job ${jobId} is still ${status.state}: ${status.frames.pending} frame(s) not rendered yet; download again when it ends`,
        );
    const relativeOut = path.relative(process.cwd(), outDir) || ".";
    session.output.result(
        { ...jobDocument(status), outDir, files: frames.map((frame) => frame.file), target: target.description },
        [summaryLine(status), `${frames.length} frame(s) in ${relativeOut.startsWith("..") ? outDir : relativeOut}/`],
    );
    return exitCode;
}

/** Requeues failed and lost frames, then (unless --no-wait) follows the job to its end like render does. */
export async function retryCommand(
    session: Session,
    jobId: string,
    flags: TargetFlags & { wait: boolean },
): Promise<number> {
    checkJobId(jobId);
    const target = await session.useTarget(flags);
    const reply = await target.api.retry(jobId);
    session.jobId = jobId;
    session.output.note(`job ${jobId}: ${reply.message}`);
    if (!flags.wait || (reply.requeued === 0 && reply.inFlight === 0 && reply.state !== "queueing")) {
        session.output.result({ ...reply, target: target.description }, [
            `requeued ${reply.requeued} frame(s) of job ${jobId}`,
        ]);
        return EXIT_OK;
    }
    const status = await watchJob(target.api, jobId, {
        pollIntervalMs: target.pollIntervalMs,
        stream: session.output.stderr,
        onReporter: (reporter) => session.setReporter(reporter),
        resume: () => target.api.retry(jobId),
        resumes: ["submit", "retry"],
    });
    for (const line of allFailureLines(status)) session.output.problem(line);
    session.output.result({ ...jobDocument(status), requeued: reply.requeued, target: target.description }, [
        summaryLine(status),
    ]);
    return exitCodeOf(status);
}

/** Cancels the job: its frames not yet rendered never are. Exits 0 once it is cancelled, the first time or again. */
export async function cancelCommand(session: Session, jobId: string, flags: TargetFlags): Promise<number> {
    checkJobId(jobId);
    const target = await session.useTarget(flags);
    const reply = await target.api.cancel(jobId);
    session.output.result({ ...reply, target: target.description }, [reply.message]);
    return EXIT_OK;
}
