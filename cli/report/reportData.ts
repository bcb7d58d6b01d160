// What a job report is made of, gathered in one place: the job's status with every page of its failures, its
// manifest (scene, frames, settings), every frame record (jobs/<jobId>/frames/<n>.json), the quote an estimate left
// in the output folder (quote.json), and the frames downloaded beside it.
import * as fs from "fs";
import * as path from "path";
import type { S3Client } from "@aws-sdk/client-s3";
import type { FrameRecord, JobManifest, JobStatus, Quote } from "../../functions/shared/contract";
import { jobLedgerPrefix } from "../../functions/shared/contract/ledgerKeys";
import { jobLedger } from "../../functions/shared/ledger";
import type { ApiClient } from "../apiClient";
import type { DownloadedFrame } from "../download";
import { oneLine } from "../errors";
import { statusWithAllFailures } from "../jobCommands";
import { storageError } from "../storage";

export const QUOTE_FILE = "quote.json";
export const REPORT_FILE = "report.html";

/** quote.json: absent (no estimate was made here), read, or there but not a quote (the reason says why). */
export type QuoteRead = { kind: "none" } | { kind: "quote"; quote: Quote } | { kind: "unreadable"; reason: string };

export interface JobReportData {
    jobId: string;
    status: JobStatus;
    /** Undefined when the farm has no manifest the CLI may read (the status still says what it knows). */
    manifest?: JobManifest;
    /** The latest record of each frame that has one, by frame number. */
    records: FrameRecord[];
    quote: QuoteRead;
    /** The job's frames on disk, by frame number. */
    frames: DownloadedFrame[];
    /** Where the farm is, for the report's header ("the local farm on .farm", "stack dev"). */
    farm: string;
    generatedAt: Date;
}

export interface ReportSources {
    api: ApiClient;
    s3: S3Client;
    rendersBucket: string;
    farm: string;
}

export async function gatherJobReport(
    sources: ReportSources,
    jobId: string,
    outDir: string,
    frames: DownloadedFrame[],
): Promise<JobReportData> {
    const status = await statusWithAllFailures(sources.api, jobId);
    let manifest: JobManifest | undefined;
    let records: FrameRecord[];
    try {
        const ledger = jobLedger(sources.s3, sources.rendersBucket);
        manifest = await ledger.readManifest(jobId);
        records = await ledger.readFrameRecords(jobId);
    } catch (error) {
        throw storageError(
            `reading the ledger of job ${jobId} in s3://${sources.rendersBucket}/${jobLedgerPrefix(jobId)}`,
            error,
        );
    }
    return {
        jobId,
        status,
        manifest,
        records: records.sort((a, b) => a.frame - b.frame),
        quote: readQuote(path.join(outDir, QUOTE_FILE)),
        frames,
        farm: sources.farm,
        generatedAt: new Date(),
    };
}

const ESTIMATE_FIELDS = ["costUsd", "renderSeconds", "renderSecondsPerFrame", "wallSeconds"] as const;

/** The quote `render-farm estimate` wrote, checked for the fields the report shows. */
export function readQuote(file: string): QuoteRead {
    let text: string;
    try {
        text = fs.readFileSync(file, "utf8");
    } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return { kind: "none" };
        return { kind: "unreadable", reason: oneLine(error) };
    }
    let value: unknown;
    try {
        value = JSON.parse(text);
    } catch {
        return { kind: "unreadable", reason: `${file} is not JSON` };
    }
    const quote = value as Partial<Quote>;
    if (typeof quote !== "object" || quote === null) return { kind: "unreadable", reason: `${file} is not an object` };
    for (const field of ESTIMATE_FIELDS) {
        const estimate: unknown = quote[field];
        const numbers =
            typeof estimate === "object" && estimate !== null
                ? ["low", "expected", "high"].map((end) => (estimate as Record<string, unknown>)[end])
                : [];
        if (numbers.length === 0 || !numbers.every((number) => typeof number === "number" && Number.isFinite(number)))
            return { kind: "unreadable", reason: `${file} has no ${field} {low, expected, high}` };
    }
    if (typeof quote.frames !== "number") return { kind: "unreadable", reason: `${file} has no frames count` };
    return { kind: "quote", quote: quote as Quote };
}
