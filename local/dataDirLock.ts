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

/** Takes the data dir's lock or throws, naming the process that holds it. */
export function lockDataDir(dataDir: string): DataDirLock {
    fs.mkdirSync(dataDir, { recursive: true });
    const file = path.resolve(dataDir, LOCK_FILE);
    for (let attempt = 0; attempt < 2; attempt++) {
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
        let owner: number;
        try {
            owner = Number(fs.readFileSync(file, "utf8").trim());
        } catch (error) {
            if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
            throw error;
        }
        const ownerIsRunning =
            owner === process.pid ? held.has(file) : Number.isInteger(owner) && owner > 0 && isAlive(owner);
        if (ownerIsRunning) {
            throw new Error(
                `the data dir ${dataDir} is in use by another local farm (process ${owner}, see ${file}); stop it or pick another --data-dir`,
            );
        }
        // Left by a farm that did not stop cleanly.
        fs.rmSync(file, { force: true });
    }
    throw new Error(`could not take the lock ${file}: another local farm is starting on the same data dir`);
}
