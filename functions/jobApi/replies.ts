// What the job API answers: an HTTP status and a JSON body; errors are replies too, never throws.
import { apiError, ApiError, errorBody } from "../shared/contract";
import { awsErrorStatus, describeAwsError } from "../shared/awsErrors";

/** What a job API function answers: an HTTP status and a JSON body. Errors are replies too, never throws. */
export interface ApiReply {
    status: number;
    body: unknown;
}

export function errorReply(error: ApiError): ApiReply {
    return { status: error.status, body: errorBody(error) };
}

/** A 5xx for an S3/SQS failure: what failed and where, from the SDK's error name and message only. */
export function upstreamReply(code: string, error: unknown): ApiReply {
    const message = error instanceof Error ? error.message : describeAwsError(error);
    const status = (error as { status?: number } | undefined)?.status ?? awsErrorStatus(error);
    return errorReply(apiError(status === 503 || status === 429 ? 503 : 502, code, message));
}

export function statusUrlOf(jobId: string): string {
    return `/jobs/${jobId}`;
}

export function jobNotFound(jobId: unknown): ApiReply {
    const shown = typeof jobId === "string" ? jobId.slice(0, 80) : String(jobId);
    return errorReply(apiError(404, "job_not_found", `no job "${shown}" on this farm`, "jobId"));
}
