// When each frame rendered, laid out in lanes: a frame goes in the first lane free when it starts, so the number of
// lanes is the most frames that rendered at once (first-fit by start time is optimal for intervals).
// A record keeps its latest attempt's start and end (an attempt overwrites the record of the one before).
import type { FrameRecord, FrameStatus } from "../../functions/shared/contract";

export interface TimelineBar {
    frame: number;
    status: FrameStatus;
    attempts: number;
    /** Milliseconds since the epoch. */
    startMs: number;
    endMs: number;
    lane: number;
}

export interface FrameTimeline {
    bars: TimelineBar[];
    lanes: number;
    /** The most frames rendering at the same moment (an end and a start at the same instant do not overlap). */
    maxConcurrent: number;
    startMs: number;
    endMs: number;
    /** Frames whose record has no usable times (not drawn). */
    undated: number[];
}

export function frameTimeline(records: readonly FrameRecord[]): FrameTimeline {
    const dated: Omit<TimelineBar, "lane">[] = [];
    const undated: number[] = [];
    for (const record of records) {
        const startMs = Date.parse(record.startedAt);
        const endMs = Date.parse(record.finishedAt);
        if (!Number.isFinite(startMs) || !Number.isFinite(endMs) || endMs < startMs) undated.push(record.frame);
        else dated.push({ frame: record.frame, status: record.status, attempts: record.attempts, startMs, endMs });
    }
    dated.sort((a, b) => a.startMs - b.startMs || a.endMs - b.endMs || a.frame - b.frame);
    const laneEnds: number[] = [];
    const bars = dated.map((bar) => {
        let lane = laneEnds.findIndex((end) => end <= bar.startMs);
        if (lane === -1) lane = laneEnds.push(bar.endMs) - 1;
        else laneEnds[lane] = bar.endMs;
        return { ...bar, lane };
    });
    return {
        bars,
        lanes: laneEnds.length,
        maxConcurrent: maxOverlap(dated),
        startMs: dated.length > 0 ? Math.min(...dated.map((bar) => bar.startMs)) : 0,
        endMs: dated.length > 0 ? Math.max(...dated.map((bar) => bar.endMs)) : 0,
        undated: undated.sort((a, b) => a - b),
    };
}

/** The most intervals covering one instant: a sweep over starts (+1) and ends (-1), ends first at a tie. */
export function maxOverlap(intervals: readonly { startMs: number; endMs: number }[]): number {
    const events = intervals.flatMap((interval) => [
        { at: interval.startMs, change: 1 },
        { at: interval.endMs, change: -1 },
    ]);
    events.sort((a, b) => a.at - b.at || a.change - b.change);
    let current = 0;
    let most = 0;
    for (const event of events) {
        current += event.change;
        most = Math.max(most, current);
    }
    return most;
}
