// What the job API answers: an HTTP status and a JSON body; errors are replies too, never throws.
import { apiError, ApiError, errorBody, JobManifest } from "../shared/contract";
import { awsErrorStatus, describeAwsError } from "../shared/awsErrors";
import { isFarmError } from "../shared/errors";

/** What a job API function answers: an HTTP status and a JSON body. Errors are replies too, never throws. */
export interface ApiReply {
    status: number;
    body: unknown;
}

export function errorReply(error: ApiError): ApiReply {
    return { status: error.status, body: errorBody(error) };
}

/** A 502 (503 when S3 or SQS asked to slow down) for an S3/SQS failure: what failed and where, nothing else. */
export function upstreamError(code: string, error: unknown): ApiError {
    const message = error instanceof Error ? error.message : describeAwsError(error);
    const status = isFarmError(error) ? error.status : awsErrorStatus(error);
    return apiError(status === 503 || status === 429 ? 503 : 502, code, message);
}

export function upstreamReply(code: string, error: unknown): ApiReply {
    return errorReply(upstreamError(code, error));
}

export function statusUrlOf(jobId: string): string {
    return `/jobs/${jobId}`;
}

export function jobNotFound(jobId: unknown): ApiError {
    const shown = typeof jobId === "string" ? jobId.slice(0, 80) : String(jobId);
    return apiError(404, "job_not_found", `no job "${shown}" on this farm`, "jobId");
}

/** The 409 for a job whose scene is no longer the version it was submitted with. */
export function sceneChangedError(manifest: JobManifest, currentEtag: string | undefined, what: string): ApiError {
    const now = currentEtag === undefined ? "it is gone" : `it is now ${currentEtag}`;
    return apiError(
        409,
        "scene_changed",
        `scene "${manifest.request.scene}" changed since job ${manifest.jobId} was submitted (it was ${manifest.sceneEtag}, ${now}); ${what}`,
        "scene",
    );
}
