// Where the CLI's words go: progress and notes on stderr, results on stdout, and with --json exactly
// one JSON document on stdout so scripts can parse it. Everything goes through terminalSafe: a scene's or
// the farm's strings never reach the terminal as control characters.
import { terminalSafe, terminalSafeJson } from "./terminalText";

export class Output {
    constructor(
        readonly json: boolean,
        private readonly stdout: NodeJS.WritableStream = process.stdout,
        readonly stderr: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
    ) {}

    /** A progress note for people (stderr, so stdout stays clean for results). */
    note(line: string): void {
        this.stderr.write(`${terminalSafe(line)}\n`);
    }

    /** A reason the command did not fully succeed, one line, on stderr. */
    problem(line: string): void {
        this.stderr.write(`render-farm: ${terminalSafe(line)}\n`);
    }

    /** The command's result: the JSON document with --json, else the human lines. */
    result(document: unknown, human: string[]): void {
        if (this.json) this.stdout.write(`${terminalSafeJson(JSON.stringify(document, null, 2))}\n`);
        else if (human.length > 0) this.stdout.write(`${human.map(terminalSafe).join("\n")}\n`);
    }
}
