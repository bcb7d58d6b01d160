// The job API Lambda's handler: API Gateway HTTP API (payload v2) events in, JSON replies out.
// Thin on purpose: parse the event, call the plain functions of jobApi.ts, map the reply.
import { apiError, Checked, errorBody, MAX_REQUEST_BYTES, refused } from "../shared/contract";
import { cancelJob } from "./cancel";
import { ApiReply, errorReply } from "./replies";
import { retryJob } from "./retry";
import { DEFAULT_WORK_MS, JobApiDeps } from "./settings";
import { getJobStatus } from "./status";
import { submitJob } from "./submit";

/** The parts of an API Gateway HTTP API (payload format 2.0) event the job API reads. */
export interface HttpApiEvent {
    routeKey?: string;
    rawPath?: string;
    body?: string | null;
    isBase64Encoded?: boolean;
    pathParameters?: Record<string, string | undefined> | null;
    queryStringParameters?: Record<string, string | undefined> | null;
    rawQueryString?: string;
    headers?: Record<string, string | undefined> | null;
    requestContext?: { http?: { method?: string; path?: string } };
}

export interface HttpApiResult {
    statusCode: number;
    headers: Record<string, string>;
    body: string;
}

/** The part of Lambda's context the job API reads: how long the invocation has left. */
export interface InvocationContext {
    getRemainingTimeInMillis?: () => number;
}

export type JobApiHandler = (event: HttpApiEvent, context?: InvocationContext) => Promise<HttpApiResult>;

/** Time kept back from Lambda's deadline to write the queue progress and answer. */
const ANSWER_RESERVE_MS = 4_000;

function result(reply: ApiReply): HttpApiResult {
    return {
        statusCode: reply.status,
        headers: { "content-type": "application/json" },
        body: JSON.stringify(reply.body),
    };
}

function fail(status: number, code: string, message: string, field?: string): HttpApiResult {
    return result({ status, body: errorBody(apiError(status, code, message, field)) });
}

/** The JSON body of a request, or the 400/413 explaining why there is none. */
function parseBody(event: HttpApiEvent): Checked<unknown> {
    const raw = event.body ?? "";
    // Checked before decoding so an oversized body costs nothing: base64 is 4 characters per 3 bytes.
    const encodedLimit = event.isBase64Encoded ? Math.ceil(MAX_REQUEST_BYTES / 3) * 4 : MAX_REQUEST_BYTES;
    const tooLarge = refused(
        413,
        "body_too_large",
        `the request body is larger than ${MAX_REQUEST_BYTES} bytes`,
        "body",
    );
    if (raw.length > encodedLimit) return tooLarge;
    const text = event.isBase64Encoded ? Buffer.from(raw, "base64").toString("utf8") : raw;
    if (Buffer.byteLength(text, "utf8") > MAX_REQUEST_BYTES) return tooLarge;
    if (text.trim() === "")
        return refused(400, "invalid_json", "the request body is empty; send a JSON object", "body");
    try {
        return { ok: true, value: JSON.parse(text) };
    } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        return refused(400, "invalid_json", `the request body is not valid JSON: ${why}`, "body");
    }
}

interface Route {
    name: "submit" | "status" | "retry" | "cancel";
    jobId?: string;
}

function decodeSegment(segment: string): string {
    try {
        return decodeURIComponent(segment);
    } catch {
        return segment;
    }
}

/** GET /jobs/{jobId}?failures=<token>: the failures page token, from API Gateway's parsed query or the raw one. */
function failuresTokenOf(event: HttpApiEvent): string | undefined {
    const parsed = event.queryStringParameters?.failures;
    if (parsed !== undefined) return parsed;
    return new URLSearchParams(event.rawQueryString ?? "").get("failures") ?? undefined;
}

/** Which of the routes an event is for, from its routeKey, or its method and path behind a $default route. */
function routeOf(event: HttpApiEvent): Route | undefined {
    const routeKey = event.routeKey && event.routeKey !== "$default" ? event.routeKey : undefined;
    const method = (event.requestContext?.http?.method ?? routeKey?.split(" ")[0] ?? "").toUpperCase();
    if (routeKey) {
        const jobId = event.pathParameters?.jobId;
        if (routeKey === "POST /jobs") return { name: "submit" };
        if (routeKey === "GET /jobs/{jobId}") return { name: "status", jobId };
        if (routeKey === "POST /jobs/{jobId}/retry") return { name: "retry", jobId };
        if (routeKey === "POST /jobs/{jobId}/cancel") return { name: "cancel", jobId };
        return undefined;
    }
    const path = (event.rawPath ?? event.requestContext?.http?.path ?? "").replace(/\/+$/, "");
    const segments = path.split("/").slice(1).map(decodeSegment);
    if (segments[0] !== "jobs") return undefined;
    if (method === "POST" && segments.length === 1) return { name: "submit" };
    if (method === "GET" && segments.length === 2) return { name: "status", jobId: segments[1] };
    if (method === "POST" && segments.length === 3 && segments[2] === "retry")
        return { name: "retry", jobId: segments[1] };
    if (method === "POST" && segments.length === 3 && segments[2] === "cancel")
        return { name: "cancel", jobId: segments[1] };
    return undefined;
}

/** The handler for the job API routes: POST /jobs, GET /jobs/{jobId}, POST /jobs/{jobId}/retry and /cancel. */
export function createJobApiHandler(deps: JobApiDeps): JobApiHandler {
    return async (event: HttpApiEvent, context?: InvocationContext): Promise<HttpApiResult> => {
        // Queueing stops here and says how far it got, so a 29 s API Gateway limit never cuts a request off mid-group.
        const remaining = context?.getRemainingTimeInMillis?.();
        const deadline = Date.now() + (remaining === undefined ? DEFAULT_WORK_MS : remaining - ANSWER_RESERVE_MS);
        try {
            const route = routeOf(event);
            if (!route) {
                const method = event.requestContext?.http?.method ?? "";
                const shown =
                    event.routeKey && event.routeKey !== "$default"
                        ? event.routeKey
                        : `${method} ${event.rawPath ?? ""}`.trim();
                return fail(
                    404,
                    "not_found",
                    `no route ${shown}; the job API serves POST /jobs, GET /jobs/{jobId}, POST /jobs/{jobId}/retry and POST /jobs/{jobId}/cancel`,
                );
            }
            if (route.name === "status") return result(await getJobStatus(deps, route.jobId, failuresTokenOf(event)));
            if (route.name === "retry") return result(await retryJob(deps, route.jobId, new Date(), deadline));
            if (route.name === "cancel") return result(await cancelJob(deps, route.jobId));
            const body = parseBody(event);
            if (!body.ok) return result(errorReply(body.error));
            return result(await submitJob(deps, body.value, deadline));
        } catch (error) {
            // The plain functions answer errors as replies; this is for the unforeseen, without a stack trace.
            console.error("job API: unexpected error", error);
            return fail(
                500,
                "internal_error",
                `the job API failed unexpectedly: ${error instanceof Error ? error.message : String(error)}`,
            );
        }
    };
}
