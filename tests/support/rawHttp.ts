// Requests with exactly the headers a test names (fetch refuses to set Host): Node's http client and curl.
import { execFile } from "child_process";
import * as http from "http";

export interface RawRequest {
    method: string;
    /** Path and query, e.g. "/bucket?list-type=2". */
    path: string;
    headers: Record<string, string>;
    body?: string;
}

/** One HTTP request to `base` with the headers given: its status and body. */
export function rawRequest(base: string, request: RawRequest): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
        const url = new URL(request.path, base);
        const outgoing = http.request(
            {
                host: url.hostname,
                port: url.port,
                method: request.method,
                path: url.pathname + url.search,
                headers: request.headers,
            },
            (response) => {
                let body = "";
                response.on("data", (chunk) => (body += chunk));
                response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
            },
        );
        outgoing.on("error", reject);
        outgoing.end(request.body);
    });
}

/** `curl -s <args>`: the status curl reports and the body. */
export function curl(args: string[]): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) =>
        execFile("curl", ["-s", "-w", "\n%{http_code}", ...args], (error, stdout, stderr) => {
            if (error) {
                reject(new Error(`curl ${args.join(" ")} failed: ${stderr || error.message}`));
                return;
            }
            const cut = stdout.lastIndexOf("\n");
            resolve({ status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) });
        }),
    );
}
