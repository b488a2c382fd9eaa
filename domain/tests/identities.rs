//! Given/when/then tests of the identity behind issued API keys.

#![allow(clippy::unwrap_used)]

use cqrs_es::test::TestFramework;
use ecs_domain::token::Revocation;
use ecs_domain::*;

fn issue(id: &str, issued_by: Actor) -> TokenCommand {
    TokenCommand::IssueToken {
        id: id.into(),
        name: "key".into(),
        role: Role::Auditor,
        secret_hash: "00".into(),
        expires_at: None,
        issued_by,
        now: 0,
    }
}

fn issued(id: &str, issued_by: &str, identity: &str) -> TokenEvent {
    TokenEvent::TokenIssued(TokenState {
        id: id.into(),
        name: "key".into(),
        role: Role::Auditor,
        secret_hash: "00".into(),
        expires_at: None,
        issued_by: issued_by.into(),
        identity: Some(Identity::new(identity)),
        revoked: false,
    })
}

#[tokio::test]
async fn a_key_issued_by_a_tenant_admin_belongs_to_the_tenant_admin() {
    let tenant_admin = Actor {
        name: "token:ta".into(),
        role: Role::TenantAdmin {
            tenant: TenantId::parse("acme").unwrap(),
        },
        identity: Identity::new("jwt:carol"),
    };
    TestFramework::<Token>::with(())
        .given_no_previous_events()
        .when_async(issue("k1", tenant_admin))
        .await
        .then_expect_events(vec![issued("k1", "token:ta", "jwt:carol")]);
}

#[tokio::test]
async fn a_key_issued_by_an_admin_is_an_identity_of_its_own() {
    let admin = Actor {
        name: "admin".into(),
        role: Role::Admin,
        identity: Identity::new("admin"),
    };
    TestFramework::<Token>::with(())
        .given_no_previous_events()
        .when_async(issue("k1", admin))
        .await
        .then_expect_events(vec![issued("k1", "admin", "token:k1")]);
}

#[tokio::test]
async fn a_revocation_carries_the_complete_state() {
    let mut revoked = match issued("k1", "admin", "token:k1") {
        TokenEvent::TokenIssued(state) => state,
        TokenEvent::TokenRevoked(_) => unreachable!(),
    };
    revoked.revoked = true;
    TestFramework::<Token>::with(())
        .given(vec![issued("k1", "admin", "token:k1")])
        .when_async(TokenCommand::RevokeToken)
        .await
        .then_expect_events(vec![TokenEvent::TokenRevoked(Revocation::Complete(
            revoked,
        ))]);
}

#[tokio::test]
async fn revoking_twice_changes_nothing() {
    let mut revoked = match issued("k1", "admin", "token:k1") {
        TokenEvent::TokenIssued(state) => state,
        TokenEvent::TokenRevoked(_) => unreachable!(),
    };
    revoked.revoked = true;
    // Only the last message is given, as the store loads it.
    TestFramework::<Token>::with(())
        .given(vec![TokenEvent::TokenRevoked(Revocation::Complete(
            revoked,
        ))])
        .when_async(TokenCommand::RevokeToken)
        .await
        .then_expect_events(vec![]);
}

#[test]
fn an_older_id_only_revocation_still_decodes() {
    let event: TokenEvent =
        serde_json::from_value(serde_json::json!({"TokenRevoked": {"id": "k1"}})).unwrap();
    assert_eq!(event.token_id(), "k1");
    assert!(event.state().is_none());
}

#[test]
fn a_key_without_a_recorded_identity_stands_for_itself() {
    let TokenEvent::TokenIssued(mut state) = issued("k1", "token:ta", "x") else {
        unreachable!()
    };
    state.identity = None;
    assert_eq!(state.identity(), Identity::new("token:k1"));
}
