//! Every event carries its aggregate's complete state, so an aggregate loads
//! from its last message alone (the event store reads only that message).
//! For every aggregate type, and a history that produces every event variant,
//! the aggregate restored from each command's events alone (after a JSON
//! round trip, as the store keeps them) equals the aggregate replayed from the
//! start.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;

use cqrs_es::{Aggregate, DomainEvent};
use ecs_domain::change_request::*;
use ecs_domain::ports::MemoryConfig;
use ecs_domain::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

/// Runs `commands` in order; after each accepted one, checks that its events
/// alone restore the aggregate. Returns the event types produced.
async fn check<A>(
    commands: Vec<A::Command>,
    services: impl Fn(&A) -> A::Services,
) -> BTreeSet<String>
where
    A: Aggregate + PartialEq + Debug,
    A::Event: Serialize + DeserializeOwned + Clone + Debug,
    A::Error: Debug,
{
    let mut replayed = A::default();
    let mut seen = BTreeSet::new();
    for command in commands {
        let events = replayed
            .handle(command, &services(&replayed))
            .await
            .unwrap();
        assert!(
            !events.is_empty(),
            "every command in the table changes something"
        );
        let mut alone = A::default();
        for event in events {
            seen.insert(event.event_type());
            let stored = serde_json::to_value(&event).unwrap();
            alone.apply(serde_json::from_value(stored).unwrap());
            replayed.apply(event);
        }
        assert_eq!(
            alone, replayed,
            "the last message alone restores the aggregate"
        );
    }
    seen
}

fn ns() -> NamespaceName {
    NamespaceName::parse("checkout").unwrap()
}

fn scope(value: serde_json::Value) -> Scope {
    serde_json::from_value(value).unwrap()
}

/// A world with the namespace, tenant `acme` and the layer's own history so
/// far (a roll back reads an old revision).
fn world(layer: Option<&LayerState>, history: &[LayerState]) -> Services {
    let mut config = MemoryConfig::default();
    config.put_namespace(NamespaceState {
        name: ns(),
        kind: NamespaceKind::Config,
        description: String::new(),
        schema: Some(json!({"type": "object"})),
        approval: None,
        revision: 1,
    });
    config.put_tenant(TenantState {
        id: TenantId::parse("acme").unwrap(),
        name: None,
        edition: EditionName::parse("pro").unwrap(),
        revision: 1,
        erased: false,
    });
    for state in history {
        config.put_layer(state.clone());
    }
    if let Some(layer) = layer {
        config.put_layer(layer.clone());
    }
    Services {
        reader: Arc::new(config),
        precedence: Precedence::default(),
    }
}

fn admin() -> Actor {
    Actor {
        name: "admin".into(),
        role: Role::Admin,
        identity: Identity::new("admin"),
    }
}

fn editor(name: &str) -> Actor {
    Actor {
        name: format!("token:{name}"),
        role: Role::Editor {
            namespaces: BTreeSet::from([ns()]),
            tenant: None,
        },
        identity: Identity::new(name),
    }
}

#[tokio::test]
async fn namespaces_load_from_their_last_message() {
    let define = |description: &str| NamespaceCommand::DefineNamespace {
        name: ns(),
        kind: NamespaceKind::Config,
        description: description.into(),
        schema: Some(json!({"type": "object"})),
        approval: Some(ApprovalPolicy::default()),
        expected_revision: None,
    };
    let seen = check::<Namespace>(vec![define("one"), define("two")], |_| world(None, &[])).await;
    assert_eq!(seen, BTreeSet::from(["NamespaceDefined".to_owned()]));
}

#[tokio::test]
async fn tenants_load_from_their_last_message() {
    let define = |edition: &str| TenantCommand::DefineTenant {
        id: TenantId::parse("acme").unwrap(),
        name: Some("Acme".into()),
        edition: EditionName::parse(edition).unwrap(),
        expected_revision: None,
    };
    let seen = check::<Tenant>(
        vec![define("free"), define("pro"), TenantCommand::EraseTenant],
        |_| (),
    )
    .await;
    assert_eq!(
        seen,
        BTreeSet::from(["TenantDefined".to_owned(), "TenantErased".to_owned()])
    );
}

#[tokio::test]
async fn layers_load_from_their_last_message() {
    let command = |action: LayerAction| LayerCommand {
        namespace: ns(),
        scope: scope(json!({"env": "prod", "tenant": "acme"})),
        action,
        message: "m".into(),
        expected_revision: None,
    };
    let history = std::sync::Mutex::new(Vec::<LayerState>::new());
    let seen = check::<Layer>(
        vec![
            command(LayerAction::Replace {
                values: json!({"a": 1, "b": {"c": 2}}),
                lock: Some(vec!["/a".into()]),
            }),
            command(LayerAction::Patch {
                patch: json!({"b": {"c": null, "d": 3}}),
            }),
            command(LayerAction::Clear),
            command(LayerAction::RollBack { revision: 2 }),
        ],
        |layer| {
            let mut history = history.lock().unwrap();
            if let Some(state) = &layer.state {
                history.push(state.clone());
            }
            world(layer.state.as_ref(), &history)
        },
    )
    .await;
    assert_eq!(seen, BTreeSet::from(["LayerChanged".to_owned()]));
}

#[tokio::test]
async fn tokens_load_from_their_last_message() {
    let seen = check::<Token>(
        vec![
            TokenCommand::IssueToken {
                id: "t1".into(),
                name: "ci".into(),
                role: Role::Auditor,
                secret_hash: "00".into(),
                expires_at: None,
                issued_by: admin(),
                now: 0,
            },
            TokenCommand::RevokeToken,
        ],
        |_| (),
    )
    .await;
    assert_eq!(
        seen,
        BTreeSet::from(["TokenIssued".to_owned(), "TokenRevoked".to_owned()])
    );
}

#[tokio::test]
async fn a_token_revoked_and_loaded_from_its_last_message_revokes_again_as_a_no_op() {
    let mut token = Token::default();
    for event in token
        .handle(
            TokenCommand::IssueToken {
                id: "t1".into(),
                name: "ci".into(),
                role: Role::Auditor,
                secret_hash: "00".into(),
                expires_at: None,
                issued_by: admin(),
                now: 0,
            },
            &(),
        )
        .await
        .unwrap()
    {
        token.apply(event);
    }
    let revoked = token.handle(TokenCommand::RevokeToken, &()).await.unwrap();
    let mut loaded = Token::default();
    for event in revoked {
        loaded.apply(event);
    }
    // Before, the revocation held only the id: a second revoke answered
    // "token not found".
    assert_eq!(
        loaded.handle(TokenCommand::RevokeToken, &()).await,
        Ok(vec![])
    );
}

#[tokio::test]
async fn change_requests_load_from_their_last_message() {
    let open = |id: &str| ChangeRequestCommand::Open {
        id: id.into(),
        namespace: ns(),
        scope: scope(json!({"tenant": "acme"})),
        change: ProposedChange::Replace {
            values: json!({"a": 1}),
            lock: None,
        },
        message: "m".into(),
        base_revision: 0,
        author: editor("alice"),
    };
    let mut seen = BTreeSet::new();
    let histories = vec![
        vec![
            open("cr1"),
            ChangeRequestCommand::Approve { by: editor("bob") },
            ChangeRequestCommand::Conclude {
                by: editor("bob"),
                outcome: LayerOutcome::Applied,
            },
        ],
        vec![
            open("cr2"),
            ChangeRequestCommand::Approve { by: editor("bob") },
            ChangeRequestCommand::Conclude {
                by: editor("bob"),
                outcome: LayerOutcome::Refused(DomainError::StaleRevision {
                    expected: 0,
                    actual: 1,
                }),
            },
        ],
        vec![
            open("cr3"),
            ChangeRequestCommand::Reject {
                by: editor("bob"),
                reason: "no".into(),
            },
        ],
        vec![
            open("cr4"),
            ChangeRequestCommand::Withdraw {
                by: editor("alice"),
            },
        ],
    ];
    for commands in histories {
        seen.extend(check::<ChangeRequest>(commands, |_| ()).await);
    }
    let every_variant: BTreeSet<String> = [
        "ChangeRequestOpened",
        "ChangeRequestApproving",
        "ChangeRequestApproved",
        "ChangeRequestFailed",
        "ChangeRequestRejected",
        "ChangeRequestWithdrawn",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(seen, every_variant);
}
