//! `flags`: SDK-local flag evaluation.

use std::time::Instant;

use serde_json::{Value, json};

use crate::fixture::*;
use crate::report::*;
use crate::*;

/// Evaluates flags in the Rust SDK from its local state: a static flag, a
/// targeted rule and a percentage rollout, for rotating users of one tenant.
pub(crate) async fn flags(args: &Args) -> anyhow::Result<()> {
    println!("\n## flags: SDK-local evaluation (ecs-client Client::flag), one thread");
    let ecs = Ecs::fresh().await?;
    ecs.put("/v1/namespaces/flags", &json!({"kind": "flags"}))
        .await?;
    ecs.put("/v1/tenants/acme", &json!({"edition": "pro"}))
        .await?;
    ecs.put(
        "/v1/namespaces/flags/layer",
        &json!({"values": {"flags": {
            "banner": {"state": "ENABLED", "variants": {"a": "hello", "b": "bye"}, "defaultVariant": "a"},
            "new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                "targeting": {"if": [{"ends_with": [{"var": "email"}, "@acme.example"]}, "on", null]}},
            "rollout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                "targeting": {"fractional": [["on", 25], ["off", 75]]}}
        }}}),
    )
    .await?;
    let client =
        ecs_client::Client::connect(ecs_client::ClientSettings::new(ecs.nats.url(), ["flags"])?)
            .await?;
    let contexts: Vec<serde_json::Map<String, Value>> = (0..1000)
        .map(|i| {
            json!({"targetingKey": format!("user-{i}"), "tenant": "acme", "email": format!("u{i}@acme.example")})
                .as_object()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let keys = ["banner", "new-checkout", "rollout"];
    // Warm up, and check that every flag evaluates.
    for context in &contexts {
        for key in keys {
            client.flag(None, key, context)?;
        }
    }
    let started = Instant::now();
    let mut evaluated = 0u64;
    while started.elapsed() < args.duration() {
        for context in &contexts {
            for key in keys {
                std::hint::black_box(client.flag(None, key, context)?);
                evaluated += 1;
            }
        }
    }
    let ns = started.elapsed().as_nanos() as f64 / evaluated as f64;
    println!("  {evaluated} evaluations: {ns:.0} ns per flag (target < {FLAG_TARGET_NS:.0} ns)");
    args.markdown(&[Row::new(
        "SDK-local flag evaluation (static, targeted, rollout)",
        format!("{ns:.0} ns/flag"),
    )
    .target(
        format!("< {FLAG_TARGET_NS:.0} ns/flag"),
        ns.is_finite() && ns < FLAG_TARGET_NS,
    )])?;
    client.close();
    ecs.stop().await;
    Ok(())
}
