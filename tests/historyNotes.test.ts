// History belongs in git: code, comments and documents say what is and why, never which issue, commit or earlier
// version led there (that is what `git log` is for). Scans the project's own text files. No Blender, no emulator.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";

const ROOT = path.join(__dirname, "..");
const SKIPPED_DIRS = new Set(["node_modules", "dist", "renders", ".farm", ".git", ".test-cache"]);
/** Binary files, the lock file, and mutation patches (snapshots of code, checked when they stop applying). */
const SKIPPED_FILES = /\.(blend|png|jpg|exr|tgz|patch)$|^package-lock\.json$/;

/** What a history note looks like: an issue or its items, a commit as a point in time, the project's first version. */
const HISTORY_NOTES: { what: string; pattern: RegExp }[] = [
    { what: "an issue number", pattern: /\bissue #?\d+/i },
    { what: "an issue's item", pattern: /\bitems? \d+(?:[-,] ?\d+)*(?::|\))/i },
    {
        what: "a commit as a point in time",
        pattern: /\b(?:before|after|since|until|of) (?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b/,
    },
    { what: "the seed version", pattern: /\bseed[- ](?:era|implementation)\b/i },
    { what: "what was", pattern: /\b(?:previously|now fixed|formerly)\b/i },
];

function projectFiles(dir = ROOT): string[] {
    const found: string[] = [];
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) {
            if (!SKIPPED_DIRS.has(entry.name)) found.push(...projectFiles(full));
        } else if (entry.isFile() && !SKIPPED_FILES.test(entry.name)) {
            found.push(path.relative(ROOT, full));
        }
    }
    return found.sort();
}

/** `file:line: what (the text)` for every history note in `text`. */
function historyNotes(file: string, text: string): string[] {
    const found: string[] = [];
    text.split("\n").forEach((line, index) => {
        for (const { what, pattern } of HISTORY_NOTES) {
            const match = pattern.exec(line);
            if (match) found.push(`${file}:${index + 1}: ${what} ("${match[0]}")`);
        }
    });
    return found;
}

describe("history notes", function () {
    it("no file of the project names an issue, a commit as a point in time, or the seed version", function () {
        const self = path.relative(ROOT, __filename);
        const files = projectFiles().filter((file) => file !== self);
        assert.ok(files.includes("README.md") && files.some((file) => file.endsWith(".py")), "the scan finds the tree");
        const found = files.flatMap((file) => historyNotes(file, fs.readFileSync(path.join(ROOT, file), "utf8")));
        assert.deepStrictEqual(found, []);
    });

    it("tells history notes from the words they resemble", function () {
        const notes = [
            "// Target (issue 11): a reply under 1 MB",
            "    // ---- item 4: submit is resumable ----",
            "// A frame in flight is held no longer than its invocation can last (item 7): the renderer",
            "// image/Dockerfile before 5ba511e: the runtime client started directly",
            "/** A job id for seed-era messages, which carried none */",
            "// sequence (the seed implementation's approach)",
            "// the queue was previously polled",
        ];
        for (const line of notes) assert.strictEqual(historyNotes("x.ts", line).length, 1, line);
        const plain = [
            "cycles.seed = 0  # the scene's seed is fixed",
            "const seed = Number(process.env.FUZZ_SEED ?? 20240611);",
            "the public repository fhoehl/blender-python-gif (commit 104c6ce4, 2016), MIT licensed",
            "/** 0: legacy 12-byte header; 1: Blender 5.x 17-byte header */",
            "const issue = parsed.error.issues[0];",
            "each item is 4 KB",
            "a receipt handle that is no longer valid",
            "frame 12 of 1048574, before 2000000 frames",
        ];
        for (const line of plain) assert.deepStrictEqual(historyNotes("x.ts", line), [], line);
    });
});
