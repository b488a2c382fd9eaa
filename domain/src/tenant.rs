//! The tenant aggregate: a tenant and its edition.

use async_trait::async_trait;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::ids::{EditionName, TenantId};
use crate::revision::check_expected;
use crate::state::TenantState;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum TenantCommand {
    /// Creates the tenant or changes its name or edition.
    DefineTenant {
        id: TenantId,
        name: Option<String>,
        edition: EditionName,
        expected_revision: Option<u64>,
    },
    /// Erases the tenant: its data keys are destroyed, so its values can no
    /// longer be read anywhere, and the tenant can no longer be used.
    EraseTenant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TenantEvent {
    TenantDefined {
        id: TenantId,
        revision: u64,
        name: Option<String>,
        edition: EditionName,
    },
    /// The tenant's data was erased (who and when are the message's actor and
    /// time). Like every event, it carries the complete state.
    TenantErased {
        id: TenantId,
        revision: u64,
        edition: EditionName,
    },
}

impl DomainEvent for TenantEvent {
    fn event_type(&self) -> String {
        match self {
            TenantEvent::TenantDefined { .. } => "TenantDefined",
            TenantEvent::TenantErased { .. } => "TenantErased",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The longest tenant display name accepted, in characters.
pub const MAX_TENANT_NAME: usize = 200;

/// The tenant aggregate. Every event carries the complete state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub state: Option<TenantState>,
}

impl Tenant {
    pub fn revision(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.revision)
    }
}

#[async_trait]
impl Aggregate for Tenant {
    type Command = TenantCommand;
    type Event = TenantEvent;
    type Error = DomainError;
    type Services = ();

    fn aggregate_type() -> String {
        "tenant".to_owned()
    }

    async fn handle(
        &self,
        command: Self::Command,
        _: &(),
    ) -> Result<Vec<TenantEvent>, DomainError> {
        let (id, name, edition, expected_revision) = match command {
            TenantCommand::EraseTenant => {
                return match &self.state {
                    None => Err(DomainError::TenantNotFound(String::new())),
                    Some(state) if state.erased => Ok(vec![]),
                    Some(state) => Ok(vec![TenantEvent::TenantErased {
                        id: state.id.clone(),
                        revision: state.revision + 1,
                        edition: state.edition.clone(),
                    }]),
                };
            }
            TenantCommand::DefineTenant {
                id,
                name,
                edition,
                expected_revision,
            } => (id, name, edition, expected_revision),
        };
        if self.state.as_ref().is_some_and(|s| s.erased) {
            return Err(DomainError::TenantErased(id.to_string()));
        }
        check_expected(expected_revision, self.revision())?;
        if name
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_TENANT_NAME)
        {
            return Err(DomainError::invalid(
                "name",
                "must be at most 200 characters",
            ));
        }
        if let Some(state) = &self.state
            && state.name == name
            && state.edition == edition
        {
            return Ok(vec![]);
        }
        Ok(vec![TenantEvent::TenantDefined {
            id,
            revision: self.revision() + 1,
            name,
            edition,
        }])
    }

    fn apply(&mut self, event: TenantEvent) {
        match event {
            TenantEvent::TenantDefined {
                id,
                revision,
                name,
                edition,
            } => {
                self.state = Some(TenantState {
                    id,
                    name,
                    edition,
                    revision,
                    erased: false,
                });
            }
            TenantEvent::TenantErased {
                id,
                revision,
                edition,
            } => {
                self.state = Some(TenantState {
                    id,
                    name: None,
                    edition,
                    revision,
                    erased: true,
                });
            }
        }
    }
}
