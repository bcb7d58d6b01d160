// Shows a job's progress while the CLI waits: a cli-progress bar on a terminal, otherwise one plain
// line per event (counts changed, a frame failed, the job ended) that logs and CI can keep.
import { SingleBar } from "cli-progress";
import { JobState, JobStatus, STOP_STATES } from "../functions/shared/contract";
import { terminalSafe } from "./terminalText";

export const FINAL_STATES: readonly JobState[] = ["complete", "failed", "partial", "probed", ...STOP_STATES];

export interface ProgressReporter {
    update(status: JobStatus): void;
    /** Leaves the bar drawn as it is and moves past it. */
    stop(): void;
}

export interface ProgressOptions {
    stream: NodeJS.WritableStream & { isTTY?: boolean };
    /** Draw a bar (default: when the stream is a terminal). */
    tty?: boolean;
    now?: () => number;
}

/** 75 → "1:15", 3725 → "1:02:05". */
export function formatDuration(seconds: number): string {
    if (!Number.isFinite(seconds) || seconds < 0) return "-:--";
    const whole = Math.round(seconds);
    const h = Math.floor(whole / 3600);
    const m = Math.floor((whole % 3600) / 60);
    const s = String(whole % 60).padStart(2, "0");
    return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** Elapsed time and ETA from the rate frames finish at since the CLI started watching. */
class Clock {
    private readonly start: number;
    private firstFinished?: number;

    constructor(private readonly now: () => number) {
        this.start = now();
    }

    elapsedSeconds(): number {
        return (this.now() - this.start) / 1000;
    }

    etaSeconds(status: JobStatus): number {
        const finished = status.frames.done + status.frames.failed;
        this.firstFinished ??= finished;
        const progressed = finished - this.firstFinished;
        if (status.frames.pending === 0) return 0;
        if (progressed <= 0) return Number.NaN;
        return (this.elapsedSeconds() / progressed) * status.frames.pending;
    }
}

function barReporter(options: ProgressOptions, clock: Clock): ProgressReporter {
    const bar = new SingleBar({
        stream: options.stream as NodeJS.WritableStream,
        // Under 80 columns, the width cli-progress assumes when the terminal does not say.
        format: "{jobId} [{bar}] {done}/{total} done{tilesText}, {failed} failed | {elapsedText} | ETA {etaText}",
        barCompleteChar: "█",
        barIncompleteChar: "░",
        barsize: 20,
        hideCursor: true,
        fps: 4,
        noTTYOutput: true,
    });
    let started = false;
    let last: JobStatus | undefined;
    const payload = (status: JobStatus) => ({
        jobId: terminalSafe(status.jobId.length > 12 ? status.jobId.slice(0, 8) : status.jobId),
        done: status.frames.done,
        failed: status.frames.failed,
        tilesText: tilesText(status),
        // Not {eta}/{duration}: cli-progress fills those itself from its own sampling.
        elapsedText: formatDuration(clock.elapsedSeconds()),
        etaText: formatDuration(clock.etaSeconds(status)),
    });
    // Redraws every 0.5 s so the elapsed time moves between status polls.
    const timer = setInterval(() => {
        if (started && last) bar.update(last.frames.done + last.frames.failed, payload(last));
    }, 500);
    timer.unref();
    return {
        update(status) {
            last = status;
            const value = status.frames.done + status.frames.failed;
            if (!started) {
                bar.start(status.frames.total, value, payload(status));
                started = true;
            } else {
                bar.setTotal(status.frames.total);
                bar.update(value, payload(status));
            }
        },
        stop() {
            clearInterval(timer);
            if (started && last) bar.update(last.frames.done + last.frames.failed, payload(last));
            if (started) bar.stop();
            started = false;
        },
    };
}

function lineReporter(options: ProgressOptions, clock: Clock): ProgressReporter {
    let last: JobStatus | undefined;
    const reported = new Set<number>();
    const write = (text: string) =>
        options.stream.write(`[${formatDuration(clock.elapsedSeconds())}] ${terminalSafe(text)}\n`);
    return {
        update(status) {
            const { total, done, failed, pending } = status.frames;
            if (!last) write(`job ${status.jobId}: ${status.state}, ${total} frame(s)`);
            const final = FINAL_STATES.includes(status.state);
            if (last && last.state !== status.state && !final) write(`job ${status.jobId}: ${status.state}`);
            for (const failure of status.failures) {
                if (reported.has(failure.frame)) continue;
                reported.add(failure.frame);
                write(
                    `frame ${failure.frame} failed after ${failure.attempts} attempt(s): ${failure.error.replace(/\s*\n\s*/g, " ").trim()}`,
                );
            }
            const tilesMoved = status.tiles !== undefined && last?.tiles?.done !== status.tiles.done;
            if (
                last &&
                (last.frames.done !== done ||
                    last.frames.failed !== failed ||
                    last.frames.total !== total ||
                    tilesMoved)
            ) {
                const eta = clock.etaSeconds(status);
                write(
                    `${done}/${total} done${tilesText(status)}, ${failed} failed, ${pending} pending${pending > 0 && Number.isFinite(eta) ? `, ETA ${formatDuration(eta)}` : ""}`,
                );
            } else {
                clock.etaSeconds(status);
            }
            if (last && last.state !== status.state && final) write(`job ${status.jobId}: ${status.state}`);
            last = status;
        },
        stop() {},
    };
}

/** A tiled job's tiles as a sub-count of its frames: " (tiles 45/160)"; "" for whole frames. */
export function tilesText(status: JobStatus): string {
    return status.tiles ? ` (tiles ${status.tiles.done}/${status.tiles.total})` : "";
}

export function createProgressReporter(options: ProgressOptions): ProgressReporter {
    const clock = new Clock(options.now ?? Date.now);
    const tty = options.tty ?? options.stream.isTTY === true;
    return tty ? barReporter(options, clock) : lineReporter(options, clock);
}
