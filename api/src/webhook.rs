//! Turns a verified request into a [`NewDelivery`]: headers into typed ids, either content type
//! GitHub uses into the JSON document, the few fields the table indexes, and the projection the
//! worker will parse (`jobs::github::projection`).

use axum::http::{HeaderMap, header::CONTENT_TYPE};
use jobs::{DeliveryId, EventName, deliveries::NewDelivery};
use serde::Deserialize;

use crate::error::ApiError;

pub const EVENT_HEADER: &str = "x-github-event";
pub const DELIVERY_HEADER: &str = "x-github-delivery";
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
pub const HOOK_ID_HEADER: &str = "x-github-hook-id";

/// The largest body accepted (GitHub caps payloads at 25 MB).
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

fn header_str<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(Some)
            .map_err(|_| ApiError::InvalidHeader {
                header: display_name(name),
                reason: "is not visible ASCII".to_owned(),
            }),
    }
}

fn display_name(name: &'static str) -> &'static str {
    match name {
        EVENT_HEADER => "X-GitHub-Event",
        DELIVERY_HEADER => "X-GitHub-Delivery",
        HOOK_ID_HEADER => "X-GitHub-Hook-ID",
        _ => name,
    }
}

pub fn event(headers: &HeaderMap) -> Result<EventName, ApiError> {
    let raw =
        header_str(headers, EVENT_HEADER)?.ok_or(ApiError::MissingHeader("X-GitHub-Event"))?;
    EventName::parse(raw.trim()).map_err(|e| ApiError::InvalidHeader {
        header: "X-GitHub-Event",
        reason: e.to_string(),
    })
}

pub fn delivery_id(headers: &HeaderMap) -> Result<DeliveryId, ApiError> {
    let raw = header_str(headers, DELIVERY_HEADER)?
        .ok_or(ApiError::MissingHeader("X-GitHub-Delivery"))?;
    DeliveryId::parse(raw.trim()).map_err(|e| ApiError::InvalidHeader {
        header: "X-GitHub-Delivery",
        reason: e.to_string(),
    })
}

/// The JSON document of the body, as text, per the content type.
fn json_text(headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::InvalidJson("the body is not UTF-8".to_owned())),
        "application/x-www-form-urlencoded" => {
            let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                .map_err(|e| ApiError::InvalidJson(format!("the form body is malformed: {e}")))?;
            fields
                .into_iter()
                .find(|(k, _)| k == "payload")
                .map(|(_, v)| v)
                .ok_or(ApiError::MissingFormPayload)
        }
        _ => Err(ApiError::UnsupportedContentType(content_type.to_owned())),
    }
}

#[derive(Deserialize)]
struct WithId {
    id: Option<i64>,
}

/// The fields the table keeps in columns. Anything else stays in the payload.
#[derive(Deserialize)]
struct Envelope {
    action: Option<String>,
    installation: Option<WithId>,
    repository: Option<WithId>,
}

impl Envelope {
    const NONE: Self = Self {
        action: None,
        installation: None,
        repository: None,
    };
}

/// Checks the document is a JSON object and reads the envelope fields, without building a tree.
fn envelope(json: &str) -> Result<Envelope, ApiError> {
    if !json.trim_start().starts_with('{') {
        return Err(ApiError::InvalidJson("expected a JSON object".to_owned()));
    }
    match serde_json::from_str::<Envelope>(json) {
        Ok(envelope) => Ok(envelope),
        Err(e) if e.is_data() => {
            // Valid JSON whose envelope fields have unexpected types: keep it, index nothing.
            serde_json::from_str::<serde::de::IgnoredAny>(json)
                .map_err(|e| ApiError::InvalidJson(e.to_string()))?;
            Ok(Envelope::NONE)
        }
        Err(e) => Err(ApiError::InvalidJson(e.to_string())),
    }
}

/// The envelope and the projection of a document: where the event has a projection, one pass
/// over the 25 KB makes it (and proves the text is one JSON object) and the envelope is read from
/// its ~1 KB, which holds the envelope's members.
fn envelope_and_projection(
    event: &EventName,
    json: &str,
) -> Result<(Envelope, Option<String>), ApiError> {
    match jobs::github::projection::project(event.as_str(), json) {
        Some(projection) => {
            let envelope = serde_json::from_str::<Envelope>(&projection).unwrap_or(Envelope::NONE);
            Ok((envelope, Some(projection)))
        }
        None => Ok((envelope(json)?, None)),
    }
}

/// PostgreSQL's `jsonb` cannot hold U+0000. Such characters (rare; e.g. in commit messages)
/// become U+FFFD so the delivery is kept rather than refused.
fn storable(json: String) -> Result<String, ApiError> {
    if !json.contains("\\u0000") {
        return Ok(json);
    }
    fn scrub(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
            serde_json::Value::Array(items) => items.iter_mut().for_each(scrub),
            serde_json::Value::Object(map) => {
                let keys: Vec<String> = map.keys().filter(|k| k.contains('\0')).cloned().collect();
                for key in keys {
                    if let Some(v) = map.remove(&key) {
                        map.insert(key.replace('\0', "\u{FFFD}"), v);
                    }
                }
                map.values_mut().for_each(scrub);
            }
            _ => {}
        }
    }
    let mut value: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    scrub(&mut value);
    serde_json::to_string(&value).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Builds the delivery from a request whose signature is already verified.
pub fn parse(
    headers: &HeaderMap,
    event: EventName,
    delivery_id: DeliveryId,
    body: &[u8],
) -> Result<NewDelivery, ApiError> {
    let json = storable(json_text(headers, body)?)?;
    let (envelope, projection) = envelope_and_projection(&event, &json)?;
    let hook_id = header_str(headers, HOOK_ID_HEADER)
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse().ok());
    Ok(NewDelivery {
        projection,
        delivery_id,
        event,
        action: envelope.action,
        installation_id: envelope.installation.and_then(|i| i.id),
        repository_id: envelope.repository.and_then(|r| r.id),
        hook_id,
        payload_json: json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(content_type).expect("ascii"),
        );
        h
    }

    fn ids() -> (EventName, DeliveryId) {
        (
            EventName::parse("pull_request").expect("valid"),
            DeliveryId::parse("d-1").expect("valid"),
        )
    }

    /// An event the worker parses (its envelope is read from the projection) and one it only
    /// keeps (read from the whole document).
    fn both_kinds_of_event() -> [EventName; 2] {
        ["pull_request", "star"].map(|e| EventName::parse(e).expect("valid"))
    }

    #[test]
    fn reads_envelope_fields_from_json() {
        for event in both_kinds_of_event() {
            let id = DeliveryId::parse("d-1").expect("valid");
            let body = br#"{"action":"opened","installation":{"id":7},"repository":{"id":9,"name":"x"},"n":[1]}"#;
            let d = parse(
                &headers("application/json; charset=utf-8"),
                event.clone(),
                id,
                body,
            )
            .expect("ok");
            assert_eq!(d.action.as_deref(), Some("opened"), "{event}");
            assert_eq!(d.installation_id, Some(7));
            assert_eq!(d.repository_id, Some(9));
            assert_eq!(d.payload_json.as_bytes(), body);
            assert_eq!(d.projection.is_some(), event.as_str() == "pull_request");
        }
    }

    #[test]
    fn reads_the_payload_field_of_a_form() {
        let (event, id) = ids();
        let body =
            serde_urlencoded::to_string([("payload", r#"{"action":"closed"}"#)]).expect("enc");
        let d = parse(
            &headers("application/x-www-form-urlencoded"),
            event,
            id,
            body.as_bytes(),
        )
        .expect("ok");
        assert_eq!(d.action.as_deref(), Some("closed"));
        assert_eq!(d.payload_json, r#"{"action":"closed"}"#);
    }

    #[test]
    fn refuses_non_objects_bad_json_and_other_types() {
        let (event, id) = ids();
        for event in both_kinds_of_event() {
            for body in [&b"[1,2]"[..], b"{\"a\":", b"", b"null", b"{\"a\":1} x"] {
                let err = parse(
                    &headers("application/json"),
                    event.clone(),
                    id.clone(),
                    body,
                )
                .expect_err("not an object");
                assert_eq!(err.code(), "invalid_json");
            }
        }
        let err =
            parse(&headers("text/plain"), event.clone(), id.clone(), b"{}").expect_err("type");
        assert_eq!(err.code(), "unsupported_content_type");
        let err = parse(
            &headers("application/x-www-form-urlencoded"),
            event,
            id,
            b"a=1",
        )
        .expect_err("no payload");
        assert_eq!(err.code(), "missing_form_payload");
    }

    #[test]
    fn keeps_odd_envelope_types_and_nul_characters() {
        for event in both_kinds_of_event() {
            let id = DeliveryId::parse("d-1").expect("valid");
            let body = br#"{"action":5,"repository":{"id":"x"},"m":"a\u0000b"}"#;
            let d = parse(&headers("application/json"), event.clone(), id, body).expect("kept");
            assert_eq!(d.action, None, "{event}");
            assert_eq!(d.repository_id, None);
            assert!(d.payload_json.contains("a\u{FFFD}b"), "{}", d.payload_json);
        }
    }
}
