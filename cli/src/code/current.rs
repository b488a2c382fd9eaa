//! The server's current configuration, with the revision of every item (the
//! `If-Match` of a later write). Layers come from the change feed
//! (`/v1/feed`), which lists every layer of the namespaces named.

use std::collections::BTreeMap;

use futures::StreamExt as _;
use reqwest::Method;
use serde_json::Value;

use super::model::{Config, LayerSpec, NamespaceSpec, TenantSpec};
use crate::connection::Api;
use crate::exit::{CliError, CliResult};
use crate::scope::Scope;

/// The server's configuration and the revision each item is at.
#[derive(Debug, Default)]
pub struct Current {
    pub config: Config,
    pub tenant_revisions: BTreeMap<String, u64>,
    pub namespace_revisions: BTreeMap<String, u64>,
    pub layer_revisions: BTreeMap<(String, Scope), u64>,
}

fn bad_answer(what: &str) -> CliError {
    CliError::failure(format!("unexpected answer from the server: {what}"))
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Current {
    /// Reads tenants and namespaces, and the layers of `namespaces` (all
    /// namespaces when `None`).
    pub async fn read(api: &Api, namespaces: Option<&[String]>) -> CliResult<Current> {
        let mut current = Current::default();
        let tenants = api.get("/v1/tenants", &[]).await?;
        for tenant in tenants["tenants"]
            .as_array()
            .ok_or_else(|| bad_answer("tenants"))?
        {
            let id = text(tenant, "id").ok_or_else(|| bad_answer("tenant id"))?;
            let spec = TenantSpec {
                name: text(tenant, "name"),
                edition: text(tenant, "edition").ok_or_else(|| bad_answer("edition"))?,
            };
            current
                .tenant_revisions
                .insert(id.clone(), tenant["revision"].as_u64().unwrap_or(0));
            current.config.tenants.insert(id, spec);
        }
        let list = api.get("/v1/namespaces", &[]).await?;
        for ns in list["namespaces"]
            .as_array()
            .ok_or_else(|| bad_answer("namespaces"))?
        {
            let name = text(ns, "name").ok_or_else(|| bad_answer("namespace name"))?;
            if namespaces.is_some_and(|wanted| !wanted.contains(&name)) {
                continue;
            }
            let spec = NamespaceSpec {
                description: text(ns, "description").unwrap_or_default(),
                schema: ns.get("schema").filter(|s| !s.is_null()).cloned(),
                approval: ns.get("approval").filter(|s| !s.is_null()).cloned(),
            };
            current
                .namespace_revisions
                .insert(name.clone(), ns["revision"].as_u64().unwrap_or(0));
            current.config.layers.insert(name.clone(), BTreeMap::new());
            current.config.namespaces.insert(name, spec);
        }
        let names: Vec<String> = current.config.namespaces.keys().cloned().collect();
        for message in feed_snapshot(api, &names).await? {
            if message["kind"] != "layer" {
                continue;
            }
            let (Some(ns), Some(scope)) = (
                text(&message, "namespace"),
                Scope::from_json(&message["scope"]),
            ) else {
                return Err(bad_answer("feed layer"));
            };
            let layer = LayerSpec {
                values: message["values"].clone(),
                lock: message["lock"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect(),
            };
            current.layer_revisions.insert(
                (ns.clone(), scope.clone()),
                message["revision"].as_u64().unwrap_or(0),
            );
            if !layer.is_empty() {
                current
                    .config
                    .layers
                    .entry(ns)
                    .or_default()
                    .insert(scope, layer);
            }
        }
        Ok(current)
    }
}

/// Every current feed message of `namespaces`: the events before `synced`.
async fn feed_snapshot(api: &Api, namespaces: &[String]) -> CliResult<Vec<Value>> {
    if namespaces.is_empty() {
        return Ok(Vec::new());
    }
    let response = api
        .request(Method::GET, "/v1/feed")
        .query(&[("namespaces", namespaces.join(","))])
        .header("Accept", "text/event-stream")
        .send()
        .await
        .map_err(|e| CliError::Unavailable(format!("the server is unreachable: {e}")))?;
    if !response.status().is_success() {
        let status = response.status().as_u16();
        let problem = response.json().await.unwrap_or(Value::Null);
        return Err(CliError::Api { status, problem });
    }
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut messages = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| CliError::Unavailable(format!("the feed broke off: {e}")))?;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let mut kind = "";
            let mut data = String::new();
            for line in event.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    kind = value.trim();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim_start());
                }
            }
            match kind {
                "synced" => return Ok(messages),
                "feed" => messages
                    .push(serde_json::from_str(&data).map_err(|_| bad_answer("feed message"))?),
                _ => {}
            }
        }
    }
    Err(CliError::Unavailable(
        "the feed ended before it was synced".into(),
    ))
}
