// The Runtime API stand-in over HTTP, driven by a hand-written runtime: the protocol itself (headers, deadlines,
// answers, init errors, a runtime that dies). The real runtime client is driven against it in rendererLambda.test.ts.
import * as assert from "assert";
import { exitReason, RuntimeApi, startRuntimeApi } from "../local/lambdaRuntimeApi";
import { curl, rawRequest } from "./support/rawHttp";

const NEXT = "/2018-06-01/runtime/invocation/next";

describe("the Lambda Runtime API stand-in", function () {
    let api: RuntimeApi;
    const timedOut: string[] = [];

    beforeEach(async function () {
        timedOut.length = 0;
        api = await startRuntimeApi({
            functionArn: "arn:aws:lambda:us-east-1:000000000000:function:unit",
            onTimeout: (requestId) => timedOut.push(requestId),
        });
    });

    afterEach(async function () {
        await api.close();
    });

    const url = (path: string) => `http://${api.address}${path}`;
    const post = (path: string, body: string, headers: Record<string, string> = {}) =>
        fetch(url(path), { method: "POST", body, headers: { "content-type": "application/json", ...headers } });

    it("hands an invocation to /next with Lambda's headers and returns the posted response", async function () {
        const idle = api.waitForNext();
        const next = fetch(url(NEXT));
        await idle;
        const before = Date.now();
        const result = api.invoke({ Records: [{ body: "x" }] }, { timeoutMs: 5000 });
        const response = await next;
        assert.strictEqual(response.status, 200);
        const requestId = response.headers.get("lambda-runtime-aws-request-id")!;
        assert.match(requestId, /^[0-9a-f-]{36}$/);
        const deadline = Number(response.headers.get("lambda-runtime-deadline-ms"));
        assert.ok(deadline >= before + 5000 && deadline <= Date.now() + 5000, `deadline ${deadline}`);
        assert.strictEqual(
            response.headers.get("lambda-runtime-invoked-function-arn"),
            "arn:aws:lambda:us-east-1:000000000000:function:unit",
        );
        assert.match(response.headers.get("lambda-runtime-trace-id")!, /^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=/);
        assert.deepStrictEqual(await response.json(), { Records: [{ body: "x" }] });

        const answered = await post(`/2018-06-01/runtime/invocation/${requestId}/response`, '{"batchItemFailures":[]}');
        assert.strictEqual(answered.status, 202);
        assert.deepStrictEqual(await result, { requestId, ok: true, payload: { batchItemFailures: [] } });
        // Answering twice is refused: the invocation is over.
        const again = await post(`/2018-06-01/runtime/invocation/${requestId}/response`, "{}");
        assert.strictEqual(again.status, 400);
    });

    it("reports a posted error in Lambda's shape", async function () {
        const result = api.invoke({}, { timeoutMs: 5000 });
        const next = await fetch(url(NEXT));
        const requestId = next.headers.get("lambda-runtime-aws-request-id")!;
        await next.text();
        const error = {
            errorType: "TypeError",
            errorMessage: "boom",
            trace: ["TypeError: boom", "    at x (a.js:1:1)"],
        };
        const posted = await post(`/2018-06-01/runtime/invocation/${requestId}/error`, JSON.stringify(error), {
            "lambda-runtime-function-error-type": "TypeError",
        });
        assert.strictEqual(posted.status, 202);
        assert.deepStrictEqual(await result, { requestId, ok: false, error });
    });

    it("answers invocations with the init error and rejects waitForNext", async function () {
        const waiting = assert.rejects(
            api.waitForNext(),
            /init error: Runtime.HandlerNotFound: index.nope is undefined/,
        );
        const queued = api.invoke({}, { timeoutMs: 5000 });
        const initError = { errorType: "Runtime.HandlerNotFound", errorMessage: "index.nope is undefined", trace: [] };
        assert.strictEqual((await post("/2018-06-01/runtime/init/error", JSON.stringify(initError))).status, 202);
        await waiting;
        const result = await queued;
        assert.deepStrictEqual(result.ok ? undefined : result.error, initError);
        assert.deepStrictEqual(api.initError, initError);
        const later = await api.invoke({}, { timeoutMs: 5000 });
        assert.strictEqual(later.ok ? undefined : later.error.errorType, "Runtime.HandlerNotFound");
    });

    it("times an invocation out at its deadline and refuses the late answer", async function () {
        const result = api.invoke({}, { timeoutMs: 300 });
        const next = await fetch(url(NEXT));
        const requestId = next.headers.get("lambda-runtime-aws-request-id")!;
        await next.text();
        const settled = await result;
        assert.deepStrictEqual(settled, {
            requestId,
            ok: false,
            error: {
                errorType: "Sandbox.Timedout",
                errorMessage: `RequestId: ${requestId} Error: Task timed out after 0.30 seconds`,
            },
        });
        assert.deepStrictEqual(timedOut, [requestId]);
        assert.strictEqual((await post(`/2018-06-01/runtime/invocation/${requestId}/response`, "{}")).status, 400);
    });

    it("fails the invocation of a runtime that dies mid-invocation with Runtime.ExitError", async function () {
        const result = api.invoke({}, { timeoutMs: 60_000 });
        const next = await fetch(url(NEXT));
        const requestId = next.headers.get("lambda-runtime-aws-request-id")!;
        await next.text();
        api.runtimeExited(exitReason(null, "SIGKILL"));
        assert.deepStrictEqual(await result, {
            requestId,
            ok: false,
            error: {
                errorType: "Runtime.ExitError",
                errorMessage: `RequestId: ${requestId} Error: Runtime exited with error: signal: killed`,
            },
        });
    });

    it("fails what waited for a runtime that exited before its first /next", async function () {
        const waiting = assert.rejects(api.waitForNext(), /exited \(exit status 1\) before it asked for an invocation/);
        const queued = api.invoke({}, { timeoutMs: 60_000 });
        api.runtimeExited(exitReason(1, null));
        await waiting;
        const result = await queued;
        assert.strictEqual(result.ok, false);
        assert.match(result.ok ? "" : result.error.errorMessage, /Runtime exited with error: exit status 1$/);
    });

    it("refuses requests made to another Host (DNS rebinding) or from a web page: none takes, answers or fails an invocation", async function () {
        const port = Number(api.address.split(":").pop());
        const result = api.invoke({ Records: [{ body: "the frame" }] }, { timeoutMs: 60_000 });
        const foreign: Record<string, string>[] = [
            { host: `attacker.example:${port}` },
            { host: `127.0.0.1:${port + 1}` },
            { origin: "http://attacker.example" },
            { origin: "null" },
            { "sec-fetch-site": "cross-site" },
        ];
        const refused = async (method: string, path: string, headers: Record<string, string>, body?: string) => {
            const reply = await rawRequest(url("/"), { method, path, headers, body });
            const what = `${method} ${path} ${JSON.stringify(headers)}`;
            assert.strictEqual(reply.status, 403, `${what}: ${reply.body}`);
            const error = JSON.parse(reply.body);
            assert.strictEqual(error.errorType, "AccessDeniedException", what);
            assert.match(
                error.errorMessage,
                /is not the address of the Lambda Runtime API stand-in|is not for web pages/,
            );
        };
        for (const headers of foreign) await refused("GET", NEXT, headers);
        for (const args of [
            ["-H", `Host: attacker.example:${port}`],
            ["-H", "Origin: http://attacker.example"],
        ]) {
            const reply = await curl([...args, url(NEXT)]);
            assert.strictEqual(reply.status, 403, `curl ${args.join(" ")}: ${reply.body}`);
            assert.doesNotMatch(reply.body, /the frame/);
        }

        // The invocation still waits for the runtime, which asks by the address AWS_LAMBDA_RUNTIME_API names.
        const next = await fetch(url(NEXT));
        assert.strictEqual(next.status, 200);
        assert.deepStrictEqual(await next.json(), { Records: [{ body: "the frame" }] });
        const requestId = next.headers.get("lambda-runtime-aws-request-id")!;
        const forged = JSON.stringify({ batchItemFailures: [{ itemIdentifier: "forged" }] });
        for (const headers of foreign) {
            await refused("POST", `/2018-06-01/runtime/invocation/${requestId}/response`, headers, forged);
            await refused("POST", `/2018-06-01/runtime/invocation/${requestId}/error`, headers, forged);
            await refused("POST", "/2018-06-01/runtime/init/error", headers, forged);
        }
        assert.strictEqual(api.initError, undefined);
        const answered = await curl([
            "-H",
            "content-type: application/json",
            "-d",
            '{"batchItemFailures":[]}',
            url(`/2018-06-01/runtime/invocation/${requestId}/response`),
        ]);
        assert.strictEqual(answered.status, 202, answered.body);
        assert.deepStrictEqual(await result, { requestId, ok: true, payload: { batchItemFailures: [] } });
    });
});
