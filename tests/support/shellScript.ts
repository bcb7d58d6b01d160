// A shell script read with a real parser (mvdan-sh, the JavaScript build of mvdan/sh): its simple commands in source
// order, each with whether its failure fails the whole script under POSIX errexit rules. For tests that check a RUN
// line or an entrypoint script statically: `cmd || true` or `cmd | cat` keep a command, but not its failure.
import { syntax } from "mvdan-sh";

/** mvdan/sh's BinCmdOperator values (a const enum in its types, so not readable at run time). */
const AND = 10;

export interface ShellCommand {
    /** The command's words, quotes removed; a parameter reads `$name`, whether braced or not (any operator left out). */
    words: string[];
    /** Assignments before the command, or of an export/local/readonly (name to value, as words read). */
    assigns: Record<string, string>;
    /** Whether this command failing makes the script exit with a failure. */
    failureFailsScript: boolean;
}

/** Where a command stands: does its failure end the script through errexit (set -e), or through the exit status? */
interface Standing {
    errexit: boolean;
    status: boolean;
}

interface Shell {
    errexit: boolean;
}

const NEITHER: Standing = { errexit: false, status: false };

function partText(part: any): string {
    switch (syntax.NodeType(part)) {
        case "Lit":
        case "SglQuoted":
            return part.Value;
        case "DblQuoted":
            return part.Parts.map(partText).join("");
        case "ParamExp":
            return `$${part.Param.Value}`;
        default:
            return `<${syntax.NodeType(part)}>`;
    }
}

function wordText(word: any): string {
    return word ? word.Parts.map(partText).join("") : "";
}

function assignsOf(assigns: any[]): Record<string, string> {
    return Object.fromEntries(assigns.map((assign) => [assign.Name?.Value ?? "", wordText(assign.Value)]));
}

/** A statement list (a script, a subshell, a block): `listFails` says whether the list ending in failure matters. */
function visitList(statements: any[], shell: Shell, listFails: boolean, out: ShellCommand[]): void {
    statements.forEach((statement, index) => {
        const counts = !statement.Negated && !statement.Background && listFails;
        const standing: Standing = {
            errexit: counts && shell.errexit,
            // The last statement's status is the list's.
            status: counts && index === statements.length - 1,
        };
        visitCommand(statement.Cmd, shell, standing, out);
    });
}

function visitCommand(command: any, shell: Shell, standing: Standing, out: ShellCommand[]): void {
    if (!command) return;
    const fails = standing.errexit || standing.status;
    switch (syntax.NodeType(command)) {
        case "CallExpr": {
            const words = command.Args.map(wordText);
            out.push({ words, assigns: assignsOf(command.Assigns), failureFailsScript: fails });
            if (words[0] === "set" && words.slice(1).some((word: string) => /^-[a-z]*e/.test(word)))
                shell.errexit = true;
            return;
        }
        case "DeclClause":
            out.push({
                words: [command.Variant?.Value ?? ""],
                assigns: assignsOf(command.Args),
                failureFailsScript: fails,
            });
            return;
        case "BinaryCmd": {
            // errexit spares every command of an && or || list but the last, and a pipeline's status is its last
            // command's: `a && b` fails on a only through its status; `a || b` and `a | b` never on a.
            const left: Standing = command.Op === AND ? { errexit: false, status: standing.status } : NEITHER;
            visitCommand(command.X.Cmd, shell, command.X.Negated ? NEITHER : left, out);
            visitCommand(command.Y.Cmd, shell, command.Y.Negated ? NEITHER : standing, out);
            return;
        }
        case "Subshell":
            visitList(command.Stmts, { ...shell }, fails, out);
            return;
        case "Block":
            visitList(command.Stmts, shell, fails, out);
            return;
        case "CaseClause":
            for (const item of command.Items) visitList(item.Stmts, shell, fails, out);
            return;
        case "IfClause":
            // A condition's failure picks a branch; the branches stand where the if does.
            visitList(command.Cond, shell, false, out);
            visitList(command.Then, shell, fails, out);
            if (command.Else) visitCommand(command.Else, shell, standing, out);
            return;
        default:
            return;
    }
}

/** The simple commands of `source` in source order; throws on a syntax error. */
export function shellCommands(source: string, name: string): ShellCommand[] {
    const file = syntax.NewParser().Parse(source, name);
    const out: ShellCommand[] = [];
    visitList(file.Stmts, { errexit: false }, true, out);
    return out;
}
