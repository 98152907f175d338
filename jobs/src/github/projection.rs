//! The fields of a stored payload that the parsers read, picked out by PostgreSQL.
//!
//! Why: a worker used to load each delivery as `payload::text`, and turning a ~25 KB `jsonb`
//! back into text is the largest single cost PostgreSQL has per job (≈ 79 µs for a
//! `pull_request`; this projection ≈ 35 µs, and the worker parses ~1 KB instead of 22 KB). The
//! trees here mirror the `Deserialize` structs of [`crate::github`]; a test parses every fixture
//! both ways and requires the same records, so a field added to a struct but not here is caught.
//!
//! The projection is built as `json` (text) rather than `jsonb`, so nested objects are not
//! rebuilt at every level. Absent and `null` members are dropped (`json_strip_nulls`): the
//! structs treat a missing optional field like `null`. A member that is not an object where the
//! tree expects one is passed through unchanged, so a malformed payload still fails to parse.

use std::sync::LazyLock;

/// What to keep of a JSON value.
#[derive(Debug, Clone, Copy)]
enum Keep {
    /// The value as it is.
    All,
    /// Only these members of an object.
    Fields(&'static [(&'static str, Keep)]),
}

const ALL: Keep = Keep::All;

const ACCOUNT: Keep = Keep::Fields(&[("id", ALL), ("login", ALL), ("type", ALL)]);

const GIT_REF: Keep = Keep::Fields(&[("ref", ALL), ("sha", ALL)]);

/// `github::Repository` and `github::PushRepository` read the same member.
const REPOSITORY: Keep = Keep::Fields(&[
    ("id", ALL),
    ("name", ALL),
    ("full_name", ALL),
    ("private", ALL),
    ("archived", ALL),
    ("default_branch", ALL),
    ("owner", ACCOUNT),
    ("updated_at", ALL),
    ("pushed_at", ALL),
]);

/// `github::Envelope`: every repository event is parsed as one first.
const ENVELOPE: &[(&str, Keep)] = &[
    ("action", ALL),
    (
        "installation",
        Keep::Fields(&[("id", ALL), ("account", ACCOUNT)]),
    ),
    ("repository", REPOSITORY),
    ("organization", ACCOUNT),
    ("sender", ACCOUNT),
];

const PULL_REQUEST_ID: Keep = Keep::Fields(&[("id", ALL)]);

/// The members each processed repository event adds to the envelope. Events not listed
/// (installation events: rare and small) are read whole.
const EVENTS: &[(&str, &[(&str, Keep)])] = &[
    (
        "pull_request",
        &[
            ("number", ALL),
            (
                "pull_request",
                Keep::Fields(&[
                    ("id", ALL),
                    ("number", ALL),
                    ("title", ALL),
                    ("state", ALL),
                    ("draft", ALL),
                    ("merged", ALL),
                    ("user", ACCOUNT),
                    ("created_at", ALL),
                    ("updated_at", ALL),
                    ("closed_at", ALL),
                    ("merged_at", ALL),
                    ("merge_commit_sha", ALL),
                    ("merged_by", ACCOUNT),
                    ("body", ALL),
                    ("head", GIT_REF),
                    ("base", GIT_REF),
                    ("additions", ALL),
                    ("deletions", ALL),
                    ("changed_files", ALL),
                    ("commits", ALL),
                ]),
            ),
        ],
    ),
    (
        "pull_request_review",
        &[
            (
                "review",
                Keep::Fields(&[
                    ("id", ALL),
                    ("user", ACCOUNT),
                    ("state", ALL),
                    ("submitted_at", ALL),
                    ("commit_id", ALL),
                ]),
            ),
            ("pull_request", PULL_REQUEST_ID),
        ],
    ),
    (
        "pull_request_review_comment",
        &[
            (
                "comment",
                Keep::Fields(&[
                    ("id", ALL),
                    ("pull_request_review_id", ALL),
                    ("user", ACCOUNT),
                    ("created_at", ALL),
                    ("commit_id", ALL),
                ]),
            ),
            ("pull_request", PULL_REQUEST_ID),
        ],
    ),
    (
        "issues",
        &[(
            "issue",
            Keep::Fields(&[
                ("id", ALL),
                ("number", ALL),
                ("title", ALL),
                ("state", ALL),
                ("labels", ALL),
                ("created_at", ALL),
                ("updated_at", ALL),
                ("closed_at", ALL),
                ("user", ACCOUNT),
            ]),
        )],
    ),
    (
        "push",
        &[
            ("ref", ALL),
            ("after", ALL),
            ("deleted", ALL),
            ("commits", ALL),
            ("head_commit", ALL),
        ],
    ),
    ("deployment", DEPLOYMENT_EVENT),
    ("deployment_status", DEPLOYMENT_EVENT),
    (
        "workflow_run",
        &[(
            "workflow_run",
            Keep::Fields(&[
                ("id", ALL),
                ("name", ALL),
                ("workflow_id", ALL),
                ("head_sha", ALL),
                ("head_branch", ALL),
                ("event", ALL),
                ("status", ALL),
                ("conclusion", ALL),
                ("run_number", ALL),
                ("run_attempt", ALL),
                ("created_at", ALL),
                ("updated_at", ALL),
                ("run_started_at", ALL),
            ]),
        )],
    ),
    (
        "check_suite",
        &[(
            "check_suite",
            Keep::Fields(&[
                ("id", ALL),
                ("head_sha", ALL),
                ("head_branch", ALL),
                ("status", ALL),
                ("conclusion", ALL),
                ("app", Keep::Fields(&[("name", ALL)])),
                ("created_at", ALL),
                ("updated_at", ALL),
            ]),
        )],
    ),
];

const DEPLOYMENT_EVENT: &[(&str, Keep)] = &[
    (
        "deployment",
        Keep::Fields(&[
            ("id", ALL),
            ("sha", ALL),
            ("ref", ALL),
            ("task", ALL),
            ("environment", ALL),
            ("production_environment", ALL),
            ("creator", ACCOUNT),
            ("created_at", ALL),
            ("updated_at", ALL),
        ]),
    ),
    (
        "deployment_status",
        Keep::Fields(&[
            ("id", ALL),
            ("state", ALL),
            ("environment", ALL),
            ("creator", ACCOUNT),
            ("created_at", ALL),
            ("updated_at", ALL),
        ]),
    ),
];

/// Joined after `webhook_deliveries` (or any row source with a `payload` column): the payload
/// read from its TOAST storage and decompressed once, as `p`. Without it every `->` of the
/// projection would decompress the whole payload again (measured: 10 members cost 123 µs a row
/// instead of 11 µs). `OFFSET 0` keeps the planner from inlining the subquery.
pub const DETOASTED_PAYLOAD: &str = "LATERAL (SELECT payload #> '{}' AS p OFFSET 0) AS detoasted";

/// A SQL expression over the column `event` and the `p` of [`DETOASTED_PAYLOAD`]: the text the
/// parsers need of the delivery (the whole payload for events without a tree).
pub fn payload_text_sql() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let mut sql = String::from("CASE event");
        for (event, fields) in EVENTS {
            let members = ENVELOPE.iter().chain(fields.iter());
            sql.push_str(&format!(
                " WHEN '{}' THEN json_strip_nulls({})::text",
                checked(event),
                object(&[], members)
            ));
        }
        sql.push_str(" ELSE p::text END");
        sql
    });
    &SQL
}

/// The member of the payload at `path`. `#>` walks the stored containers in place; a chain of
/// `->` would copy every container on the way (all 17 KB of `pull_request` for each of its
/// fields: the projection cost as much as printing the whole payload).
fn at(path: &[&str]) -> String {
    if path.is_empty() {
        "p".to_owned()
    } else {
        format!("(p #> '{{{}}}')", path.join(","))
    }
}

/// The value at `path` reduced to `members` when it is an object, else as it is.
fn object<'a>(path: &[&'a str], members: impl Iterator<Item = &'a (&'static str, Keep)>) -> String {
    let pairs: Vec<String> = members
        .map(|(name, keep)| {
            let mut member = path.to_vec();
            member.push(checked(name));
            format!("'{name}', {}", value(&member, *keep))
        })
        .collect();
    // json_build_object takes at most 100 arguments.
    assert!(pairs.len() <= 50, "too many members under {path:?}");
    let expr = at(path);
    format!(
        "CASE WHEN jsonb_typeof({expr}) = 'object' THEN json_build_object({}) ELSE {expr}::json END",
        pairs.join(", ")
    )
}

fn value(path: &[&str], keep: Keep) -> String {
    match keep {
        Keep::All => at(path),
        Keep::Fields(fields) => object(path, fields.iter()),
    }
}

/// Names are spliced into SQL: only plain identifiers are allowed.
fn checked(name: &str) -> &str {
    assert!(
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "not a plain member name: {name:?}"
    );
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_processed_repository_event_has_a_tree_and_the_sql_is_built() {
        let sql = payload_text_sql();
        for event in crate::JobKind::PROCESSED_EVENTS
            .into_iter()
            .filter(|e| !e.starts_with("installation"))
        {
            assert!(sql.contains(&format!("WHEN '{event}' THEN")), "{event}");
        }
        assert!(sql.ends_with("ELSE p::text END"));
    }
}
