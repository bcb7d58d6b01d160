// The documentation stays usable: the README is a guide short enough to read (the rest lives in docs/, bench/ and
// tests/), and every link, anchor and repository path the Markdown files name exists. No Blender, no emulator.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";

const ROOT = path.join(__dirname, "..");
const README_MAX_LINES = 300;
/** Folders that hold no documentation of the project's own (dependencies, build output, local state). */
const SKIPPED_DIRS = new Set(["node_modules", "dist", "renders", ".farm", ".git", ".test-cache"]);
/** Top-level folders of the repository: a backticked path starting with one of them names a file of the project. */
const REPO_DIRS = ["bench", "cli", "components", "docs", "functions", "image", "local", "scripts", "tests"];

/** Every Markdown file of the project, relative to its root. */
function markdownFiles(dir = ROOT): string[] {
    const found: string[] = [];
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        if (entry.isDirectory()) {
            if (!SKIPPED_DIRS.has(entry.name)) found.push(...markdownFiles(path.join(dir, entry.name)));
        } else if (entry.name.endsWith(".md")) {
            found.push(path.relative(ROOT, path.join(dir, entry.name)));
        }
    }
    return found.sort();
}

/** The text outside fenced code blocks: links and paths in examples are not claims about this repository. */
function proseOf(markdown: string): string {
    return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "");
}

/** GitHub's anchor for a heading: lower case, punctuation (backticks, colons, dots) dropped, spaces as hyphens. */
function headingAnchor(heading: string): string {
    return heading
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, "")
        .replace(/ /g, "-");
}

/** The anchors of a Markdown file's headings, numbered as GitHub numbers repeated ones (`-1`, `-2`). */
function anchorsOf(markdown: string): Set<string> {
    const anchors = new Set<string>();
    for (const match of proseOf(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*$/gm)) {
        const base = headingAnchor(match[1]);
        let anchor = base;
        for (let n = 1; anchors.has(anchor); n++) anchor = `${base}-${n}`;
        anchors.add(anchor);
    }
    return anchors;
}

/** The targets of inline links and images, `[text](target)`, that stay inside the repository. */
function relativeLinks(markdown: string): string[] {
    const prose = proseOf(markdown).replace(/`[^`\n]*`/g, "");
    return [...prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g)]
        .map((match) => match[1])
        .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

/** Why `target`, linked from `file`, does not resolve, or undefined when it does. */
function brokenLink(file: string, target: string): string | undefined {
    const [pathPart, anchor] = target.split("#", 2);
    const resolved =
        pathPart === "" ? path.join(ROOT, file) : path.resolve(path.dirname(path.join(ROOT, file)), pathPart);
    if (!resolved.startsWith(ROOT + path.sep) && resolved !== ROOT) return `${target}: points outside the repository`;
    if (!fs.existsSync(resolved)) return `${target}: no such file (${path.relative(ROOT, resolved)})`;
    if (anchor === undefined || !resolved.endsWith(".md")) return undefined;
    const anchors = anchorsOf(fs.readFileSync(resolved, "utf8"));
    return anchors.has(anchor) ? undefined : `${target}: no heading "#${anchor}" in ${path.relative(ROOT, resolved)}`;
}

/** Paths in backticks that name a file or folder of this repository (`local/emulator.ts`, `tests/support/`). */
function repositoryPaths(markdown: string): string[] {
    const prefix = new RegExp(`^(?:${REPO_DIRS.join("|")})/`);
    return [...proseOf(markdown).matchAll(/`([^`\n]+)`/g)]
        .map((match) => match[1])
        .filter((text) => prefix.test(text) && !/[\s*<>{}…|]/.test(text));
}

describe("the documentation", function () {
    it(`keeps the README a guide of at most ${README_MAX_LINES} lines`, function () {
        const lines = fs.readFileSync(path.join(ROOT, "README.md"), "utf8").trimEnd().split("\n").length;
        assert.ok(lines <= README_MAX_LINES, `README.md has ${lines} lines; move reference and design text to docs/`);
    });

    it("resolves every relative link and anchor in every Markdown file", function () {
        const files = markdownFiles();
        assert.ok(files.includes("README.md") && files.includes(path.join("docs", "api.md")), files.join(", "));
        const broken: string[] = [];
        for (const file of files) {
            for (const target of relativeLinks(fs.readFileSync(path.join(ROOT, file), "utf8"))) {
                const problem = brokenLink(file, target);
                if (problem) broken.push(`${file}: ${problem}`);
            }
        }
        assert.deepStrictEqual(broken, []);
    });

    it("names only repository paths that exist", function () {
        const missing: string[] = [];
        for (const file of markdownFiles()) {
            for (const named of repositoryPaths(fs.readFileSync(path.join(ROOT, file), "utf8"))) {
                if (!fs.existsSync(path.join(ROOT, named))) missing.push(`${file}: ${named}`);
            }
        }
        assert.deepStrictEqual(missing, []);
    });

    it("reads links, anchors and paths as GitHub does (the checker itself)", function () {
        assert.strictEqual(headingAnchor("The job report: `render-farm report`"), "the-job-report-render-farm-report");
        assert.strictEqual(headingAnchor("`render-farm serve --runtime lambda`"), "render-farm-serve---runtime-lambda");
        assert.strictEqual(headingAnchor("Node.js 22"), "nodejs-22");
        assert.deepStrictEqual([...anchorsOf("# A\n## A\n```\n# not a heading\n```\n")], ["a", "a-1"]);
        const markdown = [
            "See [the API](docs/api.md#tiles) and ![a shot](docs/report.png 'title').",
            "[multi",
            "line](tests/README.md), [web](https://example.com), [self](#top), `[code](not/a/link.md)`.",
            "```bash",
            "cat [example](nowhere.md) `local/nowhere.ts`",
            "```",
            "Paths: `local/emulator.ts`, `tests/**/*.test.ts`, `tests/mutations/<name>.patch`, `renders/demo/`.",
        ].join("\n");
        assert.deepStrictEqual(relativeLinks(markdown), [
            "docs/api.md#tiles",
            "docs/report.png",
            "tests/README.md",
            "#top",
        ]);
        assert.deepStrictEqual(repositoryPaths(markdown), ["local/emulator.ts"]);
        assert.match(brokenLink("README.md", "docs/nowhere.md") ?? "", /no such file/);
        assert.match(brokenLink("README.md", "docs/api.md#no-such-heading") ?? "", /no heading "#no-such-heading"/);
        assert.match(brokenLink("docs/api.md", "../../outside.md") ?? "", /outside the repository/);
        assert.strictEqual(brokenLink("docs/api.md", "failures.md#retry"), undefined);
    });
});
