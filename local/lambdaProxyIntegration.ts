// What API Gateway (HTTP API, payload format 2.0) makes of a Lambda function's answer.
import type { HttpApiResult } from "../functions/jobApi/handler";
import type { InvokeResult } from "./lambdaRuntimeApi";

export type ProxyResult = HttpApiResult & { isBase64Encoded?: boolean };

/**
 * A result with a statusCode is used as it is; any other JSON answer becomes a 200 with that JSON as its body;
 * a function error (or an unreadable answer) becomes API Gateway's own 500 "Internal Server Error".
 */
export function proxyResultOf(result: InvokeResult): ProxyResult {
    const internalError: ProxyResult = {
        statusCode: 500,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ message: "Internal Server Error" }),
    };
    if (!result.ok) return internalError;
    const payload = result.payload as Record<string, unknown> | null;
    if (payload && typeof payload === "object" && "statusCode" in payload) {
        const statusCode = Number(payload.statusCode);
        if (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 599) return internalError;
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries((payload.headers as Record<string, unknown>) ?? {}))
            headers[name.toLowerCase()] = String(value);
        return {
            statusCode,
            headers,
            body: typeof payload.body === "string" ? payload.body : "",
            isBase64Encoded: payload.isBase64Encoded === true,
        };
    }
    return {
        statusCode: 200,
        headers: { "content-type": "application/json" },
        body: typeof result.payload === "string" ? result.payload : JSON.stringify(result.payload),
    };
}
