//! No file imports, through others, a file that imports it: within each crate
//! the modules form a graph without cycles, so any one of them can be read,
//! and changed, knowing only what it imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, by module path (`lib` for the crate root).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("below src");
            let mut parts: Vec<String> = relative
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            let name = match parts.as_slice() {
                [one] if one == "lib" || one == "main" => "lib".to_owned(),
                _ => parts.join("::"),
            };
            out.insert(name, path);
        }
    }
    out
}

/// The source without comments and without its `#[cfg(test)] mod tests`.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("readable source file");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules of the same crate that `module` names through `crate::`.
fn imports(module: &str, source: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let add = |path: Vec<&str>, out: &mut BTreeSet<String>| {
        for len in (1..=path.len()).rev() {
            let candidate = path[..len].join("::");
            if known.contains_key(&candidate) {
                if candidate != module && !module.starts_with(&format!("{candidate}::")) {
                    out.insert(candidate);
                }
                return;
            }
        }
    };
    for (at, _) in source.match_indices("crate::") {
        let rest = &source[at + "crate::".len()..];
        // `crate::{a, b::c}` or `crate::a::{b, c}`: each item under its prefix.
        let prefix_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        if let Some(group) = rest[prefix_len..].strip_prefix('{') {
            let prefix = rest[..prefix_len].trim_end_matches("::");
            let group = group.split('}').next().unwrap_or("");
            for item in group.split(',') {
                let item = item.trim();
                let full = if prefix.is_empty() {
                    item.to_owned()
                } else {
                    format!("{prefix}::{item}")
                };
                let path: Vec<&str> = full.split("::").collect();
                add(path, &mut out);
            }
            continue;
        }
        let path: Vec<&str> = rest
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .next()
            .unwrap_or("")
            .split("::")
            .filter(|p| !p.is_empty())
            .collect();
        add(path, &mut out);
    }
    out
}

/// A cycle in the graph, if there is one, as the modules along it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = path.iter().position(|p| p == node).unwrap_or(0);
                let mut found = path[from..].to_vec();
                found.push(node.to_owned());
                return Some(found);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, marks, path) {
                return Some(found);
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(found) = visit(node, graph, &mut marks, &mut vec![]) {
            return Some(found);
        }
    }
    None
}

fn graph_of(krate: &str) -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src");
    let known = modules(&src);
    known
        .iter()
        .map(|(name, path)| (name.clone(), imports(name, &code(path), &known)))
        .collect()
}

#[test]
fn no_crate_has_an_import_cycle_between_its_files() {
    for krate in ["domain", "commands", "projections", "api", "sdk", "cli"] {
        let graph = graph_of(krate);
        assert!(graph.len() > 3, "{krate}: its modules were not found");
        if let Some(found) = cycle(&graph) {
            panic!("{krate}: import cycle {}", found.join(" -> "));
        }
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let known: BTreeMap<String, PathBuf> = ["lib", "state", "routes", "routes::layers"]
        .into_iter()
        .map(|m| (m.to_owned(), PathBuf::new()))
        .collect();
    assert_eq!(
        imports(
            "routes::layers",
            "use crate::state::{AppState, Effect};\nuse crate::{routes::x, state};",
            &known
        ),
        // A module may name its parent; it is not an import of another file.
        ["state".to_owned()].into()
    );
    // Items grouped under a module path are imports of the modules they name.
    assert_eq!(
        imports("state", "use crate::routes::{layers, Problem};", &known),
        ["routes".to_owned(), "routes::layers".to_owned()].into()
    );
}
