// The one check every HTTP endpoint the local farm opens (the job API, the S3/SQS emulator, the Lambda Runtime API
// stand-in) makes before anything else: the request must be made to the endpoint's own address, not from a web page.
import type { IncomingHttpHeaders } from "http";
import * as net from "net";
import { isLoopback, urlHost } from "./addresses";

/** Whether a Host header's host name (no port) may reach a server listening on `listenHost`. */
function acceptedHostName(name: string, listenHost: string): boolean {
    const bare = name.replace(/^\[(.*)\]$/, "$1").toLowerCase();
    if (bare === listenHost.toLowerCase()) return true;
    const wildcard = listenHost === "0.0.0.0" || listenHost === "::";
    if (isLoopback(listenHost) || wildcard) {
        if (bare === "localhost" || bare === "::1" || /^127\.\d+\.\d+\.\d+$/.test(bare)) return true;
    }
    // Listening on every address: any IP literal of this machine, never a name (a name is what DNS rebinding uses).
    return wildcard && net.isIP(bare) !== 0;
}

/**
 * Why a request to the endpoint listening on listenHost:port must be refused before it reaches a handler, or
 * undefined. A Host other than that address is a DNS-rebinding page reaching it through a name it controls; an
 * Origin (or a Sec-Fetch-Site) from another site is a web page sending to 127.0.0.1 from the user's browser.
 * `endpoint` names it in the message, e.g. "the local farm's API".
 */
export function forbiddenRequest(
    headers: IncomingHttpHeaders,
    listen: { host: string; port: number },
    endpoint: string,
): string | undefined {
    const { host } = headers;
    if (!host) return "the request has no Host header";
    const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host);
    const hostPort = match?.[2] === undefined ? 80 : Number(match[2]);
    if (!match || hostPort !== listen.port || !acceptedHostName(match[1], listen.host))
        return `Host ${host} is not the address of ${endpoint} (${urlHost(listen.host)}:${listen.port}); the local farm answers only requests made to it by address`;
    const { origin } = headers;
    if (origin !== undefined && origin !== `http://${host}`)
        return `cross-origin request from ${origin} refused: ${endpoint} is not for web pages`;
    const site = headers["sec-fetch-site"];
    if (site !== undefined && site !== "same-origin" && site !== "none")
        return `a ${site} request from a web page refused: ${endpoint} is not for web pages`;
    return undefined;
}
