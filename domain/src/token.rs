//! The token aggregate: API keys that ECS issues. Only a hash of the secret is
//! ever recorded.

use async_trait::async_trait;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::identity::{Actor, Identity};
use crate::role::Role;

/// The longest token name accepted, in characters.
pub const MAX_TOKEN_NAME: usize = 200;

/// A token as recorded: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenState {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// Unix seconds; `None` never expires.
    pub expires_at: Option<i64>,
    pub issued_by: String,
    /// Who holds the key (see [`Identity`]); absent in tokens issued before
    /// identities were recorded, which then stand for themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    pub revoked: bool,
}

impl TokenState {
    /// The identity behind the key.
    pub fn identity(&self) -> Identity {
        self.identity
            .clone()
            .unwrap_or_else(|| Identity::new(format!("token:{}", self.id)))
    }
}

// Commands are short-lived values; boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum TokenCommand {
    IssueToken {
        id: String,
        name: String,
        role: Role,
        secret_hash: String,
        expires_at: Option<i64>,
        issued_by: Actor,
        /// Unix seconds now, for the expiry check.
        now: i64,
    },
    /// Revokes the token; revoking a revoked token changes nothing.
    RevokeToken,
}

/// What a revocation event holds: the token's complete state after it, or,
/// in messages written before every event carried the complete state, only
/// the token's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Revocation {
    Complete(TokenState),
    IdOnly(RevokedId),
}

/// The id-only form of a revocation (older messages). It takes no other
/// field, so a complete state that fails to decode is an error, not this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedId {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TokenEvent {
    TokenIssued(TokenState),
    /// Carries the complete state (`revoked: true`), so the token loads from
    /// this event alone.
    TokenRevoked(Revocation),
}

impl TokenEvent {
    /// The token's complete state after this event, when the event holds it
    /// (every event written by this version does).
    pub fn state(&self) -> Option<&TokenState> {
        match self {
            TokenEvent::TokenIssued(state)
            | TokenEvent::TokenRevoked(Revocation::Complete(state)) => Some(state),
            TokenEvent::TokenRevoked(Revocation::IdOnly(_)) => None,
        }
    }

    /// The id of the token the event is about.
    pub fn token_id(&self) -> &str {
        match self {
            TokenEvent::TokenIssued(state)
            | TokenEvent::TokenRevoked(Revocation::Complete(state)) => &state.id,
            TokenEvent::TokenRevoked(Revocation::IdOnly(RevokedId { id })) => id,
        }
    }
}

impl DomainEvent for TokenEvent {
    fn event_type(&self) -> String {
        match self {
            TokenEvent::TokenIssued(_) => "TokenIssued".to_owned(),
            TokenEvent::TokenRevoked { .. } => "TokenRevoked".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        "2".to_owned()
    }
}

/// The token aggregate. Every event carries the complete state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub state: Option<TokenState>,
}

#[async_trait]
impl Aggregate for Token {
    type Command = TokenCommand;
    type Event = TokenEvent;
    type Error = DomainError;
    type Services = ();

    fn aggregate_type() -> String {
        "token".to_owned()
    }

    async fn handle(&self, command: TokenCommand, _: &()) -> Result<Vec<TokenEvent>, DomainError> {
        match command {
            TokenCommand::IssueToken {
                id,
                name,
                role,
                secret_hash,
                expires_at,
                issued_by,
                now,
            } => {
                if self.state.is_some() {
                    return Err(DomainError::invalid("id", "a token with this id exists"));
                }
                if name.trim().is_empty() || name.chars().count() > MAX_TOKEN_NAME {
                    return Err(DomainError::invalid("name", "must be 1 to 200 characters"));
                }
                if expires_at.is_some_and(|e| e <= now) {
                    return Err(DomainError::invalid("expires_at", "must be in the future"));
                }
                let identity = Identity::of_issued_key(&id, &issued_by);
                Ok(vec![TokenEvent::TokenIssued(TokenState {
                    id,
                    name,
                    role,
                    secret_hash,
                    expires_at,
                    issued_by: issued_by.name,
                    identity: Some(identity),
                    revoked: false,
                })])
            }
            TokenCommand::RevokeToken => match &self.state {
                None => Err(DomainError::TokenNotFound),
                Some(state) if state.revoked => Ok(vec![]),
                Some(state) => Ok(vec![TokenEvent::TokenRevoked(Revocation::Complete(
                    TokenState {
                        revoked: true,
                        ..state.clone()
                    },
                ))]),
            },
        }
    }

    fn apply(&mut self, event: TokenEvent) {
        match event {
            TokenEvent::TokenIssued(state)
            | TokenEvent::TokenRevoked(Revocation::Complete(state)) => self.state = Some(state),
            TokenEvent::TokenRevoked(Revocation::IdOnly(_)) => {
                if let Some(state) = &mut self.state {
                    state.revoked = true;
                }
            }
        }
    }
}
