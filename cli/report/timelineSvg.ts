// The frame timeline as inline SVG: time across, one row per lane, a bar per frame from its start to its end,
// coloured by its outcome, with the frame number on bars wide enough for it and a tooltip (<title>) on each.
import type { FrameTimeline } from "./frameTimeline";
import { html, Markup } from "./html";

const WIDTH = 960;
const LEFT = 56;
const RIGHT = 12;
const AXIS = 26;

export const STATUS_COLOURS = { done: "#3a9d5d", retrying: "#d99a1e", failed: "#c8413b" } as const;

/** A tick step (1, 2, 5 × 10^n seconds) giving about 8 ticks over `seconds`. */
function tickStep(seconds: number): number {
    const rough = Math.max(seconds / 8, 0.001);
    const power = 10 ** Math.floor(Math.log10(rough));
    return [1, 2, 5, 10].map((factor) => factor * power).find((step) => step >= rough) ?? 10 * power;
}

function seconds(value: number): string {
    return value >= 10 || Number.isInteger(value) ? `${Math.round(value)} s` : `${value.toFixed(1)} s`;
}

export function timelineSvg(timeline: FrameTimeline): Markup {
    const span = Math.max(timeline.endMs - timeline.startMs, 1);
    const rowHeight = timeline.lanes <= 16 ? 24 : Math.max(3, Math.floor(400 / timeline.lanes));
    const height = timeline.lanes * rowHeight + AXIS + 4;
    const plot = WIDTH - LEFT - RIGHT;
    const x = (ms: number) => LEFT + ((ms - timeline.startMs) / span) * plot;
    const step = tickStep(span / 1000);
    const ticks: number[] = [];
    for (let tick = 0; tick <= span / 1000 + 1e-9; tick += step) ticks.push(tick);
    const lanes = Array.from({ length: timeline.lanes }, (_, lane) => lane);
    return html`<svg class="timeline" viewBox="0 0 ${WIDTH} ${height}" width="100%" role="img" aria-label="frame timeline">
${lanes.map(
    (lane) =>
        html`<rect x="${LEFT}" y="${lane * rowHeight}" width="${plot}" height="${rowHeight}" fill="${lane % 2 ? "#f4f5f7" : "#fafbfc"}"/>${
            rowHeight >= 12
                ? html`<text x="${LEFT - 6}" y="${lane * rowHeight + rowHeight / 2 + 4}" text-anchor="end" class="lane">lane ${lane + 1}</text>`
                : ""
        }\n`,
)}
${ticks.map((tick) => {
    const at = x(timeline.startMs + tick * 1000);
    return html`<line x1="${at.toFixed(1)}" x2="${at.toFixed(1)}" y1="0" y2="${timeline.lanes * rowHeight + 4}" class="tick"/><text x="${at.toFixed(1)}" y="${timeline.lanes * rowHeight + 18}" text-anchor="middle" class="axis">${seconds(tick)}</text>\n`;
})}
${timeline.bars.map((bar) => {
    const left = x(bar.startMs);
    const width = Math.max(x(bar.endMs) - left, 1.5);
    const top = bar.lane * rowHeight + (rowHeight >= 12 ? 3 : 0.5);
    const barHeight = rowHeight >= 12 ? rowHeight - 6 : Math.max(rowHeight - 1, 1);
    const duration = ((bar.endMs - bar.startMs) / 1000).toFixed(2);
    const from = ((bar.startMs - timeline.startMs) / 1000).toFixed(2);
    const to = ((bar.endMs - timeline.startMs) / 1000).toFixed(2);
    const label = `frame ${bar.frame}`;
    const showLabel = rowHeight >= 12 && width >= 8 * String(bar.frame).length + 8;
    return html`<g class="bar" data-frame="${bar.frame}" data-lane="${bar.lane + 1}"><rect x="${left.toFixed(1)}" y="${top}" width="${width.toFixed(1)}" height="${barHeight}" rx="2" fill="${STATUS_COLOURS[bar.status]}"><title>${label}: ${from} s → ${to} s (${duration} s), attempt ${bar.attempts}, ${bar.status}</title></rect>${
        showLabel
            ? html`<text x="${(left + width / 2).toFixed(1)}" y="${top + barHeight / 2 + 4}" text-anchor="middle" class="label">${bar.frame}</text>`
            : ""
    }</g>\n`;
})}</svg>`;
}
