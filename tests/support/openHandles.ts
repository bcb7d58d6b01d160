// After the last test, nothing a test started may still run. Mocha waits for the event loop to empty before it exits,
// so a runtime process, a Blender or a server a test forgot to stop would hang the run (CI's 90 minutes once went this
// way, after every test had passed). This root hook names what is left, which fails the run, ends the leftover
// processes, and lets the process exit even if a handle stays open.
import * as fs from "fs";
import { commandLine } from "./blenderProcesses";

/** How long the last test's stopping sockets and processes get to go away on their own. */
const SETTLE_MS = 5_000;
/** When the loop still is not empty this long after the last test, the process exits anyway (the run has failed). */
const EXIT_AFTER_MS = 15_000;

/** The processes whose parent is this one (Linux /proc). */
function childProcesses(): number[] {
    const children: number[] = [];
    for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
            // The command name, in parentheses, may hold spaces: the parent pid is the second field after it.
            const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
            if (parent === process.pid) children.push(Number(entry));
        } catch {
            // It exited while being read.
        }
    }
    return children;
}

function describeChild(pid: number): string {
    try {
        return `process ${pid}: ${commandLine(pid).join(" ").slice(0, 200)}`;
    } catch {
        return `process ${pid}`;
    }
}

/** Handles that keep the event loop alive, other than the test run's own standard streams. */
function openHandles(): string[] {
    const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
    const described: string[] = [];
    for (const handle of handles) {
        if (handle === process.stdout || handle === process.stderr || handle === process.stdin) continue;
        const named = handle as {
            constructor?: { name?: string };
            pid?: number;
            spawnargs?: string[];
            remoteAddress?: string;
            remotePort?: number;
            address?: () => unknown;
        };
        const kind = named.constructor?.name ?? "handle";
        if (named.pid !== undefined) continue; // a child process: listed from /proc, with its command line
        if (named.remoteAddress) described.push(`${kind} to ${named.remoteAddress}:${named.remotePort}`);
        else if (kind === "Server") described.push(`Server listening on ${JSON.stringify(named.address?.())}`);
        else if (kind !== "Socket" && kind !== "WriteStream" && kind !== "ReadStream") described.push(kind);
    }
    return described;
}

function leftovers(): string[] {
    return [...childProcesses().map(describeChild), ...openHandles()];
}

export const mochaHooks = {
    async afterAll(this: { timeout(ms: number): void }) {
        this.timeout(SETTLE_MS + 10_000);
        const settleUntil = Date.now() + SETTLE_MS;
        let left = leftovers();
        while (left.length > 0 && Date.now() < settleUntil) {
            await new Promise((resolve) => setTimeout(resolve, 250));
            left = leftovers();
        }
        if (left.length === 0) return;
        for (const pid of childProcesses()) {
            try {
                process.kill(pid, "SIGKILL");
            } catch {
                // Gone already.
            }
        }
        setTimeout(() => process.exit(process.exitCode || 1), EXIT_AFTER_MS).unref();
        throw new Error(`the tests left ${left.length} thing(s) running after the last test:\n  ${left.join("\n  ")}`);
    },
};
