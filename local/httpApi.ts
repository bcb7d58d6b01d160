// The local farm's HTTP server: what API Gateway (HTTP API, payload 2.0) does for the job API, and the
// Lambda runtime interface emulator's invoke path, so one frame can be run by hand as in the Lambda docs:
//   curl -d @event.json http://127.0.0.1:8787/2015-03-31/functions/function/invocations
import { randomUUID } from "crypto";
import * as http from "http";
import { AddressInfo } from "net";
import { TextDecoder } from "util";
import type { APIGatewayEventRequestContextIAMAuthorizer, APIGatewayProxyEventV2 } from "aws-lambda";
import { apiError, errorBody, MAX_REQUEST_BYTES } from "../functions/shared/contract";
import { HttpApiResult } from "../functions/jobApi/handler";
import { urlHost } from "./addresses";
import { forbiddenRequest } from "./localRequests";

/** Lambda's own limit on a synchronous invocation's payload. */
export const MAX_INVOKE_BYTES = 6 * 1024 * 1024;
const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/;
const ROUTES = "POST /jobs, GET /jobs/{jobId}, POST /jobs/{jobId}/retry and POST /jobs/{jobId}/cancel";

export type Invocable = (event: unknown) => Promise<unknown>;

/** The job API behind the routes: the handler in this process, or the function under a Lambda runtime. */
export type HttpApiIntegration = (
    event: APIGatewayProxyEventV2,
) => Promise<HttpApiResult & { isBase64Encoded?: boolean }>;

/** Thrown by an Invocable that will not run the event: answered 403, the function never runs. */
export class InvocationRefused extends Error {
    constructor(message: string) {
        super(message);
        this.name = "InvocationRefused";
    }
}

export interface HttpApiOptions {
    host: string;
    /** 0 picks any free port. */
    port: number;
    jobApi: HttpApiIntegration;
    /** Functions callable at /2015-03-31/functions/<name>/invocations, by name. */
    functions: Record<string, Invocable>;
    log(line: string): void;
}

export interface HttpApi {
    /** e.g. http://127.0.0.1:8787 */
    url: string;
    server: http.Server;
    /** Stops accepting, lets requests in progress finish for up to graceMs, then drops the rest. */
    close(graceMs?: number): Promise<void>;
}

/** The route an API Gateway HTTP API with the job API's three routes would match, if any. */
function matchRoute(
    method: string,
    path: string,
): { routeKey: string; pathParameters?: Record<string, string> } | undefined {
    const decode = (segment: string) => {
        try {
            return decodeURIComponent(segment);
        } catch {
            return segment;
        }
    };
    if (method === "POST" && path === "/jobs") return { routeKey: "POST /jobs" };
    let match = /^\/jobs\/([^/]+)$/.exec(path);
    if (method === "GET" && match)
        return { routeKey: "GET /jobs/{jobId}", pathParameters: { jobId: decode(match[1]) } };
    match = /^\/jobs\/([^/]+)\/(retry|cancel)$/.exec(path);
    if (method === "POST" && match)
        return { routeKey: `POST /jobs/{jobId}/${match[2]}`, pathParameters: { jobId: decode(match[1]) } };
    return undefined;
}

/** Bytes of a refused body read and thrown away, so that the reply reaches the client; past this it is cut off. */
export const MAX_DISCARDED_BYTES = 64 * 1024 * 1024;

/** Requests that sent `Expect: 100-continue`: their body comes only once we answer 100 Continue. */
const awaitingContinue = new WeakSet<http.IncomingMessage>();

/**
 * The request's body will not be read. Closing a connection with body bytes still arriving resets it, and the
 * client loses the reply: so a client waiting for 100 Continue is answered and the connection closed (it never
 * sends the body), and any other body is read to its end and dropped (keeping the connection), up to a bound.
 */
function refuseBody(request: http.IncomingMessage, response: http.ServerResponse): void {
    if (awaitingContinue.has(request)) {
        response.shouldKeepAlive = false;
        return;
    }
    let discarded = 0;
    request.removeAllListeners("data");
    request.on("data", (chunk: Buffer) => {
        discarded += chunk.length;
        if (discarded > MAX_DISCARDED_BYTES) request.socket.destroy();
    });
    request.resume();
}

/** Reads at most `limit` bytes of the body; a longer one is refused (refuseBody), never buffered. */
function readBody(
    request: http.IncomingMessage,
    response: http.ServerResponse,
    limit: number,
): Promise<Buffer | "too_large"> {
    const declared = Number(request.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) {
        refuseBody(request, response);
        return Promise.resolve("too_large");
    }
    if (awaitingContinue.delete(request)) response.writeContinue();
    return new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const onData = (chunk: Buffer) => {
            size += chunk.length;
            if (size > limit) {
                chunks.length = 0;
                refuseBody(request, response);
                resolve("too_large");
                return;
            }
            chunks.push(chunk);
        };
        request.on("data", onData);
        request.on("end", () => resolve(Buffer.concat(chunks)));
        request.on("error", reject);
        // After "end" this changes nothing; before it, the client went away mid-body.
        request.on("close", () => reject(new Error("the client closed the connection before sending the whole body")));
    });
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** API Gateway passes text bodies as they are and anything else base64-encoded. */
function bodyOf(bytes: Buffer): { body?: string; isBase64Encoded: boolean } {
    if (bytes.length === 0) return { isBase64Encoded: false };
    try {
        return { body: utf8.decode(bytes), isBase64Encoded: false };
    } catch {
        return { body: bytes.toString("base64"), isBase64Encoded: true };
    }
}

/**
 * What an AWS_IAM route adds for a SigV4-signed request. The local farm has no IAM: the signature is not checked,
 * and the caller is named by the access key it signed with, in the local account.
 */
function iamAuthorizer(authorization: string | undefined): APIGatewayEventRequestContextIAMAuthorizer | undefined {
    const accessKey = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\//.exec(authorization ?? "")?.[1];
    if (!accessKey) return undefined;
    return {
        iam: {
            accessKey,
            accountId: "000000000000",
            callerId: accessKey,
            cognitoIdentity: null,
            principalOrgId: "",
            userArn: `arn:aws:iam::000000000000:user/${accessKey}`,
            userId: accessKey,
        },
    };
}

/** The payload 2.0 event API Gateway would hand the job API for this request. */
function httpApiEvent(
    request: http.IncomingMessage,
    url: URL,
    route: { routeKey: string; pathParameters?: Record<string, string> },
    bytes: Buffer,
): APIGatewayProxyEventV2 {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
        if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(",") : value;
    }
    const query: Record<string, string> = {};
    for (const [name, value] of url.searchParams)
        query[name] = query[name] === undefined ? value : `${query[name]},${value}`;
    const now = new Date();
    const method = request.method ?? "GET";
    const authorizer = iamAuthorizer(headers.authorization);
    return {
        version: "2.0",
        routeKey: route.routeKey,
        rawPath: url.pathname,
        rawQueryString: url.search.slice(1),
        headers,
        ...(url.search ? { queryStringParameters: query } : {}),
        ...(route.pathParameters ? { pathParameters: route.pathParameters } : {}),
        requestContext: {
            accountId: "000000000000",
            apiId: "local",
            domainName: headers.host ?? "localhost",
            domainPrefix: (headers.host ?? "localhost").split(".")[0],
            http: {
                method,
                path: url.pathname,
                protocol: `HTTP/${request.httpVersion}`,
                sourceIp: request.socket.remoteAddress ?? "",
                userAgent: headers["user-agent"] ?? "",
            },
            requestId: randomUUID(),
            routeKey: route.routeKey,
            stage: "$default",
            time: now.toISOString(),
            timeEpoch: now.getTime(),
            ...(authorizer ? { authorizer } : {}),
        },
        ...bodyOf(bytes),
    };
}

function sendJson(
    response: http.ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
): void {
    const text = JSON.stringify(body);
    response.writeHead(status, {
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(text)),
        ...headers,
    });
    response.end(text);
}

/** A body past the limit: 413 (readBody has already arranged for the rest of the body). */
function sendTooLarge(response: http.ServerResponse, body: unknown): void {
    sendJson(response, 413, body);
}

async function invokeFunction(
    options: HttpApiOptions,
    name: string,
    request: http.IncomingMessage,
    response: http.ServerResponse,
): Promise<void> {
    const fn = options.functions[name];
    if (!fn) {
        refuseBody(request, response);
        sendJson(
            response,
            404,
            {
                Type: "User",
                message: `Function not found: ${name}; this farm has ${Object.keys(options.functions).join(", ")}`,
            },
            { "x-amzn-errortype": "ResourceNotFoundException" },
        );
        return;
    }
    const bytes = await readBody(request, response, MAX_INVOKE_BYTES);
    if (bytes === "too_large") {
        sendTooLarge(response, {
            Type: "User",
            message: `the invocation payload is larger than ${MAX_INVOKE_BYTES} bytes`,
        });
        return;
    }
    let event: unknown;
    try {
        event = bytes.length === 0 ? {} : JSON.parse(bytes.toString("utf8"));
    } catch (error) {
        sendJson(
            response,
            400,
            { Type: "User", message: `the invocation payload is not JSON: ${(error as Error).message}` },
            { "x-amzn-errortype": "InvalidRequestContentException" },
        );
        return;
    }
    try {
        sendJson(response, 200, (await fn(event)) ?? null);
    } catch (error) {
        if (error instanceof InvocationRefused) {
            sendJson(
                response,
                403,
                { Type: "User", message: error.message },
                { "x-amzn-errortype": "AccessDeniedException" },
            );
            return;
        }
        // As Lambda reports a handler's exception: status 200 with X-Amz-Function-Error.
        const failure = error instanceof Error ? error : new Error(String(error));
        sendJson(
            response,
            200,
            { errorType: failure.name, errorMessage: failure.message },
            { "x-amz-function-error": "Unhandled" },
        );
    }
}

async function serveJobApi(
    options: HttpApiOptions,
    request: http.IncomingMessage,
    response: http.ServerResponse,
    url: URL,
): Promise<void> {
    const method = request.method ?? "GET";
    const route = matchRoute(method, url.pathname);
    if (!route) {
        refuseBody(request, response);
        sendJson(
            response,
            404,
            errorBody(apiError(404, "not_found", `no route ${method} ${url.pathname}; the job API serves ${ROUTES}`)),
        );
        return;
    }
    const bytes = await readBody(request, response, MAX_REQUEST_BYTES);
    if (bytes === "too_large") {
        sendTooLarge(
            response,
            errorBody(
                apiError(413, "body_too_large", `the request body is larger than ${MAX_REQUEST_BYTES} bytes`, "body"),
            ),
        );
        return;
    }
    const result = await options.jobApi(httpApiEvent(request, url, route, bytes));
    const body = Buffer.from(result.body ?? "", result.isBase64Encoded ? "base64" : "utf8");
    response.writeHead(result.statusCode, { ...result.headers, "content-length": String(body.length) });
    response.end(body);
}

export async function startHttpApi(options: HttpApiOptions): Promise<HttpApi> {
    let port = options.port;
    const server = http.createServer((request, response) => {
        const url = new URL(request.url ?? "/", "http://local");
        const forbidden = forbiddenRequest(request.headers, { host: options.host, port }, "the local farm's API");
        if (forbidden) {
            refuseBody(request, response);
            sendJson(response, 403, errorBody(apiError(403, "forbidden", forbidden)));
            return;
        }
        const invoke = request.method === "POST" ? INVOKE_PATH.exec(url.pathname) : null;
        const handled = invoke
            ? invokeFunction(options, decodeURIComponent(invoke[1]), request, response)
            : serveJobApi(options, request, response, url);
        handled.catch((error) => {
            options.log(
                `http: ${request.method} ${url.pathname} failed: ${error instanceof Error ? error.message : String(error)}`,
            );
            if (!response.headersSent)
                sendJson(
                    response,
                    500,
                    errorBody(apiError(500, "internal_error", "the local farm's HTTP adapter failed; see its log")),
                );
            else response.destroy();
        });
    });
    // Answered by us, not by Node's automatic 100 Continue: a body that will be refused is then never sent.
    server.on("checkContinue", (request, response) => {
        awaitingContinue.add(request);
        server.emit("request", request, response);
    });
    await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(options.port, options.host, () => {
            server.off("error", reject);
            resolve();
        });
    }).catch((error: NodeJS.ErrnoException) => {
        if (error.code === "EADDRINUSE")
            throw new Error(
                `port ${options.port} on ${options.host} is already in use; pick another with --port (0 = any free port)`,
            );
        throw error;
    });
    port = (server.address() as AddressInfo).port;
    let closed: Promise<void> | undefined;
    return {
        url: `http://${urlHost(options.host)}:${port}`,
        server,
        close(graceMs = 5000) {
            closed ??= new Promise<void>((resolve) => {
                const force = setTimeout(() => server.closeAllConnections(), graceMs);
                server.close(() => {
                    clearTimeout(force);
                    resolve();
                });
                server.closeIdleConnections();
            });
            return closed;
        },
    };
}
