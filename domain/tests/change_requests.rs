//! Given/when/then tests of the change request rules.

#![allow(clippy::unwrap_used)]

use cqrs_es::test::TestFramework;
use ecs_domain::change_request::*;
use ecs_domain::{DomainError, NamespaceName, Scope};
use serde_json::json;

fn opened() -> ChangeRequestEvent {
    ChangeRequestEvent::ChangeRequestOpened(ChangeRequestState {
        id: "cr1".into(),
        namespace: NamespaceName::parse("checkout").unwrap(),
        scope: Scope::global(),
        change: ProposedChange::Patch {
            patch: json!({"a": 1}),
        },
        message: "m".into(),
        base_revision: 3,
        author: "alice".into(),
        status: Status::Open,
        decided_by: None,
        reason: None,
    })
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
        author: "alice".into(),
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
async fn a_request_cannot_open_twice() {
    let result = TestFramework::<ChangeRequest>::with(())
        .given(vec![opened()])
        .when_async(open_command())
        .await
        .inspect_result();
    assert!(matches!(result, Err(DomainError::InvalidInput { .. })));
}

#[tokio::test]
async fn another_principal_approves() {
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened()])
        .when_async(ChangeRequestCommand::Approve { by: "bob".into() })
        .await
        .then_expect_events(vec![ChangeRequestEvent::ChangeRequestApproved {
            by: "bob".into(),
        }]);
}

#[tokio::test]
async fn the_author_may_not_approve() {
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened()])
        .when_async(ChangeRequestCommand::Approve { by: "alice".into() })
        .await
        .then_expect_error(DomainError::SelfApproval);
}

#[tokio::test]
async fn a_closed_request_cannot_be_decided_again() {
    for closing in [
        ChangeRequestEvent::ChangeRequestApproved { by: "bob".into() },
        ChangeRequestEvent::ChangeRequestRejected {
            by: "bob".into(),
            reason: "no".into(),
        },
        ChangeRequestEvent::ChangeRequestWithdrawn { by: "alice".into() },
        ChangeRequestEvent::ChangeRequestFailed {
            by: "bob".into(),
            reason: "stale".into(),
        },
    ] {
        let result = TestFramework::<ChangeRequest>::with(())
            .given(vec![opened(), closing])
            .when_async(ChangeRequestCommand::Reject {
                by: "carol".into(),
                reason: String::new(),
            })
            .await
            .inspect_result();
        assert!(
            matches!(result, Err(DomainError::ChangeRequestClosed(_))),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn only_the_author_withdraws() {
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened()])
        .when_async(ChangeRequestCommand::Withdraw { by: "alice".into() })
        .await
        .then_expect_events(vec![ChangeRequestEvent::ChangeRequestWithdrawn {
            by: "alice".into(),
        }]);
    let result = TestFramework::<ChangeRequest>::with(())
        .given(vec![opened()])
        .when_async(ChangeRequestCommand::Withdraw { by: "bob".into() })
        .await
        .inspect_result();
    assert!(matches!(result, Err(DomainError::InvalidInput { .. })));
}

#[tokio::test]
async fn a_failed_application_is_recorded() {
    TestFramework::<ChangeRequest>::with(())
        .given(vec![opened()])
        .when_async(ChangeRequestCommand::Fail {
            by: "bob".into(),
            reason: "stale".into(),
        })
        .await
        .then_expect_events(vec![ChangeRequestEvent::ChangeRequestFailed {
            by: "bob".into(),
            reason: "stale".into(),
        }]);
}

#[tokio::test]
async fn unknown_requests_cannot_be_decided() {
    TestFramework::<ChangeRequest>::with(())
        .given_no_previous_events()
        .when_async(ChangeRequestCommand::Approve { by: "bob".into() })
        .await
        .then_expect_error(DomainError::ChangeRequestNotFound);
}

#[test]
fn a_policy_covers_its_scopes_and_everything_within() {
    let prod: Scope = serde_json::from_value(json!({"env": "prod"})).unwrap();
    let prod_acme: Scope =
        serde_json::from_value(json!({"env": "prod", "tenant": "acme"})).unwrap();
    let dev: Scope = serde_json::from_value(json!({"env": "dev"})).unwrap();
    let policy = ApprovalPolicy {
        scopes: vec![prod.clone()],
    };
    assert!(policy.covers(&prod));
    assert!(policy.covers(&prod_acme));
    assert!(!policy.covers(&dev));
    assert!(!policy.covers(&Scope::global()));
    assert!(ApprovalPolicy::default().covers(&dev));
}
