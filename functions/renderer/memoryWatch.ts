// Blender's memory, seen from Linux /proc: the resident memory of Blender and of every process it started, summed.
// While a frame renders it is sampled every few hundred ms, so that a scene outgrowing the renderer is stopped by the
// renderer (and the frame reports it) before the Lambda's memory runs out and the whole runtime is killed unheard.
import * as fs from "fs";

/** How often a rendering Blender's memory is sampled: memory grows at a few hundred MB/s at most while a scene loads. */
export const MEMORY_SAMPLE_MS = 200;

/** `pid` and its descendants, parents first; [] when it is gone or there is no /proc. */
export function processTree(pid: number): number[] {
    const tree: number[] = [];
    const pending = [pid];
    while (pending.length > 0) {
        const next = pending.shift() as number;
        if (tree.includes(next)) continue;
        let tasks: string[];
        try {
            tasks = fs.readdirSync(`/proc/${next}/task`);
        } catch {
            continue;
        }
        tree.push(next);
        // Each thread lists the children it started.
        for (const task of tasks) {
            try {
                const children = fs.readFileSync(`/proc/${next}/task/${task}/children`, "utf8").trim();
                if (children) pending.push(...children.split(/\s+/).map(Number));
            } catch {
                // The thread ended meanwhile.
            }
        }
    }
    return tree;
}

/** A `kB` field of /proc/<pid>/status in bytes (VmRSS: resident now, VmHWM: the most it was resident). */
function statusBytes(pid: number, field: "VmRSS" | "VmHWM"): number | undefined {
    try {
        const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
        return match ? Number(match[1]) * 1024 : undefined;
    } catch {
        return undefined;
    }
}

function sumOverTree(pid: number | undefined, field: "VmRSS" | "VmHWM"): number | undefined {
    if (pid === undefined) return undefined;
    let total: number | undefined;
    for (const member of processTree(pid)) {
        const bytes = statusBytes(member, field);
        if (bytes !== undefined) total = (total ?? 0) + bytes;
    }
    return total;
}

/** Resident memory of a process and its descendants; undefined once it is gone (or off Linux). */
export function residentTreeBytes(pid: number | undefined): number | undefined {
    return sumOverTree(pid, "VmRSS");
}

/** The most each process of the tree was ever resident, summed: what it reached, between two samples too. */
export function peakTreeBytes(pid: number | undefined): number | undefined {
    return sumOverTree(pid, "VmHWM");
}

/**
 * Samples the tree's resident memory every `intervalMs` until stopped; the first sample above `limitBytes` calls
 * `exceeded` once with the tree's peak, and the watch ends. Returns the stop function.
 */
export function watchMemory(
    pid: number,
    limitBytes: number,
    exceeded: (peakBytes: number) => void,
    intervalMs = MEMORY_SAMPLE_MS,
): () => void {
    const timer = setInterval(() => {
        const resident = residentTreeBytes(pid);
        if (resident === undefined || resident <= limitBytes) return;
        clearInterval(timer);
        exceeded(Math.max(resident, peakTreeBytes(pid) ?? 0));
    }, intervalMs);
    // The frame's deadline timer keeps the process alive while a frame renders; the watch does not need to.
    timer.unref();
    return () => clearInterval(timer);
}

/** "9.6 GB" from 1 GB up, else "412 MB" (binary units, as Lambda's memory setting counts them). */
export function formatBytes(bytes: number): string {
    const mb = bytes / (1024 * 1024);
    return mb >= 1024 ? `${(mb / 1024).toFixed(1)} GB` : `${Math.round(mb)} MB`;
}
