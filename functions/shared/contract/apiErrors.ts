// The error values of the job contract: what a check answers (Checked) and the error body of every 4xx reply.
// Failures nobody can answer are thrown as FarmErrors instead (functions/shared/errors.ts).

/** The error body of every 4xx reply: `{error:{code,message,field}}` (plus `missing` for 422). */
export interface ApiError {
    status: number;
    code: string;
    message: string;
    field?: string;
    missing?: string[];
}

/** What a check answers: the value, or the error a caller replies with (see functions/shared/errors.ts). */
export type Checked<T> = { ok: true; value: T } | { ok: false; error: ApiError };

/** The failed side of a Checked. */
export function refused(error: ApiError): { ok: false; error: ApiError } {
    return { ok: false, error };
}

export function apiError(status: number, code: string, message: string, field?: string): ApiError {
    return field === undefined ? { status, code, message } : { status, code, message, field };
}

export function errorBody(error: ApiError): { error: Omit<ApiError, "status"> } {
    const { status: _status, ...rest } = error;
    return { error: rest };
}
