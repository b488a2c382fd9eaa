//! Given/when/then tests of the token (API key) rules.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use cqrs_es::test::TestFramework;
use ecs_domain::token::*;
use ecs_domain::{Actor, DomainError, Identity, NamespaceName, Role};

const NOW: i64 = 1_800_000_000;

fn admin() -> Actor {
    Actor {
        name: "admin".into(),
        role: Role::Admin,
        identity: Identity::new("admin"),
    }
}

/// An editor of `checkout` holding a key of the identity `alice`.
fn alice() -> Actor {
    Actor {
        name: "token:alice".into(),
        role: Role::Editor {
            namespaces: BTreeSet::from([NamespaceName::parse("checkout").unwrap()]),
            tenant: None,
        },
        identity: Identity::new("alice"),
    }
}

fn issue(id: &str, name: &str, expires_at: Option<i64>, by: Actor) -> TokenCommand {
    TokenCommand::IssueToken {
        id: id.into(),
        name: name.into(),
        role: Role::Viewer {
            namespaces: BTreeSet::new(),
            tenant: None,
        },
        secret_hash: "ab".repeat(32),
        expires_at,
        issued_by: by,
        now: NOW,
    }
}

fn issued(id: &str, identity: &str) -> TokenState {
    TokenState {
        id: id.into(),
        name: "ci".into(),
        role: Role::Viewer {
            namespaces: BTreeSet::new(),
            tenant: None,
        },
        secret_hash: "ab".repeat(32),
        expires_at: Some(NOW + 60),
        issued_by: "admin".into(),
        identity: Some(Identity::new(identity)),
        revoked: false,
    }
}

#[test]
fn an_admin_issues_a_key_that_is_its_own_identity() {
    TestFramework::<Token>::with(())
        .given_no_previous_events()
        .when(issue("t1", "ci", Some(NOW + 60), admin()))
        .then_expect_events(vec![TokenEvent::TokenIssued(issued("t1", "token:t1"))]);
}

#[test]
fn a_key_issued_by_a_non_admin_belongs_to_its_issuer() {
    let mut state = issued("t2", "alice");
    state.issued_by = "token:alice".into();
    state.expires_at = None;
    TestFramework::<Token>::with(())
        .given_no_previous_events()
        .when(issue("t2", "ci", None, alice()))
        .then_expect_events(vec![TokenEvent::TokenIssued(state)]);
}

#[test]
fn an_id_is_issued_once() {
    TestFramework::<Token>::with(())
        .given(vec![TokenEvent::TokenIssued(issued("t1", "token:t1"))])
        .when(issue("t1", "ci", None, admin()))
        .then_expect_error(DomainError::invalid("id", "a token with this id exists"));
}

#[test]
fn a_name_is_one_to_two_hundred_characters() {
    for name in ["", "   ", &"n".repeat(MAX_TOKEN_NAME + 1)] {
        TestFramework::<Token>::with(())
            .given_no_previous_events()
            .when(issue("t1", name, None, admin()))
            .then_expect_error(DomainError::invalid("name", "must be 1 to 200 characters"));
    }
    let longest = "n".repeat(MAX_TOKEN_NAME);
    let mut state = issued("t1", "token:t1");
    state.name = longest.clone();
    state.expires_at = None;
    TestFramework::<Token>::with(())
        .given_no_previous_events()
        .when(issue("t1", &longest, None, admin()))
        .then_expect_events(vec![TokenEvent::TokenIssued(state)]);
}

#[test]
fn an_expiry_must_lie_in_the_future() {
    for expires_at in [NOW, NOW - 1] {
        TestFramework::<Token>::with(())
            .given_no_previous_events()
            .when(issue("t1", "ci", Some(expires_at), admin()))
            .then_expect_error(DomainError::invalid("expires_at", "must be in the future"));
    }
}

#[test]
fn revoking_records_the_complete_revoked_state() {
    TestFramework::<Token>::with(())
        .given(vec![TokenEvent::TokenIssued(issued("t1", "token:t1"))])
        .when(TokenCommand::RevokeToken)
        .then_expect_events(vec![TokenEvent::TokenRevoked(Revocation::Complete(
            TokenState {
                revoked: true,
                ..issued("t1", "token:t1")
            },
        ))]);
}

#[test]
fn revoking_a_revoked_key_changes_nothing() {
    TestFramework::<Token>::with(())
        .given(vec![
            TokenEvent::TokenIssued(issued("t1", "token:t1")),
            TokenEvent::TokenRevoked(Revocation::IdOnly(RevokedId { id: "t1".into() })),
        ])
        .when(TokenCommand::RevokeToken)
        .then_expect_events(vec![]);
}

#[test]
fn revoking_an_unknown_key_is_refused() {
    TestFramework::<Token>::with(())
        .given_no_previous_events()
        .when(TokenCommand::RevokeToken)
        .then_expect_error(DomainError::TokenNotFound);
}
