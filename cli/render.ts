// `render-farm render <scene.blend>`: upload the scene and assets, submit, follow the job, download
// the frames, and exit 0 only when every frame rendered.
import { randomUUID } from "crypto";
import * as path from "path";
import { Engine, Format, JobRequest, Resolution } from "../functions/shared/contract";
import { downloadFrames } from "./download";
import { EXIT_OK, oneLine, usageError } from "./errors";
import { allFailureLines, exitCodeOf, jobDocument, summaryLine } from "./jobReport";
import { watchJob } from "./jobWatch";
import {
    addReferencedFiles,
    checkScene,
    farmConsequence,
    missingFilesLine,
    neededBy,
    planSceneFiles,
    readSceneSummary,
    referencedFiles,
    unmirrorableFilesLine,
} from "./sceneFiles";
import { sceneReferences } from "./libraryReferences";
import { writeJobReport } from "./report/writeReport";
import { Session, TargetFlags } from "./session";
import { uploadObjects } from "./upload";
import type { Target } from "./target";

export interface RenderFlags extends TargetFlags {
    assets?: string[];
    frames?: string;
    engine?: Engine;
    samples?: number;
    resolution?: { x: number; y: number };
    percentage?: number;
    format?: Format;
    out?: string;
    jobId?: string;
    prefix?: string;
    /**
     * Submit even when files the scene references are missing on disk (the farm may have them) or cannot be uploaded
     * (absolute paths, paths outside the scene's folder): warned instead of refused.
     */
    allowMissing?: boolean;
    /** The job's budget, USD (the request's maxCostUsd). */
    maxCost?: number;
    /** The request's failFast. */
    failFast?: number;
    /** The request's tiles. */
    tiles?: number | "auto";
    wait: boolean;
}

function megabytes(bytes: number): string {
    return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** A job ready to submit: its files uploaded to the target's scenes bucket, and the request naming them. */
export interface PreparedJob {
    request: JobRequest;
    target: Target;
    upload: { scene: string; uploaded: number; unchanged: number; bytes: number; referenced: string[] };
}

/**
 * Reads the scene, refuses what the farm would refuse (no camera, files missing or unmirrorable), uploads the scene and
 * the files it needs, and builds the request `render` and `estimate` submit.
 */
export async function prepareJob(
    session: Session,
    scenePath: string,
    flags: Omit<RenderFlags, "wait">,
): Promise<PreparedJob> {
    const { output } = session;
    // Checked before any farm starts: a typo costs nothing.
    const plan = planSceneFiles(scenePath, flags.assets ?? [], flags.prefix);
    // The scene is read here too, so what the farm's preflight would refuse costs no upload.
    const summary = await readSceneSummary(scenePath);
    const references = await sceneReferences(summary, plan.scene.file);
    const check = checkScene(summary, references, scenePath);
    if (!check.scene || check.scene.camera === null)
        throw usageError(check.problems[0], check.scene ? "no_camera" : "no_scene");
    if (check.missing.length > 0) {
        const line = missingFilesLine(check.missing, scenePath);
        if (!flags.allowMissing)
            throw usageError(`${line}; put them there, or pass --allow-missing to submit anyway`, "missing_files");
        output.problem(
            `warning: ${line}; submitting anyway (--allow-missing): the farm refuses the job unless its scenes bucket already has them`,
        );
    }
    const explicit = new Set(plan.assets.map((asset) => asset.file));
    const unmirrorable = references.filter(
        (reference) =>
            reference.unmirrorable &&
            // A hidden file given with --assets is uploaded after all.
            !(reference.unmirrorable.reason === "hidden" && reference.path !== null && explicit.has(reference.path)),
    );
    // An absolute path (or one outside the scene's folder) names a file on this machine only: the farm renders without it.
    if (unmirrorable.length > 0 && !flags.allowMissing)
        throw usageError(
            `${unmirrorableFilesLine(unmirrorable, scenePath)}; make the paths relative with the files under the scene's folder (File > External Data > Make Paths Relative) or pack them, or pass --allow-missing to submit anyway`,
            "unmirrorable_files",
        );
    const warnings = unmirrorable.map(
        (reference) =>
            `${neededBy(reference)}: ${reference.unmirrorable!.message}; ${farmConsequence(reference, plan.scene.key)}`,
    );
    for (const warning of new Set(warnings)) output.problem(`warning: ${warning}`);
    addReferencedFiles(plan, referencedFiles(references, plan.scene.file));
    if (plan.referenced.length > 0) {
        const names = plan.referenced
            .slice(0, 5)
            .map((object) => path.relative(path.dirname(plan.scene.file), object.file));
        output.note(
            `found ${plan.referenced.length} file(s) the scene references next to it (uploaded with it): ${names.join(", ")}${plan.referenced.length > 5 ? ", …" : ""}`,
        );
    }
    // Chosen here rather than by the farm, so resubmitting after a dropped connection cannot queue the job twice.
    const jobId = flags.jobId ?? randomUUID();
    const request: JobRequest = {
        scene: plan.scene.key,
        assets: plan.assets.map((asset) => asset.key),
        format: flags.format ?? "PNG",
        jobId,
    };
    if (flags.frames !== undefined) request.frames = flags.frames;
    if (flags.engine !== undefined) request.engine = flags.engine;
    if (flags.samples !== undefined) request.samples = flags.samples;
    if (flags.maxCost !== undefined) request.maxCostUsd = flags.maxCost;
    if (flags.failFast !== undefined) request.failFast = flags.failFast;
    if (flags.tiles !== undefined) request.tiles = flags.tiles;
    if (flags.resolution !== undefined || flags.percentage !== undefined) {
        const resolution: Resolution = {};
        if (flags.resolution) Object.assign(resolution, flags.resolution);
        if (flags.percentage !== undefined) resolution.percentage = flags.percentage;
        request.resolution = resolution;
    }

    const target = await session.useTarget(flags);
    await target.api.ping();
    const s3 = target.s3();
    const outputs = target.outputs!;
    const files = [plan.scene, ...plan.assets];
    output.note(`uploading ${files.length} file(s) to ${target.description} as ${plan.prefix}/…`);
    const uploaded = await uploadObjects(s3, outputs.scenesBucket, files);
    output.note(
        uploaded.uploaded.length === 0
            ? `nothing to upload: ${uploaded.unchanged.length} file(s) already there with the same content`
            : `uploaded ${uploaded.uploaded.length} file(s) (${megabytes(uploaded.uploadedBytes)}), ${uploaded.unchanged.length} already there`,
    );
    const upload = {
        scene: plan.scene.key,
        uploaded: uploaded.uploaded.length,
        unchanged: uploaded.unchanged.length,
        bytes: uploaded.uploadedBytes,
        referenced: plan.referenced.map((object) => object.key),
    };
    return { request, target, upload };
}

export async function renderCommand(session: Session, scenePath: string, flags: RenderFlags): Promise<number> {
    const { output } = session;
    const { request, target, upload } = await prepareJob(session, scenePath, flags);
    const s3 = target.s3();
    const outputs = target.outputs!;
    const submitted = await target.api.submit(request);
    session.jobId = submitted.jobId;
    if (!flags.wait) {
        output.note(`job ${submitted.jobId}: ${submitted.frames} frame(s) ${submitted.state} on ${target.description}`);
        if (submitted.queued < submitted.frames)
            output.problem(
                `warning: only ${submitted.queued} of ${submitted.frames} frames are queued so far; run the same command again with --job-id ${submitted.jobId} to queue the rest`,
            );
        if (target.kind === "embedded") {
            output.problem(
                `warning: --no-wait with the local farm started for this run: it stops now, so the frames render the next time a farm runs on this data dir (start one with \`render-farm serve\`)`,
            );
        }
        // The same document shape as a finished render, with the counts as they stand now.
        const now = await target.api.status(submitted.jobId);
        output.result({ ...jobDocument(now), upload, target: target.description }, [submitted.jobId]);
        return EXIT_OK;
    }

    const started = Date.now();
    const status = await watchJob(target.api, submitted.jobId, {
        pollIntervalMs: target.pollIntervalMs,
        stream: output.stderr,
        onReporter: (reporter) => session.setReporter(reporter),
        // The same request again carries on queueing where a cut-off submit stopped (the jobId makes it idempotent).
        resume: () => target.api.submit(request),
        resumes: ["submit"],
    });
    const outDir = path.resolve(flags.out ?? path.join("renders", submitted.jobId));
    const frames = await downloadFrames(s3, outputs.rendersBucket, submitted.jobId, outDir);
    // The report is extra: a failure to write it is said, and changes neither the outcome nor the exit code.
    const report = await writeJobReport(
        { api: target.api, s3, rendersBucket: outputs.rendersBucket, farm: target.description },
        submitted.jobId,
        outDir,
        frames,
    ).catch((error) => {
        output.problem(`warning: no report.html: ${oneLine(error)}`);
        return undefined;
    });
    for (const note of report?.notes ?? []) output.note(`report: ${note}`);
    const elapsedSeconds = Math.round((Date.now() - started) / 100) / 10;
    const exitCode = exitCodeOf(status);

    output.note(
        summaryLine(status) +
            (status.frames.failed > 0
                ? `; \`render-farm retry ${status.jobId}\` renders the failed frame(s) again`
                : ""),
    );
    for (const line of allFailureLines(status)) output.problem(line);
    const document = {
        ...jobDocument(status),
        outDir,
        files: frames.map((frame) => frame.file),
        ...(report ? { report: report.file } : {}),
        upload,
        target: target.description,
        elapsedSeconds,
    };
    const relativeOut = path.relative(process.cwd(), outDir) || ".";
    const shownOut = relativeOut.startsWith("..") ? outDir : relativeOut;
    output.result(document, [
        ...(frames.length > 0 ? [`${frames.length} frame(s) in ${shownOut}/`] : []),
        ...(report ? [`report: ${path.join(shownOut, path.basename(report.file))}`] : []),
    ]);
    return exitCode;
}
