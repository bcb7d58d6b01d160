// One local farm per data dir: two emulators on one SQLite file would each keep their own copy of the queues.
// The lock is a file holding the owner's pid; a lock whose process is gone (killed, crashed) is taken over.
import * as fs from "fs";
import * as path from "path";

export const LOCK_FILE = "farm.pid";

export interface DataDirLock {
    /** Removes the lock file if it is still ours. */
    release(): void;
}

/** Lock files this process holds: its own pid in a lock file is only stale if it is not among them. */
const held = new Set<string>();

/** True while `pid` is a live process (a zombie awaiting its parent's wait() is not). */
function isAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === "EPERM";
    }
    try {
        // /proc/<pid>/stat: "pid (comm) state ..."; comm may hold spaces and parentheses, the state follows the last ")".
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
    } catch {
        return true;
    }
}

/** The file's content, trimmed, or undefined when it is gone. */
function readContent(file: string): string | undefined {
    try {
        return fs.readFileSync(file, "utf8").trim();
    } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw error;
    }
}

/** True while the pid written in a lock (or takeover) file belongs to a live process other than a stale self. */
function holderIsRunning(content: string, file: string): boolean {
    const pid = Number(content);
    if (!Number.isInteger(pid) || pid <= 0) return false;
    return pid === process.pid ? held.has(file) : isAlive(pid);
}

function sleepSync(ms: number): void {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Removes `file` if it still holds `stale` (written by a process that is gone), safely when several processes find
 * the same stale lock at once. Reading and then deleting would let a slow process delete the lock another one has
 * just taken; so a takeover is itself exclusive: only the process that creates `<file>.takeover-<stale>` may delete,
 * and it deletes only if the file still holds `stale` (nobody can replace that file while the takeover file exists).
 */
function removeStale(file: string, stale: string): void {
    const takeover = `${file}.takeover-${/^\d+$/.test(stale) ? stale : "invalid"}`;
    try {
        fs.writeFileSync(takeover, `${process.pid}\n`, { flag: "wx" });
    } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        // Another process is taking over; if it died doing so, its takeover file is stale in turn.
        const taker = readContent(takeover);
        if (taker !== undefined && !holderIsRunning(taker, takeover)) removeStale(takeover, taker);
        return;
    }
    try {
        if (readContent(file) === stale) fs.rmSync(file, { force: true });
    } finally {
        fs.rmSync(takeover, { force: true });
    }
}

/** Takes the data dir's lock or throws, naming the process that holds it. */
export function lockDataDir(dataDir: string): DataDirLock {
    fs.mkdirSync(dataDir, { recursive: true });
    const file = path.resolve(dataDir, LOCK_FILE);
    for (let attempt = 0; attempt < 50; attempt++) {
        try {
            fs.writeFileSync(file, `${process.pid}\n`, { flag: "wx" });
            held.add(file);
            return {
                release() {
                    held.delete(file);
                    try {
                        if (fs.readFileSync(file, "utf8").trim() === String(process.pid))
                            fs.rmSync(file, { force: true });
                    } catch {
                        // Already gone.
                    }
                },
            };
        } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        }
        const owner = readContent(file);
        if (owner === undefined) continue;
        if (holderIsRunning(owner, file)) {
            throw new Error(
                `the data dir ${dataDir} is in use by another local farm (process ${owner}, see ${file}); stop it or pick another --data-dir`,
            );
        }
        // Left by a farm that did not stop cleanly.
        removeStale(file, owner);
        // Another process may be mid-takeover: give it a moment before looking again.
        if (attempt > 0) sleepSync(10);
    }
    throw new Error(`could not take the lock ${file}: another local farm is starting on the same data dir`);
}
