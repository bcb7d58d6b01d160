// The job report as one self-contained HTML file: inline CSS, SVG and data: URIs only, no script, and a
// Content-Security-Policy that lets nothing load from anywhere, so it reads the same offline. Every string from the
// farm or the scene is escaped (html`` in ./html).
import type { JobStatus, Quote } from "../../functions/shared/contract";
import { recordRenderSeconds } from "../../functions/shared/frameSummary";
import { FrameTimeline } from "./frameTimeline";
import { html, Markup } from "./html";
import type { PreviewVideo } from "./previewVideo";
import type { JobReportData } from "./reportData";
import type { Thumbnail } from "./thumbnails";
import { STATUS_COLOURS, timelineSvg } from "./timelineSvg";

export interface ReportMedia {
    thumbnails: Map<number, Thumbnail>;
    preview: PreviewVideo;
    timeline: FrameTimeline;
}

export function formatUsd(value: number): string {
    return `$${value.toFixed(6)}`;
}

export function formatSeconds(value: number, digits = 2): string {
    return `${value.toFixed(digits)} s`;
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330; background: #fff; margin: 0; }
main { max-width: 1000px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #e2e5ea; padding-bottom: 4px; }
.meta { color: #5b6472; margin: 0; } .meta code { color: #1d2330; }
.state { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 13px; color: #fff; background: #5b6472; vertical-align: 3px; }
.state.complete { background: ${STATUS_COLOURS.done}; } .state.failed, .state.partial, .state.stopped_failing { background: ${STATUS_COLOURS.failed}; }
.state.cancelled, .state.stopped_budget, .state.rendering, .state.queued, .state.queueing { background: ${STATUS_COLOURS.retrying}; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; margin: 16px 0 0; }
.figure { background: #f4f5f7; border-radius: 6px; padding: 8px 10px; } .figure dt { color: #5b6472; font-size: 12px; } .figure dd { margin: 0; font-size: 18px; font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eceef2; } td.num, th.num { text-align: right; }
tfoot td { font-weight: 600; border-top: 2px solid #d5d9e0; }
.sheet { display: flex; flex-wrap: wrap; gap: 8px; }
.sheet figure { margin: 0; width: 160px; } .sheet img { width: 160px; height: auto; display: block; background: #eee; image-rendering: auto; }
.sheet figcaption { font-size: 12px; color: #5b6472; }
.placeholder { width: 160px; height: 90px; display: flex; align-items: center; justify-content: center; text-align: center; background: #eceef2; color: #5b6472; font-size: 11px; padding: 4px; box-sizing: border-box; }
.timeline text { font: 11px system-ui, sans-serif; fill: #5b6472; } .timeline text.label { fill: #fff; font-weight: 600; } .timeline .tick { stroke: #d5d9e0; stroke-width: 1; }
.legend span { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin: 0 4px 0 12px; vertical-align: -1px; }
.note { color: #5b6472; } .stop { background: #fff5e6; border-left: 4px solid ${STATUS_COLOURS.retrying}; padding: 8px 12px; }
.failure { border-left: 4px solid ${STATUS_COLOURS.failed}; padding: 4px 12px; margin: 10px 0; background: #fcf3f3; }
pre { background: #1d2330; color: #e8eaee; padding: 8px; overflow: auto; max-height: 260px; font-size: 12px; white-space: pre-wrap; word-break: break-all; }
video { width: 480px; max-width: 100%; background: #000; }
`;

function figure(label: string, value: Markup | string, id: string): Markup {
    return html`<div class="figure"><dt>${label}</dt><dd id="${id}">${value}</dd></div>`;
}

function headerSection(data: JobReportData, timeline: FrameTimeline): Markup {
    const { status, manifest } = data;
    const settings = manifest?.settings;
    const resolution = settings?.resolution;
    const settingsText = [
        settings?.engine ?? "the scene's engine",
        settings?.format,
        resolution?.x && resolution?.y ? `${resolution.x}×${resolution.y}` : undefined,
        resolution?.percentage ? `${resolution.percentage}%` : undefined,
        settings?.samples ? `${settings.samples} samples` : undefined,
    ]
        .filter(Boolean)
        .join(", ");
    const wallSeconds = timeline.bars.length > 0 ? (timeline.endMs - timeline.startMs) / 1000 : 0;
    return html`<header>
<h1>Job <code>${data.jobId}</code> <span class="state ${status.state}" id="job-state">${status.state}</span></h1>
<p class="meta">scene <code id="scene">${manifest?.request.scene ?? "unknown (no manifest)"}</code>${
        manifest?.request.frames ? html`, frames <code>${manifest.request.frames}</code>` : ""
    }${settingsText ? html`, ${settingsText}` : ""}</p>
<p class="meta">on ${data.farm}; started ${status.startedAt || "–"}, last update ${status.updatedAt || "–"}; report made ${data.generatedAt.toISOString()}</p>
<dl class="figures">
${figure("frames done", html`<span id="frames-done">${status.frames.done}</span> of <span id="frames-total">${status.frames.total}</span>`, "frames")}
${figure("failed", String(status.frames.failed), "frames-failed")}
${figure("pending", String(status.frames.pending), "frames-pending")}
${figure("total cost", formatUsd(status.costUsd), "total-cost")}
${figure("render seconds", formatSeconds(status.renderSeconds, 3), "render-seconds")}
${figure("wall time, first start to last end", formatSeconds(wallSeconds, 1), "wall-seconds")}
${figure("most frames at once", String(timeline.maxConcurrent), "max-concurrent")}
</dl>
${status.frames.pending > 0 && !status.stop ? html`<p class="note">The job has ${status.frames.pending} frame(s) still pending: this report shows it as it stood when it was made.</p>` : ""}
</header>`;
}

function stopSection(status: JobStatus): Markup {
    if (!status.stop) return html``;
    const stop = status.stop;
    return html`<section id="stop"><h2>Stopped</h2><div class="stop">
<p><strong>${stop.state}</strong> at ${stop.at}: ${stop.message}</p>
${stop.code ? html`<p>error code shared by the failing frames: <code>${stop.code}</code></p>` : ""}
${stop.budgetUsd !== undefined ? html`<p>budget ${formatUsd(stop.budgetUsd)}${stop.spentUsd !== undefined ? html`, spent ${formatUsd(stop.spentUsd)} when it stopped` : ""}</p>` : ""}
<p class="note">Frames rendering when the job stopped finished and are kept; the ${status.frames.pending} frame(s) not rendered stay pending.</p>
</div></section>`;
}

function range(estimate: { low: number; expected: number; high: number }, format: (value: number) => string): Markup {
    return html`${format(estimate.expected)} <span class="note">(${format(estimate.low)} – ${format(estimate.high)})</span>`;
}

function verdict(actual: number, estimate: { low: number; high: number }): string {
    if (actual < estimate.low) return "below the range";
    if (actual > estimate.high) return "above the range";
    return "within the range";
}

function quoteSection(data: JobReportData, timeline: FrameTimeline): Markup {
    if (data.quote.kind === "none")
        return html`<section id="quote"><h2>Quote and actual</h2><p class="note" id="no-quote">no quote (no <code>quote.json</code> beside the frames: <code>render-farm estimate</code> writes one)</p></section>`;
    if (data.quote.kind === "unreadable")
        return html`<section id="quote"><h2>Quote and actual</h2><p class="note">no quote: quote.json could not be read (${data.quote.reason})</p></section>`;
    const quote: Quote = data.quote.quote;
    const { status } = data;
    const rendered = data.records.filter((record) => record.status === "done");
    const perFrame =
        rendered.length > 0
            ? rendered.reduce((sum, record) => sum + recordRenderSeconds(record), 0) / rendered.length
            : undefined;
    const wallSeconds = timeline.bars.length > 0 ? (timeline.endMs - timeline.startMs) / 1000 : undefined;
    const seconds = (value: number) => formatSeconds(value, 1);
    const rows: [string, Markup, string, string][] = [
        ["cost", range(quote.costUsd, formatUsd), formatUsd(status.costUsd), verdict(status.costUsd, quote.costUsd)],
        [
            "render seconds, whole job",
            range(quote.renderSeconds, seconds),
            seconds(status.renderSeconds),
            verdict(status.renderSeconds, quote.renderSeconds),
        ],
        [
            "render seconds per frame",
            range(quote.renderSecondsPerFrame, (value) => formatSeconds(value, 2)),
            perFrame === undefined ? "–" : formatSeconds(perFrame, 2),
            perFrame === undefined ? "" : verdict(perFrame, quote.renderSecondsPerFrame),
        ],
        [
            "wall time",
            range(quote.wallSeconds, seconds),
            wallSeconds === undefined ? "–" : seconds(wallSeconds),
            wallSeconds === undefined ? "" : verdict(wallSeconds, quote.wallSeconds),
        ],
    ];
    return html`<section id="quote"><h2>Quote and actual</h2>
<p class="meta">quote for job <code>${quote.jobId ?? "?"}</code> made ${quote.createdAt ?? "?"}: ${quote.frames} frame(s) from ${
        Array.isArray(quote.probes) ? quote.probes.length : 0
    } probe frame(s), ${quote.memoryMb ?? "?"} MB, concurrency ${quote.concurrency ?? "?"}${
        quote.price
            ? html`, ${quote.price.usdPerGbSecond} USD per GB-second (${quote.price.region}, ${quote.price.source})`
            : ""
    }</p>
<table id="quote-table"><thead><tr><th></th><th class="num">quoted (expected, range)</th><th class="num">actual</th><th></th></tr></thead><tbody>
${rows.map(([label, quoted, actual, said]) => html`<tr><td>${label}</td><td class="num">${quoted}</td><td class="num">${actual}</td><td>${said}</td></tr>\n`)}
</tbody></table>
<p class="note">The actual cost is the renderer's Lambda duration (every attempt); the quote may also count requests, SQS and API Gateway.${
        quote.frames !== status.frames.total
            ? html` The quote was for ${quote.frames} frame(s), the job has ${status.frames.total}.`
            : ""
    }</p></section>`;
}

function previewSection(preview: PreviewVideo): Markup {
    const body =
        preview.kind === "video"
            ? html`<video id="preview-video" controls loop muted playsinline src="${preview.uri}"></video>
<p class="note">${preview.frames} frame(s) at ${preview.fps} frames a second, ${preview.codec}, ${(preview.bytes / 1024).toFixed(0)} KB.</p>`
            : html`<p class="note" id="no-preview">No preview: ${preview.reason}.</p>`;
    return html`<section id="preview"><h2>Preview</h2>${body}</section>`;
}

function contactSheetSection(data: JobReportData, thumbnails: Map<number, Thumbnail>): Markup {
    if (data.frames.length === 0)
        return html`<section id="contact-sheet"><h2>Frames</h2><p class="note">No frames were downloaded.</p></section>`;
    return html`<section id="contact-sheet"><h2>Frames</h2><div class="sheet">
${data.frames.map((frame) => {
    const thumbnail = thumbnails.get(frame.frame);
    const picture =
        thumbnail?.kind === "image"
            ? html`<img src="${thumbnail.uri}" alt="frame ${frame.frame}">`
            : html`<div class="placeholder">${thumbnail?.reason ?? "no thumbnail"}</div>`;
    return html`<figure data-frame="${frame.frame}">${picture}<figcaption>frame ${frame.frame}</figcaption></figure>\n`;
})}</div></section>`;
}

function timelineSection(timeline: FrameTimeline): Markup {
    if (timeline.bars.length === 0)
        return html`<section id="timeline"><h2>Timeline</h2><p class="note">No frame has started yet.</p></section>`;
    const retried = timeline.bars.filter((bar) => bar.attempts > 1).length;
    return html`<section id="timeline"><h2>Timeline</h2>
<p>At most <strong id="timeline-max-concurrent">${timeline.maxConcurrent}</strong> frame(s) rendered at once; one row per lane, each bar a frame from its start to its end.
<span class="legend"><span style="background:${STATUS_COLOURS.done}"></span>done<span style="background:${STATUS_COLOURS.retrying}"></span>retrying<span style="background:${STATUS_COLOURS.failed}"></span>failed</span></p>
${timelineSvg(timeline)}
${retried > 0 ? html`<p class="note">${retried} frame(s) took more than one attempt: their bar is the latest attempt (a frame's record keeps only that one).</p>` : ""}
${timeline.undated.length > 0 ? html`<p class="note">Not drawn, their records have no usable times: frame(s) ${timeline.undated.join(", ")}.</p>` : ""}
</section>`;
}

function framesSection(data: JobReportData): Markup {
    const { records, status } = data;
    const recorded = new Set(records.map((record) => record.frame));
    const unrecorded = (data.manifest?.frames ?? []).filter((frame) => !recorded.has(frame));
    const recordCost = records.reduce((sum, record) => sum + record.costUsd, 0);
    const recordRender = records.reduce((sum, record) => sum + recordRenderSeconds(record), 0);
    const recordBilled = records.reduce((sum, record) => sum + record.wallMs / 1000, 0);
    const earlierCost = status.costUsd - recordCost;
    const earlierRender = status.renderSeconds - recordRender;
    const earlier =
        earlierCost > 5e-7 || earlierRender > 5e-4
            ? html`<tr id="earlier-attempts"><td colspan="3">earlier attempts of retried frames (their records were overwritten)</td><td class="num">${formatSeconds(Math.max(earlierRender, 0))}</td><td></td><td class="num">${formatUsd(Math.max(earlierCost, 0))}</td></tr>`
            : "";
    return html`<section id="frame-costs"><h2>Frames: render time and cost</h2>
<table id="frames-table"><thead><tr><th>frame</th><th>status</th><th class="num">attempts</th><th class="num">render s</th><th class="num">billed s</th><th class="num">cost (USD)</th></tr></thead><tbody>
${records.map(
    (record) =>
        html`<tr data-frame="${record.frame}"><td>${record.frame}</td><td class="status">${record.status}${record.error ? html`: <code>${record.error.code}</code>` : ""}</td><td class="num attempts">${record.attempts}</td><td class="num render-seconds">${formatSeconds(recordRenderSeconds(record))}</td><td class="num billed-seconds">${formatSeconds(record.wallMs / 1000)}</td><td class="num cost">${formatUsd(record.costUsd)}</td></tr>\n`,
)}
${unrecorded.map((frame) => html`<tr data-frame="${frame}"><td>${frame}</td><td class="status" colspan="5">not rendered (no record)</td></tr>\n`)}
${earlier}
</tbody><tfoot><tr><td colspan="3">the job (every attempt of every frame)</td><td class="num" id="total-render-seconds">${formatSeconds(status.renderSeconds, 3)}</td><td class="num">${formatSeconds(recordBilled)}</td><td class="num" id="total-cost-table">${formatUsd(status.costUsd)}</td></tr></tfoot></table>
<p class="note">Cost is Lambda's GB-seconds at the renderer's memory (${records[0]?.memoryMb ?? "?"} MB) for each attempt's billed seconds. Render seconds are Blender's own render time.</p>
</section>`;
}

function failuresSection(status: JobStatus): Markup {
    if (status.failures.length === 0)
        return html`<section id="failures"><h2>Failures</h2><p class="note" id="no-failures">No frame failed.</p></section>`;
    return html`<section id="failures"><h2>Failures (${status.failures.length})</h2>
${status.failures.map(
    (
        failure,
        index,
    ) => html`<div class="failure" data-frame="${failure.frame}"><p><strong>frame ${failure.frame}</strong> failed after ${failure.attempts} attempt(s): <span class="error">${failure.error}</span></p>
${failure.logTail ? html`<details${index < 10 ? html` open` : ""}><summary>Blender's log, last lines</summary><pre class="log-tail">${failure.logTail}</pre></details>` : html`<p class="note">no log</p>`}</div>\n`,
)}</section>`;
}

export function renderReportHtml(data: JobReportData, media: ReportMedia): string {
    const page = html`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>render-farm report: ${data.jobId}</title>
<style>${new Markup(STYLE)}</style></head>
<body><main>
${headerSection(data, media.timeline)}
${stopSection(data.status)}
${quoteSection(data, media.timeline)}
${previewSection(media.preview)}
${contactSheetSection(data, media.thumbnails)}
${timelineSection(media.timeline)}
${framesSection(data)}
${failuresSection(data.status)}
</main></body></html>
`;
    return page.text;
}
