// An HTTP proxy in front of the S3/SQS emulator that breaks chosen requests the ways a network and S3 do:
// a 503 reply (S3's SlowDown), a connection reset before any reply, a request body cut half-way (the upload
// dies mid-transfer: the emulator receives half an object), a response body cut half-way (the download dies),
// a hung connection (the request is read and never answered).
// Every request is logged with what was done to it.
import * as http from "http";
import { AddressInfo } from "net";

export type FaultKind = "slow-down" | "reset" | "cut-request" | "cut-response" | "hang";

export interface ProxiedRequest {
    at: number;
    method: string;
    /** S3 operations by method and path (path-style); everything else (SQS's POST /) is "other". */
    operation:
        | "GetObject"
        | "PutObject"
        | "HeadObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload"
        | "other-s3"
        | "other";
    /** Bytes of the request body that reached the proxy (counted when the body ends). */
    bodyBytes?: number;
    bucket?: string;
    key?: string;
    fault?: FaultKind;
}

export type FaultRule = (request: ProxiedRequest) => FaultKind | undefined;

export interface FaultProxy {
    url: string;
    /** Every request so far, in arrival order. */
    requests: ProxiedRequest[];
    /** Decides each request's fault from now on; undefined passes everything through. */
    setRule(rule: FaultRule | undefined): void;
    close(): Promise<void>;
}

function describe(method: string, url: string, headers: http.IncomingHttpHeaders): Omit<ProxiedRequest, "at"> {
    const parsed = new URL(url, "http://proxy");
    if (headers["x-amz-target"] || (method === "POST" && parsed.pathname === "/"))
        return { method, operation: "other" };
    const [, bucket, ...rest] = parsed.pathname.split("/");
    const key = rest.length > 0 ? decodeURIComponent(rest.join("/")) : undefined;
    // GetObject/PutObject carry no sub-resource in the query (the SDK adds x-id=GetObject / x-id=PutObject).
    const plain = [...parsed.searchParams.keys()].every((name) => name === "x-id");
    const query = parsed.searchParams;
    let operation: ProxiedRequest["operation"] = "other-s3";
    if (key && plain && method === "GET") operation = "GetObject";
    else if (key && plain && method === "PUT") operation = "PutObject";
    else if (key && method === "HEAD") operation = "HeadObject";
    else if (key && method === "POST" && query.has("uploads")) operation = "CreateMultipartUpload";
    else if (key && method === "PUT" && query.has("partNumber") && query.has("uploadId")) operation = "UploadPart";
    else if (key && method === "POST" && query.has("uploadId")) operation = "CompleteMultipartUpload";
    else if (key && method === "DELETE" && query.has("uploadId")) operation = "AbortMultipartUpload";
    return { method, operation, bucket: bucket || undefined, key };
}

const SLOW_DOWN =
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';

export function startFaultProxy(upstream: string): Promise<FaultProxy> {
    const target = new URL(upstream);
    const requests: ProxiedRequest[] = [];
    let rule: FaultRule | undefined;
    const agent = new http.Agent({ keepAlive: true });

    const server = http.createServer((request, response) => {
        const entry: ProxiedRequest = {
            at: Date.now(),
            ...describe(request.method ?? "GET", request.url ?? "/", request.headers),
        };
        entry.fault = rule?.(entry);
        requests.push(entry);
        let bodyBytes = 0;
        request.on("data", (chunk: Buffer) => {
            bodyBytes += chunk.length;
        });
        request.on("end", () => {
            entry.bodyBytes = bodyBytes;
        });

        if (entry.fault === "hang") {
            // Read the request, never answer: the client sees a live connection that goes silent.
            request.resume();
            return;
        }
        if (entry.fault === "reset") {
            request.socket.destroy();
            return;
        }
        if (entry.fault === "slow-down") {
            request.resume();
            request.on("end", () =>
                response
                    .writeHead(503, {
                        "content-type": "application/xml",
                        "content-length": Buffer.byteLength(SLOW_DOWN),
                    })
                    .end(SLOW_DOWN),
            );
            return;
        }
        const forward = http.request({
            host: target.hostname,
            port: target.port,
            method: request.method,
            path: request.url,
            // As a reverse proxy does: the emulator answers only requests made to its own address.
            headers: { ...request.headers, host: target.host },
            agent,
        });
        forward.on("error", () => request.socket.destroy());
        forward.on("response", (reply) => {
            if (entry.fault !== "cut-response") {
                response.writeHead(reply.statusCode ?? 502, reply.headers);
                reply.pipe(response);
                return;
            }
            // The headers, then half of the body, then the connection dies.
            const length = Number(reply.headers["content-length"] ?? 0);
            response.writeHead(reply.statusCode ?? 502, reply.headers);
            let sent = 0;
            reply.on("data", (chunk: Buffer) => {
                if (sent >= length / 2) return;
                const part = chunk.subarray(0, Math.max(0, Math.ceil(length / 2) - sent));
                sent += part.length;
                response.write(part);
                if (sent >= length / 2) setImmediate(() => request.socket.destroy());
            });
        });
        if (entry.fault !== "cut-request") {
            request.pipe(forward);
            return;
        }
        // Half of the body reaches the emulator, then both connections die.
        const length = Number(request.headers["content-length"] ?? 0);
        let sent = 0;
        request.on("data", (chunk: Buffer) => {
            if (sent >= length / 2) return;
            const part = chunk.subarray(0, Math.max(0, Math.ceil(length / 2) - sent));
            sent += part.length;
            forward.write(part);
            if (sent >= length / 2) {
                setImmediate(() => {
                    forward.destroy();
                    request.socket.destroy();
                });
            }
        });
    });

    return new Promise((resolve) => {
        server.listen(0, "127.0.0.1", () => {
            resolve({
                url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
                requests,
                setRule(next) {
                    rule = next;
                },
                close() {
                    agent.destroy();
                    server.closeAllConnections();
                    return new Promise((done) => server.close(() => done()));
                },
            });
        });
    });
}
