//! `POST /webhooks/github`: verify, store, hand off — in that order, answering only once the
//! delivery is committed in PostgreSQL.

use std::{sync::Arc, time::Instant};

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header::CONTENT_LENGTH},
    response::{IntoResponse, Response},
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    error::ApiError,
    ingest::{IngestError, Stored},
    signature::SignatureError,
    startup::AppState,
    webhook::{self, MAX_BODY_BYTES, SIGNATURE_HEADER},
};

/// The memory budget shared by webhook bodies, in KiB permits.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    total_kib: u32,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        let total_kib = u32::try_from(bytes / 1024).unwrap_or(u32::MAX).max(1);
        Self {
            permits: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Waits until `declared` bytes (the whole limit when the length is not declared) fit.
    async fn reserve(&self, declared: Option<u64>) -> Option<OwnedSemaphorePermit> {
        let bytes = declared.unwrap_or(MAX_BODY_BYTES as u64);
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib);
        // The semaphore is never closed.
        self.permits.clone().acquire_many_owned(kib).await.ok()
    }
}

#[derive(Serialize)]
struct Accepted<'a> {
    code: &'a str,
    message: &'a str,
    delivery_id: &'a str,
    status: &'a str,
}

#[tracing::instrument(name = "webhook", skip_all, fields(delivery_id, event))]
pub async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let mut event_label = "unverified".to_owned();
    let (response, code) = match handle(&state, &headers, body, &mut event_label).await {
        Ok(answer) => answer,
        Err(error) => {
            if error.status().is_client_error() {
                tracing::info!(code = error.code(), "delivery refused");
            }
            let code = error.code();
            (error.into_response(), code)
        }
    };
    state
        .metrics
        .count_request(&event_label, response.status().as_u16(), code);
    state
        .metrics
        .ingest_seconds
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    event_label: &mut String,
) -> Result<(Response, &'static str), ApiError> {
    let too_large = ApiError::PayloadTooLarge {
        limit: MAX_BODY_BYTES,
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large);
    }
    // Bodies being read and stored share a memory budget: beyond it, requests wait here (their
    // bytes stay in the kernel) instead of growing the heap. Held until the answer.
    let _budget = state.body_budget.reserve(declared).await;
    let body = match tokio::time::timeout(
        state.body_timeout,
        Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large),
        Ok(Err(_)) => return Err(ApiError::BodyRead),
        Err(_) => return Err(ApiError::BodyTimeout(state.body_timeout)),
    };

    state
        .secrets
        .verify(headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes()), &body)
        .map_err(|e| match e {
            SignatureError::Missing => ApiError::MissingSignature,
            SignatureError::Malformed | SignatureError::Mismatch => ApiError::InvalidSignature,
        })?;

    let event = webhook::event(headers)?;
    *event_label = event.as_str().to_owned();
    let delivery_id = webhook::delivery_id(headers)?;
    let span = tracing::Span::current();
    span.record("delivery_id", delivery_id.as_str());
    span.record("event", event.as_str());

    let is_ping = event.as_str() == "ping";
    let delivery = webhook::parse(headers, event, delivery_id.clone(), &body)?;
    drop(body);

    let stored = state.ingestor.submit(delivery).await.map_err(|e| match e {
        IngestError::Database(cause) => ApiError::Unavailable(cause),
        IngestError::Closed => ApiError::Unavailable("shutting down".to_owned()),
    })?;
    tracing::info!(outcome = ?stored, "delivery stored");

    let (status, code, message, state_name) = match stored {
        Stored::Duplicate => (
            StatusCode::OK,
            "duplicate",
            "this delivery id is already stored; nothing changed",
            "duplicate",
        ),
        _ if is_ping => (
            StatusCode::OK,
            "pong",
            "ping received and stored",
            "ignored",
        ),
        Stored::Queued => (
            StatusCode::ACCEPTED,
            "queued",
            "delivery stored and queued for processing",
            "queued",
        ),
        Stored::Pending => (
            StatusCode::ACCEPTED,
            "pending",
            "delivery stored; it will be queued for processing shortly",
            "pending",
        ),
        Stored::Ignored => (
            StatusCode::ACCEPTED,
            "ignored",
            "delivery stored; this event type is not processed",
            "ignored",
        ),
    };
    let response = (
        status,
        Json(Accepted {
            code,
            message,
            delivery_id: delivery_id.as_str(),
            status: state_name,
        }),
    )
        .into_response();
    Ok((response, code))
}
