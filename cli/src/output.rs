//! What a command prints: human tables by default, the API's shapes as JSON
//! or YAML with `-o`, colours only on a terminal and never with `NO_COLOR`.

use std::io::IsTerminal as _;

use clap::ValueEnum;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;
use serde_json::Value;

use crate::exit::{CliError, CliResult};

/// `-o`: the output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables and text for people.
    #[default]
    Table,
    /// The API's JSON shapes, for scripts.
    Json,
    /// The same shapes as YAML.
    Yaml,
}

/// What is printed, collected so that the library can be run in-process (the
/// binary writes it out at the end; progress bars go to the terminal directly).
#[derive(Debug, Default)]
pub struct Printer {
    pub format: Format,
    pub stdout: String,
    pub stderr: String,
    colour: bool,
}

/// A colour for a line.
#[derive(Debug, Clone, Copy)]
pub enum Colour {
    Green,
    Red,
    Yellow,
    Bold,
}

impl Printer {
    /// `colour_allowed`: standard output is a terminal and `NO_COLOR` unset.
    pub fn new(format: Format, colour_allowed: bool) -> Self {
        Printer {
            format,
            colour: colour_allowed,
            ..Printer::default()
        }
    }

    /// Whether the real standard output takes colours.
    pub fn terminal_colours() -> bool {
        std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    }

    pub fn line(&mut self, text: impl AsRef<str>) {
        self.stdout.push_str(text.as_ref());
        self.stdout.push('\n');
    }

    pub fn coloured(&mut self, colour: Colour, text: impl AsRef<str>) {
        if !self.colour {
            return self.line(text);
        }
        let code = match colour {
            Colour::Green => "32",
            Colour::Red => "31",
            Colour::Yellow => "33",
            Colour::Bold => "1",
        };
        self.line(format!("\x1b[{code}m{}\x1b[0m", text.as_ref()));
    }

    /// A diff line coloured by its sign.
    pub fn change(&mut self, line: impl AsRef<str>) {
        let line = line.as_ref();
        let colour = match line.trim_start().chars().next() {
            Some('+') => Colour::Green,
            Some('-') => Colour::Red,
            _ => Colour::Yellow,
        };
        self.coloured(colour, line);
    }

    pub fn note(&mut self, text: impl AsRef<str>) {
        self.stderr.push_str(text.as_ref());
        self.stderr.push('\n');
    }

    /// Prints `value` as JSON or YAML; `human` draws it in table mode.
    pub fn emit<T: Serialize>(
        &mut self,
        value: &T,
        human: impl FnOnce(&mut Printer),
    ) -> CliResult<()> {
        match self.format {
            Format::Json => {
                let text = serde_json::to_string_pretty(value)
                    .map_err(|e| CliError::failure(e.to_string()))?;
                self.line(text);
            }
            Format::Yaml => self.stdout.push_str(&to_yaml(value)?),
            Format::Table => human(self),
        }
        Ok(())
    }

    /// A table with a header row.
    pub fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(header.to_vec());
        for row in rows {
            table.add_row(row);
        }
        self.line(table.to_string());
    }

    /// A document for people: YAML, which reads well and keeps types.
    pub fn document(&mut self, value: &Value) {
        match to_yaml(value) {
            Ok(text) => self.stdout.push_str(&text),
            Err(_) => self.line(value.to_string()),
        }
    }
}

pub fn to_yaml<T: Serialize>(value: &T) -> CliResult<String> {
    serde_norway::to_string(value).map_err(|e| CliError::failure(e.to_string()))
}

/// A cell: strings bare, other values as JSON, null empty.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_when_allowed() {
        let mut plain = Printer::new(Format::Table, false);
        plain.change("+ /a = 1");
        assert_eq!(plain.stdout, "+ /a = 1\n");
        let mut coloured = Printer::new(Format::Table, true);
        coloured.change("- /a (was 1)");
        assert_eq!(coloured.stdout, "\x1b[31m- /a (was 1)\x1b[0m\n");
    }
}
