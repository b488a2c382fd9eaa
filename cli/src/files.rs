//! Reading JSON and YAML documents from files or standard input.

use std::io::Read as _;
use std::path::Path;

use serde_json::Value;

use crate::exit::{CliError, CliResult};

/// The text of a file, `-` being standard input.
pub fn read_text(path: &Path) -> CliResult<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::usage(format!("standard input: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

/// A JSON or YAML document (YAML is a superset of JSON, so both parse as YAML;
/// JSON first for exact numbers).
pub fn read_document(path: &Path) -> CliResult<Value> {
    let text = read_text(path)?;
    parse_document(&text).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

pub fn parse_document(text: &str) -> Result<Value, String> {
    match serde_json::from_str(text) {
        Ok(value) => Ok(value),
        Err(_) => serde_norway::from_str(text).map_err(|e| e.to_string()),
    }
}
