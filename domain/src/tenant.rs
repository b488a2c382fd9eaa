//! The tenant aggregate: a tenant and its edition.

use async_trait::async_trait;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::ids::{EditionName, TenantId};
use crate::namespace::check_expected;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantState {
    pub id: TenantId,
    #[serde(default)]
    pub name: Option<String>,
    pub edition: EditionName,
    pub revision: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum TenantCommand {
    /// Creates the tenant or changes its name or edition.
    DefineTenant {
        id: TenantId,
        name: Option<String>,
        edition: EditionName,
        expected_revision: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TenantEvent {
    TenantDefined {
        id: TenantId,
        revision: u64,
        name: Option<String>,
        edition: EditionName,
    },
}

impl DomainEvent for TenantEvent {
    fn event_type(&self) -> String {
        "TenantDefined".to_owned()
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
        let TenantCommand::DefineTenant {
            id,
            name,
            edition,
            expected_revision,
        } = command;
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
        let TenantEvent::TenantDefined {
            id,
            revision,
            name,
            edition,
        } = event;
        self.state = Some(TenantState {
            id,
            name,
            edition,
            revision,
        });
    }
}
