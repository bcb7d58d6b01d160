// Finds and ends the Blender processes a renderer started in its work dir, e.g. those of a worker process that was
// killed. Blender's command line names that work dir (render_frame.py --work-dir).
import * as fs from "fs";
import * as path from "path";

/** Pids of processes (other than this one) with a command-line argument that is `dir` or inside it. Linux (/proc) only. */
export function processesWorkingIn(dir: string): number[] {
    const root = path.resolve(dir);
    const prefix = root + path.sep;
    let entries: string[];
    try {
        entries = fs.readdirSync("/proc");
    } catch {
        return [];
    }
    const pids: number[] = [];
    for (const entry of entries) {
        if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
        let args: string[];
        try {
            args = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
        } catch {
            continue; // Gone meanwhile, or not ours to read.
        }
        if (args.some((arg) => arg === root || arg.startsWith(prefix))) pids.push(Number(entry));
    }
    return pids;
}

/** SIGKILLs every process working in `dir`; returns their pids. */
export function killProcessesWorkingIn(dir: string): number[] {
    const killed: number[] = [];
    for (const pid of processesWorkingIn(dir)) {
        try {
            process.kill(pid, "SIGKILL");
            killed.push(pid);
        } catch {
            // Exited meanwhile, or not ours.
        }
    }
    return killed;
}
