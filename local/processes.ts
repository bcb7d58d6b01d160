// Finds and ends the Blender processes a renderer started in its work dir. The renderer does not hand out
// its child's pid, but Blender's command line names the scene and output files inside that work dir.
import * as fs from "fs";
import * as path from "path";

/** Pids of processes (other than this one) with a command-line argument inside `dir`. Linux (/proc) only. */
export function processesWorkingIn(dir: string): number[] {
    const prefix = path.resolve(dir) + path.sep;
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
        if (args.some((arg) => arg.startsWith(prefix))) pids.push(Number(entry));
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
