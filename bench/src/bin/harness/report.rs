//! The Markdown rows `bench/run.sh` writes into `docs/benchmarks.md`.

use std::io::Write as _;
use std::path::Path;

pub(crate) const TABLE_HEADER: &str =
    "| benchmark | ECS | floor | ECS / floor | target | verdict |";
pub(crate) const NONE: &str = "—";

/// One row of the `--markdown` table; empty cells read "—".
pub(crate) struct Row {
    pub(crate) benchmark: String,
    pub(crate) ecs: String,
    pub(crate) floor: String,
    pub(crate) ratio: String,
    pub(crate) target: String,
    pub(crate) verdict: &'static str,
}

impl Row {
    pub(crate) fn new(benchmark: impl Into<String>, ecs: impl Into<String>) -> Row {
        Row {
            benchmark: benchmark.into(),
            ecs: ecs.into(),
            floor: NONE.to_owned(),
            ratio: NONE.to_owned(),
            target: NONE.to_owned(),
            verdict: NONE,
        }
    }

    pub(crate) fn floor(mut self, floor: impl Into<String>) -> Row {
        self.floor = floor.into();
        self
    }

    pub(crate) fn ratio(mut self, ratio: impl Into<String>) -> Row {
        self.ratio = ratio.into();
        self
    }

    /// The target and whether the measured figure meets it (PASS or MISS).
    pub(crate) fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.verdict = if met { "PASS" } else { "MISS" };
        self
    }

    pub(crate) fn markdown(&self) -> String {
        let cells = [
            self.benchmark.as_str(),
            &self.ecs,
            &self.floor,
            &self.ratio,
            &self.target,
            self.verdict,
        ];
        let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
        format!("| {} |", cells.join(" | "))
    }
}

/// Appends `rows` to the Markdown file at `path` (created if missing),
/// continuing the results table the file ends with, or starting one.
pub(crate) fn append_rows(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    let mut text = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        text.push('\n');
    }
    // The first line of the table the file ends with, if it ends with one.
    let trailing_table = existing
        .lines()
        .rev()
        .take_while(|l| l.starts_with('|'))
        .last();
    if trailing_table != Some(TABLE_HEADER) {
        if !existing.trim().is_empty() && !existing.ends_with("\n\n") {
            text.push('\n');
        }
        text.push_str(TABLE_HEADER);
        text.push_str("\n| --- | --- | --- | --- | --- | --- |\n");
    }
    for row in rows {
        text.push_str(&row.markdown());
        text.push('\n');
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())?;
    Ok(())
}

/// `x` rounded to an integer, with thousands separators: `1,000,000`.
pub(crate) fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return format!("{x}");
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x.round() < 0.0 {
        out.insert(0, '-');
    }
    out
}
