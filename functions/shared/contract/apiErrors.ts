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

/** The failed side of a Checked: the error a caller replies with. */
export type Refusal = { ok: false; error: ApiError };

/** What a check answers: the value, or why it refuses (see functions/shared/errors.ts). */
export type Checked<T> = { ok: true; value: T } | Refusal;

/** The one way a check refuses: with an ApiError, or with what makes one (as apiError takes it). */
export function refused(error: ApiError): Refusal;
export function refused(status: number, code: string, message: string, field?: string): Refusal;
export function refused(error: ApiError | number, code?: string, message?: string, field?: string): Refusal {
    return { ok: false, error: typeof error === "number" ? apiError(error, code!, message!, field) : error };
}

export function apiError(status: number, code: string, message: string, field?: string): ApiError {
    return field === undefined ? { status, code, message } : { status, code, message, field };
}

export function errorBody(error: ApiError): { error: Omit<ApiError, "status"> } {
    const { status: _status, ...rest } = error;
    return { error: rest };
}
