//! The approval workflow: a change request held for approval, and the three
//! commands on two aggregates that approving it takes.
//!
//! Approving first records the decision on the request (`applying`), so a
//! concurrent reject or withdraw is refused from then on; then the change is
//! written to its layer, expecting the revision the request was opened at and
//! under a command id of its own, so resuming an interrupted approval never
//! applies the change twice; then the layer's outcome concludes the request
//! (`approved` or `failed`). Every rule on who may decide what is the
//! aggregates' own ([`ChangeRequest`](ecs_domain::change_request::ChangeRequest),
//! [`Layer`](ecs_domain::Layer)); this module only sequences the commands and
//! answers in [`DomainError`]s.

use std::future::Future;

use ecs_domain::change_request::{self, ChangeRequestCommand, LayerOutcome, ProposedChange};
use ecs_domain::identity::Actor;
use ecs_domain::layer::layer_id;
use ecs_domain::{DomainError, LayerCommand, NamespaceName, Scope};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::bus::Committed;

/// Runs the workflow's commands: the API runs them with its idempotency and
/// read-your-writes rules. The outer error is the service failing, the inner
/// one an aggregate refusing the command.
pub trait Runner: Sync {
    type Error;

    /// Runs a command on the change request `aggregate_id`.
    fn change_request(
        &self,
        aggregate_id: &str,
        command: ChangeRequestCommand,
    ) -> impl Future<Output = Result<Result<Committed, DomainError>, Self::Error>> + Send;

    /// Runs the layer write that applies a request, de-duplicated by
    /// `command_id`.
    fn layer(
        &self,
        command: LayerCommand,
        command_id: String,
    ) -> impl Future<Output = Result<Result<Committed, DomainError>, Self::Error>> + Send;

    /// The outcome of `command_id` on the aggregate `aggregate_id` if it was
    /// applied, once everything the aggregate holds is visible.
    fn applied(
        &self,
        command_id: &str,
        aggregate_id: &str,
    ) -> impl Future<Output = Result<Option<Committed>, Self::Error>> + Send;
}

/// The request being decided, as the read model or the aggregate holds it.
#[derive(Debug, Clone, Copy)]
pub struct Proposal<'a> {
    pub id: &'a str,
    pub namespace: &'a NamespaceName,
    pub scope: &'a Scope,
    pub change: &'a ProposedChange,
    pub message: &'a str,
    pub base_revision: u64,
    pub author: &'a str,
}

impl Proposal<'_> {
    /// The request's aggregate id: `<tenant or _>.<id>`.
    pub fn aggregate_id(&self) -> String {
        change_request::aggregate_id(self.id, self.scope)
    }

    /// The command id of the layer write that applies the request: one per
    /// request, so resuming an approval never applies the change twice.
    pub fn apply_command_id(&self) -> String {
        format!("change-request-{}", self.id)
    }

    /// The layer write that applies the request.
    pub fn layer_command(&self) -> LayerCommand {
        LayerCommand {
            namespace: self.namespace.clone(),
            scope: self.scope.clone(),
            action: self.change.clone().into(),
            message: format!(
                "{} (change request {} by {})",
                self.message, self.id, self.author
            ),
            expected_revision: Some(self.base_revision),
        }
    }
}

/// The id of a new change request: derived from the write's idempotency key
/// when it has one, so a retried write opens (and answers) the same request;
/// else random.
pub fn new_request_id(idempotency_key: Option<&str>) -> String {
    match idempotency_key {
        Some(key) => {
            let digest = Sha256::digest(format!("change-request\0{key}").as_bytes());
            hex::encode(&digest[..8])
        }
        None => {
            let mut bytes = [0u8; 8];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            hex::encode(bytes)
        }
    }
}

/// What approving a request came to, once the decision was taken.
#[derive(Debug, Clone, PartialEq)]
pub enum Approval {
    /// The change is in the layer; the request is `approved`.
    Applied(Committed),
    /// The layer refused the change (it moved since the request was opened,
    /// or the change no longer passes its schema or a lock); the request is
    /// `failed`, or stays `applying` when the refusal was transient.
    Refused(DomainError),
}

/// Approves a request: decides, applies, concludes. `Ok(Err(_))` is the
/// request refusing the decision (closed already, self-approval).
pub async fn approve<R: Runner>(
    runner: &R,
    request: Proposal<'_>,
    by: Actor,
) -> Result<Result<Approval, DomainError>, R::Error> {
    let id = request.aggregate_id();
    let decision = ChangeRequestCommand::Approve { by: by.clone() };
    if let Err(refusal) = runner.change_request(&id, decision).await? {
        return Ok(Err(refusal));
    }
    let approval = match apply(runner, request).await? {
        Ok(committed) => Approval::Applied(committed),
        Err(refusal) => Approval::Refused(refusal),
    };
    let outcome = match &approval {
        Approval::Applied(_) => LayerOutcome::Applied,
        Approval::Refused(refusal) => LayerOutcome::Refused(refusal.clone()),
    };
    let conclusion = ChangeRequestCommand::Conclude { by, outcome };
    if let Err(refusal) = runner.change_request(&id, conclusion).await? {
        return Ok(Err(refusal));
    }
    Ok(Ok(approval))
}

/// Applies an approved request's change to its layer. A refusal as stale is
/// checked against what the layer holds first: the layer may have moved on
/// because this very request was applied already (by a concurrent or an
/// interrupted approval), which is then its outcome.
async fn apply<R: Runner>(
    runner: &R,
    request: Proposal<'_>,
) -> Result<Result<Committed, DomainError>, R::Error> {
    let command_id = request.apply_command_id();
    let outcome = runner
        .layer(request.layer_command(), command_id.clone())
        .await?;
    let Err(DomainError::StaleRevision { .. }) = &outcome else {
        return Ok(outcome);
    };
    let layer = layer_id(request.namespace, request.scope);
    Ok(match runner.applied(&command_id, &layer).await? {
        Some(done) => Ok(done),
        None => outcome,
    })
}

/// Rejects a request: closes it without applying it.
pub async fn reject<R: Runner>(
    runner: &R,
    request: Proposal<'_>,
    by: Actor,
    reason: String,
) -> Result<Result<Committed, DomainError>, R::Error> {
    let command = ChangeRequestCommand::Reject { by, reason };
    runner
        .change_request(&request.aggregate_id(), command)
        .await
}

/// Withdraws a request: its author closes it.
pub async fn withdraw<R: Runner>(
    runner: &R,
    request: Proposal<'_>,
    by: Actor,
) -> Result<Result<Committed, DomainError>, R::Error> {
    let command = ChangeRequestCommand::Withdraw { by };
    runner
        .change_request(&request.aggregate_id(), command)
        .await
}
