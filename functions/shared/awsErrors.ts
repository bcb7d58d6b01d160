// Reading AWS SDK v3 errors: their HTTP status, a one-line description without credentials, "not found".
// Shared by the job API, the renderer and the local farm.
import { FarmError, farmError } from "./errors";

export interface AwsErrorLike {
    name?: string;
    message?: string;
    Code?: string;
    $metadata?: { httpStatusCode?: number };
}

/** The HTTP status of an AWS SDK error, when the service answered. */
export function awsErrorStatus(error: unknown): number | undefined {
    return (error as AwsErrorLike | undefined)?.$metadata?.httpStatusCode;
}

/** "NoSuchBucket (HTTP 404): The specified bucket does not exist": the SDK's name, status and message, nothing else. */
export function describeAwsError(error: unknown): string {
    if (!(error instanceof Error) && (typeof error !== "object" || error === null)) return String(error);
    const { name, message, Code } = error as AwsErrorLike;
    const status = awsErrorStatus(error);
    const label = Code ?? name ?? "Error";
    // The SDK says "UnknownError" for bodiless replies (HEAD); the status says more.
    const text = message && message !== "UnknownError" && message !== label ? `: ${message}` : "";
    return `${label}${status ? ` (HTTP ${status})` : ""}${text}`;
}

/** S3 said the key (or its bucket) is not there. */
export function isNotFound(error: unknown): boolean {
    const name = (error as AwsErrorLike | undefined)?.name;
    return awsErrorStatus(error) === 404 || name === "NoSuchKey" || name === "NotFound";
}

/** A failed S3 call as a FarmError ("storage_error") whose message names the operation and the s3:// location. */
export function storageError(operation: string, bucket: string, key: string, cause: unknown): FarmError {
    return farmError(
        "storage_error",
        `${operation} s3://${bucket}/${key} failed: ${describeAwsError(cause)}`,
        awsErrorStatus(cause),
    );
}
