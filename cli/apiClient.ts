// The job API over HTTP: POST /jobs, GET /jobs/{jobId}, POST /jobs/{jobId}/retry and /cancel.
// Against AWS every request is SigV4-signed (service execute-api) with the default credential chain;
// the local farm's API needs no signature.
import { Sha256 } from "@aws-crypto/sha256-js";
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { SignatureV4 } from "@smithy/signature-v4";
import type { ApiError, JobRequest, JobStatus } from "../functions/shared/contract";
import type { CancelReply, RetryReply, SubmitReply } from "../functions/shared/contract";
import { CliError, EXIT_UNREACHABLE, EXIT_USAGE, networkErrorCode, oneLine, unreachableError } from "./errors";

export interface ApiClientOptions {
    apiUrl: string;
    /** Sign with SigV4 (AWS targets); the region defaults to the one in an execute-api host name. */
    sign: boolean;
    region?: string;
    /** Per request; default 30 s. */
    timeoutMs?: number;
}

export interface ApiClient {
    readonly apiUrl: string;
    submit(request: JobRequest): Promise<SubmitReply>;
    /** One page of the job's failures: the first, or the one `failures` (an earlier reply's failuresNext) names. */
    status(jobId: string, failures?: string): Promise<JobStatus>;
    retry(jobId: string): Promise<RetryReply>;
    cancel(jobId: string): Promise<CancelReply>;
    /** Fails with exit code 3 unless the URL answers like a job API (any JSON reply to GET /jobs/<id>). */
    ping(): Promise<void>;
}

interface Reply {
    status: number;
    body: unknown;
}

/** The region of an API Gateway host name: <id>.execute-api.<region>.amazonaws.com. */
export function regionOfApiUrl(apiUrl: string): string | undefined {
    return /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$/.exec(new URL(apiUrl).hostname)?.[1];
}

function errorOf(body: unknown): Omit<ApiError, "status"> | undefined {
    const error = (body as { error?: unknown } | undefined)?.error;
    return typeof error === "object" && error !== null && typeof (error as { message?: unknown }).message === "string"
        ? (error as Omit<ApiError, "status">)
        : undefined;
}

/** A refused request as a one-line CliError: what the farm said, and whose fault it is (exit 2 for requests, 3 for the farm). */
function replyError(method: string, url: string, reply: Reply): CliError {
    const error = errorOf(reply.body);
    const said = error ? `${error.message}${error.code ? ` (${error.code})` : ""}` : `HTTP ${reply.status}`;
    if (reply.status === 403 || reply.status === 401) {
        const message = (reply.body as { message?: string } | undefined)?.message;
        return new CliError(
            `the job API refused the request (${reply.status}${message ? `: ${message}` : ""}); check your AWS credentials and that they may call ${url}`,
            EXIT_USAGE,
            "forbidden",
        );
    }
    if (reply.status >= 500 || reply.status === 429)
        return new CliError(
            `the job API failed on ${method} ${new URL(url).pathname}: ${said}`,
            EXIT_UNREACHABLE,
            error?.code ?? "api_error",
        );
    return new CliError(said, EXIT_USAGE, error?.code ?? "api_error");
}

export function createApiClient(options: ApiClientOptions): ApiClient {
    let base: URL;
    try {
        base = new URL(options.apiUrl);
    } catch {
        throw new CliError(`--api ${options.apiUrl} is not a URL`, EXIT_USAGE, "invalid_api_url");
    }
    if (base.protocol !== "http:" && base.protocol !== "https:")
        throw new CliError(`--api ${options.apiUrl} must be an http(s) URL`, EXIT_USAGE, "invalid_api_url");
    const apiUrl = base.toString().replace(/\/+$/, "");
    const timeoutMs = options.timeoutMs ?? 30_000;
    let signer: SignatureV4 | undefined;
    if (options.sign) {
        const region =
            options.region ?? regionOfApiUrl(apiUrl) ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
        if (!region)
            throw new CliError(
                `cannot tell the AWS region of ${apiUrl} to sign requests; pass --outputs (with "region") or set AWS_REGION`,
                EXIT_USAGE,
                "no_region",
            );
        signer = new SignatureV4({ service: "execute-api", region, credentials: defaultProvider(), sha256: Sha256 });
    }

    async function send(method: string, route: string, body?: unknown): Promise<Reply> {
        const url = new URL(`${apiUrl}${route}`);
        const payload = body === undefined ? undefined : JSON.stringify(body);
        let headers: Record<string, string> = { accept: "application/json", host: url.host };
        if (payload !== undefined) headers["content-type"] = "application/json";
        if (signer) {
            try {
                const signed = await signer.sign({
                    method,
                    protocol: url.protocol,
                    hostname: url.hostname,
                    port: url.port ? Number(url.port) : undefined,
                    path: url.pathname,
                    query: Object.fromEntries(url.searchParams),
                    headers,
                    body: payload,
                });
                headers = signed.headers;
            } catch (error) {
                throw new CliError(
                    `no AWS credentials to sign the request with (${oneLine(error)}); run \`aws configure\` or set AWS_PROFILE / AWS_ACCESS_KEY_ID`,
                    EXIT_USAGE,
                    "no_credentials",
                );
            }
        }
        // fetch sets Host itself and refuses to be given one.
        delete headers.host;
        let response: Response;
        try {
            response = await fetch(url, { method, headers, body: payload, signal: AbortSignal.timeout(timeoutMs) });
        } catch (error) {
            const code = networkErrorCode(error);
            throw unreachableError(
                `cannot reach the job API at ${apiUrl}: ${code ?? oneLine((error as { cause?: unknown }).cause ?? error)}${code === "ETIMEDOUT" ? ` (no answer in ${timeoutMs / 1000} s)` : ""}`,
            );
        }
        const text = await response.text().catch(() => "");
        let parsed: unknown;
        try {
            parsed = text === "" ? undefined : JSON.parse(text);
        } catch {
            throw unreachableError(
                `${apiUrl} does not look like a render-farm job API: ${method} ${url.pathname} replied ${response.status} with ${response.headers.get("content-type") ?? "no content type"}`,
                "not_a_job_api",
            );
        }
        return { status: response.status, body: parsed };
    }

    /** GETs are safe to repeat: a dropped connection or a 5xx/429 while polling is retried with backoff. */
    async function sendWithRetries(method: string, route: string, body?: unknown, attempts = 1): Promise<Reply> {
        for (let attempt = 1; ; attempt++) {
            try {
                const reply = await send(method, route, body);
                if ((reply.status >= 500 || reply.status === 429) && attempt < attempts) {
                    await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
                    continue;
                }
                return reply;
            } catch (error) {
                if (!(error instanceof CliError) || error.exitCode !== EXIT_UNREACHABLE || attempt >= attempts)
                    throw error;
                await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
            }
        }
    }

    async function call<T>(method: string, route: string, body?: unknown, attempts = 1): Promise<T> {
        const reply = await sendWithRetries(method, route, body, attempts);
        if (reply.status >= 200 && reply.status < 300) return reply.body as T;
        throw replyError(method, `${apiUrl}${route}`, reply);
    }

    const jobRoute = (jobId: string) => `/jobs/${encodeURIComponent(jobId)}`;
    return {
        apiUrl,
        // The CLI always sends a jobId, so a resubmit after a dropped connection is idempotent.
        submit: (request) => call<SubmitReply>("POST", "/jobs", request, request.jobId ? 3 : 1),
        status: (jobId, failures) =>
            call<JobStatus>(
                "GET",
                failures === undefined
                    ? jobRoute(jobId)
                    : `${jobRoute(jobId)}?failures=${encodeURIComponent(failures)}`,
                undefined,
                4,
            ),
        retry: (jobId) => call<RetryReply>("POST", `${jobRoute(jobId)}/retry`),
        cancel: (jobId) => call<CancelReply>("POST", `${jobRoute(jobId)}/cancel`),
        async ping() {
            const reply = await send("GET", jobRoute("render-farm-cli-ping"));
            if (reply.status === 403 || reply.status === 401 || reply.status >= 500)
                throw replyError("GET", `${apiUrl}/jobs`, reply);
            if (reply.status !== 404 || !errorOf(reply.body)) {
                throw unreachableError(
                    `${apiUrl} does not look like a render-farm job API: GET /jobs/<unknown id> replied ${reply.status}`,
                    "not_a_job_api",
                );
            }
        },
    };
}
