//! The jobs that travel through Redis: small, versioned, tagged, carrying a delivery id only.
//!
//! The payload itself stays in PostgreSQL (`webhook_deliveries.payload`); a worker loads it
//! by id. That keeps Redis small, and means a job can be re-driven without copying data.

use serde::{Deserialize, Serialize};

use crate::ids::{DeliveryId, EventName};

/// What a worker does with a delivery. One Redis queue carries all kinds (see ARCHITECTURE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum JobKind {
    #[serde(rename = "processPullRequest")]
    ProcessPullRequest,
    #[serde(rename = "processReview")]
    ProcessReview,
    #[serde(rename = "processPush")]
    ProcessPush,
    #[serde(rename = "processDeployment")]
    ProcessDeployment,
    #[serde(rename = "processWorkflowRun")]
    ProcessWorkflowRun,
    #[serde(rename = "processInstallation")]
    ProcessInstallation,
    #[serde(rename = "processIssue")]
    ProcessIssue,
}

impl JobKind {
    /// The job that processes a GitHub event, or `None` for events the platform only keeps.
    pub fn for_event(event: &EventName) -> Option<Self> {
        Some(match event.as_str() {
            "pull_request" => Self::ProcessPullRequest,
            "pull_request_review" | "pull_request_review_comment" => Self::ProcessReview,
            "push" => Self::ProcessPush,
            "deployment" | "deployment_status" => Self::ProcessDeployment,
            "workflow_run" | "check_suite" => Self::ProcessWorkflowRun,
            "installation" | "installation_repositories" => Self::ProcessInstallation,
            "issues" => Self::ProcessIssue,
            _ => return None,
        })
    }

    /// The GitHub events this platform processes (the others are stored as `ignored`).
    pub const PROCESSED_EVENTS: [&'static str; 11] = [
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "push",
        "deployment",
        "deployment_status",
        "workflow_run",
        "check_suite",
        "installation",
        "installation_repositories",
        "issues",
    ];

    /// Every job type, in a fixed order.
    pub const ALL: [Self; 7] = [
        Self::ProcessPullRequest,
        Self::ProcessReview,
        Self::ProcessPush,
        Self::ProcessDeployment,
        Self::ProcessWorkflowRun,
        Self::ProcessInstallation,
        Self::ProcessIssue,
    ];

    /// The job type called `name` (as [`JobKind::as_str`] prints it).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProcessPullRequest => "processPullRequest",
            Self::ProcessReview => "processReview",
            Self::ProcessPush => "processPush",
            Self::ProcessDeployment => "processDeployment",
            Self::ProcessWorkflowRun => "processWorkflowRun",
            Self::ProcessInstallation => "processInstallation",
            Self::ProcessIssue => "processIssue",
        }
    }
}

/// A job in Redis. Serialized as `{"v":"1","kind":"processPush","delivery_id":"…"}`; a new shape
/// gets a new `v` variant so jobs already queued keep deserializing during a rolling deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum WebhookJob {
    #[serde(rename = "1")]
    V1 {
        kind: JobKind,
        delivery_id: DeliveryId,
    },
}

impl WebhookJob {
    pub fn new(kind: JobKind, delivery_id: DeliveryId) -> Self {
        Self::V1 { kind, delivery_id }
    }

    pub fn kind(&self) -> JobKind {
        match self {
            Self::V1 { kind, .. } => *kind,
        }
    }

    pub fn delivery_id(&self) -> &DeliveryId {
        match self {
            Self::V1 { delivery_id, .. } => delivery_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_processed_event_routes_to_a_job_and_others_do_not() {
        for event in JobKind::PROCESSED_EVENTS {
            let event = EventName::parse(event).expect("valid");
            assert!(JobKind::for_event(&event).is_some(), "{event}");
        }
        for event in ["ping", "issue_comment", "star", "member"] {
            let event = EventName::parse(event).expect("valid");
            assert_eq!(JobKind::for_event(&event), None, "{event}");
        }
    }

    #[test]
    fn jobs_serialize_to_a_small_versioned_shape() {
        let id = DeliveryId::parse("abc-1").expect("valid");
        let job = WebhookJob::new(JobKind::ProcessPush, id);
        let json = serde_json::to_string(&job).expect("serializes");
        assert_eq!(
            json,
            r#"{"v":"1","kind":"processPush","delivery_id":"abc-1"}"#
        );
        assert_eq!(
            serde_json::from_str::<WebhookJob>(&json).expect("parses"),
            job
        );
    }
}
