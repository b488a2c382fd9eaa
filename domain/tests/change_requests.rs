//! Given/when/then tests of the change request rules.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use cqrs_es::Aggregate;
use cqrs_es::test::TestFramework;
use ecs_domain::change_request::*;
use ecs_domain::{Actor, ApprovalPolicy, DomainError, Identity, NamespaceName, Role, Scope};
use serde_json::json;

/// An editor of `checkout` whose credential `name` belongs to `identity`.
fn actor(name: &str, identity: &str) -> Actor {
    Actor {
        name: name.into(),
        role: Role::Editor {
            namespaces: BTreeSet::from([NamespaceName::parse("checkout").unwrap()]),
            tenant: None,
        },
        identity: Identity::new(identity),
    }
}

fn alice() -> Actor {
    actor("token:alice", "alice")
}

/// Another key of alice's, issued by alice.
fn alices_other_key() -> Actor {
    actor("token:alice2", "alice")
}

fn bob() -> Actor {
    actor("token:bob", "bob")
}

fn state(status: Status, decided_by: Option<&str>, reason: Option<&str>) -> ChangeRequestState {
    ChangeRequestState {
        id: "cr1".into(),
        namespace: NamespaceName::parse("checkout").unwrap(),
        scope: Scope::global(),
        change: ProposedChange::Patch {
            patch: json!({"a": 1}),
        },
        message: "m".into(),
        base_revision: 3,
        author: "token:alice".into(),
        author_identity: Some(Identity::new("alice")),
        status,
        decided_by: decided_by.map(Into::into),
        reason: reason.map(Into::into),
    }
}

fn opened() -> ChangeRequestEvent {
    ChangeRequestEvent::ChangeRequestOpened(state(Status::Open, None, None))
}

fn approving() -> ChangeRequestEvent {
    ChangeRequestEvent::ChangeRequestApproving(state(Status::Applying, Some("token:bob"), None))
}

fn open_command() -> ChangeRequestCommand {
    ChangeRequestCommand::Open {
        id: "cr1".into(),
        namespace: NamespaceName::parse("checkout").unwrap(),
        scope: Scope::global(),
        change: ProposedChange::Patch {
            patch: json!({"a": 1}),
        },
        message: "m".into(),
        base_revision: 3,
        author: alice(),
    }
}

#[tokio::test]
async fn a_request_opens() {
    TestFramework::<ChangeRequest>::with(())
        .given_no_previous_events()
        .when_async(open_command())
        .await
        .then_expect_events(vec![opened()]);
}

#[tokio::test]
async fn opening_the_same_request_again_changes_nothing() {
    // A retried write (same idempotency key, so the same id) opens nothing new.
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened()])
        .when_async(open_command())
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn another_request_cannot_take_an_existing_id() {
    let mut other = open_command();
    if let ChangeRequestCommand::Open { author, .. } = &mut other {
        *author = bob();
    }
    let result = TestFramework::<ChangeRequest>::with(())
        .given(vec![opened()])
        .when_async(other)
        .await
        .inspect_result();
    assert!(matches!(result, Err(DomainError::InvalidInput { .. })));
}

#[tokio::test]
async fn another_identity_approves_and_the_request_is_applying() {
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened()])
        .when_async(ChangeRequestCommand::Approve { by: bob() })
        .await
        .then_expect_events(vec![approving()]);
}

#[tokio::test]
async fn the_author_may_not_approve() {
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened()])
        .when_async(ChangeRequestCommand::Approve { by: alice() })
        .await
        .then_expect_error(DomainError::SelfApproval);
}

#[tokio::test]
async fn another_key_of_the_authors_identity_may_not_approve() {
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened()])
        .when_async(ChangeRequestCommand::Approve {
            by: alices_other_key(),
        })
        .await
        .then_expect_error(DomainError::SelfApproval);
}

#[tokio::test]
async fn a_request_opened_before_identities_compares_names() {
    let mut legacy = state(Status::Open, None, None);
    legacy.author_identity = None;
    // Such an author stands for itself: its name is its identity.
    TestFramework::<ChangeRequest>::with(())
        .given(vec![ChangeRequestEvent::ChangeRequestOpened(legacy)])
        .when_async(ChangeRequestCommand::Approve {
            by: actor("token:alice", "token:alice"),
        })
        .await
        .then_expect_error(DomainError::SelfApproval);
}

#[tokio::test]
async fn approving_an_applying_request_again_resumes_it() {
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened(), approving()])
        .when_async(ChangeRequestCommand::Approve { by: bob() })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn an_applying_request_cannot_be_rejected_or_withdrawn() {
    for command in [
        ChangeRequestCommand::Reject {
            by: bob(),
            reason: "no".into(),
        },
        ChangeRequestCommand::Withdraw { by: alice() },
    ] {
        TestFramework::<ChangeRequest>::with(())
            .given(vec![opened(), approving()])
            .when_async(command)
            .await
            .then_expect_error(DomainError::ChangeRequestClosed("being applied".into()));
    }
}

#[tokio::test]
async fn an_applied_change_concludes_approved() {
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened(), approving()])
        .when_async(ChangeRequestCommand::Conclude {
            by: bob(),
            outcome: LayerOutcome::Applied,
        })
        .await
        .then_expect_events(vec![ChangeRequestEvent::ChangeRequestApproved(
            Decided::Complete(state(Status::Approved, Some("token:bob"), None)),
        )]);
}

#[tokio::test]
async fn a_refused_change_concludes_failed_with_the_reason() {
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened(), approving()])
        .when_async(ChangeRequestCommand::Conclude {
            by: bob(),
            outcome: LayerOutcome::Refused(DomainError::StaleRevision {
                expected: 3,
                actual: 4,
            }),
        })
        .await
        .then_expect_events(vec![ChangeRequestEvent::ChangeRequestFailed(
            Decided::Complete(state(
                Status::Failed,
                Some("token:bob"),
                Some("the layer changed since the request was opened"),
            )),
        )]);
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened(), approving()])
        .when_async(ChangeRequestCommand::Conclude {
            by: bob(),
            outcome: LayerOutcome::Refused(DomainError::SchemaViolations(vec![])),
        })
        .await
        .then_expect_events(vec![ChangeRequestEvent::ChangeRequestFailed(
            Decided::Complete(state(
                Status::Failed,
                Some("token:bob"),
                Some("the change no longer passes the schema or a lock"),
            )),
        )]);
}

#[tokio::test]
async fn a_transient_refusal_records_nothing() {
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened(), approving()])
        .when_async(ChangeRequestCommand::Conclude {
            by: bob(),
            outcome: LayerOutcome::Refused(DomainError::Unavailable("down".into())),
        })
        .await
        .then_expect_error(DomainError::Unavailable("down".into()));
}

#[tokio::test]
async fn only_an_applying_request_concludes() {
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened()])
        .when_async(ChangeRequestCommand::Conclude {
            by: bob(),
            outcome: LayerOutcome::Applied,
        })
        .await
        .then_expect_error(DomainError::ChangeRequestClosed("open".into()));
}

#[tokio::test]
async fn a_rejected_request_cannot_be_approved() {
    // The other half of the approve/reject race: whichever the request
    // records first wins, the other is refused.
    let rejected = ChangeRequestEvent::ChangeRequestRejected(Decided::Complete(state(
        Status::Rejected,
        Some("token:bob"),
        Some("no"),
    )));
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened(), rejected])
        .when_async(ChangeRequestCommand::Approve { by: bob() })
        .await
        .then_expect_error(DomainError::ChangeRequestClosed("rejected".into()));
}

#[tokio::test]
async fn a_closed_request_cannot_be_decided_again() {
    let closings = [
        ChangeRequestEvent::ChangeRequestApproved(Decided::Complete(state(
            Status::Approved,
            Some("token:bob"),
            None,
        ))),
        ChangeRequestEvent::ChangeRequestRejected(Decided::Complete(state(
            Status::Rejected,
            Some("token:bob"),
            Some("no"),
        ))),
        ChangeRequestEvent::ChangeRequestWithdrawn(Decided::Complete(state(
            Status::Withdrawn,
            Some("token:alice"),
            None,
        ))),
        ChangeRequestEvent::ChangeRequestFailed(Decided::Complete(state(
            Status::Failed,
            Some("token:bob"),
            Some("stale"),
        ))),
        // The older id-only forms close the request too.
        ChangeRequestEvent::ChangeRequestApproved(Decided::ByOnly(DecidedBy {
            by: "bob".into(),
            reason: None,
        })),
    ];
    for closing in closings {
        for command in [
            ChangeRequestCommand::Reject {
                by: bob(),
                reason: String::new(),
            },
            ChangeRequestCommand::Approve { by: bob() },
        ] {
            let result = TestFramework::<ChangeRequest>::with(())
                .given(vec![opened(), closing.clone()])
                .when_async(command)
                .await
                .inspect_result();
            assert!(
                matches!(result, Err(DomainError::ChangeRequestClosed(_))),
                "{result:?}"
            );
        }
    }
}

#[tokio::test]
async fn only_the_authors_identity_withdraws() {
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened()])
        .when_async(ChangeRequestCommand::Withdraw {
            by: alices_other_key(),
        })
        .await
        .then_expect_events(vec![ChangeRequestEvent::ChangeRequestWithdrawn(
            Decided::Complete(state(Status::Withdrawn, Some("token:alice2"), None)),
        )]);
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened()])
        .when_async(ChangeRequestCommand::Withdraw { by: bob() })
        .await
        .then_expect_error(DomainError::NotAuthor);
}

#[tokio::test]
async fn unknown_requests_cannot_be_decided() {
    TestFramework::<ChangeRequest>::with(())
        .given_no_previous_events()
        .when_async(ChangeRequestCommand::Approve { by: bob() })
        .await
        .then_expect_error(DomainError::ChangeRequestNotFound);
}

#[test]
fn older_closing_events_still_decode_and_apply() {
    let events: Vec<ChangeRequestEvent> = serde_json::from_value(json!([
        {"ChangeRequestApproved": {"by": "bob"}},
        {"ChangeRequestRejected": {"by": "bob", "reason": "no"}},
    ]))
    .unwrap();
    let mut request = ChangeRequest::default();
    request.apply(opened());
    request.apply(events[1].clone());
    let closed = request.state.unwrap();
    assert_eq!(closed.status, Status::Rejected);
    assert_eq!(closed.decided_by.as_deref(), Some("bob"));
    assert_eq!(closed.reason.as_deref(), Some("no"));
    assert!(events[0].state().is_none());
}

fn scope(value: serde_json::Value) -> Scope {
    serde_json::from_value(value).unwrap()
}

#[test]
fn a_policy_covers_every_layer_that_can_change_a_document_inside_its_scopes() {
    let policy = ApprovalPolicy {
        scopes: vec![scope(json!({"env": "prod"}))],
    };
    // Inside the scope.
    assert!(policy.covers(&scope(json!({"env": "prod"}))));
    assert!(policy.covers(&scope(json!({"env": "prod", "tenant": "acme"}))));
    // Stronger layers that override prod values for some prod contexts.
    assert!(policy.covers(&scope(json!({"tenant": "acme"}))));
    assert!(policy.covers(&scope(json!({"service": "api", "edition": "pro"}))));
    // Weaker layers whose values show through prod.
    assert!(policy.covers(&Scope::global()));
    // Layers that never apply to a prod context.
    assert!(!policy.covers(&scope(json!({"env": "dev"}))));
    assert!(!policy.covers(&scope(json!({"env": "dev", "tenant": "acme"}))));
    assert!(ApprovalPolicy::default().covers(&scope(json!({"env": "dev"}))));
}

#[test]
fn a_policy_on_a_tenant_covers_what_reaches_that_tenant() {
    let policy = ApprovalPolicy {
        scopes: vec![scope(json!({"env": "prod", "tenant": "acme"}))],
    };
    assert!(policy.covers(&scope(json!({"tenant": "acme"}))));
    assert!(policy.covers(&scope(json!({"edition": "pro"}))));
    assert!(!policy.covers(&scope(json!({"tenant": "globex"}))));
    assert!(!policy.covers(&scope(json!({"env": "dev", "tenant": "acme"}))));
}

#[tokio::test]
async fn a_change_too_large_to_store_concludes_failed() {
    // Deterministic like a refusal: approving again would never fit either.
    let refusal = DomainError::TooLarge("70000 bytes; at most 65536".into());
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened(), approving()])
        .when_async(ChangeRequestCommand::Conclude {
            by: bob(),
            outcome: LayerOutcome::Refused(refusal.clone()),
        })
        .await
        .then_expect_events(vec![ChangeRequestEvent::ChangeRequestFailed(
            Decided::Complete(state(
                Status::Failed,
                Some("token:bob"),
                Some(&refusal.to_string()),
            )),
        )]);
}
