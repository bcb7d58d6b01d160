// The one way functions/ reports failure. What a caller answers (a bad request, a missing object, a scene the farm
// refuses) is a value: `Checked<T>` with an `ApiError` (shared/contract/apiErrors.ts). What it cannot answer (S3
// down, a file that is not a .blend) is thrown as a FarmError: a plain Error, since Pulumi's closure serializer does
// not keep Error subclasses, with a code to branch on and, for AWS failures, the HTTP status S3 or SQS answered.

export interface FarmError extends Error {
    /** Marks an error the farm made: Node's own errors (ECONNRESET, ENOENT) carry a string `code` too. */
    farm: true;
    code: string;
    /** The HTTP status of the AWS reply behind it, when there was one. */
    status?: number;
}

export function farmError(code: string, message: string, status?: number): FarmError {
    const error = new Error(message) as FarmError;
    error.farm = true;
    error.code = code;
    if (status !== undefined) error.status = status;
    return error;
}

/** True for a FarmError, and (with `code`) for one of that code. */
export function isFarmError(error: unknown, code?: string): error is FarmError {
    return (
        error instanceof Error &&
        (error as Partial<FarmError>).farm === true &&
        (code === undefined || (error as FarmError).code === code)
    );
}
