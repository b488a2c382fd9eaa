//! `validation`: one global write checked in every context it can change.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use ecs_domain::{EditionName, Scope, TenantId};
use serde_json::{Value, json};

use crate::fixture::*;
use crate::rebuild::*;
use crate::report::*;
use crate::stats::*;
use crate::*;

/// Timed global writes per namespace; the median is reported.
pub(crate) const VALIDATION_WRITES: usize = 21;

/// Target: a global write with `--tenants` tenant layers takes at most this
/// many times a global write with no other layers.
pub(crate) const VALIDATION_TARGET_RATIO: f64 = 10.0;

/// A schema with a rule across keys (`discount` requires `coupon`), so that
/// every context's document is checked as a whole.
pub(crate) fn validation_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "coupon": {"type": "string"},
            "discount": {"type": "integer", "minimum": 0},
            "limits": {"type": "object", "properties": {"rps": {"type": "integer"}}},
            "features": {"type": "object"}
        },
        "dependentRequired": {"discount": ["coupon"]}
    })
}

/// The values of tenant `t`'s layer in the validation benchmark.
pub(crate) fn validation_tenant_values(t: usize) -> Value {
    json!({"discount": t % 50, "limits": {"rps": 100 + t % 7}, "features": {"beta": t.is_multiple_of(2)}})
}

pub(crate) fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The write-time check alone, in process: the global write against
/// `tenants` tenant layers held in memory (no I/O), median of a few runs.
pub(crate) fn validation_check_alone(tenants: usize) -> anyhow::Result<Duration> {
    use ecs_domain::contexts::{LayerWrite, SchemaCheck};
    use ecs_domain::schema::CompiledSchema;
    use ecs_domain::{LayerRef, NamespaceKind, Precedence, json::schema_defaults};

    let schema = validation_schema();
    let compiled = CompiledSchema::compile(&schema)?;
    let defaults = schema_defaults(&schema);
    let precedence = Precedence::default();
    let editions_of = ["standard", "pro", "enterprise"];
    let mut scopes = Vec::new();
    let mut editions = std::collections::BTreeMap::new();
    for t in 0..tenants {
        let tenant = TenantId::parse(format!("v{t:05}"))?;
        editions.insert(tenant.clone(), EditionName::parse(editions_of[t % 3])?);
        scopes.push(Scope {
            tenant: Some(tenant),
            ..Scope::global()
        });
    }
    let values: Vec<Value> = (0..tenants).map(validation_tenant_values).collect();
    let others: Vec<LayerRef<'_>> = scopes
        .iter()
        .zip(&values)
        .map(|(scope, values)| LayerRef {
            scope,
            values,
            revision: 1,
            lock: &[],
        })
        .collect();
    let global = Scope::global();
    let before = json!({"coupon": "C0"});
    let after = json!({"coupon": "C1"});
    let check = SchemaCheck {
        schema: Some((&schema, &compiled)),
        kind: NamespaceKind::Config,
        defaults: &defaults,
        precedence: &precedence,
    };
    let write = LayerWrite {
        before: Some(LayerRef {
            scope: &global,
            values: &before,
            revision: 1,
            lock: &[],
        }),
        after: LayerRef {
            scope: &global,
            values: &after,
            revision: 2,
            lock: &[],
        },
    };
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let violations = check.write_violations(&write, &others, &editions);
        times.push(started.elapsed());
        if !violations.is_empty() {
            bail!("the benchmark's write should pass: {violations:?}");
        }
    }
    Ok(median(&mut times))
}

pub(crate) async fn validation(args: &Args) -> anyhow::Result<()> {
    println!(
        "\n## validation: one global write with {} tenant layers vs one with no other layers",
        args.tenants
    );
    let ecs = Arc::new(Ecs::fresh().await?);
    for ns in ["alone", "wide"] {
        ecs.put(
            &format!("/v1/namespaces/{ns}"),
            &json!({"description": "benchmark", "schema": validation_schema()}),
        )
        .await?;
        ecs.put(
            &format!("/v1/namespaces/{ns}/layer"),
            &json!({"values": {"coupon": "C0", "limits": {"rps": 50}}}),
        )
        .await?;
    }
    let started = Instant::now();
    let editions = ["standard", "pro", "enterprise"];
    let next = Arc::new(AtomicU64::new(0));
    let total = args.tenants as u64;
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (ecs, next) = (ecs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let t = next.fetch_add(1, Ordering::Relaxed);
                if t >= total {
                    return anyhow::Ok(());
                }
                ecs.put(
                    &format!("/v1/tenants/v{t:05}"),
                    &json!({"edition": editions[(t % 3) as usize]}),
                )
                .await?;
                ecs.put(
                    &format!("/v1/namespaces/wide/layer?tenant=v{t:05}"),
                    &json!({"values": validation_tenant_values(t as usize)}),
                )
                .await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    println!(
        "  loaded {} tenants and their layers over HTTP in {:.1} s",
        args.tenants,
        started.elapsed().as_secs_f64()
    );
    let (_client, js) = jetstream_of(&ecs.nats).await?;
    wait_feed_settled(&js, args.timeout()).await?;

    // The two kinds of write alternate, so both see the same background.
    let (mut floor, mut wide) = (Vec::new(), Vec::new());
    for i in 0..VALIDATION_WRITES {
        for (ns, times) in [("alone", &mut floor), ("wide", &mut wide)] {
            let started = Instant::now();
            ecs.call(
                reqwest::Method::PATCH,
                &format!("/v1/namespaces/{ns}/layer"),
                &json!({"values": {"coupon": format!("C{}", i + 1)}}),
            )
            .await?;
            times.push(started.elapsed());
        }
    }
    let (floor, wide) = (median(&mut floor), median(&mut wide));
    let ratio = wide.as_secs_f64() / floor.as_secs_f64();
    let check = validation_check_alone(args.tenants)?;
    let check_floor = validation_check_alone(0)?;
    println!(
        "  global PATCH, {} tenant layers: median {} ({VALIDATION_WRITES} writes)",
        args.tenants,
        ms(wide)
    );
    println!(
        "  floor: global PATCH, no other layers: median {}",
        ms(floor)
    );
    println!("  ECS / floor: {ratio:.1}x (target <= {VALIDATION_TARGET_RATIO}x)");
    println!(
        "  of which the check in every context (in process, no I/O): {} ({} with no other layers)",
        ms(check),
        ms(check_floor)
    );
    args.markdown(&[Row::new(
        format!(
            "validation: one global write, {} tenant layers",
            thousands(args.tenants as f64)
        ),
        format!(
            "median {} over HTTP ({VALIDATION_WRITES} writes); the check in every context alone {}",
            ms(wide),
            ms(check)
        ),
    )
    .floor(format!(
        "median {}: the same write with no other layers (check alone {})",
        ms(floor),
        ms(check_floor)
    ))
    .ratio(format!("{ratio:.1}×"))
    .target(
        format!("≤ {VALIDATION_TARGET_RATIO}×"),
        ratio <= VALIDATION_TARGET_RATIO,
    )])?;
    match Arc::try_unwrap(ecs) {
        Ok(ecs) => ecs.stop().await,
        Err(_) => bail!("the ECS handle is still shared"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// flags: SDK-local evaluation, no request
// ---------------------------------------------------------------------------
