//! The token aggregate: API keys that ECS issues. Only a hash of the secret is
//! ever recorded.

use async_trait::async_trait;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
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
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum TokenCommand {
    IssueToken {
        id: String,
        name: String,
        role: Role,
        secret_hash: String,
        expires_at: Option<i64>,
        issued_by: String,
        /// Unix seconds now, for the expiry check.
        now: i64,
    },
    RevokeToken,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TokenEvent {
    TokenIssued(TokenState),
    TokenRevoked { id: String },
}

impl DomainEvent for TokenEvent {
    fn event_type(&self) -> String {
        match self {
            TokenEvent::TokenIssued(_) => "TokenIssued".to_owned(),
            TokenEvent::TokenRevoked { .. } => "TokenRevoked".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The token aggregate.
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
                Ok(vec![TokenEvent::TokenIssued(TokenState {
                    id,
                    name,
                    role,
                    secret_hash,
                    expires_at,
                    issued_by,
                    revoked: false,
                })])
            }
            TokenCommand::RevokeToken => match &self.state {
                None => Err(DomainError::TokenNotFound),
                Some(state) if state.revoked => Ok(vec![]),
                Some(state) => Ok(vec![TokenEvent::TokenRevoked {
                    id: state.id.clone(),
                }]),
            },
        }
    }

    fn apply(&mut self, event: TokenEvent) {
        match event {
            TokenEvent::TokenIssued(state) => self.state = Some(state),
            TokenEvent::TokenRevoked { .. } => {
                if let Some(state) = &mut self.state {
                    state.revoked = true;
                }
            }
        }
    }
}
