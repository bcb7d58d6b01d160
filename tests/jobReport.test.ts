// `render-farm report` on a local farm, as a user meets it: real Blender frames, the CLI as a child process, and the
// report.html it writes opened in headless Chromium. What the page shows is checked against the ledger read here
// directly (GET /jobs/{jobId}, the frame records in S3): totals, each frame's cost and render seconds, the timeline's
// concurrency, the failures with their log tails, the quote beside the actual. The screenshot is docs/report.png.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { BrowserContext, chromium, Page } from "playwright-core";
import type { FarmOutputs, FrameRecord, JobStatus, Quote } from "../functions/shared/contract";
import { ROOT, runCli } from "./support/cliRunner";
import { makeFailingFrameScene } from "./support/failingFrameScene";
import { api, frameRecords, uploadFile, waitForJobEnd } from "./support/farmClient";
import { decodePng, makeScene } from "./support/scenes";
import { ServeProcess, startServe, stopServe } from "./support/serveProcess";

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOT = path.join(ROOT, "docs", "report.png");
/** A scene key a user could choose, with characters that are markup in HTML: the page must show it as text. */
const HOSTILE_SCENE_KEY = `report/<i>shot & "co" 'x'</i>/scene.blend`;

/** The full status, every page of failures. */
async function ledgerStatus(outputs: FarmOutputs, jobId: string): Promise<JobStatus> {
    const first = await api(outputs, "GET", `/jobs/${jobId}`);
    assert.strictEqual(first.status, 200, JSON.stringify(first.body));
    const status = first.body as JobStatus;
    let next = status.failuresNext;
    while (next) {
        const page = await api(outputs, "GET", `/jobs/${jobId}?failures=${encodeURIComponent(next)}`);
        status.failures.push(...(page.body as JobStatus).failures);
        next = (page.body as JobStatus).failuresNext;
    }
    return status;
}

/** The most records whose [startedAt, finishedAt) holds one instant, by brute force over every start. */
function mostAtOnce(records: FrameRecord[]): number {
    const spans = records.map((record) => [Date.parse(record.startedAt), Date.parse(record.finishedAt)]);
    return Math.max(0, ...spans.map(([at]) => spans.filter(([start, end]) => start <= at && at < end).length));
}

/** The number in "$0.000123", "12.345 s", "3": and how far off a correct display may be (half its last digit). */
function shown(text: string | null): { value: number; tolerance: number } {
    const match = /-?\d+(?:\.(\d+))?/.exec((text ?? "").replace(/,/g, ""));
    assert.ok(match, `no number in ${JSON.stringify(text)}`);
    return { value: Number(match[0]), tolerance: 0.5 * 10 ** -(match[1]?.length ?? 0) + 1e-12 };
}

function assertShows(text: string | null, expected: number, what: string): void {
    const { value, tolerance } = shown(text);
    assert.ok(
        Math.abs(value - expected) <= tolerance,
        `${what}: the page shows ${JSON.stringify(text)}, the ledger says ${expected}`,
    );
}

async function text(page: Page, selector: string): Promise<string> {
    return (await page.locator(selector).first().textContent()) ?? "";
}

/** Every src/href in the file is a data: URI: the report loads nothing from anywhere. */
function assertSelfContained(html: string): void {
    const references = [...html.matchAll(/\b(?:src|href)\s*=\s*"([^"]*)"/g)].map((match) => match[1]);
    for (const reference of references)
        assert.ok(reference.startsWith("data:"), `not inline: ${reference.slice(0, 80)}`);
    assert.doesNotMatch(html, /url\(/, "no CSS url()");
    assert.doesNotMatch(html, /<script/i, "no script");
}

/** Luminance variance of an RGB(A) screenshot: a blank page has none. */
function luminanceVariance(file: string): number {
    const png = decodePng(file);
    assert.strictEqual(png.bitDepth, 8);
    let sum = 0;
    let sumOfSquares = 0;
    const pixels = png.width * png.height;
    for (let index = 0; index < png.data.length; index += png.channels) {
        const luminance =
            png.channels >= 3
                ? 0.2126 * png.data[index] + 0.7152 * png.data[index + 1] + 0.0722 * png.data[index + 2]
                : png.data[index];
        sum += luminance;
        sumOfSquares += luminance * luminance;
    }
    const mean = sum / pixels;
    return sumOfSquares / pixels - mean * mean;
}

describe("render-farm report (report.html, opened in Chromium)", function () {
    let dataDir: string;
    let workDir: string;
    let serve: ServeProcess | undefined;
    let outputs: FarmOutputs;
    let browser: BrowserContext | undefined;
    let browserProfile: string;

    before(async function () {
        workDir = fs.mkdtempSync(path.join(os.tmpdir(), "job-report-"));
        dataDir = path.join(workDir, "farm");
        // One attempt per frame and no backoff: the failing frame fails at once.
        serve = await startServe([
            "--port",
            "0",
            "--workers",
            "2",
            "--data-dir",
            dataDir,
            "--max-receive-count",
            "1",
            "--failure-backoff",
            "0",
        ]);
        outputs = serve.outputs;
        browserProfile = fs.mkdtempSync(path.join(os.tmpdir(), "job-report-chromium-"));
        browser = await chromium.launchPersistentContext(browserProfile, {
            executablePath: CHROMIUM,
            headless: true,
            viewport: { width: 1100, height: 900 },
            args: [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        });
    });

    after(async function () {
        await browser?.close();
        await stopServe(serve);
        fs.rmSync(workDir, { recursive: true, force: true });
        if (browserProfile) fs.rmSync(browserProfile, { recursive: true, force: true });
    });

    async function open(file: string): Promise<Page> {
        const page = await browser!.newPage();
        // Nothing may be fetched: any request other than the file itself (and its data: URIs) fails the test.
        const requests: string[] = [];
        page.on("request", (request) => {
            if (!/^(file|data):/.test(request.url())) requests.push(request.url());
        });
        await page.goto(`file://${file}`, { waitUntil: "load" });
        assert.deepStrictEqual(requests, [], "the report fetched nothing");
        return page;
    }

    async function submit(jobId: string, body: Record<string, unknown>): Promise<JobStatus> {
        const submitted = await api(outputs, "POST", "/jobs", { ...body, jobId });
        assert.strictEqual(submitted.status, 202, JSON.stringify(submitted.body));
        return waitForJobEnd(outputs, jobId, 240_000, 300);
    }

    async function report(jobId: string, out: string, env?: NodeJS.ProcessEnv) {
        const run = await runCli(["report", jobId, "--data-dir", dataDir, "--out", out, "--json"], env ? { env } : {});
        assert.strictEqual(run.code, 0, run.stderr);
        const document = JSON.parse(run.stdout);
        assert.strictEqual(document.report, path.join(out, "report.html"));
        assert.ok(fs.existsSync(document.report));
        return { document, stderr: run.stderr, html: fs.readFileSync(document.report, "utf8") };
    }

    it("shows a complete job: totals, each frame's cost, concurrency, thumbnails and the preview, as the ledger has them", async function () {
        const scene = await makeScene({ frames: "1-6", resolutionX: 160, resolutionY: 90, samples: 8 });
        await uploadFile(outputs, HOSTILE_SCENE_KEY, scene.blendPath);
        const ended = await submit("report-complete", { scene: HOSTILE_SCENE_KEY, frames: "1-6", format: "PNG" });
        assert.strictEqual(ended.state, "complete", JSON.stringify(ended));

        const out = path.join(workDir, "complete");
        const { document, html } = await report("report-complete", out);
        assertSelfContained(html);
        const status = await ledgerStatus(outputs, "report-complete");
        const records = await frameRecords(outputs, "report-complete");
        assert.strictEqual(records.length, 6);
        assert.strictEqual(document.maxConcurrent, mostAtOnce(records));

        const page = await open(document.report);
        // The video's length is known once its metadata is read: then the screenshot shows it.
        await page.waitForFunction("document.getElementById('preview-video').readyState >= 1", undefined, {
            timeout: 20_000,
        });
        fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
        assert.ok(luminanceVariance(SCREENSHOT) > 100, "the screenshot is not blank");

        assert.strictEqual(await text(page, "#job-state"), "complete");
        assert.strictEqual(await text(page, "#scene"), HOSTILE_SCENE_KEY, "the scene key shows as text");
        assert.strictEqual(await page.locator("header i").count(), 0, "the scene key's <i> is not markup");
        assertShows(await text(page, "#frames-done"), status.frames.done, "frames done");
        assertShows(await text(page, "#frames-total"), status.frames.total, "frames in the job");
        assertShows(await text(page, "#frames-failed"), status.frames.failed, "frames failed");
        assertShows(await text(page, "#total-cost"), status.costUsd, "total cost");
        assertShows(await text(page, "#total-cost-table"), status.costUsd, "total cost in the table");
        assertShows(await text(page, "#render-seconds"), status.renderSeconds, "render seconds");
        assertShows(await text(page, "#max-concurrent"), mostAtOnce(records), "most frames at once");
        for (const record of records) {
            const row = `#frames-table tr[data-frame="${record.frame}"]`;
            assertShows(await text(page, `${row} .cost`), record.costUsd, `frame ${record.frame}'s cost`);
            assertShows(
                await text(page, `${row} .render-seconds`),
                record.renderSeconds ?? record.blenderMs / 1000,
                `frame ${record.frame}'s render seconds`,
            );
            assertShows(
                await text(page, `${row} .billed-seconds`),
                record.wallMs / 1000,
                `frame ${record.frame}'s billed seconds`,
            );
            assert.strictEqual(await text(page, `${row} .status`), "done");
        }
        // One attempt each, so the frames' costs add up to the job's.
        const summed = records.reduce((sum, record) => sum + record.costUsd, 0);
        assert.ok(Math.abs(summed - status.costUsd) < 1e-5, `${summed} vs ${status.costUsd}`);

        // The timeline: a bar per frame, in as many lanes as frames ran at once.
        assert.strictEqual(await page.locator("svg.timeline g.bar").count(), 6);
        const lanes = await page
            .locator("svg.timeline g.bar")
            .evaluateAll((bars) => bars.map((bar: any) => Number(bar.getAttribute("data-lane"))));
        assert.strictEqual(Math.max(...lanes), mostAtOnce(records));

        // Six thumbnails the browser decoded, and an MP4 it can play: 6 frames at 24 a second.
        const widths = await page
            .locator("#contact-sheet img")
            .evaluateAll((images) => images.map((image: any) => image.naturalWidth as number));
        assert.deepStrictEqual(widths, [160, 160, 160, 160, 160, 160]);
        const duration = await page.locator("#preview-video").evaluate((video: any) => video.duration as number);
        assert.ok(Math.abs(duration - 6 / 24) < 0.05, `preview lasts ${duration} s`);

        assert.match(await text(page, "#no-quote"), /^no quote/);
        assert.strictEqual(await page.locator("#no-failures").count(), 1);
        assert.strictEqual(await page.locator("#stop").count(), 0);
        await page.close();
    });

    it("shows a failed frame's error and log tail as the farm has them, and the quote beside the actual", async function () {
        await uploadFile(outputs, "report/failing/scene.blend", await makeFailingFrameScene());
        const ended = await submit("report-failing", { scene: "report/failing/scene.blend", frames: "1-3" });
        assert.strictEqual(ended.state, "partial", JSON.stringify(ended));

        const out = path.join(workDir, "failing");
        fs.mkdirSync(out, { recursive: true });
        // What `render-farm estimate` leaves beside the frames (its shape, contract.ts), with markup in its strings.
        const quote: Quote = {
            jobId: "report-failing",
            probes: [{ frame: 1, renderSeconds: 0.5, billedSeconds: 2, costUsd: 0.0003 }],
            frames: 3,
            memoryMb: 10240,
            price: { usdPerGbSecond: 0.0000166667, region: "us-east-1", source: "<b>price list</b>" },
            renderSecondsPerFrame: { low: 0.1, expected: 0.5, high: 5 },
            renderSeconds: { low: 0.3, expected: 1.5, high: 15 },
            gbSeconds: { low: 3, expected: 60, high: 600 },
            costUsd: { low: 0.00005, expected: 0.001, high: 0.01 },
            wallSeconds: { low: 1, expected: 10, high: 100 },
            concurrency: 2,
            createdAt: "2025-01-01T00:00:00.000Z",
        };
        fs.writeFileSync(path.join(out, "quote.json"), JSON.stringify(quote));
        const { document, html } = await report("report-failing", out);
        assertSelfContained(html);
        assert.strictEqual(document.quote, "quote");
        const status = await ledgerStatus(outputs, "report-failing");
        assert.deepStrictEqual(
            status.failures.map((failure) => failure.frame),
            [2],
        );
        const failure = status.failures[0];
        assert.ok(failure.logTail.length > 0, "Blender left a log");

        const page = await open(document.report);
        assert.strictEqual(await text(page, "#job-state"), "partial");
        assertShows(await text(page, "#frames-done"), 2, "frames done");
        assertShows(await text(page, "#frames-failed"), 1, "frames failed");
        assertShows(await text(page, "#total-cost"), status.costUsd, "total cost");
        const shownFailure = '#failures .failure[data-frame="2"]';
        assert.strictEqual(await text(page, `${shownFailure} .error`), failure.error);
        assert.strictEqual(
            await text(page, `${shownFailure} .log-tail`),
            failure.logTail,
            "the whole log tail, as text",
        );
        assert.match(await text(page, '#frames-table tr[data-frame="2"] .status'), /^failed/);
        assert.strictEqual(await page.locator("#contact-sheet img").count(), 2, "frames 1 and 3");

        const quoteRows = await page.locator("#quote-table tbody tr").allTextContents();
        const costRow = quoteRows.find((row) => row.startsWith("cost")) ?? "";
        assert.ok(costRow.includes(`$${quote.costUsd.expected.toFixed(6)}`), costRow);
        assert.ok(costRow.includes(`$${status.costUsd.toFixed(6)}`), costRow);
        assert.match(costRow, /within the range|below the range|above the range/);
        assert.match(await text(page, "#quote .meta"), /<b>price list<\/b>/, "the quote's strings show as text");
        assert.strictEqual(await page.locator("#quote b").count(), 0);
        await page.close();
    });

    it("render writes report.html beside the frames it downloads", async function () {
        const scene = await makeScene({ frames: "1-6", resolutionX: 160, resolutionY: 90, samples: 8 });
        const out = path.join(workDir, "rendered");
        const run = await runCli(
            ["render", scene.blendPath, "--frames", "1-2", "--out", out, "--data-dir", dataDir, "--json"],
            { timeoutMs: 240_000 },
        );
        assert.strictEqual(run.code, 0, run.stderr);
        const document = JSON.parse(run.stdout);
        assert.strictEqual(document.report, path.join(out, "report.html"));
        const html = fs.readFileSync(document.report, "utf8");
        assertSelfContained(html);
        const status = await ledgerStatus(outputs, document.jobId);
        const page = await open(document.report);
        assertShows(await text(page, "#frames-done"), status.frames.done, "frames done");
        assertShows(await text(page, "#total-cost"), status.costUsd, "total cost");
        assert.strictEqual(await page.locator("#contact-sheet img").count(), 2);
        await page.close();
    });

    it("EXR frames: thumbnails made by ffmpeg, no preview; without ffmpeg, placeholders that say why", async function () {
        const scene = await makeScene({ frames: "1-6", resolutionX: 160, resolutionY: 90, samples: 8 });
        await uploadFile(outputs, "report/exr/scene.blend", scene.blendPath);
        const ended = await submit("report-exr", {
            scene: "report/exr/scene.blend",
            frames: "1-2",
            format: "OPEN_EXR",
        });
        assert.strictEqual(ended.state, "complete", JSON.stringify(ended));

        const withFfmpeg = await report("report-exr", path.join(workDir, "exr"));
        assertSelfContained(withFfmpeg.html);
        assert.strictEqual(withFfmpeg.document.preview, "skipped");
        let page = await open(withFfmpeg.document.report);
        const widths = await page
            .locator("#contact-sheet img")
            .evaluateAll((images) => images.map((image: any) => image.naturalWidth as number));
        assert.deepStrictEqual(widths, [160, 160], "PNG thumbnails of the EXR frames");
        assert.match(await text(page, "#no-preview"), /EXR.*PNG or JPEG frames only/);
        await page.close();

        // No ffmpeg on PATH (node is started by its absolute path): the report is still written, and says what it left out.
        const env: NodeJS.ProcessEnv = { ...process.env, PATH: path.dirname(process.execPath) };
        delete env.RENDER_FARM_FFMPEG;
        const without = await report("report-exr", path.join(workDir, "exr-no-ffmpeg"), env);
        assertSelfContained(without.html);
        assert.match(without.stderr, /2 frame\(s\) shown as a placeholder/);
        page = await open(without.document.report);
        assert.strictEqual(await page.locator("#contact-sheet img").count(), 0);
        const placeholders = await page.locator("#contact-sheet .placeholder").allTextContents();
        assert.deepStrictEqual(placeholders, [
            "EXR: no ffmpeg here to make a thumbnail",
            "EXR: no ffmpeg here to make a thumbnail",
        ]);
        assertShows(await text(page, "#total-cost"), (await ledgerStatus(outputs, "report-exr")).costUsd, "total cost");
        await page.close();
    });

    it("shows a cancelled job's stop: its state, when and why, as the status has it", async function () {
        const scene = await makeScene({ frames: "1-6", resolutionX: 160, resolutionY: 90, samples: 8 });
        await uploadFile(outputs, "report/cancelled/scene.blend", scene.blendPath);
        const submitted = await api(outputs, "POST", "/jobs", {
            scene: "report/cancelled/scene.blend",
            frames: "1-6",
            jobId: "report-cancelled",
        });
        assert.strictEqual(submitted.status, 202, JSON.stringify(submitted.body));
        const cancelled = await api(outputs, "POST", "/jobs/report-cancelled/cancel");
        assert.strictEqual(cancelled.status, 200, JSON.stringify(cancelled.body));

        const { document, html } = await report("report-cancelled", path.join(workDir, "cancelled"));
        assertSelfContained(html);
        const status = await ledgerStatus(outputs, "report-cancelled");
        assert.ok(status.stop, "the status has the stop");
        const page = await open(document.report);
        assert.strictEqual(await text(page, "#job-state"), "cancelled");
        const stop = await text(page, "#stop");
        assert.ok(stop.includes(`cancelled at ${status.stop.at}: ${status.stop.message}`), stop);
        await page.close();
    });
});
