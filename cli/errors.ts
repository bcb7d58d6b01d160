// Exit codes and the one error type the CLI reports: a one-line reason, a code (as every FarmError has, see
// functions/shared/errors.ts) and the status to exit with.
import type { FarmError } from "../functions/shared/errors";

export const EXIT_OK = 0;
/** The job ended but some frames failed (or are missing). */
export const EXIT_FRAMES_FAILED = 1;
/** Bad usage or input: a missing file, not a .blend, a request the farm refused. */
export const EXIT_USAGE = 2;
/** The farm (API, storage, stack) could not be reached or is failing. */
export const EXIT_UNREACHABLE = 3;
/** The wait for a job ran out: no progress for longer than the farm lets a frame be silent, or past its deadline. */
export const EXIT_WAIT_EXPIRED = 4;
/** Stopped by Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;

export class CliError extends Error implements FarmError {
    readonly farm = true;
    constructor(
        message: string,
        readonly exitCode: number,
        /** A short machine-readable code for --json output, e.g. "not_a_blend". */
        readonly code = "error",
    ) {
        super(message);
        this.name = "CliError";
    }
}

export function usageError(message: string, code = "usage"): CliError {
    return new CliError(message, EXIT_USAGE, code);
}

export function unreachableError(message: string, code = "unreachable"): CliError {
    return new CliError(message, EXIT_UNREACHABLE, code);
}

/** The message of anything thrown, on one line (AWS SDK errors included), never a stack trace. */
export function oneLine(error: unknown): string {
    let text: string;
    if (error instanceof Error) {
        const name =
            error.name && error.name !== "Error" && !error.message.startsWith(error.name) ? `${error.name}: ` : "";
        text = `${name}${error.message || String(error)}`;
    } else {
        text = String(error);
    }
    return text.replace(/\s*\n\s*/g, " ").trim();
}

/** Node's network error code (ECONNREFUSED, ENOTFOUND, …) of a failed fetch or SDK call, if it is one. */
export function networkErrorCode(error: unknown): string | undefined {
    const NETWORK =
        /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPIPE|UND_ERR_\w+)$/;
    let current: unknown = error;
    for (let depth = 0; depth < 5 && current; depth++) {
        const code = (current as { code?: unknown }).code;
        if (typeof code === "string" && NETWORK.test(code)) return code;
        const name = (current as { name?: unknown }).name;
        if (name === "TimeoutError" || name === "AbortError") return "ETIMEDOUT";
        // AggregateError (a connection tried on IPv4 and IPv6) carries the codes of its parts.
        const errors = (current as { errors?: unknown[] }).errors;
        if (Array.isArray(errors)) {
            for (const inner of errors) {
                const innerCode = networkErrorCode(inner);
                if (innerCode) return innerCode;
            }
        }
        current = (current as { cause?: unknown }).cause;
    }
    return undefined;
}
