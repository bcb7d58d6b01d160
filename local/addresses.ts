// Listen addresses versus the host a client puts in a URL.

/** The host to put in a URL for a server listening on `listenHost`: a wildcard address is reached through loopback. */
export function urlHost(listenHost: string): string {
    if (listenHost === "0.0.0.0") return "127.0.0.1";
    if (listenHost === "::") return "[::1]";
    return listenHost.includes(":") ? `[${listenHost}]` : listenHost;
}

export function isLoopback(host: string): boolean {
    return host === "localhost" || host === "::1" || /^127\./.test(host);
}

/** True for an http(s) URL whose host is loopback (127.0.0.0/8, ::1, localhost). */
export function isLoopbackUrl(url: string): boolean {
    try {
        return isLoopback(new URL(url).hostname.replace(/^\[(.*)\]$/, "$1"));
    } catch {
        return false;
    }
}
