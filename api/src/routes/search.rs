//! `/v1/search`: configuration values found by their keys and contents,
//! across every namespace and layer the caller may read.
//!
//! Values are masked (through [`Masker`], as every read path) before they
//! are matched, so a search never finds, and so never reveals, a sensitive
//! value its caller may not read.

use axum::Json;
use axum::extract::{Extension, State};
use ecs_domain::{Decision, Reading, Scope};
use ecs_projections::Layers;
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::extract::Params;
use crate::masking::Masker;
use crate::problem::ApiError;
use crate::routes::Problem;
use crate::state::AppState;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;
const MAX_QUERY: usize = 200;

/// What to search for (documentation only).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Words that must all appear in a value's key (its JSON pointer) or in
    /// the value itself, case-insensitive; 1 to 200 characters.
    pub q: String,
    /// The most matches returned, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// One value of one layer's current revision.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchMatch {
    pub namespace: String,
    #[schema(value_type = Object)]
    pub scope: Scope,
    /// The value's JSON pointer in the layer.
    pub pointer: String,
    #[schema(value_type = Object)]
    pub value: Value,
    /// The layer's revision holding the value.
    pub revision: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    /// By namespace, then scope, then pointer.
    pub matches: Vec<SearchMatch>,
    /// More values matched than `limit`: a narrower query finds the rest.
    pub truncated: bool,
}

/// Search the current values of every layer the caller may read, by key and
/// by value.
#[utoipa::path(get, path = "/v1/search", tag = "namespaces",
    params(SearchParams),
    responses(
        (status = 200, body = SearchResults),
        (status = 400, description = "a missing or malformed parameter (the problem names it)", body = Problem),
    ))]
pub async fn search(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<SearchResults>, ApiError> {
    params.allow(&["q", "limit"])?;
    let words = query_words(params.get("q"))?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| invalid("limit", format!("limit must be 1 to {MAX_LIMIT}")))?,
    };
    let mut masker = Masker::new(&app.read, &principal.role, Reading::Record);
    let mut matches = Vec::new();
    let mut truncated = false;
    let mut namespaces = app.read.namespaces().await?;
    namespaces.sort_by(|a, b| a.state.name.as_str().cmp(b.state.name.as_str()));
    'namespaces: for row in namespaces {
        let ns = row.state.name;
        if !principal.role.sees_namespace(&ns) {
            continue;
        }
        let Some((snapshot, _)) = app.read.snapshot(&ns, None, Layers::All, None).await? else {
            continue;
        };
        for layer in snapshot.layers {
            if principal.role.read_layer(&ns, &layer.scope) != Decision::Allow {
                continue;
            }
            let mut values = layer.values;
            masker.values(ns.as_str(), &mut values).await?;
            for (pointer, value) in matching_leaves(&values, &words) {
                if matches.len() == limit {
                    truncated = true;
                    break 'namespaces;
                }
                matches.push(SearchMatch {
                    namespace: ns.to_string(),
                    scope: layer.scope.clone(),
                    pointer,
                    value: value.clone(),
                    revision: layer.revision,
                });
            }
        }
    }
    Ok(Json(SearchResults { matches, truncated }))
}

fn invalid(field: &str, detail: impl Into<String>) -> ApiError {
    ApiError::bad("invalid-parameter", field, detail)
}

/// The query's words, lower-cased: at least one, and a query of at most
/// [`MAX_QUERY`] characters.
fn query_words(q: Option<&str>) -> Result<Vec<String>, ApiError> {
    let q = q.unwrap_or_default();
    let words: Vec<String> = q.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() || q.chars().count() > MAX_QUERY {
        return Err(invalid(
            "q",
            format!("q must hold a word to search for, in 1 to {MAX_QUERY} characters"),
        ));
    }
    Ok(words)
}

/// The leaves of a document (scalars, empty arrays and objects) whose
/// pointer or value holds every word, in document order.
fn matching_leaves<'a>(document: &'a Value, words: &[String]) -> Vec<(String, &'a Value)> {
    let mut out = Vec::new();
    collect(document, String::new(), words, &mut out);
    out
}

fn collect<'a>(
    value: &'a Value,
    pointer: String,
    words: &[String],
    out: &mut Vec<(String, &'a Value)>,
) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (escape(k), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    if children.is_empty() {
        // The document itself is no value of its own to find.
        if pointer.is_empty() {
            return;
        }
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let haystack = format!("{pointer}\n{text}").to_lowercase();
        if words.iter().all(|w| haystack.contains(w.as_str())) {
            out.push((pointer, value));
        }
        return;
    }
    for (key, child) in children {
        collect(child, format!("{pointer}/{key}"), words, out);
    }
}

/// A key as a JSON pointer token (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn words(q: &str) -> Vec<String> {
        query_words(Some(q)).unwrap_or_default()
    }

    #[test]
    fn finds_leaves_by_key_and_by_value() {
        let doc = json!({"cart": {"limit": 40, "banner": "Winter SALE"}, "tags": ["blue", "red"], "a/b": true});
        let keys: Vec<String> = matching_leaves(&doc, &words("sale"))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(keys, ["/cart/banner"]);
        let keys: Vec<String> = matching_leaves(&doc, &words("cart 40"))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(keys, ["/cart/limit"]);
        let keys: Vec<String> = matching_leaves(&doc, &words("red"))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(keys, ["/tags/1"]);
        let keys: Vec<String> = matching_leaves(&doc, &words("a~1b"))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(keys, ["/a~1b"]);
    }

    #[test]
    fn an_empty_or_overlong_query_is_refused() {
        assert!(query_words(None).is_err());
        assert!(query_words(Some("   ")).is_err());
        assert!(query_words(Some(&"x".repeat(MAX_QUERY + 1))).is_err());
    }
}
