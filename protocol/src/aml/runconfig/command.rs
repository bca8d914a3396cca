//! What a runconfig runs: `script` + `arguments` after the environment's interpreter,
//! or `command` as one shell line; both, or neither, is an error (as in the SDK).

use super::super::report::ImportReport;
use super::super::source::{get, scalar_text, shell, Aliases, Source};
use serde_yaml::{Mapping, Value};

/// What to run: `script` + `arguments` after the interpreter, or `command` as a shell
/// line; both, or neither, is an error.
pub(super) fn import_command(
    src: &mut Source,
    top: &Mapping,
    python: &Mapping,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) -> Vec<String> {
    let script = src
        .string("script", &get(top, "script"))
        .filter(|s| !s.is_empty());
    let arguments = import_arguments(src, top);
    let command_line: Option<String> = match get(top, "command") {
        Value::Null => None,
        Value::Sequence(items) => {
            // The SDK accepts a list and runs it joined with spaces.
            let parts: Vec<String> = items.iter().filter_map(scalar_text).collect();
            Some(parts.join(" ")).filter(|s| !s.trim().is_empty())
        }
        v => src.string("command", &v).filter(|s| !s.trim().is_empty()),
    };
    let mut command = Vec::new();
    match (&script, &command_line) {
        (Some(_), Some(_)) => src.push(
            "command",
            "give either command or script + arguments, not both (Azure ML refuses both too)",
        ),
        (None, Some(line)) => {
            if !arguments.is_empty() {
                src.push(
                    "arguments",
                    "arguments go with script; with command, put them in the command line",
                );
            }
            command = shell(line);
            aliases.push(("command".into(), "command".into()));
            report.map("command", "command: bash -c <the command line>");
        }
        (Some(script), None) => {
            command = script_command(script, &arguments, python, report, aliases);
        }
        (None, None) => src.push(
            "script",
            "missing; a runconfig needs script (with arguments) or command",
        ),
    }
    command
}

/// `arguments`: a list of single values, as the program sees them.
fn import_arguments(src: &mut Source, top: &Mapping) -> Vec<String> {
    match get(top, "arguments") {
        Value::Null => Vec::new(),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match scalar_text(v) {
                Some(s) => Some(s),
                None => {
                    src.push(
                        &format!("arguments[{i}]"),
                        "expected a single value (text or number)",
                    );
                    None
                }
            })
            .collect(),
        _ => {
            src.push("arguments", "expected a list of arguments");
            Vec::new()
        }
    }
}

/// `<interpreterPath> script arguments…`, with the aliases that point each word of
/// the command back at its key.
fn script_command(
    script: &str,
    arguments: &[String],
    python: &Mapping,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) -> Vec<String> {
    let interpreter = python
        .get("interpreterPath")
        .and_then(scalar_text)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "python".into());
    let mut command = vec![interpreter.clone(), script.to_string()];
    command.extend(arguments.iter().cloned());
    aliases.push((
        "command[0]".into(),
        "environment.python.interpreterPath".into(),
    ));
    aliases.push(("command[1]".into(), "script".into()));
    for i in 0..arguments.len() {
        aliases.push((format!("command[{}]", i + 2), format!("arguments[{i}]")));
    }
    report.map(
        "environment.python.interpreterPath",
        format!("command[0]: {interpreter}"),
    );
    report.map("script", format!("command[1]: {script}"));
    if !arguments.is_empty() {
        report.map(
            "arguments",
            format!(
                "command[2..]: {} argument(s), references substituted",
                arguments.len()
            ),
        );
    }
    command
}
