// A stand-in for the Lambda Runtime API (2018-06-01) that one runtime process talks to, as in a Lambda sandbox.
// Usage:
//   const api = await startRuntimeApi({ host: "127.0.0.1", port: 0 });
//   const child = spawn(cmd, args, { env: { AWS_LAMBDA_RUNTIME_API: api.address, ... } });
//   child.on("exit", (code, signal) => api.runtimeExited(exitReason(code, signal)));  // a death fails its invocation
//   await api.waitForNext();  // the cold start is over: the runtime polls /next
//   const result = await api.invoke(event, { timeoutMs: 3000 }); // {requestId, ok, payload} or {requestId, ok: false, error}
//   await api.close();
import { randomBytes, randomUUID } from "crypto";
import * as http from "http";
import { AddressInfo } from "net";
import { urlHost } from "./addresses";
import { forbiddenRequest } from "./localRequests";

/** The error shape Lambda reports: what the runtime posts to /error or /init/error, or what Lambda itself says. */
export interface LambdaError {
    errorType: string;
    errorMessage: string;
    trace?: string[];
}

export type InvokeResult =
    | { requestId: string; ok: true; payload: unknown }
    | { requestId: string; ok: false; error: LambdaError };

export interface RuntimeApiOptions {
    /** Default 127.0.0.1. */
    host?: string;
    /** 0 (the default) picks any free port. */
    port?: number;
    /** Sent as lambda-runtime-invoked-function-arn. */
    functionArn?: string;
    /** An invocation passed its deadline: Lambda ends the sandbox then, so whoever runs the runtime should kill it. */
    onTimeout?(requestId: string): void;
}

export interface RuntimeApi {
    /** host:port, the value of AWS_LAMBDA_RUNTIME_API. */
    address: string;
    /** Queues one invocation; the runtime gets it from /next with a deadline timeoutMs after it is handed out. */
    invoke(event: unknown, options: { timeoutMs: number }): Promise<InvokeResult>;
    /** What the runtime posted to /init/error, until it exits. */
    readonly initError: LambdaError | undefined;
    /** Resolves once the runtime waits in /next with nothing to hand out; rejects on an init error or its exit before that. */
    waitForNext(): Promise<void>;
    /** The runtime process ended (e.g. "exit status 1", "signal: killed"): its invocation fails with Runtime.ExitError. */
    runtimeExited(reason: string): void;
    close(): Promise<void>;
}

const PREFIX = "/2018-06-01/runtime";
const INVOCATION_PATH = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/;
/** Lambda's limit on a synchronous invocation's response. */
const MAX_RESPONSE_BYTES = 6 * 1024 * 1024;

interface Invocation {
    requestId: string;
    event: unknown;
    timeoutMs: number;
    resolve(result: InvokeResult): void;
    timer?: NodeJS.Timeout;
}

/** "exit status 1" or "signal: killed", as Lambda words a runtime's end. */
export function exitReason(code: number | null, signal: NodeJS.Signals | null): string {
    if (signal) return `signal: ${signal === "SIGKILL" ? "killed" : signal}`;
    return `exit status ${code}`;
}

/** An X-Ray trace header as Lambda sends it: Root=1-<epoch seconds, hex>-<96 random bits>;Parent=...;Sampled=0. */
function traceId(): string {
    const seconds = Math.floor(Date.now() / 1000).toString(16);
    return `Root=1-${seconds}-${randomBytes(12).toString("hex")};Parent=${randomBytes(8).toString("hex")};Sampled=0`;
}

function readBody(request: http.IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        request.on("data", (chunk: Buffer) => chunks.push(chunk));
        request.on("end", () => resolve(Buffer.concat(chunks)));
        request.on("error", reject);
    });
}

/** The runtime's error document; a body that is not one is reported as Lambda would, by its type header. */
function lambdaErrorOf(body: Buffer, typeHeader: string | string[] | undefined): LambdaError {
    const headerType = Array.isArray(typeHeader) ? typeHeader[0] : typeHeader;
    try {
        const parsed = JSON.parse(body.toString("utf8"));
        if (parsed && typeof parsed === "object") {
            return {
                errorType: String(parsed.errorType ?? headerType ?? "Unhandled"),
                errorMessage: String(parsed.errorMessage ?? ""),
                ...(Array.isArray(parsed.trace) ? { trace: parsed.trace.map(String) } : {}),
            };
        }
    } catch {
        // Not JSON: fall through.
    }
    return { errorType: headerType ?? "Unhandled", errorMessage: body.toString("utf8") };
}

function reply(response: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    response.end(text);
}

export async function startRuntimeApi(options: RuntimeApiOptions = {}): Promise<RuntimeApi> {
    const host = options.host ?? "127.0.0.1";
    const functionArn = options.functionArn ?? "arn:aws:lambda:us-east-1:000000000000:function:local";
    const queue: Invocation[] = [];
    /** The invocation handed out and not answered yet. */
    let current: Invocation | undefined;
    /** /next requests held open until there is an invocation. */
    const polls: http.ServerResponse[] = [];
    const nextWaiters: { resolve(): void; reject(error: Error): void }[] = [];
    let initError: LambdaError | undefined;
    /** The runtime has polled /next since it started. */
    let ready = false;
    let closed = false;

    const settleWaiters = (error?: Error) => {
        for (const waiter of nextWaiters.splice(0)) error ? waiter.reject(error) : waiter.resolve();
    };

    const finish = (invocation: Invocation, result: InvokeResult) => {
        clearTimeout(invocation.timer);
        if (current === invocation) current = undefined;
        invocation.resolve(result);
    };

    const dispatch = () => {
        while (!current && queue.length > 0 && polls.length > 0) {
            const invocation = queue.shift()!;
            const poll = polls.shift()!;
            if (poll.destroyed) {
                queue.unshift(invocation);
                continue;
            }
            current = invocation;
            const deadline = Date.now() + invocation.timeoutMs;
            invocation.timer = setTimeout(() => {
                finish(invocation, {
                    requestId: invocation.requestId,
                    ok: false,
                    error: {
                        errorType: "Sandbox.Timedout",
                        errorMessage: `RequestId: ${invocation.requestId} Error: Task timed out after ${(invocation.timeoutMs / 1000).toFixed(2)} seconds`,
                    },
                });
                options.onTimeout?.(invocation.requestId);
            }, invocation.timeoutMs);
            const body = JSON.stringify(invocation.event ?? null);
            poll.writeHead(200, {
                "content-type": "application/json",
                "content-length": Buffer.byteLength(body),
                "lambda-runtime-aws-request-id": invocation.requestId,
                "lambda-runtime-deadline-ms": String(deadline),
                "lambda-runtime-invoked-function-arn": functionArn,
                "lambda-runtime-trace-id": traceId(),
            });
            poll.end(body);
        }
        if (!current && queue.length === 0 && polls.some((poll) => !poll.destroyed)) settleWaiters();
    };

    const onNext = (response: http.ServerResponse) => {
        ready = true;
        if (current) {
            // A runtime asks again only after answering; one that does not has lost the invocation.
            finish(current, {
                requestId: current.requestId,
                ok: false,
                error: {
                    errorType: "Runtime.InvalidResponse",
                    errorMessage: `RequestId: ${current.requestId} Error: the runtime asked for the next invocation without answering this one`,
                },
            });
        }
        polls.push(response);
        response.on("close", () => {
            const index = polls.indexOf(response);
            if (index >= 0) polls.splice(index, 1);
        });
        dispatch();
    };

    const onResult = async (
        request: http.IncomingMessage,
        response: http.ServerResponse,
        requestId: string,
        kind: "response" | "error",
    ) => {
        const body = await readBody(request);
        const invocation = current && current.requestId === requestId ? current : undefined;
        if (!invocation) {
            reply(response, 400, {
                errorType: "InvalidRequestID",
                errorMessage: `no invocation ${requestId} is waiting for an answer (unknown, answered, or timed out)`,
            });
            return;
        }
        if (body.length > MAX_RESPONSE_BYTES) {
            reply(response, 413, { errorType: "RequestEntityTooLarge", errorMessage: "Payload too large" });
            finish(invocation, {
                requestId,
                ok: false,
                error: {
                    errorType: "Function.ResponseSizeTooLarge",
                    errorMessage: `Response payload size (${body.length} bytes) exceeded maximum allowed payload size (${MAX_RESPONSE_BYTES} bytes).`,
                },
            });
            return;
        }
        reply(response, 202, { status: "OK" });
        if (kind === "error") {
            finish(invocation, {
                requestId,
                ok: false,
                error: lambdaErrorOf(body, request.headers["lambda-runtime-function-error-type"]),
            });
            return;
        }
        const text = body.toString("utf8");
        let payload: unknown = text;
        try {
            payload = text === "" ? null : JSON.parse(text);
        } catch {
            // Lambda passes a non-JSON response through as it is.
        }
        finish(invocation, { requestId, ok: true, payload });
    };

    const onInitError = async (request: http.IncomingMessage, response: http.ServerResponse) => {
        const error = lambdaErrorOf(await readBody(request), request.headers["lambda-runtime-function-error-type"]);
        initError = error;
        reply(response, 202, { status: "OK" });
        // Lambda answers the invocations that waited for this init with its error.
        for (const invocation of queue.splice(0))
            finish(invocation, { requestId: invocation.requestId, ok: false, error });
        settleWaiters(new Error(`the runtime reported an init error: ${error.errorType}: ${error.errorMessage}`));
    };

    let port = options.port ?? 0;
    const server = http.createServer((request, response) => {
        const forbidden = forbiddenRequest(request.headers, { host, port }, "the Lambda Runtime API stand-in");
        if (forbidden) {
            reply(response, 403, { errorType: "AccessDeniedException", errorMessage: forbidden });
            return;
        }
        const url = request.url ?? "/";
        const route = INVOCATION_PATH.exec(url);
        const handled =
            request.method === "GET" && url === `${PREFIX}/invocation/next`
                ? Promise.resolve(onNext(response))
                : request.method === "POST" && route
                  ? onResult(request, response, decodeURIComponent(route[1]), route[2] as "response" | "error")
                  : request.method === "POST" && url === `${PREFIX}/init/error`
                    ? onInitError(request, response)
                    : Promise.resolve(
                          reply(response, 404, {
                              errorType: "NotFound",
                              errorMessage: `the Runtime API has no ${request.method} ${url}`,
                          }),
                      );
        handled.catch((error) => {
            if (!response.headersSent)
                reply(response, 500, { errorType: "ServiceException", errorMessage: String(error) });
        });
    });
    // A /next is held open for as long as nothing is invoked.
    server.requestTimeout = 0;
    server.keepAliveTimeout = 0;
    await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(options.port ?? 0, host, () => {
            server.off("error", reject);
            resolve();
        });
    });
    port = (server.address() as AddressInfo).port;

    return {
        address: `${urlHost(host)}:${port}`,
        get initError() {
            return initError;
        },
        invoke(event, { timeoutMs }) {
            return new Promise<InvokeResult>((resolve) => {
                const requestId = randomUUID();
                if (closed) {
                    resolve({
                        requestId,
                        ok: false,
                        error: { errorType: "ServiceException", errorMessage: "the Runtime API stand-in is closed" },
                    });
                    return;
                }
                if (initError) {
                    resolve({ requestId, ok: false, error: initError });
                    return;
                }
                queue.push({ requestId, event, timeoutMs, resolve });
                dispatch();
            });
        },
        waitForNext() {
            if (initError)
                return Promise.reject(
                    new Error(`the runtime reported an init error: ${initError.errorType}: ${initError.errorMessage}`),
                );
            return new Promise<void>((resolve, reject) => {
                nextWaiters.push({ resolve, reject });
                dispatch();
            });
        },
        runtimeExited(reason) {
            if (current) {
                const invocation = current;
                finish(invocation, {
                    requestId: invocation.requestId,
                    ok: false,
                    error: {
                        errorType: "Runtime.ExitError",
                        errorMessage: `RequestId: ${invocation.requestId} Error: Runtime exited with error: ${reason}`,
                    },
                });
            }
            // Invocations that waited for a runtime that never came up fail with its exit, as their cold start did.
            if (!ready)
                for (const invocation of queue.splice(0))
                    finish(invocation, {
                        requestId: invocation.requestId,
                        ok: false,
                        error: {
                            errorType: "Runtime.ExitError",
                            errorMessage: `RequestId: ${invocation.requestId} Error: Runtime exited with error: ${reason}`,
                        },
                    });
            settleWaiters(
                new Error(
                    ready
                        ? `the runtime exited (${reason})`
                        : `the runtime exited (${reason}) before it asked for an invocation`,
                ),
            );
            // The next runtime process is a new sandbox: a fresh init.
            ready = false;
            initError = undefined;
            for (const poll of polls.splice(0)) poll.destroy();
        },
        async close() {
            if (closed) return;
            closed = true;
            const error: LambdaError = {
                errorType: "ServiceException",
                errorMessage: "the Runtime API stand-in closed",
            };
            if (current) finish(current, { requestId: current.requestId, ok: false, error });
            for (const invocation of queue.splice(0))
                finish(invocation, { requestId: invocation.requestId, ok: false, error });
            settleWaiters(new Error(error.errorMessage));
            for (const poll of polls.splice(0)) poll.destroy();
            await new Promise<void>((resolve) => {
                server.close(() => resolve());
                server.closeAllConnections();
            });
        },
    };
}
